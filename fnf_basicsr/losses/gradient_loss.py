"""L1 loss on image gradients: the eta-weighted term of the paper's Eq. 6."""
import torch.nn.functional as F
from basicsr.utils.registry import LOSS_REGISTRY
from torch import nn

from fnf_basicsr.errors import ConfigError

REDUCTIONS = ('none', 'mean', 'sum')
REGIONS = ('full', 'common')


@LOSS_REGISTRY.register()
class GradientL1Loss(nn.Module):
    """Weighted L1 norm of the horizontal and vertical finite differences of ``pred - target``.

    ``loss = loss_weight * (reduce|s * dx(pred - target)| + reduce|s * dy(pred - target)|)`` with
    forward differences ``dx e[y, x] = e[y, x + 1] - e[y, x]`` (``dy`` likewise) and
    ``s = difference_scale``; the x and y terms are added, as in the paper's Eq. 6.

    The released DeepFnF code computes ``mean(|g(pred) - g(target)|)`` where ``g`` stacks
    ``0.5 * dy`` and ``0.5 * dx`` over the common top-left (H-1) x (W-1) region and one mean runs
    over both halves: that is ``loss_weight=0.5, difference_scale=0.5, region='common'`` here,
    a quarter of the defaults' "L1 of dx plus L1 of dy" (docs/training.md, "Reproduction defaults").

    Args:
        loss_weight (float): eta, the weight of the term.
        reduction (str): 'mean' (each term averaged over its own differences), 'sum', or 'none':
            a (B, C, H, W) map of ``|s*dx| + |s*dy|`` at each difference's left / top pixel (the
            last column gets no x term, the last row no y term), whose sum is the 'sum' loss.
        difference_scale (float): factor on the finite differences (0.5 in the released code).
        region (str): 'full': every difference (dx over H x (W-1), dy over (H-1) x W);
            'common': only those at the top-left (H-1) x (W-1) pixels, as the released code.

    Shape:
        forward(pred, target): (B, C, H, W) each -> scalar, or (B, C, H, W) for 'none'.
    """

    def __init__(self, loss_weight=1.0, reduction='mean', difference_scale=1.0, region='full'):
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigError(f'GradientL1Loss: unsupported reduction {reduction!r}; use one of {REDUCTIONS}.')
        if region not in REGIONS:
            raise ConfigError(f'GradientL1Loss: unsupported region {region!r}; use one of {REGIONS}.')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.difference_scale = difference_scale
        self.region = region

    def forward(self, pred, target):
        if pred.shape != target.shape or pred.dim() != 4 or min(pred.shape[-2:]) < 2:
            raise ValueError(f'GradientL1Loss: pred and target must both be (B, C, H, W) with the same shape and '
                             f'H, W >= 2, got {tuple(pred.shape)} and {tuple(target.shape)}.')
        error = (pred - target) * self.difference_scale
        loss_x = (error[..., :, 1:] - error[..., :, :-1]).abs()
        loss_y = (error[..., 1:, :] - error[..., :-1, :]).abs()
        if self.region == 'common':
            loss_x, loss_y = loss_x[..., :-1, :], loss_y[..., :, :-1]
        if self.reduction == 'mean':
            loss = loss_x.mean() + loss_y.mean()
        elif self.reduction == 'sum':
            loss = loss_x.sum() + loss_y.sum()
        else:
            height, width = pred.shape[-2:]
            loss = (F.pad(loss_x, (0, width - loss_x.shape[-1], 0, height - loss_x.shape[-2]))
                    + F.pad(loss_y, (0, width - loss_y.shape[-1], 0, height - loss_y.shape[-2])))
        return self.loss_weight * loss
