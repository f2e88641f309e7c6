"""The smallest network that meets every contract of fnf_basicsr/archs/contracts.py (docs/extending.md).

A per-image basis of J 3x3 kernels decoded from the global average of one feature map, mixed per pixel by
predicted coefficients and applied to the no-flash image; it declares intermediates and whole-image basis
statistics, so training, fnf-benchmark (strips with ``filtered``) and fnf-denoise (one basis for all tiles)
use all of it.
"""
import torch
import torch.nn.functional as F
from basicsr.utils.registry import ARCH_REGISTRY
from torch import nn


@ARCH_REGISTRY.register()
class MinimalBasisNet(nn.Module):
    supports_intermediates = True
    global_basis_statistics = True
    size_multiple = 1  # no padding: its one feature map is at the input's resolution

    def __init__(self, in_channels=12, num_basis=2, features=4):
        super().__init__()
        self.num_basis = num_basis
        self.features = nn.Conv2d(in_channels, features, 3, padding=1)
        self.coefficients = nn.Conv2d(in_channels, num_basis, 3, padding=1)
        self.basis = nn.Linear(features, num_basis * 9)

    def basis_feature_maps(self, lq):
        return [torch.relu(self.features(lq))]

    def basis_from_pooled(self, pooled):
        return self.basis(pooled[0]).view(-1, self.num_basis, 9)

    def forward(self, lq, basis=None, return_intermediates=False):
        if basis is None:
            basis = self.basis_from_pooled([feature.mean(dim=(-2, -1)) for feature in self.basis_feature_maps(lq)])
        noflash = lq[:, :3]
        batch, _, height, width = noflash.shape
        patches = F.unfold(noflash, 3, padding=1).view(batch, 3, 9, height, width)
        filtered = torch.einsum('bckhw,bjk,bjhw->bchw', patches, basis, self.coefficients(lq))
        output = noflash + filtered
        return {'output': output, 'filtered': filtered} if return_intermediates else output
