"""The README's denoising figure (fnf_basicsr.tools.make_denoise_example), without a trained model: the capture it
writes reads back as fnf-denoise reads it, the PSNR, and the labelled panel layout."""
import numpy as np
import pytest

from fnf_basicsr.data.faid import decode_png16
from fnf_basicsr.tools.make_denoise_example import LABEL_HEIGHT, compose, psnr, render, write_capture


def test_psnr_of_known_errors():
    reference = np.full((4, 4, 3), 0.5)
    assert psnr(reference + 0.1, reference) == pytest.approx(20.0)
    assert psnr(np.float32(0.5) + np.zeros((2, 2, 3), np.float32), reference[:2, :2] + 0.01) == pytest.approx(40.0)


def test_panels_sit_side_by_side_under_white_label_bands():
    panels = [np.zeros((10, 60, 3)), np.ones((10, 8, 3)), np.full((10, 5, 3), 2.0)]
    figure = compose(panels, ['noisy', '', ''])
    assert figure.dtype == np.uint8 and figure.shape == (LABEL_HEIGHT + 10, 60 + 4 + 8 + 4 + 5, 3)
    assert (figure[LABEL_HEIGHT:, :60] == 0).all() and (figure[LABEL_HEIGHT:, 64:72] == 255).all()
    assert (figure[:, 60:64] == 255).all()  # the white gap
    assert (figure[LABEL_HEIGHT:, 76:] == 255).all()  # clipped to 1
    assert (figure[:LABEL_HEIGHT, 60:] == 255).all()  # empty labels: white bands
    band = figure[:LABEL_HEIGHT, :60]
    assert (band == 255).mean() > 0.75 and (band < 128).any()  # white, with the label written on it


def test_a_written_capture_reads_back_as_the_degraded_pair(tmp_path):
    noflash, flash, target, color_matrix = write_capture(tmp_path, 'scene', 1, size=32, dimming=20)
    assert (noflash.name, flash.name) == ('scene_noflash.png', 'scene_flash.png')
    pixels = decode_png16(noflash.read_bytes(), str(noflash))
    assert pixels.shape == (32, 32, 3) and pixels.dtype == np.uint16
    assert target.shape == (32, 32, 3) and color_matrix.shape == (3, 3)
    noisy = pixels.astype(np.float64) / 65535
    assert np.abs(noisy - target).mean() < 0.05  # the no-flash photo is the dimmed target plus noise
    again = write_capture(tmp_path / 'again', 'scene', 1, size=32, dimming=20)
    assert again[0].read_bytes() == noflash.read_bytes()  # seeded by the index
    srgb = render(target, 20.0, color_matrix)
    assert srgb.shape == (32, 32, 3) and 0 <= srgb.min() and srgb.max() <= 1
