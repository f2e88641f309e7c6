"""Write a frozen test set: a test protocol degraded once and stored as files.

Freezing makes evaluations independent of library versions and random-number streams: every
method is scored on the very same noisy inputs. Freeze from a test option file, so that the
dataset options are written once and the set matches the file it is scored with:

    python scripts/data_preparation/freeze_testset.py -opt options/test_fnf.yml

reads ``datasets: test:`` of the file (the paper's protocol: the 128 FAID test scenes, central
448x448 crops, sig_read = 10^-2.6, sig_shot = 10^-1.8, dimming 100, 50, 25, 12.5, one homography
per scene about the image origin as the released code) and writes to its ``frozen_root``. Flags
override single options; without ``-opt`` they describe the whole set (defaults: the dataset's,
i.e. the released code's conventions). ``--displacement-bins`` writes the Fig. 3 sweep (64 scenes
at 50x, each once per bin). The format: :mod:`fnf_basicsr.data.frozen_set`; the writer:
:mod:`fnf_basicsr.data.frozen_writer`.

The run is resumable: a sample whose file exists with the manifest's checksum is skipped.
``--overwrite`` replaces a frozen set written with other options, and only the files that set's
manifest lists; a folder holding anything else, or holding the input data, is never touched.

Examples:
    python scripts/data_preparation/freeze_testset.py -opt options/test_fnf.yml
    python scripts/data_preparation/freeze_testset.py -opt options/test_fnf_fig3.yml
    python scripts/data_preparation/freeze_testset.py -opt options/synthetic/test_fnf.yml \
        --output datasets/frozen/synthetic_test
    python scripts/data_preparation/freeze_testset.py --dataroot datasets/FAID --output datasets/frozen/faid_test \
        --subset test
    python scripts/data_preparation/freeze_testset.py -opt options/srgb_awgn/synthetic/test_fnf.yml
"""
import argparse

from fnf_basicsr.data.degradation import REFERENCE_FRAMES
from fnf_basicsr.data.faid import SPLIT_FILES
from fnf_basicsr.data.dataset_options import DEFAULT_MARGIN, DEGRADATIONS, SCALE_PIVOTS
from fnf_basicsr.data.frozen_writer import SUBSET_CHOICES, freeze, freeze_request
from fnf_basicsr.data.input_layout import INPUT_MODES
from fnf_basicsr.errors import report_errors


def build_parser():
    doc_head, doc_rest = __doc__.split('\n\n', 1)
    parser = argparse.ArgumentParser(description=doc_head, epilog=doc_rest,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', metavar='FILE', help='test option file whose dataset options to freeze.')
    parser.add_argument('--dataset', metavar='NAME',
                        help='which dataset of the option file (key under datasets:). Default: the test one.')
    parser.add_argument('--dataroot', help='FAID-format folder (or LMDB with --io-backend lmdb); required '
                        'without -opt.')
    parser.add_argument('--output', help="folder to write the frozen set to. Default: the dataset's frozen_root.")
    parser.add_argument('--io-backend', choices=('disk', 'lmdb'), help='how to read dataroot.')
    parser.add_argument('--subset', choices=SUBSET_CHOICES,
                        help='scenes to use: auto (without -opt, the default: the 128 paper test scenes when the '
                        'folder holds FAID names, else all, e.g. a synthetic test split), test, all, train, val.')
    parser.add_argument('--crop-size', type=int, help='central crop side. Default: 448.')
    parser.add_argument('--margin', type=int, help=f'pixels read around the crop for the warp. Default: '
                        f'{DEFAULT_MARGIN}.')
    parser.add_argument('--reference', choices=REFERENCE_FRAMES,
                        help='geometric reference (the other image is warped). Default: noflash.')
    parser.add_argument('--input-modes', nargs='+', choices=INPUT_MODES,
                        help='input modes whose frames are stored. Default: all three.')
    parser.add_argument('--dimming-factors', nargs='+', type=float,
                        help='dimming factors. Default: 100 50 25 12.5 (with --displacement-bins: 50).')
    parser.add_argument('--sig-read', type=float, help='read-noise std. Default: 10^-2.6.')
    parser.add_argument('--sig-shot', type=float, help='shot-noise scale. Default: 10^-1.8.')
    parser.add_argument('--seed', type=int, help='base seed of homographies and noise. Default: 0.')
    parser.add_argument('--displacement-bins', nargs='+', type=float,
                        help='Fig. 3 sweep: bin edges of the mean displacement in pixels, e.g. 0 2 4 8 12 16 20.')
    parser.add_argument('--scale-pivot', choices=SCALE_PIVOTS,
                        help='point the homography scales about: image_origin (default, the released code) or '
                        'crop_center.')
    parser.add_argument('--max-images', type=int,
                        help='use only the first N scenes. Default: all (with --displacement-bins: 64).')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a frozen set written there with other options (only its own files).')
    parser.add_argument('--degradation', choices=DEGRADATIONS,
                        help="paper: the paper's raw low-light simulation (default); srgb_awgn: Gaussian noise on the "
                             '8-bit sRGB no-flash image, clean flash (docs/srgb_awgn.md).')
    parser.add_argument('--awgn-sigmas', nargs='+', type=float,
                        help='srgb_awgn noise stds in 8-bit units. Default: 25 50 75.')
    parser.add_argument('--awgn-clip', action='store_true', default=None,
                        help="srgb_awgn: clip the noisy image to [0, 1] (RFFNet's test protocol; RIDFnF does not).")
    parser.add_argument('--split', choices=tuple(SPLIT_FILES),
                        help="which published FAID split --subset reads: paper (128 test scenes, default) or ridfnf "
                             '(256 test / 256 validation).')
    parser.add_argument('--quiet', action='store_true', help='no progress bar.')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    with report_errors('freeze_testset.py'):
        overrides = {key: value for key, value in vars(args).items()
                     if key not in ('opt', 'dataset', 'output', 'overwrite', 'quiet')}
        dataset_opt, output = freeze_request(args.opt, args.dataset, args.output, **overrides)
        written, skipped = freeze(dataset_opt, output, args.overwrite, progress=not args.quiet)
    print(f'{output}: {written} samples written, {skipped} already present and verified')


if __name__ == '__main__':
    main()
