"""The joint bilateral flash/no-flash filter (fnf_basicsr.archs.jointbilateral_arch) on a synthetic scene:
its gain, the flash edge it keeps, the flash-shadow mask, shapes and determinism, options and bad inputs."""
import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401  (first: fixes basicsr's imports on today's torchvision, registers our networks)
# isort: split
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from classical_scene import EDGE_COLUMN, SHADOW, SIZE, clean_scene, noisy_input, psnr, render
from fnf_basicsr.archs.classical_util import fit_noise_model
from fnf_basicsr.archs.jointbilateral_arch import JointBilateralFnF
from fnf_basicsr.archs.singleimage_arch import NLMeansNoFlash


@pytest.fixture(scope='module')
def scene():
    """(lq, gt, outputs) with the outputs of the joint bilateral filter and, to compare, of non-local means."""
    lq, gt = noisy_input(*clean_scene())
    return lq, gt, {'JointBilateralFnF': JointBilateralFnF()(lq), 'NLMeansNoFlash': NLMeansNoFlash()(lq)}


# Noisy input 14.7 dB; measured gains over noise seeds 0-3: +20.0 to +20.1 dB.
def test_denoising_gain_on_the_synthetic_scene(scene):
    lq, gt, outputs = scene
    assert psnr(outputs['JointBilateralFnF'], gt) > psnr(lq[:, :3], gt) + 18.5


def test_joint_bilateral_keeps_the_flash_edge_sharper_than_the_single_image(scene):
    lq, gt, outputs = scene
    rows = slice(8, 92)  # away from the box and the shadow

    def edge_step(linear):
        srgb = render(linear)[0, :, rows]
        return (srgb[..., EDGE_COLUMN:EDGE_COLUMN + 2].mean() - srgb[..., EDGE_COLUMN - 2:EDGE_COLUMN].mean()).item()

    true_step = edge_step(gt)
    # Measured: 0.80 of the true step (joint bilateral) against 0.03 (non-local means smooths it away).
    assert edge_step(outputs['JointBilateralFnF']) > 0.65 * true_step
    assert edge_step(outputs['NLMeansNoFlash']) < 0.4 * true_step


def test_batched_output_shape_dtype_device_and_determinism(scene):
    lq = scene[0][..., :48, :40]
    batch = torch.cat([lq, lq.flip(-1)])
    net = JointBilateralFnF()
    output = net(batch)
    assert output.shape == (2, 3, 48, 40)
    assert output.dtype == torch.float32 and output.device == batch.device
    assert torch.isfinite(output).all()
    assert torch.equal(output, net(batch))  # bit-identical on a second run
    assert torch.equal(output[1:], net(batch[1:]))  # each sample is filtered on its own


def test_builds_from_options_without_parameters():
    options = 'type: JointBilateralFnF\nsigma_space: 3\nsigma_range: 5\ndetail_transfer: false\n'
    assert 'JointBilateralFnF' in ARCH_REGISTRY
    net = build_network(yaml.safe_load(options))
    assert type(net) is JointBilateralFnF
    assert list(net.parameters()) == [] and net.trainable is False
    assert all(getattr(net, key) == value for key, value in yaml.safe_load(options).items() if key != 'type')


def test_shadow_mask_covers_the_flash_shadow_and_stops_its_noise():
    ambient, flash_only = clean_scene()
    lq, gt = noisy_input(ambient, flash_only)
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


def test_bad_inputs_and_options_are_reported():
    with pytest.raises(ValueError, match=r'12-channel flash/no-flash input.*got shape \(1, 6, 8, 8\)'):
        JointBilateralFnF()(torch.rand(1, 6, 8, 8))
    with pytest.raises(ValueError, match='sigma_range'):
        JointBilateralFnF(sigma_range=0)
