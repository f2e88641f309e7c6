"""The classical references' shared helpers (fnf_basicsr.archs.classical_util): variance stabilisation, the noise
model fit, the bilateral grid."""
import math

import pytest
import torch

from fnf_basicsr.archs.classical_util import (MAX_RANGE_CELLS, bilateral_grid_filter, fit_noise_model,
                                              stabilize_variance, unstabilize_variance)
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT, add_noise, noise_std


def test_variance_stabilisation_round_trip_and_unit_noise():
    read_var, shot_var = TEST_SIG_READ ** 2, TEST_SIG_SHOT ** 2
    x = torch.linspace(-0.01, 2.0, 1001, dtype=torch.float64)
    assert torch.allclose(unstabilize_variance(stabilize_variance(x, read_var, shot_var), read_var, shot_var), x,
                          rtol=1e-10, atol=1e-14)
    assert torch.allclose(stabilize_variance(x, read_var, 0.0), x / TEST_SIG_READ)  # no shot noise: x / std
    generator = torch.Generator().manual_seed(0)
    for level in (0.0005, 0.01, 0.5):
        noisy = add_noise(torch.full((20000,), level, dtype=torch.float64), TEST_SIG_READ, TEST_SIG_SHOT, generator)
        assert stabilize_variance(noisy, read_var, shot_var).std().item() == pytest.approx(1.0, abs=0.03)


def test_noise_model_fit_recovers_the_std_map_parameters():
    noisy = add_noise(torch.rand(3, 16, 16) * 0.2, 0.004, 0.02, torch.Generator().manual_seed(0))
    read_var, shot_var = fit_noise_model(noisy, noise_std(noisy, 0.004, 0.02))
    assert math.sqrt(read_var) == pytest.approx(0.004, rel=1e-4)
    assert math.sqrt(shot_var) == pytest.approx(0.02, rel=1e-4)
    flat = torch.zeros(3, 8, 8)  # no spread of intensities: everything is read noise
    assert fit_noise_model(flat, noise_std(flat, 0.004, 0.02)) == pytest.approx((0.004 ** 2, 0.0))


def test_bilateral_grid_smooths_within_regions_and_stops_at_guide_edges():
    generator = torch.Generator().manual_seed(0)
    guide = torch.zeros(64, 64)
    guide[:, 32:] = 20.0
    values = (guide / 20 + 0.1 * torch.randn(64, 64, generator=generator))[None]
    out = bilateral_grid_filter(values, guide, sigma_space=4, sigma_range=2)[0]
    assert out[:, :28].std() < 0.25 * values[0, :, :28].std()  # noise averaged away
    assert out[:, 30].mean() < 0.05 and out[:, 33].mean() > 0.95  # the step stays sharp
    constant = torch.full((2, 64, 64), 0.7)
    assert torch.allclose(bilateral_grid_filter(constant, guide, 4, 2), constant, atol=1e-6)
    # A range sigma far below the guide's span is raised to span / MAX_RANGE_CELLS (bounded memory).
    span_limited = bilateral_grid_filter(values, guide, 4, 20.0 / MAX_RANGE_CELLS)
    assert torch.equal(bilateral_grid_filter(values, guide, 4, 1e-6), span_limited)


def test_bilateral_grid_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r'values \(C, H, W\) and guide \(H, W\)'):
        bilateral_grid_filter(torch.rand(1, 8, 8), torch.rand(8, 9), 2, 1)
