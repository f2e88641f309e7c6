"""Heteroscedastic Gaussian sensor noise: variance = sig_read^2 + sig_shot^2 * intensity.

The one noise model of the project: the dataset degrades with it, the network's noise-std input
channels come from it, and ``fnf-denoise`` estimates its parameters from real captures.
"""
import math

import numpy as np
import torch

# Training ranges of log10(sigma) (released code; the paper's text quotes sig_shot^2).
LOG_READ_RANGE = (-3.0, -2.0)
LOG_SHOT_RANGE = (-2.0, -1.3)
# Fixed test noise of the paper's protocol.
TEST_SIG_READ = 10 ** -2.6
TEST_SIG_SHOT = 10 ** -1.8


def noise_variance(intensity, sig_read, sig_shot):
    """Per-pixel variance of the noise at a given (clean or noisy) intensity."""
    return variance_from_terms(intensity, sig_read ** 2, sig_shot ** 2)


def variance_from_terms(intensity, read_var, shot_var):
    """:func:`noise_variance` from the variances of its read and shot terms, ``sig_read^2`` and ``sig_shot^2``.

    ``intensity`` is a tensor or, for readers of NumPy data, an array; the result is of the same kind.
    """
    positive = np.maximum(0, intensity) if isinstance(intensity, np.ndarray) else torch.clamp(intensity, min=0)
    return read_var + shot_var * positive


def noise_params_from_terms(read_var, shot_var):
    """``(sig_read, sig_shot)`` of the model whose variance is ``read_var + shot_var * intensity``."""
    return math.sqrt(read_var), math.sqrt(shot_var)


def noise_std(noisy, sig_read, sig_shot):
    """Per-pixel noise std estimated from the noisy intensities (the network's std channels).

    A NumPy ``noisy`` gives an array: NumPy's float32 square root is correctly rounded, torch's
    vectorised CPU one can be one ulp off it, so a NumPy reader keeps NumPy's values.
    """
    variance = noise_variance(noisy, sig_read, sig_shot)
    return np.sqrt(variance) if isinstance(variance, np.ndarray) else torch.sqrt(variance)


def add_noise(clean, sig_read, sig_shot, generator=None):
    """Return ``clean`` plus zero-mean Gaussian noise with the model's variance."""
    gauss = torch.randn(clean.shape, generator=generator, dtype=clean.dtype, device=clean.device)
    return clean + gauss * torch.sqrt(noise_variance(clean, sig_read, sig_shot))


def sample_noise_params(generator=None, log_read_range=LOG_READ_RANGE, log_shot_range=LOG_SHOT_RANGE):
    """Draw (sig_read, sig_shot) log-uniformly from the training ranges (given as log10 sigma)."""
    return tuple(log_uniform(10 ** low, 10 ** high, generator) for low, high in (log_read_range, log_shot_range))


def log_uniform(low, high, generator=None):
    """A float drawn uniformly in log space between ``low`` and ``high`` (e.g. dimming factors)."""
    return math.exp(math.log(low) + (math.log(high) - math.log(low)) * torch.rand((), generator=generator).item())
