"""The authors' released model (fnf_basicsr.inference.release): its conventions as DeepFnF options, its layer
layout, conversion to a BasicSR checkpoint that BasicSR and fnf-denoise load, the release's network input.
The command's errors are in tests/tools/test_convert_release_weights.py."""
import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_release_options

import fnf_basicsr  # noqa: F401  (first: registers our networks with BasicSR)
# isort: split
from fnf_basicsr.archs.deepfnf_arch import DeepFnF
from fnf_basicsr.inference import release
from fnf_basicsr.inference.checkpoint import load_network

TINY_RELEASE = tiny_release_options()


def test_deepfnf_conventions_are_options_and_checked():
    torch.manual_seed(0)
    net = DeepFnF(**TINY_RELEASE).eval()
    default = DeepFnF(**{**TINY_RELEASE, 'upsampling': 'half_pixel', 'tent_padding': 'reflect'}).eval()
    default.load_state_dict(net.state_dict())
    x = torch.rand(1, 12, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert not torch.allclose(net(x), default(x), rtol=1e-3, atol=1e-6)
    with pytest.raises(ValueError, match='tent_padding must be one of'):
        DeepFnF(**{**TINY_RELEASE, 'tent_padding': 'same'})
    with pytest.raises(ValueError, match='upsampling must be one of'):
        DeepFnF(**{**TINY_RELEASE, 'upsampling': 'align_corners'})


def test_release_layout_names_46_convolutions_in_netpy_order():
    names = [layer for layer, _ in release.RELEASE_LAYERS]
    assert len(names) == 46 and names[:3] == ['inp', 'down1_1', 'down1_2']
    assert names[names.index('bottleneck_2') + 1] == 'up1_1' and names[30] == 'output'
    assert names[-3:] == ['k_conv', 'k_output_1', 'k_output_2']
    with torch.device('meta'):
        full = DeepFnF(**{k: v for k, v in release.RELEASE_NETWORK.items() if k != 'type'})
    assert sum(p.numel() for p in full.parameters()) == 78_471_033
    assert {k: release.RELEASE_NETWORK[k] for k in ('in_channels', 'num_basis', 'kernel_size', 'upsample', 'width')} \
        == {'in_channels': 12, 'num_basis': 90, 'kernel_size': 15, 'upsample': 4, 'width': 1.0}  # the paper's


def test_converted_model_gives_identical_outputs(release_model, tmp_path):
    net, arrays, path = release_model
    checkpoint, option_file, options = release.convert_release_weights(path, tmp_path / 'out' / 'release.pth')
    assert option_file == tmp_path / 'out' / 'release.yml'
    network_g = yaml.safe_load(option_file.read_text())['network_g']
    assert network_g == options and network_g['upsampling'] == 'tf1' and network_g['tent_padding'] == 'zeros'
    assert network_g['num_basis'] == 4 and network_g['width'] == 0.0625
    assert set(torch.load(checkpoint, weights_only=True)) == {'params'}
    loaded = load_network(checkpoint)  # finds release.yml beside it, no other argument
    assert loaded.option_file == option_file and loaded.input_mode == 'flash_noflash'
    x = torch.rand(1, 12, 32, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(loaded.net(x), net(x))
    # HWIO -> OIHW: one kernel tap checked by index
    assert arrays['down2_1_w'][2, 0, 1, 3] == net.encoder.levels[1][0][0].weight[3, 1, 2, 0]


def test_release_basis_channels_read_as_colour_ab_j(release_model):
    """The release reshapes k_output_2 (B, 15, 15, 6J) to (B, J, 15 * 15 * 3 * 2): check our A_j, B_j against it."""
    net, _, _ = release_model
    x = torch.rand(1, 12, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        parts = net(x, return_intermediates=True)
        maps = net.basis_decoder(net.pooled_features(x))  # (B, 6J, K, K)
    size, num_basis = 15, 4
    nhwc = maps.permute(0, 2, 3, 1).numpy()
    basis = nhwc.reshape(1, size * size * 6, num_basis).transpose(0, 2, 1)  # (B, J, taps * 3 * 2)
    kernels = basis.reshape(1, num_basis, size, size, 3, 2)  # tap (y, x), colour, A/B
    np.testing.assert_array_equal(parts['basis_a'].numpy(), kernels[..., 0].transpose(0, 1, 4, 2, 3))
    np.testing.assert_array_equal(parts['basis_b'].numpy(), kernels[..., 1].transpose(0, 1, 4, 2, 3))


def test_basicsr_loads_the_converted_checkpoint(release_model, tmp_path):
    from basicsr.archs import build_network
    from basicsr.models.base_model import BaseModel
    net, _, path = release_model
    checkpoint, option_file, _ = release.convert_release_weights(path, tmp_path / 'release.pth')
    opt = yaml.safe_load(option_file.read_text())
    built = build_network(dict(opt['network_g'])).eval()
    model = BaseModel.__new__(BaseModel)  # only load_network's own needs: no devices, no options
    model.opt = {'dist': False}
    BaseModel.load_network(model, built, opt['path']['pretrain_network_g'], strict=True,
                           param_key=opt['path']['param_key_g'])
    x = torch.rand(1, 12, 32, 32, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        assert torch.equal(built(x), net(x))


def test_fnf_denoise_uses_the_converted_checkpoint_with_no_other_flag(release_model, tmp_path):
    from fnf_basicsr.data.faid import encode_png16
    from fnf_basicsr.data.synthetic import render_scene
    from fnf_basicsr.denoise import main as denoise
    _, _, path = release_model
    checkpoint, _, _ = release.convert_release_weights(path, tmp_path / 'weights' / 'release.pth')
    ambient, flash_only, metadata = render_scene(7, 64)
    for name, clean in (('noflash', 0.05 * ambient), ('flash', 2 * flash_only + 0.05 * ambient)):
        pixels = np.round(np.clip(clean, 0, 1) * 65535).astype(np.uint16)
        (tmp_path / f'{name}.png').write_bytes(encode_png16(pixels, metadata.to_text()))
    out = tmp_path / 'denoised.png'
    denoise(['--noflash', str(tmp_path / 'noflash.png'), '--flash', str(tmp_path / 'flash.png'), '--weights',
             str(checkpoint), '--out', str(out), '--sig-read', '0.0025', '--sig-shot', '0.0158', '--no-progress'])
    assert out.stat().st_size > 1000
