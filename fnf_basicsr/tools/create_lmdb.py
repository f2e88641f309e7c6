"""Pack a FAID-format folder into an LMDB of overlapping 16-bit crops for FlashNoFlashDataset.

Every image pair is cut into ``--crop-size`` squares every ``--stride`` pixels (the last row and
column of crops are moved in to end at the image border, so the whole image is covered; an
image smaller than a crop is stored whole). Each crop becomes two records, ``<crop>_ambient``
and ``<crop>_flash``, the crop's lossless 16-bit pixels with the pair's color metadata, with
``<crop> = <Name>_y<top>_x<left>``; ``meta_info.txt`` lists them as BasicSR's ``LmdbMaker`` does.
``--encoding raw`` (default) stores the pixels uncompressed (reading costs a memory copy; ~1.45x
the bytes of PNG on noisy 16-bit crops), ``--encoding png`` as 16-bit PNGs (BasicSR's choice:
smaller, but decoding them is ~40 % of a 448 px training sample's time). Readers take either.
Afterwards every record is read back and compared bit for bit with the source pixels and metadata.

The LMDB is built in a temporary folder beside ``--output`` and renamed to it only once complete
and verified, so a killed or failed run leaves nothing that training would accept; the next run
removes what dead runs left and starts again. ``--output``'s parent folders are created.

Scene selection (``--split``): ``all`` (default), ``train``, ``val`` or ``test``; the paper's 128
test scenes never enter ``all``, ``train`` or ``val``. The validation scenes are those of
``--val-names`` (a text file, one name per line; e.g. the released code's val.txt) or else
``--num-val`` scenes picked by a fixed-seed permutation of the sorted non-test names, the same
selection as FlashNoFlashDataset's ``subset: val`` (``select_names``).

Example:
    python scripts/data_preparation/create_lmdb.py --input datasets/FAID --output datasets/FAID_lmdb/train.lmdb \
        --split train
    python scripts/data_preparation/create_lmdb.py --input datasets/FAID --output datasets/FAID_lmdb/ridfnf_train.lmdb \
        --split train --faid-split ridfnf
"""
import argparse
from pathlib import Path

from fnf_basicsr.data import faid
from fnf_basicsr.data.dataset_options import SUBSETS
from fnf_basicsr.data.lmdb_store import (DEFAULT_CROP_SIZE, DEFAULT_ENCODING, DEFAULT_STRIDE, ENCODINGS, check_numbers,
                                         create_lmdb)
from fnf_basicsr.errors import report_errors


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='FAID-format folder (<Name>_ambient.png, <Name>_flash.png).')
    parser.add_argument('--output', required=True, help='LMDB folder to write; must end with .lmdb.')
    parser.add_argument('--split', choices=SUBSETS, default='all',
                        help='scenes to pack: all (every non-test scene), train, val, or test (the 128 test '
                        'scenes). Default: all.')
    parser.add_argument('--faid-split', choices=tuple(faid.SPLIT_FILES), default='paper',
                        help="which published split --split selects from: paper (DeepFnF's 128 test scenes) or "
                        'ridfnf (RIDFnF\'s 256 test and 256 validation scenes, for degradation: srgb_awgn). '
                        'Default: paper.')
    parser.add_argument('--crop-size', type=int, default=DEFAULT_CROP_SIZE,
                        help=f'crop side in pixels; keep it >= training crop_size + 2 * margin. '
                        f'Default: {DEFAULT_CROP_SIZE}.')
    parser.add_argument('--stride', type=int, default=DEFAULT_STRIDE,
                        help=f'step between crops in pixels (smaller: more overlap). Default: {DEFAULT_STRIDE}.')
    parser.add_argument('--num-val', type=int, default=128,
                        help='number of validation scenes picked deterministically when --val-names is not '
                        'given. Default: 128 (the paper).')
    parser.add_argument('--val-names', type=Path, default=None,
                        help='text file listing the validation scene names, one per line.')
    parser.add_argument('--encoding', choices=ENCODINGS, default=DEFAULT_ENCODING,
                        help='record encoding: raw (uncompressed, fastest to read) or png (smaller, slower to '
                        f'decode). Default: {DEFAULT_ENCODING}.')
    parser.add_argument('--max-images', type=int, default=None, help='pack only the first N selected scenes.')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output LMDB.')
    parser.add_argument('--quiet', action='store_true', help='no progress bars.')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    with report_errors('create_lmdb.py'):
        check_numbers(args.crop_size, args.stride, args.num_val, args.max_images)
        val_names = faid.read_file_bytes(args.val_names).decode().split() if args.val_names else None
        report = create_lmdb(args.input, args.output, args.split, args.crop_size, args.stride, args.num_val,
                             val_names, args.max_images, args.overwrite, progress=not args.quiet,
                             encoding=args.encoding, faid_split=args.faid_split)
    print(f'{args.output}: {report["scenes"]} scenes, {report["crops"]} crops, {report["records"]} records '
          f'({report["bytes"] / 2 ** 20:.1f} MiB, {args.encoding}); verified {report["verified"]} records bit-exact')


if __name__ == '__main__':
    main()
