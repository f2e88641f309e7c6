"""Classical references: joint bilateral flash/no-flash filter, non-local means on the no-flash
image, and their shared helpers (variance stabilisation, noise fit, bilateral grid)."""
import math

import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401  (first: fixes basicsr's imports on today's torchvision, registers our networks)
# isort: split
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from fnf_basicsr.archs.classical_util import (MAX_RANGE_CELLS, bilateral_grid_filter, fit_noise_model,
                                              stabilize_variance, unstabilize_variance)
from fnf_basicsr.archs.jointbilateral_arch import JointBilateralFnF
from fnf_basicsr.archs.singleimage_arch import NLMeansNoFlash
from fnf_basicsr.data.degradation import FLASH_GAIN
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT, add_noise, noise_std
from fnf_basicsr.utils.rendering import render_srgb

SIZE = 128
ALPHA = 1 / 50  # dimming factor 50, the middle of the paper's test protocol
EDGE_COLUMN = 96  # a faint albedo edge, clear in the flash, buried in the no-flash noise
SHADOW = (slice(100, 124), slice(8, 56))  # rows, columns of the flash's cast shadow
CLASSICAL = {'JointBilateralFnF': JointBilateralFnF, 'NLMeansNoFlash': NLMeansNoFlash}


def _clean_scene(size=SIZE):
    """Piecewise-smooth albedo lit two ways: (ambient, flash_only), each (3, H, W) linear."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing='ij')
    albedo = torch.stack([0.45 + 0.15 * xs, 0.40 + 0.10 * ys, 0.35 - 0.05 * xs])
    disc = (xs + 0.35) ** 2 + (ys + 0.3) ** 2 < 0.3 ** 2
    albedo[:, disc] = torch.tensor([[0.8], [0.25], [0.15]])
    box = (ys > 0.2) & (ys < 0.6) & (xs > -0.9) & (xs < -0.1)
    albedo[:, box] = torch.tensor([[0.1], [0.3], [0.6]])
    albedo[:, :, EDGE_COLUMN:] *= 1.25
    # Ambient: a warm light from the left; flash: a white light on the axis with radial falloff.
    ambient = albedo * (0.3 + 0.7 * (1 - xs) / 2) * torch.tensor([1.0, 0.8, 0.55]).view(3, 1, 1)
    flash_only = albedo * 0.5 / (1 + 1.5 * (xs ** 2 + ys ** 2))
    flash_only[:, SHADOW[0], SHADOW[1]] = 0
    return ambient, flash_only


def _noisy_input(ambient, flash_only, alpha=ALPHA, seed=0):
    """(1, 12, H, W) input and (1, 3, H, W) target, degraded as the dataset does (aligned here)."""
    generator = torch.Generator().manual_seed(seed)
    no_flash_clean = alpha * ambient
    no_flash = add_noise(no_flash_clean, TEST_SIG_READ, TEST_SIG_SHOT, generator)
    flash = add_noise(FLASH_GAIN * flash_only + alpha * ambient, TEST_SIG_READ, TEST_SIG_SHOT, generator)
    stds = [noise_std(image, TEST_SIG_READ, TEST_SIG_SHOT) for image in (no_flash, flash)]
    return torch.cat([no_flash, flash, *stds])[None], no_flash_clean[None]


@pytest.fixture(scope='module')
def scene():
    lq, gt = _noisy_input(*_clean_scene())
    outputs = {name: cls()(lq) for name, cls in CLASSICAL.items()}
    return lq, gt, outputs


def _render(linear):
    return render_srgb(linear, torch.tensor([1 / ALPHA]), torch.eye(3)).clamp(0, 1)


def _psnr(estimate, gt):
    return (10 * torch.log10(1 / ((_render(estimate) - _render(gt)) ** 2).mean())).item()


# Noisy input 14.7 dB; measured gains over noise seeds 0-3: +20.0 to +20.1 dB (joint bilateral),
# +18.9 to +19.5 dB (non-local means).
@pytest.mark.parametrize('name, min_gain_db', [('JointBilateralFnF', 18.5), ('NLMeansNoFlash', 17.5)])
def test_denoising_gains_on_the_synthetic_scene(scene, name, min_gain_db):
    lq, gt, outputs = scene
    assert _psnr(outputs[name], gt) > _psnr(lq[:, :3], gt) + min_gain_db


def test_joint_bilateral_keeps_the_flash_edge_sharper_than_the_single_image(scene):
    lq, gt, outputs = scene
    rows = slice(8, 92)  # away from the box and the shadow

    def edge_step(linear):
        srgb = _render(linear)[0, :, rows]
        return (srgb[..., EDGE_COLUMN:EDGE_COLUMN + 2].mean() - srgb[..., EDGE_COLUMN - 2:EDGE_COLUMN].mean()).item()

    true_step = edge_step(gt)
    # Measured: 0.80 of the true step (joint bilateral) against 0.03 (non-local means smooths it away).
    assert edge_step(outputs['JointBilateralFnF']) > 0.65 * true_step
    assert edge_step(outputs['NLMeansNoFlash']) < 0.4 * true_step


@pytest.mark.parametrize('name', sorted(CLASSICAL))
def test_batched_output_shape_dtype_device_and_determinism(scene, name):
    lq = scene[0][..., :48, :40]
    batch = torch.cat([lq, lq.flip(-1)])
    net = CLASSICAL[name]()
    output = net(batch)
    assert output.shape == (2, 3, 48, 40)
    assert output.dtype == torch.float32 and output.device == batch.device
    assert torch.isfinite(output).all()
    assert torch.equal(output, net(batch))  # bit-identical on a second run
    assert torch.equal(output[1:], net(batch[1:]))  # each sample is filtered on its own


@pytest.mark.parametrize('name, options', [
    ('JointBilateralFnF', 'type: JointBilateralFnF\nsigma_space: 3\nsigma_range: 5\ndetail_transfer: false\n'),
    ('NLMeansNoFlash', 'type: NLMeansNoFlash\npatch_size: 5\npatch_distance: 6\nh: 0.6\n'),
])
def test_builds_from_options_without_parameters(name, options):
    assert name in ARCH_REGISTRY
    net = build_network(yaml.safe_load(options))
    assert type(net) is CLASSICAL[name]
    assert list(net.parameters()) == [] and net.trainable is False
    assert all(getattr(net, key) == value for key, value in yaml.safe_load(options).items() if key != 'type')


def test_single_image_denoiser_reads_the_no_flash_channels_only(scene):
    lq = scene[0][..., :40, :40]
    net = NLMeansNoFlash()
    other = lq.clone()
    other[:, 3:6] = torch.rand_like(other[:, 3:6])
    assert torch.equal(net(lq), net(other))  # the flash is ignored
    assert torch.equal(net(lq), net(torch.cat([lq[:, 0:3], lq[:, 6:9]], dim=1)))  # 6-channel no-flash input


def test_shadow_mask_covers_the_flash_shadow_and_stops_its_noise():
    ambient, flash_only = _clean_scene()
    lq, gt = _noisy_input(ambient, flash_only)
    net = JointBilateralFnF()
    sample = lq[0]
    mask = net.unreliable_flash_mask(sample[:3], sample[3:6], fit_noise_model(sample[:3], sample[6:9]),
                                     fit_noise_model(sample[3:6], sample[9:12]))
    rows, cols = SHADOW
    inner = (slice(rows.start + 4, rows.stop - 4), slice(cols.start + 4, cols.stop - 4))
    assert mask.shape == (1, SIZE, SIZE)
    assert mask[0][inner].min() > 0.99
    assert mask[0, 8:92, 60:120].max() < 0.01  # brightly flash-lit region
    # Without the mask, the detail layer of the shadowed (pure-noise) flash adds noise there.
    error = {flag: ((JointBilateralFnF(flash_mask=flag)(lq) - gt)[0][:, inner[0], inner[1]] ** 2).mean()
             for flag in (True, False)}
    assert error[True] < 0.8 * error[False]  # measured: 0.66


def test_variance_stabilisation_round_trip_and_unit_noise():
    read_var, shot_var = TEST_SIG_READ ** 2, TEST_SIG_SHOT ** 2
    x = torch.linspace(-0.01, 2.0, 1001, dtype=torch.float64)
    assert torch.allclose(unstabilize_variance(stabilize_variance(x, read_var, shot_var), read_var, shot_var), x,
                          rtol=1e-10, atol=1e-14)
    assert torch.allclose(stabilize_variance(x, read_var, 0.0), x / TEST_SIG_READ)  # no shot noise: x / std
    generator = torch.Generator().manual_seed(0)
    for level in (0.0005, 0.01, 0.5):
        noisy = add_noise(torch.full((20000,), level, dtype=torch.float64), TEST_SIG_READ, TEST_SIG_SHOT, generator)
        assert stabilize_variance(noisy, read_var, shot_var).std().item() == pytest.approx(1.0, abs=0.03)


def test_noise_model_fit_recovers_the_std_map_parameters():
    noisy = add_noise(torch.rand(3, 16, 16) * 0.2, 0.004, 0.02, torch.Generator().manual_seed(0))
    read_var, shot_var = fit_noise_model(noisy, noise_std(noisy, 0.004, 0.02))
    assert math.sqrt(read_var) == pytest.approx(0.004, rel=1e-4)
    assert math.sqrt(shot_var) == pytest.approx(0.02, rel=1e-4)
    flat = torch.zeros(3, 8, 8)  # no spread of intensities: everything is read noise
    assert fit_noise_model(flat, noise_std(flat, 0.004, 0.02)) == pytest.approx((0.004 ** 2, 0.0))


def test_bilateral_grid_smooths_within_regions_and_stops_at_guide_edges():
    generator = torch.Generator().manual_seed(0)
    guide = torch.zeros(64, 64)
    guide[:, 32:] = 20.0
    values = (guide / 20 + 0.1 * torch.randn(64, 64, generator=generator))[None]
    out = bilateral_grid_filter(values, guide, sigma_space=4, sigma_range=2)[0]
    assert out[:, :28].std() < 0.25 * values[0, :, :28].std()  # noise averaged away
    assert out[:, 30].mean() < 0.05 and out[:, 33].mean() > 0.95  # the step stays sharp
    constant = torch.full((2, 64, 64), 0.7)
    assert torch.allclose(bilateral_grid_filter(constant, guide, 4, 2), constant, atol=1e-6)
    # A range sigma far below the guide's span is raised to span / MAX_RANGE_CELLS (bounded memory).
    span_limited = bilateral_grid_filter(values, guide, 4, 20.0 / MAX_RANGE_CELLS)
    assert torch.equal(bilateral_grid_filter(values, guide, 4, 1e-6), span_limited)


def test_bad_inputs_and_options_are_reported():
    with pytest.raises(ValueError, match=r'12-channel flash/no-flash input.*got shape \(1, 6, 8, 8\)'):
        JointBilateralFnF()(torch.rand(1, 6, 8, 8))
    with pytest.raises(ValueError, match=r'NLMeansNoFlash expects.*got shape \(1, 9, 8, 8\)'):
        NLMeansNoFlash()(torch.rand(1, 9, 8, 8))
    with pytest.raises(ValueError, match='sigma_range'):
        JointBilateralFnF(sigma_range=0)
    with pytest.raises(ValueError, match='h > 0'):
        NLMeansNoFlash(h=-1)
    with pytest.raises(ValueError, match=r'values \(C, H, W\) and guide \(H, W\)'):
        bilateral_grid_filter(torch.rand(1, 8, 8), torch.rand(8, 9), 2, 1)
