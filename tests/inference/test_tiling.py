"""Tiled inference: tile layout, seamless blending, and agreement with whole-image inference."""
import cv2
import numpy as np
import pytest
import torch

from fnf_basicsr.archs.bpn_arch import BPN
from fnf_basicsr.archs.deepfnf_arch import DeepFnF
from fnf_basicsr.archs.kpn_arch import KPN
from fnf_basicsr.data.degradation import FLASH_GAIN, assemble_input
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT, add_noise
from fnf_basicsr.data.synthetic import SPLIT_SEED_OFFSETS, render_scene
from fnf_basicsr.inference.tiling import (axis_windows, check_tiling, crop_reader, denoise_tiled, denoise_whole,
                                          plan_tiles, tile_spans)

# The acceptance bound of the tiled output against whole-image inference (issue 6).
MIN_TILED_PSNR_DB = 45.0


def psnr_against(reference, estimate):
    """PSNR in dB with the reference's largest magnitude as the peak (its data range)."""
    peak = reference.abs().max()
    return float(10 * torch.log10(peak ** 2 / (estimate - reference).pow(2).mean()))


def noisy_capture(size, seed=0):
    """A (1, 12, size, size) network input from a synthetic test scene, dimmed 20x and noised."""
    scene = 256
    ambient, flash_only, _ = render_scene(SPLIT_SEED_OFFSETS['test'] + seed, scene)
    generator = torch.Generator().manual_seed(seed)
    frames = []
    for clean in (0.05 * ambient, FLASH_GAIN * flash_only + 0.05 * ambient):
        # Upsampled rather than rendered at full size: 16x faster, and the content only has to be
        # image-like for this comparison.
        resized = torch.from_numpy(cv2.resize(clean, (size, size), interpolation=cv2.INTER_CUBIC)).permute(2, 0, 1)
        frames.append(add_noise(resized.clamp(min=0), TEST_SIG_READ, TEST_SIG_SHOT, generator))
    return assemble_input(*frames, TEST_SIG_READ, TEST_SIG_SHOT, 'flash_noflash')[None]


@pytest.mark.parametrize('length', [1, 100, 512, 513, 1000, 1024, 3000, 4000])
def test_tiles_cover_the_axis_aligned_with_enough_overlap(length):
    spans = tile_spans(length, 512, 64)
    assert spans[0][0] == 0 and spans[-1][0] + spans[-1][1] == length
    for (start, size), (following, _) in zip(spans, spans[1:]):
        assert start % 32 == 0 and size == 512
        assert start + size - following >= 64  # overlap
        assert following > start
    assert all(size <= 512 for _, size in spans)
    if length > 512:
        assert spans[-1][0] % 32 == 0 and spans[-1][1] > 512 - 32


def test_windows_sum_to_one_and_ramp_smoothly():
    for length in (700, 1000, 2049):
        total = torch.zeros(length, dtype=torch.float64)
        for start, window in axis_windows(length, 256, 64):
            total[start:start + len(window)] += window
            assert torch.all(window >= 0) and torch.all(window <= 1)
            assert torch.all(window.diff().abs() < 0.05)  # no step inside a tile either
        torch.testing.assert_close(total, torch.ones(length, dtype=torch.float64))
    plan = plan_tiles(300, 700, 256, 64)
    weight = torch.zeros(300, 700, dtype=torch.float64)
    for tile, rows, cols in plan:
        weight[tile.rows, tile.cols] += rows[:, None] * cols[None, :]
    torch.testing.assert_close(weight, torch.ones(300, 700, dtype=torch.float64))


@pytest.mark.parametrize('tile, overlap', [(500, 64), (16, 0), (512, 481), (512, -1)])
def test_bad_tile_sizes_are_refused_with_the_rule(tile, overlap):
    with pytest.raises(ValueError, match='multiple of 32'):
        check_tiling(tile, overlap)


def test_tiled_deepfnf_matches_whole_image_inference():
    """1024x1024 input, 384 px tiles overlapping by exactly 64 px (the default overlap).

    Measured with this seed: 104.0 dB, max |difference| 4.2e-9 for a peak of 5.4e-6 (0.08%).
    """
    lq = noisy_capture(1024)
    torch.manual_seed(0)
    net = DeepFnF(width=0.125, num_basis=8).eval()  # full 15x15 kernels dilated by 4: 57 px footprint
    whole = denoise_whole(net, lq)
    tiled = denoise_tiled(net, crop_reader(lq), 1024, 1024, tile=384, overlap=64, progress=False)
    psnr = psnr_against(whole, tiled)
    max_difference = float((tiled - whole).abs().max())
    print(f'tiled vs whole-image DeepFnF, 1024x1024, tile 384, overlap 64: PSNR {psnr:.1f} dB, '
          f'max |difference| {max_difference:.3g} (peak {float(whole.abs().max()):.3g})')
    assert psnr >= MIN_TILED_PSNR_DB


def test_tiled_bpn_matches_whole_image_inference():
    """BPN also predicts its basis from global averages; its normalised kernels keep the output at
    image scale (peak ~1), so this PSNR is also one on a meaningful range. Measured: 109.7 dB."""
    lq = noisy_capture(512)
    torch.manual_seed(0)
    net = BPN(width=0.0625, num_basis=8).eval()
    whole = denoise_whole(net, lq)
    tiled = denoise_tiled(net, crop_reader(lq), 512, 512, tile=256, overlap=64, progress=False)
    assert psnr_against(whole, tiled) >= MIN_TILED_PSNR_DB


def test_windowed_statistics_beat_plain_tile_averages():
    """Without the window weighting of the statistics, tiles agree far less with the whole image."""
    lq = noisy_capture(256, seed=1)
    torch.manual_seed(1)
    net = DeepFnF(width=0.0625, num_basis=4, kernel_size=7, upsample=2).eval()
    whole = denoise_whole(net, lq)
    tiled = denoise_tiled(net, crop_reader(lq), 256, 256, tile=128, overlap=32, progress=False)
    with torch.inference_mode():
        plan = plan_tiles(256, 256, 128, 32)
        plain = [sum(feature) / len(plan) for feature in
                 zip(*(net.pooled_features(lq[..., tile.rows, tile.cols]) for tile, _, _ in plan))]
        basis = net.basis_from_pooled(plain)
        naive = torch.zeros_like(whole)
        for tile, rows, cols in plan:
            naive[:, tile.rows, tile.cols] += net(lq[..., tile.rows, tile.cols], basis=basis)[0] * (
                rows[:, None] * cols[None, :]).float()
    windowed, plain = psnr_against(whole, tiled), psnr_against(whole, naive)
    print(f'windowed statistics {windowed:.1f} dB, plain tile averages {plain:.1f} dB')
    assert windowed > plain + 10


def test_network_without_global_statistics_is_tiled_in_one_pass():
    lq = noisy_capture(256, seed=2)
    torch.manual_seed(2)
    net = KPN(width=0.0625, kernel_size=5).eval()
    whole = denoise_whole(net, lq)
    tiled = denoise_tiled(net, crop_reader(lq), 256, 256, tile=128, overlap=64, progress=False)
    assert psnr_against(whole, tiled) >= MIN_TILED_PSNR_DB


def brightness_ramp(lq):
    """``lq`` darkened towards the left (to 1/20 at the first column): tiles of very different means."""
    return lq * torch.linspace(0.05, 1.0, lq.shape[-1])


@pytest.mark.parametrize('network', [
    lambda: DeepFnF(width=0.0625, num_basis=4, kernel_size=7, upsample=2, input_normalization='frame_mean'),
    lambda: KPN(width=0.0625, kernel_size=5, input_normalization='frame_mean')], ids=['DeepFnF', 'KPN'])
def test_normalising_networks_are_tiled_with_the_whole_image_brightness(network):
    """Every tile is divided by the whole image's frame means, so tiles agree with whole-image inference;
    normalising each tile by its own means instead (the naive way) disagrees far more."""
    lq = brightness_ramp(noisy_capture(256, seed=3))
    torch.manual_seed(3)
    net = network().eval()
    whole = denoise_whole(net, lq)
    tiled = denoise_tiled(net, crop_reader(lq), 256, 256, tile=128, overlap=32, progress=False)
    per_tile = torch.zeros_like(whole)
    with torch.inference_mode():
        for tile, rows, cols in plan_tiles(256, 256, 128, 32):
            per_tile[:, tile.rows, tile.cols] += net(lq[..., tile.rows, tile.cols])[0] * (
                rows[:, None] * cols[None, :]).float()
    whole_image_means, own_means = psnr_against(whole, tiled), psnr_against(whole, per_tile)
    print(f'tiles normalised by whole-image means {whole_image_means:.1f} dB, by their own {own_means:.1f} dB')
    assert whole_image_means >= MIN_TILED_PSNR_DB
    assert whole_image_means > own_means + 10


class ForeignBasisNetwork(torch.nn.Module):
    """A plugin's network with DeepFnF's methods that declares no capability; it records how tiling calls it."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.inner = DeepFnF(width=0.0625, num_basis=4, kernel_size=5, upsample=2).eval()
        self.encoded, self.bases = 0, []

    def basis_feature_maps(self, lq):
        self.encoded += 1
        return self.inner.basis_feature_maps(lq)

    def basis_from_pooled(self, pooled):
        return self.inner.basis_from_pooled(pooled)

    def forward(self, lq, basis=None):
        self.bases.append(basis)
        return self.inner(lq, basis=basis)


class DeclaringBasisNetwork(ForeignBasisNetwork):
    global_basis_statistics = True


def test_a_network_declaring_nothing_is_tiled_plainly_whatever_methods_it_has():
    lq = noisy_capture(128, seed=5)
    net = ForeignBasisNetwork().eval()
    denoise_tiled(net, crop_reader(lq), 128, 128, tile=64, overlap=32, progress=False)
    assert net.encoded == 0
    assert len(net.bases) == len(plan_tiles(128, 128, 64, 32)) and all(basis is None for basis in net.bases)


def test_a_network_declaring_global_statistics_is_tiled_with_one_whole_image_basis():
    lq = noisy_capture(128, seed=5)
    net = DeclaringBasisNetwork().eval()
    tiled = denoise_tiled(net, crop_reader(lq), 128, 128, tile=64, overlap=32, progress=False)
    tiles = len(plan_tiles(128, 128, 64, 32))
    assert net.encoded == tiles and len(net.bases) == tiles
    assert net.bases[0] is not None and all(basis is net.bases[0] for basis in net.bases)
    expected = denoise_tiled(net.inner, crop_reader(lq), 128, 128, tile=64, overlap=32, progress=False)
    torch.testing.assert_close(tiled, expected, rtol=0, atol=0)


def test_a_restorer_returning_its_input_channels_is_tiled_by_its_estimate():
    from basicsr.archs.swinir_arch import SwinIR
    lq = noisy_capture(128, seed=4)
    torch.manual_seed(4)
    net = SwinIR(in_chans=12, upscale=1, img_size=64, window_size=8, embed_dim=12, depths=[1], num_heads=[2],
                 mlp_ratio=1, upsampler='', resi_connection='1conv').eval()
    whole = denoise_whole(net, lq)
    tiled = denoise_tiled(net, crop_reader(lq), 128, 128, tile=64, overlap=32, progress=False)
    assert whole.shape == tiled.shape == (3, 128, 128)
    assert psnr_against(whole, tiled) >= 30  # a transformer's tiles differ more than a U-Net's, but agree


def test_an_image_smaller_than_a_tile_is_processed_whole():
    lq = noisy_capture(64, seed=3)[..., :50, :]
    torch.manual_seed(3)
    net = DeepFnF(width=0.0625, num_basis=4, kernel_size=5, upsample=2).eval()
    tiled = denoise_tiled(net, crop_reader(lq), 50, 64, progress=False)
    assert tiled.shape == (3, 50, 64)
    torch.testing.assert_close(tiled, denoise_whole(net, lq), rtol=0, atol=0)


def test_tiles_read_only_their_window():
    seen = []
    lq = torch.zeros(1, 12, 200, 300)

    def read_tile(tile):
        seen.append(tile)
        return lq[..., tile.rows, tile.cols]

    torch.manual_seed(4)
    net = KPN(width=0.0625, kernel_size=3).eval()
    out = denoise_tiled(net, read_tile, 200, 300, tile=128, overlap=32, progress=False)
    assert out.shape == (3, 200, 300)
    assert len(seen) == len(plan_tiles(200, 300, 128, 32)) > 1
    assert all(tile.height <= 128 and tile.width <= 128 for tile in seen)
    assert np.isfinite(out.numpy()).all()
