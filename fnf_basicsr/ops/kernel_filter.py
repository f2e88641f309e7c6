"""Kernel-field filtering: the one place where per-pixel kernels are applied to images.

Two kinds of kernel fields are used by the networks of this package:

* Basis kernels (DeepFnF, BPN; Xia et al. 2020, 2021): the kernel at pixel ``n`` is
  ``sum_j coeffs[j, n] * basis[j]``, with a small per-image basis of ``J`` kernels.
  :func:`basis_filter` never forms these per-pixel kernels. It filters the image with every
  basis kernel (one grouped convolution) and mixes the filtered images with the per-pixel
  coefficients. That holds ``J * C`` filtered images (fewer, in chunks, during inference)
  instead of the ``H * W * C * K * K`` per-pixel kernels and equally large image patches that
  the released TensorFlow code builds (``scripts/profiling/profile_filter.py`` compares the two).
  DeepFnF's two-scale filter (:func:`two_scale_filter`) on training-size images goes through the
  Fourier domain instead: one FFT per basis element filters with the whole Eq. 3 kernel (A_j plus
  the upsampled B_j), and the basis gradient is evaluated only at the kernel taps.
* Free per-pixel kernels (KPN; Mildenhall et al. 2018): :func:`per_pixel_filter` accumulates the
  ``K * K`` shifted copies of the image, each weighted by its kernel tap, so memory stays at a
  few images.

All filters here are correlations, like ``torch.nn.functional.conv2d`` and the released code
(``out[n] = sum_k kernel[k] * image[n + k]``), with reflect padding at the image border.
Under ``torch.autocast`` they still compute in float32: half-precision sums of thousands of
products lose the low bits that a denoised image is made of.
"""
from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

# Inference memory bound of basis_filter: without autograd, the basis kernels are filtered in
# chunks whose filtered images take at most this many bytes (a 3000x2000 RGB image with J = 90 would
# otherwise hold 3000 * 2000 * 3 * 90 float32 numbers, 6.5 GB). Under autograd all of them are kept for
# the backward pass anyway, so they are filtered in one call, which is the fastest.
INFERENCE_CHUNK_BYTES = 256 * 2 ** 20
FILTER_METHODS = ('auto', 'direct', 'fourier')
# two_scale_filter's 'auto' switches to the FFT at this many pixels (see scripts/profiling/profile_filter.py).
FOURIER_MIN_PIXELS = 96 * 96
# Spectra per chunk of _FourierTwoScale: small enough to stay in the CPU caches between the FFT and the mixing.
FOURIER_CHUNK_BYTES = 4 * 2 ** 20


def tent_kernel(d: int, dtype: torch.dtype = torch.float32,
                device: torch.device | str | None = None) -> torch.Tensor:
    """The normalised (2d-1) x (2d-1) tent filter h of the paper's Eq. 4.

    It is the outer product of ``[1, 2, ..., d, ..., 2, 1]`` with itself, divided by its sum
    (``d ** 4``). Prefiltering with it and then convolving with a kernel dilated by ``d`` equals
    convolving with that kernel bilinearly upsampled by ``d`` (and divided by ``d ** 2``).

    Args:
        d: upsampling factor of the low-frequency kernels (the paper's d), >= 1.
        dtype: dtype of the result.
        device: device of the result (None: the default device).

    Returns:
        The tent, which sums to 1; ``tent_kernel(1)`` is ``[[1.]]``.

    Raises:
        ValueError: ``d`` is not a positive integer.

    Shape:
        - output: (2d-1, 2d-1).

    Example:
        >>> tent_kernel(2) * 16
        tensor([[1., 2., 1.],
                [2., 4., 2.],
                [1., 2., 1.]])
    """
    d = _check_positive_int(d, 'd')
    ramp = torch.cat([torch.arange(1, d + 1), torch.arange(d - 1, 0, -1)]).to(dtype=dtype, device=device)
    tent = torch.outer(ramp, ramp)
    return tent / tent.sum()


def mirror_pad(image: torch.Tensor, pad: int) -> torch.Tensor:
    """Reflect-pad the last two dimensions by ``pad`` pixels on every side.

    Equals ``F.pad(image, (pad,) * 4, mode='reflect')`` whenever that is defined (``pad`` smaller
    than the height and the width). Smaller images continue the same mirror-symmetric extension
    periodically, like ``numpy.pad(mode='reflect')``; a 1-pixel dimension is repeated.

    Args:
        image: the image to pad.
        pad: pixels to add on each side, >= 0.

    Returns:
        The padded image, of ``image``'s dtype.

    Shape:
        - image: (B, C, H, W).
        - output: (B, C, H + 2 * pad, W + 2 * pad).

    Example:
        >>> mirror_pad(torch.tensor([[[[1., 2.]]]]), 3)
        tensor([[[[2., 1., 2., 1., 2., 1., 2., 1.],
                  [2., 1., 2., 1., 2., 1., 2., 1.],
                  [2., 1., 2., 1., 2., 1., 2., 1.],
                  [2., 1., 2., 1., 2., 1., 2., 1.],
                  [2., 1., 2., 1., 2., 1., 2., 1.],
                  [2., 1., 2., 1., 2., 1., 2., 1.],
                  [2., 1., 2., 1., 2., 1., 2., 1.]]]])
    """
    height, width = image.shape[-2:]
    if pad < height and pad < width:
        return F.pad(image, (pad,) * 4, mode='reflect')
    rows = _mirror_indices(height, pad, image.device)
    columns = _mirror_indices(width, pad, image.device)
    return image.index_select(-2, rows).index_select(-1, columns)


def _mirror_indices(size, pad, device):
    """Source index of each of the ``size + 2 * pad`` positions of a mirror-padded axis."""
    if size == 1:
        return torch.zeros(1 + 2 * pad, dtype=torch.long, device=device)
    period = 2 * (size - 1)
    index = torch.arange(-pad, size + pad, device=device) % period
    return torch.where(index < size, index, period - index)


def lowpass_prefilter(image: torch.Tensor, d: int) -> torch.Tensor:
    """X^h of the paper's Eq. 4: each channel smoothed with :func:`tent_kernel` ``(d)``.

    Args:
        image: the image X.
        d: upsampling factor of the low-frequency kernels; ``d = 1`` returns the image.

    Returns:
        The smoothed image, computed in float32 (float64 stays float64), also under autocast.

    Raises:
        ValueError: ``image`` is not 4-dimensional.

    Shape:
        - image: (B, C, H, W).
        - output: (B, C, H, W).

    Example:
        >>> lowpass_prefilter(torch.ones(1, 3, 4, 4), 2).unique()
        tensor([1.])
    """
    _check_image(image, 'image')
    with _full_precision(image) as dtype:
        image = image.to(dtype)
        if d == 1:
            return image
        channels = image.shape[1]
        tent = tent_kernel(d, dtype=dtype, device=image.device)
        weight = tent.expand(channels, 1, *tent.shape)
        return F.conv2d(mirror_pad(image, d - 1), weight, groups=channels)


def basis_filter(image: torch.Tensor, coeffs: torch.Tensor, basis: torch.Tensor, dilation: int = 1,
                 chunk_size: int | None = None) -> torch.Tensor:
    """Filter each channel with the per-pixel kernel ``sum_j coeffs[:, j, n] * basis[:, j]``.

    Computed as ``sum_j coeffs[:, j] * (image (*)_dilation basis[:, j])``: every basis kernel
    filters the image once (a grouped convolution; the batch is folded into the groups because
    the basis differs per image) and the filtered images are mixed with the coefficients. No
    per-pixel kernel or image patch is materialised. Gradients flow to all three inputs.

    Args:
        image: the image to filter.
        coeffs: per-pixel mixing coefficients.
        basis: per-image basis, one K x K kernel per channel; K odd.
        dilation: spacing of the kernel taps; the kernel spans ``(K - 1) * dilation + 1``.
        chunk_size: basis kernels filtered per call; bounds the temporary memory to
            ``B * C * chunk_size`` images without changing the result. None: all of them when
            autograd records (they are saved for the backward pass anyway), otherwise as many as
            fit in ``INFERENCE_CHUNK_BYTES``.

    Returns:
        The filtered image, float32 (float64 if an input is float64), also under autocast.

    Raises:
        ValueError: shapes that do not match each other, an even K, or a non-positive dilation
            or chunk size.

    Shape:
        - image: (B, C, H, W).
        - coeffs: (B, J, H, W).
        - basis: (B, J, C, K, K).
        - output: (B, C, H, W).

    Example:
        >>> image = torch.rand(1, 3, 32, 32)
        >>> coeffs = torch.randn(1, 4, 32, 32)
        >>> basis = torch.randn(1, 4, 3, 5, 5)
        >>> basis_filter(image, coeffs, basis, dilation=2).shape
        torch.Size([1, 3, 32, 32])
    """
    _check_basis_inputs(image, coeffs, basis)
    dilation = _check_positive_int(dilation, 'dilation')
    kernel_size = basis.shape[-1]
    with _full_precision(image, coeffs, basis) as dtype:
        if chunk_size is None:
            chunk_size = _default_chunk_size(image, coeffs, basis, dtype)
        chunk_size = _check_positive_int(chunk_size, 'chunk_size')
        image, coeffs, basis = _dense(image, dtype), _dense(coeffs, dtype), basis.to(dtype)
        padded = mirror_pad(image, (kernel_size - 1) * dilation // 2)
        output = 0
        for start in range(0, basis.shape[1], chunk_size):
            chunk = slice(start, start + chunk_size)
            filtered = _filter_with_each_kernel(padded, basis[:, chunk], dilation)
            output = output + _MixFiltered.apply(filtered, coeffs[:, chunk])
        return output


def _filter_with_each_kernel(padded, basis, dilation):
    """Correlate each channel of ``padded`` (B, C, H+2p, W+2p) with each of its basis kernels.

    Returns (B, C, J, H, W). One grouped convolution: the groups are the B*C (image, channel)
    pairs, each with its own J kernels, so the output channels come ordered (b, c, j).
    """
    batch, num_basis, channels, kernel_size = basis.shape[:4]
    weight = basis.transpose(1, 2).reshape(batch * channels * num_basis, 1, kernel_size, kernel_size)
    grouped = padded.reshape(1, batch * channels, *padded.shape[-2:])
    filtered = F.conv2d(grouped, weight, dilation=dilation, groups=batch * channels)
    return filtered.view(batch, channels, num_basis, *filtered.shape[-2:])


class _MixFiltered(torch.autograd.Function):
    """``sum_j filtered[:, :, j] * coeffs[:, None, j]``: (B, C, J, H, W), (B, J, H, W) -> (B, C, H, W).

    Accumulates in place, one j (forward) or one channel (backward) at a time, so that no
    temporary as large as ``filtered`` is made: faster than ``(filtered * coeffs[:, None]).sum(2)``
    and than ``einsum``, which copies ``filtered`` into a batched matmul over the pixels
    (docs/speed.md, "Moved from docstrings").
    """

    @staticmethod
    def forward(ctx, filtered, coeffs):
        ctx.save_for_backward(filtered, coeffs)
        output = filtered[:, :, 0] * coeffs[:, None, 0]
        for j in range(1, filtered.shape[2]):
            output.addcmul_(filtered[:, :, j], coeffs[:, None, j])
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        filtered, coeffs = ctx.saved_tensors
        grad_filtered = grad_coeffs = None
        if ctx.needs_input_grad[0]:
            grad_filtered = grad_output[:, :, None] * coeffs[:, None]
        if ctx.needs_input_grad[1]:
            grad_coeffs = grad_output[:, 0, None] * filtered[:, 0]
            for channel in range(1, filtered.shape[1]):
                grad_coeffs.addcmul_(grad_output[:, channel, None], filtered[:, channel])
        return grad_filtered, grad_coeffs


def two_scale_filter(image: torch.Tensor, coeffs: torch.Tensor, basis_a: torch.Tensor, basis_b: torch.Tensor | None,
                     d: int, use_lowpass: bool = True, method: str = 'auto') -> torch.Tensor:
    """DeepFnF's two-scale basis filtering (paper Eq. 4).

    ``F[n] = sum_j c_j[n] * ((X * A_j)[n] + (X^h *_d B_j)[n])``: the K x K kernels A_j act on the
    image, the K x K kernels B_j, dilated by d, on the image smoothed by the (2d-1) x (2d-1) tent.
    This equals filtering with ``A_j + (B_j bilinearly upsampled by d) / d**2`` (Eq. 3), whose
    footprint is ``(K - 1) * d + 1`` samples of B_j (57 for K = 15, d = 4) widened by the tent's
    ``d - 1`` on each side (63 nonzero taps, the outermost ones interpolating towards zero).

    Two exact computations, equal up to float rounding (tests compare both with the naive form):
    ``'direct'`` filters with A_j and with the dilated B_j as two grouped convolutions
    (:func:`basis_filter`); ``'fourier'`` filters with the Eq. 3 kernel by FFT
    (:class:`_FourierTwoScale`), which costs about a third of the multiply-adds on training crops.

    Args:
        image: the no-flash image X.
        coeffs: coefficients shared by A_j and B_j.
        basis_a: the full-resolution kernels A_j.
        basis_b: the low-frequency kernels B_j; ignored (and may be None) when ``use_lowpass`` is
            False.
        d: upsampling factor of B_j (4 in the paper).
        use_lowpass: False drops the B_j term, the paper's "15x15 only" ablation (Table 2).
        method: ``'auto'`` (Fourier for images of at least ``FOURIER_MIN_PIXELS``, where it is the
            faster), ``'direct'`` or ``'fourier'``; the 15x15-only filter is always direct.

    Returns:
        The filtered image, float32 (float64 if an input is float64).

    Raises:
        ValueError: an unknown ``method``, ``basis_b`` None with ``use_lowpass``, or shapes that do
            not match (see :func:`basis_filter`).

    Shape:
        - image: (B, C, H, W).
        - coeffs: (B, J, H, W).
        - basis_a, basis_b: (B, J, C, K, K).
        - output: (B, C, H, W).

    Example:
        >>> image, coeffs = torch.rand(1, 3, 16, 16), torch.rand(1, 2, 16, 16)
        >>> basis_a, basis_b = torch.rand(1, 2, 3, 3, 3), torch.rand(1, 2, 3, 3, 3)
        >>> direct = two_scale_filter(image, coeffs, basis_a, basis_b, d=2, method='direct')
        >>> fourier = two_scale_filter(image, coeffs, basis_a, basis_b, d=2, method='fourier')
        >>> direct.shape, torch.allclose(direct, fourier, atol=1e-4)
        (torch.Size([1, 3, 16, 16]), True)
    """
    if method not in FILTER_METHODS:
        raise ValueError(f'two_scale_filter: method must be one of {list(FILTER_METHODS)}, got {method!r}.')
    if not use_lowpass:
        return basis_filter(image, coeffs, basis_a)
    if basis_b is None:
        raise ValueError('two_scale_filter: basis_b is None but use_lowpass=True; pass the low-frequency '
                         'kernels B_j (B, J, C, K, K), or use_lowpass=False for the 15x15-only ablation.')
    if method == 'auto':
        method = 'fourier' if image.shape[-2] * image.shape[-1] >= FOURIER_MIN_PIXELS else 'direct'
    if method == 'direct':
        filtered = basis_filter(image, coeffs, basis_a)
        return filtered + basis_filter(lowpass_prefilter(image, d), coeffs, basis_b, dilation=d)
    return fourier_two_scale_filter(image, coeffs, basis_a, basis_b, d)


def fourier_two_scale_filter(image: torch.Tensor, coeffs: torch.Tensor, basis_a: torch.Tensor,
                             basis_b: torch.Tensor, d: int) -> torch.Tensor:
    """:func:`two_scale_filter` computed with FFTs (its ``method='fourier'``).

    The image is mirror-padded once by the Eq. 3 kernel's half-width ``(K - 1) * d / 2 + d - 1``
    (reflect padding commutes with the symmetric tent, so this equals padding X and X^h apart).

    Args:
        image: the no-flash image X.
        coeffs: coefficients shared by A_j and B_j.
        basis_a: the full-resolution kernels A_j.
        basis_b: the low-frequency kernels B_j.
        d: upsampling factor of B_j.

    Returns:
        The filtered image, float32 (float64 if an input is float64), also under autocast.

    Raises:
        ValueError: shapes that do not match (see :func:`basis_filter`) or a non-positive ``d``.

    Shape:
        - image: (B, C, H, W).
        - coeffs: (B, J, H, W).
        - basis_a, basis_b: (B, J, C, K, K).
        - output: (B, C, H, W).

    Example:
        >>> image, coeffs = torch.rand(1, 3, 8, 8), torch.rand(1, 2, 8, 8)
        >>> fourier_two_scale_filter(image, coeffs, torch.rand(1, 2, 3, 3, 3), torch.rand(1, 2, 3, 3, 3), 2).shape
        torch.Size([1, 3, 8, 8])
    """
    _check_basis_inputs(image, coeffs, basis_a)
    _check_basis_inputs(image, coeffs, basis_b)
    d = _check_positive_int(d, 'd')
    with _full_precision(image, coeffs, basis_a, basis_b) as dtype:
        padded = mirror_pad(_dense(image, dtype), _eq3_half_width(basis_a.shape[-1], d))
        # The filtered images are kept for the coefficients' gradient only when autograd will ask for it.
        keep_filtered = torch.is_grad_enabled() and coeffs.requires_grad
        return _FourierTwoScale.apply(padded, _dense(coeffs, dtype), basis_a.to(dtype), basis_b.to(dtype), d,
                                      keep_filtered)


def _eq3_half_width(kernel_size, d):
    return (kernel_size - 1) * d // 2 + d - 1


def _fft_length(length):
    """The smallest 2^a 3^b 5^c >= ``length``: the sizes FFT libraries are fastest at."""
    best = 1 << (length - 1).bit_length()
    for odd in (1, 3, 5, 9, 15, 25, 27, 45, 75, 81):
        size = odd
        while size < length:
            size *= 2
        best = min(best, size)
    return best


class _Eq3Spectra:
    """The DFT (on an N x M grid, M // 2 + 1 real-FFT columns) of the Eq. 3 kernel of each (A_j, B_j).

    The kernel ``W = A (at offset half - (K - 1) / 2) + tent * (B dilated by d)`` spans
    2 * half + 1 taps, so its DFT is separable per term: ``E_A,u A E_A,v^T + E_B,u B E_B,v^T``, with
    ``E[u, a] = exp(-2 pi i u offset(a) / N)`` and the tent's DFT folded into ``E_B``. Small matrix
    products replace one zero-padded N x M FFT per kernel; :meth:`adjoint` is their transpose, the
    basis gradient.
    """

    def __init__(self, padded_shape, kernel_size, d, dtype, device):
        half = _eq3_half_width(kernel_size, d)
        span = 2 * half + 1
        self.height, self.width = padded_shape[-2] - 2 * half, padded_shape[-1] - 2 * half
        self.rows, self.cols = _fft_length(self.height + span - 1), _fft_length(self.width + span - 1)
        self.kernel_size = kernel_size
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        self.rows_a, self.rows_b = (e.to(complex_dtype) for e in _eq3_dft(self.rows, kernel_size, d, half, device))
        keep = self.cols // 2 + 1
        cols = torch.cat(_eq3_dft(self.cols, kernel_size, d, half, device), dim=1)[:keep]  # (M // 2 + 1, 2K)
        self.cols_t = cols.T.to(complex_dtype).contiguous()
        # Inverse real FFT along the columns: those standing for two conjugate frequencies count twice.
        weights = torch.full((keep, 1), 2.0, dtype=torch.float64, device=device)
        weights[0] = 1.0
        if self.cols % 2 == 0:
            weights[-1] = 1.0
        self.cols_adjoint = (weights * cols.conj() / (self.rows * self.cols)).to(complex_dtype)
        self.complex_dtype = complex_dtype

    def kernels(self, basis_a, basis_b):
        """(B, j, C, K, K) x 2 -> (B, j, C, N, M // 2 + 1) complex spectra."""
        # Rows first, then one product with inner size 2K for both terms: its output is the sum, and the large
        # operand is only ever multiplied from the right (batch dimensions fold into rows, no transposed copies).
        rows = torch.cat([self.rows_a @ basis_a.to(self.complex_dtype), self.rows_b @ basis_b.to(self.complex_dtype)],
                         dim=-1)
        return rows @ self.cols_t

    def adjoint(self, product):
        """Gradients of (A, B), (B, j, C, K, K) each, from ``product = conj(grad spectrum) * image spectrum``.

        The Fourier-domain correlation of the weighted gradient with the padded image, inverse-transformed
        only at the kernel taps of each term.
        """
        columns = product @ self.cols_adjoint  # (B, j, C, N, 2K)
        size = self.kernel_size
        grad_a = self.rows_a.conj().T @ columns[..., :size]
        grad_b = self.rows_b.conj().T @ columns[..., size:]
        return grad_a.real, grad_b.real


def _eq3_dft(length, kernel_size, d, half, device):
    """Float64 DFT matrices (length, K) of the Eq. 3 kernel's two terms along one axis."""
    def dft(taps, offset, step):
        frequency = torch.arange(length, dtype=torch.float64, device=device)[:, None]
        position = offset + step * torch.arange(taps, dtype=torch.float64, device=device)[None]
        unit = torch.ones((), dtype=torch.float64, device=device)
        return torch.polar(unit, -2 * math.pi * frequency * position / length)

    ramp = torch.cat([torch.arange(1, d + 1), torch.arange(d - 1, 0, -1)]).to(torch.float64).to(device) / d ** 2
    tent = dft(2 * d - 1, 0, 1) @ ramp.to(torch.complex128)  # the 1-D tent; the 2-D one is its outer product
    return dft(kernel_size, half - (kernel_size - 1) // 2, 1), tent[:, None] * dft(kernel_size, 0, d)


class _FourierTwoScale(torch.autograd.Function):
    """Eq. 3-4 by FFT: ``out = sum_j c_j * irfft2(conj(W_j^) * P^)``, P the padded image, W_j the Eq. 3 kernel.

    Circular correlation on an N x M grid with N >= H + 2 * half (likewise M) never wraps into the
    outputs kept, so it is the linear one. The basis elements go through in chunks of
    ``FOURIER_CHUNK_BYTES`` of spectra (cache-sized; measured faster than all at once). The
    backward pass reuses the forward's filtered images for the coefficients, and for the basis
    correlates ``grad * c_j`` with P in the Fourier domain, evaluated only at the kernel taps
    (:meth:`_Eq3Spectra.adjoint`); the image gradient sums the spectra over j before one inverse FFT.
    """

    @staticmethod
    def forward(ctx, padded, coeffs, basis_a, basis_b, d, keep_filtered):
        spectra = _Eq3Spectra(padded.shape, basis_a.shape[-1], d, padded.dtype, padded.device)
        height, width = spectra.height, spectra.width
        image_spectrum = torch.fft.rfft2(padded, s=(spectra.rows, spectra.cols))[:, None]
        batch, num_basis, channels = basis_a.shape[:3]
        filtered_all = padded.new_empty(batch, num_basis, channels, height, width) if keep_filtered else None
        output = padded.new_zeros(batch, channels, height, width)
        for chunk in _fourier_chunks(spectra, batch, num_basis, channels):
            product = spectra.kernels(basis_a[:, chunk], basis_b[:, chunk]).conj_physical_().mul_(image_spectrum)
            filtered = torch.fft.irfft2(product, s=(spectra.rows, spectra.cols))[..., :height, :width]
            if keep_filtered:
                filtered_all[:, chunk] = filtered
            for offset, j in enumerate(range(num_basis)[chunk]):
                output.addcmul_(filtered[:, offset], coeffs[:, j, None])
        ctx.spectra, ctx.padded_size = spectra, padded.shape[-2:]
        ctx.save_for_backward(image_spectrum, coeffs, basis_a, basis_b, filtered_all)
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        image_spectrum, coeffs, basis_a, basis_b, filtered = ctx.saved_tensors
        spectra = ctx.spectra
        need_image, need_coeffs, need_a, need_b = ctx.needs_input_grad[:4]
        grad_coeffs = _mix_gradient(filtered, grad_output) if need_coeffs else None
        grad_a = torch.zeros_like(basis_a) if need_a else None
        grad_b = torch.zeros_like(basis_b) if need_b else None
        image_grad_spectrum = 0
        if need_image or need_a or need_b:
            batch, num_basis, channels = basis_a.shape[:3]
            for chunk in _fourier_chunks(spectra, batch, num_basis, channels):
                weighted = grad_output[:, None] * coeffs[:, chunk, None]  # (B, j, C, H, W)
                spectrum = torch.fft.rfft2(weighted, s=(spectra.rows, spectra.cols))
                if need_image:
                    kernels = spectra.kernels(basis_a[:, chunk], basis_b[:, chunk])
                    image_grad_spectrum = image_grad_spectrum + (spectrum * kernels).sum(1)
                if need_a or need_b:
                    chunk_a, chunk_b = spectra.adjoint(spectrum.conj_physical_().mul_(image_spectrum))
                    if need_a:
                        grad_a[:, chunk] = chunk_a
                    if need_b:
                        grad_b[:, chunk] = chunk_b
        grad_padded = None
        if need_image:
            grad_padded = torch.fft.irfft2(image_grad_spectrum, s=(spectra.rows, spectra.cols))
            grad_padded = grad_padded[..., :ctx.padded_size[0], :ctx.padded_size[1]].contiguous()
        return grad_padded, grad_coeffs, grad_a, grad_b, None, None


def _fourier_chunks(spectra, batch, num_basis, channels):
    """Slices of the basis elements whose spectra take about ``FOURIER_CHUNK_BYTES`` each."""
    element_bytes = batch * channels * spectra.rows * (spectra.cols // 2 + 1) * spectra.cols_t.element_size()
    size = max(1, min(num_basis, FOURIER_CHUNK_BYTES // element_bytes))
    return [slice(start, start + size) for start in range(0, num_basis, size)]


def _mix_gradient(filtered, grad_output):
    """``sum_c grad_output[:, c] * filtered[:, :, c]``: (B, J, C, H, W), (B, C, H, W) -> (B, J, H, W), in place."""
    grad = filtered[:, :, 0] * grad_output[:, None, 0]
    for channel in range(1, filtered.shape[2]):
        grad.addcmul_(filtered[:, :, channel], grad_output[:, None, channel])
    return grad


def per_pixel_filter(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Filter with one K x K kernel per pixel, shared by all channels (KPN, Mildenhall et al. 2018).

    ``out[:, c, n] = sum_k kernels[:, k, n] * image[:, c, n + k]``, accumulated in place over
    the K*K offsets of the reflect-padded image (also in the backward pass), so that no K*K copy
    of the image, and no per-offset gradient as large as ``kernels``, is ever held.

    Args:
        image: the image to filter.
        kernels: per-pixel kernels, taps in row-major (dy, dx) order; K odd.

    Returns:
        The filtered image, float32 (float64 if an input is float64), also under autocast.

    Raises:
        ValueError: a channel count of ``kernels`` that is not an odd square, or sizes that differ
            from the image's.

    Shape:
        - image: (B, C, H, W).
        - kernels: (B, K*K, H, W).
        - output: (B, C, H, W).

    Example:
        >>> image = torch.rand(1, 3, 5, 5)
        >>> identity = torch.zeros(1, 9, 5, 5)
        >>> identity[:, 4] = 1  # the centre tap
        >>> torch.equal(per_pixel_filter(image, identity), image)
        True
    """
    _check_image(image, 'image')
    _check_image(kernels, 'kernels')
    kernel_size = round(kernels.shape[1] ** 0.5)
    if kernel_size ** 2 != kernels.shape[1] or kernel_size % 2 == 0:
        raise ValueError(f'per_pixel_filter: kernels must have K*K channels with K odd, got {kernels.shape[1]} '
                         f'channels (shape {tuple(kernels.shape)}); reshape the predicted kernels to (B, K*K, H, W).')
    if kernels.shape[0] != image.shape[0] or kernels.shape[-2:] != image.shape[-2:]:
        raise ValueError(f'per_pixel_filter: kernels {tuple(kernels.shape)} do not match image {tuple(image.shape)}; '
                         'expected the same batch size, height and width.')
    with _full_precision(image, kernels) as dtype:
        padded = mirror_pad(_dense(image, dtype), (kernel_size - 1) // 2)
        return _PerPixelFilter.apply(padded, _dense(kernels, dtype))


class _PerPixelFilter(torch.autograd.Function):
    """Per-pixel K x K filtering of a padded image (B, C, H+K-1, W+K-1) with kernels (B, K*K, H, W).

    A custom backward because autograd would give each of the K*K kernel slices a gradient the
    size of all kernels, then add them up: K*K times the memory traffic of the kernels.
    """

    @staticmethod
    def forward(ctx, padded, kernels):
        ctx.save_for_backward(padded, kernels)
        output = _tap_window(padded, 0, kernels) * kernels[:, 0:1]
        for tap in range(1, kernels.shape[1]):
            output.addcmul_(_tap_window(padded, tap, kernels), kernels[:, tap:tap + 1])
        return output

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_output):
        padded, kernels = ctx.saved_tensors
        grad_padded = torch.zeros_like(padded) if ctx.needs_input_grad[0] else None
        grad_kernels = torch.empty_like(kernels) if ctx.needs_input_grad[1] else None
        for tap in range(kernels.shape[1]):
            if grad_kernels is not None:
                torch.sum(grad_output * _tap_window(padded, tap, kernels), dim=1, out=grad_kernels[:, tap])
            if grad_padded is not None:
                _tap_window(grad_padded, tap, kernels).addcmul_(grad_output, kernels[:, tap:tap + 1])
        return grad_padded, grad_kernels


def _tap_window(padded, tap, kernels):
    """The view of ``padded`` that kernel tap ``tap`` (row-major) weights at every output pixel."""
    kernel_size = round(kernels.shape[1] ** 0.5)
    dy, dx = divmod(tap, kernel_size)
    return padded[..., dy:dy + kernels.shape[-2], dx:dx + kernels.shape[-1]]


def _dense(tensor, dtype):
    """``tensor`` in ``dtype`` and NCHW-contiguous: the filters walk it one channel at a time, and a
    channels_last map (e.g. coefficients sliced from a channels_last network's output) would make
    each pass read every channel's cache lines."""
    return tensor.to(dtype).contiguous()


def _default_chunk_size(image, coeffs, basis, dtype):
    num_basis = basis.shape[1]
    if torch.is_grad_enabled() and any(t.requires_grad for t in (image, coeffs, basis)):
        return num_basis
    bytes_per_kernel = image.numel() * torch.finfo(dtype).bits // 8
    return max(1, min(num_basis, INFERENCE_CHUNK_BYTES // bytes_per_kernel))


@contextlib.contextmanager
def _full_precision(*tensors):
    """Turn autocast off; yield the dtype to compute in (float64 if any input is, else float32)."""
    dtype = torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
    with torch.autocast(device_type=tensors[0].device.type, enabled=False):
        yield dtype


def _check_positive_int(value, name):
    if int(value) != value or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}.')
    return int(value)


def _check_image(tensor, name):
    if tensor.dim() != 4:
        raise ValueError(f'{name} must have shape (B, C, H, W), got {tuple(tensor.shape)}.')


def _check_basis_inputs(image, coeffs, basis):
    _check_image(image, 'basis_filter: image')
    _check_image(coeffs, 'basis_filter: coeffs')
    if basis.dim() != 5:
        raise ValueError(f'basis_filter: basis must have shape (B, J, C, K, K), got {tuple(basis.shape)}.')
    batch, channels, height, width = image.shape
    num_basis, kernel_size = basis.shape[1], basis.shape[-1]
    expected_basis = (batch, num_basis, channels, kernel_size, kernel_size)
    if tuple(basis.shape) != expected_basis or kernel_size % 2 == 0:
        raise ValueError(f'basis_filter: basis has shape {tuple(basis.shape)}, expected {expected_basis} '
                         f'(B, J, C, K, K with K odd) for image {tuple(image.shape)}.')
    if tuple(coeffs.shape) != (batch, num_basis, height, width):
        raise ValueError(f'basis_filter: coeffs have shape {tuple(coeffs.shape)}, expected '
                         f'{(batch, num_basis, height, width)} (B, J, H, W) for image {tuple(image.shape)} '
                         f'and a basis of J={num_basis} kernels.')
