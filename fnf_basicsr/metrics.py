"""Image metrics of fnf-benchmark, each defined once, with the SSIM of the paper's Table 1.

Two SSIMs are reported because they differ by 0.02 to 0.12 on the same images:

* ``ssim_basicsr``: BasicSR's ``calculate_ssim`` (11x11 Gaussian window, sigma 1.5, on [0, 255],
  population covariance, ``data_range`` 255, 'valid' filtering), which FnFModel logs in training.
* ``ssim_release``: what the authors' ``test.py`` computed for Table 1, scikit-image
  ``compare_ssim(pred, gt, win_size=11, gaussian_weights=True, sigma=1.5, multichannel=True)`` on
  float images in [0, 1] without ``data_range``. scikit-image then took the data range from the
  dtype, [-1, 1] for floats, i.e. ``data_range = 2``, and the sample covariance (its default):
  the constants C1, C2 are 4 times larger than for [0, 1] images, which raises the score. Today's
  ``structural_similarity`` with the arguments of :data:`RELEASE_SSIM` computes it, in float64 as
  the old function did.

PSNR is ``-10 log10(mean squared error)`` on the clipped [0, 1] images, averaged per image, as
both BasicSR and the release compute it.
"""
from __future__ import annotations

import numpy as np
import torch

RELEASE_SSIM = {'win_size': 11, 'gaussian_weights': True, 'sigma': 1.5, 'use_sample_covariance': True,
                'data_range': 2.0, 'K1': 0.01, 'K2': 0.03}
METRIC_LABELS = {'psnr': 'PSNR (dB)', 'ssim_basicsr': 'SSIM (BasicSR)',
                 'ssim_release': 'SSIM (release test.py, Table 1)'}
# Changing any definition here changes every cached result: fnf-benchmark keys its cache by this.
METRIC_DEFINITIONS = {'psnr': 'float -10*log10(mse), clipped [0, 1], all channels',
                      'ssim_basicsr': 'basicsr.metrics.calculate_ssim crop_border=0 on [0, 255] BGR float64',
                      'ssim_release': {'function': 'skimage.metrics.structural_similarity', 'channel_axis': -1,
                                       **RELEASE_SSIM}}


def psnr(result: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR in dB of two (3, H, W) tensors in [0, 1] (clipped first); inf for identical images.

    Args:
        result: the image scored.
        target: the reference image.

    Returns:
        ``-10 log10(mean squared error)``, computed in float64.

    Shape:
        - result: (3, H, W).
        - target: (3, H, W).

    Example:
        >>> black, white = torch.zeros(3, 2, 2), torch.ones(3, 2, 2)
        >>> round(psnr(black, torch.full((3, 2, 2), 0.1)), 4), psnr(white, white)
        (20.0, inf)
    """
    result, target = _hwc(result), _hwc(target)
    mse = float(np.mean((result - target) ** 2))
    return float('inf') if mse == 0 else float(-10.0 * np.log10(mse))


def ssim_release(result: torch.Tensor, target: torch.Tensor) -> float:
    """Table 1's SSIM (see the module docstring) of two (3, H, W) tensors in [0, 1].

    Args:
        result: the image scored, clipped to [0, 1].
        target: the reference image, clipped to [0, 1].

    Returns:
        scikit-image's ``structural_similarity`` with :data:`RELEASE_SSIM`, in float64.

    Shape:
        - result: (3, H, W), H and W at least 11 (the window).
        - target: (3, H, W).

    Example:
        >>> image = torch.linspace(0, 1, 3 * 16 * 16).view(3, 16, 16)
        >>> ssim_release(image, image), round(ssim_release(image * 0.5, image), 4)
        (1.0, 0.7601)
    """
    from skimage.metrics import structural_similarity
    return float(structural_similarity(_hwc(result), _hwc(target), channel_axis=-1, **RELEASE_SSIM))


def ssim_basicsr(result: torch.Tensor, target: torch.Tensor) -> float:
    """BasicSR's ``calculate_ssim`` of two (3, H, W) tensors in [0, 1], as FnFModel validates.

    Args:
        result: the image scored.
        target: the reference image.

    Returns:
        BasicSR's SSIM on the 8-bit range, no border cropped.

    Shape:
        - result: (3, H, W), H and W at least 11 (the window).
        - target: (3, H, W).

    Example:
        >>> image = torch.linspace(0, 1, 3 * 16 * 16).view(3, 16, 16)
        >>> ssim_basicsr(image, image), ssim_basicsr(image * 0.5, image) < 1
        (1.0, True)
    """
    from basicsr.metrics import calculate_metric

    images = {'img': to_metric_image(result), 'img2': to_metric_image(target)}
    return float(calculate_metric(images, {'type': 'calculate_ssim', 'crop_border': 0}))


def score(result: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """Every metric of :data:`METRIC_LABELS` for one image pair.

    Args:
        result: the image scored.
        target: the reference image.

    Returns:
        The value of each metric, by its key in :data:`METRIC_LABELS`.

    Shape:
        - result: (3, H, W), H and W at least 11 (the SSIM window).
        - target: (3, H, W).

    Example:
        >>> image = torch.linspace(0, 1, 3 * 16 * 16).view(3, 16, 16)
        >>> score(image, image)
        {'psnr': inf, 'ssim_basicsr': 1.0, 'ssim_release': 1.0}
    """
    return {'psnr': psnr(result, target), 'ssim_basicsr': ssim_basicsr(result, target),
            'ssim_release': ssim_release(result, target)}


def _hwc(image):
    """(3, H, W) tensor -> float64 (H, W, 3) array clipped to [0, 1]."""
    return np.clip(image.detach().cpu().double().permute(1, 2, 0).numpy(), 0.0, 1.0)


def to_metric_image(srgb):
    """(3, H, W) sRGB tensor -> float64 HWC BGR in [0, 255], the layout BasicSR's metrics expect."""
    image = srgb.clamp(0, 1).permute(1, 2, 0).cpu().double().numpy()[:, :, ::-1] * 255.0
    return np.ascontiguousarray(image)


def to_uint8_bgr(srgb):
    return np.round(to_metric_image(srgb)).astype(np.uint8)
