"""Each fix of fnf_basicsr.compat, tested where it matters (the pipeline tests cover the rest)."""
import collections
import importlib

import torch

import fnf_basicsr
from fnf_basicsr import compat
from conftest import free_port, run_python


def test_removed_torchvision_module_is_aliased_for_basicsr():
    module = importlib.import_module('torchvision.transforms.functional_tensor')
    gray = module.rgb_to_grayscale(torch.ones(3, 4, 4))
    assert gray.shape == (1, 4, 4)
    importlib.import_module('basicsr.data.degradations')  # the basicsr module that imports it


def test_apply_is_idempotent():
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    before = (basicsr.train.load_resume_state, BaseModel.model_to_device)
    compat.apply()
    compat.apply()
    assert (basicsr.train.load_resume_state, BaseModel.model_to_device) == before
    assert basicsr.train.load_resume_state is compat.load_resume_state


def basicsr_training_state(tmp_path):
    from basicsr.models.lr_scheduler import MultiStepRestartLR
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.Adam([param], lr=1e-3)
    param.grad = torch.ones(2)
    optimizer.step()
    scheduler = MultiStepRestartLR(optimizer, milestones=[10, 20])
    path = tmp_path / 'training_states' / '7.state'
    path.parent.mkdir(parents=True)
    torch.save({'epoch': 1, 'iter': 7, 'optimizers': [optimizer.state_dict()],
                'schedulers': [scheduler.state_dict()]}, path)
    return path


def test_training_state_loads_on_cpu_with_safe_unpickling(tmp_path):
    path = basicsr_training_state(tmp_path)
    # The suspected breakage is fine: weights_only=True accepts the scheduler's Counter.
    assert isinstance(torch.load(path, weights_only=True)['schedulers'][0]['milestones'], collections.Counter)
    opt = {'auto_resume': False, 'num_gpu': 0, 'path': {'resume_state': str(path)}}
    state = compat.load_resume_state(opt)
    assert state['iter'] == 7
    assert state['optimizers'][0]['state'][0]['exp_avg'].device.type == 'cpu'


def test_auto_resume_picks_newest_state(tmp_path):
    states = tmp_path / 'experiments' / 'exp' / 'training_states'
    states.mkdir(parents=True)
    for it in (8, 12, 100):
        (states / f'{it}.state').touch()
    assert compat.latest_training_state('exp', tmp_path).endswith('100.state')
    assert compat.latest_training_state('missing', tmp_path) is None


def test_default_backend_is_gloo_without_gpu():
    expected = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert compat.default_backend() == expected


SLURM_SCRIPT = '''
import torch.distributed as dist
import fnf_basicsr
from basicsr.utils.dist_util import init_dist
init_dist('slurm', backend='nccl')  # BasicSR's default backend; replaced by gloo without a GPU
print('backend', dist.get_backend(), 'rank', dist.get_rank(), 'world', dist.get_world_size())
dist.destroy_process_group()
'''


def test_slurm_launcher_initialises_without_gpu(tmp_path):
    env = {'SLURM_PROCID': '0', 'SLURM_NTASKS': '1', 'SLURM_NODELIST': 'localhost',
           'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': str(free_port())}
    proc = run_python(['-c', SLURM_SCRIPT], cwd=tmp_path, extra_env=env)
    backend = 'nccl' if torch.cuda.is_available() else 'gloo'
    assert f'backend {backend} rank 0 world 1' in proc.stdout
