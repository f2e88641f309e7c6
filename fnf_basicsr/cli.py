"""The ``basicsr`` command: BasicSR's own train and test pipelines with our components registered.

``basicsr train -opt FILE`` and ``basicsr test -opt FILE`` run ``basicsr.train.train_pipeline`` and
``basicsr.test.test_pipeline`` with the current working directory as root, so ``experiments/``,
``tb_logger/`` and ``results/`` appear where the command is run. ``python -m fnf_basicsr.train`` and
``python -m fnf_basicsr.test`` do the same (that form is what ``torchrun`` launches).
"""
import argparse
import difflib
import importlib
import os
import sys


from fnf_basicsr.errors import ConfigError, DeviceError, MissingInputError, OutputExistsError, report_errors
from fnf_basicsr.utils.options import load_option_file

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
    """Refuse ``--force_yml`` entries whose key path cannot be meant: a missing section, or a new key that
    is a near-miss of an existing one (a typo BasicSR would silently add)."""
    for entry in forced or []:
        if '=' not in entry:
            raise ConfigError(f'--force_yml {entry!r}: expected KEY=VALUE, e.g. train:total_iter=1000')
        *sections, leaf = [key.strip() for key in entry.split('=', 1)[0].split(':')]
        node = opt
        for depth, key in enumerate(sections):
            if not isinstance(node, dict) or key not in node:
                known = sorted(node) if isinstance(node, dict) else []
                raise ConfigError(f'--force_yml {entry!r}: {path} has no section {":".join(sections[:depth + 1])!r}'
                                  f'{_did_you_mean(key, known)}')
            node = node[key]
        if not isinstance(node, dict):
            raise ConfigError(f'--force_yml {entry!r}: {":".join(sections)!r} in {path} is a value, not a section')
        if leaf not in node:
            near = difflib.get_close_matches(leaf, list(node), n=1, cutoff=0.75)
            if near:
                raise ConfigError(f'--force_yml {entry!r}: {path} has no key {leaf!r} there (did you mean '
                                  f'{near[0]!r}?); fix the key')
            print(f'basicsr: note: --force_yml adds {leaf!r}, which {path} does not set', file=sys.stderr)


def _did_you_mean(key, known):
    near = difflib.get_close_matches(key, known, n=1)
    return f' (did you mean {near[0]!r}?)' if near else f' (it has {known})'


def check_devices(opt, path):
    import torch
    num_gpu = opt.get('num_gpu', 0)
    if num_gpu not in (0, 'auto') and not torch.cuda.is_available():
        raise DeviceError(f'{path} asks for num_gpu: {num_gpu} but this machine has no CUDA device; set num_gpu: 0 '
                          '(CPU) or num_gpu: auto, or pass --force_yml num_gpu=0.')


def import_plugins(opt, path):
    for module in opt.get('plugins') or []:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            raise ConfigError(f'{path}: plugins: cannot import {module!r} ({error}); install that package or fix '
                              'its name') from None


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
            hint = _did_you_mean(name, list(registry._obj_map))
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
    if phase == 'test' and not paths.get('pretrain_network_g'):
        from basicsr.archs import build_network

        from fnf_basicsr.archs.capabilities import capability
        network = build_network(dict(opt['network_g']))
        if capability(network, 'trainable') and any(True for _ in network.parameters()):
            raise ConfigError(f'{path}: path:pretrain_network_g is not set, so `basicsr test` would score a randomly '
                              'initialised network; set it to the trained weights (.pth)')


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
    """Held while a training run writes ``experiments/<name>``: a second run of the same name (which BasicSR
    would let interleave, or archive the folder under the first one's feet) is refused. The OS releases it when
    the process ends, however it ends."""

    def __init__(self, root, name):
        self.path = os.path.join(root, 'experiments', f'.{name}.lock')
        self.name = name

    def __enter__(self):
        import fcntl
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.handle = open(self.path, 'a+')
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise OutputExistsError(f'another training run named {self.name!r} is running in '
                                    f'{os.path.dirname(self.path)}; wait for it, or give this run another name '
                                    '(name: in the option file)') from None
        return self

    def __exit__(self, *exc_info):
        self.handle.close()


def experiment_name(opt, args, phase):
    forced = [v.split('=', 1)[1].strip() for v in args.force_yml or [] if v.split('=', 1)[0].strip() == 'name']
    name = forced[-1] if forced else str(opt.get('name', ''))
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
        opt = load_option_file(args.opt)
        check_forced_keys(opt, args.force_yml, args.opt)
        forced_gpu = [v.split('=', 1)[1] for v in args.force_yml or [] if v.split('=', 1)[0].strip() == 'num_gpu']
        if forced_gpu:
            opt['num_gpu'] = 'auto' if forced_gpu[-1].strip() == 'auto' else int(forced_gpu[-1])
        check_devices(opt, args.opt)

        import fnf_basicsr  # noqa: F401  (compatibility fixes and registration)
        import_plugins(opt, args.opt)
        check_registered(opt, args.opt)
        check_weights(opt, args.opt, phase)
        sys.argv = [f'basicsr {phase}', *basicsr_argv(args, phase)]
        root = os.getcwd()
        if phase == 'train':
            from basicsr.train import train_pipeline
            if is_main_process():
                with ExperimentLock(root, experiment_name(opt, args, phase)):
                    train_pipeline(root)
            else:
                train_pipeline(root)
        else:
            from basicsr.test import test_pipeline
            test_pipeline(root)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if not argv or argv[0] not in ('train', 'test'):
        parser.parse_args(argv)  # prints help or the usage error and exits
        return
    run_pipeline(argv[0], argv[1:])


if __name__ == '__main__':
    main()
