"""Synthetic scenes: determinism, physics of the two lightings, colors, and the FAID files they make."""
import os

import cv2
import numpy as np
import pytest
import torch

from fnf_basicsr.data.faid import list_faid_names, read_faid_pair
from fnf_basicsr.errors import DataError
from fnf_basicsr.data.synthetic import (SPLIT_SEED_OFFSETS, Material, RoomPlane, cct_to_linear_srgb,
                                        ensure_synthetic_dataset, generate_split, point_light_irradiance, render,
                                        render_scene, sample_scene, scene_name, splits)
from fnf_basicsr.data.synthetic.geometry import camera_rays, first_hits
from fnf_basicsr.data.synthetic.scenes import ILLUMINANT_CODES
from fnf_basicsr.tools import generate_synthetic
from fnf_basicsr.utils.rendering import render_srgb

SIZE = 64


def _gray_scene(seed, size=SIZE, keep_objects=True):
    """A scene whose every surface is matte 50% gray, lit by D65-white light (linear sRGB 1, 1, 1)."""
    scene = sample_scene(seed, size)
    if not keep_objects:
        scene.surfaces = [s for s in scene.surfaces if isinstance(s, RoomPlane)]
    for surface in scene.surfaces:
        surface.material = Material(np.full((1, 1, 3), 0.5, np.float32), 1.0)
    scene.lamp_rgb = scene.fill_rgb = scene.flash_rgb = np.ones(3)
    return scene


def _render_to_srgb(camera_rgb, color_matrix):
    linear = torch.from_numpy(camera_rgb).permute(2, 0, 1)[None]
    return render_srgb(linear, torch.tensor([1.0]), torch.from_numpy(color_matrix))[0].permute(1, 2, 0).numpy()


def test_same_seed_is_bit_identical_and_seeds_differ():
    first, second, other = render_scene(7, SIZE), render_scene(7, SIZE), render_scene(8, SIZE)
    for a, b in zip(first[:2], second[:2]):
        assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(first[2].xyz_to_camera, second[2].xyz_to_camera)
    assert not np.allclose(first[0], other[0])


def test_scene_draws_and_images_are_those_of_the_released_generator():
    # Pinned from the generator as it was before it was split into modules: a reordered draw or a
    # changed formula shows here (tolerances only absorb last-bit differences between CPUs).
    scene = sample_scene(SPLIT_SEED_OFFSETS['val'] + 1, 32)
    assert [type(s).__name__ for s in scene.surfaces] == ['RoomPlane'] * 5 + ['Box', 'Box', 'Sphere']
    assert scene.metadata.illuminant == 17
    np.testing.assert_allclose([scene.focal_px, scene.lamp_radius, *scene.exposure_targets],
                               [26.731185124186172, 0.16796126778280018, 0.7844265745085606, 0.5786901564567688],
                               rtol=1e-12)
    np.testing.assert_allclose(scene.metadata.xyz_to_camera.ravel()[[0, 4, 8]],
                               [0.4745025103369594, 1.5860422718625538, 0.6589729732007873], rtol=1e-12)
    np.testing.assert_allclose(scene.flash_position, [-0.01096693352022336, -0.0053220466254899875,
                                                      0.0038207047875592312], rtol=1e-12)
    ambient, flash_only, _ = render_scene(SPLIT_SEED_OFFSETS['val'] + 1, 32)
    np.testing.assert_allclose(ambient.mean(axis=(0, 1), dtype=np.float64),
                               [0.12644666554115247, 0.10185741125405912, 0.013163823974174704], rtol=1e-5)
    np.testing.assert_allclose(flash_only.mean(axis=(0, 1), dtype=np.float64),
                               [0.043694214199604176, 0.06964034836573774, 0.02289036934445221], rtol=1e-5)


def test_images_are_well_exposed_camera_rgb():
    ambient, flash_only, metadata = render_scene(3, SIZE)
    for image in (ambient, flash_only):
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.float32
        assert image.min() >= 0 and image.max() <= 1
        assert (image >= 1).mean() < 0.01  # highlights may clip, nothing else
        assert 0.3 < np.percentile(image.max(axis=2), 99) < 1
    assert metadata.illuminant in ILLUMINANT_CODES


def test_point_light_follows_inverse_square_and_cosine_laws():
    points = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 2, 1, 1]], np.float32)  # (3, N) columns
    tilt = np.deg2rad(60)
    normals = np.array([[0, 0, np.sin(tilt), 0], [0, 0, 0, 0], [-1, -1, -np.cos(tilt), 1]], np.float32)
    irradiance = point_light_irradiance(points, normals, np.zeros(3))
    np.testing.assert_allclose(irradiance, [1.0, 0.25, 0.5, 0.0], rtol=1e-5)


def test_flash_on_a_uniform_floor_falls_off_as_cosine_over_distance_squared():
    # The flash is (almost) at the camera and the floor at height h below it: a floor point at
    # distance r receives cos / r^2 = (h / r) / r^2, so the image falls off as r^-3.
    scene = _gray_scene(11, size=96, keep_objects=False)
    scene.flash_beam_exponent = 0.0  # isotropic flash, to isolate the geometric falloff
    result = render(scene)
    floor_index = next(k for k, s in enumerate(scene.surfaces) if s.axis == 1 and s.normal_sign < 0)
    dirs = camera_rays(scene.size, scene.focal_px, scene.camera_rotation)
    _, surface_index = first_hits(scene.surfaces, dirs)
    on_floor = (surface_index.reshape(scene.size, scene.size) == floor_index).astype(np.uint8)
    on_floor = cv2.erode(on_floor, np.ones((5, 5), np.uint8)).ravel().astype(bool)  # away from blurred edges
    distance = np.linalg.norm(dirs * result.depth.ravel() - scene.flash_position[:, None], axis=0)[on_floor]
    intensity = result.flash_only.reshape(-1, 3)[on_floor].mean(axis=1)
    assert on_floor.sum() > 200 and intensity.max() < 1
    slope = np.polyfit(np.log(distance), np.log(intensity), 1)[0]
    assert slope == pytest.approx(-3, abs=0.1)


def test_depth_has_discontinuities_at_object_edges():
    _, _, _, depth = render_scene(0, SIZE, return_depth=True)
    assert depth.shape == (SIZE, SIZE) and depth.min() > 0
    relative_jump = np.abs(np.diff(depth, axis=1)) / depth[:, 1:]
    assert relative_jump.max() > 0.3  # an object in front of the room
    assert np.median(relative_jump) < 0.01  # surfaces are smooth between edges


def test_flash_shadows_are_thin_and_come_from_the_flash_offset():
    scene = sample_scene(2, 128)
    shadow = ~render(scene).flash_visibility
    assert 0 < shadow.mean() < 0.02
    eroded = cv2.erode(shadow.astype(np.uint8), np.ones((5, 5), np.uint8))
    assert eroded.sum() <= 0.1 * shadow.sum()  # nowhere wider than a few pixels
    scene.flash_position = np.zeros(3)  # a flash in the lens casts no visible shadow
    assert (~render(scene).flash_visibility).sum() <= 0.0005 * shadow.size


def test_lamp_shadows_are_soft():
    visibility = render(sample_scene(2, 128)).lamp_visibility
    assert (visibility < 0.05).any()  # umbra
    assert ((visibility > 0.05) & (visibility < 0.95)).mean() > 0.01  # penumbra


def test_gray_scene_under_white_light_renders_gray():
    scene = _gray_scene(5)
    result = render(scene)
    for image in (result.ambient, result.flash_only):
        assert image[..., 1].mean() > max(image[..., 0].mean(), image[..., 2].mean())  # raw camera: green-heavy
        srgb = _render_to_srgb(image, scene.metadata.color_matrix)
        lit = srgb.mean(axis=2) > 0.1
        chroma = srgb.max(axis=2) - srgb.min(axis=2)
        assert np.percentile(chroma[lit], 99) < 0.01


def test_ambient_is_warm_and_flash_is_cold():
    assert np.allclose(cct_to_linear_srgb(6504), 1, atol=0.05)  # near D65 white
    ambient, flash_only, metadata = render_scene(4, SIZE)
    ambient_srgb, flash_srgb = (_render_to_srgb(image, metadata.color_matrix).mean(axis=(0, 1))
                                for image in (ambient, flash_only))
    assert ambient_srgb[0] > ambient_srgb[2]
    assert flash_srgb[2] / flash_srgb[0] > 1.3 * ambient_srgb[2] / ambient_srgb[0]


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


def test_generate_script_writes_scenes_and_refuses_to_overwrite(tmp_path, capsys):
    argv = ['--root', str(tmp_path), '--split', 'val', '--num', '2', '--size', '16', '--workers', '1']
    generate_synthetic.main(argv)
    assert 'wrote 2 scenes' in capsys.readouterr().out
    assert list_faid_names(tmp_path) == ['Synth_val_000000', 'Synth_val_000001']
    with pytest.raises(SystemExit) as exited:
        generate_synthetic.main(argv)
    assert exited.value.code == 2 and '--overwrite' in capsys.readouterr().err
    generate_synthetic.main(argv + ['--overwrite'])


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


@pytest.mark.parametrize('argv, message', [(['--num', '0'], 'num_scenes must be an integer >= 1, got 0'),
                                           (['--size', '4'], 'size must be an integer >= 8, got 4'),
                                           (['--workers', '0'], 'workers must be an integer >= 1, got 0')])
def test_script_refuses_bad_numbers_in_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exited:
        generate_synthetic.main(['--root', str(tmp_path / 'out'), *argv])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == f'generate_synthetic.py: error: {message}'


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
