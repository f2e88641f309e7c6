"""The ``basicsr`` command: BasicSR's own train and test pipelines with our components registered.

``basicsr train -opt FILE`` and ``basicsr test -opt FILE`` run ``basicsr.train.train_pipeline`` and
``basicsr.test.test_pipeline`` with the current working directory as root, so ``experiments/``,
``tb_logger/`` and ``results/`` appear where the command is run. ``python -m fnf_basicsr.train`` and
``python -m fnf_basicsr.test`` do the same (that form is what ``torchrun`` launches).
"""
import argparse
import contextlib
import inspect
import os
import sys

from fnf_basicsr.errors import ConfigError, DeviceError, MissingInputError, OutputExistsError, report_errors
from fnf_basicsr.utils.options import (apply_overrides, check_option_values, check_override_keys, did_you_mean,
                                       load_option_file)
from fnf_basicsr.utils.plugins import import_plugins

DESCRIPTION = __doc__.splitlines()[0]
EPILOG = """examples:
  basicsr train -opt options/synthetic/train_fnf.yml          # quickstart on embedded synthetic data
  basicsr train -opt options/train_fnf.yml --auto_resume      # continue from the newest training state
  torchrun --nproc_per_node=4 -m fnf_basicsr.train -opt options/train_fnf.yml --launcher pytorch
  srun python -m fnf_basicsr.train -opt options/train_fnf.yml --launcher slurm
  basicsr test -opt options/test_fnf.yml

An option file may list extra packages whose components should be registered too, e.g. another
BasicSR plugin to compare against:  plugins: [realesrgan]
"""


def add_pipeline_arguments(parser, phase):
    parser.add_argument('-opt', required=True, metavar='FILE', help='YAML option file of the experiment.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none',
                        help='none: one process; pytorch: under torchrun (NCCL on GPUs, gloo on CPU); '
                        'slurm: under srun.')
    parser.add_argument('--force_yml', nargs='+', default=None, metavar='KEY=VALUE',
                        help='override existing option keys, nested keys joined by colons, '
                        'e.g. train:total_iter=1000 datasets:train:batch_size_per_gpu=4')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0, help=argparse.SUPPRESS)
    if phase == 'train':
        parser.add_argument('--auto_resume', action='store_true',
                            help='resume from the newest state in experiments/<name>/training_states.')
        parser.add_argument('--debug', action='store_true',
                            help='debug mode: prefix the name with debug_, log every iteration, '
                            'validate and save every 8 iterations, no tensorboard.')


def build_parser():
    parser = argparse.ArgumentParser(prog='basicsr', description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest='command', required=True, metavar='{train,test}')
    train = commands.add_parser('train', help='train a model (BasicSR train pipeline).', epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(train, 'train')
    test = commands.add_parser('test', help='evaluate a trained model (BasicSR test pipeline).')
    add_pipeline_arguments(test, 'test')
    return parser


def basicsr_argv(args, phase):
    """The argument list BasicSR's own ``parse_options`` expects."""
    argv = ['-opt', args.opt, '--launcher', args.launcher, '--local_rank', str(args.local_rank)]
    if phase == 'train':
        argv += ['--auto_resume'] * args.auto_resume + ['--debug'] * args.debug
    if args.force_yml:
        argv += ['--force_yml', *args.force_yml]
    return argv


def check_forced_keys(opt, forced, path):
    """Refuse ``--force_yml`` entries whose key path cannot be meant (see
    :func:`fnf_basicsr.utils.options.check_override_keys`); a network's constructor arguments are no typos."""
    check_override_keys(opt, forced, path, constructor_arguments)


def constructor_arguments(sections, section):
    """The argument names of the registered network a ``network_*`` section builds (else none)."""
    if len(sections) != 1 or not sections[0].startswith('network_'):
        return set()
    from basicsr.utils.registry import ARCH_REGISTRY
    name = section.get('type')
    return set(inspect.signature(ARCH_REGISTRY.get(name)).parameters) if name in ARCH_REGISTRY else set()


# Path entries BasicSR 1.4.2 sets itself from the run's folder and name, replacing whatever the file says.
GENERATED_PATHS = ('experiments_root', 'results_root', 'models', 'training_states', 'log', 'visualization')
# Path entries BasicSR reads (per network: pretrain_network_g, strict_load_g, param_key_g, ...).
PATH_PREFIXES = ('pretrain_network_', 'strict_load_', 'param_key_')
PATH_KEYS = ('resume_state', 'ignore_resume_networks')


def check_outputs(opt, path):
    """The run's outputs go where the options say: ``name`` is a plain folder name, and no ``path:`` entry is one
    BasicSR would silently replace or one it does not know (it would make a folder of that name)."""
    name = opt.get('name')
    if not isinstance(name, str) or name.strip() in ('', '.', '..') or any(c in name for c in '/\\\0'):
        raise ConfigError(f'{path}: name {name!r} must be a plain folder name (experiments/<name>, results/<name>); '
                          'use letters, digits, _ and -')
    paths = opt.get('path') or {}
    if not isinstance(paths, dict):
        raise ConfigError(f'{path}: path must be a section, e.g. path: {{pretrain_network_g: ~}}')
    for key, value in paths.items():
        if key in GENERATED_PATHS and value is not None:
            raise ConfigError(f'{path}: path:{key} cannot be chosen: BasicSR 1.4.2 puts experiments/<name> and '
                              'results/<name> under the folder the command runs in and would silently replace it; '
                              f'remove path:{key} and run the command in the folder that should hold them')
        if key not in GENERATED_PATHS + PATH_KEYS and not str(key).startswith(PATH_PREFIXES):
            known = ['pretrain_network_g', 'strict_load_g', 'param_key_g', *PATH_KEYS]
            raise ConfigError(f'{path}: path:{key} is not an entry BasicSR reads{did_you_mean(str(key), known)}; '
                              'fix or remove it')


def check_devices(opt, path):
    import torch
    num_gpu = opt.get('num_gpu', 0)
    if num_gpu not in (0, 'auto') and not torch.cuda.is_available():
        raise DeviceError(f'{path} asks for num_gpu: {num_gpu} but this machine has no CUDA device; set num_gpu: 0 '
                          '(CPU) or num_gpu: auto, or pass --force_yml num_gpu=0.')


def check_registered(opt, path):
    """Every component type the file names is registered (with BasicSR, us, or a listed plugin)."""
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, MODEL_REGISTRY
    wanted = [(MODEL_REGISTRY, 'model_type', opt.get('model_type', 'SRModel'))]
    wanted += [(ARCH_REGISTRY, key, opt[key].get('type')) for key in ('network_g', 'network_d')
               if isinstance(opt.get(key), dict)]
    wanted += [(DATASET_REGISTRY, f'datasets:{name}:type', d.get('type'))
               for name, d in (opt.get('datasets') or {}).items() if isinstance(d, dict)]
    wanted += [(LOSS_REGISTRY, f'train:{name}:type', o.get('type')) for name, o in (opt.get('train') or {}).items()
               if name.endswith('_opt') and isinstance(o, dict) and 'type' in o and not name.startswith(('optim',))]
    for registry, where, name in wanted:
        if name is not None and name not in registry:
            hint = did_you_mean(name, list(registry._obj_map))
            raise ConfigError(f'{path}: {where} {name!r} is not registered{hint}'
                              '; a component of another package is found once that package is listed under '
                              'plugins: [...]')


def check_weights(opt, path, phase):
    """Paths BasicSR would only fail on later; and never score an untrained network by accident."""
    paths = opt.get('path') or {}
    for key in ('pretrain_network_g', 'resume_state'):
        if paths.get(key) and not os.path.isfile(paths[key]):
            raise MissingInputError(f'{path}: path:{key} {paths[key]} does not exist; train it first or fix the path')
    if paths.get('pretrain_network_g'):
        check_sidecar_network(opt, path, paths['pretrain_network_g'])
        check_pretrained_fits(opt, path, paths)
    if phase == 'test' and not paths.get('pretrain_network_g'):
        from basicsr.archs import build_network

        from fnf_basicsr.archs.capabilities import capability
        network = build_network(dict(opt['network_g']))
        if capability(network, 'trainable') and any(True for _ in network.parameters()):
            raise ConfigError(f'{path}: path:pretrain_network_g is not set, so `basicsr test` would score a randomly '
                              'initialised network; set it to the trained weights (.pth)')


def check_pretrained_fits(opt, path, paths):
    """``pretrain_network_g`` is a readable weights file (no pickled code) whose tensors fit ``network_g`` as
    BasicSR will load them; BasicSR would fail with a traceback, or a size mismatch listed layer by layer."""
    from fnf_basicsr.inference.checkpoint import CheckpointError, NetworkMismatchError, check_checkpoint_fits
    try:
        check_checkpoint_fits(paths['pretrain_network_g'], opt['network_g'], paths.get('param_key_g') or 'params',
                              paths.get('strict_load_g', True))
    except NetworkMismatchError as error:
        raise CheckpointError(f'{path}: path:pretrain_network_g: {error}; pass the weights trained with this '
                              'network_g, or the network_g they were trained with') from None
    except CheckpointError as error:
        raise CheckpointError(f'{path}: path:pretrain_network_g: {error}') from None


def check_sidecar_network(opt, path, weights):
    """A converted checkpoint (``<stem>.yml`` beside it, scripts/model_conversion/convert_release_weights.py)
    computes what it was converted for only with its ``network_g``: options such as ``upsampling: tf1`` change no
    parameter shape, so a network built without them would load the weights strictly and still differ."""
    from fnf_basicsr.inference.release import sidecar_path
    sidecar = sidecar_path(weights)
    if not sidecar.is_file():
        return
    expected = load_option_file(sidecar).get('network_g') or {}
    network = opt.get('network_g') or {}
    differing = sorted(key for key, value in expected.items() if network.get(key) != value)
    if differing:
        wanted = ', '.join(f'{key}: {expected[key]}' for key in differing)
        raise ConfigError(f'{path}: path:pretrain_network_g {weights} was written with the network_g of {sidecar}, '
                          f'which sets {wanted}; copy that network_g block into {path}')


class ExperimentLock:
    """Held while a run writes ``<folder>/<name>`` (``experiments`` for training, ``results`` for testing): a second
    run of the same name (which BasicSR would let interleave, or archive the folder under the first one's feet) is
    refused. The OS releases it when the process ends, however it ends."""

    def __init__(self, root, name, folder='experiments', what='training'):
        self.path = os.path.join(root, folder, f'.{name}.lock')
        self.name = name
        self.what = what

    def __enter__(self):
        import fcntl
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = open(self.path, 'a+')
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise OutputExistsError(f'another {self.what} run named {self.name!r} is running in '
                                    f'{os.path.dirname(self.path)}; wait for it, or give this run another name '
                                    '(name: in the option file)') from None
        return self

    def __exit__(self, *exc_info):
        self.handle.close()


def experiment_name(opt, args, phase):
    name = str(opt.get('name', ''))
    if phase == 'train' and args.debug and not name.startswith('debug'):
        name = 'debug_' + name
    return name


def is_main_process():
    return os.environ.get('RANK', os.environ.get('SLURM_PROCID', '0')) == '0'


def run_pipeline(phase, argv):
    """Parse ``argv`` for ``phase`` ('train' or 'test') and run BasicSR's pipeline."""
    parser = argparse.ArgumentParser(prog=f'basicsr {phase}', description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser, phase)
    args = parser.parse_args(argv)
    with report_errors(f'basicsr {phase}'):
        import fnf_basicsr  # noqa: F401  (compatibility fixes and registration)
        opt = load_option_file(args.opt)
        import_plugins(opt, args.opt)  # first: the arguments of their networks are known --force_yml keys
        check_forced_keys(opt, args.force_yml, args.opt)
        # BasicSR gets the same effective options (fnf_basicsr.compat, safe_options), never the values of our argv.
        opt = check_option_values(apply_overrides(opt, args.force_yml, args.opt), args.opt)
        check_outputs(opt, args.opt)
        check_devices(opt, args.opt)
        import_plugins(opt, args.opt)
        check_registered(opt, args.opt)
        check_weights(opt, args.opt, phase)
        sys.argv = [f'basicsr {phase}', *basicsr_argv(args, phase)]
        run_basicsr(phase, os.getcwd(), experiment_name(opt, args, phase))


def run_basicsr(phase, root, name):
    """BasicSR's pipeline under the run's lock. A training run that fails before its first iteration, and a test
    run that fails or is interrupted, remove the folders they created (an archived older one gets its name back)."""
    from fnf_basicsr import compat
    if phase == 'train':
        from basicsr.train import train_pipeline as pipeline
    else:
        from basicsr.test import test_pipeline as pipeline
    folder, what = ('experiments', 'training') if phase == 'train' else ('results', 'test')
    compat.RUN = compat.RunRecord()
    with ExperimentLock(root, name, folder, what) if is_main_process() else contextlib.nullcontext():
        try:
            pipeline(root)
        except BaseException as error:
            if phase == 'test' or not compat.RUN.iterations:
                compat.RUN.undo()
            if isinstance(error, KeyboardInterrupt) and compat.RUN.iterations:
                raise KeyboardInterrupt('the checkpoints saved so far are kept; continue with --auto_resume') from None
            raise


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or argv[0] not in ('train', 'test'):
        parser.parse_args(argv)  # prints help or the usage error and exits
        return
    run_pipeline(argv[0], argv[1:])


if __name__ == '__main__':
    main()
