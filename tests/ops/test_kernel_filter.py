"""Kernel-field filtering: equal to the naive per-pixel-kernel form, correct footprints, safe dtypes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import assert_within_summation_error
from fnf_basicsr.ops import naive_filter as naive
from fnf_basicsr.ops.kernel_filter import (basis_filter, lowpass_prefilter, mirror_pad, per_pixel_filter,
                                           tent_kernel, two_scale_filter)



def _random_inputs(batch=2, channels=3, height=20, width=24, num_basis=4, kernel_size=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    image = torch.rand(batch, channels, height, width, generator=generator)
    coeffs = torch.randn(batch, num_basis, height, width, generator=generator)
    basis = torch.randn(batch, num_basis, channels, kernel_size, kernel_size, generator=generator) / kernel_size
    return image, coeffs, basis


def _outputs_and_grads(function, inputs, grad_output):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    output = function(*inputs)
    output.backward(grad_output)
    return [output.detach()] + [t.grad for t in inputs]


def _assert_same_outputs_and_grads(ours, reference, inputs, height=20, width=24):
    """Ours in float32 against the naive form in float64, output and every gradient, within the float32
    rounding of the sums involved (the filter is multilinear, so the reference run on absolute values gives
    each element's sum of absolute products)."""
    grad_output = torch.randn(inputs[0].shape[0], 3, height, width, generator=torch.Generator().manual_seed(1))
    exact = _outputs_and_grads(reference, [t.double() for t in inputs], grad_output.double())
    magnitude = _outputs_and_grads(reference, [t.double().abs() for t in inputs], grad_output.double().abs())
    # The longest sum: a basis gradient gathers every pixel of every image of the batch, for both scales.
    terms = 2 * inputs[0].shape[0] * height * width
    names = ('output', 'image', 'coeffs', 'basis_a', 'basis_b')
    for name, got, want, size in zip(names, _outputs_and_grads(ours, inputs, grad_output), exact, magnitude):
        assert got.dtype == torch.float32
        assert_within_summation_error(got, want, size, terms, name=name)


@pytest.mark.parametrize('dilation', [1, 2])
@pytest.mark.parametrize('chunk_size', [None, 3])
def test_basis_filter_equals_naive_form_with_gradients(dilation, chunk_size):
    inputs = _random_inputs()
    _assert_same_outputs_and_grads(
        lambda *t: basis_filter(*t, dilation=dilation, chunk_size=chunk_size),
        lambda *t: naive.naive_basis_filter(*t, dilation=dilation), inputs)


def test_two_scale_filter_equals_naive_form_with_gradients():
    image, coeffs, basis_a = _random_inputs()
    basis_b = _random_inputs(seed=2)[2]
    _assert_same_outputs_and_grads(
        lambda *t: two_scale_filter(*t, d=2), lambda *t: naive.naive_two_scale_filter(*t, d=2),
        [image, coeffs, basis_a, basis_b])


@pytest.mark.parametrize('method', ['direct', 'fourier'])
@pytest.mark.parametrize('kernel_size,d,height,width', [(5, 2, 20, 24), (15, 4, 33, 18), (15, 4, 4, 5)])
def test_both_two_scale_methods_equal_naive_form_with_gradients_in_float64(method, kernel_size, d, height, width):
    # float64: the FFT's rounding differs from the direct sums', so only exactness shows the two are one filter.
    image, coeffs, basis_a = (t.double() for t in _random_inputs(height=height, width=width, kernel_size=kernel_size))
    basis_b = _random_inputs(height=height, width=width, kernel_size=kernel_size, seed=2)[2].double()
    if height < (kernel_size - 1) * d + 2:  # the naive reference's reflect padding needs a larger image
        def reference(x, c, a, b):
            return two_scale_filter(x, c, a, b, d, method='direct')
    else:
        def reference(x, c, a, b):
            return naive.naive_two_scale_filter(x, c, a, b, d)
    grad_output = torch.randn(2, 3, height, width, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    inputs = [image, coeffs, basis_a, basis_b]
    got = _outputs_and_grads(lambda *t: two_scale_filter(*t, d, method=method), inputs, grad_output)
    expected = _outputs_and_grads(reference, inputs, grad_output)
    for name, a, b in zip(('output', 'image', 'coeffs', 'basis_a', 'basis_b'), got, expected):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=name)


def test_fourier_two_scale_filter_float32_is_as_close_to_float64_as_the_direct_form():
    # fp32 accumulation stays: both methods compute in float32 and land within 1e-5 of the float64 result.
    image, coeffs, basis_a = _random_inputs(batch=1, height=112, width=100, num_basis=16, kernel_size=15)
    basis_b = _random_inputs(batch=1, height=112, width=100, num_basis=16, kernel_size=15, seed=2)[2]
    exact = two_scale_filter(image.double(), coeffs.double(), basis_a.double(), basis_b.double(), 4)
    for method in ('direct', 'fourier'):
        output = two_scale_filter(image, coeffs, basis_a, basis_b, 4, method=method)
        assert output.dtype == torch.float32
        torch.testing.assert_close(output.double(), exact, rtol=1e-5, atol=1e-5 * exact.abs().max().item())


def test_two_scale_auto_method_picks_fourier_on_large_images_only(monkeypatch):
    import fnf_basicsr.ops.kernel_filter as kernel_filter
    calls = []
    monkeypatch.setattr(kernel_filter, 'fourier_two_scale_filter', lambda *args: calls.append(args[0].shape))
    image, coeffs, basis = _random_inputs(batch=1, height=8, width=8)
    two_scale_filter(image, coeffs, basis, basis, d=2)
    assert not calls
    side = int(kernel_filter.FOURIER_MIN_PIXELS ** 0.5)
    image, coeffs, basis = _random_inputs(batch=1, height=side, width=side)
    two_scale_filter(image, coeffs, basis, basis, d=2)
    assert calls == [image.shape]
    with pytest.raises(ValueError, match='method must be one of'):
        two_scale_filter(image, coeffs, basis, basis, d=2, method='fft')


def test_per_pixel_filter_equals_naive_form_with_gradients():
    image, _, _ = _random_inputs()
    kernels = torch.randn(2, 25, 20, 24, generator=torch.Generator().manual_seed(3))
    _assert_same_outputs_and_grads(per_pixel_filter, naive.naive_per_pixel_filter, [image, kernels])


def _impulse_response(filter_function, size=96):
    """Response to a unit impulse in the middle of a single-channel image (float64)."""
    image = torch.zeros(1, 1, size, size, dtype=torch.float64)
    image[..., size // 2, size // 2] = 1.0
    coeffs = torch.ones(1, 1, size, size, dtype=torch.float64)
    return filter_function(image, coeffs)[0, 0]


def _support(response):
    rows, columns = torch.nonzero(response, as_tuple=True)
    return (rows.max() - rows.min() + 1).item(), (columns.max() - columns.min() + 1).item()


def _bilinear_upsample(kernel, d):
    """B upsampled by d with bilinear interpolation between its samples, zero beyond them."""
    size = kernel.shape[-1]
    positions = torch.arange((size + 1) * d - 1, dtype=kernel.dtype) - (d - 1)
    weights = (1 - (positions[:, None] - d * torch.arange(size, dtype=kernel.dtype)).abs() / d).clamp(min=0)
    return weights @ kernel @ weights.T


def test_two_scale_impulse_response_is_eq3_kernel_with_57_sample_footprint():
    kernel_size, d = 15, 4
    generator = torch.Generator().manual_seed(0)
    basis_a = torch.rand(1, 1, 1, kernel_size, kernel_size, generator=generator, dtype=torch.float64) + 0.1
    basis_b = torch.rand(1, 1, 1, kernel_size, kernel_size, generator=generator, dtype=torch.float64) + 0.1

    dilated_only = _impulse_response(lambda x, c: basis_filter(x, c, basis_b, dilation=d))
    assert _support(dilated_only) == (57, 57)  # (K - 1) * d + 1 samples of B_j
    assert torch.count_nonzero(dilated_only) == kernel_size ** 2

    # Eq. 4 equals filtering with A + (B bilinearly upsampled by d) / d^2 (Eq. 3): the 57-sample
    # span plus the tent's d - 1 on each side, 63 taps in all.
    response = _impulse_response(lambda x, c: two_scale_filter(x, c, basis_a, basis_b, d, method='direct'))
    assert _support(response) == (63, 63)
    # The FFT form filters with the same kernel (its zeros are zeros up to float64 rounding).
    fourier = _impulse_response(lambda x, c: two_scale_filter(x, c, basis_a, basis_b, d, method='fourier'))
    torch.testing.assert_close(fourier, response, rtol=0, atol=1e-12)
    eq3_kernel = _bilinear_upsample(basis_b[0, 0, 0], d) / d ** 2 + F.pad(basis_a[0, 0, 0], (24,) * 4)
    centre = response.shape[-1] // 2
    # A correlation's impulse response is its kernel flipped.
    torch.testing.assert_close(response[centre - 31:centre + 32, centre - 31:centre + 32], eq3_kernel.flip(0, 1))

    without_lowpass = _impulse_response(lambda x, c: two_scale_filter(x, c, basis_a, basis_b, d, use_lowpass=False))
    assert _support(without_lowpass) == (15, 15)


def test_tent_kernel_values():
    ramp = torch.tensor([1., 2., 3., 4., 3., 2., 1.])
    torch.testing.assert_close(tent_kernel(4), torch.outer(ramp, ramp) / 256)
    torch.testing.assert_close(tent_kernel(1), torch.ones(1, 1))
    with pytest.raises(ValueError, match='positive integer'):
        tent_kernel(0)


def test_lowpass_prefilter_keeps_constants_and_smooths_with_the_tent():
    constant = torch.full((1, 3, 10, 12), 0.7)
    torch.testing.assert_close(lowpass_prefilter(constant, 4), constant)
    impulse = torch.zeros(1, 1, 15, 15)
    impulse[..., 7, 7] = 1.0
    torch.testing.assert_close(lowpass_prefilter(impulse, 3)[0, 0, 5:10, 5:10], tent_kernel(3))
    assert torch.equal(lowpass_prefilter(impulse, 1), impulse)


@pytest.mark.parametrize('height,width,pad', [(6, 9, 4), (3, 4, 5), (2, 2, 7)])
def test_mirror_pad_matches_numpy_reflect_also_beyond_the_image_size(height, width, pad):
    image = np.random.default_rng(0).random((1, 2, height, width))
    expected = np.pad(image, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode='reflect')
    np.testing.assert_array_equal(mirror_pad(torch.from_numpy(image), pad).numpy(), expected)


def test_filters_accept_images_smaller_than_the_kernel():
    image, coeffs, basis = _random_inputs(batch=1, height=4, width=5, kernel_size=15)
    assert torch.isfinite(two_scale_filter(image, coeffs, basis, basis, d=4)).all()
    kernels = torch.rand(1, 225, 1, 5)
    constant = torch.full((1, 3, 1, 5), 2.0)
    expected = 2.0 * kernels.sum(1, keepdim=True).expand(1, 3, 1, 5)  # a constant image, mirrored or not
    torch.testing.assert_close(per_pixel_filter(constant, kernels), expected)


@pytest.mark.parametrize('method', ['direct', 'fourier'])
def test_filtering_runs_in_float32_under_bfloat16_autocast(method):
    image, coeffs, basis = (t.bfloat16() for t in _random_inputs())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        output = two_scale_filter(image, coeffs, basis, basis, d=2, method=method)
    assert output.dtype == torch.float32
    expected = two_scale_filter(image.float(), coeffs.float(), basis.float(), basis.float(), d=2, method=method)
    torch.testing.assert_close(output, expected, rtol=1e-5, atol=1e-5)


def test_bad_shapes_are_rejected_with_the_expected_shape():
    image, coeffs, basis = _random_inputs()
    with pytest.raises(ValueError, match=r'expected \(2, 4, 20, 24\)'):
        basis_filter(image, coeffs[:, :, :10], basis)
    with pytest.raises(ValueError, match='K odd'):
        basis_filter(image, coeffs, basis[..., :4, :4])
    with pytest.raises(ValueError, match=r'expected \(2, 4, 3, 5, 5\)'):
        basis_filter(image, coeffs, basis[:, :, :2])
    with pytest.raises(ValueError, match='basis_b is None'):
        two_scale_filter(image, coeffs, basis, None, d=2)
    with pytest.raises(ValueError, match='K\\*K channels'):
        per_pixel_filter(image, torch.rand(2, 24, 20, 24))
