"""``input_normalization: frame_mean``: what the encoder sees, what the output keeps, how weights load."""
import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401  (first: basicsr's registries on today's torchvision)
from fnf_basicsr.archs.bpn_arch import BPN
from fnf_basicsr.archs.capabilities import capability
from fnf_basicsr.archs.deepfnf_arch import DeepFnF
from fnf_basicsr.archs.direct_arch import DirectUNet
from fnf_basicsr.archs.input_normalization import (MIN_FRAME_MEAN, NORMALIZATION_MARKER, frame_means,
                                                   normalize_frames)
from fnf_basicsr.archs.kpn_arch import KPN
from fnf_basicsr.inference.checkpoint import CheckpointError, load_network

TINY = {'DeepFnF': dict(width=0.0625, num_basis=4, kernel_size=5, upsample=2),
        'KPN': dict(width=0.0625, kernel_size=3), 'BPN': dict(width=0.0625, num_basis=4, kernel_size=5),
        'DirectUNet': dict(width=0.0625)}
NETWORKS = {'DeepFnF': DeepFnF, 'KPN': KPN, 'BPN': BPN, 'DirectUNet': DirectUNet}


def tiny(name, normalization, seed=0):
    torch.manual_seed(seed)
    return NETWORKS[name](**TINY[name], input_normalization=normalization).eval()


def dim_pair(seed=0, size=48):
    """A 12-channel lq of a 50x-dimmed no-flash frame and a bright flash frame, with their std maps."""
    generator = torch.Generator().manual_seed(seed)
    noflash = 0.01 * torch.rand(1, 3, size, size, generator=generator)
    flash = 0.6 * torch.rand(1, 3, size, size, generator=generator)
    return torch.cat([noflash, flash, 0.5 * noflash.sqrt() * 0.05, 0.05 * flash.sqrt()], dim=1)


def test_each_frame_and_its_std_map_are_divided_by_the_frame_mean():
    lq = dim_pair()
    normalized = normalize_frames(lq)
    noflash_mean, flash_mean = lq[:, 0:3].mean(), lq[:, 3:6].mean()
    torch.testing.assert_close(normalized[:, 0:3], lq[:, 0:3] / noflash_mean)
    torch.testing.assert_close(normalized[:, 3:6], lq[:, 3:6] / flash_mean)
    torch.testing.assert_close(normalized[:, 6:9], lq[:, 6:9] / noflash_mean)  # std of the no-flash
    torch.testing.assert_close(normalized[:, 9:12], lq[:, 9:12] / flash_mean)
    assert normalized[:, 0:3].mean().item() == pytest.approx(1.0, rel=1e-5)


def test_given_means_replace_the_input_own_and_a_black_frame_stays_finite():
    lq = dim_pair()
    means = torch.tensor([[0.5, 2.0]])
    torch.testing.assert_close(normalize_frames(lq, means)[:, 0:3], lq[:, 0:3] / 0.5)
    black = torch.cat([torch.zeros(1, 3, 8, 8), torch.ones(1, 3, 8, 8), torch.zeros(1, 6, 8, 8)], dim=1)
    assert frame_means(black)[0, 0].item() == pytest.approx(MIN_FRAME_MEAN)
    assert torch.isfinite(normalize_frames(black)).all()


@pytest.mark.parametrize('name', list(NETWORKS))
def test_normalised_networks_follow_the_input_brightness_exactly(name):
    """Brighten every frame and std map 8x: a normalising network's output is 8x brighter, nothing else."""
    lq = dim_pair(seed=1)
    net = tiny(name, 'frame_mean')
    with torch.no_grad():
        dim, bright = net(lq), net(8 * lq)
    torch.testing.assert_close(bright, 8 * dim, rtol=1e-4, atol=1e-6 * float(dim.abs().max()))


def test_without_normalisation_the_output_is_not_brightness_equivariant():
    """The check above can fail: the released-code network (raw input) is not equivariant."""
    lq = dim_pair(seed=1)
    net = tiny('DeepFnF', 'none')
    with torch.no_grad():
        dim, bright = net(lq), net(8 * lq)
    assert float((bright - 8 * dim).abs().max()) > 1e-2 * float(bright.abs().max())


def test_the_option_is_declared_and_unknown_names_are_refused():
    assert capability(tiny('KPN', 'frame_mean'), 'input_normalization') == 'frame_mean'
    assert capability(tiny('KPN', 'none'), 'input_normalization') == 'none'
    with pytest.raises(ValueError, match=r"input_normalization must be one of \['none', 'frame_mean'\]"):
        DeepFnF(**TINY['DeepFnF'], input_normalization='mean')


def test_weights_never_load_silently_across_normalisations():
    """No weight shape differs, so the marker entry is what makes strict loading fail, in both directions."""
    normalized, raw = tiny('DeepFnF', 'frame_mean'), tiny('DeepFnF', 'none')
    assert NORMALIZATION_MARKER in normalized.state_dict() and NORMALIZATION_MARKER not in raw.state_dict()
    with pytest.raises(RuntimeError, match=NORMALIZATION_MARKER):
        raw.load_state_dict(normalized.state_dict())
    with pytest.raises(RuntimeError, match=NORMALIZATION_MARKER):
        normalized.load_state_dict(raw.state_dict())
    tiny('DeepFnF', 'frame_mean', seed=1).load_state_dict(normalized.state_dict())


def test_load_network_names_the_normalisation_mismatch(tmp_path):
    network_opt = {'type': 'DeepFnF', **TINY['DeepFnF'], 'input_normalization': 'frame_mean'}
    checkpoint = tmp_path / 'net_g_latest.pth'
    torch.save({'params': tiny('DeepFnF', 'frame_mean').state_dict()}, checkpoint)
    trained_with = tmp_path / 'trained.yml'
    trained_with.write_text(yaml.safe_dump({'network_g': network_opt}))
    loaded = load_network(checkpoint, trained_with)
    assert loaded.net.input_normalization == 'frame_mean'
    wrong = tmp_path / 'wrong.yml'
    wrong.write_text(yaml.safe_dump({'network_g': {**network_opt, 'input_normalization': 'none'}}))
    with pytest.raises(CheckpointError, match='trained with network_g input_normalization: frame_mean; '
                                              'the option file says none'):
        load_network(checkpoint, wrong)
