"""Checks that make a damaged or unfinished LMDB fail with a message instead of a crash.

``scripts/create_lmdb.py`` builds an LMDB in a temporary folder and gives it its final name only
once every record is written and verified; the last file it writes there is
:data:`COMPLETE_MARKER`. Readers call :func:`check_lmdb` before opening one, which refuses

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
import struct
from pathlib import Path

from fnf_basicsr.errors import DataError, MissingInputError

COMPLETE_MARKER = 'fnf_lmdb_complete.json'
DATA_FILE = 'data.mdb'
REBUILD = 'rebuild it with scripts/create_lmdb.py --overwrite'

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
        The completion record (dict) written by ``scripts/create_lmdb.py``.

    Raises:
        MissingInputError: the folder does not exist.
        DataError: the folder is unfinished, truncated or not an LMDB.
    """
    lmdb_path = Path(lmdb_path)
    if not lmdb_path.is_dir():
        raise MissingInputError(f'LMDB {lmdb_path} does not exist (or is not a folder); build it with '
                                'scripts/create_lmdb.py')
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
