"""Each fix of fnf_basicsr.compat, tested where it matters (the pipeline tests cover the rest)."""
import collections
import importlib

import pytest
import torch

import fnf_basicsr  # noqa: F401  (applies the fixes before basicsr is imported)
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


# --- broken_states, atomic_saves, resume_seed ------------------------------------------------------------------

class CompatTinyNet(torch.nn.Module):
    """A registered network small enough to save with every test state."""

    def __init__(self, features=1):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(features))


def tiny_network_registered():
    from basicsr.utils.registry import ARCH_REGISTRY
    if 'CompatTinyNet' not in ARCH_REGISTRY:
        ARCH_REGISTRY.register(CompatTinyNet)


def experiment_with_states(tmp_path, iters=(4, 8), with_networks=True):
    """experiments/exp/{training_states/<it>.state, models/net_g_<it>.pth} and the options to resume it."""
    tiny_network_registered()
    exp = tmp_path / 'experiments' / 'exp'
    (exp / 'models').mkdir(parents=True)
    basicsr_training_state(tmp_path / 'template')
    (exp / 'training_states').mkdir()
    for it in iters:
        state = torch.load(tmp_path / 'template' / 'training_states' / '7.state')
        state['iter'] = it
        torch.save(state, exp / 'training_states' / f'{it}.state')
        if with_networks:
            torch.save({'params': CompatTinyNet().state_dict()}, exp / 'models' / f'net_g_{it}.pth')
    opt = {'name': 'exp', 'root_path': str(tmp_path), 'auto_resume': True, 'num_gpu': 0, 'manual_seed': 10,
           'rank': 0, 'network_g': {'type': 'CompatTinyNet'},
           'path': {'models': str(exp / 'models'), 'resume_state': None}}
    return exp, opt


def test_auto_resume_skips_a_truncated_newest_state_and_names_it(tmp_path, capsys):
    exp, opt = experiment_with_states(tmp_path)
    newest = exp / 'training_states' / '8.state'
    newest.write_bytes(newest.read_bytes()[:200])  # what a kill during torch.save or a full disk leaves
    state = compat.load_resume_state(opt)
    assert state['iter'] == 4 and opt['path']['resume_state'].endswith('4.state')
    assert opt['path']['pretrain_network_g'].endswith('net_g_4.pth')
    err = capsys.readouterr().err
    assert f'skipping training state {newest} is unreadable' in err and 'older state' in err


def test_auto_resume_skips_a_state_whose_network_file_is_broken(tmp_path, capsys):
    exp, opt = experiment_with_states(tmp_path)
    network = exp / 'models' / 'net_g_8.pth'
    network.write_bytes(network.read_bytes()[:100])
    assert compat.load_resume_state(opt)['iter'] == 4
    assert f'{network}, is missing or unreadable' in capsys.readouterr().err


def test_explicit_broken_resume_state_is_a_one_line_error(tmp_path):
    from fnf_basicsr.errors import DataError
    exp, opt = experiment_with_states(tmp_path, iters=(4,))
    path = exp / 'training_states' / '4.state'
    path.write_bytes(b'')
    opt.update(auto_resume=False, path={**opt['path'], 'resume_state': str(path)})
    with pytest.raises(DataError, match=f'training state {path} is unreadable'):
        compat.load_resume_state(opt)


def test_resume_reseeds_the_random_streams_for_the_resumed_iteration(tmp_path):
    from basicsr.utils import set_random_seed
    exp, opt = experiment_with_states(tmp_path, iters=(4,))
    set_random_seed(opt['manual_seed'])  # what BasicSR's parse_options does on every start
    fresh = (torch.initial_seed(), torch.rand(3))
    set_random_seed(opt['manual_seed'])
    assert torch.equal(torch.rand(3), fresh[1])  # a fresh run is reproducible
    compat.load_resume_state(opt)
    resumed = (torch.initial_seed(), torch.rand(3))
    assert resumed[0] != fresh[0] and not torch.equal(resumed[1], fresh[1])
    assert resumed[0] == compat.resume_seed(10, 0, 4)  # deterministic: the same resume draws the same
    assert len({compat.resume_seed(10, rank, it) for rank in (0, 1) for it in (4, 8)}) == 4


class _TinyModel:
    """What BaseModel's save methods need of a model."""

    def __init__(self, folder):
        param = torch.nn.Parameter(torch.zeros(2))
        self.optimizers, self.schedulers = [torch.optim.SGD([param], lr=0.1)], []
        self.net = torch.nn.Linear(2, 2)
        self.opt = {'path': {'models': str(folder), 'training_states': str(folder)}}

    def get_bare_model(self, net):
        return net


def test_saves_are_atomic_and_a_full_disk_fails_loudly(tmp_path, monkeypatch):
    import os
    from basicsr.models.base_model import BaseModel
    from fnf_basicsr.errors import OutputError
    model = _TinyModel(tmp_path)
    BaseModel.save_network(model, model.net, 'net_g', 3)
    BaseModel.save_training_state(model, 1, 3)
    assert sorted(os.listdir(tmp_path)) == ['3.state', 'net_g_3.pth']
    assert torch.load(tmp_path / '3.state')['iter'] == 3

    def full_disk(obj, handle, *args, **kwargs):
        handle.write(b'PK partial')
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OutputError, match=f'cannot save {tmp_path / "4.state"}: .*No space left on device'):
        BaseModel.save_training_state(model, 1, 4)
    with pytest.raises(OutputError, match='net_g_4.pth'):
        BaseModel.save_network(model, model.net, 'net_g', 4)
    assert sorted(os.listdir(tmp_path)) == ['3.state', 'net_g_3.pth']  # nothing partial, no temporaries


def test_only_rank_0_saves(tmp_path, monkeypatch):
    import basicsr.utils.dist_util
    from basicsr.models.base_model import BaseModel
    model = _TinyModel(tmp_path)
    monkeypatch.setattr(basicsr.utils.dist_util, 'get_dist_info', lambda: (1, 2))
    BaseModel.save_network(model, model.net, 'net_g', 3)
    BaseModel.save_training_state(model, 1, 3)
    assert list(tmp_path.iterdir()) == []  # BasicSR's master_only: rank 1 wrote the same files beside rank 0


def test_resuming_with_a_changed_network_is_refused_in_one_line(tmp_path):
    from fnf_basicsr.errors import ConfigError
    exp, opt = experiment_with_states(tmp_path, iters=(4,))
    opt['network_g'] = {'type': 'CompatTinyNet', 'features': 3}
    with pytest.raises(ConfigError, match=r"cannot resume exp from .*4.state: .*net_g_4.pth does not fit network_g "
                                          r".*1 of another size \(e.g. w: checkpoint \(1,\), network \(3,\)\); "
                                          r"network_g changed since that state was saved"):
        compat.load_resume_state(opt)


def test_a_forced_manual_seed_seeds_the_run(tmp_path, monkeypatch):
    import sys
    import basicsr.train
    option_file = tmp_path / 'seeded.yml'
    option_file.write_text('name: seeded\nmodel_type: FnFModel\nnum_gpu: 0\nmanual_seed: 10\n'
                           'datasets: {}\nnetwork_g: {type: DeepFnF}\npath: {}\ntrain: {}\n')

    def draws(*force_yml):
        monkeypatch.setattr(sys, 'argv', ['basicsr', '-opt', str(option_file), *force_yml])
        opt, _ = basicsr.train.parse_options(str(tmp_path), is_train=True)
        return opt['manual_seed'], torch.initial_seed(), torch.rand(3)

    file_seed, forced = draws(), draws('--force_yml', 'manual_seed=11')
    assert file_seed[:2] == (10, 10) and forced[:2] == (11, 11)  # BasicSR alone left torch at 10 here
    assert not torch.equal(file_seed[2], forced[2])
    assert torch.equal(draws()[2], file_seed[2])  # unforced runs draw what they always drew
