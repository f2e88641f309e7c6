"""The synthetic flash/no-flash scene the classical references are tested on (tests/archs/test_jointbilateral_arch.py,
tests/archs/test_singleimage_arch.py): piecewise-smooth albedo, a faint edge, a flash shadow, the test noise."""
import torch

from fnf_basicsr.data.degradation import FLASH_GAIN
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT, add_noise, noise_std
from fnf_basicsr.utils.rendering import render_srgb

SIZE = 128
ALPHA = 1 / 50  # dimming factor 50, the middle of the paper's test protocol
EDGE_COLUMN = 96  # a faint albedo edge, clear in the flash, buried in the no-flash noise
SHADOW = (slice(100, 124), slice(8, 56))  # rows, columns of the flash's cast shadow


def clean_scene(size=SIZE):
    """Piecewise-smooth albedo lit two ways: (ambient, flash_only), each (3, H, W) linear."""
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing='ij')
    albedo = torch.stack([0.45 + 0.15 * xs, 0.40 + 0.10 * ys, 0.35 - 0.05 * xs])
    disc = (xs + 0.35) ** 2 + (ys + 0.3) ** 2 < 0.3 ** 2
    albedo[:, disc] = torch.tensor([[0.8], [0.25], [0.15]])
    box = (ys > 0.2) & (ys < 0.6) & (xs > -0.9) & (xs < -0.1)
    albedo[:, box] = torch.tensor([[0.1], [0.3], [0.6]])
    albedo[:, :, EDGE_COLUMN:] *= 1.25
    # Ambient: a warm light from the left; flash: a white light on the axis with radial falloff.
    ambient = albedo * (0.3 + 0.7 * (1 - xs) / 2) * torch.tensor([1.0, 0.8, 0.55]).view(3, 1, 1)
    flash_only = albedo * 0.5 / (1 + 1.5 * (xs ** 2 + ys ** 2))
    flash_only[:, SHADOW[0], SHADOW[1]] = 0
    return ambient, flash_only


def noisy_input(ambient, flash_only, alpha=ALPHA, seed=0):
    """(1, 12, H, W) input and (1, 3, H, W) target, degraded as the dataset does (aligned here)."""
    generator = torch.Generator().manual_seed(seed)
    no_flash_clean = alpha * ambient
    no_flash = add_noise(no_flash_clean, TEST_SIG_READ, TEST_SIG_SHOT, generator)
    flash = add_noise(FLASH_GAIN * flash_only + alpha * ambient, TEST_SIG_READ, TEST_SIG_SHOT, generator)
    stds = [noise_std(image, TEST_SIG_READ, TEST_SIG_SHOT) for image in (no_flash, flash)]
    return torch.cat([no_flash, flash, *stds])[None], no_flash_clean[None]


def render(linear):
    return render_srgb(linear, torch.tensor([1 / ALPHA]), torch.eye(3)).clamp(0, 1)


def psnr(estimate, gt):
    return (10 * torch.log10(1 / ((render(estimate) - render(gt)) ** 2).mean())).item()
