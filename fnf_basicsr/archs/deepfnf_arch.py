"""DeepFnF: flash/no-flash denoising by a two-scale kernel basis and a scale map (Xia et al. 2021)."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from basicsr.utils.registry import ARCH_REGISTRY

from fnf_basicsr.archs.fnf_blocks import PaddedBasisUNet, global_average_features, init_like_release
from fnf_basicsr.data.input_layout import COLOR_CHANNELS, NOFLASH_FRAME, image_channels, input_channels
from fnf_basicsr.ops.kernel_filter import basis_filter, tent_kernel, two_scale_filter
TENT_PADDINGS = ('reflect', 'zeros')


def zero_padded_tent_prefilter(image: torch.Tensor, d: int) -> torch.Tensor:
    """X^h of Eq. 4 as the released graph computes it: the tent filter as a 'SAME' conv, zero padding.

    Near the border the tent reaches outside the image and reads zeros, so the smoothed image
    darkens there (to (d * (d + 1) / 2 / d ** 2) ** 2 of the value in a corner; 39 % for d = 4),
    unlike the reflect-padded :func:`fnf_basicsr.ops.kernel_filter.lowpass_prefilter`.

    Args:
        image: the image to smooth.
        d: upsampling factor of the low-frequency kernels.

    Returns:
        The smoothed image, float32 (float64 stays float64), also under autocast.

    Shape:
        - image: (B, C, H, W).
        - output: (B, C, H, W).

    Example:
        >>> smoothed = zero_padded_tent_prefilter(torch.ones(1, 1, 8, 8), 4)
        >>> round(smoothed[0, 0, 0, 0].item(), 4), round(smoothed[0, 0, 4, 4].item(), 4)
        (0.3906, 1.0)
    """
    dtype = torch.float64 if image.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=image.device.type, enabled=False):
        image = image.to(dtype)
        if d == 1:
            return image
        tent = tent_kernel(d, dtype=dtype, device=image.device)
        weight = tent.expand(image.shape[1], 1, *tent.shape)
        return F.conv2d(image, weight, padding=d - 1, groups=image.shape[1])


@ARCH_REGISTRY.register()
class DeepFnF(PaddedBasisUNet):
    """The DeepFnF network: Y = F (.) G with F the no-flash image filtered by a kernel field.

    Following the paper (Sec. 3.2) and the released code: a shared encoder feeds a coefficient
    decoder, which outputs J per-pixel coefficients c_j and a 3-channel scale map G (linear, no
    activation), and a basis decoder, which outputs from globally pooled features a per-image
    basis of J pairs of K x K x 3 kernels (A_j, B_j), neither positive nor normalised. The no-flash
    image X (channels 0:3 of the input) is filtered as in Eq. 4 (:func:`two_scale_filter`):
    ``F = sum_j c_j * ((X * A_j) + (X^h *_d B_j))`` with X^h the tent-smoothed X and ``*_d`` a
    convolution dilated by d, so B_j acts as a low-pass kernel spanning (K - 1) * d + 1 = 57
    pixels (63 with the tent's interpolation); the output is ``F * G`` (Eq. 5). Basis channels are laid
    out as in the released code (color, A/B, j).

    Options for the paper's baselines and ablations: ``use_scale_map=False`` is the no-flash-only
    network of Table 1 (output F; give it the 6-channel no-flash input), ``use_lowpass=False``
    the "15x15 only" ablation of Table 2 (no B_j). Our choices: see
    :mod:`fnf_basicsr.archs.fnf_blocks` (padding to multiples of 32, K other than 15); the
    filtering is computed without per-pixel kernels and in float32 under autocast.

    Two conventions of the released TensorFlow graph are options, so that its weights run exactly
    (:mod:`fnf_basicsr.inference.release` writes both into the converted model's ``network_g``):
    ``upsampling: tf1`` (TensorFlow 1 ``resize_bilinear`` in both decoders, see
    :func:`fnf_basicsr.archs.fnf_blocks.upsample2x`) and ``tent_padding: zeros`` (the tent
    prefilter of the low-pass term as a zero-padded 'SAME' convolution). The defaults,
    ``half_pixel`` and ``reflect``, are those every model of ours was trained with: symmetric
    upsampling without the TF1 quarter-pixel drift, and the same reflect padding as both kernel
    filters, so the low-pass term does not darken at the border.

    Args:
        in_channels (int): 12 (no-flash, flash, their noise std) or 6 (no-flash, its std).
        num_basis (int): J, the number of basis elements.
        kernel_size (int): K, the size of A_j and B_j (odd).
        upsample (int): d, the dilation of B_j.
        width (float): multiplier on every channel count (1.0 = the paper's 64 ... 1024).
        use_lowpass (bool): predict and apply the low-frequency kernels B_j.
        use_scale_map (bool): predict G and output F * G; False outputs F.
        upsampling (str): ``'half_pixel'`` (default) or ``'tf1'``, the decoders' x2 upsampling.
        tent_padding (str): ``'reflect'`` (default) or ``'zeros'``, the tent prefilter's padding.
        input_normalization (str): ``'none'`` (default, the released code) or ``'frame_mean'``
            (our option: the encoder sees each frame divided by its mean; the filter still reads
            the raw no-flash image, so the output keeps its brightness;
            :mod:`fnf_basicsr.archs.input_normalization`).
        scale_map_bias (float): initial bias of the scale map's output channels (default 0, as the
            released code initialises every bias). Our option: 1 starts G near 1, so that the output
            starts as the filtered image and G cannot settle near 0 with the filter grown to match.
        identity_term (bool): our option, off by default (the released code has none): one more
            per-pixel coefficient ``c_0`` on the unfiltered no-flash image, ``F = c_0 X + sum_j ...``,
            so light noise can keep the image's own detail without the basis having to learn a
            centred delta kernel. Its bias starts at 0.

    Example:
        >>> net = DeepFnF(width=0.0625, num_basis=4, kernel_size=5, upsample=2)
        >>> net(torch.rand(1, 12, 37, 50)).shape
        torch.Size([1, 3, 37, 50])
    """

    # Declared capabilities (fnf_basicsr.archs.capabilities).
    supports_intermediates = True
    global_basis_statistics = True

    def __init__(self, in_channels: int = input_channels('flash_noflash'), num_basis: int = 90, kernel_size: int = 15,
                 upsample: int = 4, width: float = 1.0, use_lowpass: bool = True, use_scale_map: bool = True,
                 upsampling: str = 'half_pixel', tent_padding: str = 'reflect', input_normalization: str = 'none',
                 scale_map_bias: float = 0.0, identity_term: bool = False):
        if kernel_size % 2 == 0:
            raise ValueError(f'DeepFnF: kernel_size must be odd (kernels are centred), got {kernel_size}.')
        if tent_padding not in TENT_PADDINGS:
            raise ValueError(f'DeepFnF: tent_padding must be one of {list(TENT_PADDINGS)} (network_g option), '
                             f'got {tent_padding!r}')
        self.tent_padding = tent_padding
        self.num_basis = num_basis
        self.kernel_size = kernel_size
        self.upsample = upsample
        self.use_lowpass = use_lowpass
        self.use_scale_map = use_scale_map
        self.kernels_per_element = 2 if use_lowpass else 1
        self.identity_term = bool(identity_term)
        # Coefficient decoder channels: c_1..c_J, then c_0 (identity_term), then G.
        self.num_coefficients = num_basis + int(self.identity_term)
        coefficient_channels = self.num_coefficients + (COLOR_CHANNELS if use_scale_map else 0)
        basis_channels = COLOR_CHANNELS * self.kernels_per_element * num_basis
        super().__init__(in_channels, coefficient_channels, basis_channels, kernel_size, width, upsampling,
                         input_normalization)
        init_like_release(self)
        if use_scale_map:
            nn.init.constant_(self.coefficient_decoder.output.bias[self.num_coefficients:], scale_map_bias)

    def basis_from_pooled(self, pooled: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The basis (A, B) predicted from :meth:`pooled_features` (averaged over tiles if tiled).

        Args:
            pooled: the five (B, C_i) averages of :meth:`pooled_features`.

        Returns:
            basis_a (B, J, 3, K, K) and basis_b (B, J, 3, K, K), or None without low-pass.

        Example:
            >>> net = DeepFnF(width=0.0625, num_basis=4, kernel_size=5, upsample=2)
            >>> basis_a, basis_b = net.basis_from_pooled(net.pooled_features(torch.rand(1, 12, 16, 16)))
            >>> basis_a.shape, basis_b.shape
            (torch.Size([1, 4, 3, 5, 5]), torch.Size([1, 4, 3, 5, 5]))
        """
        maps = self.basis_decoder(pooled)
        batch, size = maps.shape[0], self.kernel_size
        # Released layout: channel = (color * kernels_per_element + a_or_b) * J + j.
        maps = maps.view(batch, COLOR_CHANNELS, self.kernels_per_element, self.num_basis, size, size)
        maps = maps.permute(0, 2, 3, 1, 4, 5)  # (B, A/B, J, color, K, K)
        basis_b = maps[:, 1] if self.use_lowpass else None
        return maps[:, 0], basis_b

    def forward(self, x: torch.Tensor, basis: tuple[torch.Tensor, torch.Tensor | None] | None = None,
                return_intermediates: bool = False,
                frame_means: torch.Tensor | None = None) -> torch.Tensor | dict[str, torch.Tensor | None]:
        """Denoise ``x``.

        Args:
            x: network input (B, in_channels, H, W), any H and W.
            basis: (basis_a, basis_b) to use instead of predicting them, e.g. from
                :meth:`basis_from_pooled` over all tiles of a large image.
            return_intermediates: return a dict instead of the image.
            frame_means: (B, frames) whole-image means for ``input_normalization: frame_mean`` when
                ``x`` is a tile (default: those of ``x``).

        Returns:
            The estimate (B, 3, H, W), float32; or a dict with ``output``, ``filtered`` (F),
            ``scale_map`` (G, None without scale map), ``coeffs`` (B, J, H, W), ``basis_a`` and
            ``basis_b`` (B, J, 3, K, K; basis_b None without low-pass).

        Raises:
            ValueError: ``x`` has the wrong channels, or ``basis`` the wrong shapes.

        Shape:
            - x: (B, in_channels, H, W).
            - output: (B, 3, H, W).

        Example:
            >>> net = DeepFnF(width=0.0625, num_basis=4, kernel_size=5, upsample=2)
            >>> parts = net(torch.rand(1, 12, 20, 30), return_intermediates=True)
            >>> parts['output'].shape, parts['coeffs'].shape
            (torch.Size([1, 3, 20, 30]), torch.Size([1, 4, 20, 30]))
        """
        size = x.shape[-2:]
        bottleneck, skips = self.encode(x, frame_means)
        if basis is None:
            basis = self.basis_from_pooled(global_average_features(bottleneck, skips))
        basis_a, basis_b = self._check_basis(basis, x.shape[0])
        maps = self.decode(bottleneck, skips, size)
        coeffs = maps[:, :self.num_basis]
        noflash = x[:, image_channels(NOFLASH_FRAME)]
        filtered = self._filter(noflash, coeffs, basis_a, basis_b)
        if self.identity_term:
            filtered = filtered + maps[:, self.num_basis:self.num_coefficients].float() * noflash.float()
        scale_map = maps[:, self.num_coefficients:].float() if self.use_scale_map else None
        output = filtered * scale_map if self.use_scale_map else filtered
        if not return_intermediates:
            return output
        return {'output': output, 'filtered': filtered, 'scale_map': scale_map, 'coeffs': coeffs,
                'basis_a': basis_a, 'basis_b': basis_b}

    def _filter(self, image, coeffs, basis_a, basis_b):
        """F of Eq. 4 with this network's tent padding."""
        if self.tent_padding == 'reflect' or not self.use_lowpass:
            return two_scale_filter(image, coeffs, basis_a, basis_b, self.upsample, use_lowpass=self.use_lowpass)
        smoothed = zero_padded_tent_prefilter(image, self.upsample)
        return basis_filter(image, coeffs, basis_a) + basis_filter(smoothed, coeffs, basis_b, dilation=self.upsample)

    def _check_basis(self, basis, batch):
        expected = (batch, self.num_basis, COLOR_CHANNELS, self.kernel_size, self.kernel_size)
        basis_a, basis_b = basis
        shapes_ok = tuple(basis_a.shape) == expected and (
            (basis_b is None) if not self.use_lowpass else (basis_b is not None and tuple(basis_b.shape) == expected))
        if not shapes_ok:
            got = tuple(None if b is None else tuple(b.shape) for b in basis)
            raise ValueError(f'DeepFnF: basis must be (basis_a, basis_b) with shapes {expected} '
                             f'(basis_b None when use_lowpass=False), got {got}; '
                             'use basis_from_pooled of this network to make one.')
        return basis_a, basis_b

