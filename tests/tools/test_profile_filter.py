"""The filter benchmark (fnf_basicsr.tools.profile_filter), without timing: the inputs it feeds each operation
make ours and the naive form agree, and the memory ratio is only given where it is measurable."""
import pytest
import torch

from fnf_basicsr.tools.profile_filter import OPS, make_inputs, memory_ratio


@pytest.mark.parametrize('op', sorted(OPS))
def test_inputs_fit_both_implementations_and_they_agree(op):
    tensors, extra = make_inputs(op, size=12, num_basis=2, kernel_size=3, d=2, device='cpu')
    assert tensors[0].shape == (1, 3, 12, 12)
    assert extra == ([2] if op == 'two_scale' else [])
    ours, naive = (OPS[op][impl](*tensors, *extra) for impl in ('ours', 'naive'))
    assert ours.shape == naive.shape == (1, 3, 12, 12)
    torch.testing.assert_close(ours, naive, rtol=1e-4, atol=1e-4)
    again, _ = make_inputs(op, size=12, num_basis=2, kernel_size=3, d=2, device='cpu')
    assert all(torch.equal(a, b) for a, b in zip(tensors, again, strict=True))  # seeded: runs compare alike


def test_memory_ratio_is_not_given_below_the_measurable():
    assert memory_ratio(120.0, 40.0) == '3.0x'
    assert memory_ratio(120.0, 0.5) == 'n/a (ours < 1 MB)'
    assert memory_ratio(120.0, 4.0, resolution_mb=8) == 'n/a (ours < 8 MB)'
