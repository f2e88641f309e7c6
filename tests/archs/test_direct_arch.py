"""The direct U-Net (fnf_basicsr.archs.direct_arch) at a tiny width on CPU: its residual option."""
import torch

from fnf_basicsr.archs.direct_arch import DirectUNet


def _input(batch=1, channels=12, height=21, width=27, seed=0):
    """A random input of odd size (padded to 32x32 inside the networks)."""
    return torch.rand(batch, channels, height, width, generator=torch.Generator().manual_seed(seed))


def test_direct_unet_residual_adds_the_no_flash_image():
    torch.manual_seed(0)
    plain = DirectUNet(width=0.0625)
    residual = DirectUNet(width=0.0625, residual=True)
    residual.load_state_dict(plain.state_dict())
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(residual(x), plain(x) + x[:, :3])
