"""Safe outputs: a reader never sees a half-written file, nothing is replaced unasked, and a
killed run leaves nothing under a final name.

Temporaries are named ``.<final name>.<pid>.<random>.tmp`` beside their target, so that a later
run can find those of dead processes and remove them (:func:`remove_stale_temporaries`).

Fault injection (tests): ``FNF_FAULT_KILL=<label>:<n>`` makes the ``n``-th call of
``fault_point(<label>)`` in this process kill it with SIGKILL, i.e. at a chosen, deterministic
point of a write, exactly as a power cut or the OOM killer would.
"""
import errno
import os
import shutil
import signal
import uuid
from pathlib import Path

from fnf_basicsr.errors import OutputError, OutputExistsError

FAULT_ENV = 'FNF_FAULT_KILL'
_FAULT_COUNTS = {}


def fault_point(label):
    """Kill this process (SIGKILL) here if ``FNF_FAULT_KILL`` names ``label`` and this is its n-th call."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, _, count = spec.rpartition(':')
    if target != label:
        return
    _FAULT_COUNTS[label] = _FAULT_COUNTS.get(label, 0) + 1
    if _FAULT_COUNTS[label] == int(count):
        os.kill(os.getpid(), signal.SIGKILL)


def temporary_path(path):
    """A fresh temporary path beside ``path`` that :func:`remove_stale_temporaries` recognises."""
    path = Path(path)
    return path.with_name(f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex}.tmp')


def remove_stale_temporaries(path, any_name=False):
    """Delete the temporaries of ``path`` (files or folders) left by processes that no longer run.

    Args:
        path: the final path whose temporaries to remove; with ``any_name``, a folder whose
            temporaries of any name are removed.

    Returns:
        The paths removed.
    """
    path = Path(path)
    folder, prefix = (path, '.') if any_name else (path.parent, f'.{path.name}.')
    if not folder.is_dir():
        return []
    removed = []
    for candidate in folder.iterdir():
        name = candidate.name
        if not (name.startswith(prefix) and name.endswith('.tmp')):
            continue
        parts = name[:-len('.tmp')].split('.')
        if len(parts) < 4 or (parts[-2].isdigit() and _process_alive(int(parts[-2]))):
            continue  # not one of ours, or another run is writing it right now
        if candidate.is_dir() and not candidate.is_symlink():
            shutil.rmtree(candidate, ignore_errors=True)
        else:
            candidate.unlink(missing_ok=True)
        removed.append(candidate)
    return removed


def _process_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def prepare_output_folder(folder, what='output'):
    """Create ``folder`` (and its parents) and check that files can be created in it, before any work.

    Raises:
        OutputError: a parent is a regular file, the folder cannot be created, or it is read-only.
    """
    folder = Path(folder)
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            raise OutputError(f'cannot write the {what} under {folder}: {parent} is a file, not a folder; '
                              'choose another output path')
        if parent.exists():
            break
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f'cannot create the {what} folder {folder}: {_cause(error)}; choose another output '
                          'path') from None
    probe = temporary_path(folder / 'write-probe')
    try:
        probe.write_bytes(b'')
    except OSError as error:
        raise OutputError(f'cannot write the {what} in {folder}: {_cause(error)}; choose a writable folder') from None
    probe.unlink(missing_ok=True)


def _cause(error):
    if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f'{error.strerror} (read-only or not yours)'
    return error.strerror or str(error)


def write_atomically(path, data, overwrite=False):
    """Write ``data`` (bytes) to ``path`` through a temporary file in the same folder.

    Without ``overwrite`` the final step is a hard link, which fails if ``path`` appeared in the
    meantime, so another process's file is never replaced (file systems without hard links fall
    back to a check then a rename). The data are flushed to disk before the file gets its name.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False (a FileExistsError).
        OutputError: the file cannot be written (full disk, read-only folder, ...).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(path)
    try:
        try:
            with open(tmp, 'wb') as file:
                file.write(data)
                fault_point('write_atomically')  # killed here: only the temporary exists
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            raise OutputError(f'cannot write {path}: {_cause(error)}') from None
        if overwrite:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise OutputExistsError(f'{path} already exists; pass --overwrite to replace it') from None
        except OSError:  # no hard links here (e.g. FAT, some network shares)
            if path.exists():
                raise OutputExistsError(f'{path} already exists; pass --overwrite to replace it') from None
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
