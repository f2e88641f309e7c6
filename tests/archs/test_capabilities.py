"""Declared network capabilities: each of our networks declares what it does, foreign ones get the defaults."""
import inspect

import pytest
import torch

import fnf_basicsr  # noqa: F401  (first: fixes basicsr's imports on today's torchvision, registers our networks)
# isort: split
from basicsr.archs import build_network
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.swinir_arch import SwinIR
from basicsr.utils.registry import ARCH_REGISTRY

from fnf_basicsr.archs.capabilities import DEFAULTS, capability

# Small constructor options of every network of ours.
TINY = {
    'DeepFnF': dict(width=0.0625, num_basis=4, kernel_size=5, upsample=2),
    'BPN': dict(width=0.0625, num_basis=4, kernel_size=5),
    'KPN': dict(width=0.0625, kernel_size=5),
    'DirectUNet': dict(width=0.0625),
    'JointBilateralFnF': {},
    'NLMeansNoFlash': {},
}
GLOBAL_STATISTICS_METHODS = ('encode', 'pooled_features', 'basis_from_pooled')


def _ours():
    return sorted(name for name, cls in ARCH_REGISTRY if cls.__module__.startswith('fnf_basicsr.archs.'))


def _build(name):
    torch.manual_seed(0)
    return build_network({'type': name, **TINY[name]}).eval()


def _lq(channels=12, size=32):
    return torch.rand(1, channels, size, size, generator=torch.Generator().manual_seed(0)) * 0.1


def test_every_network_of_ours_is_checked_here():
    assert _ours() == sorted(TINY)


@pytest.mark.parametrize('name', sorted(TINY))
def test_trainable_is_declared_by_the_parameter_free_references(name):
    net = _build(name)
    assert capability(net, 'trainable') == any(True for _ in net.parameters())


@pytest.mark.parametrize('name', sorted(TINY))
def test_intermediates_are_declared_exactly_by_the_networks_that_return_them(name):
    net = _build(name)
    accepts = 'return_intermediates' in inspect.signature(net.forward).parameters
    assert capability(net, 'supports_intermediates') == accepts
    if accepts:
        lq = _lq()
        with torch.no_grad():
            parts = net(lq, return_intermediates=True)
            torch.testing.assert_close(parts['output'], net(lq), rtol=0, atol=0)


@pytest.mark.parametrize('name', sorted(TINY))
def test_global_statistics_are_declared_exactly_by_the_networks_that_take_a_basis(name):
    net = _build(name)
    takes_basis = 'basis' in inspect.signature(net.forward).parameters
    assert capability(net, 'global_basis_statistics') == takes_basis
    if takes_basis:
        assert all(callable(getattr(net, method, None)) for method in GLOBAL_STATISTICS_METHODS)
        lq = _lq()
        with torch.no_grad():
            basis = net.basis_from_pooled(net.pooled_features(lq))
            torch.testing.assert_close(net(lq, basis=basis), net(lq), rtol=0, atol=0)


@pytest.mark.parametrize('name', ['DeepFnF', 'BPN', 'KPN', 'DirectUNet'])
def test_learned_networks_declare_their_input_channels(name):
    torch.manual_seed(0)
    assert capability(build_network({'type': name, **TINY[name], 'in_channels': 6}), 'in_channels') == 6


@pytest.mark.parametrize('name', sorted(TINY))
def test_input_normalization_is_declared_by_the_networks_that_take_whole_image_means(name):
    default = _build(name)
    takes_means = 'frame_means' in inspect.signature(default.forward).parameters
    assert capability(default, 'input_normalization') == 'none'
    if takes_means:
        torch.manual_seed(0)
        net = build_network({'type': name, **TINY[name], 'input_normalization': 'frame_mean'}).eval()
        assert capability(net, 'input_normalization') == 'frame_mean'
        lq = _lq()
        means = lq[:, :6].reshape(1, 2, -1).mean(dim=2)
        with torch.no_grad():
            torch.testing.assert_close(net(lq, frame_means=means), net(lq), rtol=1e-5, atol=1e-7)
    assert takes_means == (name in ('DeepFnF', 'BPN', 'KPN', 'DirectUNet'))


@pytest.mark.parametrize('name', ['JointBilateralFnF', 'NLMeansNoFlash'])
def test_classical_references_declare_no_input_channels(name):
    assert capability(_build(name), 'in_channels') is None


@pytest.mark.parametrize('net', [
    RRDBNet(12, 3, scale=1, num_feat=8, num_block=1, num_grow_ch=4),
    SwinIR(in_chans=12, upscale=1, img_size=64, window_size=8, embed_dim=12, depths=[1], num_heads=[2],
           mlp_ratio=1, upsampler='', resi_connection='1conv'),
], ids=['RRDBNet', 'SwinIR'])
def test_foreign_networks_that_declare_nothing_get_the_defaults(net):
    assert {name: capability(net, name) for name in DEFAULTS} == {
        'trainable': True, 'supports_intermediates': False, 'global_basis_statistics': False, 'in_channels': None,
        'input_normalization': 'none', 'size_multiple': None}


def test_a_declaration_is_read_from_the_class_too():
    assert capability(ARCH_REGISTRY.get('DeepFnF'), 'supports_intermediates') is True
    assert capability(ARCH_REGISTRY.get('KPN'), 'supports_intermediates') is False


def test_an_unknown_capability_is_a_key_error_naming_the_known_ones():
    with pytest.raises(KeyError, match="unknown network capability 'supports_intermediate'.*supports_intermediates"):
        capability(RRDBNet(3, 3, num_feat=8, num_block=1, num_grow_ch=4), 'supports_intermediate')
