"""The simulated ISP (mosaic, bilinear demosaic, sRGB, JPEG) and the dataset's ``isp`` option."""
import numpy as np
import pytest
import torch

from fnf_basicsr.data.isp import (BAYER_PATTERNS, IspDegradation, auto_exposure, bayer_mask, demosaic_bilinear,
                                  mosaic, simulate_isp, srgb_8bit_levels)
from fnf_basicsr.data.noise import noise_std
from fnf_basicsr.errors import ConfigError


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_each_pixel_samples_one_color_and_green_twice_as_often(pattern):
    mask = bayer_mask(6, 8, pattern)
    assert torch.equal(mask.sum(0), torch.ones(6, 8))
    assert mask[1].sum() == 2 * mask[0].sum() == 2 * mask[2].sum()
    assert mask[:, 0, 0].argmax().item() == 'RGB'.index(pattern[0])


@pytest.mark.parametrize('pattern', BAYER_PATTERNS)
def test_demosaic_keeps_the_samples_and_reproduces_linear_shading(pattern):
    y, x = torch.meshgrid(torch.arange(12.0), torch.arange(14.0), indexing='ij')
    ramp = torch.stack([0.1 + 0.01 * x, 0.2 + 0.02 * y, 0.3 + 0.01 * (x + y)])
    raw = mosaic(ramp, pattern)
    result = demosaic_bilinear(raw, pattern)
    mask = bayer_mask(12, 14, pattern).bool()
    assert torch.equal(result[mask], ramp[mask])
    # bilinear interpolation is exact on linear shading away from the reflected border
    assert torch.allclose(result[:, 1:-1, 1:-1], ramp[:, 1:-1, 1:-1], atol=1e-6)


def test_demosaicked_noise_is_correlated_and_weaker_per_pixel():
    noise = 0.01 * torch.randn(3, 256, 256, generator=torch.Generator().manual_seed(0))
    result = demosaic_bilinear(mosaic(noise))
    assert 0.5 < result.var() / noise.var() < 0.75  # interpolated colors are means of 2 or 4 samples
    neighbours = torch.corrcoef(torch.stack([result[0, :, :-1].flatten(), result[0, :, 1:].flatten()]))[0, 1]
    assert neighbours > 0.4  # and share samples with their neighbours


def test_jpeg_round_trip_is_deterministic_and_loses_more_at_lower_quality():
    generator = torch.Generator().manual_seed(1)
    image = 0.2 + 0.05 * torch.randn(3, 64, 64, generator=generator)
    first, again = (simulate_isp(image, jpeg_quality=85) for _ in range(2))
    assert torch.equal(first, again)
    errors = [(simulate_isp(image, demosaic=False, jpeg_quality=q) - image).square().mean() for q in (95, 85, 70)]
    assert errors[0] < errors[1] < errors[2]
    lossless = simulate_isp(image, demosaic=False)
    levels = torch.from_numpy(srgb_8bit_levels())
    assert torch.isin(lossless.clamp(0, 1), levels).all()  # 8-bit sRGB codes, linearised


def test_exposure_is_undone_and_clips_like_a_file():
    image = torch.full((3, 16, 16), 0.004)
    assert torch.allclose(simulate_isp(image, demosaic=False, exposure=100), image, rtol=0.01)
    assert simulate_isp(torch.full((3, 8, 8), -0.01), demosaic=False).max() == 0  # no negative values in a file
    assert simulate_isp(torch.full((3, 8, 8), 0.5), demosaic=False, exposure=4).max() == pytest.approx(0.25)
    assert auto_exposure(torch.zeros(3, 4, 4)) == 1.0


def test_options_are_checked():
    assert IspDegradation.from_options(None) is None and IspDegradation.from_options(False) is None
    assert IspDegradation.from_options(True) == IspDegradation()
    assert IspDegradation.from_options({'jpeg_quality': 80}).jpeg_quality == (80, 80)
    for bad in ({'jpeg_quality': [90, 70]}, {'jpeg_quality': 101}, {'quality': 90}, {'bayer_pattern': 'RGBG'}, 'on'):
        with pytest.raises(ConfigError, match='isp'):
            IspDegradation.from_options(bad)


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    from fnf_basicsr.data.synthetic import generate_split
    root = tmp_path_factory.mktemp('isp_scenes')
    generate_split(root, 'val', num_scenes=2, size=96, workers=1, progress=False)
    return root


def dataset(root, phase='val', **extra):
    from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
    return FlashNoFlashDataset({'name': 'isp', 'phase': phase, 'dataroot': str(root), 'crop_size': 48,
                                'dimming_factors': [20], 'batch_size_per_gpu': 1, **extra})


def test_the_option_processes_both_noisy_frames_as_stated(scenes):
    plain, processed = dataset(scenes)[1], dataset(scenes, isp={'jpeg_quality': 80})[1]
    assert torch.equal(plain['gt'], processed['gt']) and plain['sig_read'] == processed['sig_read']
    for frame in (slice(0, 3), slice(3, 6)):
        # the same noise, then the ISP with the frame's own exposure
        noisy = plain['lq'][frame]
        expected = simulate_isp(noisy, jpeg_quality=80, exposure=auto_exposure(noisy))
        assert torch.equal(processed['lq'][frame], expected)
        assert not torch.equal(processed['lq'][frame], noisy)
    # the std maps: the noise before the ISP (sig_read, sig_shot unchanged) at the processed intensities
    std = noise_std(processed['lq'][0:6], float(processed['sig_read']), float(processed['sig_shot']))
    assert torch.allclose(processed['lq'][6:12], std, rtol=1e-6, atol=0)  # up to sqrt's last bit


def test_the_option_is_off_by_default_and_deterministic_per_seed(scenes):
    assert dataset(scenes).isp is None
    options = {'isp': {'jpeg_quality': [70, 95]}}
    first, again = dataset(scenes, **options)[0], dataset(scenes, **options)[0]
    assert torch.equal(first['lq'], again['lq'])
    assert not torch.equal(first['lq'], dataset(scenes, seed=1, **options)[0]['lq'])
    samples = []
    for _ in range(2):
        torch.manual_seed(5)  # BasicSR seeds each process; the dataset's stream starts from torch's seed
        samples.append(dataset(scenes, phase='train', **options)[0]['lq'])
    assert torch.equal(*samples)


def test_processed_training_frames_have_the_estimated_noise(scenes):
    """A frame processed by the option, estimated as a processed picture, gives the noise before the ISP back."""
    from fnf_basicsr.data.isp import simulate_isp as isp
    from fnf_basicsr.data.noise import add_noise
    from fnf_basicsr.data.noise_estimation import estimate_noise
    ramp = torch.linspace(0.05, 0.6, 384).repeat(3, 384, 1)
    noisy = add_noise(ramp, 0.02, 0.1, torch.Generator().manual_seed(0))
    estimate = estimate_noise(isp(noisy, jpeg_quality=85))
    assert estimate.processed
    got_std = np.sqrt(estimate.sig_read ** 2 + estimate.sig_shot ** 2 * 0.3)
    assert 0.8 < got_std / np.sqrt(0.02 ** 2 + 0.1 ** 2 * 0.3) < 1.25
