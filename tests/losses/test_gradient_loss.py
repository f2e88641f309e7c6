"""GradientL1Loss: values against a hand computation, reductions, weights, registration."""
import pytest
import torch

import fnf_basicsr  # noqa: F401  (first: fixes basicsr's imports on today's torchvision, registers our losses)
# isort: split
from basicsr.losses import build_loss

from fnf_basicsr.losses.gradient_loss import GradientL1Loss

# pred - target = [[1, 2, 4], [0, 0, 0]]:
#   x differences [[1, 2], [0, 0]]: sum 3, mean 3/4
#   y differences [[-1, -2, -4]]:   sum 7, mean 7/3
TARGET = torch.tensor([[[[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]]])
PRED = TARGET + torch.tensor([[[[1.0, 2.0, 4.0], [0.0, 0.0, 0.0]]]])


def test_mean_is_the_sum_of_the_x_and_y_mean_absolute_differences():
    assert GradientL1Loss()(PRED, TARGET).item() == pytest.approx(3 / 4 + 7 / 3)


def test_loss_weight_and_difference_scale_multiply_the_loss():
    loss = GradientL1Loss(loss_weight=2.0, difference_scale=0.5)(PRED, TARGET)
    assert loss.item() == pytest.approx(2.0 * 0.5 * (3 / 4 + 7 / 3))


def test_sum_and_none_reductions():
    assert GradientL1Loss(reduction='sum')(PRED, TARGET).item() == pytest.approx(10.0)
    per_pixel = GradientL1Loss(reduction='none')(PRED, TARGET)
    # |dx| + |dy| at the left / top pixel of each difference.
    torch.testing.assert_close(per_pixel, torch.tensor([[[[1.0 + 1.0, 2.0 + 2.0, 0.0 + 4.0], [0.0, 0.0, 0.0]]]]))


def test_common_region_keeps_the_differences_of_the_top_left_h1_by_w1_pixels():
    # (H-1) x (W-1) = 1 x 2: x differences [1, 2], y differences [-1, -2].
    assert GradientL1Loss(region='common')(PRED, TARGET).item() == pytest.approx(3 / 2 + 3 / 2)
    assert GradientL1Loss(region='common', reduction='sum')(PRED, TARGET).item() == pytest.approx(6.0)
    per_pixel = GradientL1Loss(region='common', reduction='none')(PRED, TARGET)
    torch.testing.assert_close(per_pixel, torch.tensor([[[[2.0, 4.0, 0.0], [0.0, 0.0, 0.0]]]]))


def test_released_code_convention_is_one_mean_over_both_half_scaled_differences():
    # Released code: mean(|[0.5 dy, 0.5 dx]|) over the common region = mean(|-0.5, -1, 0.5, 1|).
    loss = GradientL1Loss(loss_weight=0.5, difference_scale=0.5, region='common')(PRED, TARGET)
    assert loss.item() == pytest.approx(0.75)


def test_constant_offsets_cost_nothing():
    target = torch.rand(2, 3, 5, 6)
    assert GradientL1Loss()(target + 0.3, target).item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_is_the_sum_of_difference_signs():
    pred = PRED.clone().requires_grad_(True)
    GradientL1Loss(reduction='sum')(pred, TARGET).backward()
    # e.g. e02: +sign(e02 - e01) - sign(e12 - e02) = 1 + 1; e10: -sign(e11 - e10) + sign(e10 - e00) = 0 - 1.
    torch.testing.assert_close(pred.grad, torch.tensor([[[[0.0, 1.0, 2.0], [-1.0, -1.0, -1.0]]]]))


def test_builds_from_options_through_basicsr():
    loss = build_loss({'type': 'GradientL1Loss', 'loss_weight': 0.5, 'reduction': 'sum', 'difference_scale': 0.5})
    assert isinstance(loss, GradientL1Loss)
    assert loss(PRED, TARGET).item() == pytest.approx(0.5 * 0.5 * 10.0)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="unsupported reduction 'average'"):
        GradientL1Loss(reduction='average')
    with pytest.raises(ValueError, match="unsupported region 'valid'"):
        GradientL1Loss(region='valid')
    with pytest.raises(ValueError, match='same shape'):
        GradientL1Loss()(PRED, TARGET[..., :2])
    with pytest.raises(ValueError, match='H, W >= 2'):
        GradientL1Loss()(PRED[..., :1], TARGET[..., :1])
