"""The one rendering function (camera RGB -> sRGB) used by the model, the metrics and the scripts."""
import numpy as np
import pytest
import torch

from fnf_basicsr.utils import rendering
from fnf_basicsr.utils.rendering import (WHITE_POINTS, XYZ_TO_LINEAR_SRGB, camera_to_srgb_matrix, render_srgb,
                                         srgb_degamma, srgb_gamma)


def test_hand_computed_pixels():
    linear = torch.tensor([0.1, 0.0005, 0.75]).reshape(1, 3, 1, 1)
    out = render_srgb(linear, torch.tensor([2.0]), torch.eye(3)).flatten()
    # gain 2: 0.2 -> 1.055 * 0.2 ** (1 / 2.4) - 0.055; 0.001 -> 12.92 * 0.001; 1.5 -> 1 + 1.055 / 2.4 * 0.5
    assert out.tolist() == pytest.approx([0.484529, 0.01292, 1.219792], abs=1e-5)


def test_color_matrix_mixes_channels_per_sample():
    linear = torch.rand(2, 3, 4, 5)
    swap = torch.tensor([[0.0, 1, 0], [1, 0, 0], [0, 0, 1]])
    matrices = torch.stack([torch.eye(3), swap])
    out = render_srgb(linear, torch.tensor([1.0, 1.0]), matrices)
    assert torch.allclose(out[0], srgb_gamma(linear[0]))
    assert torch.allclose(out[1], srgb_gamma(linear[1][[1, 0, 2]]))


def test_gamma_is_continuous_and_inverted_by_degamma():
    x = torch.tensor([rendering.SRGB_LINEAR_THRESHOLD - 1e-7, rendering.SRGB_LINEAR_THRESHOLD + 1e-7,
                      1 - 1e-6, 1 + 1e-6])
    y = srgb_gamma(x)
    assert abs(y[0] - y[1]) < 1e-5 and abs(y[2] - y[3]) < 1e-5
    grid = torch.linspace(0, 1, 101, dtype=torch.float64)
    assert torch.allclose(srgb_degamma(srgb_gamma(grid)), grid, atol=1e-10)


def test_gradients_flow_everywhere_including_dark_and_bright_pixels():
    linear = torch.tensor([-0.01, 0.0, 1e-4, 0.2, 0.9, 3.0]).reshape(1, 3, 1, 2).requires_grad_()
    render_srgb(linear, torch.tensor([1.0]), torch.eye(3)).sum().backward()
    assert torch.isfinite(linear.grad).all() and (linear.grad > 0).all()


def test_camera_matrix_is_identity_for_an_srgb_camera_under_d65():
    xyz_to_camera = XYZ_TO_LINEAR_SRGB  # a camera whose native RGB is linear sRGB
    assert np.allclose(camera_to_srgb_matrix(xyz_to_camera, 21), np.eye(3), atol=1e-6)


@pytest.mark.parametrize('code,name', [(17, 'A'), (23, 'D50'), (20, 'D55'), (19, 'C'), (99, 'D65')])
def test_calibration_illuminant_white_renders_neutral(code, name):
    xyz_to_camera = np.array([[0.67, -0.14, -0.06], [-0.46, 1.24, 0.24], [-0.09, 0.18, 0.61]])
    camera_white = xyz_to_camera @ np.asarray(WHITE_POINTS[name])
    srgb_white = camera_to_srgb_matrix(xyz_to_camera, code) @ camera_white
    assert np.allclose(srgb_white, srgb_white[1], rtol=2e-3)  # Bradford sends it to the D65 white = gray


def test_rejects_images_that_are_not_rgb():
    with pytest.raises(ValueError, match=r'\(B, 3, H, W\)'):
        render_srgb(torch.zeros(1, 12, 4, 4), 1.0, torch.eye(3))
