"""Classical flash/no-flash reference: joint bilateral denoising with detail transfer.

Petschnigg, Agrawala, Hoppe, Szeliski, Cohen, Toyama, "Digital Photography with Flash and
No-Flash Image Pairs", SIGGRAPH 2004, Sections 4.1 to 4.3, with A the no-flash and F the flash:

- denoising: ``A_NR`` = joint bilateral filter of A whose range weights come from F (the flash
  has far less noise, so its edges decide what is averaged); here one guide for all three
  channels, F's luminance, which has sqrt(3) less noise than a single channel;
- detail transfer: ``A_NR * F_Detail`` with ``F_Detail = (F + eps) / (F_Base + eps)``, ``F_Base``
  the bilateral filter of F (F's fine texture, which the filtering removed from A);
- a mask M of flash shadows and specularities, where F says nothing about A's detail.

What differs from the paper, and why:
- the mask only switches off the detail layer, ``A_NR * (1 + (1 - M) * (F_Detail - 1))``; the
  paper replaces the masked pixels by ``A_Base``, the bilateral filter of A alone. At this
  project's noise levels A alone is hopeless (signal-to-noise below 1 at dimming factor 100),
  while the joint filter is harmless there: in a shadow the flash guide holds only the same
  ambient light plus noise, so it averages like a plain bilateral filter, and where the test
  also flags dark but flash-lit albedo the flash's edges still help. The paper's replacement
  scored lower on our photo-textured test scenes and no better on our ray-cast ones
  (docs/evaluation.md, "Moved from docstrings");
- all filters run on a bilateral grid (:func:`bilateral_grid_filter`), which is O(H * W);
- range differences are measured in the variance-stabilised domain (unit noise std), so the
  range sigma is a number of noise stds; the values averaged stay linear, so the averages are
  unbiased;
- the spatial sigma is set per image from the no-flash image's noise level (see
  :meth:`JointBilateralFnF.spatial_sigma`) instead of by hand;
- the shadow test compares the flash's contribution F - A with its own noise (a few stds), not a
  threshold read off a histogram of F - A; the specular test is the paper's (95 % of the
  flash's white level).
The flash is misaligned by a small homography in this project's data and is used as it comes:
the paper assumes aligned pairs, and that weakness is part of what the benchmark shows.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from fnf_basicsr.archs.classical_util import (FLASH, FLASH_STD, NO_FLASH, NO_FLASH_STD, bilateral_grid_filter,
                                              check_fnf_input, fit_noise_model, gaussian_blur, stabilize_variance)
from fnf_basicsr.data.degradation import FLASH_GAIN
from fnf_basicsr.data.noise import variance_from_terms

# Smallest spatial sigma, pixels: the grid gets expensive below it and gains nothing on our scenes.
MIN_SIGMA_SPACE = 2.0
# Std (pixels) of the smoothing before the shadow and specular tests: enough to tame the noise, small
# enough that a bright flash-lit border does not leak far into a shadow (it leaks about 2.2 stds).
MASK_SMOOTHING = 1.0


@ARCH_REGISTRY.register()
class JointBilateralFnF(nn.Module):
    """Joint bilateral flash/no-flash denoising (Petschnigg et al. 2004); see the module docstring.

    No learned parameters (``trainable = False``): FnFModel only runs it. Runs on the input's
    device; results are bit-identical between runs on the CPU.

    The scores behind the defaults of ``flat_noise_target``, ``detail_transfer`` and
    ``detail_eps`` are in docs/evaluation.md ("Moved from docstrings").

    Args:
        sigma_space: spatial std in pixels; None (default) sets it per image so that a Gaussian
            average over a flat area leaves ``flat_noise_target`` of relative noise.
        flat_noise_target: relative noise (noise std / mean signal) left on flat areas, used when
            ``sigma_space`` is None; 0.03 comes close to the best spatial sigma per image on our
            scenes.
        max_sigma_space_fraction: the automatic spatial sigma is at most this fraction of the
            shorter image side.
        sigma_range: range std in noise stds of the stabilised guide.
        detail_transfer: multiply by the flash detail layer ``(F + eps) / (F_Base + eps)``. On by
            default because it is part of the paper's method; it helped on our photo-textured
            scenes and not on our ray-cast ones (the misaligned flash's edges and its specular
            shading enter the detail layer).
        detail_eps: ``eps`` of the detail layer as a fraction of ``flash_white_level``; it keeps
            dark, noisy flash pixels from injecting noise. The paper used 0.02 (white at 1); 0.05
            scored better on our ray-cast scenes.
        flash_mask: no detail transfer in flash shadows and specularities.
        shadow_threshold: a pixel is in flash shadow when the flash adds less than this many noise
            stds (of the 1-px-smoothed difference F - A) to the no-flash image.
        specular_fraction: a pixel is specular when the smoothed flash luminance exceeds this
            fraction of ``flash_white_level`` (the paper's 95 % of the sensor range).
        flash_white_level: the saturation level of the flash channels; the default is FAID's white
            level 1 times the dataset's flash gain (:data:`FLASH_GAIN`).
        mask_dilation: pixels by which the mask grows (covers shadow borders and misalignment).
        mask_feather: std in pixels of the Gaussian that softens the mask's edges.

    Shape:
        - Input: (B, 12, H, W): noisy no-flash 0:3, noisy flash 3:6, their std maps 6:9, 9:12.
        - Output: (B, 3, H, W) linear estimate of the no-flash image at the input's scale.

    Example:
        >>> lq = torch.rand(1, 12, 32, 32) * 0.01
        >>> JointBilateralFnF()(lq).shape
        torch.Size([1, 3, 32, 32])
    """

    trainable = False

    def __init__(self, sigma_space: float | None = None, flat_noise_target: float = 0.03,
                 max_sigma_space_fraction: float = 1 / 32, sigma_range: float = 6.0, detail_transfer: bool = True,
                 detail_eps: float = 0.05, flash_mask: bool = True, shadow_threshold: float = 3.0,
                 specular_fraction: float = 0.95, flash_white_level: float = FLASH_GAIN, mask_dilation: int = 4,
                 mask_feather: float = 2.0):
        super().__init__()
        positive = dict(flat_noise_target=flat_noise_target, max_sigma_space_fraction=max_sigma_space_fraction,
                        sigma_range=sigma_range, detail_eps=detail_eps, specular_fraction=specular_fraction,
                        flash_white_level=flash_white_level)
        bad = {key: value for key, value in positive.items() if not value > 0}
        if sigma_space is not None and not sigma_space >= 1:
            bad['sigma_space'] = sigma_space
        if bad:
            raise ValueError(f'JointBilateralFnF got invalid network_g keys {bad}: sigma_space must be None or >= 1 '
                             'pixel and the others positive; fix the option file')
        self.sigma_space = sigma_space
        self.flat_noise_target = flat_noise_target
        self.max_sigma_space_fraction = max_sigma_space_fraction
        self.sigma_range = sigma_range
        self.detail_transfer = detail_transfer
        self.detail_eps = detail_eps
        self.flash_mask = flash_mask
        self.shadow_threshold = shadow_threshold
        self.specular_fraction = specular_fraction
        self.flash_white_level = flash_white_level
        self.mask_dilation = int(mask_dilation)
        self.mask_feather = mask_feather

    @torch.no_grad()
    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """Denoise every sample of ``lq`` (computed in float32, returned in ``lq``'s dtype).

        Args:
            lq: the 12-channel flash/no-flash input.

        Returns:
            The linear estimate of the no-flash image at the input's scale.

        Raises:
            ValueError: ``lq`` is not (B, 12, H, W).

        Shape:
            - lq: (B, 12, H, W).
            - output: (B, 3, H, W).

        Example:
            >>> JointBilateralFnF(sigma_space=2.0)(torch.rand(2, 12, 16, 16) * 0.01).shape
            torch.Size([2, 3, 16, 16])
        """
        check_fnf_input(lq, type(self).__name__)
        return torch.stack([self._filter(sample.float()) for sample in lq]).to(lq.dtype)

    def _filter(self, sample):
        """Denoise one (12, H, W) sample; returns (3, H, W)."""
        no_flash, flash = sample[NO_FLASH], sample[FLASH]
        no_flash_noise = fit_noise_model(no_flash, sample[NO_FLASH_STD])
        flash_noise = fit_noise_model(flash, sample[FLASH_STD])
        flash_guide = _stabilized_luminance(flash, flash_noise)
        no_flash_guide = _stabilized_luminance(no_flash, no_flash_noise)
        sigma_space = self.spatial_sigma(no_flash_guide)

        result = bilateral_grid_filter(no_flash, flash_guide, sigma_space, self.sigma_range)
        if self.detail_transfer:
            flash_base = bilateral_grid_filter(flash, flash_guide, sigma_space, self.sigma_range)
            eps = self.detail_eps * self.flash_white_level
            detail = (flash + eps) / (flash_base + eps)
            if self.flash_mask:
                mask = self.unreliable_flash_mask(no_flash, flash, no_flash_noise, flash_noise)
                detail = 1 + (1 - mask) * (detail - 1)
            result = result * detail
        return result

    def spatial_sigma(self, no_flash_guide: torch.Tensor) -> float:
        """Spatial std (pixels) for one image, from its stabilised luminance (unit noise std).

        The mean of the stabilised image is the mean signal in noise stds (its SNR). A Gaussian of
        std s averages about 4 * pi * s^2 pixels, so on a flat area it leaves a relative noise of
        1 / (SNR * sqrt(4 * pi) * s); s is chosen to make that ``flat_noise_target``, then
        clamped to [2 px, max_sigma_space_fraction * shorter side].

        Args:
            no_flash_guide: (H, W) stabilised luminance of the no-flash image, in noise stds.

        Returns:
            ``sigma_space`` when set, else the automatic spatial std in pixels.

        Example:
            >>> net = JointBilateralFnF()
            >>> net.spatial_sigma(torch.full((256, 256), 1000.0)), net.spatial_sigma(torch.full((256, 256), 0.1))
            (2.0, 8.0)
        """
        if self.sigma_space is not None:
            return float(self.sigma_space)
        # The guide is a sum of 3 channels scaled to unit noise; per-channel SNR is its mean / sqrt(3).
        snr = max(no_flash_guide.mean().item() / math.sqrt(3), 1e-6)
        sigma = 1 / (snr * math.sqrt(4 * math.pi) * self.flat_noise_target)
        largest = max(MIN_SIGMA_SPACE, self.max_sigma_space_fraction * min(no_flash_guide.shape))
        return min(max(sigma, MIN_SIGMA_SPACE), largest)

    def unreliable_flash_mask(self, no_flash: torch.Tensor, flash: torch.Tensor, no_flash_noise: tuple[float, float],
                              flash_noise: tuple[float, float]) -> torch.Tensor:
        """Soft (1, H, W) mask, 1 where the flash is in shadow or specular (Petschnigg Sec. 4.3).

        Args:
            no_flash: (3, H, W) noisy linear no-flash image.
            flash: (3, H, W) noisy linear flash image.
            no_flash_noise: the no-flash image's fitted (read_var, shot_var).
            flash_noise: the flash image's fitted (read_var, shot_var).

        Returns:
            The mask, values in [0, 1].

        Shape:
            - no_flash, flash: (3, H, W).
            - output: (1, H, W).

        Example:
            >>> no_flash, flash = torch.full((3, 32, 32), 0.01), torch.full((3, 32, 32), 0.5)
            >>> flash[:, :, :16] = 0.01  # the left half in flash shadow
            >>> mask = JointBilateralFnF().unreliable_flash_mask(no_flash, flash, (1e-6, 1e-6), (1e-6, 1e-6))
            >>> mask.shape, round(mask[0, 16, 0].item(), 3), round(mask[0, 16, 31].item(), 3)
            (torch.Size([1, 32, 32]), 1.0, 0.0)
        """
        smoothing = MASK_SMOOTHING
        no_flash_lum = gaussian_blur(no_flash.mean(0, keepdim=True)[None], smoothing)[0]
        flash_lum = gaussian_blur(flash.mean(0, keepdim=True)[None], smoothing)[0]
        # Noise std of the smoothed luminance difference: per-pixel variances of both images, / 3
        # for the channel mean, / (4 pi s^2) for the Gaussian average.
        variance = sum(variance_from_terms(lum, read_var, shot_var)
                       for lum, (read_var, shot_var) in ((no_flash_lum, no_flash_noise), (flash_lum, flash_noise)))
        difference_std = torch.sqrt(variance / 3 / (4 * math.pi * smoothing ** 2))
        shadow = flash_lum - no_flash_lum < self.shadow_threshold * difference_std
        specular = flash_lum >= self.specular_fraction * self.flash_white_level
        mask = (shadow | specular).float()[None]
        mask = F.max_pool2d(-F.max_pool2d(-mask, 3, 1, 1), 3, 1, 1)  # opening: drop isolated noise hits
        if self.mask_dilation > 0:
            mask = F.max_pool2d(mask, 2 * self.mask_dilation + 1, 1, self.mask_dilation)
        return gaussian_blur(mask, self.mask_feather)[0]

    def extra_repr(self) -> str:
        """The main options, shown by ``print(net)``.

        Returns:
            ``'sigma_space=..., sigma_range=..., detail_transfer=..., flash_mask=...'``.

        Example:
            >>> JointBilateralFnF().extra_repr()
            'sigma_space=auto, sigma_range=6.0, detail_transfer=True, flash_mask=True'
        """
        sigma = 'auto' if self.sigma_space is None else self.sigma_space
        return (f'sigma_space={sigma}, sigma_range={self.sigma_range}, detail_transfer={self.detail_transfer}, '
                f'flash_mask={self.flash_mask}')


def _stabilized_luminance(image, noise_params):
    """Channel sum of the stabilised image, scaled back to unit noise std: (H, W)."""
    return stabilize_variance(image, *noise_params).sum(0) / math.sqrt(3)
