"""The LMDB crop layout in one place: keys, writer, verification, and the checks readers make.

Layout (what ``scripts/data_preparation/create_lmdb.py`` writes and FlashNoFlashDataset reads): two records per
crop, ``<crop>_ambient`` and ``<crop>_flash``, each the crop's 16-bit pixels with the pair's color
metadata; ``<crop>`` is ``<Name>_y<top>_x<left>``, the crop's position in the original image
(:func:`crop_key`); ``meta_info.txt`` lists ``<key>.<encoding> (h,w,c) <compression>`` as BasicSR's
LMDB tools write it; :data:`COMPLETE_MARKER` is the last file written, once every record has been
read back and compared with its source.

Two record encodings (:data:`ENCODINGS`), told apart by their first bytes, so readers need no option:

* ``raw`` (the default): :data:`RAW_MAGIC`, a little-endian u32 header length, a JSON header
  ``{"shape": [h, w, 3], "text": {...}}`` (the color metadata as the PNG text chunks hold it), then
  the pixels, little-endian uint16 RGB in row-major (h, w, 3) order. Reading is a memory copy:
  decoding 16-bit PNGs was about 40 % of a training sample's time at 448 px, and PNG saves only
  ~30 % of the bytes on noisy 16-bit images.
* ``png``: lossless 16-bit PNG bytes with the metadata in text chunks (BasicSR's choice, smaller).

:func:`create_lmdb` builds an LMDB in a temporary folder and gives it its final name only once it
is complete and verified. Readers call :func:`check_lmdb` before opening one, which refuses
* a folder without the marker (the run that wrote it was killed or failed, or an old build);
* a ``data.mdb`` shorter than its own header says: LMDB maps the file into memory, and reading a
  page past the end of a truncated file kills the process with SIGBUS, so the size must be
  checked before the first read (the header's meta pages give the page size and the last page);
* a file that is not an LMDB at all.

:func:`lmdb_errors` turns py-lmdb's errors (``MDB_CORRUPTED``, ``MDB_PAGE_NOTFOUND``, ...) into
:class:`~fnf_basicsr.errors.DataError` naming the LMDB.
"""
import contextlib
import json
import os
import re
import struct
from pathlib import Path

import numpy as np
from tqdm import tqdm

from fnf_basicsr.data import faid
from fnf_basicsr.data.scene_selection import select_names
from fnf_basicsr.errors import ConfigError, DataError, MissingInputError, OutputError, OutputExistsError
from fnf_basicsr.utils.files import (check_separate, fault_point, owned_entries, prepare_output_folder, remove_owned,
                                     remove_stale_temporaries, temporary_path, write_atomically)

LMDB_AMBIENT_SUFFIX = '_ambient'
LMDB_FLASH_SUFFIX = '_flash'
LMDB_META_INFO = 'meta_info.txt'
_CROP_KEY = re.compile(r'^(?P<name>.+)_y(?P<top>\d+)_x(?P<left>\d+)$')
COMPLETE_MARKER = 'fnf_lmdb_complete.json'
DATA_FILE = 'data.mdb'
ENCODINGS = ('raw', 'png')
DEFAULT_ENCODING = 'raw'
RAW_MAGIC = b'FNFRAW16'
_RAW_HEADER_LENGTH = struct.Struct('<I')
REBUILD = 'rebuild it with scripts/data_preparation/create_lmdb.py --overwrite'
# Every file an LMDB folder of ours holds: --overwrite replaces a folder holding nothing else.
LMDB_FILES = (DATA_FILE, 'lock.mdb', LMDB_META_INFO, COMPLETE_MARKER)

# LMDB 0.9 on-disk layout (mdb.c): pages 0 and 1 are meta pages, a 16-byte page header followed by
# MDB_meta {magic u32, version u32, address, mapsize, dbs[2] (48 bytes each), last_pg, txnid};
# the page size is stored in dbs[FREE_DBI].md_pad, the first field of the first MDB_db.
_MAGIC = 0xBEEFC0DE
_PAGE_HEADER = 16
_META = struct.Struct('<IIQQ48s48sQQ')


def expected_data_size(data_path):
    """The smallest size ``data.mdb`` can have according to its own meta pages, or None if unknown.

    Raises:
        DataError: the file is too short for its header, or is not an LMDB.
    """
    data_path = Path(data_path)
    with open(data_path, 'rb') as file:
        first = file.read(_PAGE_HEADER + _META.size)
        if len(first) < _PAGE_HEADER + _META.size:
            raise DataError(f'{data_path} is truncated ({data_path.stat().st_size} bytes, shorter than an LMDB '
                            f'header); {REBUILD}')
        metas = [_META.unpack_from(first, _PAGE_HEADER)]
        if metas[0][0] != _MAGIC:
            raise DataError(f'{data_path} is not an LMDB data file (bad magic number); {REBUILD}')
        page_size = struct.unpack_from('<I', metas[0][4])[0]
        if metas[0][1] != 1 or not 512 <= page_size <= 1 << 16:
            return None  # another LMDB format version: leave the check to LMDB itself
        file.seek(page_size)
        second = file.read(_PAGE_HEADER + _META.size)
    if len(second) < _PAGE_HEADER + _META.size:
        raise DataError(f'{data_path} is truncated (it ends inside its second header page); {REBUILD}')
    metas.append(_META.unpack_from(second, _PAGE_HEADER))
    newest = max((meta for meta in metas if meta[0] == _MAGIC), key=lambda meta: meta[7])
    return (newest[6] + 1) * page_size


def check_lmdb(lmdb_path):
    """Refuse an LMDB folder that is unfinished, truncated or not an LMDB (see the module docstring).

    Returns:
        The completion record (dict) written by ``scripts/data_preparation/create_lmdb.py``.

    Raises:
        MissingInputError: the folder does not exist.
        DataError: the folder is unfinished, truncated or not an LMDB.
    """
    lmdb_path = Path(lmdb_path)
    if not lmdb_path.is_dir():
        raise MissingInputError(f'LMDB {lmdb_path} does not exist (or is not a folder); build it with '
                                'scripts/data_preparation/create_lmdb.py')
    marker = lmdb_path / COMPLETE_MARKER
    try:
        record = json.loads(marker.read_text())
    except FileNotFoundError:
        raise DataError(f'{lmdb_path} is an unfinished LMDB (no {COMPLETE_MARKER}: the run that wrote it was '
                        f'interrupted or failed, or it predates that check); {REBUILD}') from None
    except (OSError, ValueError) as error:
        raise DataError(f'{marker} is unreadable ({error}); {REBUILD}') from None
    data_path = lmdb_path / DATA_FILE
    if not data_path.is_file():
        raise DataError(f'{data_path} is missing; {REBUILD}')
    size = data_path.stat().st_size
    needed = max(int(record.get('data_bytes', 0)) if isinstance(record, dict) else 0,
                 expected_data_size(data_path) or 0)
    if size < needed:
        raise DataError(f'{data_path} is truncated: {size} bytes, its header needs at least {needed} (a copy or '
                        f'download stopped early, or the disk filled up); copy it again or {REBUILD}')
    return record


@contextlib.contextmanager
def lmdb_errors(lmdb_path):
    """Re-raise py-lmdb's errors inside the block as DataError naming ``lmdb_path``."""
    import lmdb
    try:
        yield
    except lmdb.Error as error:
        raise DataError(f'LMDB {lmdb_path} is damaged ({type(error).__name__}: {error}); {REBUILD}') from None


def crop_key(name, top, left):
    """LMDB key of the crop of image ``name`` whose top-left pixel is at (``top``, ``left``)."""
    return f'{name}_y{int(top):05d}_x{int(left):05d}'


def parse_crop_key(key):
    """``(name, top, left)`` of an LMDB crop key; a key without a position is a whole image at (0, 0)."""
    match = _CROP_KEY.match(key)
    if match is None:
        return key, 0, 0
    return match['name'], int(match['top']), int(match['left'])


def lmdb_crop_keys(lmdb_path, require_complete=True):
    """Sorted crop keys listed in an LMDB's ``meta_info.txt`` (records ``<crop>_ambient.png``).

    With ``require_complete`` (readers), an unfinished, truncated or foreign LMDB is refused first
    (:func:`check_lmdb`): opening a truncated one could end in SIGBUS.
    """
    if require_complete:
        check_lmdb(lmdb_path)
    meta = Path(lmdb_path) / LMDB_META_INFO
    if not meta.is_file():
        raise FileNotFoundError(f'{meta} does not exist: {lmdb_path} is not an LMDB written by '
                                f'scripts/data_preparation/create_lmdb.py (or BasicSR\'s LmdbMaker); build it with '
                                f'scripts/data_preparation/create_lmdb.py')
    suffixes = tuple(f'{LMDB_AMBIENT_SUFFIX}.{encoding}' for encoding in ENCODINGS)
    records = [line.split()[0] for line in meta.read_text().splitlines() if line.strip()]
    keys = sorted(record.rsplit('.', 1)[0][:-len(LMDB_AMBIENT_SUFFIX)] for record in records
                  if record.endswith(suffixes))
    if not keys:
        raise ValueError(f'{meta} lists no <crop>{LMDB_AMBIENT_SUFFIX}.png or .raw records ({len(records)} lines); '
                         f'rebuild the LMDB with scripts/data_preparation/create_lmdb.py')
    return keys


def encode_record(image_u16, text, encoding=DEFAULT_ENCODING):
    """One LMDB record: an (h, w, 3) uint16 RGB crop and its metadata text in ``encoding``."""
    if encoding == 'png':
        return faid.encode_png16(image_u16, text)
    image_u16 = np.ascontiguousarray(image_u16, dtype='<u2')
    header = json.dumps({'shape': list(image_u16.shape), 'text': dict(text or {})}).encode()
    return RAW_MAGIC + _RAW_HEADER_LENGTH.pack(len(header)) + header + image_u16.tobytes()


def decode_raw_record(data, source):
    """``(image_u16, text)`` of a ``raw`` record (read-only array over ``data``).

    Raises:
        DataError: a truncated or malformed record, named by ``source``.
    """
    data = memoryview(data)
    start = len(RAW_MAGIC) + _RAW_HEADER_LENGTH.size
    try:
        (length,) = _RAW_HEADER_LENGTH.unpack_from(data, len(RAW_MAGIC))
        header = json.loads(bytes(data[start:start + length]))
        shape = tuple(int(size) for size in header['shape'])
        text = {str(key): str(value) for key, value in header['text'].items()}
    except (struct.error, ValueError, KeyError, TypeError, AttributeError):
        raise DataError(f'{source}: damaged raw LMDB record (bad header); {REBUILD}') from None
    pixels = data[start + length:]
    if len(shape) != 3 or shape[2] != 3 or pixels.nbytes != 2 * int(np.prod(shape)):
        raise DataError(f'{source}: raw LMDB record holds {pixels.nbytes} pixel bytes, its header says {shape} '
                        f'uint16 (truncated?); {REBUILD}')
    return np.frombuffer(pixels, dtype='<u2').reshape(shape), text


def is_raw_record(data):
    """Whether LMDB record bytes are in the ``raw`` encoding (else PNG)."""
    return bytes(data[:len(RAW_MAGIC)]) == RAW_MAGIC


def decode_record_pair(ambient_bytes, flash_bytes, ambient_source, flash_source):
    """``(ambient, flash_only, metadata)`` of a crop's two records, whichever encoding wrote them."""
    if not is_raw_record(ambient_bytes):
        return faid.decode_pair(ambient_bytes, flash_bytes, ambient_source, flash_source)
    ambient, text = decode_raw_record(ambient_bytes, ambient_source)
    if not is_raw_record(flash_bytes):
        raise DataError(f'{flash_source}: not a raw record like {ambient_source}; {REBUILD}')
    flash_only, _ = decode_raw_record(flash_bytes, flash_source)
    if ambient.shape != flash_only.shape:
        raise DataError(f'{ambient_source} is {ambient.shape} but {flash_source} is {flash_only.shape}; {REBUILD}')
    return ambient, flash_only, faid.ColorMetadata.from_text(text, ambient_source)


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
                num_val=128, val_names=None, max_images=None, overwrite=False, progress=True,
                encoding=DEFAULT_ENCODING, faid_split='paper'):
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
        encoding: record encoding, ``raw`` (fast to read) or ``png`` (smaller); see the module docstring.
        faid_split: the published split ``split`` selects from: ``paper`` or ``ridfnf`` (``select_names``).

    Returns:
        dict with ``scenes``, ``crops``, ``records`` (2 per crop), ``bytes`` (record bytes stored),
        ``verified`` (records read back equal).

    Raises:
        ConfigError: invalid numbers or an output name without ``.lmdb``.
        OutputExistsError: ``lmdb_path`` exists and ``overwrite`` is False.
        OutputError: the output folder cannot be created or written (also a full disk).
        DataError: an input is damaged, or a record read back differs from its source.
    """
    check_numbers(crop_size, stride, num_val, max_images)
    if encoding not in ENCODINGS:
        raise ConfigError(f'LMDB record encoding must be one of {list(ENCODINGS)}, got {encoding!r}')
    lmdb_path = Path(lmdb_path)
    if lmdb_path.suffix != '.lmdb':
        raise ConfigError(f'the LMDB path must end with .lmdb (BasicSR convention), got {lmdb_path}')
    check_separate(lmdb_path, [input_dir], '--output', 'write the LMDB outside the input folder')
    if lmdb_path.exists() or lmdb_path.is_symlink():
        if not overwrite:
            raise OutputExistsError(f'{lmdb_path} already exists; pass --overwrite to replace it')
        check_replaceable(lmdb_path)
    prepare_output_folder(lmdb_path.parent, 'LMDB')
    remove_stale_temporaries(lmdb_path, contents=LMDB_FILES)
    names = select_names(faid.list_faid_names(input_dir), split, num_val=num_val, val_names=val_names,
                         split=faid_split)
    if max_images:
        names = names[:max_images]
    if not names:
        raise ConfigError(f'{input_dir}: no scenes in split {split!r}; check --split and the folder')
    plan = plan_crops(input_dir, names, crop_size, stride)
    tmp = temporary_path(lmdb_path)
    try:
        stored = write_records(input_dir, tmp, plan, progress, lmdb_path.name, encoding)
        verified = verify_lmdb(input_dir, tmp, plan, progress)
        record = {'format': 'fnf-basicsr crops', 'scenes': len(names), 'crops': len(plan), 'records': 2 * len(plan),
                  'crop_size': crop_size, 'stride': stride, 'encoding': encoding,
                  'data_bytes': (tmp / DATA_FILE).stat().st_size}
        write_atomically(tmp / COMPLETE_MARKER, json.dumps(record, indent=1).encode())
        fault_point('lmdb_publish')
        publish(tmp, lmdb_path, overwrite)
    finally:
        remove_owned(tmp.parent, [tmp.name], LMDB_FILES)
    return {'scenes': len(names), 'crops': len(plan), 'records': 2 * len(plan), 'bytes': stored,
            'verified': verified}


def write_records(input_dir, lmdb_path, plan, progress=True, label=None, encoding=DEFAULT_ENCODING):
    """Write every crop of ``plan`` into a new LMDB at ``lmdb_path``, then ``meta_info.txt``.

    Returns:
        The number of record bytes stored.

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
                    payload = encode_record(np.ascontiguousarray(image), text, encoding)
                    txn.put(f'{key}{suffix}'.encode('ascii'), payload)
                    compression = PNG_COMPRESSION if encoding == 'png' else 0
                    meta_lines.append(f'{key}{suffix}.{encoding} ({image.shape[0]},{image.shape[1]},3) {compression}\n')
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


def check_replaceable(lmdb_path):
    """Refuse to replace anything but an LMDB folder holding only the files an LMDB of ours holds."""
    try:
        owned_entries(lmdb_path.parent, [lmdb_path.name], LMDB_FILES)
    except DataError:
        raise OutputExistsError(f'{lmdb_path} exists and is not an LMDB this command wrote (a file, a link, or a '
                                f'folder holding other files than {list(LMDB_FILES)}); choose another --output '
                                '(nothing in it is deleted, not even with --overwrite)') from None


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
        check_replaceable(lmdb_path)  # again: it may have changed during the packing
        os.rename(lmdb_path, old)
    try:
        os.rename(tmp, lmdb_path)
    finally:
        remove_owned(old.parent, [old.name], LMDB_FILES)


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
                read_ambient, read_flash, read_metadata = decode_record_pair(*records, *sources)
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
