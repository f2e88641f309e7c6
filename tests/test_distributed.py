"""Distributed training ends cleanly: two gloo processes on the CPU under torchrun, validating mid-run and after
the last iteration, both exit 0, and validation (on rank 0 only, as BasicSR does) leaves the replicas identical.

Before the fix, rank 0 validated through the DDP wrapper, whose forward broadcasts the network's buffers to the
other ranks: mid-run that collective met rank 1's next training step (on NCCL: a hang until the watchdog), after
the last iteration it met a rank that had exited ("Connection closed by peer", exit 1).
"""
import re

import pytest
import torch

from conftest import free_port, run_python, write_yaml
from fnf_basicsr.data.synthetic import generate_split
from test_pipeline import fnf_options


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('ddp_scenes')
    generate_split(root, 'train', num_scenes=4, size=48, workers=1, progress=False)
    return root


def test_two_processes_validate_mid_run_and_at_the_end_and_exit_zero(scenes, tmp_path):
    options = fnf_options('ddp_val', scenes, total_iter=4, save_freq=4, model='FnFReplicaRecordingModel')
    # frame_mean normalisation registers a buffer: a DDP forward broadcasts it (the collective that broke).
    options['network_g']['input_normalization'] = 'frame_mean'
    options['val'].update(val_freq=2, save_img=False)
    options['datasets']['val']['max_images'] = 1
    options['logger'].update(print_freq=2, use_tb_logger=False)
    write_yaml(tmp_path / 'ddp.yml', options)
    proc = run_python(['-m', 'torch.distributed.run', '--nproc_per_node=2', f'--master_port={free_port()}',
                       '-m', 'fnf_basicsr.train', '-opt', 'ddp.yml', '--launcher', 'pytorch'],
                      cwd=tmp_path, timeout=240)  # fails unless torchrun and both ranks exit 0
    assert 'Traceback' not in proc.stderr, proc.stderr[-3000:]
    exp = tmp_path / 'experiments' / 'ddp_val'
    log = next(exp.glob('train_ddp_val_*.log')).read_text()
    assert 'World size (gpu number): 2' in log
    # Validations at iterations 2 and 4 and the one after training: each logs its metrics.
    assert len(re.findall(r'# psnr: [\d.]+', log)) == 3, log[-2000:]
    for call in (1, 2, 3):  # the weights each rank holds after each validation call
        rank0, rank1 = (torch.load(exp / f'validated_rank{rank}_{call}.pth') for rank in (0, 1))
        for key in rank0:
            assert torch.equal(rank0[key], rank1[key]), f'validation {call}: replicas differ in {key}'
    final = torch.load(exp / 'models' / 'net_g_latest.pth')['params']
    assert all(torch.equal(final[key], rank1[key]) for key in final)
