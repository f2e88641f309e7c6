"""BasicSR's own train pipeline through our entry points, on CPU: train, validate, save, resume, DDP."""
import re

import torch

from conftest import free_port, run_python, write_yaml


def toy_options(name, total_iter=4, save_freq=2, record_dir=None, model='SRModel'):
    train_set = {'name': 'toy_train', 'type': 'FnfToyPairs', 'num_images': 8, 'size': 16,
                 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2}
    if record_dir:
        train_set['record_dir'] = str(record_dir)
    return {
        'name': name, 'model_type': model, 'num_gpu': 0, 'manual_seed': 0,
        'plugins': ['fnf_toy_components'],
        'datasets': {'train': train_set, 'val': {'name': 'toy_val', 'type': 'FnfToyPairs', 'num_images': 2}},
        'network_g': {'type': 'FnfToyNet'},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': total_iter, 'warmup_iter': -1,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': save_freq, 'save_img': True, 'metrics': {'psnr': {'type': 'calculate_psnr',
                                                                             'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': save_freq, 'use_tb_logger': True},
        'dist_params': {'backend': 'gloo', 'port': 29500},
    }


def adam_steps(state_path):
    state = torch.load(state_path, map_location='cpu', weights_only=False)
    return {int(s['step']) for s in state['optimizers'][0]['state'].values()}


def test_train_on_cpu_validates_and_saves_checkpoints(tmp_path):
    write_yaml(tmp_path / 'toy.yml', toy_options('toy_run'))
    run_python(['-m', 'fnf_basicsr.train', '-opt', 'toy.yml'], cwd=tmp_path)
    exp = tmp_path / 'experiments' / 'toy_run'
    assert (exp / 'models' / 'net_g_4.pth').is_file()
    assert (exp / 'models' / 'net_g_latest.pth').is_file()
    assert (exp / 'training_states' / '4.state').is_file()
    assert list((exp / 'visualization').rglob('*.png')), 'validation images were not saved'
    log = next(exp.glob('train_toy_run_*.log')).read_text()
    psnr = [float(v) for v in re.findall(r'# psnr: ([\d.]+)', log)]
    assert len(psnr) >= 2 and all(0 < v < 100 for v in psnr)
    assert (tmp_path / 'tb_logger' / 'toy_run').is_dir()


def test_auto_resume_continues_with_optimizer_state(tmp_path):
    write_yaml(tmp_path / 'toy.yml', toy_options('toy_resume', total_iter=4))
    run_python(['-m', 'fnf_basicsr.train', '-opt', 'toy.yml'], cwd=tmp_path)
    states = tmp_path / 'experiments' / 'toy_resume' / 'training_states'
    assert adam_steps(states / '4.state') == {4}

    proc = run_python(['-m', 'fnf_basicsr.train', '-opt', 'toy.yml', '--auto_resume',
                       '--force_yml', 'train:total_iter=6'], cwd=tmp_path)
    log = proc.stdout + proc.stderr
    assert 'Resuming training from epoch' in log and 'iter: 4' in log
    # Adam's step counter continued from 4: the optimizer state was restored, not rebuilt.
    assert adam_steps(states / '6.state') == {6}


def test_distributed_gloo_shards_data_and_keeps_replicas_identical(tmp_path):
    record_dir = tmp_path / 'record'
    record_dir.mkdir()
    write_yaml(tmp_path / 'toy.yml', toy_options('toy_ddp', total_iter=4, save_freq=4, record_dir=record_dir,
                                                  model='FnfToyReplicaModel'))
    run_python(['-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
                '-m', 'fnf_basicsr.train', '-opt', 'toy.yml', '--launcher', 'pytorch'], cwd=tmp_path)
    seen = [[int(v) for v in (record_dir / f'rank{r}.txt').read_text().split()] for r in (0, 1)]
    # 8 images, 2 ranks, batch 2: one epoch is 2 iterations in which each rank loads 4 images.
    # EnlargedSampler must give each rank its own half of the data in every epoch.
    assert len(seen[0]) == len(seen[1]) >= 8
    for epoch in (0, 1):
        part0, part1 = (set(s[4 * epoch:4 * epoch + 4]) for s in seen)
        assert len(part0) == len(part1) == 4
        assert part0.isdisjoint(part1) and part0 | part1 == set(range(8))

    exp = tmp_path / 'experiments' / 'toy_ddp'
    rank0 = torch.load(exp / 'replica_rank0_4.pth')
    rank1 = torch.load(exp / 'replica_rank1_4.pth')
    initial = torch.load(exp / 'models' / 'net_g_4.pth')['params']
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f'replicas differ in {key}'
        assert torch.equal(rank0[key], initial[key])
    log = next(exp.glob('train_toy_ddp_*.log')).read_text()
    assert 'World size (gpu number): 2' in log
