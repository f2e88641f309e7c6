"""BasicSR's own train pipeline through our entry points, on CPU, with our model, network and dataset:
train with validation and checkpoints, resume, and 2-process distributed training (gloo)."""
import re

import pytest
import torch

from conftest import free_port, run_python, write_yaml
from fnf_basicsr.data.synthetic import generate_split

NUM_SCENES = 8


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('pipeline_scenes')
    generate_split(root, 'train', num_scenes=NUM_SCENES, size=64, workers=1, progress=False)
    return root


def fnf_options(name, scenes, total_iter=4, save_freq=2, model='FnFModel'):
    dataset = {'type': 'FlashNoFlashDataset', 'dataroot': str(scenes), 'exclude_test_split': False, 'crop_size': 32,
               'margin': 8}
    return {
        'name': name, 'model_type': model, 'num_gpu': 0, 'manual_seed': 0,
        'plugins': ['fnf_test_components'],
        'datasets': {'train': {'name': 'tiny_train', **dataset, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2},
                     'val': {'name': 'tiny_val', **dataset, 'dimming_factors': [20], 'max_images': 2}},
        'network_g': {'type': 'DeepFnF', 'width': 0.0625, 'num_basis': 4, 'kernel_size': 5, 'upsample': 2},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': total_iter, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'gradient_opt': {'type': 'GradientL1Loss', 'loss_weight': 1.0}},
        'val': {'val_freq': save_freq, 'save_img': True,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': True},
    }


def adam_steps(state_path):
    state = torch.load(state_path, map_location='cpu')
    return {int(s['step']) for s in state['optimizers'][0]['state'].values()}


def test_train_on_cpu_validates_and_saves_checkpoints(scenes, tmp_path):
    write_yaml(tmp_path / 'fnf.yml', fnf_options('fnf_run', scenes))
    run_python(['-m', 'fnf_basicsr.train', '-opt', 'fnf.yml'], cwd=tmp_path)
    exp = tmp_path / 'experiments' / 'fnf_run'
    assert (exp / 'models' / 'net_g_4.pth').is_file()
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    assert (exp / 'training_states' / '4.state').is_file()
    assert list((exp / 'visualization').rglob('*.png')), 'validation images were not saved'
    log = next(exp.glob('train_fnf_run_*.log')).read_text()
    psnr = [float(v) for v in re.findall(r'# psnr: ([\d.]+)', log)]
    assert len(psnr) >= 2 and all(0 < v < 100 for v in psnr)
    assert 'Noisy input rendered the same way: psnr' in log
    assert (tmp_path / 'tb_logger' / 'fnf_run').is_dir()


def test_auto_resume_continues_with_optimizer_state(scenes, tmp_path):
    write_yaml(tmp_path / 'fnf.yml', fnf_options('fnf_resume', scenes, total_iter=4))
    run_python(['-m', 'fnf_basicsr.train', '-opt', 'fnf.yml'], cwd=tmp_path)
    states = tmp_path / 'experiments' / 'fnf_resume' / 'training_states'
    assert adam_steps(states / '4.state') == {4}

    proc = run_python(['-m', 'fnf_basicsr.train', '-opt', 'fnf.yml', '--auto_resume',
                       '--force_yml', 'train:total_iter=6'], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'Resuming training from epoch' in log and 'iter: 4' in log
    # Adam's step counter continued from 4: the optimizer state was restored, not rebuilt.
    assert adam_steps(states / '6.state') == {6}


def test_distributed_gloo_shards_data_and_keeps_replicas_identical(scenes, tmp_path):
    write_yaml(tmp_path / 'fnf.yml', fnf_options('fnf_ddp', scenes, total_iter=4, save_freq=4,
                                                 model='FnFReplicaRecordingModel'))
    run_python(['-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
                '-m', 'fnf_basicsr.train', '-opt', 'fnf.yml', '--launcher', 'pytorch'], cwd=tmp_path)
    exp = tmp_path / 'experiments' / 'fnf_ddp'
    fed = [(exp / f'fed_rank{r}.txt').read_text().split() for r in (0, 1)]
    # 8 scenes, 2 ranks, batch 2: one epoch is 2 iterations in which each rank is fed 4 scenes.
    # EnlargedSampler must give each rank its own half of the data in every epoch.
    assert len(fed[0]) == len(fed[1]) == 8
    for epoch in (0, 1):
        part0, part1 = (set(f[4 * epoch:4 * epoch + 4]) for f in fed)
        assert len(part0) == len(part1) == 4
        assert part0.isdisjoint(part1) and len(part0 | part1) == NUM_SCENES

    rank0 = torch.load(exp / 'replica_rank0_4.pth')
    rank1 = torch.load(exp / 'replica_rank1_4.pth')
    saved = torch.load(exp / 'models' / 'net_g_4.pth')['params']
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f'replicas differ in {key}'
        assert torch.equal(rank0[key], saved[key])
    log = next(exp.glob('train_fnf_ddp_*.log')).read_text()
    assert 'World size (gpu number): 2' in log
