"""Simulated low-light flash/no-flash captures: the one degradation shared by every data path.

From a well-exposed ambient image ``A`` and a flash-only image ``F`` (linear camera RGB), the
paper (Sec. 4, Eq. 1-2) simulates

    no-flash = alpha * A                    at the no-flash geometry,
    flash    = 2 * F + alpha * A            at the flash geometry,

with the same heteroscedastic Gaussian noise (:mod:`fnf_basicsr.data.noise`) on both. One
image is the geometric *reference*; the other is warped by a random homography
(:mod:`fnf_basicsr.data.homography`). The target is the noise-free ``alpha * A`` at the
reference geometry, so input and target share the dimmed scale and ``gain = 1 / alpha`` brings
both back to the ambient exposure for rendering.

:func:`make_sample` is called by the training/validation dataset, by the frozen test-set
writer and by the tests; :func:`assemble_input` is also called by the real-capture denoiser.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from fnf_basicsr.data.dataset_options import check_choice
from fnf_basicsr.data.homography import mean_displacement, required_margin, warp_image
from fnf_basicsr.data.input_layout import INPUT_MODES
from fnf_basicsr.data.noise import add_noise, noise_std

if TYPE_CHECKING:
    from fnf_basicsr.data.isp import IspDegradation

REFERENCE_FRAMES = ('noflash', 'flash')  # the image whose geometry is the target's
FLASH_GAIN = 2.0  # the paper doubles the flash-only exposure
AWGN_UNIT = 255.0  # the srgb_awgn protocol states sigma on the 8-bit scale
# Reported displacements are evaluated on 4x4-pixel blocks (their accuracy against the all-pixel mean:
# docs/speed.md, "Moved from docstrings", sub-sampled mean displacement).
DISPLACEMENT_STEP = 4


def assemble_input(noflash: torch.Tensor, second: torch.Tensor | None, sig_read: float, sig_shot: float, mode: str,
                   second_noise: tuple[float, float] | None = None) -> torch.Tensor:
    """Stack noisy images and their noise-std maps into the network input ``lq``.

    Channel order (:mod:`fnf_basicsr.data.input_layout`): ``noflash`` (0:3), ``second`` (3:6), std
    of ``noflash`` (6:9), std of ``second`` (9:12); in ``noflash`` mode only ``noflash`` (0:3) and
    its std (3:6). The std is computed from the noisy intensities, as a real capture allows.

    Args:
        noflash: (3, H, W) noisy no-flash image (the frame whose geometry the network outputs).
        second: (3, H, W) noisy flash image (``flash_noflash``), second no-flash frame
            (``noflash_burst``), or None (``noflash``).
        sig_read: read-noise std of ``noflash`` (and of ``second`` unless ``second_noise``).
        sig_shot: shot-noise scale of ``noflash`` (and of ``second`` unless ``second_noise``).
        mode: one of ``INPUT_MODES``.
        second_noise: ``(sig_read, sig_shot)`` of ``second`` where it differs (the clean flash of the
            ``srgb_awgn`` protocol: ``(0, 0)``).

    Returns:
        (C, H, W) float32 tensor, C from :func:`~fnf_basicsr.data.input_layout.input_channels`.

    Raises:
        ConfigError: unknown ``mode``.
        ValueError: ``second`` missing, given in ``noflash`` mode, or of another shape.

    Shape:
        - noflash, second: (3, H, W).
        - output: (12, H, W), or (6, H, W) in ``noflash`` mode.

    Example:
        >>> lq = assemble_input(torch.full((3, 2, 2), 0.04), torch.ones(3, 2, 2), 0.01, 0.1, 'flash_noflash')
        >>> lq.shape, round(lq[6, 0, 0].item(), 4), round(lq[9, 0, 0].item(), 4)
        (torch.Size([12, 2, 2]), 0.0224, 0.1005)
    """
    check_choice('input mode', mode, INPUT_MODES)
    if mode == 'noflash':
        if second is not None:
            raise ValueError('input mode "noflash" takes no second image; pass None')
        frames = [noflash]
    else:
        if second is None:
            raise ValueError(f'input mode "{mode}" needs a second image (flash or second no-flash frame)')
        if second.shape != noflash.shape:
            raise ValueError(f'the two images must have the same shape, got {tuple(noflash.shape)} '
                             f'and {tuple(second.shape)}')
        frames = [noflash, second]
    noise = [(sig_read, sig_shot), second_noise or (sig_read, sig_shot)]
    stds = [noise_std(frame, *params) for frame, params in zip(frames, noise)]
    return torch.cat(frames + stds, dim=0).float()


def make_sample(ambient: np.ndarray, flash_only: np.ndarray, *, alpha: float, sig_read: float, sig_shot: float,
                homography: np.ndarray, crop_size: int, reference: str = 'noflash', mode: str = 'flash_noflash',
                generator: torch.Generator | None = None, isp: IspDegradation | None = None,
                clip: bool = False) -> dict:
    """Simulate one noisy, misaligned low-light capture and its target.

    The crop is the central ``crop_size`` square of the given window; the window's extra border
    (at least :func:`~fnf_basicsr.data.homography.required_margin` pixels on every side) feeds
    the warp, so no border artefact enters the crop.

    Args:
        ambient: (h, w, 3) float32 well-exposed ambient window, linear camera RGB.
        flash_only: (h, w, 3) float32 flash-only window, same size.
        alpha: dimming (exposure) factor of the ambient light, ``gain = 1 / alpha``.
        sig_read: std of the read noise.
        sig_shot: shot-noise scale.
        homography: 3x3 warp (crop coordinates) from the reference to the other image.
        crop_size: side of the output crop.
        reference: ``'noflash'`` (the flash is warped) or ``'flash'`` (the no-flash is warped).
        mode: ``'flash_noflash'``, ``'noflash'`` or ``'noflash_burst'`` (the second no-flash
            frame is warped as the flash would be and has independent noise).
        generator: ``torch.Generator`` for the noise.
        clip: clip the noisy frames to [0, 1] as a sensor and every image file do (a 16-bit PNG or TIFF
            holds no negative value). Off by default: the released code and its test set keep the
            negative noise; a model meant for files and raw captures should see what they hold.
        isp: optional :class:`~fnf_basicsr.data.isp.IspDegradation` applied to the noisy frames
            after the noise (demosaicking, 8-bit JPEG); the std maps are computed from the
            processed frames with the unchanged ``sig_read``, ``sig_shot`` (the noise before the
            ISP, as :func:`~fnf_basicsr.data.noise_estimation.estimate_noise` reports it).

    Returns:
        dict with ``lq`` (C, S, S) and ``gt`` (3, S, S) float32 tensors for S = ``crop_size``, and
        floats ``gain``, ``sig_read``, ``sig_shot`` and ``displacement`` (mean Manhattan pixels).

    Raises:
        ValueError: unknown mode or reference, windows of different sizes, or a window too small
            for the crop plus the margin the homography needs.

    Shape:
        - ambient, flash_only: (h, w, 3).
        - lq: (C, S, S); gt: (3, S, S).

    Example:
        >>> window = np.full((40, 40, 3), 0.5, np.float32)
        >>> sample = make_sample(window, window, alpha=0.1, sig_read=0.01, sig_shot=0.05, homography=np.eye(3),
        ...                      crop_size=32, generator=torch.Generator().manual_seed(0))
        >>> sample['lq'].shape, round(sample['gt'].mean().item(), 3), sample['gain'], sample['displacement']
        (torch.Size([12, 32, 32]), 0.05, 10.0, 0.0)
    """
    check_choice('reference', reference, REFERENCE_FRAMES)
    check_choice('input mode', mode, INPUT_MODES)
    if ambient.shape != flash_only.shape:
        raise ValueError(f'ambient {ambient.shape} and flash_only {flash_only.shape} windows differ in size')
    height, width = ambient.shape[:2]
    margin = (min(height, width) - crop_size) // 2
    needed = required_margin(homography, crop_size)
    if margin < needed:
        raise ValueError(f'a {height}x{width} window leaves a margin of {margin} px around the {crop_size} px crop, '
                         f'but this homography reads {needed} px beyond the crop; pass a larger window')
    top, left = (height - crop_size) // 2, (width - crop_size) // 2
    center = (left + (crop_size - 1) / 2.0, top + (crop_size - 1) / 2.0)

    def unwarped(image):
        return _to_tensor(image[top:top + crop_size, left:left + crop_size])

    def warped(image):
        return _to_tensor(warp_image(image, homography, crop_size, center))

    # The reference image is cropped as it is; the other one is warped.
    at_noflash, at_flash = (unwarped, warped) if reference == 'noflash' else (warped, unwarped)
    clean_noflash = alpha * at_noflash(ambient)
    noflash = add_noise(clean_noflash, sig_read, sig_shot, generator)
    if mode == 'noflash':
        second = None
    elif mode == 'noflash_burst':
        second = add_noise(alpha * at_flash(ambient), sig_read, sig_shot, generator)
    else:
        clean_flash = FLASH_GAIN * at_flash(flash_only) + alpha * at_flash(ambient)
        second = add_noise(clean_flash, sig_read, sig_shot, generator)
    if clip:
        noflash, second = noflash.clamp(0, 1), None if second is None else second.clamp(0, 1)
    if isp is not None:
        noflash, *rest = isp([noflash] + ([second] if second is not None else []), generator)
        second = rest[0] if rest else None
    gt = clean_noflash if reference == 'noflash' else alpha * unwarped(ambient)
    return {
        'lq': assemble_input(noflash, second, sig_read, sig_shot, mode),
        'gt': gt.float(),
        'gain': 1.0 / alpha,
        'sig_read': float(sig_read),
        'sig_shot': float(sig_shot),
        'displacement': mean_displacement(homography, crop_size, step=DISPLACEMENT_STEP),
    }


def sample_dict(lq: torch.Tensor, gt: torch.Tensor, color_matrix: np.ndarray | torch.Tensor, gain: float,
                sig_read: float, sig_shot: float, displacement: float, dimming: float, key: str,
                awgn_sigma: float = 0.0, encoded: bool = False) -> dict:
    """A sample in the layout every sample source gives (the dataset's output, BasicSR's ``data``).

    Args:
        lq: (C, H, W) network input.
        gt: (3, H, W) target at the input's scale.
        color_matrix: (3, 3) camera -> linear sRGB matrix (identity for encoded samples).
        gain: brightness gain of rendering (1 / alpha).
        sig_read: the no-flash frame's read-noise std.
        sig_shot: the no-flash frame's shot-noise scale.
        displacement: mean misalignment in pixels (NaN where unknown).
        dimming: 1 / alpha.
        key: the sample's unique name (also ``lq_path``, after which BasicSR names saved images).
        awgn_sigma: the srgb_awgn noise level (0 in the paper's protocol).
        encoded: ``lq``/``gt`` are sRGB.

    Returns:
        dict of tensors (0-dim float32 scalars, a 0-dim bool ``encoded``) and the strings ``key``, ``lq_path``.

    Example:
        >>> sample = sample_dict(torch.zeros(12, 2, 2), torch.zeros(3, 2, 2), torch.eye(3), 50.0, 0.01, 0.02, 1.5,
        ...                      50.0, 'Toys_1_dim50')
        >>> float(sample['gain']), sample['lq_path'], bool(sample['encoded'])
        (50.0, 'Toys_1_dim50', False)
    """
    def scalar(value):
        return torch.tensor(value, dtype=torch.float32)
    return {
        'lq': lq, 'gt': gt, 'color_matrix': torch.as_tensor(np.asarray(color_matrix, dtype=np.float32)),
        'gain': scalar(gain), 'sig_read': scalar(sig_read), 'sig_shot': scalar(sig_shot),
        'displacement': scalar(displacement), 'dimming': scalar(dimming), 'awgn_sigma': scalar(awgn_sigma),
        'encoded': torch.tensor(bool(encoded)), 'key': key, 'lq_path': key,
    }


def make_awgn_sample(noflash_srgb: torch.Tensor, flash_srgb: torch.Tensor, *, sigma: float, mode: str = 'flash_noflash',
                     generator: torch.Generator | None = None, clip: bool = False) -> dict:
    """One sample of the later literature's protocol (``degradation: srgb_awgn``).

    CU-Net, RIDFnF, LGCNet and RFFNet add white Gaussian noise of std ``sigma / 255`` to the 8-bit sRGB
    no-flash image and give the flash image clean, without misalignment or dimming. Input, target and
    metrics are display-encoded sRGB in [0, 1]; the noisy image is not clipped (RIDFnF, LGCNet) unless
    ``clip`` (RFFNet clips to [0, 1]).

    Args:
        noflash_srgb: (3, S, S) clean no-flash image, 8-bit sRGB values / 255.
        flash_srgb: (3, S, S) flash image, same encoding; used as it is (clean).
        sigma: noise std in 8-bit units (25, 50, 75 in the literature).
        mode: ``'flash_noflash'``, ``'noflash'`` or ``'noflash_burst'`` (a second no-flash frame with
            its own noise of the same sigma).
        generator: ``torch.Generator`` for the noise.
        clip: clip the noisy frames to [0, 1].

    Returns:
        dict with ``lq`` (C, S, S) (noise-std maps: ``sigma / 255`` for noisy frames, 0 for the flash)
        and ``gt`` (3, S, S) float32 tensors, and float ``sig_read`` (= ``sigma / 255``).

    Shape:
        noflash_srgb, flash_srgb: (3, S, S); lq: (C, S, S), C from
        :func:`~fnf_basicsr.data.input_layout.input_channels`.

    Example:
        >>> clean = torch.full((3, 8, 8), 0.5)
        >>> sample = make_awgn_sample(clean, clean, sigma=25, generator=torch.Generator().manual_seed(0))
        >>> sample['lq'].shape, float(sample['lq'][9:].abs().max())
        (torch.Size([12, 8, 8]), 0.0)
    """
    check_choice('input mode', mode, INPUT_MODES)
    if noflash_srgb.shape != flash_srgb.shape:
        raise ValueError(f'no-flash {tuple(noflash_srgb.shape)} and flash {tuple(flash_srgb.shape)} differ in size')
    if not sigma > 0:
        raise ValueError(f'sigma must be > 0 (8-bit units, e.g. 25), got {sigma}')
    std = float(sigma) / AWGN_UNIT
    def noisy():
        image = add_noise(noflash_srgb, std, 0.0, generator)
        return image.clamp(0, 1) if clip else image

    noflash = noisy()
    second, second_noise = None, None
    if mode == 'noflash_burst':
        second = noisy()
    elif mode == 'flash_noflash':
        second, second_noise = flash_srgb, (0.0, 0.0)
    return {'lq': assemble_input(noflash, second, std, 0.0, mode, second_noise=second_noise),
            'gt': noflash_srgb.float(), 'sig_read': std}


def _to_tensor(image_hwc):
    return torch.from_numpy(np.ascontiguousarray(image_hwc.transpose(2, 0, 1), dtype=np.float32))
