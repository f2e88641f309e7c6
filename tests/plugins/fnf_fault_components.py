"""A test-only model for tests/test_fault_injection.py: FnFModel that records the random draws
(dimming gain, noise parameters) of every training sample, one line per iteration."""
import os

from basicsr.utils.registry import MODEL_REGISTRY

from fnf_basicsr.models.fnf_model import FnFModel


@MODEL_REGISTRY.register()
class FnFDrawRecordingModel(FnFModel):

    def feed_data(self, data):
        super().feed_data(data)
        self.draws = [f'{float(g):.9g}/{float(r):.9g}' for g, r in zip(data['gain'].flatten(),
                                                                         data['sig_read'].flatten())]

    def optimize_parameters(self, current_iter):
        super().optimize_parameters(current_iter)
        with open(os.path.join(self.opt['path']['experiments_root'], 'draws.txt'), 'a') as handle:
            handle.write(f'{current_iter} {" ".join(self.draws)}\n')
