"""Render synthetic flash/no-flash scenes into a FAID-format folder.

The scenes are the project's default data when the real FAID dataset is not available; they use
the exact FAID file layout, so every later step (crops, LMDB, training, testing) is the same.

A killed or failed run can be resumed: run the same command again, and it renders only the
missing scenes (the files are then identical to those of an uninterrupted run). Until it has
finished, the folder is marked unfinished and training refuses it.

Example:
    python scripts/data_preparation/generate_synthetic.py --root datasets/synthetic/train --split train --num 200
"""
import argparse
import time

from fnf_basicsr.data.synthetic import SPLIT_SEED_OFFSETS, generate_split
from fnf_basicsr.errors import report_errors


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog='Scene i of a split is rendered from seed SPLIT_SEED_OFFSETS[split] + i and named '
               'Synth_<split>_<i:06d>, so the same command always writes bit-identical files.')
    parser.add_argument('--root', required=True, help='output folder (created if missing)')
    parser.add_argument('--split', default='train', choices=sorted(SPLIT_SEED_OFFSETS),
                        help='selects the seed range and the names (default: %(default)s)')
    parser.add_argument('--num', type=int, default=200, help='number of scenes (default: %(default)s)')
    parser.add_argument('--size', type=int, default=512, help='image height and width in pixels (default: %(default)s)')
    parser.add_argument('--workers', type=int, default=2, help='parallel processes (default: %(default)s)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace scenes of the same names that already exist in --root (not needed to '
                        'resume an interrupted run: the same command resumes it)')
    parser.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    command = (f'python scripts/data_preparation/generate_synthetic.py --root {args.root} --split {args.split} '
               f'--num {args.num} --size {args.size}')
    with report_errors('generate_synthetic.py'):
        names = generate_split(args.root, args.split, args.num, size=args.size, workers=args.workers,
                               overwrite=args.overwrite, resume_command=command, progress=not args.quiet)
    seconds = time.perf_counter() - start
    print(f'wrote {len(names)} scenes ({names[0]} .. {names[-1]}) of {args.size}x{args.size} to {args.root} '
          f'in {seconds:.1f} s ({seconds / len(names):.2f} s per scene)')


if __name__ == '__main__':
    main()
