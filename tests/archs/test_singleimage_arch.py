"""Non-local means on the no-flash image (fnf_basicsr.archs.singleimage_arch), the single-image reference: its
gain on the synthetic scene, the channels it reads, shapes and determinism, options and bad inputs."""
import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401  (first: fixes basicsr's imports on today's torchvision, registers our networks)
# isort: split
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from classical_scene import clean_scene, noisy_input, psnr
from fnf_basicsr.archs.singleimage_arch import NLMeansNoFlash


@pytest.fixture(scope='module')
def scene():
    lq, gt = noisy_input(*clean_scene())
    return lq, gt, {'NLMeansNoFlash': NLMeansNoFlash()(lq)}


# Noisy input 14.7 dB; measured gains over noise seeds 0-3: +18.9 to +19.5 dB.
def test_denoising_gain_on_the_synthetic_scene(scene):
    lq, gt, outputs = scene
    assert psnr(outputs['NLMeansNoFlash'], gt) > psnr(lq[:, :3], gt) + 17.5


def test_batched_output_shape_dtype_device_and_determinism(scene):
    lq = scene[0][..., :48, :40]
    batch = torch.cat([lq, lq.flip(-1)])
    net = NLMeansNoFlash()
    output = net(batch)
    assert output.shape == (2, 3, 48, 40)
    assert output.dtype == torch.float32 and output.device == batch.device
    assert torch.isfinite(output).all()
    assert torch.equal(output, net(batch))  # bit-identical on a second run
    assert torch.equal(output[1:], net(batch[1:]))  # each sample is filtered on its own


def test_builds_from_options_without_parameters():
    options = 'type: NLMeansNoFlash\npatch_size: 5\npatch_distance: 6\nh: 0.6\n'
    assert 'NLMeansNoFlash' in ARCH_REGISTRY
    net = build_network(yaml.safe_load(options))
    assert type(net) is NLMeansNoFlash
    assert list(net.parameters()) == [] and net.trainable is False
    assert all(getattr(net, key) == value for key, value in yaml.safe_load(options).items() if key != 'type')


def test_single_image_denoiser_reads_the_no_flash_channels_only(scene):
    lq = scene[0][..., :40, :40]
    net = NLMeansNoFlash()
    other = lq.clone()
    other[:, 3:6] = torch.rand_like(other[:, 3:6])
    assert torch.equal(net(lq), net(other))  # the flash is ignored
    assert torch.equal(net(lq), net(torch.cat([lq[:, 0:3], lq[:, 6:9]], dim=1)))  # 6-channel no-flash input


def test_bad_inputs_and_options_are_reported():
    with pytest.raises(ValueError, match=r'NLMeansNoFlash expects.*got shape \(1, 9, 8, 8\)'):
        NLMeansNoFlash()(torch.rand(1, 9, 8, 8))
    with pytest.raises(ValueError, match='h > 0'):
        NLMeansNoFlash(h=-1)
