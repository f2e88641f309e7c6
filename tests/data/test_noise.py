"""The heteroscedastic noise model (fnf_basicsr.data.noise): variance and std of both array kinds, the noise it
adds, its parameters drawn log-uniformly and read back from the variance terms."""
import math

import numpy as np
import pytest
import torch

from fnf_basicsr.data.noise import (LOG_READ_RANGE, LOG_SHOT_RANGE, TEST_SIG_READ, TEST_SIG_SHOT, add_noise,
                                    log_uniform, noise_params_from_terms, noise_std, noise_variance,
                                    sample_noise_params, variance_from_terms)


def test_variance_is_read_plus_shot_times_the_intensity_clamped_at_zero():
    intensity = torch.tensor([-0.5, 0.0, 0.25, 1.0], dtype=torch.float64)
    read, shot = 0.01 ** 2, 0.1 ** 2
    expected = torch.tensor([read, read, read + shot * 0.25, read + shot], dtype=torch.float64)
    torch.testing.assert_close(noise_variance(intensity, 0.01, 0.1), expected, rtol=1e-12, atol=0)
    as_array = variance_from_terms(intensity.numpy(), 0.01 ** 2, 0.1 ** 2)
    assert isinstance(as_array, np.ndarray) and np.allclose(as_array, expected.numpy(), rtol=1e-12, atol=0)
    assert torch.is_tensor(variance_from_terms(intensity, 1e-4, 1e-2))


def test_parameters_round_trip_through_the_variance_terms():
    sigmas = noise_params_from_terms(TEST_SIG_READ ** 2, TEST_SIG_SHOT ** 2)
    assert sigmas == pytest.approx((TEST_SIG_READ, TEST_SIG_SHOT), rel=1e-12)
    assert TEST_SIG_READ == pytest.approx(10 ** -2.6) and TEST_SIG_SHOT == pytest.approx(10 ** -1.8)  # the paper's
    assert noise_params_from_terms(0.0, 0.0) == (0.0, 0.0)


def test_noise_std_of_an_array_is_the_float32_formula_in_numpy():
    noisy = np.random.default_rng(3).normal(scale=0.05, size=(3, 16, 16)).astype(np.float32)  # negatives too
    sig_read, sig_shot = np.float32(0.003), np.float32(0.02)
    std = noise_std(noisy, sig_read, sig_shot)
    expected = np.sqrt(sig_read ** 2 + np.maximum(np.float32(0), noisy) * sig_shot ** 2)
    assert isinstance(std, np.ndarray) and std.dtype == np.float32 and np.array_equal(std, expected)
    torch.testing.assert_close(torch.from_numpy(std), noise_std(torch.from_numpy(noisy), sig_read, sig_shot))


def test_added_noise_has_the_model_statistics_and_follows_the_generator():
    clean = torch.full((200_000,), 0.4, dtype=torch.float64)
    noisy = add_noise(clean, 0.01, 0.05, torch.Generator().manual_seed(0))
    expected_var = 0.01 ** 2 + 0.05 ** 2 * 0.4
    assert noisy.dtype == torch.float64 and noisy.shape == clean.shape
    assert (noisy - clean).var().item() == pytest.approx(expected_var, rel=0.02)  # std error of the estimate: 0.3%
    assert abs((noisy - clean).mean().item()) < 4 * math.sqrt(expected_var / clean.numel())
    again = add_noise(clean, 0.01, 0.05, torch.Generator().manual_seed(0))
    other = add_noise(clean, 0.01, 0.05, torch.Generator().manual_seed(1))
    assert torch.equal(noisy, again) and not torch.equal(noisy, other)
    assert torch.equal(add_noise(clean, 0.0, 0.0, torch.Generator().manual_seed(0)), clean)  # no noise, no change


def test_sampled_parameters_are_log_uniform_within_the_training_ranges_and_seeded():
    draws = np.array([sample_noise_params(torch.Generator().manual_seed(seed)) for seed in range(400)])
    logs = np.log10(draws)
    for column, (low, high) in enumerate((LOG_READ_RANGE, LOG_SHOT_RANGE)):
        assert logs[:, column].min() >= low and logs[:, column].max() <= high
        # uniform in log space: mean at the middle (std error (high - low) / sqrt(12 * 400) = 0.005 at most)
        assert logs[:, column].mean() == pytest.approx((low + high) / 2, abs=0.03)
    seeded = [sample_noise_params(torch.Generator().manual_seed(7)) for _ in range(2)]
    assert seeded[0] == seeded[1]
    read, shot = sample_noise_params(torch.Generator().manual_seed(0), log_read_range=(-4, -4),
                                     log_shot_range=(-1, -1))
    assert read == pytest.approx(1e-4) and shot == pytest.approx(0.1)


def test_log_uniform_stays_within_its_bounds():
    generator = torch.Generator().manual_seed(0)
    values = [log_uniform(5.0, 50.0, generator) for _ in range(200)]
    assert all(5.0 <= value <= 50.0 for value in values)
    assert sum(value < math.sqrt(5.0 * 50.0) for value in values) == pytest.approx(100, abs=30)  # geometric median
    assert log_uniform(3.0, 3.0, generator) == pytest.approx(3.0)
