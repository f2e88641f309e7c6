"""The freeze_testset command (fnf_basicsr.tools.freeze_testset): one-line errors for a missing option file and
impossible flags, and a killed run resumed to the set an uninterrupted run writes. The writer itself:
tests/data/test_frozen_writer.py."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import fnf_basicsr  # noqa: F401  (registers the dataset)
from conftest import FREEZE_CROP, tiny_test_option_file
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.frozen_set import FROZEN_MANIFEST, read_frozen_manifest
from fnf_basicsr.errors import DataError

FREEZE_COMMAND = [sys.executable, '-m', 'fnf_basicsr.tools.freeze_testset']
CROP = FREEZE_CROP


@pytest.fixture(scope='module')
def scenes(freeze_scenes):
    return freeze_scenes


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
    path, _ = tiny_test_option_file(scenes, tmp_path, dimming_factors=[100, 50, 25, 12.5])
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
