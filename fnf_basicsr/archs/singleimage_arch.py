"""Classical single-image reference: non-local means on the no-flash image alone.

The benchmark compares trained networks with two classical references on the same inputs; this
one answers "how far does a strong single-image denoiser get without the flash?". It is
scikit-image's non-local means (Buades, Coll, Morel 2005; the fast blockwise variant of Darbon et
al. 2008) applied in the variance-stabilised domain of :mod:`classical_util`, where the noise has
unit std everywhere, with every parameter in units of that std.

Why non-local means and not BM3D: the `bm3d` wheel (4.0.3, with `bm4d` 4.2.5) installs and runs
here, but its licence allows non-commercial use only (this project is Apache-2.0), and it is much
slower on a CPU for a modest gain (the comparison: docs/evaluation.md, "Moved from docstrings").
"""
from __future__ import annotations

import torch
from skimage.restoration import denoise_nl_means
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from fnf_basicsr.archs.classical_util import stabilized_pair, unstabilize_variance
from fnf_basicsr.data.input_layout import (INPUT_MODES, NOFLASH_FRAME, frame_count, image_channels, input_channels,
                                           std_channels)

# Where the noisy no-flash image and its std map sit, by number of input channels: every input mode
# has the no-flash frame, and the pair and the burst (both 12 channels) hold it at the same place.
_NO_FLASH_AND_STD = {input_channels(mode): (image_channels(NOFLASH_FRAME),
                                            std_channels(NOFLASH_FRAME, frame_count(mode))) for mode in INPUT_MODES}


@ARCH_REGISTRY.register()
class NLMeansNoFlash(nn.Module):
    """Non-local means denoising of the noisy no-flash image, ignoring everything else.

    No learned parameters (``trainable = False``): FnFModel only runs it. The work is done on the
    CPU with scikit-image whatever the input device; the output returns to the input's device.

    Args:
        patch_size: side of the compared patches, pixels.
        patch_distance: search radius, pixels.
        h: cut-off of the patch distance in units of the (stabilised, unit) noise std; scikit-image
            subtracts the expected noise distance first because the std is passed as ``sigma=1``.

    The defaults were chosen on two sets of test scenes (photo-textured, ray-cast) at dimming
    factors 12.5 to 100, by mean PSNR (the scores: docs/evaluation.md, "Moved from docstrings").

    Shape:
        - Input: (B, 12, H, W) flash/no-flash or burst input, or (B, 6, H, W) no-flash-only input.
        - Output: (B, 3, H, W) linear estimate of the no-flash image at the input's scale.

    Example:
        >>> lq = torch.rand(1, 12, 32, 32) * 0.01
        >>> NLMeansNoFlash()(lq).shape
        torch.Size([1, 3, 32, 32])
    """

    trainable = False

    def __init__(self, patch_size: int = 7, patch_distance: int = 10, h: float = 0.6):
        super().__init__()
        if patch_size < 1 or patch_distance < 1 or h <= 0:
            raise ValueError(f'NLMeansNoFlash needs patch_size >= 1, patch_distance >= 1 and h > 0, got '
                             f'{patch_size}, {patch_distance}, {h}; fix the network_g keys of the option file')
        self.patch_size = int(patch_size)
        self.patch_distance = int(patch_distance)
        self.h = float(h)

    @torch.no_grad()
    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """Denoise the no-flash image of every sample (on the CPU), returned on ``lq``'s device and dtype.

        Args:
            lq: flash/no-flash, burst or no-flash-only input.

        Returns:
            The linear estimate of the no-flash image at the input's scale.

        Raises:
            ValueError: ``lq`` has neither 12 nor 6 channels.

        Shape:
            - lq: (B, 12, H, W) or (B, 6, H, W).
            - output: (B, 3, H, W).

        Example:
            >>> NLMeansNoFlash(patch_size=3, patch_distance=2)(torch.rand(1, 6, 16, 16) * 0.01).shape
            torch.Size([1, 3, 16, 16])
        """
        if lq.dim() != 4 or lq.shape[1] not in _NO_FLASH_AND_STD:
            raise ValueError(f'NLMeansNoFlash expects (B, 12, H, W) (no-flash 0:3, its std 6:9) or (B, 6, H, W) '
                             f'(no-flash 0:3, its std 3:6), got shape {tuple(lq.shape)}')
        image_channels, std_channels = _NO_FLASH_AND_STD[lq.shape[1]]
        outputs = [self._denoise(sample[image_channels], sample[std_channels]) for sample in lq]
        return torch.stack(outputs).to(device=lq.device, dtype=lq.dtype)

    def _denoise(self, noisy, std):
        """Denoise one (3, H, W) image given its std map."""
        stabilized, noise_params = stabilized_pair(noisy.float().cpu(), std.float().cpu())
        denoised = denoise_nl_means(
            stabilized.double().permute(1, 2, 0).numpy(), patch_size=self.patch_size,
            patch_distance=self.patch_distance, h=self.h, sigma=1.0, fast_mode=True, channel_axis=-1)
        denoised = torch.from_numpy(denoised).permute(2, 0, 1).float()
        return unstabilize_variance(denoised, *noise_params)

    def extra_repr(self) -> str:
        """The options, shown by ``print(net)``.

        Returns:
            ``'patch_size=..., patch_distance=..., h=...'``.

        Example:
            >>> NLMeansNoFlash().extra_repr()
            'patch_size=7, patch_distance=10, h=0.6'
        """
        return f'patch_size={self.patch_size}, patch_distance={self.patch_distance}, h={self.h}'
