"""L1 loss on image gradients: the eta-weighted term of the paper's Eq. 6."""
from __future__ import annotations

import torch
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
        loss_weight: eta, the weight of the term.
        reduction: 'mean' (each term averaged over its own differences), 'sum', or 'none':
            a (B, C, H, W) map of ``|s*dx| + |s*dy|`` at each difference's left / top pixel (the
            last column gets no x term, the last row no y term), whose sum is the 'sum' loss.
        difference_scale: factor on the finite differences (0.5 in the released code).
        region: 'full': every difference (dx over H x (W-1), dy over (H-1) x W);
            'common': only those at the top-left (H-1) x (W-1) pixels, as the released code.

    Raises:
        ConfigError: an unknown ``reduction`` or ``region``.

    Shape:
        - pred: (B, C, H, W), H and W at least 2.
        - target: (B, C, H, W).
        - output: scalar, or (B, C, H, W) for 'none'.

    Example:
        >>> pred = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])  # a step in x, none in y
        >>> GradientL1Loss()(pred, torch.zeros_like(pred))
        tensor(1.)
        >>> GradientL1Loss(reduction='none')(pred, torch.zeros_like(pred))
        tensor([[[[1., 0.],
                  [1., 0.]]]])
    """

    def __init__(self, loss_weight: float = 1.0, reduction: str = 'mean', difference_scale: float = 1.0,
                 region: str = 'full') -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ConfigError(f'GradientL1Loss: unsupported reduction {reduction!r}; use one of {REDUCTIONS}.')
        if region not in REGIONS:
            raise ConfigError(f'GradientL1Loss: unsupported region {region!r}; use one of {REGIONS}.')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.difference_scale = difference_scale
        self.region = region

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The weighted L1 norm of the finite differences of ``pred - target``.

        Args:
            pred: the network's output.
            target: the ground truth.

        Returns:
            A scalar ('mean', 'sum') or a (B, C, H, W) map ('none').

        Raises:
            ValueError: shapes that differ, are not 4-dimensional, or are smaller than 2 x 2.
        """
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
