"""BPN baseline: basis prediction networks for burst denoising (Xia et al. 2020)."""
from __future__ import annotations

from typing import Sequence

import torch
from basicsr.utils.registry import ARCH_REGISTRY

from fnf_basicsr.archs.fnf_blocks import PaddedBasisUNet, global_average_features, init_like_release
from fnf_basicsr.data.input_layout import CHANNELS_PER_FRAME, COLOR_CHANNELS, all_images, frames_in, input_channels
from fnf_basicsr.ops.kernel_filter import basis_filter


@ARCH_REGISTRY.register()
class BPN(PaddedBasisUNet):
    """Basis prediction network applied to the frames of the input (the paper's BPN baselines).

    Following BPN (Xia et al. 2020, color version of the released code): a per-image basis of J
    elements, each a K x K kernel per frame and per color channel, is predicted from globally
    pooled features; every element is positive and normalised (softmax over the frames and the
    K x K taps, for each color channel), and the per-pixel coefficients are a softmax over J, so
    every per-pixel kernel is a weighted average across the frames. Each frame is filtered with
    its kernels and the filtered frames are summed. Unlike DeepFnF, there is no scale map and no
    low-pass term. The frames are the first ``in_channels / 6`` triplets of the input: no-flash
    and flash for the flash/no-flash pair, or the two frames of the 2-frame no-flash burst (both
    12 channels); the noise std maps are input only.

    Our choices: the encoder and decoders are DeepFnF's (:mod:`fnf_basicsr.archs.fnf_blocks`),
    which BPN's released code also uses; basis channels are laid out as in that code (frame,
    color, j); the filtering never forms per-pixel kernels and runs in float32 under autocast.

    Args:
        in_channels (int): 6 * frames (12 for a pair).
        num_basis (int): J.
        kernel_size (int): K, odd.
        width (float): multiplier on every channel count.
        input_normalization (str): ``'none'`` (default) or ``'frame_mean'``, our option: the encoder
            sees each frame divided by its mean (:mod:`fnf_basicsr.archs.input_normalization`).

    Shape:
        forward(x): (B, in_channels, H, W) -> (B, 3, H, W), any H and W.

    Example:
        >>> net = BPN(width=0.0625, num_basis=4, kernel_size=5)
        >>> net(torch.rand(1, 12, 20, 30)).shape
        torch.Size([1, 3, 20, 30])
    """

    global_basis_statistics = True  # a declared capability (fnf_basicsr.archs.capabilities)

    def __init__(self, in_channels: int = input_channels('flash_noflash'), num_basis: int = 90, kernel_size: int = 15,
                 width: float = 1.0, input_normalization: str = 'none'):
        if in_channels % CHANNELS_PER_FRAME or kernel_size % 2 == 0:
            raise ValueError(f'BPN: in_channels must be 6 per frame (frames then noise stds) and kernel_size odd, '
                             f'got in_channels={in_channels}, kernel_size={kernel_size}.')
        self.num_frames = frames_in(in_channels)
        self.num_basis = num_basis
        self.kernel_size = kernel_size
        basis_channels = self.num_frames * COLOR_CHANNELS * num_basis
        super().__init__(in_channels, num_basis, basis_channels, kernel_size, width,
                         input_normalization=input_normalization)
        init_like_release(self)

    def basis_from_pooled(self, pooled: Sequence[torch.Tensor]) -> torch.Tensor:
        """The normalised basis predicted from :meth:`pooled_features` (averaged over tiles if tiled).

        Args:
            pooled: the five (B, C_i) averages of :meth:`pooled_features`.

        Returns:
            (B, J, frames * 3, K, K), float32; channel ``frame * 3 + color``; for every j and color
            the kernels of all frames are positive and sum to 1.

        Example:
            >>> net = BPN(width=0.0625, num_basis=4, kernel_size=5)
            >>> basis = net.basis_from_pooled(net.pooled_features(torch.rand(1, 12, 16, 16)))
            >>> basis.shape, torch.allclose(basis[:, :, 0::3].sum(dim=(2, 3, 4)), torch.ones(1, 4))
            (torch.Size([1, 4, 6, 5, 5]), True)
        """
        maps = self.basis_decoder(pooled).float()
        batch, frames, size = maps.shape[0], self.num_frames, self.kernel_size
        # Released layout: channel = (frame * 3 + color) * J + j.
        maps = maps.view(batch, frames, COLOR_CHANNELS, self.num_basis, size * size)
        maps = maps.permute(0, 3, 2, 1, 4).reshape(batch, self.num_basis, COLOR_CHANNELS, frames * size * size)
        basis = maps.softmax(dim=-1).view(batch, self.num_basis, COLOR_CHANNELS, frames, size, size)
        return basis.transpose(2, 3).reshape(batch, self.num_basis, frames * COLOR_CHANNELS, size, size)

    def forward(self, x: torch.Tensor, basis: torch.Tensor | None = None,
                frame_means: torch.Tensor | None = None) -> torch.Tensor:
        """Denoise ``x``; ``basis`` (from :meth:`basis_from_pooled`) replaces the predicted one.

        Args:
            x: network input (B, in_channels, H, W), any H and W.
            basis: (B, J, frames * 3, K, K) basis to use instead of predicting one, e.g. from
                :meth:`basis_from_pooled` over all tiles of a large image.
            frame_means: whole-image means (B, frames) for ``input_normalization`` when ``x`` is a tile.

        Returns:
            The estimate (B, 3, H, W), float32.

        Raises:
            ValueError: ``x`` is not (B, in_channels, H, W).

        Shape:
            - x: (B, in_channels, H, W).
            - output: (B, 3, H, W).

        Example:
            >>> net = BPN(width=0.0625, num_basis=4, kernel_size=5)
            >>> lq = torch.rand(1, 12, 16, 16)
            >>> torch.allclose(net(lq, basis=net.basis_from_pooled(net.pooled_features(lq))), net(lq))
            True
        """
        bottleneck, skips = self.encode(x, frame_means)
        if basis is None:
            basis = self.basis_from_pooled(global_average_features(bottleneck, skips))
        coeffs = self.decode(bottleneck, skips, x.shape[-2:]).float().softmax(dim=1)
        frames = x[:, all_images(self.num_frames)]
        filtered = basis_filter(frames, coeffs, basis)
        return filtered.view(x.shape[0], self.num_frames, COLOR_CHANNELS, *x.shape[-2:]).sum(dim=1)
