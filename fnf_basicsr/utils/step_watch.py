"""Notice when training steps collapse in speed, and say why that usually happens and what to do.

On a shared CPU a step can become many times slower without any error: OpenMP threads spin-wait on cores that
another process holds, or an autocast precision the CPU does not run natively is emulated. The watch
learns the typical step time from the first steps of a run and warns (rarely) when a step takes far
longer (docs/speed.md, "Threads on a shared machine").
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from fnf_basicsr.utils.hardware import native_bf16


class StepTimeWatch:
    """Times training steps and warns when one takes ``factor`` times the first steps' median.

    Args:
        device: where training runs (the advice differs between CPU and CUDA).
        precision: the resolved training precision ('fp32', 'bf16', 'fp16').
        warn: called with the warning text (e.g. a logger's ``warning``).
        skip: first steps left out of the baseline (allocation, kernel selection).
        baseline: steps whose median is the typical step time.
        factor: how much slower a step must be to count as collapsed.
        repeat_every: a warning at most once per this many steps.

    As a context manager (``with watch: step()``) it times and records the step inside, unless it raised.

    Example:
        >>> messages = []
        >>> watch = StepTimeWatch('cpu', 'fp32', messages.append, skip=0, baseline=3)
        >>> for seconds in (0.1, 0.1, 0.1, 0.1, 0.9):
        ...     watch.record(seconds)
        >>> len(messages), 'OMP_NUM_THREADS' in messages[0]
        (1, True)
    """

    def __init__(self, device: torch.device | str, precision: str, warn: Callable[[str], object], skip: int = 2,
                 baseline: int = 10, factor: float = 5.0, repeat_every: int = 500) -> None:
        self.device = torch.device(device)
        self.precision = precision
        self.warn = warn
        self.skip, self.baseline, self.factor, self.repeat_every = skip, baseline, factor, repeat_every
        self.first_steps = []
        self.steps = 0
        self.last_warning = None
        self._started = None

    def __enter__(self) -> StepTimeWatch:
        self._started = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if exc_info[0] is None:
            self.record(time.perf_counter() - self._started)

    @property
    def typical(self) -> float | None:
        """The median of the baseline steps in seconds, or None while they are being recorded."""
        return statistics.median(self.first_steps) if len(self.first_steps) == self.baseline else None

    def record(self, seconds: float) -> None:
        """Account one step of ``seconds``; warns when it collapsed (at most once per ``repeat_every`` steps).

        Args:
            seconds: the step's duration.
        """
        self.steps += 1
        if self.steps <= self.skip:
            return
        if self.typical is None:
            self.first_steps.append(seconds)
            return
        recent = self.last_warning is not None and self.steps - self.last_warning < self.repeat_every
        if seconds > self.factor * self.typical and not recent:
            self.last_warning = self.steps
            self.warn(self.message(seconds))

    def message(self, seconds: float) -> str:
        """The warning for a step of ``seconds``: how much slower it was, the likely causes and their fixes.

        Args:
            seconds: the collapsed step's duration (the baseline must be complete).

        Returns:
            The warning text, advice for the device type and precision included.
        """
        ratio = seconds / self.typical
        head = (f'training step {self.steps} took {seconds:.2f} s, {ratio:.0f}x the first steps\' median '
                f'{self.typical:.2f} s. ')
        if self.device.type == 'cuda':
            return head + ('Likely causes: another process on the GPU, or a data loader that cannot keep up '
                           '(more num_worker_per_gpu, an LMDB of raw records).')
        threads = torch.get_num_threads()
        causes = [f'another process on the CPU cores: torch runs {threads} threads, which spin-wait when a core '
                  'is busy (on a shared machine set OMP_NUM_THREADS to the free cores, e.g. OMP_NUM_THREADS=1)']
        if self.precision != 'fp32' and not native_bf16(self.device)[0]:
            causes.append(f'{self.precision} autocast, which this CPU emulates ({native_bf16(self.device)[1]}; set '
                          'train.mixed_precision: auto or ~)')
        return head + 'Likely causes: ' + '; '.join(causes) + '.'
