"""KPN (fnf_basicsr.archs.kpn_arch) at a tiny width on CPU: per-frame kernels, one or two frames."""
import torch

from fnf_basicsr.archs.kpn_arch import KPN


def _tiny(**overrides):
    torch.manual_seed(0)
    return KPN(width=0.0625, kernel_size=5, **overrides)


def _input(batch=1, channels=12, height=21, width=27, seed=0):
    """A random input of odd size (padded to 32x32 inside the networks)."""
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


def test_kpn_sums_the_frames_filtered_with_their_kernels():
    net = _tiny()
    x = _input()
    # Kernels that take the centre tap of frame 1 and twice the pixel on the right in frame 2.
    kernels = torch.zeros(1, 2 * 25, 21, 27)
    kernels[:, 12] = 1.0
    kernels[:, 25 + 13] = 2.0
    net.decode = lambda bottleneck, skips, size: kernels
    expected = x[:, 0:3] + 2.0 * torch.cat([x[:, 3:6, :, 1:], x[:, 3:6, :, -2:-1]], dim=-1)  # reflected border
    torch.testing.assert_close(net(x), expected)


def test_kpn_filters_a_single_frame_in_six_channel_mode():
    net = _tiny(in_channels=6)
    assert net.num_frames == 1 and net.coefficient_decoder.output.out_channels == 25
    assert net(_input(channels=6)).shape == (1, 3, 21, 27)
