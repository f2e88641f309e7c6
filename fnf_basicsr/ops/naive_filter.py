"""The naive per-pixel-kernel form of kernel-field filtering: the reference to test and benchmark against.

This is what the released DeepFnF / BPN TensorFlow code does (``apply_filtering`` in
``utils/tf_utils.py``): form the per-pixel kernels (coefficients times basis, H*W*C*K*K numbers),
extract the image patches (as many), multiply and sum. :mod:`fnf_basicsr.ops.kernel_filter` computes
the same without either; ``tests/ops/test_kernel_filter.py`` checks the equality and
``scripts/profiling/profile_filter.py`` measures the difference. Never used by a network.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from fnf_basicsr.ops.kernel_filter import lowpass_prefilter


def naive_basis_filter(image: torch.Tensor, coeffs: torch.Tensor, basis: torch.Tensor,
                       dilation: int = 1) -> torch.Tensor:
    """Reference for :func:`~fnf_basicsr.ops.kernel_filter.basis_filter`: per-pixel kernels times image patches.

    Needs O(H * W * C * K * K) memory; computes in the inputs' dtype, with no checks.

    Args:
        image: the image to filter.
        coeffs: per-pixel mixing coefficients.
        basis: per-image basis, one K x K kernel per channel; K odd.
        dilation: spacing of the kernel taps.

    Returns:
        The filtered image.

    Shape:
        - image: (B, C, H, W).
        - coeffs: (B, J, H, W).
        - basis: (B, J, C, K, K).
        - output: (B, C, H, W).

    Example:
        >>> from fnf_basicsr.ops.kernel_filter import basis_filter
        >>> image, coeffs, basis = torch.rand(1, 3, 8, 8), torch.rand(1, 2, 8, 8), torch.rand(1, 2, 3, 3, 3)
        >>> torch.allclose(naive_basis_filter(image, coeffs, basis), basis_filter(image, coeffs, basis), atol=1e-5)
        True
    """
    batch, channels, height, width = image.shape
    num_basis, kernel_size = basis.shape[1], basis.shape[-1]
    pad = (kernel_size - 1) * dilation // 2
    padded = F.pad(image, (pad,) * 4, mode='reflect')
    patches = F.unfold(padded, kernel_size, dilation=dilation)
    patches = patches.view(batch, channels, kernel_size * kernel_size, height * width)
    kernels = torch.einsum('bjn,bjck->bckn', coeffs.reshape(batch, num_basis, height * width),
                           basis.reshape(batch, num_basis, channels, kernel_size * kernel_size))
    return (patches * kernels).sum(2).view(batch, channels, height, width)


def naive_two_scale_filter(image: torch.Tensor, coeffs: torch.Tensor, basis_a: torch.Tensor,
                           basis_b: torch.Tensor | None, d: int, use_lowpass: bool = True) -> torch.Tensor:
    """Reference for :func:`~fnf_basicsr.ops.kernel_filter.two_scale_filter` built on :func:`naive_basis_filter`.

    Args:
        image: the no-flash image X.
        coeffs: coefficients shared by A_j and B_j.
        basis_a: the full-resolution kernels A_j.
        basis_b: the low-frequency kernels B_j; ignored when ``use_lowpass`` is False.
        d: upsampling factor of B_j.
        use_lowpass: False drops the B_j term.

    Returns:
        The filtered image.

    Shape:
        - image: (B, C, H, W).
        - coeffs: (B, J, H, W).
        - basis_a, basis_b: (B, J, C, K, K).
        - output: (B, C, H, W).

    Example:
        >>> image, coeffs = torch.rand(1, 3, 8, 8), torch.rand(1, 2, 8, 8)
        >>> naive_two_scale_filter(image, coeffs, torch.rand(1, 2, 3, 3, 3), torch.rand(1, 2, 3, 3, 3), d=2).shape
        torch.Size([1, 3, 8, 8])
    """
    filtered = naive_basis_filter(image, coeffs, basis_a)
    if not use_lowpass:
        return filtered
    return filtered + naive_basis_filter(lowpass_prefilter(image, d), coeffs, basis_b, dilation=d)


def naive_per_pixel_filter(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Reference for :func:`~fnf_basicsr.ops.kernel_filter.per_pixel_filter`: unfold K*K patches and weight them.

    Args:
        image: the image to filter.
        kernels: per-pixel kernels, taps in row-major (dy, dx) order; K odd.

    Returns:
        The filtered image.

    Shape:
        - image: (B, C, H, W).
        - kernels: (B, K*K, H, W).
        - output: (B, C, H, W).

    Example:
        >>> from fnf_basicsr.ops.kernel_filter import per_pixel_filter
        >>> image, kernels = torch.rand(1, 3, 6, 6), torch.rand(1, 9, 6, 6)
        >>> torch.allclose(naive_per_pixel_filter(image, kernels), per_pixel_filter(image, kernels), atol=1e-5)
        True
    """
    batch, channels, height, width = image.shape
    kernel_size = round(kernels.shape[1] ** 0.5)
    pad = (kernel_size - 1) // 2
    patches = F.unfold(F.pad(image, (pad,) * 4, mode='reflect'), kernel_size)
    patches = patches.view(batch, channels, kernel_size * kernel_size, height * width)
    weights = kernels.reshape(batch, 1, kernel_size * kernel_size, height * width)
    return (patches * weights).sum(2).view(batch, channels, height, width)
