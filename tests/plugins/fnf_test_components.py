"""A test-only model registered inside pipeline tests (listed under ``plugins:`` in their YAML).

It is FnFModel plus three records for the distributed tests: which samples each rank trained on, each
rank's weights at every checkpoint (BasicSR saves rank 0's only), and each rank's weights after every
validation call (BasicSR validates on rank 0 only; rank 1 must still hold the same weights).
"""
import os

import torch
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import MODEL_REGISTRY

from fnf_basicsr.models.fnf_model import FnFModel


@MODEL_REGISTRY.register()
class FnFReplicaRecordingModel(FnFModel):

    def feed_data(self, data):
        super().feed_data(data)
        self.fed_keys = list(data['key'])

    def optimize_parameters(self, current_iter):
        super().optimize_parameters(current_iter)
        rank, _ = get_dist_info()
        with open(os.path.join(self.opt['path']['experiments_root'], f'fed_rank{rank}.txt'), 'a') as handle:
            handle.writelines(f'{key}\n' for key in self.fed_keys)

    def save(self, epoch, current_iter):
        super().save(epoch, current_iter)
        rank, _ = get_dist_info()
        weights = self.get_bare_model(self.net_g).state_dict()
        experiments = self.opt['path']['experiments_root']
        torch.save(weights, os.path.join(experiments, f'replica_rank{rank}_{current_iter}.pth'))

    def validation(self, dataloader, current_iter, tb_logger, save_img=False):
        super().validation(dataloader, current_iter, tb_logger, save_img)
        rank, _ = get_dist_info()
        self.validations = getattr(self, 'validations', 0) + 1
        weights = self.get_bare_model(self.net_g).state_dict()
        experiments = self.opt['path']['experiments_root']
        torch.save(weights, os.path.join(experiments, f'validated_rank{rank}_{self.validations}.pth'))
