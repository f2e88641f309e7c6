"""Synthetic splits on disk (fnf_basicsr.data.synthetic.splits): FAID files that read back, reproducible and
disjoint, the cached dataset folder built once and atomically, interrupted runs refused then resumed, parallel
workers. Several ranks at once: tests/data/synthetic/test_synthetic_ranks.py."""
import os

import numpy as np
import pytest

from fnf_basicsr.data.faid import list_faid_names, read_faid_pair
from fnf_basicsr.data.synthetic import (SPLIT_SEED_OFFSETS, ensure_synthetic_dataset, generate_split, render_scene,
                                        scene_name, splits)
from fnf_basicsr.errors import DataError

SIZE = 64


def test_generate_split_writes_faid_files_that_read_back(tmp_path):
    names = generate_split(tmp_path, 'val', 3, size=SIZE, workers=1, progress=False)
    assert names == [scene_name('val', i) for i in range(3)] == ['Synth_val_000000', 'Synth_val_000001',
                                                               'Synth_val_000002']
    assert list_faid_names(tmp_path) == names
    pair = read_faid_pair(tmp_path, names[1])
    ambient, flash_only, metadata = render_scene(SPLIT_SEED_OFFSETS['val'] + 1, SIZE)
    np.testing.assert_allclose(pair.ambient, ambient, atol=0.5 / 65535 + 1e-7)
    np.testing.assert_allclose(pair.flash_only, flash_only, atol=0.5 / 65535 + 1e-7)
    np.testing.assert_array_equal(pair.metadata.xyz_to_camera, metadata.xyz_to_camera)
    assert pair.metadata.illuminant == metadata.illuminant


def test_generate_split_is_reproducible_and_refuses_to_overwrite(tmp_path):
    first, second = tmp_path / 'a', tmp_path / 'b'
    generate_split(first, 'test', 2, size=32, workers=1, progress=False)
    generate_split(second, 'test', 2, size=32, workers=2, progress=False)  # parallel: same bytes
    assert sorted(os.listdir(first)) == sorted(os.listdir(second))
    for name in sorted(os.listdir(first)):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    with pytest.raises(FileExistsError, match='overwrite'):
        generate_split(first, 'test', 2, size=32, workers=1, progress=False)
    generate_split(first, 'test', 2, size=32, workers=1, progress=False, overwrite=True)
    with pytest.raises(ValueError, match='split'):
        generate_split(first, 'holdout', 2)


def test_splits_use_disjoint_seeds():
    offsets = sorted(SPLIT_SEED_OFFSETS.values())
    assert all(b - a >= 1_000_000 for a, b in zip(offsets, offsets[1:]))


def test_ensure_synthetic_dataset_is_idempotent_and_atomic(tmp_path, monkeypatch):
    folder = ensure_synthetic_dataset(tmp_path, 'train', 2, size=32, workers=1, progress=False)
    assert os.listdir(tmp_path) == [os.path.basename(folder)]  # no temporary folder left behind
    assert list_faid_names(folder) == ['Synth_train_000000', 'Synth_train_000001']

    def must_not_run(*args, **kwargs):
        raise AssertionError('the dataset exists; nothing should be generated')
    monkeypatch.setattr(splits, 'generate_split', must_not_run)
    assert ensure_synthetic_dataset(tmp_path, 'train', 2, size=32) == folder


def test_ensure_synthetic_dataset_uses_the_winner_of_a_race(tmp_path, monkeypatch):
    real_generate = splits.generate_split

    def generate_while_another_process_finishes(root, *args, **kwargs):
        real_generate(tmp_path / 'train_2x32', 'train', 2, 32, workers=1, progress=False)  # the winner
        return real_generate(root, *args, **kwargs)
    monkeypatch.setattr(splits, 'generate_split', generate_while_another_process_finishes)
    folder = ensure_synthetic_dataset(tmp_path, 'train', 2, size=32, workers=1, progress=False)
    assert sorted(os.listdir(tmp_path)) == ['train_2x32'] and len(list_faid_names(folder)) == 2


def test_interrupted_generation_leaves_nothing_under_the_final_name_and_resumes(tmp_path, monkeypatch):
    real_generate = splits.generate_split

    def interrupted(root, *args, **kwargs):
        monkeypatch.setattr(splits, '_render_and_write', lambda job: (_ for _ in ()).throw(KeyboardInterrupt))
        return real_generate(root, *args, **kwargs)
    monkeypatch.setattr(splits, 'generate_split', interrupted)
    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic_dataset(tmp_path, 'train', 2, size=32, workers=1, progress=False)
    assert not (tmp_path / 'train_2x32').exists()
    monkeypatch.undo()
    folder = ensure_synthetic_dataset(tmp_path, 'train', 2, size=32, workers=1, progress=False)
    assert os.listdir(tmp_path) == ['train_2x32'] and len(list_faid_names(folder)) == 2


def test_ensure_rejects_a_folder_with_other_scenes(tmp_path):
    generate_split(tmp_path / 'train_3x32', 'train', 1, size=32, workers=1, progress=False)
    with pytest.raises(DataError, match='delete the folder'):
        ensure_synthetic_dataset(tmp_path, 'train', 3, size=32)


# --- interrupted generation: refused while unfinished, resumed to the same bytes ------------------------------

def _file_bytes(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))}


def test_interrupted_split_is_refused_then_resumed_to_identical_files(tmp_path, monkeypatch):
    from fnf_basicsr.errors import DataError
    reference = tmp_path / 'reference'
    generate_split(reference, 'val', 3, size=16, workers=1, progress=False)
    calls = []
    real_render = splits._render_and_write

    def killed_after_two(job):
        if len(calls) == 2:
            raise KeyboardInterrupt  # what Ctrl-C (or a kill) does in the middle of the split
        calls.append(job)
        return real_render(job)
    monkeypatch.setattr(splits, '_render_and_write', killed_after_two)
    partial = tmp_path / 'partial'
    with pytest.raises(KeyboardInterrupt):
        generate_split(partial, 'val', 3, size=16, workers=1, progress=False)
    (partial / 'Synth_val_000002_ambient.png').write_bytes((reference / 'Synth_val_000002_ambient.png').read_bytes())
    with pytest.raises(DataError, match='incomplete.*generate_synthetic.py --root .*--num 3 --size 16'):
        list_faid_names(partial)  # what the dataset, create_lmdb.py and freeze_testset.py call
    monkeypatch.undo()
    rendered = []
    monkeypatch.setattr(splits, '_render_and_write', lambda job: rendered.append(job[1]) or real_render(job))
    generate_split(partial, 'val', 3, size=16, workers=1, progress=False)  # the same call resumes
    assert rendered == ['Synth_val_000002']  # only the scene with a file missing
    assert _file_bytes(partial) == _file_bytes(reference)
    assert (partial / 'synthetic_val.json').is_file() and list_faid_names(partial) == list_faid_names(reference)


def test_resuming_with_other_parameters_is_refused(tmp_path, monkeypatch):
    from fnf_basicsr.errors import OutputExistsError
    monkeypatch.setattr(splits, '_render_and_write', lambda job: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        generate_split(tmp_path, 'val', 3, size=16, workers=1, progress=False)
    monkeypatch.undo()
    with pytest.raises(OutputExistsError, match='unfinished generation with other parameters'):
        generate_split(tmp_path, 'val', 3, size=24, workers=1, progress=False)
    generate_split(tmp_path, 'val', 2, size=24, workers=1, progress=False, overwrite=True)
    assert list_faid_names(tmp_path) == ['Synth_val_000000', 'Synth_val_000001']


FORK_AFTER_OPENCV_THREADS = '''
import sys
import cv2
import numpy as np
from fnf_basicsr.data.synthetic import generate_split
cv2.setNumThreads(2)
cv2.GaussianBlur(np.zeros((2000, 2000, 3), np.float32), (31, 31), 5)  # starts OpenCV's thread pool
generate_split(sys.argv[1], 'test', 2, size=16, workers=2, progress=False)
print('done')
'''


def test_parallel_generation_after_opencv_started_its_threads_does_not_deadlock(tmp_path):
    # Before: each forked worker called cv2.setNumThreads(1) and waited forever for the parent's
    # OpenCV pool threads (the whole test suite hung here after tests that used cv2 in parallel).
    import subprocess
    import sys
    proc = subprocess.run([sys.executable, '-c', FORK_AFTER_OPENCV_THREADS, str(tmp_path / 'out')],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0 and 'done' in proc.stdout, proc.stderr[-2000:]
    assert len(list_faid_names(tmp_path / 'out')) == 2


def test_generating_into_an_existing_folder_keeps_the_users_dot_files(tmp_path):
    """Only temporaries this package names (project tag, pid of a dead process, 32 hex digits) are cleaned up."""
    users = ['.notes.1.tmp', '.my.draft.999999999.tmp', '.a.b.c.tmp', '.x.y.999999999.0123.tmp']
    for name in users:
        (tmp_path / name).write_text('a user file')
    (tmp_path / '.cache.999999999.abc.tmp').mkdir()
    (tmp_path / '.cache.999999999.abc.tmp' / 'keep.txt').write_text('a user file')
    ours = tmp_path / f'.Synth_test_000000_flash.png.fnf-tmp-999999999-{"0" * 32}.tmp'  # a dead run's
    ours.write_bytes(b'half')
    generate_split(tmp_path, 'test', 1, size=16, workers=1, progress=False)
    assert all((tmp_path / name).read_text() == 'a user file' for name in users)
    assert (tmp_path / '.cache.999999999.abc.tmp' / 'keep.txt').exists() and not ours.exists()
