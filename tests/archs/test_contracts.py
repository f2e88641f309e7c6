"""The network contract (fnf_basicsr/archs/contracts.py): declared capabilities are checked, and the minimal
network that meets every contract (tests/plugins/minimal_basis_network.py, docs/extending.md) goes through
training, fnf-benchmark and fnf-denoise as another package's plugin."""
import csv
import importlib

import numpy as np
import pytest
import torch
from conftest import PLUGINS_DIR, run_python, write_yaml

from fnf_basicsr import benchmark
from fnf_basicsr.archs.contracts import DenoisingNetwork, ExposesIntermediates, WholeImageBasis, check_network
from fnf_basicsr.data.frozen_writer import freeze, freeze_request
from fnf_basicsr.data.synthetic import generate_split
from fnf_basicsr.errors import ConfigError
from fnf_basicsr.inference.tiling import crop_reader, denoise_tiled, denoise_whole


@pytest.fixture(scope='module')
def minimal(request):
    """The plugin module, imported once (it registers MinimalBasisNet with BasicSR)."""
    mp = pytest.MonkeyPatch()
    mp.syspath_prepend(str(PLUGINS_DIR))
    request.addfinalizer(mp.undo)
    return importlib.import_module('minimal_basis_network')


class Plain(torch.nn.Module):
    def forward(self, lq):
        return lq[:, :3]


@pytest.mark.parametrize('flag, missing', [('global_basis_statistics', 'basis_feature_maps, basis_from_pooled')])
def test_a_declared_capability_without_its_members_is_refused(flag, missing):
    claims = type('Claims', (Plain,), {flag: True})
    with pytest.raises(ConfigError, match=f'network_g Claims declares {flag} but lacks {missing}'):
        check_network(claims())
    check_network(Plain())  # declares nothing: nothing more is needed


def test_the_minimal_network_meets_every_protocol(minimal):
    net = minimal.MinimalBasisNet()
    assert all(isinstance(net, protocol) for protocol in (DenoisingNetwork, ExposesIntermediates, WholeImageBasis))
    check_network(net)
    parts = net(torch.rand(2, 12, 20, 24), return_intermediates=True)
    assert parts['output'].shape == parts['filtered'].shape == (2, 3, 20, 24)


def test_tiled_inference_uses_one_whole_image_basis(minimal):
    torch.manual_seed(0)
    net = minimal.MinimalBasisNet().eval()
    lq = torch.rand(1, 12, 96, 96, generator=torch.Generator().manual_seed(1))
    tiled = denoise_tiled(net, crop_reader(lq), 96, 96, tile=64, overlap=32, progress=False)
    whole = denoise_whole(net, lq)
    # The basis is the whole image's (the maps' averages gathered over the tiles); the 3x3 kernels and 3x3
    # convolutions only differ within 2 px of a tile border, where the blending windows weigh them little.
    assert (tiled - whole).abs().max() < 1e-3


def test_the_minimal_network_trains_is_scored_and_denoises(minimal, tmp_path):
    scenes = tmp_path / 'scenes'
    generate_split(scenes, 'train', num_scenes=2, size=64, workers=1, progress=False)
    network = {'type': 'MinimalBasisNet', 'in_channels': 12}
    write_yaml(tmp_path / 'train_minimal.yml', {
        'name': 'train_minimal', 'model_type': 'FnFModel', 'num_gpu': 0, 'manual_seed': 0,
        'plugins': ['minimal_basis_network'], 'network_g': network,
        'datasets': {'train': {'name': 'train', 'type': 'FlashNoFlashDataset', 'dataroot': str(scenes),
                               'exclude_test_split': False, 'crop_size': 32, 'margin': 8, 'num_worker_per_gpu': 0,
                               'batch_size_per_gpu': 1}},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 2, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}})
    run_python(['-m', 'fnf_basicsr.cli', 'train', '-opt', 'train_minimal.yml'], cwd=tmp_path)
    weights = tmp_path / 'experiments' / 'train_minimal' / 'models' / 'net_g_latest.pth'
    freeze(*freeze_request(output=str(tmp_path / 'frozen'), dataroot=str(scenes), crop_size=32, margin=8,
                           subset='all', dimming_factors=[50]), progress=False)
    benchmark.main([f'minimal={weights}', '--test-set', str(tmp_path / 'frozen'), '--out', str(tmp_path / 'report'),
                    '--quiet', '--strips', '1', '--no-references'])
    with open(tmp_path / 'report' / 'table.csv') as handle:
        rows = list(csv.DictReader(handle))
    assert [r['method'] for r in rows] == ['minimal'] and 0 < float(rows[0]['psnr']) < 60
    strip_parts = list((tmp_path / 'report').rglob('*.npz'))
    assert strip_parts and 'filtered' not in np.load(strip_parts[0])  # F is drawn with a scale map G only
    from fnf_basicsr.data.faid import encode_png16
    from fnf_basicsr.data.synthetic import render_scene
    from fnf_basicsr.denoise import main as denoise
    ambient, flash_only, metadata = render_scene(3, 80)
    for name, clean in (('noflash', 0.05 * ambient), ('flash', 2 * flash_only + 0.05 * ambient)):
        pixels = np.round(np.clip(clean, 0, 1) * 65535).astype(np.uint16)
        (tmp_path / f'{name}.png').write_bytes(encode_png16(pixels, metadata.to_text()))
    denoise(['--noflash', str(tmp_path / 'noflash.png'), '--flash', str(tmp_path / 'flash.png'), '--weights',
             str(weights), '--out', str(tmp_path / 'out.png'), '--sig-read', '0.0025', '--sig-shot', '0.0158',
             '--tile', '64', '--overlap', '32', '--no-progress'])
    assert (tmp_path / 'out.png').stat().st_size > 1000
