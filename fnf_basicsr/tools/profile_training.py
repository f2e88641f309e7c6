"""Time whole training iterations of option files: iterations/s, samples/s, peak memory, per variant.

Each (option file, device, precision, memory format, Adam implementation) runs ``--runs`` times, each in a fresh process
with the model, losses, optimizer and training dataset the file describes
(:mod:`fnf_basicsr.utils.training_profile`); a run reports medians over ``--iters`` steps after
``--warmup``, with the file's dataloader ("with data") and on one fed batch ("compute"), and the
table shows the median of the runs, with the speed-up over the file's fp32 NCHW row (the foreach
Adam one when ``--adam`` times both). Datasets
named by relative paths are found (or generated) under the current folder; ``--synthetic-data``
swaps the training data for generated scenes. A measurement tool: run it on an otherwise idle
machine, and never in tests.

Examples:
    # the quickstart twin, all four variants, CPU (and CUDA when present)
    python scripts/profiling/profile_training.py options/synthetic/train_fnf.yml
    # the paper configuration (width 1, J 90, 448 crops, batch 1) on 8 synthetic 512 px scenes
    python scripts/profiling/profile_training.py options/train_fnf.yml --synthetic-data 8x512 --iters 3 --warmup 1
"""
import argparse
import itertools

from fnf_basicsr.errors import ConfigError, report_errors
from fnf_basicsr.utils.training_profile import (ADAM_IMPLEMENTATIONS, MEMORY_FORMATS, PRECISIONS, markdown_table,
                                                  measure_isolated, median_of_runs)


def synthetic_spec(text):
    """'NUMxSIZE' (e.g. 8x512) -> {'num_scenes': NUM, 'size': SIZE}."""
    try:
        num, size = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected NUMxSIZE such as 8x512, got {text!r}') from None
    if num < 1 or size < 64:
        raise argparse.ArgumentTypeError(f'need at least 1 scene of at least 64 px, got {text!r}')
    return {'num_scenes': num, 'size': size}


def devices(choice):
    import torch
    if choice == 'all':
        return ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
    if choice == 'cuda' and not torch.cuda.is_available():
        raise ConfigError('--device cuda: no CUDA device is available; use --device cpu or all.')
    return [choice]


def build_parser():
    doc_head, doc_rest = __doc__.split('\n\n', 1)
    parser = argparse.ArgumentParser(description=doc_head, epilog=doc_rest,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('option_files', nargs='+', help='training option files to time.')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations per run. Default: 10.')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations first. Default: 2.')
    parser.add_argument('--runs', type=int, default=1, help='fresh processes per variant (median). Default: 1.')
    parser.add_argument('--threads', type=int, default=1, help='torch threads. Default: 1.')
    parser.add_argument('--device', choices=('cpu', 'cuda', 'all'), default='all',
                        help='Default: all (cpu, plus cuda when available).')
    parser.add_argument('--precision', nargs='+', choices=sorted(PRECISIONS), default=['fp32', 'bf16'],
                        help="autocast variants; auto: what the file's default resolves to here. Default: fp32 bf16.")
    parser.add_argument('--memory-format', nargs='+', choices=sorted(MEMORY_FORMATS),
                        default=['nchw', 'channels_last'],
                        help='memory formats; auto: what the default resolves to here. Default: nchw channels_last.')
    parser.add_argument('--adam', nargs='+', choices=sorted(ADAM_IMPLEMENTATIONS), default=[None],
                        help="Adam implementations (optim_g: fused). Default: the file's.")
    parser.add_argument('--crop', type=int, help="training crop instead of the file's.")
    parser.add_argument('--synthetic-data', type=synthetic_spec, metavar='NUMxSIZE',
                        help='train on NUM generated synthetic scenes of SIZE px instead of the file\'s data '
                             '(SIZE >= crop + 2 x margin).')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    with report_errors('profile_training.py'):
        rows = []
        for device in devices(args.device):
            for option_file in args.option_files:
                for precision, memory_format, adam in itertools.product(args.precision, args.memory_format, args.adam):
                    runs = [measure_isolated(option_file, args.iters, args.warmup, args.threads, device, precision,
                                             MEMORY_FORMATS[memory_format], args.crop, args.synthetic_data, adam)
                            for _ in range(args.runs)]
                    rows.append(median_of_runs(runs))
                    print(f'{option_file} {device} {precision} {memory_format} {rows[-1]["adam"]} Adam: '
                          f'{rows[-1]["seconds_per_iter_compute"]:.3f} s/iter', flush=True)
    print(markdown_table(rows))
    print(f"\nCPU: {rows[0]['cpu']}" if rows else '')


if __name__ == '__main__':
    main()
