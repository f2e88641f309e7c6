"""Ctrl-C in every data and inference command: one line on stderr, exit 130, nothing partial left.

The interrupt arrives at a chosen point: ``FNF_FAULT_KILL=<label>:<n>:INT`` makes the n-th
``fault_point(<label>)`` send SIGINT to the command's process group, as a terminal's Ctrl-C does (the
command runs in its own session, so only it and its workers get the signal).
"""
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from conftest import PLUGINS_DIR
from fnf_basicsr.data import faid
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.utils.files import FAULT_ENV


def interrupted(args, cwd, label, count, timeout=240):
    """Run ``python -m ARGS`` with a Ctrl-C at the ``count``-th ``fault_point(label)``; returns its stderr lines."""
    env = {**os.environ, FAULT_ENV: f'{label}:{count}:INT', 'OMP_NUM_THREADS': '1',
           'PYTHONPATH': os.pathsep.join(filter(None, [str(PLUGINS_DIR), os.environ.get('PYTHONPATH')]))}
    proc = subprocess.run([sys.executable, '-m', *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True,
                          check=False, timeout=timeout, start_new_session=True)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 128 + signal.SIGINT, f'exit {proc.returncode}:\n{proc.stderr}'
    assert len(lines) == 1 and 'interrupted' in lines[0] and 'Traceback' not in proc.stderr, proc.stderr
    return lines[0]


def leftovers(folder):
    """Temporaries (ours or any) under ``folder``."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob('*') if p.name.endswith('.tmp'))


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    from fnf_basicsr.data.synthetic import generate_split
    root = tmp_path_factory.mktemp('scenes')
    generate_split(root, 'test', 2, size=80, workers=1, progress=False)
    return root


def test_generate_synthetic_with_workers(tmp_path):
    root = tmp_path / 'scenes'
    line = interrupted(['fnf_basicsr.tools.generate_synthetic', '--root', root, '--split', 'val', '--num', '6',
                        '--size', '16', '--workers', '2', '--quiet'], tmp_path, 'synthetic_scene', 1)
    assert line.startswith('generate_synthetic.py: interrupted; the scenes written so far are kept')
    assert leftovers(root) == []
    with pytest.raises(faid.FaidFormatError, match='incomplete'):
        faid.list_faid_names(root)  # marked unfinished until the same command finishes it


def test_create_lmdb(scenes, tmp_path):
    out = tmp_path / 'train.lmdb'
    line = interrupted(['fnf_basicsr.tools.create_lmdb', '--input', scenes, '--output', out, '--crop-size', '32',
                        '--quiet'], tmp_path, 'lmdb_put', 3)
    assert line == 'create_lmdb.py: interrupted'
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # neither the LMDB nor its temporary


def test_freeze_testset(scenes, tmp_path):
    out = tmp_path / 'frozen'
    # writes: the manifest, the manifest listing sample 0, sample 0 (interrupted inside)
    interrupted(['fnf_basicsr.tools.freeze_testset', '--dataroot', scenes, '--output', out, '--subset', 'all',
                 '--crop-size', '32', '--quiet'], tmp_path, 'write_atomically', 3)
    assert leftovers(out) == [] and not list(out.glob('*.npz'))
    with pytest.raises(faid.DataError, match='incomplete'):
        FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(out)})


def test_fnf_denoise(tmp_path):
    from test_denoise import TINY_DEEPFNF, save_experiment
    rng = np.random.default_rng(1)
    for role, level in (('noflash', 5000), ('flash', 20000)):
        (tmp_path / f'{role}.png').write_bytes(faid.encode_png16(rng.integers(0, level, (48, 64, 3), np.uint16)))
    out = tmp_path / 'out' / 'denoised.png'
    interrupted(['fnf_basicsr.denoise', '--noflash', tmp_path / 'noflash.png', '--flash', tmp_path / 'flash.png',
                 '--weights', save_experiment(tmp_path, 'tiny', TINY_DEEPFNF), '--sig-read', '0.01', '--sig-shot',
                 '0.02', '--no-progress', '--out', out], tmp_path, 'write_atomically', 1)
    assert sorted(p.name for p in out.parent.iterdir()) == []


def test_fnf_benchmark(scenes, tmp_path):
    from test_benchmark import TINY, save_experiment
    from fnf_basicsr.data.frozen_writer import freeze, freeze_request
    freeze(*freeze_request(dataroot=str(scenes), output=str(tmp_path / 'set'), crop_size=32, subset='all',
                           dimming_factors=[50, 25]), progress=False)
    report = tmp_path / 'report'
    interrupted(['fnf_basicsr.benchmark', f'DeepFnF={save_experiment(tmp_path, "tiny", TINY["DeepFnF"])}',
                 '--test-set', tmp_path / 'set', '--out', report, '--no-references', '--quiet'], tmp_path,
                'benchmark_image', 2)
    assert leftovers(report) == [] and not (report / 'table.md').exists() and not (report / 'strips').exists()
