"""The naive per-pixel-kernel form of kernel-field filtering: the reference to test and benchmark against.

This is what the released DeepFnF / BPN TensorFlow code does (``apply_filtering`` in
``utils/tf_utils.py``): form the per-pixel kernels (coefficients times basis, H*W*C*K*K numbers),
extract the image patches (as many), multiply and sum. :mod:`fnf_basicsr.ops.kernel_filter` computes
the same without either; ``tests/test_kernel_filter.py`` checks the equality and
``scripts/profiling/benchmark_filter.py`` measures the difference. Never used by a network.
"""
import torch
import torch.nn.functional as F

from fnf_basicsr.ops.kernel_filter import lowpass_prefilter


def naive_basis_filter(image, coeffs, basis, dilation=1):
    """Reference for :func:`~fnf_basicsr.ops.kernel_filter.basis_filter`: per-pixel kernels times image patches.

    Shapes as in :func:`~fnf_basicsr.ops.kernel_filter.basis_filter`; needs O(H * W * C * K * K) memory.
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


def naive_two_scale_filter(image, coeffs, basis_a, basis_b, d, use_lowpass=True):
    """Reference for :func:`~fnf_basicsr.ops.kernel_filter.two_scale_filter` built on :func:`naive_basis_filter`."""
    filtered = naive_basis_filter(image, coeffs, basis_a)
    if not use_lowpass:
        return filtered
    return filtered + naive_basis_filter(lowpass_prefilter(image, d), coeffs, basis_b, dilation=d)


def naive_per_pixel_filter(image, kernels):
    """Reference for :func:`~fnf_basicsr.ops.kernel_filter.per_pixel_filter`: unfold K*K patches and weight them."""
    batch, channels, height, width = image.shape
    kernel_size = round(kernels.shape[1] ** 0.5)
    pad = (kernel_size - 1) // 2
    patches = F.unfold(F.pad(image, (pad,) * 4, mode='reflect'), kernel_size)
    patches = patches.view(batch, channels, kernel_size * kernel_size, height * width)
    weights = kernels.reshape(batch, 1, kernel_size * kernel_size, height * width)
    return (patches * weights).sum(2).view(batch, channels, height, width)
