"""The naive reference filters (fnf_basicsr.ops.naive_filter) against explicit per-pixel loops: the reference that
tests/ops/test_kernel_filter.py compares the fast forms with must itself be the formula."""
import numpy as np
import pytest
import torch

from fnf_basicsr.ops.naive_filter import naive_basis_filter, naive_per_pixel_filter, naive_two_scale_filter


def loop_filter(image, kernel_at, kernel_size, dilation=1):
    """out[b, c, y, x] = sum over taps (i, j) of kernel_at(b, c, y, x)[i, j] * reflect-padded image at the tap."""
    pad = (kernel_size - 1) * dilation // 2
    padded = np.pad(image.numpy(), ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode='reflect')
    out = np.zeros(image.shape, dtype=np.float64)
    batch, channels, height, width = image.shape
    for b in range(batch):
        for c in range(channels):
            for y in range(height):
                for x in range(width):
                    kernel = kernel_at(b, c, y, x)
                    for i in range(kernel_size):
                        for j in range(kernel_size):
                            out[b, c, y, x] += kernel[i, j] * padded[b, c, y + i * dilation, x + j * dilation]
    return torch.from_numpy(out)


@pytest.mark.parametrize('dilation', [1, 2])
def test_basis_filter_is_the_per_pixel_sum_of_coefficients_times_basis_kernels(dilation):
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(2, 3, 7, 8, generator=generator, dtype=torch.float64)
    coeffs = torch.rand(2, 2, 7, 8, generator=generator, dtype=torch.float64)
    basis = torch.rand(2, 2, 3, 3, 3, generator=generator, dtype=torch.float64)

    def kernel_at(b, c, y, x):
        return sum(coeffs[b, j, y, x].item() * basis[b, j, c].numpy() for j in range(2))

    expected = loop_filter(image, kernel_at, 3, dilation)
    torch.testing.assert_close(naive_basis_filter(image, coeffs, basis, dilation=dilation), expected,
                               rtol=1e-12, atol=1e-12)


def test_per_pixel_filter_weights_the_taps_in_row_major_order():
    generator = torch.Generator().manual_seed(1)
    image = torch.rand(1, 2, 6, 5, generator=generator, dtype=torch.float64)
    kernels = torch.rand(1, 9, 6, 5, generator=generator, dtype=torch.float64)
    expected = loop_filter(image, lambda b, c, y, x: kernels[b, :, y, x].view(3, 3).numpy(), 3)
    torch.testing.assert_close(naive_per_pixel_filter(image, kernels), expected, rtol=1e-12, atol=1e-12)
    identity = torch.zeros(1, 9, 6, 5, dtype=torch.float64)
    identity[:, 4] = 1  # the centre tap
    assert torch.equal(naive_per_pixel_filter(image, identity), image)
    right = torch.zeros(1, 9, 6, 5, dtype=torch.float64)
    right[:, 5] = 1  # tap (0, +1): the pixel on the right, reflected at the border
    shifted = torch.cat([image[..., 1:], image[..., -2:-1]], dim=-1)
    assert torch.equal(naive_per_pixel_filter(image, right), shifted)


def test_two_scale_filter_adds_the_dilated_low_frequency_term_only_when_asked():
    generator = torch.Generator().manual_seed(2)
    image = torch.rand(1, 3, 12, 12, generator=generator, dtype=torch.float64)
    coeffs = torch.rand(1, 2, 12, 12, generator=generator, dtype=torch.float64)
    basis_a, basis_b = (torch.rand(1, 2, 3, 3, 3, generator=generator, dtype=torch.float64) for _ in range(2))
    full_resolution = naive_basis_filter(image, coeffs, basis_a)
    assert torch.equal(naive_two_scale_filter(image, coeffs, basis_a, None, d=2, use_lowpass=False), full_resolution)
    assert torch.equal(naive_two_scale_filter(image, coeffs, basis_a, torch.zeros_like(basis_b), d=2), full_resolution)
    both = naive_two_scale_filter(image, coeffs, basis_a, basis_b, d=2)
    low = both - full_resolution
    assert low.abs().min() > 0
    # a flat image stays flat through the prefilter: the low term is then the flat value times the kernel sums
    flat = torch.full((1, 3, 12, 12), 0.5, dtype=torch.float64)
    low_flat = naive_two_scale_filter(flat, coeffs, basis_a, basis_b, d=2) - naive_basis_filter(flat, coeffs, basis_a)
    expected = 0.5 * torch.einsum('bjhw,bjc->bchw', coeffs, basis_b.sum(dim=(-2, -1)))
    torch.testing.assert_close(low_flat, expected, rtol=1e-12, atol=1e-12)
