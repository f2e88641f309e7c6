#!/usr/bin/env python
"""Time whole training iterations of option files: seconds per iteration, samples/s, peak memory.

Each option file runs in a fresh process with the model, losses, optimizer and training dataset it
describes (:mod:`fnf_basicsr.utils.training_benchmark`); reported are medians over ``--iters``
steps after ``--warmup``, with the file's dataloader ("with data") and on one fed batch
("compute"). Datasets named by relative paths are found (or generated) under the current folder.
A measurement tool: run it on an otherwise idle machine, and never in tests.

Example:
    python scripts/benchmark_training.py options/synthetic/train_fnf.yml options/synthetic/train_kpn.yml
"""
import argparse

from fnf_basicsr.errors import report_errors
from fnf_basicsr.utils.training_benchmark import markdown_table, measure_isolated


def main(argv=None):
    doc_head, doc_rest = __doc__.split('\n\n', 1)
    parser = argparse.ArgumentParser(description=doc_head, epilog=doc_rest,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('option_files', nargs='+', help='training option files to time.')
    parser.add_argument('--iters', type=int, default=10, help='timed iterations per file. Default: 10.')
    parser.add_argument('--warmup', type=int, default=2, help='untimed iterations first. Default: 2.')
    parser.add_argument('--threads', type=int, default=1, help='torch threads. Default: 1.')
    parser.add_argument('--device', choices=('cpu', 'cuda'), default='cpu', help='Default: cpu.')
    args = parser.parse_args(argv)
    with report_errors('benchmark_training.py'):
        rows = []
        for option_file in args.option_files:
            rows.append(measure_isolated(option_file, args.iters, args.warmup, args.threads, args.device))
            print(f'{option_file}: {rows[-1]["seconds_per_iter_compute"]:.3f} s/iter', flush=True)
    print(markdown_table(rows))


if __name__ == '__main__':
    main()
