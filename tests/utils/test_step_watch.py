"""A collapsed training step is reported once, with causes and fixes; steady or merely noisy steps are not."""
import pytest

from fnf_basicsr.utils import step_watch
from fnf_basicsr.utils.step_watch import StepTimeWatch


def watch_steps(seconds, device='cpu', precision='fp32', **kwargs):
    messages = []
    watch = StepTimeWatch(device, precision, messages.append, **kwargs)
    for value in seconds:
        watch.record(value)
    return watch, messages


def test_steady_and_noisy_steps_give_no_warning():
    watch, messages = watch_steps([9.0, 9.0] + [0.1, 0.12, 0.09] * 4 + [0.4] * 20, skip=2, baseline=10)
    assert messages == [] and watch.typical == pytest.approx(0.1)


def test_the_slow_first_steps_are_left_out_of_the_baseline():
    watch, _ = watch_steps([5.0, 5.0] + [0.2] * 10, skip=2, baseline=10)
    assert watch.typical == pytest.approx(0.2)


def test_a_collapsed_step_warns_with_its_numbers_causes_and_fixes():
    _, messages = watch_steps([0.1] * 10 + [0.1, 0.7], skip=0, baseline=10)
    assert len(messages) == 1
    text = messages[0]
    assert 'training step 12 took 0.70 s, 7x' in text and 'median 0.10 s' in text
    assert 'another process' in text and 'OMP_NUM_THREADS' in text


def test_warnings_are_rate_limited():
    _, messages = watch_steps([0.1] * 10 + [1.0] * 30 + [0.1] * 60 + [1.0], skip=0, baseline=10, repeat_every=50)
    assert len(messages) == 2


def test_an_emulated_precision_is_named_as_a_cause(monkeypatch):
    monkeypatch.setattr(step_watch, 'native_bf16', lambda device: (False, 'CPU without native bf16: AVX2'))
    _, emulated = watch_steps([0.1] * 10 + [1.0], precision='bf16', skip=0, baseline=10)
    _, float32 = watch_steps([0.1] * 10 + [1.0], precision='fp32', skip=0, baseline=10)
    assert 'bf16 autocast, which this CPU emulates' in emulated[0] and 'mixed_precision: auto or ~' in emulated[0]
    assert 'emulates' not in float32[0]


def test_cuda_advice_is_about_the_gpu_and_the_loader():
    _, messages = watch_steps([0.01] * 10 + [0.2], device='cuda', skip=0, baseline=10)
    assert 'num_worker_per_gpu' in messages[0] and 'OMP_NUM_THREADS' not in messages[0]


def test_the_context_manager_times_a_step_and_ignores_failed_ones():
    watch = StepTimeWatch('cpu', 'fp32', print, skip=0, baseline=3)
    with watch:
        pass
    with pytest.raises(RuntimeError):
        with watch:
            raise RuntimeError('step failed')
    assert watch.steps == 1 and len(watch.first_steps) == 1
