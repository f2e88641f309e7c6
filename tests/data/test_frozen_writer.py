"""Frozen test sets: freezing from a test option file, matching it when scored, safe overwrites, faults."""
import json
import re
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import fnf_basicsr  # noqa: F401  (registers the dataset)
from fnf_basicsr.data import faid
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.frozen_set import FROZEN_MANIFEST, read_frozen_manifest
from fnf_basicsr.data.frozen_writer import freeze, freeze_request
from fnf_basicsr.errors import ConfigError, DataError, OutputError, OutputExistsError

REPO = Path(__file__).resolve().parents[2]
FREEZE_COMMAND = [sys.executable, '-m', 'fnf_basicsr.tools.freeze_testset']
METADATA = faid.ColorMetadata(np.eye(3), 21)
CROP = 48


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    folder = tmp_path_factory.mktemp('faid')
    rng = np.random.default_rng(0)
    for name in ('Scene_a', 'Scene_b', 'Scene_c'):
        faid.write_faid_pair(folder, name, rng.random((80, 90, 3)), rng.random((80, 90, 3)), METADATA)
    return folder


def test_option_file(scenes, tmp_path, **changes):
    """options/test_fnf.yml with its dataset pointed at the tiny scenes (crop 48, two dimming factors)."""
    opt = yaml.safe_load((REPO / 'options' / 'test_fnf.yml').read_text())
    opt['datasets']['test'].update({'dataroot': str(scenes), 'subset': 'all', 'crop_size': CROP, 'margin': 8,
                                    'dimming_factors': [50, 25], 'frozen_root': str(tmp_path / 'frozen'), **changes})
    path = tmp_path / 'test_tiny.yml'
    path.write_text(yaml.safe_dump(opt))
    return path, opt['datasets']['test']


test_option_file.__test__ = False  # a helper, not a test


def test_freezing_from_a_test_option_file_writes_its_frozen_root_and_scores_the_same_samples(scenes, tmp_path):
    path, dataset_opt = test_option_file(scenes, tmp_path)
    request, output = freeze_request(str(path))
    assert output == tmp_path / 'frozen'
    assert freeze(request, output, progress=False) == (6, 0)
    options = read_frozen_manifest(output)['options']
    assert options['scale_pivot'] == 'image_origin' and options['dimming_factors'] == [50.0, 25.0]
    frozen = FlashNoFlashDataset({**dataset_opt, 'phase': 'test'})  # frozen_root and dataroot: checked, read frozen
    live = FlashNoFlashDataset({**{k: v for k, v in dataset_opt.items() if k != 'frozen_root'}, 'phase': 'test'})
    assert frozen.frozen is not None and len(frozen) == len(live) == 6
    for index in (0, 5):
        np.testing.assert_array_equal(frozen[index]['lq'].numpy(), live[index]['lq'].numpy())
    # A flag overrides one option of the file.
    assert freeze_request(str(path), seed=3)[0]['seed'] == 3


def test_a_set_frozen_with_other_options_is_refused_when_scored(scenes, tmp_path):
    path, dataset_opt = test_option_file(scenes, tmp_path)
    freeze(*freeze_request(str(path), scale_pivot='crop_center'), progress=False)
    with pytest.raises(ConfigError, match=r"scale_pivot: frozen 'crop_center', options 'image_origin'.*"
                                          r"freeze_testset.py"):
        FlashNoFlashDataset({**dataset_opt, 'phase': 'test'})
    # Without a dataroot the file describes no degradation: the manifest rules, as before.
    FlashNoFlashDataset({'phase': 'test', 'frozen_root': dataset_opt['frozen_root']})


def test_defaults_without_an_option_file_are_the_option_files_conventions(scenes, tmp_path):
    request, output = freeze_request(dataroot=str(scenes), output=str(tmp_path / 'set'), crop_size=CROP, margin=8,
                                     dimming_factors=[50], max_images=1)
    freeze(request, output, progress=False)
    assert read_frozen_manifest(output)['options']['scale_pivot'] == 'image_origin'
    for path in (REPO / 'options').rglob('*.yml'):
        for dataset in yaml.safe_load(path.read_text())['datasets'].values():
            assert (dataset.get('misalignment') or {}).get('scale_pivot', 'image_origin') == 'image_origin', path


def test_overwrite_replaces_only_files_the_writer_wrote(scenes, tmp_path):
    output = tmp_path / 'set'
    request, _ = freeze_request(dataroot=str(scenes), output=str(output), crop_size=CROP, margin=8,
                                dimming_factors=[50], max_images=2)
    freeze(request, output, progress=False)
    (output / 'notes.txt').write_text('mine')
    with pytest.raises(OutputExistsError, match='other options'):
        freeze({**request, 'seed': 1}, output, progress=False)
    assert freeze({**request, 'seed': 1}, output, overwrite=True, progress=False) == (2, 0)
    assert (output / 'notes.txt').read_text() == 'mine'
    assert len(list(output.glob('*.npz'))) == 2 and read_frozen_manifest(output)['options']['seed'] == 1


def test_a_folder_the_writer_did_not_write_is_never_emptied(scenes, tmp_path):
    other = tmp_path / 'other'
    other.mkdir()
    (other / 'thesis.tex').write_text('years of work')
    request, _ = freeze_request(dataroot=str(scenes), output=str(other), crop_size=CROP, margin=8, max_images=1)
    with pytest.raises(OutputExistsError, match='not a frozen set.*not even with --overwrite'):
        freeze(request, other, overwrite=True, progress=False)
    assert (other / 'thesis.tex').read_text() == 'years of work'
    before = sorted(p.name for p in scenes.iterdir())
    for output in (scenes, scenes.parent):  # the input itself, or a folder holding it
        with pytest.raises(ConfigError, match='(is|contains) the input'):
            freeze(request, output, overwrite=True, progress=False)
    assert sorted(p.name for p in scenes.iterdir()) == before


def _crafted(output, entry_file, tmp_path):
    """The manifest of the set in ``output`` made to list ``entry_file`` and to differ in options."""
    manifest = json.loads((output / FROZEN_MANIFEST).read_text())
    manifest['samples'][0]['file'] = entry_file
    manifest['options']['seed'] = 99
    (output / FROZEN_MANIFEST).write_text(json.dumps(manifest))


@pytest.mark.parametrize('entry', ['../victim.txt', 'ABSOLUTE', 'link.npz'], ids=['dotdot', 'absolute', 'symlink'])
def test_overwrite_never_deletes_what_a_crafted_manifest_names_outside_the_set(scenes, tmp_path, entry):
    output, victim = tmp_path / 'set', tmp_path / 'victim.txt'
    request, _ = freeze_request(dataroot=str(scenes), output=str(output), crop_size=CROP, margin=8,
                                dimming_factors=[50], max_images=2)
    freeze(request, output, progress=False)
    victim.write_text('not yours')
    if entry == 'link.npz':
        (output / entry).symlink_to(victim)
    _crafted(output, str(victim) if entry == 'ABSOLUTE' else entry, tmp_path)
    before = sorted(p.name for p in output.iterdir())
    with pytest.raises(DataError, match='refusing to delete|not a .npz file of the set'):
        freeze(request, output, overwrite=True, progress=False)
    assert victim.read_text() == 'not yours' and sorted(p.name for p in output.iterdir()) == before


def test_a_crafted_manifest_is_refused_when_read(scenes, tmp_path):
    output = tmp_path / 'set'
    request, _ = freeze_request(dataroot=str(scenes), output=str(output), crop_size=CROP, margin=8,
                                dimming_factors=[50], max_images=1)
    freeze(request, output, progress=False)
    _crafted(output, '/etc/hostname', tmp_path)
    with pytest.raises(DataError, match="lists the sample file '/etc/hostname'"):
        FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(output)})


def test_unusable_outputs_and_damaged_manifests_are_named_before_any_work(scenes, tmp_path):
    (tmp_path / 'file').write_text('x')
    request, _ = freeze_request(dataroot=str(scenes), output=str(tmp_path), crop_size=CROP, margin=8, max_images=1)
    with pytest.raises(OutputError, match='file, not a folder'):
        freeze(request, tmp_path / 'file' / 'set', progress=False)
    (tmp_path / 'broken').mkdir()
    (tmp_path / 'broken' / FROZEN_MANIFEST).write_text('{"format": "fnf-basicsr frozen')
    with pytest.raises(DataError, match=r'broken/manifest.json is not readable JSON.*--overwrite'):
        FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(tmp_path / 'broken')})
    with pytest.raises(ConfigError, match='no dataroot'):
        freeze_request(output=str(tmp_path / 'x'))


def run_script(*args):
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    return subprocess.run([*FREEZE_COMMAND, *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_command_reports_known_failures_in_one_line(tmp_path):
    result = run_script('-opt', str(tmp_path / 'missing.yml'))
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f'freeze_testset.py: error: option file not found: {tmp_path / "missing.yml"}; pass a test option file, '
        'e.g. -opt options/test_fnf.yml']


def test_a_killed_run_resumes_to_the_set_an_uninterrupted_run_writes(scenes, tmp_path):
    path, _ = test_option_file(scenes, tmp_path, dimming_factors=[100, 50, 25, 12.5])
    reference = tmp_path / 'reference'
    assert run_script('-opt', str(path), '--output', str(reference), '--quiet').returncode == 0
    output = tmp_path / 'frozen'
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}
    process = subprocess.Popen([*FREEZE_COMMAND, '-opt', str(path), '--quiet'], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        manifest = output / FROZEN_MANIFEST
        if manifest.is_file() and len(json.loads(manifest.read_text() or '{}').get('samples', [])) >= 3:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    if not read_frozen_manifest(output).get('complete'):  # (on a very slow machine the run may finish first)
        with pytest.raises(DataError, match='incomplete'):
            FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(output)})
    assert run_script('-opt', str(path), '--quiet').returncode == 0
    assert not list(output.glob('.*.tmp'))
    written = {p.name: p.read_bytes() for p in output.glob('*.npz')}
    assert written == {p.name: p.read_bytes() for p in reference.glob('*.npz')} and len(written) == 12


@pytest.mark.parametrize('flags, message', [
    (['--crop-size', '512'], 'is 90x80, smaller than crop_size \\+ 2 \\* margin'),
    (['--dimming-factors', '0'], 'dimming_factors \\(--dimming-factors\\) must be finite numbers > 0'),
    (['--dimming-factors', '50', '-5'], 'must be finite numbers > 0'),
    (['--displacement-bins', '4', '2'], 'displacement_bins must be increasing'),
    (['--seed', '-1'], 'seed \\(--seed\\) must be an integer >= 0'),
], ids=['crop-larger-than-images', 'dimming-zero', 'dimming-negative', 'bins-decreasing', 'negative-seed'])
def test_impossible_flags_are_one_line_errors_that_leave_nothing(scenes, tmp_path, capsys, flags, message):
    from fnf_basicsr.tools import freeze_testset
    output = tmp_path / 'set'
    with pytest.raises(SystemExit) as exited:
        freeze_testset.main(['--dataroot', str(scenes), '--output', str(output), '--subset', 'all', '--crop-size',
                             str(CROP), '--margin', '8', '--quiet', *flags])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exited.value.code == 2 and len(lines) == 1 and lines[0].startswith('freeze_testset.py: error: ')
    assert re.search(message, lines[0]) and not output.exists()


def test_an_lmdb_or_a_frozen_set_where_the_other_is_expected_is_named(scenes, tmp_path):
    from fnf_basicsr.data.lmdb_store import create_lmdb
    lmdb_path = tmp_path / 'crops.lmdb'
    create_lmdb(scenes, lmdb_path, crop_size=48, stride=48, progress=False)
    with pytest.raises(DataError, match='is an LMDB of training crops, not a frozen test set'):
        FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(lmdb_path)})
    with pytest.raises(DataError, match='it is an LMDB of crops: read it with io_backend'):
        freeze_request(dataroot=str(lmdb_path), output=str(tmp_path / 'set'))
    request, _ = freeze_request(dataroot=str(scenes), output=str(tmp_path / 'set'), crop_size=CROP, margin=8,
                                max_images=1, dimming_factors=[50])
    freeze(request, tmp_path / 'set', progress=False)
    with pytest.raises(DataError, match='it is a frozen test set: score it with fnf-benchmark'):
        freeze_request(dataroot=str(tmp_path / 'set'), output=str(tmp_path / 'other'))


def test_the_simulated_isp_is_part_of_a_sets_identity():
    from fnf_basicsr.data.frozen_set import degradation_options, differing_options
    plain = degradation_options({'crop_size': 64})
    with_isp = degradation_options({'crop_size': 64, 'isp': {'demosaic': True, 'jpeg_quality': [70, 95]}})
    assert differing_options(plain, with_isp) == ['isp']
    older_manifest = {key: value for key, value in plain.items() if key != 'isp'}  # written before isp was recorded
    assert differing_options(older_manifest, plain) == []
