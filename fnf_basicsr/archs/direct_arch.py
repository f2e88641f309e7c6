"""Direct-prediction baseline: the shared U-Net regressing the denoised image."""
from __future__ import annotations

import torch
from basicsr.utils.registry import ARCH_REGISTRY

from fnf_basicsr.archs.fnf_blocks import PaddedUNet, init_like_release
from fnf_basicsr.archs.input_normalization import frame_means as input_frame_means
from fnf_basicsr.data.input_layout import COLOR_CHANNELS, NOFLASH_FRAME, image_channels, input_channels


@ARCH_REGISTRY.register()
class DirectUNet(PaddedUNet):
    """The paper's "direct prediction" baseline: the network simply regresses the output image.

    It is DeepFnF's encoder and coefficient decoder (:mod:`fnf_basicsr.archs.fnf_blocks`; the
    paper's baselines share the architecture) with a linear conv3x3 to 3 channels. By default the
    output is that regression alone, as the paper describes the baseline; ``residual=True`` (our
    option) adds the no-flash image (channels 0:3), so the network predicts a correction instead.
    With ``input_normalization: frame_mean`` (our option) the network regresses in the units of
    its normalised input: its prediction is multiplied by the no-flash frame's mean.

    Args:
        in_channels (int): input channels (12 for a flash/no-flash pair with noise maps).
        width (float): multiplier on every channel count.
        residual (bool): add channels 0:3 of the input to the prediction.
        input_normalization (str): ``'none'`` (default) or ``'frame_mean'``
            (:mod:`fnf_basicsr.archs.input_normalization`).

    Shape:
        forward(x): (B, in_channels, H, W) -> (B, 3, H, W), any H and W; ``forward(x, frame_means)``
        normalises by given whole-image means (tiled inference).

    Example:
        >>> net = DirectUNet(width=0.0625, residual=True)
        >>> net(torch.rand(1, 12, 20, 30)).shape
        torch.Size([1, 3, 20, 30])
    """

    def __init__(self, in_channels: int = input_channels('flash_noflash'), width: float = 1.0, residual: bool = False,
                 input_normalization: str = 'none'):
        super().__init__(in_channels, COLOR_CHANNELS, width, input_normalization=input_normalization)
        self.residual = residual
        init_like_release(self)

    def forward(self, x: torch.Tensor, frame_means: torch.Tensor | None = None) -> torch.Tensor:
        """Regress the denoised no-flash image from ``x``.

        Args:
            x: network input (B, in_channels, H, W), any H and W.
            frame_means: (B, frames) whole-image means for ``input_normalization: frame_mean`` when
                ``x`` is a tile (default: those of ``x``).

        Returns:
            The estimate (B, 3, H, W), float32 (plus the no-flash image with ``residual``).

        Raises:
            ValueError: ``x`` is not (B, in_channels, H, W).

        Shape:
            - x: (B, in_channels, H, W).
            - output: (B, 3, H, W).

        Example:
            >>> net = DirectUNet(in_channels=6, width=0.0625, input_normalization='frame_mean')
            >>> net(torch.rand(2, 6, 8, 8)).shape
            torch.Size([2, 3, 8, 8])
        """
        normalized = self.input_normalization == 'frame_mean'
        if normalized and frame_means is None:
            frame_means = input_frame_means(x)
        bottleneck, skips = self.encode(x, frame_means)
        output = self.decode(bottleneck, skips, x.shape[-2:]).float()
        if normalized:
            output = output * frame_means[:, NOFLASH_FRAME, None, None, None]
        return output + x[:, image_channels(NOFLASH_FRAME)] if self.residual else output
