"""The shared degradation: noise statistics, geometry of input and target, channel layout."""
import numpy as np
import pytest
import torch

from fnf_basicsr.data.degradation import FLASH_GAIN, assemble_input, make_sample
from fnf_basicsr.data.homography import CameraMotion, warp_image
from fnf_basicsr.data.input_layout import INPUT_MODES, input_channels
from fnf_basicsr.data.noise import noise_std

CROP = 64


def random_windows(size=CROP + 16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((size, size, 3), dtype=np.float32), rng.random((size, size, 3), dtype=np.float32)


def central(image, crop=CROP):
    top = (image.shape[0] - crop) // 2
    return torch.from_numpy(np.ascontiguousarray(image[top:top + crop, top:top + crop].transpose(2, 0, 1)))


MOTION = CameraMotion(theta_x=0.4, theta_z=-0.3, scale=1.015, shift_x=1.5, shift_y=-1.0).matrix(CROP)


def test_noise_variance_matches_the_model_on_flat_patches():
    size, ambient_level, flash_level = 160, 0.6, 0.3
    ambient = np.full((size, size, 3), ambient_level, np.float32)
    flash_only = np.full((size, size, 3), flash_level, np.float32)
    alpha, sig_read, sig_shot = 0.05, 0.01, 0.05
    sample = make_sample(ambient, flash_only, alpha=alpha, sig_read=sig_read, sig_shot=sig_shot,
                         homography=np.eye(3), crop_size=size, generator=torch.Generator().manual_seed(0))
    lq = sample['lq'].double()
    clean_noflash = alpha * ambient_level
    clean_flash = FLASH_GAIN * flash_level + alpha * ambient_level
    for frame, clean in ((lq[0:3], clean_noflash), (lq[3:6], clean_flash)):
        residual = frame - clean
        expected = sig_read ** 2 + sig_shot ** 2 * clean
        # 76800 samples per frame: the variance estimate's relative std error is 0.5%.
        assert residual.var().item() == pytest.approx(expected, rel=0.03)
        assert abs(residual.mean().item()) < 4 * (expected / residual.numel()) ** 0.5
    # The std channels are computed from the noisy intensities (what a real capture offers).
    torch.testing.assert_close(sample['lq'][6:9], noise_std(sample['lq'][0:3], sig_read, sig_shot))
    torch.testing.assert_close(sample['lq'][9:12], noise_std(sample['lq'][3:6], sig_read, sig_shot))


def test_burst_frames_have_independent_noise():
    flat = np.full((128, 128, 3), 0.5, np.float32)
    sample = make_sample(flat, flat, alpha=0.1, sig_read=0.01, sig_shot=0.05, homography=np.eye(3),
                         crop_size=128, mode='noflash_burst', generator=torch.Generator().manual_seed(1))
    first, second = (sample['lq'][0:3] - 0.05).flatten(), (sample['lq'][3:6] - 0.05).flatten()
    correlation = torch.corrcoef(torch.stack([first, second]))[0, 1].item()
    assert abs(correlation) < 0.02  # 49152 pairs: the std of the estimate is 0.0045


@pytest.mark.parametrize('reference', ['noflash', 'flash'])
@pytest.mark.parametrize('mode', INPUT_MODES)
def test_without_noise_and_motion_the_input_equals_the_target(mode, reference):
    ambient, flash_only = random_windows()
    sample = make_sample(ambient, flash_only, alpha=0.1, sig_read=0.0, sig_shot=0.0, homography=np.eye(3),
                         crop_size=CROP, reference=reference, mode=mode)
    assert sample['lq'].shape == (input_channels(mode), CROP, CROP)
    assert sample['gt'].shape == (3, CROP, CROP)
    assert torch.equal(sample['lq'][0:3], sample['gt'])
    assert torch.equal(sample['gt'], 0.1 * central(ambient))
    assert sample['gain'] == pytest.approx(10.0)
    assert sample['displacement'] == 0.0


def test_noflash_reference_warps_the_flash():
    ambient, flash_only = random_windows()
    sample = make_sample(ambient, flash_only, alpha=0.2, sig_read=0.0, sig_shot=0.0, homography=MOTION,
                         crop_size=CROP)
    center = ((ambient.shape[1] - 1) / 2, (ambient.shape[0] - 1) / 2)

    def warped(image):
        return torch.from_numpy(warp_image(image, MOTION, CROP, center).transpose(2, 0, 1))

    assert torch.equal(sample['lq'][0:3], sample['gt'])
    assert torch.equal(sample['gt'], 0.2 * central(ambient))
    torch.testing.assert_close(sample['lq'][3:6], FLASH_GAIN * warped(flash_only) + 0.2 * warped(ambient))
    assert sample['displacement'] > 1.0


def test_flash_reference_warps_the_noflash_and_aligns_the_flash_with_the_target():
    ambient, flash_only = random_windows()
    sample = make_sample(ambient, np.zeros_like(flash_only), alpha=0.2, sig_read=0.0, sig_shot=0.0,
                         homography=MOTION, crop_size=CROP, reference='flash')
    # Flash-only is zero, so the flash frame is 0.2 * ambient at the flash geometry: exactly gt.
    assert torch.equal(sample['lq'][3:6], sample['gt'])
    assert torch.equal(sample['gt'], 0.2 * central(ambient))
    assert (sample['lq'][0:3] - sample['gt']).abs().mean() > 0.01  # the no-flash input is misaligned


def test_a_window_without_room_for_the_warp_is_refused():
    ambient, flash_only = random_windows(size=CROP + 2)
    with pytest.raises(ValueError, match='margin of 1 px'):
        make_sample(ambient, flash_only, alpha=0.1, sig_read=0.0, sig_shot=0.0, homography=MOTION, crop_size=CROP)


def test_bad_arguments_are_refused():
    ambient, flash_only = random_windows()
    common = dict(alpha=0.1, sig_read=0.0, sig_shot=0.0, homography=np.eye(3), crop_size=CROP)
    with pytest.raises(ValueError, match='reference must be one of'):
        make_sample(ambient, flash_only, reference='ambient', **common)
    with pytest.raises(ValueError, match='input mode must be one of'):
        make_sample(ambient, flash_only, mode='flash', **common)
    with pytest.raises(ValueError, match='differ in size'):
        make_sample(ambient, flash_only[:-1], **common)
    frame = torch.zeros(3, 8, 8)
    with pytest.raises(ValueError, match='takes no second image'):
        assemble_input(frame, frame, 0.01, 0.01, 'noflash')
    with pytest.raises(ValueError, match='needs a second image'):
        assemble_input(frame, None, 0.01, 0.01, 'flash_noflash')


def test_assemble_input_channel_order():
    noflash, flash = torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.4)
    lq = assemble_input(noflash, flash, 0.01, 0.1, 'flash_noflash')
    assert lq.dtype == torch.float32 and lq.shape == (12, 4, 4)
    torch.testing.assert_close(lq[6:9], torch.full((3, 4, 4), (0.01 ** 2 + 0.1 ** 2 * 0.1) ** 0.5))
    torch.testing.assert_close(lq[9:12], torch.full((3, 4, 4), (0.01 ** 2 + 0.1 ** 2 * 0.4) ** 0.5))
    assert assemble_input(noflash, None, 0.01, 0.1, 'noflash').shape == (6, 4, 4)


def test_clip_keeps_the_noisy_frames_in_the_range_a_file_can_hold():
    """A sensor and every image file clip: a dark frame loses its negative noise, the std maps follow."""
    rng = np.random.default_rng(2)
    ambient, flash_only = rng.random((40, 40, 3), dtype=np.float32), rng.random((40, 40, 3), dtype=np.float32)
    common = dict(alpha=0.01, sig_read=0.01, sig_shot=0.05, homography=np.eye(3), crop_size=32)
    plain = make_sample(ambient, flash_only, generator=torch.Generator().manual_seed(0), **common)
    clipped = make_sample(ambient, flash_only, generator=torch.Generator().manual_seed(0), clip=True, **common)
    assert plain['lq'][:6].min() < 0 and clipped['lq'][:6].min() >= 0 and clipped['lq'][:6].max() <= 1
    torch.testing.assert_close(clipped['lq'][:6], plain['lq'][:6].clamp(0, 1), rtol=0, atol=0)
    assert torch.equal(clipped['gt'], plain['gt'])
