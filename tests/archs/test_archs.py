"""Networks: DeepFnF, KPN, BPN and the direct U-Net, at tiny widths on CPU."""
import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401  (first: fixes basicsr's imports on today's torchvision, registers our networks)
# isort: split
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from fnf_basicsr.archs.bpn_arch import BPN
from fnf_basicsr.archs.deepfnf_arch import DeepFnF
from fnf_basicsr.archs.direct_arch import DirectUNet
from fnf_basicsr.archs.fnf_blocks import pad_to_multiple
from fnf_basicsr.archs.kpn_arch import KPN

# Tiny configurations, written as they would appear under network_g in an option file.
TINY_OPTIONS = {
    'DeepFnF': 'type: DeepFnF\nwidth: 0.0625\nnum_basis: 4\nkernel_size: 5\nupsample: 2\n',
    'KPN': 'type: KPN\nwidth: 0.0625\nkernel_size: 5\n',
    'BPN': 'type: BPN\nwidth: 0.0625\nnum_basis: 4\nkernel_size: 5\n',
    'DirectUNet': 'type: DirectUNet\nwidth: 0.0625\n',
}
TINY_DEEPFNF = dict(width=0.0625, num_basis=4, kernel_size=5, upsample=2)
TINY_BPN = dict(width=0.0625, num_basis=4, kernel_size=5)


def _input(batch=1, channels=12, height=21, width=27, seed=0):
    """A random input of odd size (padded to 32x32 inside the networks)."""
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


def _tiny(name, **overrides):
    torch.manual_seed(0)
    return build_network({**yaml.safe_load(TINY_OPTIONS[name]), **overrides})


@pytest.fixture(scope='module')
def deepfnf():
    """A tiny DeepFnF, an input for it and its intermediates on that input."""
    torch.manual_seed(0)
    net = DeepFnF(**TINY_DEEPFNF).eval()
    x = _input(batch=2)
    with torch.no_grad():
        return net, x, net(x, return_intermediates=True)


@pytest.mark.parametrize('name', sorted(TINY_OPTIONS))
def test_builds_from_options_keeps_odd_sizes_and_trains_every_parameter(name):
    assert name in ARCH_REGISTRY
    net = _tiny(name)
    output = net(_input(batch=2))
    assert output.shape == (2, 3, 21, 27)
    assert output.dtype == torch.float32 and torch.isfinite(output).all()
    (output * torch.randn(output.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    without_gradient = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not without_gradient


def test_wrong_number_of_input_channels_is_reported(deepfnf):
    net, _, _ = deepfnf
    with pytest.raises(ValueError, match=r'expects lq of shape \(B, 12, H, W\).*got \(1, 6, 21, 27\)'):
        net(_input(channels=6))
    with pytest.raises(ValueError, match='6 per frame'):
        KPN(in_channels=8)


def test_deepfnf_intermediates_compose_the_output(deepfnf):
    _, _, result = deepfnf
    shapes = {key: tuple(value.shape) for key, value in result.items()}
    assert shapes == {'output': (2, 3, 21, 27), 'filtered': (2, 3, 21, 27), 'scale_map': (2, 3, 21, 27),
                      'coeffs': (2, 4, 21, 27), 'basis_a': (2, 4, 3, 5, 5), 'basis_b': (2, 4, 3, 5, 5)}
    torch.testing.assert_close(result['output'], result['filtered'] * result['scale_map'])


def test_deepfnf_without_scale_map_outputs_the_filtered_no_flash_image():
    net = DeepFnF(in_channels=6, use_scale_map=False, **TINY_DEEPFNF)
    assert net.coefficient_decoder.output.out_channels == 4  # J coefficients, no G
    result = net(_input(channels=6), return_intermediates=True)
    assert result['scale_map'] is None
    assert torch.equal(result['output'], result['filtered'])


def test_deepfnf_scale_map_bias_shifts_only_the_initial_scale_map():
    """Same seed, same weights: the scale map G starts exactly 1 higher everywhere, the rest is unchanged."""
    lq = _input(seed=3)
    results = []
    for bias in (0.0, 1.0):
        torch.manual_seed(0)
        with torch.no_grad():
            results.append(DeepFnF(**TINY_DEEPFNF, scale_map_bias=bias)(lq, return_intermediates=True))
    default, shifted = results
    torch.testing.assert_close(shifted['scale_map'], default['scale_map'] + 1)
    torch.testing.assert_close(shifted['coeffs'], default['coeffs'], rtol=0, atol=0)
    torch.testing.assert_close(shifted['filtered'], default['filtered'], rtol=0, atol=0)


def test_deepfnf_identity_term_adds_a_per_pixel_multiple_of_the_no_flash_image():
    net = DeepFnF(identity_term=True, scale_map_bias=1.0, **TINY_DEEPFNF)
    assert net.coefficient_decoder.output.out_channels == 4 + 1 + 3  # c_1..c_J, c_0, G
    lq = _input(seed=4)
    with torch.no_grad():
        without = DeepFnF(**TINY_DEEPFNF)
        output = net.coefficient_decoder.output
        output.weight.zero_()
        output.bias.zero_()
        output.bias[4] = 1.0  # c_0 = 1, every basis coefficient 0, G = 1
        output.bias[5:] = 1.0
        result = net(lq, return_intermediates=True)
    torch.testing.assert_close(result['output'], lq[:, :3], rtol=0, atol=0)  # the identity filter, exactly
    assert result['coeffs'].shape[1] == 4 and without.coefficient_decoder.output.out_channels == 4 + 3


def test_deepfnf_without_lowpass_predicts_only_the_full_resolution_kernels():
    net = DeepFnF(use_lowpass=False, **TINY_DEEPFNF)
    assert net.basis_decoder.output.out_channels == 3 * 4
    result = net(_input(), return_intermediates=True)
    assert result['basis_b'] is None and result['output'].shape == (1, 3, 21, 27)


def test_deepfnf_basis_from_pooled_features_is_the_internal_basis_and_a_given_basis_is_used(deepfnf):
    net, x, result = deepfnf
    with torch.no_grad():
        bottleneck, skips = net.encoder(pad_to_multiple(x))
        pooled = net.pooled_features(x)
        # The bottleneck, then the level-5, 4, 3, 2 skips, globally averaged.
        for got, feature in zip(pooled, (bottleneck, skips[4], skips[3], skips[2], skips[1]), strict=True):
            torch.testing.assert_close(got, feature.mean(dim=(2, 3)))
        basis_a, basis_b = net.basis_from_pooled(pooled)
        torch.testing.assert_close(basis_a, result['basis_a'], rtol=0, atol=0)
        torch.testing.assert_close(basis_b, result['basis_b'], rtol=0, atol=0)
        torch.testing.assert_close(net(x, basis=(basis_a, basis_b)), result['output'], rtol=0, atol=0)
        assert not torch.allclose(net(x, basis=(basis_a, 2 * basis_b)), result['output'])
    with pytest.raises(ValueError, match='basis_from_pooled'):
        net(x, basis=(basis_a, None))


def test_bpn_basis_from_pooled_features_is_used_and_normalised():
    torch.manual_seed(0)
    net = BPN(**TINY_BPN).eval()
    x = _input()
    with torch.no_grad():
        basis = net.basis_from_pooled(net.pooled_features(x))
        torch.testing.assert_close(net(x, basis=basis), net(x), rtol=0, atol=0)
        per_color = basis.view(1, 4, 2, 3, 25).sum(dim=(2, 4))  # over the frames and the taps
        torch.testing.assert_close(per_color, torch.ones(1, 4, 3))
        assert (basis > 0).all()
        # Normalised kernels on frames of one constant colour return that colour.
        x[:, :6] = torch.tensor([0.2, 0.5, 0.9] * 2)[None, :, None, None]
        torch.testing.assert_close(net(x), x[:, :3], rtol=1e-5, atol=1e-6)


def test_kpn_sums_the_frames_filtered_with_their_kernels():
    net = _tiny('KPN')
    x = _input()
    # Kernels that take the centre tap of frame 1 and twice the pixel on the right in frame 2.
    kernels = torch.zeros(1, 2 * 25, 21, 27)
    kernels[:, 12] = 1.0
    kernels[:, 25 + 13] = 2.0
    net.decode = lambda bottleneck, skips, size: kernels
    expected = x[:, 0:3] + 2.0 * torch.cat([x[:, 3:6, :, 1:], x[:, 3:6, :, -2:-1]], dim=-1)  # reflected border
    torch.testing.assert_close(net(x), expected)


def test_kpn_filters_a_single_frame_in_six_channel_mode():
    net = _tiny('KPN', in_channels=6)
    assert net.num_frames == 1 and net.coefficient_decoder.output.out_channels == 25
    assert net(_input(channels=6)).shape == (1, 3, 21, 27)


def test_direct_unet_residual_adds_the_no_flash_image():
    plain = _tiny('DirectUNet')
    residual = DirectUNet(width=0.0625, residual=True)
    residual.load_state_dict(plain.state_dict())
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(residual(x), plain(x) + x[:, :3])


def test_deepfnf_under_bfloat16_autocast_is_finite_and_close_to_float32(deepfnf):
    net, x, result = deepfnf
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = net(x)
    reference = result['output']
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all()
    assert ((mixed - reference).norm() / reference.norm()).item() < 0.05
