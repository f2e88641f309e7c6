"""SIGKILL our commands at chosen points, then check what a user would find and what a rerun does.

The kill points are deterministic: ``FNF_FAULT_KILL=<label>:<n>`` makes the n-th call of
``fnf_basicsr.utils.files.fault_point(<label>)`` SIGKILL its own process (no signal handler, no
cleanup, exactly a power cut or the OOM killer). After every kill: nothing partial stands under a
final name, readers refuse what is unfinished, and a rerun either finishes with the same result as
an uninterrupted run or refuses with a clear message; temporaries of the dead run are removed.

Each killed run is a subprocess (about 5 s of imports on the 2-core CI machine); reference runs and
reruns are in-process where that is cheaper.
"""
import hashlib
import os
import signal
import subprocess
import sys

import lmdb
import numpy as np
import pytest

from fnf_basicsr.data import lmdb_store
from conftest import PLUGINS_DIR, run_python, write_yaml
from fnf_basicsr.data import faid
from fnf_basicsr.errors import DataError
from fnf_basicsr.tools import create_lmdb, generate_synthetic
from fnf_basicsr.utils.files import FAULT_ENV


def run_killed(args, cwd, label, count, timeout=240):
    """Run ``python ARGS`` with a kill at the ``count``-th ``fault_point(label)``; it must die by SIGKILL."""
    env = {**os.environ, FAULT_ENV: f'{label}:{count}', 'OMP_NUM_THREADS': '1',
           'PYTHONPATH': os.pathsep.join(filter(None, [str(PLUGINS_DIR), os.environ.get('PYTHONPATH')]))}
    proc = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, timeout=timeout)
    assert proc.returncode == -signal.SIGKILL, f'not killed at {label}:{count}: exit {proc.returncode}\n{proc.stderr}'


def temporaries(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*') if p.name.endswith('.tmp'))


def digest_tree(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob('*')) if p.is_file()}


def lmdb_records(path):
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        records = dict(txn.cursor())
    env.close()
    return records


@pytest.fixture(scope='module')
def faid_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('faid')
    rng = np.random.default_rng(0)
    for name in ('Scene_a', 'Scene_b'):
        images = [rng.integers(0, 65536, (70, 90, 3), dtype=np.uint16) for _ in range(2)]
        faid.write_faid_pair(folder, name, *images, faid.ColorMetadata(np.eye(3) + 0.1, 21))
    return folder


# 2 scenes x 2 x 3 crops of 48 px = 12 crops, 24 records.
@pytest.mark.parametrize('label, count', [('lmdb_put', 9), ('lmdb_publish', 1)], ids=['mid-write', 'before-rename'])
def test_killed_create_lmdb_leaves_nothing_and_a_rerun_builds_the_same_lmdb(faid_folder, tmp_path, label, count):
    reference = tmp_path / 'reference.lmdb'
    lmdb_store.create_lmdb(faid_folder, reference, crop_size=48, stride=32, progress=False)
    out = tmp_path / 'out' / 'train.lmdb'
    argv = ['--input', faid_folder, '--output', out, '--crop-size', '48', '--stride', '32', '--quiet']
    run_killed(['-m', 'fnf_basicsr.tools.create_lmdb', *argv], tmp_path, label, count)
    assert not out.exists() and temporaries(out.parent), 'the killed run should leave only its temporary'
    create_lmdb.main(list(map(str, argv)))  # the same command again
    assert temporaries(out.parent) == []
    assert lmdb_records(out) == lmdb_records(reference)
    assert (out / 'meta_info.txt').read_bytes() == (reference / 'meta_info.txt').read_bytes()


@pytest.mark.parametrize('label, count', [('synthetic_scene', 1), ('write_atomically', 4)],
                         ids=['after-a-scene', 'mid-file'])
def test_killed_generate_synthetic_is_refused_then_resumed_to_identical_files(tmp_path, label, count):
    from fnf_basicsr.data.synthetic import generate_split
    reference = tmp_path / 'reference'
    generate_split(reference, 'val', 3, size=16, workers=1, progress=False)
    root = tmp_path / 'scenes'
    argv = ['--root', root, '--split', 'val', '--num', '3', '--size', '16', '--workers', '1']
    run_killed(['-m', 'fnf_basicsr.tools.generate_synthetic', *argv], tmp_path, label, count)
    resume = 'python scripts/data_preparation/generate_synthetic.py --root'
    with pytest.raises(DataError, match=f'incomplete.*run `{resume}'):
        faid.list_faid_names(root)  # what training, create_lmdb.py and freeze_testset.py read through
    generate_synthetic.main(list(map(str, argv)))  # the same command resumes
    assert temporaries(root) == []
    assert digest_tree(root) == digest_tree(reference)


def test_killed_denoise_leaves_no_output_and_a_rerun_writes_the_same_file(tmp_path):
    from test_denoise import TINY_DEEPFNF, save_experiment
    from fnf_basicsr.denoise import main
    rng = np.random.default_rng(1)
    captures = {}
    for role in ('noflash', 'flash'):
        captures[role] = tmp_path / f'scene_{role}.png'
        captures[role].write_bytes(faid.encode_png16(rng.integers(0, 20000, (48, 64, 3), dtype=np.uint16)))
    weights = save_experiment(tmp_path, 'tiny', TINY_DEEPFNF)
    argv = ['--noflash', captures['noflash'], '--flash', captures['flash'], '--weights', weights,
            '--sig-read', '0.01', '--sig-shot', '0.02', '--no-progress', '--save-linear']
    main(list(map(str, argv + ['--out', tmp_path / 'reference.png'])))
    out = tmp_path / 'out' / 'denoised.png'
    run_killed(['-m', 'fnf_basicsr.denoise', *argv, '--out', out], tmp_path, 'write_atomically', 1)
    assert not out.exists() and temporaries(out.parent)
    main(list(map(str, argv + ['--out', out])))
    assert temporaries(out.parent) == []
    assert out.read_bytes() == (tmp_path / 'reference.png').read_bytes()
    assert (out.parent / 'denoised_linear.tiff').read_bytes() == (tmp_path / 'reference_linear.tiff').read_bytes()


def test_killed_training_resumes_from_the_last_good_state_with_new_draws(tmp_path):
    from fnf_basicsr.data.synthetic import generate_split
    from test_pipeline import fnf_options
    scenes = tmp_path / 'scenes'
    generate_split(scenes, 'train', 4, size=48, workers=1, progress=False)
    options = fnf_options('fault_run', scenes, total_iter=4, save_freq=2, model='FnFDrawRecordingModel')
    options['plugins'] = ['fnf_fault_components']
    options['val']['val_freq'] = 100  # no validation: only the saves matter here
    options['logger']['use_tb_logger'] = False
    write_yaml(tmp_path / 'fnf.yml', options)
    # Saves at iteration 2 are checkpoint writes 1 (net_g_2.pth) and 2 (2.state); write 3 is net_g_4.pth.
    run_killed(['-m', 'fnf_basicsr.train', '-opt', 'fnf.yml'], tmp_path, 'save_checkpoint', 3)
    exp = tmp_path / 'experiments' / 'fault_run'
    assert sorted(os.listdir(exp / 'training_states')) == ['2.state']
    assert 'net_g_4.pth' not in os.listdir(exp / 'models') and temporaries(exp / 'models')
    before = (exp / 'draws.txt').read_text().splitlines()
    assert [line.split()[0] for line in before] == ['1', '2', '3', '4']

    run_python(['-m', 'fnf_basicsr.train', '-opt', 'fnf.yml', '--auto_resume'], cwd=tmp_path)
    assert temporaries(exp) == []
    assert {'4.state', '2.state'} <= set(os.listdir(exp / 'training_states'))
    resumed = (exp / 'draws.txt').read_text().splitlines()[len(before):]
    assert [line.split()[0] for line in resumed] == ['3', '4']
    draws = {line: set(line.split()[1:]) for line in before + resumed}
    first_run = set().union(*(draws[line] for line in before))
    # Before the fix the resumed iterations 3-4 replayed exactly the draws of iterations 1-2.
    assert first_run.isdisjoint(set().union(*(draws[line] for line in resumed)))
