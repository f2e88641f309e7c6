"""A test-only model for tests/test_reliability_training.py: FnFModel that presses Ctrl-C on itself.

It sends its own process SIGINT (what Ctrl-C sends) after training iteration ``train: interrupt_after``, or in
its first forward under ``basicsr test``: the interrupt arrives at a known point, with no timing involved.
"""
import os
import signal

from basicsr.utils.registry import MODEL_REGISTRY

from fnf_basicsr.models.fnf_model import FnFModel


@MODEL_REGISTRY.register()
class FnFInterruptedModel(FnFModel):

    def optimize_parameters(self, current_iter):
        super().optimize_parameters(current_iter)
        if current_iter == self.opt['train'].get('interrupt_after'):
            os.kill(os.getpid(), signal.SIGINT)

    def test(self):
        if not self.opt['is_train']:
            os.kill(os.getpid(), signal.SIGINT)
        super().test()
