"""Tiny components registered only inside pipeline tests (listed under ``plugins:`` in their YAML).

They exercise BasicSR's train/test pipelines end to end (training, validation, checkpoints,
resume, distributed sharding) independently of our real networks and datasets.
"""
import os

import torch
from basicsr.models.sr_model import SRModel
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY
from torch import nn
from torch.utils import data


@ARCH_REGISTRY.register()
class FnfToyNet(nn.Module):

    def __init__(self, channels=3):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)


@DATASET_REGISTRY.register()
class FnfToyPairs(data.Dataset):
    """Deterministic noisy/clean pairs; records which indices each rank loaded when asked."""

    def __init__(self, opt):
        self.opt = opt
        self.size = opt.get('size', 16)

    def __len__(self):
        return self.opt.get('num_images', 8)

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        gt = torch.rand(3, self.size, self.size, generator=generator)
        lq = gt + 0.1 * torch.randn(gt.shape, generator=generator)
        record_dir = self.opt.get('record_dir')
        if record_dir:
            rank, _ = get_dist_info()
            with open(os.path.join(record_dir, f'rank{rank}.txt'), 'a') as handle:
                handle.write(f'{index}\n')
        return {'lq': lq, 'gt': gt, 'lq_path': f'toy_{index:03d}.png', 'gt_path': f'toy_{index:03d}.png'}


@MODEL_REGISTRY.register()
class FnfToyReplicaModel(SRModel):
    """SRModel that also saves each rank's weights, so tests can compare DDP replicas."""

    def save(self, epoch, current_iter):
        super().save(epoch, current_iter)
        rank, _ = get_dist_info()
        weights = self.get_bare_model(self.net_g).state_dict()
        torch.save(weights, os.path.join(self.opt['path']['experiments_root'], f'replica_rank{rank}_{current_iter}.pth'))
