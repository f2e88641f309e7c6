"""Encoder and decoders shared by DeepFnF, BPN, KPN and the direct U-Net.

The layout is the one of the released DeepFnF / BPN code (Xia et al. 2020, 2021), which the paper
uses for every baseline too ("the baselines share the architecture"):

* :class:`Encoder`: conv3x3 to 64, five levels of [conv3x3, conv3x3, maxpool 2x2] with 64, 128,
  256, 512, 1024 channels (the activation before each pooling is that level's skip), then a
  bottleneck of two conv3x3 with 1024 channels, at 1/32 of the input size.
* :class:`CoefficientDecoder`: five up blocks with 512, 256, 128, 64, 64 channels (bilinear x2,
  conv3x3, concatenation with the skip of the same size, two conv3x3), two conv3x3 with 64
  channels and a linear conv3x3 to the requested outputs, at full resolution.
* :class:`BasisDecoder`: from the global averages of the bottleneck and of the level-5, 4, 3, 2
  skips only, four up blocks (512, 256, 256, 128) from 1x1 to 16x16 whose skips are those
  averages tiled to the current size, a 2x2 valid conv (128) to 15x15, a conv3x3 (128) and a
  linear conv3x3: one K x K map per basis channel. Because it only sees global averages, the
  basis of a large image can be predicted from averages accumulated over tiles.

Every conv but the output ones is followed by a ReLU. ``width`` multiplies every channel count
(for tests and CPU runs). Weights start as in the released code: uniform in
``+-sqrt(3 / fan_in)`` with zero biases.

The x2 upsampling of both decoders has two conventions (``upsampling``, :func:`upsample2x`):
``'half_pixel'`` (our default, PyTorch's ``align_corners=False``: pixel centres sit at
``i + 0.5``, so output pixel ``o`` samples the input at ``(o + 0.5) / 2 - 0.5``) and ``'tf1'``, the
released graph's TensorFlow 1 ``resize_bilinear`` with ``align_corners=False`` and
``half_pixel_centers=False``: output pixel ``o`` samples the input at ``o / 2``, clamped at the last
pixel. That is neither half-pixel nor corner alignment: even outputs copy an input pixel, odd ones
average two neighbours, and the last row and column repeat the input's last one. Use ``'tf1'`` to
run the authors' weights exactly (:mod:`fnf_basicsr.inference.release`).

Our choice, where the paper and the released code say nothing: inputs whose size is not a multiple
of 32 are reflect-padded at the bottom and right and the outputs cropped back
(:func:`pad_to_multiple`); the released code only accepts multiples of 32.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fnf_basicsr.archs.input_normalization import NORMALIZATION_MARKER, check_input_normalization, normalize_frames

ENCODER_WIDTHS = (64, 128, 256, 512, 1024)
COEFFICIENT_DECODER_WIDTHS = (512, 256, 128, 64, 64)
COEFFICIENT_END_WIDTH = 64
BASIS_DECODER_WIDTHS = (512, 256, 256, 128)
BASIS_END_WIDTH = 128
# Five 2x2 poolings: the encoder needs sizes divisible by 2 ** 5.
SIZE_MULTIPLE = 2 ** len(ENCODER_WIDTHS)
UPSAMPLING_CONVENTIONS = ('half_pixel', 'tf1')


def scaled(channels: int, width: float) -> int:
    """``channels`` multiplied by the width multiplier ``width`` (at least 1).

    Args:
        channels: a channel count of the paper's network.
        width: the width multiplier.

    Returns:
        The rounded product, at least 1.

    Example:
        >>> scaled(64, 0.0625), scaled(64, 0.001)
        (4, 1)
    """
    return max(1, int(round(channels * width)))


def conv3x3(in_channels: int, out_channels: int) -> nn.Conv2d:
    """3x3 convolution, zero padding 1 (the released code's 'SAME' padding).

    Args:
        in_channels: input channels.
        out_channels: output channels.

    Returns:
        The convolution (with bias), keeping the spatial size.

    Example:
        >>> conv3x3(2, 5)(torch.zeros(1, 2, 7, 9)).shape
        torch.Size([1, 5, 7, 9])
    """
    return nn.Conv2d(in_channels, out_channels, 3, padding=1)


def conv_relu(in_channels: int, out_channels: int, kernel_size: int = 3) -> nn.Sequential:
    """Convolution followed by ReLU; 3x3 convs keep the size, 2x2 ones are 'valid'.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: 3 (padding 1) or 2 (no padding).

    Returns:
        ``nn.Sequential(conv, ReLU)``.

    Example:
        >>> conv_relu(2, 4, kernel_size=2)(torch.zeros(1, 2, 16, 16)).shape
        torch.Size([1, 4, 15, 15])
    """
    padding = 1 if kernel_size == 3 else 0
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, kernel_size, padding=padding), nn.ReLU(inplace=True))


def init_like_release(module: nn.Module) -> None:
    """Released-code initialisation of every conv: U(-sqrt(3/fan_in), sqrt(3/fan_in)), bias 0.

    Args:
        module: every ``nn.Conv2d`` in it is initialised in place.

    Example:
        >>> conv = nn.Conv2d(3, 2, 3)
        >>> init_like_release(conv)
        >>> bool(conv.weight.abs().max() <= math.sqrt(3 / 27)), conv.bias.tolist()
        (True, [0.0, 0.0])
    """
    for conv in module.modules():
        if isinstance(conv, nn.Conv2d):
            fan_in = conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1]
            bound = math.sqrt(3.0 / fan_in)
            nn.init.uniform_(conv.weight, -bound, bound)
            nn.init.zeros_(conv.bias)


def pad_to_multiple(x: torch.Tensor, multiple: int = SIZE_MULTIPLE) -> torch.Tensor:
    """Pad the bottom and right of ``x`` (B, C, H, W) up to multiples of ``multiple``.

    Reflect padding keeps the image statistics (noise included) the network was trained on; it
    needs the pad to be smaller than the image, so tiny inputs (16 px or less) are padded by
    replication instead. Crop the result back with ``[..., :H, :W]``.

    Args:
        x: the input.
        multiple: the size both sides are padded to a multiple of.

    Returns:
        ``x`` itself when no padding is needed, else the padded tensor.

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, ceil(H / multiple) * multiple, ceil(W / multiple) * multiple).

    Example:
        >>> pad_to_multiple(torch.zeros(1, 3, 37, 64)).shape
        torch.Size([1, 3, 64, 64])
    """
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    mode = 'reflect' if pad_h < height and pad_w < width else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def check_upsampling(upsampling: str) -> str:
    """``upsampling`` if it names a convention of :func:`upsample2x`, else a ValueError with the choices.

    Args:
        upsampling: the ``upsampling`` option of ``network_g``.

    Returns:
        ``upsampling``, unchanged.

    Raises:
        ValueError: not one of :data:`UPSAMPLING_CONVENTIONS`.

    Example:
        >>> check_upsampling('tf1')
        'tf1'
    """
    if upsampling not in UPSAMPLING_CONVENTIONS:
        raise ValueError(f'upsampling must be one of {list(UPSAMPLING_CONVENTIONS)} (network_g option), '
                         f'got {upsampling!r}')
    return upsampling


def upsample2x(x: torch.Tensor, upsampling: str = 'half_pixel') -> torch.Tensor:
    """Bilinear x2 upsampling of (B, C, H, W) in one of two conventions.

    Args:
        x: the maps to upsample.
        upsampling: ``'half_pixel'`` (PyTorch ``align_corners=False``) or ``'tf1'``
            (TensorFlow 1 ``resize_bilinear``, align_corners=False, half_pixel_centers=False:
            output ``o`` reads the input at ``o / 2``, the neighbour index clamped at the edge).

    Returns:
        The upsampled maps.

    Shape:
        - x: (B, C, H, W).
        - output: (B, C, 2H, 2W).

    Example:
        >>> upsample2x(torch.tensor([[[[0.0, 1.0]]]]), 'tf1')
        tensor([[[[0.0000, 0.5000, 1.0000, 1.0000],
                  [0.0000, 0.5000, 1.0000, 1.0000]]]])
    """
    if check_upsampling(upsampling) == 'half_pixel':
        return F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)
    # TensorFlow interpolates the columns first, then the rows, each as a + (b - a) * fraction;
    # the same order and form keep the result bit-close to the released graph.
    return _tf1_double(_tf1_double(x, dim=-1), dim=-2)


def _tf1_double(x, dim):
    """Double axis ``dim`` (negative): out[2i] = x[i], out[2i + 1] = x[i] + (x[min(i + 1, n - 1)] - x[i]) / 2."""
    size = x.shape[dim]
    following = torch.cat([x.narrow(dim, 1, size - 1), x.narrow(dim, size - 1, 1)], dim=dim)
    halfway = x + (following - x) * 0.5
    # (..., n, ...) twice -> (..., n, 2, ...) -> (..., 2n, ...): x[i] then halfway[i]
    return torch.stack([x, halfway], dim=dim).flatten(dim - 1, dim)


class Encoder(nn.Module):
    """Five-level encoder with a bottleneck at 1/32 resolution.

    Args:
        in_channels (int): input channels (12 for a flash/no-flash pair with noise maps).
        widths (sequence of int): channels of the five levels; the bottleneck uses the last.

    Shape:
        forward(x): x (B, in_channels, H, W), H and W multiples of 32 -> (bottleneck, skips) with
        bottleneck (B, widths[-1], H/32, W/32) and skips[i] (B, widths[i], H/2**i, W/2**i), the
        activations before each pooling, finest first.

    Example:
        >>> bottleneck, skips = Encoder(12, (2, 2, 2, 2, 4))(torch.zeros(1, 12, 64, 32))
        >>> tuple(bottleneck.shape), [tuple(skip.shape[-2:]) for skip in skips]
        ((1, 4, 2, 1), [(64, 32), (32, 16), (16, 8), (8, 4), (4, 2)])
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = ENCODER_WIDTHS):
        super().__init__()
        self.stem = conv_relu(in_channels, widths[0])
        previous = widths[0]
        self.levels = nn.ModuleList()
        for channels in widths:
            self.levels.append(nn.Sequential(conv_relu(previous, channels), conv_relu(channels, channels)))
            previous = channels
        self.bottleneck = nn.Sequential(conv_relu(previous, previous), conv_relu(previous, previous))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Encode ``x``.

        Args:
            x: input whose height and width are multiples of 32.

        Returns:
            ``(bottleneck, skips)``, as the class docstring's Shape says.
        """
        out = self.stem(x)
        skips = []
        for level in self.levels:
            out = level(out)
            skips.append(out)
            out = F.max_pool2d(out, 2)
        return self.bottleneck(out), skips


class UpBlock(nn.Module):
    """Bilinear x2 (``upsampling`` convention), conv3x3, concatenation with a skip, two conv3x3 (all with ReLU).

    Args:
        in_channels: channels of the maps to upsample.
        skip_channels: channels of the skip.
        out_channels: channels of every conv.
        upsampling: x2 upsampling convention of :func:`upsample2x`.

    Shape:
        forward(x, skip): x (B, in_channels, H, W), skip (B, skip_channels, 2H, 2W) or (B, skip_channels, 1, 1)
        -> (B, out_channels, 2H, 2W).

    Example:
        >>> UpBlock(4, 2, 3)(torch.zeros(1, 4, 5, 6), torch.zeros(1, 2, 1, 1)).shape
        torch.Size([1, 3, 10, 12])
    """

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, upsampling: str = 'half_pixel'):
        super().__init__()
        self.upsampling = check_upsampling(upsampling)
        self.up_conv = conv_relu(in_channels, out_channels)
        self.fuse = nn.Sequential(conv_relu(out_channels + skip_channels, out_channels),
                                  conv_relu(out_channels, out_channels))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x``, fuse it with ``skip``.

        Args:
            x: the coarser maps.
            skip: maps at twice their size, or a global average (B, C, 1, 1), tiled to that size.

        Returns:
            The fused maps at twice the size of ``x``.
        """
        x = self.up_conv(upsample2x(x, self.upsampling))
        if skip.shape[-2:] != x.shape[-2:]:  # a global average (B, C, 1, 1), tiled as in the release
            skip = skip.expand(-1, -1, *x.shape[-2:])
        return self.fuse(torch.cat([x, skip], dim=1))


class CoefficientDecoder(nn.Module):
    """Full-resolution decoder: five up blocks, two conv3x3 and a linear conv3x3.

    Args:
        encoder_widths (sequence of int): the encoder's level widths (skip channels).
        out_channels (int): output channels (no activation).
        widths (sequence of int): channels of the five up blocks.
        end_width (int): channels of the two convs before the output conv.
        upsampling (str): x2 upsampling convention of :func:`upsample2x`.

    Shape:
        forward(bottleneck, skips): the encoder's outputs -> (B, out_channels, H, W).

    Example:
        >>> widths = (2, 2, 2, 2, 4)
        >>> decoder = CoefficientDecoder(widths, 7, widths=(2, 2, 2, 2, 2), end_width=2)
        >>> decoder(*Encoder(12, widths)(torch.zeros(1, 12, 32, 64))).shape
        torch.Size([1, 7, 32, 64])
    """

    def __init__(self, encoder_widths: Sequence[int], out_channels: int,
                 widths: Sequence[int] = COEFFICIENT_DECODER_WIDTHS, end_width: int = COEFFICIENT_END_WIDTH,
                 upsampling: str = 'half_pixel'):
        super().__init__()
        self.up_blocks = nn.ModuleList()
        previous = encoder_widths[-1]
        for channels, skip_channels in zip(widths, reversed(encoder_widths)):
            self.up_blocks.append(UpBlock(previous, skip_channels, channels, upsampling))
            previous = channels
        self.end = nn.Sequential(conv_relu(previous, end_width), conv_relu(end_width, end_width))
        self.output = conv3x3(end_width, out_channels)

    def forward(self, bottleneck: torch.Tensor, skips: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode the encoder's outputs to the full-resolution map.

        Args:
            bottleneck: the encoder's bottleneck.
            skips: the encoder's skips, finest first.

        Returns:
            (B, out_channels, H, W) at the finest skip's size.
        """
        out = bottleneck
        for block, skip in zip(self.up_blocks, reversed(skips)):
            out = block(out, skip)
        return self.output(self.end(out))


def basis_feature_list(bottleneck: torch.Tensor, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The encoder maps whose global averages the basis decoder reads: bottleneck, then level 5, 4, 3, 2 skips.

    Args:
        bottleneck: the encoder's bottleneck.
        skips: the encoder's five skips, finest first.

    Returns:
        ``[bottleneck, skips[4], skips[3], skips[2], skips[1]]``.

    Example:
        >>> skips = [torch.zeros(1, 2, 2 ** k, 2 ** k) for k in range(5, 0, -1)]
        >>> [tuple(m.shape[-2:]) for m in basis_feature_list(torch.zeros(1, 4, 1, 1), skips)]
        [(1, 1), (2, 2), (4, 4), (8, 8), (16, 16)]
    """
    return [bottleneck] + [skips[level] for level in (4, 3, 2, 1)]


def global_average_features(bottleneck: torch.Tensor, skips: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The global averages the basis decoder reads (:func:`basis_feature_list`, each averaged).

    Args:
        bottleneck: the encoder's bottleneck.
        skips: the encoder's five skips, finest first.

    Returns:
        Five tensors of shape (B, C_i).

    Example:
        >>> pooled = global_average_features(torch.ones(2, 4, 1, 1), [torch.ones(2, 3, 8, 8)] * 5)
        >>> [tuple(p.shape) for p in pooled]
        [(2, 4), (2, 3), (2, 3), (2, 3), (2, 3)]
    """
    return [feature.mean(dim=(-2, -1)) for feature in basis_feature_list(bottleneck, skips)]


class BasisDecoder(nn.Module):
    """Predicts a per-image basis of K x K maps from globally averaged encoder features.

    For K = 15 this is the released network exactly. Other K (small test configurations) resize
    the 16x16 map to (K+1)x(K+1) before the 2x2 valid conv: our choice, so that K can vary
    without changing the number of layers.

    Args:
        encoder_widths (sequence of int): the encoder's level widths.
        out_channels (int): maps per basis (e.g. 6 * J for DeepFnF); the layout is the caller's.
        kernel_size (int): K, the spatial size of the output maps.
        widths (sequence of int): channels of the four up blocks.
        end_width (int): channels of the 2x2 conv and of the conv3x3 after it.
        upsampling (str): x2 upsampling convention of :func:`upsample2x`.

    Shape:
        forward(pooled): :func:`global_average_features` output -> (B, out_channels, K, K).

    Example:
        >>> decoder = BasisDecoder((2, 2, 2, 2, 4), 6, 5, widths=(2, 2, 2, 2), end_width=2)
        >>> decoder([torch.zeros(1, 4), torch.zeros(1, 4)] + [torch.zeros(1, 2)] * 3).shape
        torch.Size([1, 6, 5, 5])
    """

    def __init__(self, encoder_widths: Sequence[int], out_channels: int, kernel_size: int,
                 widths: Sequence[int] = BASIS_DECODER_WIDTHS, end_width: int = BASIS_END_WIDTH,
                 upsampling: str = 'half_pixel'):
        super().__init__()
        self.kernel_size = kernel_size
        skip_widths = [encoder_widths[level] for level in (4, 3, 2, 1)]
        self.up_blocks = nn.ModuleList()
        previous = encoder_widths[-1]
        for channels, skip_channels in zip(widths, skip_widths):
            self.up_blocks.append(UpBlock(previous, skip_channels, channels, upsampling))
            previous = channels
        self.end = nn.Sequential(conv_relu(previous, end_width, kernel_size=2), conv_relu(end_width, end_width))
        self.output = conv3x3(end_width, out_channels)

    def forward(self, pooled: Sequence[torch.Tensor]) -> torch.Tensor:
        """Decode the basis maps from the global averages.

        Args:
            pooled: five (B, C_i) averages in :func:`basis_feature_list` order.

        Returns:
            (B, out_channels, K, K) maps.
        """
        bottleneck, *skips = pooled
        out = bottleneck[..., None, None]
        for block, skip in zip(self.up_blocks, skips):
            out = block(out, skip[..., None, None])
        if out.shape[-1] != self.kernel_size + 1:
            size = (self.kernel_size + 1,) * 2
            out = F.interpolate(out, size=size, mode='bilinear', align_corners=False)
        return self.output(self.end(out))


class PaddedUNet(nn.Module):
    """Encoder + coefficient decoder on any input size; the base of all four networks.

    Args:
        in_channels (int): channels of the network input ``lq``.
        out_channels (int): channels of the full-resolution output map.
        width (float): multiplier on every channel count.
        upsampling (str): x2 upsampling convention of the decoders (:func:`upsample2x`).
        input_normalization (str): ``'none'`` (the released code) or ``'frame_mean'``: the encoder
            sees each frame and its noise-std map divided by the frame's mean
            (:mod:`fnf_basicsr.archs.input_normalization`).

    Example:
        >>> net = PaddedUNet(12, 5, width=0.0625)
        >>> net.decode(*net.encode(torch.zeros(1, 12, 20, 40)), (20, 40)).shape
        torch.Size([1, 5, 20, 40])
    """

    def __init__(self, in_channels: int, out_channels: int, width: float = 1.0, upsampling: str = 'half_pixel',
                 input_normalization: str = 'none'):
        super().__init__()
        self.in_channels = in_channels
        self.input_normalization = check_input_normalization(input_normalization)
        if input_normalization != 'none':
            # Weights trained on normalised inputs compute something else on raw ones, and no
            # weight shape tells: this entry makes strict loading across the two fail by name.
            self.register_buffer(NORMALIZATION_MARKER, torch.ones(()))
        self.upsampling = check_upsampling(upsampling)
        self.encoder_widths = [scaled(c, width) for c in ENCODER_WIDTHS]
        self.encoder = Encoder(in_channels, self.encoder_widths)
        self.coefficient_decoder = CoefficientDecoder(
            self.encoder_widths, out_channels, [scaled(c, width) for c in COEFFICIENT_DECODER_WIDTHS],
            scaled(COEFFICIENT_END_WIDTH, width), upsampling)

    def encode(self, x: torch.Tensor,
               frame_means: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Check ``x``, normalise it if asked, pad it to a multiple of 32 and encode it: (bottleneck, skips).

        Args:
            x: network input (B, in_channels, H, W), any H and W.
            frame_means: (B, frames), what ``input_normalization: frame_mean`` divides by, default
                the means of ``x`` (:mod:`fnf_basicsr.archs.input_normalization`).

        Returns:
            The :class:`Encoder`'s ``(bottleneck, skips)`` of the padded input.

        Raises:
            ValueError: ``x`` is not (B, in_channels, H, W).
        """
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f'{type(self).__name__} expects lq of shape (B, {self.in_channels}, H, W) '
                             f'(see in_channels in the network options), got {tuple(x.shape)}.')
        if self.input_normalization == 'frame_mean':
            x = normalize_frames(x, frame_means)
        return self.encoder(pad_to_multiple(x))

    def decode(self, bottleneck: torch.Tensor, skips: Sequence[torch.Tensor],
               size: Sequence[int]) -> torch.Tensor:
        """Full-resolution output map for the encoded input, cropped back to ``size`` (H, W).

        Args:
            bottleneck: from :meth:`encode`.
            skips: from :meth:`encode`.
            size: (H, W) of the input before padding.

        Returns:
            (B, out_channels, H, W).
        """
        return self.coefficient_decoder(bottleneck, skips)[..., :size[0], :size[1]]


class PaddedBasisUNet(PaddedUNet):
    """:class:`PaddedUNet` plus a :class:`BasisDecoder`: the basis-prediction networks.

    Args:
        in_channels (int): channels of the network input.
        coefficient_channels (int): channels of the full-resolution map.
        basis_channels (int): K x K maps predicted per image.
        kernel_size (int): K.
        width (float): multiplier on every channel count.
        upsampling (str): x2 upsampling convention of both decoders (:func:`upsample2x`).
        input_normalization (str): as for :class:`PaddedUNet`.

    Example:
        >>> net = PaddedBasisUNet(12, 5, 6, 3, width=0.0625)
        >>> net.basis_decoder(net.pooled_features(torch.zeros(1, 12, 20, 40))).shape
        torch.Size([1, 6, 3, 3])
    """

    def __init__(self, in_channels: int, coefficient_channels: int, basis_channels: int, kernel_size: int,
                 width: float = 1.0, upsampling: str = 'half_pixel', input_normalization: str = 'none'):
        super().__init__(in_channels, coefficient_channels, width, upsampling, input_normalization)
        self.basis_decoder = BasisDecoder(
            self.encoder_widths, basis_channels, kernel_size, [scaled(c, width) for c in BASIS_DECODER_WIDTHS],
            scaled(BASIS_END_WIDTH, width), upsampling)

    def basis_feature_maps(self, x: torch.Tensor, frame_means: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The encoder maps of ``x`` whose global averages the basis decoder reads (padded input resolution / 2^k).

        Tiled inference sums them over the tiles, weighted by each tile's blending window, and decodes the
        image's basis from the averages with :meth:`basis_from_pooled` (:mod:`fnf_basicsr.inference.tiling`).

        Args:
            x: network input (B, in_channels, H, W), any size.
            frame_means: as for :meth:`encode`.

        Returns:
            Bottleneck, level-5, 4, 3, 2 skips, each (B, C_i, H_i, W_i).

        Example:
            >>> net = PaddedBasisUNet(12, 5, 6, 3, width=0.0625)
            >>> [tuple(m.shape[-2:]) for m in net.basis_feature_maps(torch.zeros(1, 12, 20, 40))]
            [(1, 2), (2, 4), (4, 8), (8, 16), (16, 32)]
        """
        return basis_feature_list(*self.encode(x, frame_means))

    def pooled_features(self, x: torch.Tensor, frame_means: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Global averages of the encoder features of ``x`` that the basis decoder reads.

        For tiled inference: average these over the tiles of an image (weighted by each tile's
        area) and call ``basis_from_pooled`` on the result to get the image's basis.

        Args:
            x: network input (B, in_channels, H, W), any size.
            frame_means: as for :meth:`encode`.

        Returns:
            Bottleneck, level-5, 4, 3, 2 skip averages, each (B, C_i).

        Example:
            >>> net = PaddedBasisUNet(12, 5, 6, 3, width=0.0625)
            >>> [tuple(p.shape) for p in net.pooled_features(torch.zeros(2, 12, 20, 40))]
            [(2, 64), (2, 64), (2, 32), (2, 16), (2, 8)]
        """
        return global_average_features(*self.encode(x, frame_means))
