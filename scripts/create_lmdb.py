#!/usr/bin/env python
"""Pack a FAID-format folder into an LMDB of overlapping 16-bit crops for FlashNoFlashDataset.

Every image pair is cut into ``--crop-size`` squares every ``--stride`` pixels (the last row and
column of crops are moved in to end at the image border, so the whole image is covered; an
image smaller than a crop is stored whole). Each crop becomes two records, ``<crop>_ambient``
and ``<crop>_flash``, lossless 16-bit PNG bytes carrying the pair's color metadata in their text
chunks, with ``<crop> = <Name>_y<top>_x<left>``. BasicSR's ``LmdbMaker`` writes the records and
``meta_info.txt``. Afterwards every record is read back and compared bit for bit with the
source pixels and metadata.

Scene selection (``--split``): ``all`` (default), ``train``, ``val`` or ``test``; the paper's 128
test scenes never enter ``all``, ``train`` or ``val``. The validation scenes are those of
``--val-names`` (a text file, one name per line; e.g. the released code's val.txt) or else
``--num-val`` scenes picked by a fixed-seed permutation of the sorted non-test names, the same
selection as FlashNoFlashDataset's ``subset: val`` (``select_names``).

Example:
    python scripts/create_lmdb.py --input datasets/FAID --output datasets/faid_train.lmdb --split train
"""
import argparse
import os
import shutil
import struct
import sys
from pathlib import Path

import numpy as np
from tqdm import tqdm

import fnf_basicsr  # noqa: F401  (first: makes basicsr importable on current torchvision)
from basicsr.utils.lmdb_util import LmdbMaker
from fnf_basicsr.data import faid
from fnf_basicsr.data.fnf_dataset import (LMDB_AMBIENT_SUFFIX, LMDB_FLASH_SUFFIX, SUBSETS, crop_key,
                                          lmdb_crop_keys, select_names)

DEFAULT_CROP_SIZE = 512  # a 448 training crop plus a 32-pixel margin on every side
DEFAULT_STRIDE = 256
PNG_COMPRESSION = 1  # OpenCV's default PNG compression, used by faid.encode_png16; recorded in meta_info
MAP_SIZE_SLACK = 1.25  # LMDB map size over the raw 16-bit bytes (PNG can exceed raw by a few bytes per row)


def crop_positions(length, crop_size, stride):
    """Start offsets of crops along one axis covering ``[0, length)``; ``[0]`` if the axis is shorter."""
    if length <= crop_size:
        return [0]
    starts = list(range(0, length - crop_size + 1, stride))
    if starts[-1] != length - crop_size:
        starts.append(length - crop_size)
    return starts


def png_size(path):
    """(height, width) from a PNG header, without decoding pixels."""
    with open(path, 'rb') as file:
        header = file.read(24)
    if not header.startswith(faid.PNG_SIGNATURE):
        raise faid.FaidFormatError(f'{path}: not a PNG file')
    width, height = struct.unpack('>II', header[16:24])
    return height, width


def plan_crops(input_dir, names, crop_size, stride):
    """``[(name, top, left, height, width)]`` of every crop, in name order."""
    plan = []
    for name in names:
        height, width = png_size(Path(input_dir) / f'{name}{faid.AMBIENT_SUFFIX}')
        crop_h, crop_w = min(crop_size, height), min(crop_size, width)
        for top in crop_positions(height, crop_size, stride):
            for left in crop_positions(width, crop_size, stride):
                plan.append((name, top, left, crop_h, crop_w))
    return plan


def read_pair_u16(input_dir, name):
    """``(ambient_u16, flash_u16, metadata)`` of one scene of a FAID folder."""
    paths = [Path(input_dir) / f'{name}{suffix}' for suffix in (faid.AMBIENT_SUFFIX, faid.FLASH_SUFFIX)]
    return faid.decode_pair(paths[0].read_bytes(), paths[1].read_bytes(), str(paths[0]), str(paths[1]))


def iter_crops(input_dir, plan):
    """Yield ``(key, ambient_crop, flash_crop, metadata)`` following ``plan``; each image is read once."""
    loaded_name, pair = None, None
    for name, top, left, height, width in plan:
        if name != loaded_name:
            loaded_name, pair = name, read_pair_u16(input_dir, name)
        ambient, flash_only, metadata = pair
        window = (slice(top, top + height), slice(left, left + width))
        yield crop_key(name, top, left), ambient[window], flash_only[window], metadata


def create_lmdb(input_dir, lmdb_path, split='all', crop_size=DEFAULT_CROP_SIZE, stride=DEFAULT_STRIDE,
                num_val=128, val_names=None, max_images=None, overwrite=False, progress=True):
    """Write the LMDB, then verify it.

    Args:
        input_dir: FAID-format folder.
        lmdb_path: output folder, must end with ``.lmdb`` (BasicSR's convention).
        split: ``all``, ``train``, ``val`` or ``test`` (see the module docstring).
        crop_size, stride: crop side and step in pixels.
        num_val, val_names: validation selection (see ``select_names``).
        max_images: keep only the first N selected scenes (quick tests).
        overwrite: replace an existing ``lmdb_path``.
        progress: show tqdm progress bars.

    Returns:
        dict with ``scenes``, ``crops``, ``records`` (2 per crop), ``bytes`` (PNG bytes stored),
        ``verified`` (records read back equal).

    Raises:
        FileExistsError: ``lmdb_path`` exists and ``overwrite`` is False.
        RuntimeError: a record read back differs from its source.
    """
    lmdb_path = str(lmdb_path)
    if not lmdb_path.endswith('.lmdb'):
        raise ValueError(f'the LMDB path must end with .lmdb (BasicSR convention), got {lmdb_path}')
    if os.path.exists(lmdb_path):
        if not overwrite:
            raise FileExistsError(f'{lmdb_path} already exists; pass --overwrite to replace it')
        shutil.rmtree(lmdb_path)
    names = select_names(faid.list_faid_names(input_dir), split, num_val=num_val, val_names=val_names)
    if max_images:
        names = names[:max_images]
    if not names:
        raise ValueError(f'{input_dir}: no scenes in split {split!r}; check --split and the folder')
    plan = plan_crops(input_dir, names, crop_size, stride)
    raw_bytes = sum(2 * height * width * 3 * 2 for *_, height, width in plan)
    maker = LmdbMaker(lmdb_path, map_size=int(raw_bytes * MAP_SIZE_SLACK) + 2 ** 24, compress_level=PNG_COMPRESSION)
    stored = 0
    try:
        for key, ambient, flash_only, metadata in tqdm(iter_crops(input_dir, plan), total=len(plan), unit='crop',
                                                      desc=f'write {Path(lmdb_path).name}', disable=not progress):
            text = metadata.to_text()
            for suffix, image in ((LMDB_AMBIENT_SUFFIX, ambient), (LMDB_FLASH_SUFFIX, flash_only)):
                payload = faid.encode_png16(np.ascontiguousarray(image), text)
                maker.put(payload, f'{key}{suffix}', image.shape)
                stored += len(payload)
    finally:
        maker.close()
    verified = verify_lmdb(input_dir, lmdb_path, plan, progress)
    return {'scenes': len(names), 'crops': len(plan), 'records': 2 * len(plan), 'bytes': stored,
            'verified': verified}


def verify_lmdb(input_dir, lmdb_path, plan, progress=True):
    """Read every record back and compare pixels (bit-exact) and metadata with the source.

    Returns:
        The number of records verified; raises RuntimeError listing the first mismatches.
    """
    import lmdb
    expected_keys = [crop_key(name, top, left) for name, top, left, *_ in plan]
    listed = lmdb_crop_keys(lmdb_path)
    if listed != sorted(expected_keys):
        raise RuntimeError(f'{lmdb_path}/meta_info.txt lists {len(listed)} crops, expected {len(expected_keys)}')
    problems, checked = [], 0
    env = lmdb.open(lmdb_path, readonly=True, lock=False, readahead=False)
    try:
        with env.begin(write=False) as txn:
            for key, ambient, flash_only, metadata in tqdm(iter_crops(input_dir, plan), total=len(plan), unit='crop',
                                                          desc='verify', disable=not progress):
                records = [txn.get(f'{key}{suffix}'.encode('ascii'))
                           for suffix in (LMDB_AMBIENT_SUFFIX, LMDB_FLASH_SUFFIX)]
                if any(record is None for record in records):
                    problems.append(f'{key}: record missing')
                    continue
                sources = [f'{lmdb_path}:{key}{suffix}' for suffix in (LMDB_AMBIENT_SUFFIX, LMDB_FLASH_SUFFIX)]
                read_ambient, read_flash, read_metadata = faid.decode_pair(*records, *sources)
                if not (np.array_equal(read_ambient, ambient) and np.array_equal(read_flash, flash_only)):
                    problems.append(f'{key}: pixels differ')
                if read_metadata.to_text() != metadata.to_text():
                    problems.append(f'{key}: color metadata differs')
                checked += 2
    finally:
        env.close()
    if problems:
        raise RuntimeError(f'{lmdb_path}: {len(problems)} record(s) differ from the source: ' + '; '.join(problems[:5]))
    return checked


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--input', required=True, help='FAID-format folder (<Name>_ambient.png, <Name>_flash.png).')
    parser.add_argument('--output', required=True, help='LMDB folder to write; must end with .lmdb.')
    parser.add_argument('--split', choices=SUBSETS, default='all',
                        help='scenes to pack: all (every non-test scene), train, val, or test (the 128 test '
                        'scenes). Default: all.')
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
    parser.add_argument('--max-images', type=int, default=None, help='pack only the first N selected scenes.')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output LMDB.')
    parser.add_argument('--quiet', action='store_true', help='no progress bars.')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    val_names = args.val_names.read_text().split() if args.val_names else None
    try:
        report = create_lmdb(args.input, args.output, args.split, args.crop_size, args.stride, args.num_val,
                             val_names, args.max_images, args.overwrite, progress=not args.quiet)
    except (FileExistsError, FileNotFoundError, ValueError, RuntimeError) as error:
        sys.exit(f'error: {error}')
    print(f'{args.output}: {report["scenes"]} scenes, {report["crops"]} crops, {report["records"]} records '
          f'({report["bytes"] / 2 ** 20:.1f} MiB of PNG); verified {report["verified"]} records bit-exact')


if __name__ == '__main__':
    main()
