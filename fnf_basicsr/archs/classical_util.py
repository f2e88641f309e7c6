"""Shared pieces of the classical (non-learned) references: input checks, variance stabilisation,
bilateral-grid filtering.

The inputs of this project are linear and very noisy, with heteroscedastic noise of variance
``sig_read^2 + sig_shot^2 * max(0, x)`` (:mod:`fnf_basicsr.data.noise`). Classical filters assume
noise of one known level, so the references work in the domain of a variance-stabilising
transform (a generalised Anscombe transform for this noise model) where the noise has unit std
everywhere, and every threshold is stated in units of that std: no parameter depends on the
brightness of one image.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from fnf_basicsr.data.input_layout import (FLASH_FRAME, NOFLASH_FRAME, frame_count, image_channels, input_channels,
                                           std_channels)
from fnf_basicsr.data.noise import variance_from_terms

# The bilateral grid has at most this many cells along the range axis; a guide spanning more range
# sigmas (a nearly noise-free image has a huge range in noise stds) gets a proportionally larger
# range sigma, which bounds the memory at about 64 * (H / sigma_space) * (W / sigma_space) cells.
MAX_RANGE_CELLS = 64

# Where the flash/no-flash input `lq` holds each image and its std map.
FNF_FRAMES = frame_count('flash_noflash')
FNF_CHANNELS = input_channels('flash_noflash')
NO_FLASH, FLASH = image_channels(NOFLASH_FRAME), image_channels(FLASH_FRAME)
NO_FLASH_STD, FLASH_STD = std_channels(NOFLASH_FRAME, FNF_FRAMES), std_channels(FLASH_FRAME, FNF_FRAMES)


def check_fnf_input(lq: torch.Tensor, owner: str) -> None:
    """Raise a ValueError unless ``lq`` is a (B, 12, H, W) flash/no-flash input.

    Args:
        lq: the network input.
        owner: name of the calling class, quoted in the message.

    Raises:
        ValueError: ``lq`` is not 4-D with 12 channels.

    Example:
        >>> check_fnf_input(torch.zeros(1, 12, 4, 4), 'Mine')
        >>> try:
        ...     check_fnf_input(torch.zeros(1, 6, 4, 4), 'Mine')
        ... except ValueError as error:
        ...     print(str(error)[:48])
        Mine expects the 12-channel flash/no-flash input
    """
    if lq.dim() != 4 or lq.shape[1] != FNF_CHANNELS:
        raise ValueError(
            f'{owner} expects the 12-channel flash/no-flash input (B, 12, H, W): noisy no-flash 0:3, '
            f'noisy flash 3:6, their noise std maps 6:9 and 9:12; got shape {tuple(lq.shape)}. '
            'Use a dataset in flash/no-flash mode (12 channels), not the no-flash-only or burst modes.')


def fit_noise_model(noisy: torch.Tensor, std: torch.Tensor) -> tuple[float, float]:
    """Recover the noise parameters of one image from its noise-std map.

    The std channels are ``sqrt(sig_read^2 + sig_shot^2 * max(0, noisy))`` (:func:`fnf_basicsr.data.noise.noise_std`),
    so a least-squares line of ``std^2`` against ``max(0, noisy)`` returns both parameters exactly.
    An image with no spread of intensities (e.g. constant) cannot separate them; then all the
    variance is attributed to the read term.

    Args:
        noisy: (C, H, W) noisy linear image.
        std: (C, H, W) its noise std map.

    Returns:
        (read_var, shot_var): floats, ``sig_read^2`` (> 0) and ``sig_shot^2`` (>= 0).

    Shape:
        - noisy, std: (C, H, W).

    Example:
        >>> noisy = torch.linspace(0, 1, 48).reshape(3, 4, 4)
        >>> read_var, shot_var = fit_noise_model(noisy, torch.sqrt(1e-4 + 4e-4 * noisy))
        >>> round(read_var, 6), round(shot_var, 6)
        (0.0001, 0.0004)
    """
    x = noisy.detach().clamp(min=0).flatten().double()
    v = std.detach().flatten().double() ** 2
    x_spread = x - x.mean()
    denom = (x_spread ** 2).sum()
    shot_var = ((x_spread * (v - v.mean())).sum() / denom).clamp(min=0) if denom > 0 else x.new_zeros(())
    read_var = (v.mean() - shot_var * x.mean()).clamp(min=torch.finfo(torch.float32).tiny)
    return read_var.item(), shot_var.item()


def stabilize_variance(x: torch.Tensor, read_var: float, shot_var: float) -> torch.Tensor:
    """Generalised Anscombe transform: maps the noise of ``x`` to unit std everywhere.

    Its derivative is ``1 / std(x)`` with ``std(x)^2 = read_var + shot_var * max(0, x)``: above
    zero ``2 / shot_var * (sqrt(shot_var * x + read_var) - sqrt(read_var))``, written in a form
    that stays finite when ``shot_var`` is 0; below zero linear with slope ``1 / sqrt(read_var)``.
    The transform maps 0 to 0 and is inverted exactly by :func:`unstabilize_variance`.

    Args:
        x: linear intensities.
        read_var: ``sig_read^2`` (> 0).
        shot_var: ``sig_shot^2`` (>= 0).

    Returns:
        The transformed values, elementwise.

    Shape:
        - x: any shape.
        - output: the shape of ``x``.

    Example:
        >>> stabilize_variance(torch.tensor([-0.01, 0.0, 0.01]), 1e-4, 0.0)
        tensor([-1.,  0.,  1.])
    """
    sqrt_read = math.sqrt(read_var)
    positive, negative = x.clamp(min=0), x.clamp(max=0)
    std = torch.sqrt(variance_from_terms(positive, read_var, shot_var))
    return 2 * positive / (std + sqrt_read) + negative / sqrt_read


def unstabilize_variance(z: torch.Tensor, read_var: float, shot_var: float) -> torch.Tensor:
    """Algebraic inverse of :func:`stabilize_variance`.

    Averaging in the stabilised domain and inverting underestimates by ``shot_var / 4`` to first
    order (the transform is concave). A denoiser is not a pure average, and adding that back did
    not help the non-local means reference on our scenes (docs/evaluation.md, "Moved from
    docstrings"), so the plain inverse is kept.

    Args:
        z: values in the stabilised domain.
        read_var: ``sig_read^2`` (> 0), as given to :func:`stabilize_variance`.
        shot_var: ``sig_shot^2`` (>= 0), as given to :func:`stabilize_variance`.

    Returns:
        The linear intensities, elementwise.

    Shape:
        - z: any shape.
        - output: the shape of ``z``.

    Example:
        >>> x = torch.tensor([-0.01, 0.0, 0.2, 0.9])
        >>> torch.allclose(unstabilize_variance(stabilize_variance(x, 1e-4, 4e-4), 1e-4, 4e-4), x, atol=1e-6)
        True
    """
    return z * math.sqrt(read_var) + shot_var * z.clamp(min=0) ** 2 / 4


def stabilized_pair(image: torch.Tensor, std: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
    """The image in the stabilised domain plus the fitted (read_var, shot_var) to invert it.

    Args:
        image: (C, H, W) noisy linear image.
        std: (C, H, W) its noise std map.

    Returns:
        ``(stabilize_variance(image, read_var, shot_var), (read_var, shot_var))`` with the parameters
        of :func:`fit_noise_model`.

    Example:
        >>> image = torch.full((3, 4, 4), 0.04)
        >>> stabilized, (read_var, shot_var) = stabilized_pair(image, torch.full((3, 4, 4), 0.01))
        >>> round(stabilized[0, 0, 0].item(), 3), round(read_var, 6), shot_var
        (4.0, 0.0001, 0.0)
    """
    read_var, shot_var = fit_noise_model(image, std)
    return stabilize_variance(image, read_var, shot_var), (read_var, shot_var)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur with reflect padding, truncated at 3 sigma.

    Args:
        x: (N, C, H, W) tensor.
        sigma: std in pixels; values below 0.3 return ``x`` unchanged.

    Returns:
        The blurred tensor (``x`` itself for a tiny ``sigma``).

    Shape:
        - x: (N, C, H, W).
        - output: (N, C, H, W).

    Example:
        >>> impulse = torch.zeros(1, 1, 9, 9)
        >>> impulse[0, 0, 4, 4] = 1.0
        >>> blurred = gaussian_blur(impulse, 1.0)
        >>> round(blurred.sum().item(), 4), blurred.argmax().item()
        (1.0, 40)
    """
    if sigma < 0.3:
        return x
    radius = max(1, min(math.ceil(3 * sigma), min(x.shape[-2:]) - 1))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode='reflect')
    x = F.conv2d(x, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(x, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def bilateral_grid_filter(values: torch.Tensor, guide: torch.Tensor, sigma_space: float,
                          sigma_range: float) -> torch.Tensor:
    """Joint bilateral filter of ``values`` with edges from ``guide``, on a bilateral grid.

    The bilateral grid (Chen, Paris, Durand, SIGGRAPH 2007): pixels are splatted with trilinear
    weights into a coarse (range, y, x) grid with one cell per ``sigma_space`` pixels and per
    ``sigma_range`` guide units, the grid is blurred with a [1, 4, 6, 4, 1] / 16 kernel along its
    three axes, and the result is read back at every pixel by trilinear interpolation and
    normalised by the splatted weights. The effective kernel is close to a Gaussian of std
    1.15 ``sigma_space`` pixels and 1.15 ``sigma_range`` guide units (the trilinear splat and read
    add a variance of 1/3 cell^2 to the blur's 1). Cost O(H * W) whatever the sigmas. A
    guide spanning more than :data:`MAX_RANGE_CELLS` range sigmas is filtered with a range sigma of
    span / MAX_RANGE_CELLS, which bounds the memory.
    With ``guide`` equal to one channel of ``values`` this is the ordinary bilateral filter.

    Args:
        values: (C, H, W) image to smooth (any domain; it is only averaged).
        guide: (H, W) edge image; differences in it are compared with ``sigma_range``.
        sigma_space: spatial std in pixels (>= 1).
        sigma_range: range std in guide units (> 0).

    Returns:
        The filtered image.

    Raises:
        ValueError: mismatched shapes, ``sigma_space < 1`` or ``sigma_range <= 0``.

    Shape:
        - values: (C, H, W).
        - guide: (H, W).
        - output: (C, H, W), like ``values``.

    The splat uses ``index_add_``, which is deterministic on CPU only.

    Example:
        >>> guide = torch.zeros(16, 16)
        >>> guide[:, 8:] = 100.0  # an edge many range sigmas high
        >>> values = guide[None] / 100
        >>> smoothed = bilateral_grid_filter(values, guide, 2.0, 1.0)
        >>> round(smoothed[0, 4, 7].item(), 3), round(smoothed[0, 4, 8].item(), 3)
        (0.0, 1.0)
    """
    if values.dim() != 3 or guide.shape != values.shape[1:]:
        raise ValueError(f'bilateral_grid_filter expects values (C, H, W) and guide (H, W) of the same size, '
                         f'got {tuple(values.shape)} and {tuple(guide.shape)}')
    if sigma_space < 1 or sigma_range <= 0:
        raise ValueError(f'bilateral_grid_filter needs sigma_space >= 1 px and sigma_range > 0, '
                         f'got {sigma_space} and {sigma_range}')
    channels, height, width = values.shape
    sigma_range = max(sigma_range, (guide.max() - guide.min()).item() / MAX_RANGE_CELLS)
    pad = 2  # cells on each side, so that the blur never reaches the border of the grid
    ys = torch.arange(height, dtype=values.dtype, device=values.device) / sigma_space + pad
    xs = torch.arange(width, dtype=values.dtype, device=values.device) / sigma_space + pad
    rs = (guide - guide.min()) / sigma_range + pad
    coords = torch.stack(torch.broadcast_tensors(rs, ys[:, None], xs[None, :])).reshape(3, -1)
    dims = [int(coords[axis].max().floor().item()) + 2 + pad for axis in range(3)]

    homogeneous = torch.cat([values, torch.ones_like(values[:1])]).reshape(channels + 1, -1)
    grid = _splat(homogeneous, coords, dims)
    grid = _blur_grid(grid)
    sliced = _slice(grid, coords, dims).reshape(channels + 1, height, width)
    return sliced[:channels] / sliced[channels:].clamp(min=1e-12)


def _splat(homogeneous, coords, dims):
    """Accumulate (C+1, N) samples into a (C+1, D, Hg, Wg) grid with trilinear weights."""
    base = coords.floor()
    upper_weight = coords - base  # per axis: weight of the upper neighbour cell
    base = base.long()
    flat_base = (base[0] * dims[1] + base[1]) * dims[2] + base[2]
    strides = (dims[1] * dims[2], dims[2], 1)
    grid = homogeneous.new_zeros(homogeneous.shape[0], dims[0] * dims[1] * dims[2])
    for corner in range(8):
        upper = [(corner >> axis) & 1 for axis in range(3)]
        weight = math.prod(upper_weight[axis] if upper[axis] else 1 - upper_weight[axis] for axis in range(3))
        shift = sum(stride for stride, up in zip(strides, upper) if up)
        grid.index_add_(1, flat_base + shift, homogeneous * weight)
    return grid.reshape(-1, *dims)


def _blur_grid(grid):
    """Blur a (C+1, D, Hg, Wg) grid with [1, 4, 6, 4, 1] / 16 along each of its three axes.

    Written as shifted sums: on CPU this is far faster than conv3d with a 1-D kernel. The grid's
    border cells are empty, so zero padding changes nothing.
    """
    for axis in (1, 2, 3):
        size = grid.shape[axis]
        padding = [0] * 6
        padding[2 * (3 - axis)] = padding[2 * (3 - axis) + 1] = 2
        padded = F.pad(grid, padding)
        taps = [padded.narrow(axis, shift, size) for shift in range(5)]
        grid = (taps[0] + taps[4] + 4 * (taps[1] + taps[3]) + 6 * taps[2]) / 16
    return grid


def _slice(grid, coords, dims):
    """Trilinear read of a (C+1, D, Hg, Wg) grid at the (3, N) grid coordinates."""
    # grid_sample wants (x, y, r) normalised to [-1, 1] with align_corners=True.
    scale = torch.tensor([dims[2] - 1, dims[1] - 1, dims[0] - 1], dtype=coords.dtype, device=coords.device)
    normalised = coords.flip(0).T / scale * 2 - 1
    sampled = F.grid_sample(grid.unsqueeze(0), normalised.view(1, 1, 1, -1, 3), mode='bilinear',
                            padding_mode='border', align_corners=True)
    return sampled.view(grid.shape[0], -1)
