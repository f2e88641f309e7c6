"""The building blocks shared by the networks (fnf_basicsr.archs.fnf_blocks): padding to the encoder's multiple,
x2 upsampling in both conventions, width scaling, the released initialisation."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fnf_basicsr.archs.fnf_blocks import SIZE_MULTIPLE, init_like_release, pad_to_multiple, scaled, upsample2x


def test_tf1_upsampling_matches_hand_computed_values():
    x = torch.tensor([[1.0, 2.0, 4.0], [3.0, 6.0, 10.0]])[None, None]
    # source coordinate = destination / 2: even outputs copy, odd ones average, the last repeats the edge
    rows = [[1.0, 1.5, 2.0, 3.0, 4.0, 4.0], [2.0, 3.0, 4.0, 5.5, 7.0, 7.0], [3.0, 4.5, 6.0, 8.0, 10.0, 10.0]]
    expected = torch.tensor([rows[0], rows[1], rows[2], rows[2]])
    torch.testing.assert_close(upsample2x(x, 'tf1')[0, 0], expected, rtol=0, atol=0)
    # half-pixel (our default): output 0 reads input -0.25 -> clamped to 0; output 1 reads 0.25
    half = upsample2x(x, 'half_pixel')[0, 0]
    assert half[0, 0] == 1.0 and half[0, 1] == pytest.approx(0.75 * 1.0 + 0.25 * 2.0)
    torch.testing.assert_close(half, F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False)[0, 0])
    with pytest.raises(ValueError, match='upsampling must be one of'):
        upsample2x(x, 'corner')


def test_pad_to_multiple_reflects_at_the_bottom_and_right_and_crops_back():
    x = torch.arange(2 * 3 * 40 * 50, dtype=torch.float32).view(2, 3, 40, 50)
    padded = pad_to_multiple(x)
    assert SIZE_MULTIPLE == 32 and padded.shape == (2, 3, 64, 64)
    assert torch.equal(padded[..., :40, :50], x)  # the image itself at the top left
    assert torch.equal(padded[..., 40, :50], x[..., 38, :])  # reflect: row 40 mirrors row 38
    assert torch.equal(padded[..., :40, 50], x[..., :, 48])
    assert pad_to_multiple(padded) is padded  # already a multiple: untouched


def test_pad_to_multiple_replicates_when_the_pad_exceeds_the_image():
    tiny = torch.rand(1, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    padded = pad_to_multiple(tiny)
    assert padded.shape == (1, 2, 32, 32) and torch.equal(padded[..., :5, :7], tiny)
    assert torch.equal(padded[..., 31, :7], tiny[..., 4, :])  # the last row repeated
    assert torch.equal(padded[..., :5, 31], tiny[..., :, 6])  # the last column repeated
    assert pad_to_multiple(tiny, 8).shape == (1, 2, 8, 8)


def test_scaled_multiplies_channels_by_the_width_and_keeps_at_least_one():
    assert scaled(64, 1.0) == 64 and scaled(64, 0.0625) == 4 and scaled(1024, 0.0625) == 64
    assert scaled(64, 0.001) == 1
    assert scaled(100, 0.333) == 33


def test_init_like_release_draws_uniform_weights_of_the_fan_in_bound_and_zero_biases():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv2d(8, 16, 3), nn.ReLU(), nn.Conv2d(16, 4, 2))
    init_like_release(module)
    for conv, fan_in in ((module[0], 8 * 3 * 3), (module[2], 16 * 2 * 2)):
        bound = math.sqrt(3.0 / fan_in)
        assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
        assert conv.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.15)  # U(-b, b) has std b/sqrt(3)
        assert torch.equal(conv.bias, torch.zeros_like(conv.bias))
