"""fnf-benchmark's metrics (fnf_basicsr.metrics): PSNR on clipped images, and the two SSIMs checked against their
closed form on flat images, where the Gaussian windows drop out and only the constants C1 = (K1 * L)^2 differ:
L = 2 for Table 1's SSIM (the release's data range of float images), L = 1 (255 on [0, 255]) for BasicSR's."""
import math

import numpy as np
import pytest
import torch

import fnf_basicsr  # noqa: F401  (first: it makes basicsr importable on today's torchvision)
from fnf_basicsr.metrics import (METRIC_DEFINITIONS, METRIC_LABELS, RELEASE_SSIM, psnr, score, ssim_basicsr,
                                 ssim_release)

LOW, HIGH = (0.2, 0.5, 0.7), (0.3, 0.45, 0.9)


def flat(levels, size=16):
    """A (3, size, size) image of one value per channel."""
    return torch.tensor(levels, dtype=torch.float64).view(3, 1, 1).expand(3, size, size).clone()


def flat_ssim(first, second, data_range):
    """SSIM of two flat images: no variance, no covariance, so each channel's SSIM is the luminance term."""
    c1 = (0.01 * data_range) ** 2
    return float(np.mean([(2 * a * b + c1) / (a * a + b * b + c1) for a, b in zip(first, second, strict=True)]))


def noisy_pair(seed=0):
    generator = torch.Generator().manual_seed(seed)
    target = 0.2 + 0.6 * torch.rand(3, 32, 32, generator=generator)
    return target + 0.05 * torch.randn(3, 32, 32, generator=generator), target


def test_psnr_is_minus_ten_log_mse_over_all_channels_of_the_clipped_images():
    target = flat(LOW)
    assert psnr(target + 0.1, target) == pytest.approx(20.0, abs=1e-9)  # mse 0.01
    one_channel = target.clone()
    one_channel[1] += 0.3  # mse 0.09 / 3
    assert psnr(one_channel, target) == pytest.approx(-10 * math.log10(0.03), abs=1e-9)
    assert psnr(target, target) == math.inf
    assert psnr(torch.full((3, 4, 4), 1.5), torch.ones(3, 4, 4)) == math.inf  # clipped to [0, 1] first
    below = torch.full((3, 4, 4), -0.5, dtype=torch.float64)
    assert psnr(below, torch.full((3, 4, 4), 0.1, dtype=torch.float64)) == pytest.approx(20.0, abs=1e-9)


def test_release_ssim_uses_a_data_range_of_two():
    assert RELEASE_SSIM['data_range'] == 2.0 and RELEASE_SSIM['win_size'] == 11
    assert ssim_release(flat(LOW), flat(HIGH)) == pytest.approx(flat_ssim(LOW, HIGH, 2.0), rel=1e-7)
    assert ssim_release(flat(LOW), flat(HIGH)) != pytest.approx(flat_ssim(LOW, HIGH, 1.0), rel=1e-6)
    assert ssim_release(flat(LOW), flat(LOW)) == pytest.approx(1.0)


def test_basicsr_ssim_is_that_of_images_in_0_255():
    assert ssim_basicsr(flat(LOW), flat(HIGH)) == pytest.approx(flat_ssim(LOW, HIGH, 1.0), rel=1e-7)
    assert ssim_basicsr(flat(LOW), flat(LOW)) == pytest.approx(1.0)


def test_release_ssim_scores_a_noisy_image_higher_than_basicsrs():
    """Its larger constants and the sample covariance raise the score (the module docstring's 0.02 to 0.12)."""
    result, target = noisy_pair()
    release, basicsr = ssim_release(result, target), ssim_basicsr(result, target)
    assert 0.5 < basicsr < release < 1.0
    worse = target + 0.1 * torch.randn(3, 32, 32, generator=torch.Generator().manual_seed(1))
    assert ssim_release(worse, target) < release and ssim_basicsr(worse, target) < basicsr


def test_score_holds_every_labelled_metric():
    result, target = noisy_pair()
    scores = score(result, target)
    assert set(scores) == set(METRIC_LABELS) == set(METRIC_DEFINITIONS)
    assert scores == {'psnr': psnr(result, target), 'ssim_basicsr': ssim_basicsr(result, target),
                      'ssim_release': ssim_release(result, target)}
    assert all(isinstance(value, float) for value in scores.values())
    assert score(result, target) == scores  # deterministic
