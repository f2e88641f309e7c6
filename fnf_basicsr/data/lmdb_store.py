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
  the pixels, little-endian uint16 RGB in row-major (h, w, 3) order. Reading is a memory copy,
  where decoding 16-bit PNGs was a large share of a training sample's time, and PNG saves few of
  the bytes of noisy 16-bit images (the figures: docs/speed.md, "Moved from docstrings").
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
from __future__ import annotations

import contextlib
import json
import os
import re
import struct
from pathlib import Path
from typing import Iterable, Iterator, Sequence

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


def expected_data_size(data_path: str | Path) -> int | None:
    """The smallest size ``data.mdb`` can have according to its own meta pages, or None if unknown.

    Args:
        data_path: an LMDB's ``data.mdb``.

    Returns:
        ``(last page + 1) * page size`` of the newest meta page, or None for another LMDB format version.

    Raises:
        DataError: the file is too short for its header, or is not an LMDB.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / DATA_FILE).write_bytes(b'\\0' * 8)
        ...     try:
        ...         expected_data_size(Path(folder) / DATA_FILE)
        ...     except DataError as error:
        ...         print(str(error).split('(')[1].split(')')[0])
        8 bytes, shorter than an LMDB header
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


def check_lmdb(lmdb_path: str | Path) -> dict:
    """Refuse an LMDB folder that is unfinished, truncated or not an LMDB (see the module docstring).

    Args:
        lmdb_path: the LMDB folder.

    Returns:
        The completion record (dict) written by ``scripts/data_preparation/create_lmdb.py``.

    Raises:
        MissingInputError: the folder does not exist.
        DataError: the folder is unfinished, truncated or not an LMDB.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((32, 32, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(Path(folder) / 'scenes', 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     _ = create_lmdb(Path(folder) / 'scenes', Path(folder) / 'crops.lmdb', crop_size=32, progress=False)
        ...     record = check_lmdb(Path(folder) / 'crops.lmdb')
        >>> record['crops'], record['encoding']
        (1, 'raw')
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
def lmdb_errors(lmdb_path: str | Path) -> Iterator[None]:
    """Re-raise py-lmdb's errors inside the block as DataError naming ``lmdb_path``.

    Args:
        lmdb_path: the LMDB, named in the message.

    Raises:
        DataError: py-lmdb raised inside the block.

    Example:
        >>> import lmdb
        >>> try:
        ...     with lmdb_errors('crops.lmdb'):
        ...         raise lmdb.CorruptedError('MDB_CORRUPTED')
        ... except DataError as error:
        ...     print(str(error).split(';')[0])
        LMDB crops.lmdb is damaged (CorruptedError: MDB_CORRUPTED)
    """
    import lmdb
    try:
        yield
    except lmdb.Error as error:
        raise DataError(f'LMDB {lmdb_path} is damaged ({type(error).__name__}: {error}); {REBUILD}') from None


def crop_key(name: str, top: int, left: int) -> str:
    """LMDB key of the crop of image ``name`` whose top-left pixel is at (``top``, ``left``).

    Args:
        name: the scene name.
        top: the crop's first row in the image.
        left: the crop's first column in the image.

    Returns:
        ``<name>_y<top:05d>_x<left:05d>``.

    Example:
        >>> crop_key('Toys_242', 256, 0)
        'Toys_242_y00256_x00000'
    """
    return f'{name}_y{int(top):05d}_x{int(left):05d}'


def parse_crop_key(key: str) -> tuple[str, int, int]:
    """``(name, top, left)`` of an LMDB crop key; a key without a position is a whole image at (0, 0).

    Args:
        key: a crop key (:func:`crop_key`) or a scene name.

    Returns:
        ``(name, top, left)``.

    Example:
        >>> parse_crop_key('Toys_242_y00256_x00000'), parse_crop_key('Toys_242')
        (('Toys_242', 256, 0), ('Toys_242', 0, 0))
    """
    match = _CROP_KEY.match(key)
    if match is None:
        return key, 0, 0
    return match['name'], int(match['top']), int(match['left'])


def lmdb_crop_keys(lmdb_path: str | Path, require_complete: bool = True) -> list[str]:
    """Sorted crop keys listed in an LMDB's ``meta_info.txt`` (records ``<crop>_ambient.png``).

    With ``require_complete`` (readers), an unfinished, truncated or foreign LMDB is refused first
    (:func:`check_lmdb`): opening a truncated one could end in SIGBUS.

    Args:
        lmdb_path: the LMDB folder.
        require_complete: check the folder with :func:`check_lmdb` first.

    Returns:
        The crop keys (:func:`crop_key`), sorted.

    Raises:
        FileNotFoundError: no ``meta_info.txt``.
        ValueError: it lists no ambient records.
        MissingInputError, DataError: see :func:`check_lmdb`.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / LMDB_META_INFO).write_text('A_y00000_x00000_ambient.raw (8,8,3) 0\\n'
        ...                                                     'A_y00000_x00000_flash.raw (8,8,3) 0\\n')
        ...     lmdb_crop_keys(folder, require_complete=False)
        ['A_y00000_x00000']
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


def encode_record(image_u16: np.ndarray, text: dict[str, str] | None, encoding: str = DEFAULT_ENCODING) -> bytes:
    """One LMDB record: an (h, w, 3) uint16 RGB crop and its metadata text in ``encoding``.

    Args:
        image_u16: (h, w, 3) uint16 RGB pixels.
        text: the color metadata as PNG text chunks (``ColorMetadata.to_text``).
        encoding: ``'raw'`` or ``'png'`` (:data:`ENCODINGS`).

    Returns:
        The record's bytes.

    Example:
        >>> record = encode_record(np.zeros((2, 2, 3), np.uint16), {'Description': '21'})
        >>> record[:8], is_raw_record(record)
        (b'FNFRAW16', True)
    """
    if encoding == 'png':
        return faid.encode_png16(image_u16, text)
    image_u16 = np.ascontiguousarray(image_u16, dtype='<u2')
    header = json.dumps({'shape': list(image_u16.shape), 'text': dict(text or {})}).encode()
    return RAW_MAGIC + _RAW_HEADER_LENGTH.pack(len(header)) + header + image_u16.tobytes()


def decode_raw_record(data: bytes | memoryview, source: str) -> tuple[np.ndarray, dict[str, str]]:
    """``(image_u16, text)`` of a ``raw`` record (read-only array over ``data``).

    Args:
        data: the record's bytes.
        source: how messages name the record.

    Returns:
        The (h, w, 3) uint16 pixels and the metadata text.

    Raises:
        DataError: a truncated or malformed record, named by ``source``.

    Example:
        >>> image, text = decode_raw_record(encode_record(np.full((2, 3, 3), 7, np.uint16), {'Description': '21'}), 'r')
        >>> image.shape, int(image.max()), text
        ((2, 3, 3), 7, {'Description': '21'})
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


def is_raw_record(data: bytes | memoryview) -> bool:
    """Whether LMDB record bytes are in the ``raw`` encoding (else PNG).

    Args:
        data: a record's bytes.

    Returns:
        True when they start with :data:`RAW_MAGIC`.

    Example:
        >>> is_raw_record(RAW_MAGIC + b'...'), is_raw_record(faid.PNG_SIGNATURE)
        (True, False)
    """
    return bytes(data[:len(RAW_MAGIC)]) == RAW_MAGIC


def decode_record_pair(ambient_bytes: bytes, flash_bytes: bytes, ambient_source: str,
                       flash_source: str) -> tuple[np.ndarray, np.ndarray, faid.ColorMetadata]:
    """``(ambient, flash_only, metadata)`` of a crop's two records, whichever encoding wrote them.

    Args:
        ambient_bytes: the ``<crop>_ambient`` record.
        flash_bytes: the ``<crop>_flash`` record.
        ambient_source: how messages name the first.
        flash_source: how messages name the second.

    Returns:
        The two (h, w, 3) uint16 images and the pair's color metadata.

    Raises:
        DataError: mixed encodings, different sizes, or a damaged record.

    Example:
        >>> text = faid.ColorMetadata(np.eye(3), 21).to_text()
        >>> records = [encode_record(np.zeros((2, 2, 3), np.uint16), text) for _ in range(2)]
        >>> ambient, flash_only, metadata = decode_record_pair(*records, 'a', 'f')
        >>> ambient.shape, metadata.illuminant
        ((2, 2, 3), 21)
    """
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


def crop_positions(length: int, crop_size: int, stride: int) -> list[int]:
    """Start offsets of crops along one axis covering ``[0, length)``; ``[0]`` if the axis is shorter.

    Args:
        length: the image's size along the axis.
        crop_size: the crop side.
        stride: the step between crops; the last crop ends at the border.

    Returns:
        The start offsets.

    Example:
        >>> crop_positions(1080, 512, 256), crop_positions(300, 512, 256)
        ([0, 256, 512, 568], [0])
    """
    if length <= crop_size:
        return [0]
    starts = list(range(0, length - crop_size + 1, stride))
    if starts[-1] != length - crop_size:
        starts.append(length - crop_size)
    return starts


def png_size(path: str | Path) -> tuple[int, int]:
    """(height, width) from a PNG header, without decoding pixels.

    Args:
        path: a PNG file.

    Returns:
        ``(height, width)``.

    Raises:
        DataError: the file cannot be read.
        FaidFormatError: empty, not a PNG, or a zero size.

    Example:
        >>> import tempfile, cv2
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = cv2.imwrite(str(Path(folder) / 'a.png'), np.zeros((5, 7, 3), np.uint16))
        ...     png_size(Path(folder) / 'a.png')
        (5, 7)
    """
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


def plan_crops(input_dir: str | Path, names: Iterable[str], crop_size: int,
               stride: int) -> list[tuple[str, int, int, int, int]]:
    """``[(name, top, left, height, width)]`` of every crop, in name order.

    Args:
        input_dir: FAID-format folder.
        names: the scenes to crop.
        crop_size: the crop side (smaller images give one crop of their size).
        stride: the step between crops.

    Returns:
        One tuple per crop.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((48, 32, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(folder, 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     plan_crops(folder, ['Demo_1'], 32, 16)
        [('Demo_1', 0, 0, 32, 32), ('Demo_1', 16, 0, 32, 32)]
    """
    plan = []
    for name in names:
        height, width = png_size(Path(input_dir) / f'{name}{faid.AMBIENT_SUFFIX}')
        crop_h, crop_w = min(crop_size, height), min(crop_size, width)
        for top in crop_positions(height, crop_size, stride):
            for left in crop_positions(width, crop_size, stride):
                plan.append((name, top, left, crop_h, crop_w))
    return plan


def read_pair_u16(input_dir: str | Path, name: str) -> tuple[np.ndarray, np.ndarray, faid.ColorMetadata]:
    """``(ambient_u16, flash_u16, metadata)`` of one scene of a FAID folder.

    Args:
        input_dir: FAID-format folder.
        name: the scene.

    Returns:
        The two (H, W, 3) uint16 images and their color metadata.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((4, 6, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(folder, 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     ambient, flash_only, metadata = read_pair_u16(folder, 'Demo_1')
        >>> ambient.shape, ambient.dtype, metadata.illuminant
        ((4, 6, 3), dtype('uint16'), 21)
    """
    paths = [Path(input_dir) / f'{name}{suffix}' for suffix in (faid.AMBIENT_SUFFIX, faid.FLASH_SUFFIX)]
    return faid.decode_pair(*(faid.read_file_bytes(path) for path in paths), str(paths[0]), str(paths[1]))


def iter_crops(input_dir: str | Path, plan: Sequence[tuple[str, int, int, int, int]]
               ) -> Iterator[tuple[str, np.ndarray, np.ndarray, faid.ColorMetadata]]:
    """Yield ``(key, ambient_crop, flash_crop, metadata)`` following ``plan``; each image is read once.

    Args:
        input_dir: FAID-format folder.
        plan: :func:`plan_crops`, in name order.

    Yields:
        The crop's key (:func:`crop_key`), its two uint16 crops and the pair's metadata.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((48, 32, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(folder, 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     plan = plan_crops(folder, ['Demo_1'], 32, 16)
        ...     [(key, ambient.shape) for key, ambient, _, _ in iter_crops(folder, plan)]
        [('Demo_1_y00000_x00000', (32, 32, 3)), ('Demo_1_y00016_x00000', (32, 32, 3))]
    """
    loaded_name, pair = None, None
    for name, top, left, height, width in plan:
        if name != loaded_name:
            loaded_name, pair = name, read_pair_u16(input_dir, name)
        ambient, flash_only, metadata = pair
        window = (slice(top, top + height), slice(left, left + width))
        yield crop_key(name, top, left), ambient[window], flash_only[window], metadata


def check_numbers(crop_size: int, stride: int, num_val: int, max_images: int | None) -> None:
    """Refuse crop sizes, strides and counts that cannot make a dataset (before any work).

    Args:
        crop_size: crop side, an integer >= 1.
        stride: crop step, an integer >= 1.
        num_val: validation scenes, an integer >= 0.
        max_images: None, or an integer >= 1.

    Raises:
        ConfigError: the first value that breaks its rule, named by its command-line flag.

    Example:
        >>> check_numbers(512, 256, 128, None)
        >>> try:
        ...     check_numbers(512, 0, 128, None)
        ... except ConfigError as error:
        ...     print(error)
        --stride must be an integer >= 1, got 0
    """
    for label, value, low in (('--crop-size', crop_size, 1), ('--stride', stride, 1), ('--num-val', num_val, 0),
                              ('--max-images', max_images, 1)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f'{label} must be an integer >= {low}, got {value!r}')


def create_lmdb(input_dir: str | Path, lmdb_path: str | Path, split: str = 'all', crop_size: int = DEFAULT_CROP_SIZE,
                stride: int = DEFAULT_STRIDE, num_val: int = 128, val_names: Iterable[str] | None = None,
                max_images: int | None = None, overwrite: bool = False, progress: bool = True,
                encoding: str = DEFAULT_ENCODING, faid_split: str = 'paper') -> dict[str, int]:
    """Write the LMDB in a temporary sibling folder, verify it, then give it its final name.

    A killed or failed run therefore never leaves anything under ``lmdb_path``; the next run
    removes the temporaries of dead runs and starts again. The last file written before the
    rename is the completion record that readers require (:func:`fnf_basicsr.data.lmdb_store.check_lmdb`).

    Args:
        input_dir: FAID-format folder.
        lmdb_path: output folder, must end with ``.lmdb`` (BasicSR's convention); parents are created.
        split: ``all``, ``train``, ``val`` or ``test`` (see the module docstring).
        crop_size: crop side in pixels.
        stride: crop step in pixels.
        num_val: size of the validation selection (see ``select_names``).
        val_names: explicit validation scene names (see ``select_names``).
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

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((48, 40, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(Path(folder) / 'scenes', 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     summary = create_lmdb(Path(folder) / 'scenes', Path(folder) / 'crops.lmdb', crop_size=32, stride=16,
        ...                           progress=False)
        ...     keys = lmdb_crop_keys(Path(folder) / 'crops.lmdb')
        >>> summary['crops'], summary['verified'], keys[1]
        (4, 8, 'Demo_1_y00000_x00008')
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


def write_records(input_dir: str | Path, lmdb_path: str | Path, plan: Sequence[tuple[str, int, int, int, int]],
                  progress: bool = True, label: str | None = None, encoding: str = DEFAULT_ENCODING) -> int:
    """Write every crop of ``plan`` into a new LMDB at ``lmdb_path``, then ``meta_info.txt``.

    Args:
        input_dir: FAID-format folder.
        lmdb_path: the (temporary) LMDB folder to create.
        plan: :func:`plan_crops`.
        progress: show a tqdm progress bar.
        label: how the progress bar names the LMDB (default: ``lmdb_path``).
        encoding: record encoding (:data:`ENCODINGS`).

    Returns:
        The number of record bytes stored.

    Raises:
        OutputError: LMDB or the disk refused a write (full disk, map full, ...).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((32, 32, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(Path(folder) / 'scenes', 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     plan = plan_crops(Path(folder) / 'scenes', ['Demo_1'], 32, 32)
        ...     stored = write_records(Path(folder) / 'scenes', Path(folder) / 'crops.lmdb', plan, progress=False)
        ...     verify_lmdb(Path(folder) / 'scenes', Path(folder) / 'crops.lmdb', plan, progress=False)
        2
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


def check_replaceable(lmdb_path: Path) -> None:
    """Refuse to replace anything but an LMDB folder holding only the files an LMDB of ours holds.

    Args:
        lmdb_path: the existing output.

    Raises:
        OutputExistsError: a file, a link, or a folder holding files other than :data:`LMDB_FILES`.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     (Path(folder) / 'crops.lmdb').mkdir()
        ...     _ = (Path(folder) / 'crops.lmdb' / 'notes.txt').write_text('mine')
        ...     try:
        ...         check_replaceable(Path(folder) / 'crops.lmdb')
        ...     except OutputExistsError as error:
        ...         print('is not an LMDB this command wrote' in str(error))
        True
    """
    try:
        owned_entries(lmdb_path.parent, [lmdb_path.name], LMDB_FILES)
    except DataError:
        raise OutputExistsError(f'{lmdb_path} exists and is not an LMDB this command wrote (a file, a link, or a '
                                f'folder holding other files than {list(LMDB_FILES)}); choose another --output '
                                '(nothing in it is deleted, not even with --overwrite)') from None


def publish(tmp: Path, lmdb_path: Path, overwrite: bool) -> None:
    """Rename the finished LMDB ``tmp`` to ``lmdb_path``; an old one is moved aside first, then deleted.

    Args:
        tmp: the finished LMDB folder.
        lmdb_path: its final name.
        overwrite: replace an existing LMDB of ours there.

    Raises:
        OutputExistsError: ``lmdb_path`` exists and ``overwrite`` is False, or it is not an LMDB of ours.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     (Path(folder) / 'new').mkdir()
        ...     _ = (Path(folder) / 'new' / DATA_FILE).write_bytes(b'')
        ...     publish(Path(folder) / 'new', Path(folder) / 'crops.lmdb', overwrite=False)
        ...     sorted(path.name for path in Path(folder).iterdir())
        ['crops.lmdb']
    """
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


def verify_lmdb(input_dir: str | Path, lmdb_path: str | Path, plan: Sequence[tuple[str, int, int, int, int]],
                progress: bool = True) -> int:
    """Read every record back and compare pixels (bit-exact) and metadata with the source.

    Args:
        input_dir: FAID-format folder the records were made from.
        lmdb_path: the LMDB folder (complete or not).
        plan: :func:`plan_crops` it was written from.
        progress: show a tqdm progress bar.

    Returns:
        The number of records verified.

    Raises:
        DataError: ``meta_info.txt`` lists other crops, or records are missing or differ (the first few named).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((32, 64, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(Path(folder) / 'scenes', 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     plan = plan_crops(Path(folder) / 'scenes', ['Demo_1'], 32, 32)
        ...     _ = write_records(Path(folder) / 'scenes', Path(folder) / 'crops.lmdb', plan, progress=False)
        ...     verify_lmdb(Path(folder) / 'scenes', Path(folder) / 'crops.lmdb', plan, progress=False)
        4
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
