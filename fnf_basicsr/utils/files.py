"""Atomic file writes: a reader never sees a half-written file, and nothing is replaced unasked."""
import os
import uuid
from pathlib import Path


def write_atomically(path, data, overwrite=False):
    """Write ``data`` (bytes) to ``path`` through a temporary file in the same folder.

    Without ``overwrite`` the final step is a hard link, which fails if ``path`` appeared in the
    meantime, so another process's file is never replaced (file systems without hard links fall
    back to a check then a rename).

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f'.{path.name}.{uuid.uuid4().hex}.tmp')
    try:
        tmp.write_bytes(data)
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise FileExistsError(f'{path} already exists; pass --overwrite to replace it') from None
        except OSError:  # no hard links here (e.g. FAT, some network shares)
            if path.exists():
                raise FileExistsError(f'{path} already exists; pass --overwrite to replace it') from None
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
