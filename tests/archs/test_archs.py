"""Every network of the package (registered by fnf_basicsr.archs): DeepFnF, KPN, BPN and the direct U-Net
build from their option-file form at tiny widths on CPU, keep odd sizes, train every parameter, check inputs.
Each network's own behaviour is tested in tests/archs/test_<module>.py."""
import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401  (first: fixes basicsr's imports on today's torchvision, registers our networks)
# isort: split
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY

from fnf_basicsr.archs.kpn_arch import KPN

# Tiny configurations, written as they would appear under network_g in an option file.
TINY_OPTIONS = {
    'DeepFnF': 'type: DeepFnF\nwidth: 0.0625\nnum_basis: 4\nkernel_size: 5\nupsample: 2\n',
    'KPN': 'type: KPN\nwidth: 0.0625\nkernel_size: 5\n',
    'BPN': 'type: BPN\nwidth: 0.0625\nnum_basis: 4\nkernel_size: 5\n',
    'DirectUNet': 'type: DirectUNet\nwidth: 0.0625\n',
}


def _input(batch=1, channels=12, height=21, width=27, seed=0):
    """A random input of odd size (padded to 32x32 inside the networks)."""
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


def _tiny(name, **overrides):
    torch.manual_seed(0)
    return build_network({**yaml.safe_load(TINY_OPTIONS[name]), **overrides})


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


def test_wrong_number_of_input_channels_is_reported():
    net = _tiny('DeepFnF')
    with pytest.raises(ValueError, match=r'expects lq of shape \(B, 12, H, W\).*got \(1, 6, 21, 27\)'):
        net(_input(channels=6))
    with pytest.raises(ValueError, match='6 per frame'):
        KPN(in_channels=8)
