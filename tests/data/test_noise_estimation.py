"""Noise estimation from one image or a pair: recovers known read/shot noise within measured bounds."""
import functools
import math

import numpy as np
import pytest
import torch

from fnf_basicsr.data.degradation import FLASH_GAIN
from fnf_basicsr.data.isp import simulate_isp
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT, add_noise
from fnf_basicsr.data.noise_estimation import NoiseEstimationError, estimate_noise
from fnf_basicsr.data.synthetic import SPLIT_SEED_OFFSETS, render_scene

# (sig_read, sig_shot): the paper's test noise and both ends of the training ranges.
NOISE_LEVELS = [(TEST_SIG_READ, TEST_SIG_SHOT), (1e-2, 10 ** -1.3), (1e-3, 1e-2)]
PATCH = 64


def flat_patches(low, high):
    """A 256x256 image of 16 flat 64x64 patches with intensities from ``low`` to ``high``, (3, H, W)."""
    grid = np.linspace(low, high, 16, dtype=np.float32).reshape(4, 4)
    return torch.from_numpy(np.repeat(np.repeat(grid, PATCH, 0), PATCH, 1))[None].repeat(3, 1, 1)


def ratios(*noisy, sig_read=TEST_SIG_READ, sig_shot=TEST_SIG_SHOT):
    estimate = estimate_noise(*noisy)
    return estimate.sig_read / sig_read, estimate.sig_shot / sig_shot


def quantised(image):
    """Clipped to [0, 1] and rounded to 16 bits, as a linear PNG stores it."""
    return torch.round(image.clamp(0, 1) * 65535) / 65535


@pytest.mark.parametrize('sig_read, sig_shot', NOISE_LEVELS)
def test_flat_patches_give_the_parameters_back(sig_read, sig_shot):
    """Measured over these 15 images: sig_read x1.00..1.11, sig_shot x0.97..1.02."""
    for seed in range(5):
        noisy = add_noise(flat_patches(0.02, 0.6), sig_read, sig_shot, torch.Generator().manual_seed(seed))
        read, shot = ratios(noisy, sig_read=sig_read, sig_shot=sig_shot)
        assert abs(shot - 1) < 0.05 and abs(read - 1) < 0.2, (seed, read, shot)


@pytest.mark.parametrize('sig_read, sig_shot', NOISE_LEVELS)
def test_values_clipped_at_zero_do_not_bias_the_estimate(sig_read, sig_shot):
    """Patches down to 0, clipped as a sensor clips (measured: x0.84..1.23 and x0.97..1.01).

    Uncorrected, the clipped dark patches' shrunken variance would pass for low read noise.
    """
    for seed in range(5):
        noisy = add_noise(flat_patches(0.0, 0.6), sig_read, sig_shot, torch.Generator().manual_seed(seed)).clamp(0, 1)
        read, shot = ratios(noisy, sig_read=sig_read, sig_shot=sig_shot)
        assert abs(shot - 1) < 0.05 and abs(read - 1) < 0.3, (seed, read, shot)


@pytest.mark.parametrize('index', [1, 2])
def test_synthetic_scene_with_the_papers_test_noise(index):
    """A 20x-dimmed 384 px test scene, 16-bit quantised (measured: x1.03 / x0.97 and x1.00 / x1.07)."""
    ambient = render_scene(SPLIT_SEED_OFFSETS['test'] + index, 384)[0]
    clean = torch.from_numpy(ambient).permute(2, 0, 1) * 0.05
    read, shot = ratios(quantised(add_noise(clean, TEST_SIG_READ, TEST_SIG_SHOT, torch.Generator().manual_seed(0))))
    print(f'scene {index}: sig_read x{read:.3f}, sig_shot x{shot:.3f}')
    assert abs(read - 1) < 0.15 and abs(shot - 1) < 0.15


@pytest.mark.parametrize('index', [3, 5])
def test_flash_photo_pins_down_the_shot_noise_of_a_dark_capture(index):
    """A 50x-dimmed 256 px pair. No-flash alone measured sig_shot x0.87 (scene 3) and x1.28 (scene 5);
    with the flash photo, sig_read x1.01 and sig_shot x1.03 / x1.02."""
    ambient, flash_only = (torch.from_numpy(image).permute(2, 0, 1)
                           for image in render_scene(SPLIT_SEED_OFFSETS['test'] + index, 256)[:2])
    generator = torch.Generator().manual_seed(0)
    noflash = quantised(add_noise(ambient / 50, TEST_SIG_READ, TEST_SIG_SHOT, generator))
    flash = quantised(add_noise(FLASH_GAIN * flash_only + ambient / 50, TEST_SIG_READ, TEST_SIG_SHOT, generator))
    alone, pooled = ratios(noflash), ratios(noflash, flash)
    print(f'scene {index}: no-flash alone x{alone[0]:.3f} / x{alone[1]:.3f}, '
          f'pooled x{pooled[0]:.3f} / x{pooled[1]:.3f}')
    assert abs(pooled[0] - 1) < 0.1 and abs(pooled[1] - 1) < 0.1
    assert abs(pooled[1] - 1) < abs(alone[1] - 1)


def test_layouts_and_array_types_agree():
    noisy = add_noise(flat_patches(0.05, 0.5), TEST_SIG_READ, TEST_SIG_SHOT, torch.Generator().manual_seed(9))
    chw = estimate_noise(noisy)
    hwc = estimate_noise(noisy.permute(1, 2, 0).numpy())
    assert (chw.sig_read, chw.sig_shot) == pytest.approx((hwc.sig_read, hwc.sig_shot), rel=1e-9)
    assert chw.num_blocks > 0 and chw.intensity_range[0] < chw.intensity_range[1]
    assert 'sig_read=' in str(chw) and 'flat blocks' in str(chw)


@pytest.mark.parametrize('image', [torch.zeros(3, 256, 256), torch.ones(3, 256, 256), torch.rand(3, 20, 20)],
                         ids=['black', 'saturated', 'tiny'])
def test_images_without_usable_flat_regions_are_refused(image):
    with pytest.raises(NoiseEstimationError, match='--sig-read and --sig-shot'):
        estimate_noise(image)


def test_wrong_shape_is_refused():
    with pytest.raises(ValueError, match=r'\(H, W, 3\) or \(3, H, W\)'):
        estimate_noise(torch.zeros(2, 3, 8, 8))
    with pytest.raises(ValueError, match='at least one image'):
        estimate_noise()


# Pictures through an ISP (bilinear demosaicking, sRGB, JPEG): the noise before the ISP is estimated.
# (sig_read, sig_shot) of well-exposed linear scenes (mean 0.25): 8 to 20 8-bit codes of noise at the mean.
ISP_NOISE = [(0.01, 0.06), (0.03, 0.15), (0.05, 0.08)]
ISP_MEAN = 0.25


@functools.lru_cache(maxsize=None)
def exposed_scene(index):
    ambient = torch.from_numpy(render_scene(SPLIT_SEED_OFFSETS['test'] + index, 384)[0]).permute(2, 0, 1)
    return ambient * (ISP_MEAN / ambient.mean())


def std_ratio(estimate, sig_read, sig_shot):
    """Estimated over true per-pixel noise std at the scenes' mean intensity."""
    return math.sqrt((estimate.sig_read ** 2 + estimate.sig_shot ** 2 * ISP_MEAN) /
                     (sig_read ** 2 + sig_shot ** 2 * ISP_MEAN))


@pytest.mark.parametrize('quality', [95, 85, 70])
@pytest.mark.parametrize('sig_read, sig_shot', ISP_NOISE)
def test_noise_through_demosaicking_and_jpeg_is_estimated_before_the_isp(sig_read, sig_shot, quality):
    """4 scenes (1 and 3 textured): measured x0.89..1.21 after, x0.09..0.22 with the linear estimator."""
    for index in (1, 2, 3, 5):
        noisy = add_noise(exposed_scene(index), sig_read, sig_shot, torch.Generator().manual_seed(index))
        picture = simulate_isp(noisy, jpeg_quality=quality)
        after, before = estimate_noise(picture), estimate_noise(picture, processed=False)
        assert after.processed and not before.processed
        print(f'scene {index}: std x{std_ratio(before, sig_read, sig_shot):.2f} before, '
              f'x{std_ratio(after, sig_read, sig_shot):.2f} after')
        assert 0.8 < std_ratio(after, sig_read, sig_shot) < 1.3
        assert std_ratio(before, sig_read, sig_shot) < 0.3


def test_pictures_are_recognised_by_their_8bit_codes():
    noisy = add_noise(flat_patches(0.02, 0.6), TEST_SIG_READ, TEST_SIG_SHOT, torch.Generator().manual_seed(3))
    assert not estimate_noise(quantised(noisy)).processed  # 16-bit linear: the linear estimate, as before
    picture = simulate_isp(noisy, jpeg_quality=90)
    assert estimate_noise(picture).processed and estimate_noise(picture.permute(1, 2, 0).numpy()).processed
    assert '8-bit/JPEG picture' in str(estimate_noise(picture))
    forced = estimate_noise(quantised(noisy), processed=True)
    assert forced.processed and forced.sig_shot > estimate_noise(quantised(noisy)).sig_shot  # ISP gain divided out
