"""Convert the authors' released DeepFnF weights to a BasicSR checkpoint plus its network_g option file.

The conversion itself, and why the converted model's options name the release's conventions:
:mod:`fnf_basicsr.inference.release`.

Example:
    python scripts/model_conversion/convert_release_weights.py wts/model.npz weights/deepfnf_release.pth
"""
import argparse

import numpy as np

from fnf_basicsr.errors import report_errors
from fnf_basicsr.inference.release import convert_release_weights, read_release_weights

# The script's name also when run as ``python -m``: usage lines and error messages name what the user runs.
PROG = 'convert_release_weights.py'


def build_parser():
    parser = argparse.ArgumentParser(
        prog=PROG, description='Convert the authors\' released DeepFnF weights (wts/model.npz of '
        'likesum/deepFnF) to a BasicSR checkpoint OUT.pth plus OUT.yml holding its network_g.',
        epilog='then: fnf-denoise --weights OUT.pth ...; fnf-benchmark "DeepFnF (authors)=OUT.pth" --test-set '
        'data/testset --out reports/release')
    parser.add_argument('npz', help='the released weights, wts/model.npz')
    parser.add_argument('out', help='the checkpoint to write, e.g. weights/deepfnf_release.pth')
    parser.add_argument('--overwrite', action='store_true', help='replace OUT.pth and OUT.yml if they exist.')
    return parser


def main(argv=None):
    """Convert; known failures print one line and exit 2."""
    args = build_parser().parse_args(argv)
    with report_errors(PROG):
        checkpoint, option_file, options = convert_release_weights(args.npz, args.out, args.overwrite)
        count = sum(int(np.prod(array.shape)) for array in read_release_weights(args.npz).values())
        print(f'wrote {checkpoint} ({count:,} parameters) and {option_file} (network_g: '
              f'{", ".join(f"{k}={v}" for k, v in options.items())})')


if __name__ == '__main__':
    main()
