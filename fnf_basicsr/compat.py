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
    broken_states: a truncated newest training state (a kill during a save, a full disk) made
        ``--auto_resume`` fail with a raw zip error. We skip unreadable states (and states whose
        network file is missing or unreadable), warn naming each, and resume from the newest good one.
    atomic_saves: BasicSR writes checkpoints in place, retries, then logs "Just ignore it" and
        trains on (exit 0) when the disk is full. We write each file to a temporary beside it and
        rename it, and raise :class:`~fnf_basicsr.errors.OutputError` naming the file and the cause.
    resume_seed: BasicSR seeds every start with ``manual_seed + rank``, so a resumed run replayed
        the random degradations of iterations 1..N. On resume we reseed from (manual_seed, rank,
        resumed iteration): a fresh run is reproducible, a resumed one continues with new draws.
    forced_seed: ``parse_options`` seeds torch, NumPy and random *before* it applies
        ``--force_yml``, so ``--force_yml manual_seed=N`` was recorded in the options (and seeded the
        dataloader workers) while the network started from the file's seed. We seed again from the
        final options (the same state when nothing forced the seed: nothing draws in between).
    safe_options: ``parse_options`` reads the option file with PyYAML's unsafe loader and applies
        ``--force_yml`` with ``exec`` (``eval`` for values starting with ``[``): a Python tag or an
        override ran code. We read the file and the overrides with :mod:`fnf_basicsr.utils.options`
        (safe, duplicate keys and bad numbers refused) and hand BasicSR a file holding the result; its
        copy in ``experiments/<name>/`` holds these effective options (it held the file as it was,
        the overrides only in a comment, and inference built another network from it).
    run_record: ``mkdir_and_rename`` and the completed training iterations are recorded, so a run
        that fails before its first iteration (or an interrupted test) can remove the folders it made
        and give the folders it archived their names back (``fnf_basicsr.cli``).
    master_saves: our atomic save methods keep BasicSR's ``master_only``: other ranks write nothing.
    resume_fit: resuming with a changed ``network_g`` printed 90 lines of size mismatch and a
        traceback; the saved networks are checked against the options first (one line).
"""
import contextlib
import functools
import importlib
import os
import shlex
import shutil
import subprocess
import sys
import types
import zipfile

import numpy as np
import torch

from fnf_basicsr.errors import DataError, OutputError
from fnf_basicsr.utils.files import fault_point, remove_stale_temporaries, temporary_path

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
    _patch_saving()
    _patch_safe_options()
    _patch_run_record()
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


def training_states(experiment_name, root='.'):
    """Paths of an experiment's ``<iter>.state`` files, newest first."""
    state_dir = os.path.join(root, 'experiments', experiment_name, 'training_states')
    if not os.path.isdir(state_dir):
        return []
    iters = [int(f[:-len('.state')]) for f in os.listdir(state_dir)
             if f.endswith('.state') and f[:-len('.state')].isdigit()]
    return [os.path.join(state_dir, f'{it}.state') for it in sorted(iters, reverse=True)]


def latest_training_state(experiment_name, root='.'):
    """Path of the newest ``<iter>.state`` of an experiment, or None."""
    states = training_states(experiment_name, root)
    return states[0] if states else None


def read_training_state(path, opt):
    """Load a training state and check the network files it needs; DataError names what is broken."""
    try:
        state = torch.load(path, map_location=resume_device(opt))
        iteration = int(state['iter'])
    except Exception as error:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on damaged files
        raise DataError(f'training state {path} is unreadable ({type(error).__name__}: '
                        f'{_first_line(error)}), e.g. truncated by a kill or a full disk') from None
    models = opt['path'].get('models') or os.path.join(os.path.dirname(os.path.dirname(path)), 'models')
    ignored = opt['path'].get('ignore_resume_networks') or ()
    for key in opt:
        if key.startswith('network_') and key not in ignored:
            network = os.path.join(models, f'net_{key[len("network_"):]}_{iteration}.pth')
            _check_zip(network, f'the network file of {path}')
    return state


def _check_zip(path, what):
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (OSError, zipfile.BadZipFile) as error:
        raise DataError(f'{what}, {path}, is missing or unreadable ({_first_line(error)})') from None
    if broken is not None:
        raise DataError(f'{what}, {path}, is damaged ({broken} fails its checksum)')


def _first_line(error):
    return (str(error).strip().splitlines() or [''])[0]


def load_resume_state(opt):
    """Drop-in replacement of ``basicsr.train.load_resume_state`` (same contract).

    With ``auto_resume``, broken states are skipped with a warning naming each; an explicit
    ``path.resume_state`` that is broken raises DataError. After loading, the random streams are
    reseeded for the resumed iteration (see ``resume_seed``).
    """
    from basicsr.utils import check_resume
    root = opt.get('root_path', '.')
    state = None
    if opt['auto_resume']:
        for path in training_states(opt['name'], root):
            try:
                state = read_training_state(path, opt)
            except DataError as error:
                print(f'basicsr train: warning: skipping {error}; resuming from an older state', file=sys.stderr)
                continue
            opt['path']['resume_state'] = path
            break
        _remove_dead_temporaries(opt['name'], root)
    elif opt['path'].get('resume_state'):
        state = read_training_state(opt['path']['resume_state'], opt)
    if state is None:
        return None
    check_resume(opt, state['iter'])
    check_resumed_networks(opt)
    reseed_for_resume(opt, state['iter'])
    return state


def check_resumed_networks(opt):
    """The networks saved with the resumed state fit the networks the options build now; else ConfigError.

    BasicSR would load them strictly and fail with a size mismatch listed layer by layer (90 lines).
    """
    from fnf_basicsr.errors import ConfigError
    from fnf_basicsr.inference.checkpoint import NetworkMismatchError, check_checkpoint_fits
    ignored = opt['path'].get('ignore_resume_networks') or ()
    for key in [k for k in opt if k.startswith('network_') and k not in ignored and isinstance(opt[k], dict)]:
        label = key[len('network_'):]
        weights = opt['path'].get(f'pretrain_{key}')
        if not weights:
            continue
        try:
            check_checkpoint_fits(weights, opt[key], opt['path'].get(f'param_key_{label}') or 'params',
                                  opt['path'].get(f'strict_load_{label}', True))
        except NetworkMismatchError as error:  # an unreadable file was skipped or named by read_training_state
            folder = os.path.dirname(os.path.dirname(weights))
            raise ConfigError(f'cannot resume {opt["name"]} from {opt["path"]["resume_state"]}: {error}; {key} '
                              f'changed since that state was saved: restore the {key} of the option file in {folder} '
                              'or train under another name') from None


def resume_seed(manual_seed, rank, iteration):
    """The seed of a run resumed at ``iteration``: differs for every (seed, rank, iteration)."""
    return int(np.random.SeedSequence([int(manual_seed), int(rank), int(iteration)]).generate_state(1)[0] >> 1)


def reseed_for_resume(opt, iteration):
    """Reseed python, numpy and torch (as BasicSR's ``set_random_seed``) for a run resumed at ``iteration``.

    train_pipeline calls load_resume_state before it builds the datasets and data loaders, so the
    dataset's generator (seeded from ``torch.initial_seed()``) and the loader's worker seeds follow.
    """
    from basicsr.utils import set_random_seed
    seed = opt.get('manual_seed')
    if seed is None:
        return  # BasicSR drew a random seed already: nothing is replayed
    set_random_seed(resume_seed(seed, opt.get('rank', 0), iteration))


def _remove_dead_temporaries(name, root):
    experiment = os.path.join(root, 'experiments', name)
    for folder in ('training_states', 'models'):
        remove_stale_temporaries(os.path.join(experiment, folder), any_name=True)


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


def parse_options(root_path, is_train=True):
    """BasicSR's ``parse_options`` on the effective options (see ``safe_options``), the random generators seeded
    from the final options. ``args.opt`` stays the user's file."""
    from basicsr.utils import set_random_seed
    with _effective_option_argv() as source:
        opt, args = _BASICSR_PARSE_OPTIONS(root_path, is_train=is_train)
    args.opt = source
    set_random_seed(opt['manual_seed'] + opt['rank'])
    return opt, args


_BASICSR_PARSE_OPTIONS = None
# The user's option file and the YAML text of its effective options (after --force_yml) of the current run.
EFFECTIVE = {'source': None, 'text': None}


@contextlib.contextmanager
def _effective_option_argv():
    """Point ``sys.argv`` at a file holding the effective options, without ``--force_yml``, for BasicSR.

    BasicSR's parser applies each override with ``exec`` (and ``eval`` for a value starting with ``[``) and
    reads the option file with PyYAML's unsafe loader: it gets only our safely parsed, checked result.
    """
    import argparse
    import tempfile

    import yaml

    from fnf_basicsr.utils.options import effective_options
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument('-opt', required=True)
    parser.add_argument('--force_yml', nargs='+', default=None)
    known, rest = parser.parse_known_args(sys.argv[1:])
    text = yaml.safe_dump(effective_options(known.opt, known.force_yml), sort_keys=False)
    folder = tempfile.mkdtemp(prefix='fnf_options_')
    path = os.path.join(folder, os.path.basename(known.opt))
    with open(path, 'w', encoding='utf-8') as handle:
        handle.write(text)
    argv = sys.argv
    sys.argv = [argv[0], '-opt', path, *rest]
    EFFECTIVE.update(source=known.opt, text=text)
    try:
        yield known.opt
    finally:
        sys.argv = argv
        shutil.rmtree(folder, ignore_errors=True)


def copy_opt_file(opt_file, experiments_root):
    """Replacement of BasicSR's ``copy_opt_file`` (rank 0): the copy in ``experiments/<name>/`` holds the effective
    options, marked as such, where BasicSR copied the file as it was (the overrides only in a comment), from which
    fnf-denoise and fnf-benchmark built another network."""
    import time

    from basicsr.utils.dist_util import get_dist_info

    from fnf_basicsr.utils.options import EFFECTIVE_MARKER
    if get_dist_info()[0] != 0:
        return
    if EFFECTIVE['source'] != opt_file:
        raise RuntimeError(f'copy_opt_file({opt_file!r}) without parse_options: no effective options to copy')
    header = (f'{EFFECTIVE_MARKER}: {opt_file} with every --force_yml override of the command below applied\n'
              f'# GENERATE TIME: {time.asctime()}\n# CMD:\n# {sys.argv[0]} {shlex.join(sys.argv[1:])}\n\n')
    path = os.path.join(experiments_root, os.path.basename(opt_file))
    tmp = temporary_path(path)
    with open(tmp, 'w', encoding='utf-8') as handle:
        handle.write(header + EFFECTIVE['text'])
    os.replace(tmp, path)


def _patch_safe_options():
    global _BASICSR_PARSE_OPTIONS
    import basicsr.test
    import basicsr.train
    import basicsr.utils.options
    if basicsr.utils.options.parse_options is not parse_options:
        _BASICSR_PARSE_OPTIONS = basicsr.utils.options.parse_options
    for module in (basicsr.utils.options, basicsr.train, basicsr.test):
        module.parse_options = parse_options  # bound by name at import
    basicsr.utils.options.copy_opt_file = basicsr.train.copy_opt_file = copy_opt_file


# --- run_record --------------------------------------------------------------------------------------------------

class RunRecord:
    """What the current pipeline created: the folders ``mkdir_and_rename`` made (with the name it archived an older
    one under) and the training iterations completed, so that a run which fails before its first iteration (or an
    interrupted test) can remove what it made and give archived folders their names back."""

    def __init__(self):
        self.created = []
        self.iterations = 0

    def undo(self):
        """Remove the folders this run created, newest first, and rename the folders they archived back."""
        for path, archived in reversed(self.created):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            if archived and os.path.isdir(archived) and not os.path.lexists(path):
                os.rename(archived, path)
        self.created.clear()


RUN = RunRecord()


def mkdir_and_rename(path):
    """BasicSR's ``mkdir_and_rename`` (archive an existing folder, make a fresh one), recorded in :data:`RUN`."""
    from basicsr.utils.misc import get_time_str
    archived = None
    if os.path.exists(path):
        archived = f'{path}_archived_{get_time_str()}'
        print(f'Path already exists. Rename it to {archived}', flush=True)
        os.rename(path, archived)
    os.makedirs(path, exist_ok=True)
    RUN.created.append((path, archived))


def build_model(opt):
    """BasicSR's ``build_model``, counting the model's completed training iterations in :data:`RUN`."""
    model = _BASICSR_BUILD_MODEL(opt)
    step = model.optimize_parameters

    def optimize_parameters(current_iter):
        result = step(current_iter)
        RUN.iterations += 1
        return result
    model.optimize_parameters = optimize_parameters
    return model


_BASICSR_BUILD_MODEL = None


def _patch_run_record():
    global _BASICSR_BUILD_MODEL
    import basicsr.models
    import basicsr.train
    import basicsr.utils
    import basicsr.utils.misc
    for module in (basicsr.utils.misc, basicsr.utils, basicsr.train):
        module.mkdir_and_rename = mkdir_and_rename  # make_exp_dirs looks it up in misc; train bound it by name
    if basicsr.train.build_model is not build_model:
        _BASICSR_BUILD_MODEL = basicsr.train.build_model
    basicsr.train.build_model = build_model


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


# --- atomic_saves ----------------------------------------------------------------------------

def save_atomically(obj, path):
    """``torch.save`` through a temporary beside ``path``, renamed when complete.

    Raises:
        OutputError: the file cannot be written (full disk, read-only folder, ...), naming it.
    """
    tmp = temporary_path(path)
    try:
        with open(tmp, 'wb') as handle:
            torch.save(obj, handle)
            fault_point('save_checkpoint')  # killed here: only the temporary exists
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:  # torch reports a failed write as RuntimeError
        raise OutputError(f'cannot save {path}: {_first_line(error)}; free disk space (or fix the folder) and '
                          'rerun with --auto_resume') from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _master_only(function):
    """BasicSR's ``master_only`` (its save methods run on rank 0 only, so must their replacements), bound late:
    basicsr may only be imported after :func:`apply` aliased its missing module."""
    @functools.wraps(function)
    def on_rank_0(*args, **kwargs):
        from basicsr.utils.dist_util import get_dist_info
        if get_dist_info()[0] == 0:
            return function(*args, **kwargs)
    return on_rank_0


@_master_only
def save_network(self, net, net_label, current_iter, param_key='params'):
    """Replacement of ``BaseModel.save_network``: the same file, written atomically, failing loudly (rank 0)."""
    current_iter = 'latest' if current_iter == -1 else current_iter
    path = os.path.join(self.opt['path']['models'], f'{net_label}_{current_iter}.pth')
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    assert len(nets) == len(keys), 'The lengths of net and param_key should be the same.'
    save_dict = {}
    for net_, key in zip(nets, keys):
        state_dict = self.get_bare_model(net_).state_dict()
        save_dict[key] = {(name[7:] if name.startswith('module.') else name): value.cpu()
                          for name, value in state_dict.items()}
    save_atomically(save_dict, path)


@_master_only
def save_training_state(self, epoch, current_iter):
    """Replacement of ``BaseModel.save_training_state``: written atomically, failing loudly (rank 0)."""
    if current_iter == -1:
        return
    state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
             'schedulers': [s.state_dict() for s in self.schedulers]}
    save_atomically(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))


def _patch_saving():
    from basicsr.models.base_model import BaseModel
    BaseModel.save_network = save_network
    BaseModel.save_training_state = save_training_state
