"""DeepFnF (fnf_basicsr.archs.deepfnf_arch) at a tiny width on CPU: intermediates, options, bases, autocast."""
import pytest
import torch

from fnf_basicsr.archs.deepfnf_arch import DeepFnF, zero_padded_tent_prefilter
from fnf_basicsr.archs.fnf_blocks import pad_to_multiple
from fnf_basicsr.ops.kernel_filter import lowpass_prefilter

TINY_DEEPFNF = dict(width=0.0625, num_basis=4, kernel_size=5, upsample=2)


def _input(batch=1, channels=12, height=21, width=27, seed=0):
    """A random input of odd size (padded to 32x32 inside the networks)."""
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope='module')
def deepfnf():
    """A tiny DeepFnF, an input for it and its intermediates on that input."""
    torch.manual_seed(0)
    net = DeepFnF(**TINY_DEEPFNF).eval()
    x = _input(batch=2)
    with torch.no_grad():
        return net, x, net(x, return_intermediates=True)


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


def test_deepfnf_under_bfloat16_autocast_is_finite_and_close_to_float32(deepfnf):
    net, x, result = deepfnf
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = net(x)
    reference = result['output']
    assert mixed.dtype == torch.float32 and torch.isfinite(mixed).all()
    assert ((mixed - reference).norm() / reference.norm()).item() < 0.05


def test_zero_padded_tent_prefilter_matches_hand_computed_values():
    ones = torch.ones(1, 1, 4, 5)
    # d = 2: tent [1, 2, 1] / 4 per axis; at a border 3/4 of it lies inside, in a corner (3/4)^2
    zeros = zero_padded_tent_prefilter(ones, 2)[0, 0]
    assert zeros[0, 0] == pytest.approx(0.5625) and zeros[0, 2] == pytest.approx(0.75)
    assert zeros[2, 0] == pytest.approx(0.75) and zeros[1, 2] == pytest.approx(1.0)
    # d = 4 (the paper): corner (10 / 16)^2 of the value
    assert zero_padded_tent_prefilter(torch.ones(1, 1, 9, 9), 4)[0, 0, 0, 0] == pytest.approx((10 / 16) ** 2)
    torch.testing.assert_close(lowpass_prefilter(ones, 2), ones)  # reflect padding keeps a flat image flat
    ramp = torch.arange(5.0).expand(1, 1, 5, 5)
    interior = zero_padded_tent_prefilter(ramp, 2)[0, 0, 2, 2]
    assert interior == pytest.approx(2.0)  # both paddings agree away from the border
    assert lowpass_prefilter(ramp, 2)[0, 0, 2, 2] == pytest.approx(2.0)
