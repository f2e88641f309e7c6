"""BPN (fnf_basicsr.archs.bpn_arch) at a tiny width on CPU: its basis from pooled features."""
import torch

from fnf_basicsr.archs.bpn_arch import BPN

TINY_BPN = dict(width=0.0625, num_basis=4, kernel_size=5)


def _input(batch=1, channels=12, height=21, width=27, seed=0):
    """A random input of odd size (padded to 32x32 inside the networks)."""
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


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
