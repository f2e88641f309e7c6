"""Estimate read and shot noise from the photos themselves (the model of :mod:`fnf_basicsr.data.noise`).

A real capture rarely comes with calibrated noise parameters, but the network needs them for its
noise-std input channels. The no-flash image itself tells them: on flat regions the pixel values
vary only by noise, and the model says that the noise variance grows linearly with intensity,

    var = sig_read^2 + sig_shot^2 * mean.

The estimator

1. splits every color channel into 8x8 blocks and measures, per block, the mean intensity and
   the variance of a high-pass residual (a separable second difference, normalised so that white
   noise keeps its variance; constant and linearly shaded signal vanish from it); blocks with
   saturated pixels are dropped;
2. bins the blocks by intensity and keeps, in each bin, the quarter with the lowest gradient
   energy (3x3-smoothed): texture and edges would pass for noise;
3. takes each bin's median mean and residual variance, divides out the bias of the median and
   of the selection of step 2 (measured by simulation on pure white noise), and
   corrects bins near zero for clipping: sensors and files clip negative values, which shrinks
   both the mean and the variance of dark regions (censored-normal moments, inverted exactly);
   bins more than half clipped are dropped;
4. fits the line by non-negative least squares weighted by the expected precision (variance
   estimates scatter in proportion to the variance).

Several images with the same noise parameters can be pooled: a dark no-flash photo alone spans
too few intensities to separate shot from read noise, and the flash photo of the same exposure
settings adds the bright ones. The fit works in the images' units (linear intensities in
[0, 1]); channels share the parameters, as the model assumes.

The accuracy measured by ``tests/data/test_noise_estimation.py`` is stated in ``docs/noise_estimation.md``.

Processed pictures (8-bit sRGB, JPEG) need another measurement. Demosaicking interpolates two of
every pixel's three colors from neighbours and JPEG quantises away weak high frequencies, so the
noise left is spatially correlated and the pixel-scale residual above sees a small fraction of its
std (on simulated phone pictures, ``docs/noise_estimation.md``). With ``processed``
the same block statistics are taken on the image averaged over 2x2 pixels (where correlated noise
lives and texture is still weak) with 8x8 blocks of those, and each channel's variance is divided
by the ratio that the ISP of :mod:`fnf_basicsr.data.isp` (RGGB mosaic, bilinear demosaicking,
sRGB, JPEG quality :data:`ISP_CALIBRATION_QUALITY`) gives on a flat image of known noise. The
result is what the network's noise model needs: ``sig_read`` and ``sig_shot`` of the raw samples
BEFORE the ISP (per-pixel std ``sqrt(sig_read^2 + sig_shot^2 * x)`` of the linear image), in the
units of the linearised picture. ``processed=None`` (the default) decides by the data: an image
whose values are all 8-bit sRGB codes linearised (what ``fnf-denoise`` reads from an 8-bit
PNG/JPEG) is treated as processed, anything else (16-bit linear, DNG, float) as linear, with the
linear estimate unchanged.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import brentq, nnls
from scipy.stats import norm

from fnf_basicsr.data.noise import noise_params_from_terms

BLOCK_SIZE = 8
NUM_BINS = 12
# Fraction of the blocks of an intensity bin kept as flat (the lowest gradient energy).
FLAT_FRACTION = 0.25
MIN_BLOCKS_PER_BIN = 8
MIN_BINS = 3
# Pixels at or above this value are treated as saturated (white level of a [0, 1] image).
SATURATION_LEVEL = 0.999
# Clipping at zero: a bin is corrected when its mean lies less than UNCLIPPED_STDS noise stds above
# zero (beyond, less than 3e-7 of the values are clipped), and dropped when the underlying mean
# would be below MIN_CLIPPED_STDS stds (more than half the values clipped: too little left to fit).
UNCLIPPED_STDS = 5.0
MIN_CLIPPED_STDS = 0.0
# The flat noisy image on which the estimator's own bias is measured (see _selection_bias).
BIAS_SIMULATION_SIZE = 512
BIAS_SIMULATION_STD = 0.01
# Separable second difference [1, -2, 1] x [1, -2, 1] / 6: its squared taps sum to 1, so white noise
# keeps its variance, and it cancels constant and linearly varying signal.
_HIGH_PASS = np.array([1.0, -2.0, 1.0]) / np.sqrt(6.0)
# Processed (ISP) pictures: statistics on 2x2-pixel means, in blocks of 8x8 of them. Coarser scales
# see more of the correlated noise but also more texture (docs/noise_estimation.md); 2x2 means keep
# most of the std through JPEG, and the calibration divides out what they lose.
ISP_SCALE = 2
ISP_BLOCK_SIZE = 8
# The calibration image: flat at ISP_CALIBRATION_LEVEL with white raw noise of ISP_CALIBRATION_STD,
# put through the reference ISP with JPEG quality ISP_CALIBRATION_QUALITY (the middle of 70-95,
# where phone pictures lie; other qualities and lossless files then read somewhat high or low,
# docs/noise_estimation.md).
ISP_CALIBRATION_SIZE = 512
ISP_CALIBRATION_LEVEL = 0.3
ISP_CALIBRATION_STD = 0.03
ISP_CALIBRATION_QUALITY = 85
# An image is an 8-bit sRGB picture when at least this fraction of its values are linearised 8-bit
# codes (a 16-bit linear image hits one of the 256 codes by chance for about 1e-3 of its values).
SRGB_CODE_FRACTION = 0.99
SRGB_CODE_TOLERANCE = 1e-6
SRGB_CODE_SAMPLES = 2 ** 20


class NoiseEstimationError(ValueError):
    """The image has too few flat, unclipped regions to estimate its noise.

    Example:
        >>> try:
        ...     estimate_noise(torch.rand(3, 16, 16))  # too small and all texture
        ... except NoiseEstimationError as error:
        ...     print(str(error).split(';')[0])
        found only 0 intensity range(s) with >= 8 flat 8x8 blocks, mostly unclipped (need 3)
    """


@dataclass
class NoiseEstimate:
    """Estimated noise parameters and what the fit rests on.

    Attributes:
        sig_read: std of the signal-independent (read) noise.
        sig_shot: shot-noise scale (variance grows by ``sig_shot^2`` per unit intensity).
        num_blocks: flat blocks used by the fit.
        intensity_range: (lowest, highest) mean intensity of the bins fitted.
        processed: the images were treated as ISP-processed pictures (see :func:`estimate_noise`).

    Example:
        >>> print(NoiseEstimate(0.01, 0.05, 120, (0.05, 0.6)))
        sig_read=0.01 sig_shot=0.05 (from 120 flat blocks, intensities 0.05..0.6)
    """
    sig_read: float
    sig_shot: float
    num_blocks: int
    intensity_range: tuple[float, float]
    processed: bool = False

    def __str__(self) -> str:
        low, high = self.intensity_range
        model = '; 8-bit/JPEG picture: noise before the ISP' if self.processed else ''
        return (f'sig_read={self.sig_read:.4g} sig_shot={self.sig_shot:.4g} '
                f'(from {self.num_blocks} flat blocks, intensities {low:.3g}..{high:.3g}{model})')


def estimate_noise(*images: torch.Tensor | np.ndarray, block_size: int = BLOCK_SIZE, num_bins: int = NUM_BINS,
                   flat_fraction: float = FLAT_FRACTION, processed: bool | None = None) -> NoiseEstimate:
    """Estimate ``(sig_read, sig_shot)`` of the heteroscedastic noise model from noisy images.

    Args:
        images: one or more (H, W, 3) or (3, H, W) linear images (numpy or torch), intensities in
            [0, 1], with the same noise parameters (e.g. a no-flash and a flash photo taken with the
            same exposure settings: the flash photo's bright regions pin down the shot noise that
            a dark no-flash photo hardly shows). An (H, W, 3) array is recognised by its last axis.
        block_size: side of the square blocks statistics are computed on (linear images; processed
            ones use :data:`ISP_BLOCK_SIZE` blocks of 2x2-pixel means).
        num_bins: number of intensity bins (quantiles of the block means) for the fit.
        flat_fraction: fraction of each bin's blocks kept as flat.
        processed: True: the images went through a camera ISP (demosaicking, 8-bit sRGB, JPEG) and
            were linearised; the estimate is the noise before the ISP (see the module docstring).
            False: linear images with independent per-pixel noise (raw, DNG, 16-bit linear).
            None (default): processed when the first image's values are linearised 8-bit sRGB codes.

    Returns:
        The parameters and what the fit rests on.

    Raises:
        ValueError: no image, or one that is not 3-dimensional.
        NoiseEstimationError: fewer than ``MIN_BINS`` intensity bins with enough flat blocks
            (image too small, too textured or mostly clipped); pass the parameters explicitly.

    Shape:
        - images: each (H, W, 3) or (3, H, W); sizes may differ.

    Example:
        >>> from fnf_basicsr.data.noise import add_noise
        >>> ramp = torch.linspace(0.05, 0.6, 256).repeat(3, 256, 1)
        >>> estimate = estimate_noise(add_noise(ramp, 0.01, 0.05, torch.Generator().manual_seed(0)))
        >>> round(estimate.sig_read, 2), round(estimate.sig_shot, 2), estimate.processed
        (0.01, 0.05, False)
    """
    if not images:
        raise ValueError('estimate_noise needs at least one image')
    channels = [_as_channels(image) for image in images]
    if processed is None:
        processed = is_8bit_srgb(channels[0])
    if processed:
        gains = _isp_gains(flat_fraction)
        statistics = [_isp_block_statistics(image, gains) for image in channels]
        bias, size = 1.0, ISP_BLOCK_SIZE * ISP_SCALE
    else:
        statistics = [_block_statistics(image, block_size) for image in channels]
        bias, size = _selection_bias(block_size, flat_fraction), block_size
    means, variances, gradients = (np.concatenate(column) for column in zip(*statistics))
    usable = np.isfinite(variances)
    points, blocks = [], 0
    for mean, variance, count in _bin_statistics(means[usable], variances[usable], gradients[usable], num_bins,
                                                 flat_fraction):
        moments = _unclipped_moments(mean, variance / bias)
        if moments is not None:
            points.append(moments)
            blocks += count
    if len(points) < MIN_BINS:
        raise NoiseEstimationError(
            f'found only {len(points)} intensity range(s) with >= {MIN_BLOCKS_PER_BIN} flat {size}x{size} '
            f'blocks, mostly unclipped (need {MIN_BINS}); the image is too small, too textured, too dark or too '
            'saturated to estimate its noise: pass --sig-read and --sig-shot')
    bin_means, bin_variances = (np.array(column) for column in zip(*points))
    sig_read, sig_shot = _fit_line(bin_means, bin_variances)
    return NoiseEstimate(sig_read, sig_shot, blocks, (float(bin_means.min()), float(bin_means.max())), bool(processed))


def is_8bit_srgb(image: torch.Tensor | np.ndarray) -> bool:
    """Whether (nearly) all values of an image are 8-bit sRGB codes linearised as ``fnf-denoise`` reads them.

    Args:
        image: a linear image (numpy or torch), decided on a sample of its values.

    Returns:
        True when at least :data:`SRGB_CODE_FRACTION` of the values sampled are such codes.

    Shape:
        - image: (H, W, 3) or (3, H, W).

    Example:
        >>> from fnf_basicsr.data.isp import simulate_isp
        >>> x = torch.rand(3, 32, 32) * 0.5
        >>> is_8bit_srgb(x), is_8bit_srgb(simulate_isp(x, jpeg_quality=90))
        (False, True)
    """
    from fnf_basicsr.data.isp import srgb_8bit_levels
    values = _as_channels(image).flatten().numpy()
    values = values[::max(1, values.size // SRGB_CODE_SAMPLES)]  # a sample decides as well as all
    levels = srgb_8bit_levels()
    nearest = np.clip(np.searchsorted(levels, values), 1, len(levels) - 1)
    distance = np.minimum(np.abs(values - levels[nearest - 1]), np.abs(values - levels[nearest]))
    return bool(np.mean(distance <= SRGB_CODE_TOLERANCE) >= SRGB_CODE_FRACTION)


def _as_channels(image):
    """(3, H, W) float32 tensor from an HWC or CHW array (no copy when it already is one)."""
    tensor = torch.as_tensor(np.asarray(image) if not torch.is_tensor(image) else image, dtype=torch.float32)
    if tensor.dim() != 3:
        raise ValueError(f'estimate_noise expects one (H, W, 3) or (3, H, W) image, got shape {tuple(tensor.shape)}')
    if tensor.shape[-1] == 3 and tensor.shape[0] != 3:
        tensor = tensor.permute(2, 0, 1)
    return tensor


def _block_statistics(channels, block_size):
    """Per block and channel: mean, high-pass residual variance (NaN if saturated), gradient energy.

    Channels are processed one at a time, which bounds the memory a large photo needs (docs/speed.md).

    Returns three flat float64 arrays of equal length.
    """
    per_channel = [_channel_block_statistics(channel.contiguous()[None, None], block_size) for channel in channels]
    return tuple(np.concatenate(column) for column in zip(*per_channel))


def _channel_block_statistics(x, block_size):
    """:func:`_block_statistics` of one (1, 1, H, W) float32 channel."""
    taps = torch.as_tensor(_HIGH_PASS, dtype=x.dtype)
    border = len(_HIGH_PASS) // 2
    residual = F.conv2d(F.conv2d(x, taps.view(1, 1, 1, -1)), taps.view(1, 1, -1, 1))
    interior = x[..., border:-border, border:-border]  # the pixels the residual is centred on
    # Gradient test on a 3x3-box-smoothed image, so that the noise itself adds little energy.
    smooth = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    gradient = F.pad(smooth[..., :, 2:] - smooth[..., :, :-2], (1, 1, 0, 0)) ** 2
    gradient += F.pad(smooth[..., 2:, :] - smooth[..., :-2, :], (0, 0, 1, 1)) ** 2
    del smooth

    def pool(values):
        return F.avg_pool2d(values, block_size).double()

    mean = pool(interior)
    # The residual's mean is ~0 on flat blocks; its mean square is the noise variance.
    variance = pool(residual.square()) - pool(residual) ** 2
    variance[pool((interior >= SATURATION_LEVEL).float()) > 0] = float('nan')
    gradient = pool(gradient[..., border:-border, border:-border])
    return mean.flatten().numpy(), variance.flatten().numpy(), gradient.flatten().numpy()


def _bin_statistics(means, variances, gradients, num_bins, flat_fraction):
    """Median mean and residual variance of the flattest blocks of each quantile bin of intensity."""
    if len(means) < MIN_BLOCKS_PER_BIN:
        return []
    edges = np.unique(np.quantile(means, np.linspace(0, 1, num_bins + 1)))
    index = np.clip(np.searchsorted(edges, means, side='right') - 1, 0, len(edges) - 2)
    bins = []
    for b in range(len(edges) - 1):
        members = np.flatnonzero(index == b)
        if len(members) < MIN_BLOCKS_PER_BIN:
            continue
        keep = max(MIN_BLOCKS_PER_BIN, int(round(flat_fraction * len(members))))
        flattest = members[np.argsort(gradients[members])[:keep]]
        bins.append((float(np.median(means[flattest])), float(np.median(variances[flattest])), len(flattest)))
    return bins


@functools.lru_cache(maxsize=None)
def _selection_bias(block_size, flat_fraction):
    """Ratio of the estimated to the true variance on pure white noise, by simulation.

    The median of block variances lies below their mean (a skewed, chi-square-like distribution),
    and keeping the blocks of lowest gradient energy favours those with less noise; both shrink
    the estimate by a factor that depends only on the block size and the kept fraction
    (docs/noise_estimation.md, "Moved from docstrings"). It is measured once on a flat noisy image
    (deterministic seed) and divided out.
    """
    generator = torch.Generator().manual_seed(0)
    flat = 0.5 + BIAS_SIMULATION_STD * torch.randn(3, BIAS_SIMULATION_SIZE, BIAS_SIMULATION_SIZE,
                                                  generator=generator)
    means, variances, gradients = _block_statistics(flat, block_size)
    (_, variance, _), = _bin_statistics(means, variances, gradients, 1, flat_fraction)
    return variance / BIAS_SIMULATION_STD ** 2


def _coarse(channels):
    """2x2-pixel means of a (3, H, W) image; a mean touching a saturated pixel is marked saturated."""
    coarse = F.avg_pool2d(channels[None], ISP_SCALE)[0]
    saturated = F.max_pool2d(channels[None], ISP_SCALE)[0] >= SATURATION_LEVEL
    return torch.where(saturated, torch.ones_like(coarse), coarse)


def _isp_block_statistics(channels, gains):
    """:func:`_block_statistics` of the 2x2 means, each channel's variances divided by its ISP gain."""
    means, variances, gradients = _block_statistics(_coarse(channels), ISP_BLOCK_SIZE)
    variances = (variances.reshape(len(gains), -1) / np.asarray(gains)[:, None]).ravel()
    return means, variances, gradients


@functools.lru_cache(maxsize=None)
def _isp_gains(flat_fraction):
    """Per channel: estimated variance of a processed flat image over its raw noise variance, by simulation.

    The ratio folds together what the ISP does to the noise at the scale measured (after bilinear
    demosaicking a red or blue 2x2 mean has about 1.6 times, a green one 1.2 times the variance of
    a mean of 4 independent pixels; JPEG removes part of it) and the selection bias of
    :func:`_selection_bias`.
    The flat image is put through :func:`fnf_basicsr.data.isp.simulate_isp` once (fixed seed).
    """
    from fnf_basicsr.data.isp import simulate_isp
    generator = torch.Generator().manual_seed(0)
    size = ISP_CALIBRATION_SIZE
    flat = ISP_CALIBRATION_LEVEL + ISP_CALIBRATION_STD * torch.randn(3, size, size, generator=generator)
    processed = _coarse(simulate_isp(flat, jpeg_quality=ISP_CALIBRATION_QUALITY))
    gains = []
    for channel in processed:
        means, variances, gradients = _block_statistics(channel[None], ISP_BLOCK_SIZE)
        (_, variance, _), = _bin_statistics(means, variances, gradients, 1, flat_fraction)
        gains.append(variance / ISP_CALIBRATION_STD ** 2)
    return tuple(gains)


def _unclipped_moments(mean, variance):
    """Mean and variance of the Gaussian whose values, clipped at zero, have ``mean`` and ``variance``.

    For x ~ N(mu, sigma^2) clipped to max(x, 0) and k = mu / sigma, the clipped mean is
    ``sigma * h(k)`` and the variance ``sigma^2 * g(k)`` (censored normal moments), so
    ``mean / sqrt(variance) = h(k) / sqrt(g(k))`` fixes k (it increases with k). Returns None
    when k < ``MIN_CLIPPED_STDS``. The residual variance of a flat block is the variance of its
    (independent) clipped values, so the formula applies to the block statistics as they are.
    """
    ratio = mean / np.sqrt(variance) if variance > 0 else np.inf
    if ratio >= UNCLIPPED_STDS:
        return mean, variance
    if ratio <= _clipped_ratio(MIN_CLIPPED_STDS):
        return None
    k = brentq(lambda k: _clipped_ratio(k) - ratio, MIN_CLIPPED_STDS, UNCLIPPED_STDS + 1)
    sigma = np.sqrt(variance / _clipped_variance(k))
    return k * sigma, sigma ** 2


def _clipped_mean(k):
    """Mean of max(x, 0) for x ~ N(k, 1)."""
    return k * norm.cdf(k) + norm.pdf(k)


def _clipped_variance(k):
    """Variance of max(x, 0) for x ~ N(k, 1)."""
    return (k * k + 1) * norm.cdf(k) + k * norm.pdf(k) - _clipped_mean(k) ** 2


def _clipped_ratio(k):
    return _clipped_mean(k) / np.sqrt(_clipped_variance(k))


def _fit_line(means, variances):
    """Non-negative weighted least squares of ``var = a + b * mean``; returns ``(sig_read, sig_shot)``."""
    weights = 1.0 / np.maximum(variances, np.finfo(float).tiny)
    design = np.stack([np.ones_like(means), means], axis=1) * weights[:, None]
    (read_var, shot_var), _ = nnls(design, variances * weights)
    return noise_params_from_terms(float(read_var), float(shot_var))
