#!/usr/bin/env python
"""Pack a FAID-format folder into an LMDB of overlapping 16-bit crops for FlashNoFlashDataset.

Every image pair is cut into ``--crop-size`` squares every ``--stride`` pixels (the last row and
column of crops are moved in to end at the image border, so the whole image is covered; an
image smaller than a crop is stored whole). Each crop becomes two records, ``<crop>_ambient``
and ``<crop>_flash``, lossless 16-bit PNG bytes carrying the pair's color metadata in their text
chunks, with ``<crop> = <Name>_y<top>_x<left>``; ``meta_info.txt`` lists them as BasicSR's
``LmdbMaker`` does. Afterwards every record is read back and compared bit for bit with the
source pixels and metadata.

The LMDB is built in a temporary folder beside ``--output`` and renamed to it only once complete
and verified, so a killed or failed run leaves nothing that training would accept; the next run
removes what dead runs left and starts again. ``--output``'s parent folders are created.

Scene selection (``--split``): ``all`` (default), ``train``, ``val`` or ``test``; the paper's 128
test scenes never enter ``all``, ``train`` or ``val``. The validation scenes are those of
``--val-names`` (a text file, one name per line; e.g. the released code's val.txt) or else
``--num-val`` scenes picked by a fixed-seed permutation of the sorted non-test names, the same
selection as FlashNoFlashDataset's ``subset: val`` (``select_names``).

Example:
    python scripts/create_lmdb.py --input datasets/FAID --output datasets/FAID_lmdb/train.lmdb --split train
"""
import argparse
import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
from tqdm import tqdm

import fnf_basicsr  # noqa: F401  (first: makes basicsr importable on current torchvision)
from fnf_basicsr.data import faid, lmdb_store
from fnf_basicsr.data.fnf_dataset import (LMDB_AMBIENT_SUFFIX, LMDB_FLASH_SUFFIX, LMDB_META_INFO, SUBSETS, crop_key,
                                          lmdb_crop_keys, select_names)
from fnf_basicsr.errors import ConfigError, DataError, OutputError, OutputExistsError, report_errors
from fnf_basicsr.utils.files import (fault_point, prepare_output_folder, remove_stale_temporaries, temporary_path,
                                     write_atomically)

DEFAULT_CROP_SIZE = 512  # a 448 training crop plus a 32-pixel margin on every side
DEFAULT_STRIDE = 256
PNG_COMPRESSION = 1  # OpenCV's default PNG compression, used by faid.encode_png16; recorded in meta_info
MAP_SIZE_SLACK = 1.25  # LMDB map size over the raw 16-bit bytes (PNG can exceed raw by a few bytes per row)
COMMIT_EVERY = 2500  # crops per LMDB transaction (BasicSR's LmdbMaker: 5000 records)


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
    try:
        with open(path, 'rb') as file:
            header = file.read(24)
    except OSError as error:
        raise DataError(f'{path}: cannot read it ({error.strerror or error})') from None
    if not header:
        raise faid.FaidFormatError(f'{path}: empty file (0 bytes), e.g. from an interrupted copy; copy it again')
    if len(header) < 24 or not header.startswith(faid.PNG_SIGNATURE) or header[12:16] != b'IHDR':
        raise faid.FaidFormatError(f'{path}: not a decodable PNG file (truncated header or not a PNG); copy or '
                                   'download it again')
    width, height = struct.unpack('>II', header[16:24])
    if not (width and height):
        raise faid.FaidFormatError(f'{path}: PNG header says {width}x{height} pixels; copy or download it again')
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
    return faid.decode_pair(*(faid.read_file_bytes(path) for path in paths), str(paths[0]), str(paths[1]))


def iter_crops(input_dir, plan):
    """Yield ``(key, ambient_crop, flash_crop, metadata)`` following ``plan``; each image is read once."""
    loaded_name, pair = None, None
    for name, top, left, height, width in plan:
        if name != loaded_name:
            loaded_name, pair = name, read_pair_u16(input_dir, name)
        ambient, flash_only, metadata = pair
        window = (slice(top, top + height), slice(left, left + width))
        yield crop_key(name, top, left), ambient[window], flash_only[window], metadata


def check_numbers(crop_size, stride, num_val, max_images):
    """Refuse crop sizes, strides and counts that cannot make a dataset (before any work)."""
    for label, value, low in (('--crop-size', crop_size, 1), ('--stride', stride, 1), ('--num-val', num_val, 0),
                              ('--max-images', max_images, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f'{label} must be an integer >= {low}, got {value!r}')


def create_lmdb(input_dir, lmdb_path, split='all', crop_size=DEFAULT_CROP_SIZE, stride=DEFAULT_STRIDE,
                num_val=128, val_names=None, max_images=None, overwrite=False, progress=True):
    """Write the LMDB in a temporary sibling folder, verify it, then give it its final name.

    A killed or failed run therefore never leaves anything under ``lmdb_path``; the next run
    removes the temporaries of dead runs and starts again. The last file written before the
    rename is the completion record that readers require (:func:`fnf_basicsr.data.lmdb_store.check_lmdb`).

    Args:
        input_dir: FAID-format folder.
        lmdb_path: output folder, must end with ``.lmdb`` (BasicSR's convention); parents are created.
        split: ``all``, ``train``, ``val`` or ``test`` (see the module docstring).
        crop_size, stride: crop side and step in pixels.
        num_val, val_names: validation selection (see ``select_names``).
        max_images: keep only the first N selected scenes (quick tests).
        overwrite: replace an existing ``lmdb_path`` (only once the new one is complete).
        progress: show tqdm progress bars.

    Returns:
        dict with ``scenes``, ``crops``, ``records`` (2 per crop), ``bytes`` (PNG bytes stored),
        ``verified`` (records read back equal).

    Raises:
        ConfigError: invalid numbers or an output name without ``.lmdb``.
        OutputExistsError: ``lmdb_path`` exists and ``overwrite`` is False.
        OutputError: the output folder cannot be created or written (also a full disk).
        DataError: an input is damaged, or a record read back differs from its source.
    """
    check_numbers(crop_size, stride, num_val, max_images)
    lmdb_path = Path(lmdb_path)
    if lmdb_path.suffix != '.lmdb':
        raise ConfigError(f'the LMDB path must end with .lmdb (BasicSR convention), got {lmdb_path}')
    if lmdb_path.exists() and not overwrite:
        raise OutputExistsError(f'{lmdb_path} already exists; pass --overwrite to replace it')
    prepare_output_folder(lmdb_path.parent, 'LMDB')
    remove_stale_temporaries(lmdb_path)
    names = select_names(faid.list_faid_names(input_dir), split, num_val=num_val, val_names=val_names)
    if max_images:
        names = names[:max_images]
    if not names:
        raise ConfigError(f'{input_dir}: no scenes in split {split!r}; check --split and the folder')
    plan = plan_crops(input_dir, names, crop_size, stride)
    tmp = temporary_path(lmdb_path)
    try:
        stored = write_records(input_dir, tmp, plan, progress, lmdb_path.name)
        verified = verify_lmdb(input_dir, tmp, plan, progress)
        record = {'format': 'fnf-basicsr crops', 'scenes': len(names), 'crops': len(plan), 'records': 2 * len(plan),
                  'crop_size': crop_size, 'stride': stride, 'data_bytes': (tmp / lmdb_store.DATA_FILE).stat().st_size}
        write_atomically(tmp / lmdb_store.COMPLETE_MARKER, json.dumps(record, indent=1).encode())
        fault_point('lmdb_publish')
        publish(tmp, lmdb_path, overwrite)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return {'scenes': len(names), 'crops': len(plan), 'records': 2 * len(plan), 'bytes': stored,
            'verified': verified}


def write_records(input_dir, lmdb_path, plan, progress=True, label=None):
    """Write every crop of ``plan`` into a new LMDB at ``lmdb_path``, then ``meta_info.txt``.

    Returns:
        The number of PNG bytes stored.

    Raises:
        OutputError: LMDB or the disk refused a write (full disk, map full, ...).
    """
    import lmdb
    raw_bytes = sum(2 * height * width * 3 * 2 for *_, height, width in plan)
    meta_lines, stored = [], 0
    try:
        env = lmdb.open(str(lmdb_path), map_size=int(raw_bytes * MAP_SIZE_SLACK) + 2 ** 24)
        try:
            txn = env.begin(write=True)
            crops = tqdm(iter_crops(input_dir, plan), total=len(plan), unit='crop', desc=f'write {label or lmdb_path}',
                         disable=not progress)
            for count, (key, ambient, flash_only, metadata) in enumerate(crops, 1):
                text = metadata.to_text()
                for suffix, image in ((LMDB_AMBIENT_SUFFIX, ambient), (LMDB_FLASH_SUFFIX, flash_only)):
                    payload = faid.encode_png16(np.ascontiguousarray(image), text)
                    txn.put(f'{key}{suffix}'.encode('ascii'), payload)
                    meta_lines.append(f'{key}{suffix}.png ({image.shape[0]},{image.shape[1]},3) {PNG_COMPRESSION}\n')
                    stored += len(payload)
                    fault_point('lmdb_put')
                if count % COMMIT_EVERY == 0:
                    txn.commit()
                    txn = env.begin(write=True)
            txn.commit()
            env.sync(True)
        finally:
            env.close()
    except (lmdb.Error, OSError) as error:
        raise OutputError(f'cannot write the LMDB {lmdb_path}: {error}; free disk space or choose another '
                          'output folder') from None
    write_atomically(Path(lmdb_path) / LMDB_META_INFO, ''.join(meta_lines).encode())
    return stored


def publish(tmp, lmdb_path, overwrite):
    """Rename the finished LMDB ``tmp`` to ``lmdb_path``; an old one is moved aside first, then deleted."""
    if not overwrite:
        try:
            os.rename(tmp, lmdb_path)  # fails if lmdb_path appeared meanwhile (a non-empty folder)
        except OSError:
            raise OutputExistsError(f'{lmdb_path} already exists; pass --overwrite to replace it') from None
        return
    old = temporary_path(lmdb_path)
    if lmdb_path.exists():
        os.rename(lmdb_path, old)
    try:
        os.rename(tmp, lmdb_path)
    finally:
        if old.exists():
            shutil.rmtree(old) if old.is_dir() else old.unlink()


def verify_lmdb(input_dir, lmdb_path, plan, progress=True):
    """Read every record back and compare pixels (bit-exact) and metadata with the source.

    Returns:
        The number of records verified; raises DataError listing the first mismatches.
    """
    import lmdb
    lmdb_path = str(lmdb_path)
    expected_keys = [crop_key(name, top, left) for name, top, left, *_ in plan]
    listed = lmdb_crop_keys(lmdb_path, require_complete=False)
    if listed != sorted(expected_keys):
        raise DataError(f'{lmdb_path}/meta_info.txt lists {len(listed)} crops, expected {len(expected_keys)}')
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
        raise DataError(f'{lmdb_path}: {len(problems)} record(s) differ from the source: ' + '; '.join(problems[:5]))
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
    with report_errors('create_lmdb.py'):
        check_numbers(args.crop_size, args.stride, args.num_val, args.max_images)
        val_names = faid.read_file_bytes(args.val_names).decode().split() if args.val_names else None
        report = create_lmdb(args.input, args.output, args.split, args.crop_size, args.stride, args.num_val,
                             val_names, args.max_images, args.overwrite, progress=not args.quiet)
    print(f'{args.output}: {report["scenes"]} scenes, {report["crops"]} crops, {report["records"]} records '
          f'({report["bytes"] / 2 ** 20:.1f} MiB of PNG); verified {report["verified"]} records bit-exact')


if __name__ == '__main__':
    main()
