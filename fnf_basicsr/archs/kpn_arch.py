"""KPN baseline: per-pixel kernels for each frame (Mildenhall et al. 2018), on our U-Net."""
from __future__ import annotations

import torch
from basicsr.utils.registry import ARCH_REGISTRY

from fnf_basicsr.archs.fnf_blocks import PaddedUNet, init_like_release
from fnf_basicsr.data.input_layout import CHANNELS_PER_FRAME, frames_in, image_channels, input_channels
from fnf_basicsr.ops.kernel_filter import per_pixel_filter


@ARCH_REGISTRY.register()
class KPN(PaddedUNet):
    """Kernel prediction network applied to a flash/no-flash pair (the paper's KPN baseline).

    Following Mildenhall et al. (2018): the network predicts, at every pixel, one free K x K kernel
    per input frame (linear output, neither positive nor normalised), shared by the color
    channels; each frame is filtered with its kernels and the filtered frames are summed. The
    frames are the first ``in_channels / 6`` triplets of the input: no-flash and flash for the
    12-channel pair (or the two frames of a no-flash burst), the no-flash image alone for 6
    channels; the remaining channels are the noise std maps, used as input only.

    Our choices: the encoder and decoder are DeepFnF's (:mod:`fnf_basicsr.archs.fnf_blocks`), as
    the paper says its baselines share the architecture, with a final conv to ``frames * K * K``
    channels. The kernel size defaults to 15 rather than KPN's original 5: the paper does not
    give it in the main text, and 15 gives KPN the footprint of BPN's and DeepFnF's base kernels
    (K = 15) so that the comparison isolates how the kernels are parameterised, and reaches
    across more of the flash/no-flash misalignment (up to ~20 px mean displacement).

    Args:
        in_channels (int): 6 * frames (12 for a pair, 6 for a single frame).
        kernel_size (int): K, odd.
        width (float): multiplier on every channel count.
        input_normalization (str): ``'none'`` (default) or ``'frame_mean'``, our option: the encoder
            sees each frame divided by its mean (:mod:`fnf_basicsr.archs.input_normalization`).

    Shape:
        forward(x): (B, in_channels, H, W) -> (B, 3, H, W), any H and W; ``forward(x, frame_means)``
        normalises by given whole-image means (tiled inference).

    Example:
        >>> net = KPN(width=0.0625, kernel_size=5)
        >>> net(torch.rand(1, 12, 20, 30)).shape
        torch.Size([1, 3, 20, 30])
    """

    def __init__(self, in_channels: int = input_channels('flash_noflash'), kernel_size: int = 15, width: float = 1.0,
                 input_normalization: str = 'none'):
        if in_channels % CHANNELS_PER_FRAME or kernel_size % 2 == 0:
            raise ValueError(f'KPN: in_channels must be 6 per frame (frames then noise stds) and kernel_size odd, '
                             f'got in_channels={in_channels}, kernel_size={kernel_size}.')
        self.num_frames = frames_in(in_channels)
        self.kernel_size = kernel_size
        super().__init__(in_channels, self.num_frames * kernel_size * kernel_size, width,
                         input_normalization=input_normalization)
        init_like_release(self)

    def forward(self, x: torch.Tensor, frame_means: torch.Tensor | None = None) -> torch.Tensor:
        """Denoise ``x``: every frame filtered by its per-pixel kernels, the filtered frames summed.

        Args:
            x: network input (B, in_channels, H, W), any H and W.
            frame_means: (B, frames) whole-image means for ``input_normalization: frame_mean`` when
                ``x`` is a tile (default: those of ``x``).

        Returns:
            The estimate (B, 3, H, W).

        Raises:
            ValueError: ``x`` is not (B, in_channels, H, W).

        Shape:
            - x: (B, in_channels, H, W).
            - output: (B, 3, H, W).

        Example:
            >>> KPN(in_channels=6, width=0.0625, kernel_size=3)(torch.rand(2, 6, 8, 8)).shape
            torch.Size([2, 3, 8, 8])
        """
        bottleneck, skips = self.encode(x, frame_means)
        kernels = self.decode(bottleneck, skips, x.shape[-2:])
        taps = self.kernel_size * self.kernel_size
        output = 0
        for frame in range(self.num_frames):
            output = output + per_pixel_filter(x[:, image_channels(frame)], kernels[:, frame * taps:(frame + 1) * taps])
        return output
