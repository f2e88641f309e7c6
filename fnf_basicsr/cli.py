"""The ``basicsr`` command: BasicSR's own train and test pipelines with our components registered.

``basicsr train -opt FILE`` and ``basicsr test -opt FILE`` run ``basicsr.train.train_pipeline`` and
``basicsr.test.test_pipeline`` with the current working directory as root, so ``experiments/``,
``tb_logger/`` and ``results/`` appear where the command is run. ``python -m fnf_basicsr.train`` and
``python -m fnf_basicsr.test`` do the same (that form is what ``torchrun`` launches).
"""
import argparse
import importlib
import os
import sys

import yaml

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


def load_option_file(path):
    if not os.path.isfile(path):
        raise SystemExit(f'basicsr: option file not found: {path}\n'
                         'Pass the path of a YAML option file, e.g. -opt options/synthetic/train_fnf.yml')
    with open(path, encoding='utf-8') as handle:
        try:
            opt = yaml.safe_load(handle)
        except yaml.YAMLError as err:
            raise SystemExit(f'basicsr: {path} is not valid YAML: {err}') from None
    if not isinstance(opt, dict):
        raise SystemExit(f'basicsr: {path} must hold a mapping of options, got {type(opt).__name__}.')
    return opt


def check_devices(opt, path):
    import torch
    num_gpu = opt.get('num_gpu', 0)
    if num_gpu not in (0, 'auto') and not torch.cuda.is_available():
        raise SystemExit(f'basicsr: {path} asks for num_gpu: {num_gpu} but this machine has no CUDA device.\n'
                         "Set num_gpu: 0 (CPU) or num_gpu: auto, or pass --force_yml num_gpu=0.")


def import_plugins(opt):
    for module in opt.get('plugins') or []:
        importlib.import_module(module)


def run_pipeline(phase, argv):
    """Parse ``argv`` for ``phase`` ('train' or 'test') and run BasicSR's pipeline."""
    parser = argparse.ArgumentParser(prog=f'basicsr {phase}', description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_pipeline_arguments(parser, phase)
    args = parser.parse_args(argv)
    opt = load_option_file(args.opt)
    forced_gpu = [v.split('=', 1)[1] for v in args.force_yml or [] if v.split('=', 1)[0].strip() == 'num_gpu']
    if forced_gpu:
        opt['num_gpu'] = 'auto' if forced_gpu[-1] == 'auto' else int(forced_gpu[-1])
    check_devices(opt, args.opt)

    import fnf_basicsr  # noqa: F401  (compatibility fixes and registration)
    import_plugins(opt)
    sys.argv = [f'basicsr {phase}', *basicsr_argv(args, phase)]
    root = os.getcwd()
    if phase == 'train':
        from basicsr.train import train_pipeline
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
