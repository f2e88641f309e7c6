"""Tiled inference: full-resolution images through a network in bounded memory.

The image is cut into overlapping square tiles; each tile's output is weighted by a window that
is 1 in its interior and falls to 0 across the overlap with a raised cosine (``sin^2``), so the
windows of neighbouring tiles sum to 1 and seams vanish. Tiles form a product grid, so the
windows are separable and normalised per axis: every pixel's weights sum to exactly 1 and no
full-size weight map is held.

Networks that predict a per-image kernel basis from global averages of their encoder features
(DeepFnF, BPN: they declare ``global_basis_statistics``, :mod:`fnf_basicsr.archs.capabilities`)
need whole-image statistics, or each tile would filter with its own basis. A first pass over the
tiles accumulates every encoder map the basis decoder averages, weighted by the tile's blending
window pooled to the map's resolution, so each image position counts once and mostly through the
tile that sees it far from a tile border; the basis decoded from these averages is passed to
every tile in the second pass. Tile starts are multiples of 32, the networks' pooling grid, so a
tile computes the same features as the whole image away from its border. Networks without global
statistics (KPN, the direct U-Net, any network that declares nothing) are tiled in one pass; an
image that fits in one tile is processed whole.

Default sizes: 512 px tiles overlapping by at least 64 px. Near a tile edge the output is wrong
in two ways: DeepFnF's low-pass kernels reach 28 px ((15 - 1) * 4 / 2) into reflected content,
and the coefficients, computed through five pooling levels with zero-padded convolutions, are
disturbed over a range that grows with the level. Inside a 64 px overlap a pixel d px from one
tile's edge gets weight sin^2(pi (d + 0.5) / 128) from that tile, at most 0.39 where its kernels
read reflected content (d < 28), 0.04 at d = 8, and the rest from the other tile, which sees it
63 - d px from its own edge. ``tests/inference/test_tiling.py`` compares tiled with whole-image
inference (the figures: docs/denoising.md, "Moved from docstrings"). 512 is a multiple of the
32 px pooling grid (no padding inside tiles); the memory the whole command needs with it is
measured by ``scripts/profiling/profile_tiling.py`` (docs/speed.md, "Moved from docstrings").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from tqdm import tqdm

from fnf_basicsr.archs.capabilities import capability
from fnf_basicsr.archs.contracts import estimate_from_output
from fnf_basicsr.archs.fnf_blocks import SIZE_MULTIPLE
from fnf_basicsr.archs.input_normalization import MIN_FRAME_MEAN
from fnf_basicsr.data.input_layout import COLOR_CHANNELS, frames_in, image_channels

DEFAULT_TILE = 512
DEFAULT_OVERLAP = 64  # the least overlap; networks whose kernels reach further get more (default_overlap)


@dataclass(frozen=True)
class Tile:
    """A tile's position in the image: rows ``top:top + height``, columns ``left:left + width``.

    Attributes:
        top: first row.
        left: first column.
        height: rows.
        width: columns.

    Example:
        >>> tile = Tile(32, 64, 16, 8)
        >>> tile.rows, tile.cols
        (slice(32, 48, None), slice(64, 72, None))
    """
    top: int
    left: int
    height: int
    width: int

    @property
    def rows(self) -> slice:
        """The tile's rows, ``top:top + height``."""
        return slice(self.top, self.top + self.height)

    @property
    def cols(self) -> slice:
        """The tile's columns, ``left:left + width``."""
        return slice(self.left, self.left + self.width)


def kernel_reach(net: torch.nn.Module) -> int:
    """Pixels a network's kernels read beyond the pixel they filter: ``(K - 1) / 2``, times the dilation d
    of DeepFnF's low-pass kernels (28 px for K = 15, d = 4); 0 for a network without kernels.

    Args:
        net: the network; its ``kernel_size``, ``upsample`` and ``use_lowpass`` attributes are read.

    Returns:
        The reach in pixels.

    Example:
        >>> from fnf_basicsr.archs.deepfnf_arch import DeepFnF
        >>> kernel_reach(DeepFnF(width=0.0625, num_basis=2)), kernel_reach(torch.nn.Identity())
        (28, 0)
    """
    size = getattr(net, 'kernel_size', None)
    if not isinstance(size, int):
        return 0
    dilation = getattr(net, 'upsample', 1) if getattr(net, 'use_lowpass', False) else 1
    return (size - 1) * dilation // 2


def default_overlap(net: torch.nn.Module, align: int = SIZE_MULTIPLE) -> int:
    """The tile overlap for ``net``: twice its kernel reach on the pooling grid, at least :data:`DEFAULT_OVERLAP`
    (so both tiles of an overlap see each pixel's whole kernel support from one side at least).

    Args:
        net: the network (:func:`kernel_reach`).
        align: the pooling grid the overlap is rounded up to.

    Returns:
        The overlap in pixels.

    Example:
        >>> from fnf_basicsr.archs.deepfnf_arch import DeepFnF
        >>> default_overlap(DeepFnF(width=0.0625, num_basis=2)), default_overlap(DeepFnF(width=0.0625, num_basis=2,
        ...                                                                                  kernel_size=31))
        (64, 128)
    """
    return max(DEFAULT_OVERLAP, math.ceil(2 * kernel_reach(net) / align) * align)


def tile_spans(length: int, tile: int, overlap: int, align: int = SIZE_MULTIPLE) -> list[tuple[int, int]]:
    """``(start, size)`` of the tiles covering ``[0, length)`` along one axis.

    Starts are multiples of ``align`` (the networks' pooling grid): a tile then pools exactly the
    pixel blocks the whole image pools, so away from its border it computes the same features.
    The last tile ends at the image border and is at most ``align - 1`` px shorter than ``tile``;
    the tiles between are spread evenly, as few as keep every overlap at least ``overlap``.

    Args:
        length: the image's size along the axis.
        tile: the tile size.
        overlap: the least overlap of neighbouring tiles.
        align: tile starts are multiples of it.

    Returns:
        ``(start, size)`` per tile, in order; ``[(0, length)]`` when one tile covers the axis.

    Example:
        >>> tile_spans(1000, 512, 64), tile_spans(300, 512, 64)
        ([(0, 512), (256, 512), (512, 488)], [(0, 300)])
    """
    if length <= tile:
        return [(0, length)]
    last = -(-(length - tile) // align) * align  # ceil to a multiple of align

    def spans(count):
        starts = sorted({round(index * last / (count - 1) / align) * align for index in range(count)})
        return [(start, min(tile, length - start)) for start in starts]

    count = 2
    while any(start + size - following < overlap
              for (start, size), (following, _) in zip(spans(count), spans(count)[1:])):
        count += 1
    return spans(count)


def axis_windows(length: int, tile: int, overlap: int,
                 align: int = SIZE_MULTIPLE) -> list[tuple[int, torch.Tensor]]:
    """Spans and normalised 1-D blending windows of the tiles along one axis.

    Args:
        length: the image's size along the axis.
        tile: the tile size.
        overlap: the least overlap of neighbouring tiles.
        align: tile starts are multiples of it.

    Returns:
        ``(start, window)`` per tile, the window a (size,) float64 tensor; the windows of all tiles sum
        to 1 at every position.

    Example:
        >>> windows = axis_windows(96, 64, 32)
        >>> total = torch.zeros(96, dtype=torch.float64)
        >>> for start, window in windows:
        ...     total[start:start + len(window)] += window
        >>> [start for start, _ in windows], bool(torch.allclose(total, torch.ones(96, dtype=torch.float64)))
        ([0, 32], True)
    """
    spans = tile_spans(length, tile, overlap, align)
    windows = []
    for index, (start, size) in enumerate(spans):
        window = torch.ones(size, dtype=torch.float64)
        if index > 0:  # ramp up across the overlap with the previous tile
            previous_start, previous_size = spans[index - 1]
            window[:previous_start + previous_size - start] *= _raised_cosine(previous_start + previous_size - start)
        if index + 1 < len(spans):  # ramp down across the overlap with the next tile
            shared = start + size - spans[index + 1][0]
            window[size - shared:] *= _raised_cosine(shared).flip(0)
        windows.append(window)
    total = torch.zeros(length, dtype=torch.float64)
    for (start, size), window in zip(spans, windows):
        total[start:start + size] += window
    return [(start, window / total[start:start + size]) for (start, size), window in zip(spans, windows)]


def _raised_cosine(length):
    """``sin^2`` ramp from ~0 to ~1 over ``length`` samples; it and its mirror image sum to 1."""
    position = (torch.arange(length, dtype=torch.float64) + 0.5) / length
    return torch.sin(position * math.pi / 2) ** 2


def plan_tiles(height: int, width: int, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP,
               align: int = SIZE_MULTIPLE) -> list[tuple[Tile, torch.Tensor, torch.Tensor]]:
    """The tiles of an image and their normalised separable windows.

    Args:
        height: image height.
        width: image width.
        tile: tile side, a multiple of ``align``.
        overlap: the least overlap of neighbouring tiles, ``0 .. tile - align``.
        align: tile starts are multiples of it.

    Returns:
        ``(Tile, row_window (h,), col_window (w,))`` in row-major order.

    Raises:
        ValueError: see :func:`check_tiling`.

    Example:
        >>> [tile for tile, _, _ in plan_tiles(600, 400)]
        [Tile(top=0, left=0, height=512, width=400), Tile(top=96, left=0, height=504, width=400)]
    """
    check_tiling(tile, overlap, align)
    rows, cols = axis_windows(height, tile, overlap, align), axis_windows(width, tile, overlap, align)
    return [(Tile(top, left, len(row_window), len(col_window)), row_window, col_window)
            for top, row_window in rows for left, col_window in cols]


def check_tiling(tile: int, overlap: int, align: int = SIZE_MULTIPLE) -> None:
    """Raise ValueError unless ``tile`` is a multiple of ``align`` and ``0 <= overlap <= tile - align``.

    Args:
        tile: tile side in pixels.
        overlap: the least overlap of neighbouring tiles in pixels.
        align: the networks' pooling grid.

    Raises:
        ValueError: the sizes cannot tile, with an example of good ones.

    Example:
        >>> check_tiling(512, 64)
        >>> try:
        ...     check_tiling(500, 64)
        ... except ValueError as error:
        ...     print(str(error)[:36])
        tiles must be a multiple of 32 px (t
    """
    if tile < align or tile % align or not 0 <= overlap <= tile - align:
        raise ValueError(f'tiles must be a multiple of {align} px (the networks pool 5 times) and overlap by '
                         f'0 .. tile - {align} px, got tile={tile}, overlap={overlap}; '
                         f'e.g. --tile {DEFAULT_TILE} --overlap {DEFAULT_OVERLAP}')


def crop_reader(lq: torch.Tensor) -> Callable[[Tile], torch.Tensor]:
    """``read_tile`` for :func:`denoise_tiled` from a full (1, C, H, W) input tensor.

    Args:
        lq: the whole network input.

    Returns:
        A function ``Tile -> (1, C, h, w)`` view of ``lq``.

    Example:
        >>> crop_reader(torch.zeros(1, 12, 100, 80))(Tile(32, 0, 64, 48)).shape
        torch.Size([1, 12, 64, 48])
    """
    return lambda tile: lq[..., tile.rows, tile.cols]


@torch.inference_mode()
def denoise_tiled(net: torch.nn.Module, read_tile: Callable[[Tile], torch.Tensor], height: int, width: int,
                  tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP, device: str | torch.device = 'cpu',
                  progress: bool = True) -> torch.Tensor:
    """Run ``net`` over an image tile by tile and blend the outputs.

    Args:
        net: the network (in eval mode), already on ``device``.
        read_tile: callable ``Tile -> Tensor (1, C, h, w)``, the network input of that tile (so
            the full-size input never has to exist), e.g. :func:`crop_reader`.
        height: image height.
        width: image width.
        tile: tile side in pixels.
        overlap: minimum overlap between neighbouring tiles, in pixels.
        device: where the network runs; outputs are gathered on the CPU.
        progress: show tqdm progress bars.

    Returns:
        The blended estimate, float32 on the CPU.

    Raises:
        ValueError: see :func:`check_tiling`.

    Shape:
        - read_tile(tile): (1, C, h, w).
        - output: (3, height, width).

    Example:
        >>> from fnf_basicsr.archs.deepfnf_arch import DeepFnF
        >>> net, lq = DeepFnF(width=0.0625, num_basis=4, kernel_size=5, upsample=2).eval(), torch.rand(1, 12, 96, 64)
        >>> tiled = denoise_tiled(net, crop_reader(lq), 96, 64, tile=64, overlap=32, progress=False)
        >>> tiled.shape, torch.allclose(tiled, denoise_whole(net, lq), atol=1e-3)
        (torch.Size([3, 96, 64]), True)
    """
    plan = plan_tiles(height, width, tile, overlap)
    device = torch.device(device)
    if len(plan) == 1:  # the image fits in one tile: whole-image inference, no statistics pass
        return denoise_whole(net, read_tile(plan[0][0]), device)
    normalization = {}
    if capability(net, 'input_normalization') != 'none':
        normalization['frame_means'] = _whole_image_frame_means(read_tile, plan, height * width, device, progress)
    global_statistics = capability(net, 'global_basis_statistics')
    basis = _global_basis(net, read_tile, plan, device, progress, normalization) if global_statistics else None
    output = torch.zeros(3, height, width, dtype=torch.float32)
    for region, row_window, col_window in tqdm(plan, desc='denoise tiles', unit='tile', disable=not progress):
        lq = read_tile(region).to(device)
        if basis is None:
            result = estimate_from_output(net(lq, **normalization))
        else:
            result = net(lq, basis=basis, **normalization)
        weight = (row_window[:, None] * col_window[None, :]).float()
        output[:, region.rows, region.cols] += result[0].float().cpu() * weight
    return output


def _whole_image_frame_means(read_tile, plan, pixels, device, progress):
    """:func:`fnf_basicsr.archs.input_normalization.frame_means` of the whole image, gathered over the tiles.

    The blending windows sum to one at every pixel, so window-weighted tile sums add up to the
    image's sums (before the clamp that ``frame_means`` applies).
    """
    total = None
    for region, row_window, col_window in tqdm(plan, desc='image brightness', unit='tile', disable=not progress):
        window = (row_window[:, None] * col_window[None, :]).double()
        tile = read_tile(region)
        frame_sums = torch.stack([(tile[:, image_channels(frame)].double() * window).sum(dim=(1, 2, 3))
                                  for frame in range(frames_in(tile.shape[1]))], dim=1)
        total = frame_sums if total is None else total + frame_sums
    means = total / (pixels * COLOR_CHANNELS)
    return means.float().clamp_min(MIN_FRAME_MEAN).to(device)


def _global_basis(net, read_tile, plan, device, progress, normalization):
    """The basis decoded from whole-image feature averages gathered over the tiles.

    Every feature map of a tile is weighted by the tile's blending window, average-pooled to the
    map's resolution, so that each image position counts once in total and mostly through the
    tile that sees it far from a tile border (plain per-tile averages let the border-affected
    features of every tile in, with a much larger error on the basis: docs/denoising.md, "Moved
    from docstrings").
    """
    sums = weights = None
    for region, row_window, col_window in tqdm(plan, desc='image statistics', unit='tile', disable=not progress):
        window = (row_window[:, None] * col_window[None, :]).to(device=device, dtype=torch.float32)
        tile_sums, tile_weights = _windowed_feature_sums(net, read_tile(region).to(device), window, normalization)
        sums = tile_sums if sums is None else [a + b for a, b in zip(sums, tile_sums)]
        weights = tile_weights if weights is None else [a + b for a, b in zip(weights, tile_weights)]
    dtype = next(net.parameters()).dtype
    return net.basis_from_pooled([(total / weight).to(dtype) for total, weight in zip(sums, weights)])


def _windowed_feature_sums(net, lq, window, normalization):
    """Window-weighted sums of the network's ``basis_feature_maps``, and the weight sums.

    The network pads its input to a multiple of its pooling grid; the window is padded with
    zeros, so padding never counts. Returns two lists (float64) in ``basis_feature_maps`` order.
    """
    maps = net.basis_feature_maps(lq, **normalization)
    align = capability(net, 'size_multiple') or SIZE_MULTIPLE
    padded_size = [math.ceil(side / align) * align for side in lq.shape[-2:]]
    padded = F.pad(window, (0, padded_size[1] - window.shape[-1], 0, padded_size[0] - window.shape[-2]))
    # Each map's window, pooled to its resolution and multiplied by its pixel count, so that the
    # means of the weighted maps are sums.
    scaled_windows = [F.avg_pool2d(padded[None, None], padded.shape[-1] // feature.shape[-1])[0, 0]
                      * feature[0, 0].numel() for feature in maps]
    sums = [(feature * window).mean(dim=(-2, -1)) for feature, window in zip(maps, scaled_windows)]
    weight_sums = [window.expand_as(feature[:, :1]).mean(dim=(-2, -1))
                   for feature, window in zip(maps, scaled_windows)]
    return [total.double() for total in sums], [total.double() for total in weight_sums]


@torch.inference_mode()
def denoise_whole(net: torch.nn.Module, lq: torch.Tensor, device: str | torch.device = 'cpu') -> torch.Tensor:
    """Reference whole-image inference: ``net(lq)`` in one call (memory grows with the image).

    Args:
        net: the network (in eval mode), already on ``device``.
        lq: (1, C, H, W) network input.
        device: where the network runs.

    Returns:
        The estimate, float32 on the CPU.

    Shape:
        - lq: (1, C, H, W).
        - output: (3, H, W).

    Example:
        >>> from fnf_basicsr.archs.kpn_arch import KPN
        >>> denoise_whole(KPN(width=0.0625, kernel_size=3).eval(), torch.rand(1, 12, 40, 30)).shape
        torch.Size([3, 40, 30])
    """
    return estimate_from_output(net(lq.to(torch.device(device))))[0].float().cpu()
