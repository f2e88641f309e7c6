"""Comparing against a restorer of another BasicSR plugin: list the plugin under ``plugins:`` and train and
score its network with our dataset and model through the ``basicsr`` command, under either protocol."""
import re

import pytest

from conftest import run_python, write_yaml
from fnf_basicsr.data.synthetic import generate_split


# The paper's raw low-light protocol, and the later literature's Gaussian noise on sRGB (docs/srgb_awgn.md).
PROTOCOLS = {'paper': ({}, {'dimming_factors': [20, 10]}, 'per dimming: 20x'),
             'srgb_awgn': ({'degradation': 'srgb_awgn'}, {'awgn_sigmas': [25, 50]}, 'per sigma: sigma 25')}


@pytest.mark.parametrize('protocol', PROTOCOLS)
def test_a_restorer_registered_by_another_plugin_trains_and_is_scored(tmp_path, protocol):
    degradation, levels, per_level = PROTOCOLS[protocol]
    scenes = tmp_path / 'scenes'
    generate_split(scenes, 'train', num_scenes=2, size=64, workers=1, progress=False)
    dataset = {'type': 'FlashNoFlashDataset', 'dataroot': str(scenes), 'exclude_test_split': False, 'crop_size': 32,
               'margin': 8, **degradation}
    common = {'model_type': 'FnFModel', 'num_gpu': 0, 'manual_seed': 0, 'plugins': ['example_restorer_plugin'],
              'network_g': {'type': 'ExamplePluginRestorer', 'num_in_ch': 12}}
    write_yaml(tmp_path / 'train_plugin.yml', {
        'name': 'train_plugin', **common,
        'datasets': {'train': {'name': 'train', **dataset, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 1}},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 2, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}})
    run_python(['-m', 'fnf_basicsr.cli', 'train', '-opt', 'train_plugin.yml'], cwd=tmp_path)
    weights = tmp_path / 'experiments' / 'train_plugin' / 'models' / 'net_g_latest.pth'
    write_yaml(tmp_path / 'test_plugin.yml', {
        'name': 'test_plugin', **common,
        'datasets': {'test': {'name': 'scenes', **dataset, 'phase': 'test', **levels}},
        'path': {'pretrain_network_g': str(weights), 'strict_load_g': True},
        'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}}})
    proc = run_python(['-m', 'fnf_basicsr.cli', 'test', '-opt', 'test_plugin.yml'], cwd=tmp_path)
    log = proc.stdout + proc.stderr + ''.join(p.read_text() for p in (tmp_path / 'results').rglob('*.log'))
    assert 'Network [ExamplePluginRestorer] is created' in log
    psnr = [float(v) for v in re.findall(r'# psnr: ([\d.]+)', log)]
    assert psnr and all(0 < v < 100 for v in psnr)
    assert per_level in log
