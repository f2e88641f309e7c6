"""Make the PyPI release basicsr 1.4.2 work on today's PyTorch and on machines without a GPU.

Every fix lives here, is applied by ``apply()`` (called when ``fnf_basicsr`` is imported), is
idempotent, and is covered by a test in ``tests/test_compat.py`` that fails without it. Nothing
in site-packages is edited: we alias a removed module and replace a few functions at run time.

Fixes:
    functional_tensor: basicsr imports ``torchvision.transforms.functional_tensor`` (removed in
        torchvision 0.17); we register an alias module before basicsr is imported.
    resume: ``basicsr.train.load_resume_state`` maps the training state onto
        ``torch.cuda.current_device()``, which fails without a GPU. We load it onto the model's
        device. (Checked and fine: torch's ``weights_only=True`` default accepts BasicSR's
        states, including the ``collections.Counter`` of ``MultiStepRestartLR``; we keep it.)
    dist_init: basicsr's ``init_dist`` always calls ``torch.cuda.set_device`` and uses NCCL. We
        use NCCL where a GPU exists and gloo otherwise, for both the pytorch and slurm launchers.
    ddp_device: ``BaseModel.model_to_device`` wraps DDP with ``device_ids=[current cuda
        device]``; on CPU, DDP must get ``device_ids=None``.
"""
import importlib
import os
import subprocess
import sys
import types

import torch

_APPLIED = False


def apply():
    """Apply every fix once; later calls do nothing."""
    global _APPLIED
    if _APPLIED:
        return
    _alias_functional_tensor()
    _patch_resume_loading()
    _patch_dist_init()
    _patch_ddp_device()
    _APPLIED = True


# --- functional_tensor -----------------------------------------------------------------------

def _alias_functional_tensor():
    name = 'torchvision.transforms.functional_tensor'
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    try:
        source = importlib.import_module('torchvision.transforms._functional_tensor')
    except ImportError:
        source = importlib.import_module('torchvision.transforms.functional')
    alias = types.ModuleType(name)
    alias.__dict__.update({k: v for k, v in vars(source).items() if not k.startswith('__')})
    sys.modules[name] = alias


# --- resume ----------------------------------------------------------------------------------

def resume_device(opt):
    """The device a training state is loaded onto: the model's device."""
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def latest_training_state(experiment_name, root='.'):
    """Path of the newest ``<iter>.state`` of an experiment, or None."""
    state_dir = os.path.join(root, 'experiments', experiment_name, 'training_states')
    if not os.path.isdir(state_dir):
        return None
    iters = [int(f[:-len('.state')]) for f in os.listdir(state_dir) if f.endswith('.state')]
    return os.path.join(state_dir, f'{max(iters)}.state') if iters else None


def load_resume_state(opt):
    """Drop-in replacement of ``basicsr.train.load_resume_state`` (same contract)."""
    from basicsr.utils import check_resume
    if opt['auto_resume']:
        path = latest_training_state(opt['name'], opt.get('root_path', '.'))
        if path is not None:
            opt['path']['resume_state'] = path
    else:
        path = opt['path'].get('resume_state')
    if path is None:
        return None
    state = torch.load(path, map_location=resume_device(opt))
    check_resume(opt, state['iter'])
    return state


def _patch_resume_loading():
    import basicsr.train
    basicsr.train.load_resume_state = load_resume_state


# --- dist_init -------------------------------------------------------------------------------

def default_backend():
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher, backend=None, **kwargs):
    """Replacement of ``basicsr.utils.dist_util.init_dist``: NCCL on GPUs, gloo without."""
    import torch.multiprocessing as mp
    if mp.get_start_method(allow_none=True) is None:
        mp.set_start_method('spawn')
    if backend is None or (backend == 'nccl' and not torch.cuda.is_available()):
        backend = default_backend()
    if launcher == 'pytorch':
        _init_dist_pytorch(backend, **kwargs)
    elif launcher == 'slurm':
        _init_dist_slurm(backend, **kwargs)
    else:
        raise ValueError(f'Invalid launcher type: {launcher}; use none, pytorch or slurm.')


def _select_local_gpu(rank):
    if torch.cuda.is_available():
        local_rank = int(os.environ.get('LOCAL_RANK', rank % torch.cuda.device_count()))
        torch.cuda.set_device(local_rank)


def _init_dist_pytorch(backend, **kwargs):
    import torch.distributed as dist
    _select_local_gpu(int(os.environ['RANK']))
    dist.init_process_group(backend=backend, **kwargs)


def _init_dist_slurm(backend, port=None):
    import torch.distributed as dist
    proc_id = int(os.environ['SLURM_PROCID'])
    ntasks = int(os.environ['SLURM_NTASKS'])
    if port is not None:
        os.environ['MASTER_PORT'] = str(port)
    os.environ.setdefault('MASTER_PORT', '29500')
    if 'MASTER_ADDR' not in os.environ:
        node_list = os.environ['SLURM_NODELIST']
        os.environ['MASTER_ADDR'] = subprocess.getoutput(f'scontrol show hostname {node_list} | head -n1')
    os.environ['WORLD_SIZE'] = str(ntasks)
    os.environ['RANK'] = str(proc_id)
    gpus = torch.cuda.device_count()
    os.environ.setdefault('LOCAL_RANK', str(proc_id % gpus if gpus else 0))
    _select_local_gpu(proc_id)
    dist.init_process_group(backend=backend)


def _patch_dist_init():
    import basicsr.utils.dist_util
    import basicsr.utils.options
    basicsr.utils.dist_util.init_dist = init_dist
    basicsr.utils.options.init_dist = init_dist  # bound by name at import


# --- ddp_device ------------------------------------------------------------------------------

def model_to_device(self, net):
    """Replacement of ``BaseModel.model_to_device`` that also wraps DDP on CPU."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def _patch_ddp_device():
    from basicsr.models.base_model import BaseModel
    BaseModel.model_to_device = model_to_device
