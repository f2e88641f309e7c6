"""Heteroscedastic Gaussian sensor noise: variance = sig_read^2 + sig_shot^2 * intensity.

The one noise model of the project: the dataset degrades with it, the network's noise-std input
channels come from it, and ``fnf-denoise`` estimates its parameters from real captures.
"""
from __future__ import annotations

import math

import numpy as np
import torch

# Training ranges of log10(sigma) (released code; the paper's text quotes sig_shot^2).
LOG_READ_RANGE = (-3.0, -2.0)
LOG_SHOT_RANGE = (-2.0, -1.3)
# Fixed test noise of the paper's protocol.
TEST_SIG_READ = 10 ** -2.6
TEST_SIG_SHOT = 10 ** -1.8


def noise_variance(intensity: torch.Tensor | np.ndarray, sig_read: float, sig_shot: float) -> torch.Tensor | np.ndarray:
    """Per-pixel variance of the noise at a given (clean or noisy) intensity.

    Negative intensities count as zero.

    Args:
        intensity: linear intensities, a tensor or an array.
        sig_read: std of the read noise.
        sig_shot: shot-noise scale (the variance grows by ``sig_shot^2`` per unit intensity).

    Returns:
        ``sig_read^2 + sig_shot^2 * max(intensity, 0)``, of the kind of ``intensity``.

    Shape:
        - intensity: any shape.
        - output: the shape of ``intensity``.

    Example:
        >>> noise_variance(torch.tensor([-1.0, 0.0, 1.0]), 0.1, 0.2)
        tensor([0.0100, 0.0100, 0.0500])
    """
    return variance_from_terms(intensity, sig_read ** 2, sig_shot ** 2)


def variance_from_terms(intensity: torch.Tensor | np.ndarray, read_var: float,
                        shot_var: float) -> torch.Tensor | np.ndarray:
    """:func:`noise_variance` from the variances of its read and shot terms, ``sig_read^2`` and ``sig_shot^2``.

    ``intensity`` is a tensor or, for readers of NumPy data, an array; the result is of the same kind.

    Args:
        intensity: linear intensities; negative ones count as zero.
        read_var: ``sig_read^2``.
        shot_var: ``sig_shot^2``.

    Returns:
        ``read_var + shot_var * max(intensity, 0)``.

    Shape:
        - intensity: any shape.
        - output: the shape of ``intensity``.

    Example:
        >>> variance_from_terms(np.array([0.0, 1.0]), 0.01, 0.04)
        array([0.01, 0.05])
    """
    positive = np.maximum(0, intensity) if isinstance(intensity, np.ndarray) else torch.clamp(intensity, min=0)
    return read_var + shot_var * positive


def noise_params_from_terms(read_var: float, shot_var: float) -> tuple[float, float]:
    """``(sig_read, sig_shot)`` of the model whose variance is ``read_var + shot_var * intensity``.

    Args:
        read_var: the variance's constant term, >= 0.
        shot_var: its slope in intensity, >= 0.

    Returns:
        Their square roots.

    Example:
        >>> noise_params_from_terms(0.0001, 0.01)
        (0.01, 0.1)
    """
    return math.sqrt(read_var), math.sqrt(shot_var)


def noise_std(noisy: torch.Tensor | np.ndarray, sig_read: float, sig_shot: float) -> torch.Tensor | np.ndarray:
    """Per-pixel noise std estimated from the noisy intensities (the network's std channels).

    A NumPy ``noisy`` gives an array: NumPy's float32 square root is correctly rounded, torch's
    vectorised CPU one can be one ulp off it, so a NumPy reader keeps NumPy's values.

    Args:
        noisy: noisy linear intensities, a tensor or an array.
        sig_read: std of the read noise.
        sig_shot: shot-noise scale.

    Returns:
        ``sqrt(noise_variance(noisy, sig_read, sig_shot))``, of the kind of ``noisy``.

    Shape:
        - noisy: any shape, e.g. (3, H, W).
        - output: the shape of ``noisy``.

    Example:
        >>> noise_std(torch.tensor([0.0, 3.0]), 0.1, 0.2)
        tensor([0.1000, 0.3606])
    """
    variance = noise_variance(noisy, sig_read, sig_shot)
    return np.sqrt(variance) if isinstance(variance, np.ndarray) else torch.sqrt(variance)


def add_noise(clean: torch.Tensor, sig_read: float, sig_shot: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Return ``clean`` plus zero-mean Gaussian noise with the model's variance.

    Args:
        clean: the clean linear image; its intensities set the variance.
        sig_read: std of the read noise.
        sig_shot: shot-noise scale.
        generator: the random generator (None: torch's global one).

    Returns:
        The noisy image, of ``clean``'s dtype and device; not clipped.

    Shape:
        - clean: any shape, e.g. (3, H, W).
        - output: the shape of ``clean``.

    Example:
        >>> noisy = add_noise(torch.full((3, 64, 64), 0.5), 0.01, 0.1, torch.Generator().manual_seed(0))
        >>> round(noisy.std().item(), 2)  # sqrt(0.01 ** 2 + 0.1 ** 2 * 0.5)
        0.07
    """
    gauss = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
    return clean + gauss * torch.sqrt(noise_variance(clean, sig_read, sig_shot))


def sample_noise_params(generator: torch.Generator | None = None,
                        log_read_range: tuple[float, float] = LOG_READ_RANGE,
                        log_shot_range: tuple[float, float] = LOG_SHOT_RANGE) -> tuple[float, float]:
    """Draw (sig_read, sig_shot) log-uniformly from the training ranges (given as log10 sigma).

    Args:
        generator: the random generator (None: torch's global one).
        log_read_range: (low, high) of log10(sig_read).
        log_shot_range: (low, high) of log10(sig_shot).

    Returns:
        ``(sig_read, sig_shot)``.

    Example:
        >>> sig_read, sig_shot = sample_noise_params(torch.Generator().manual_seed(0))
        >>> 1e-3 <= sig_read <= 1e-2, 1e-2 <= sig_shot <= 10 ** -1.3
        (True, True)
    """
    return tuple(log_uniform(10 ** low, 10 ** high, generator) for low, high in (log_read_range, log_shot_range))


def log_uniform(low: float, high: float, generator: torch.Generator | None = None) -> float:
    """A float drawn uniformly in log space between ``low`` and ``high`` (e.g. dimming factors).

    Args:
        low: the smallest value, > 0.
        high: the largest value, >= ``low``.
        generator: the random generator (None: torch's global one).

    Returns:
        The draw.

    Example:
        >>> 12.5 <= log_uniform(12.5, 100.0, torch.Generator().manual_seed(0)) <= 100.0
        True
    """
    return math.exp(math.log(low) + (math.log(high) - math.log(low)) * torch.rand((), generator=generator).item())
