"""Safe outputs: a reader never sees a half-written file, nothing is replaced unasked, a killed run
leaves nothing under a final name, and a command deletes only what it wrote.

Temporaries are named ``.<final name>.fnf-tmp-<pid>-<32 hex digits>.tmp`` beside their target, so that a
later run can find those of dead processes and remove them (:func:`remove_stale_temporaries`); the
project tag and the random part make a user's own dot-file never look like one of ours.

Every deletion goes through :func:`remove_owned`: an entry is removed only if its name is a plain file
name, it lies, resolved, directly inside the folder the command writes to, it is a regular file (never
a link, never a folder of unknown content), and all entries asked for pass these checks (else nothing
is removed).

Fault injection (tests): ``FNF_FAULT_KILL=<label>:<n>`` makes the ``n``-th call of
``fault_point(<label>)`` in this process kill it with SIGKILL, i.e. at a chosen, deterministic
point of a write, exactly as a power cut or the OOM killer would. ``<label>:<n>:INT`` sends SIGINT to
the process group instead, as Ctrl-C in a terminal does.
"""
from __future__ import annotations

import errno
import hashlib
import os
import re
import signal
import uuid
from collections.abc import Iterable
from pathlib import Path

from fnf_basicsr.errors import ConfigError, DataError, OutputError, OutputExistsError

FAULT_ENV = 'FNF_FAULT_KILL'
_FAULT_COUNTS = {}
TEMPORARY_TAG = 'fnf-tmp'
_TEMPORARY_NAME = re.compile(r'^\.(?P<target>.+)\.' + TEMPORARY_TAG + r'-(?P<pid>\d+)-[0-9a-f]{32}\.tmp$')


def fault_point(label: str) -> None:
    """Kill this process (SIGKILL) here if ``FNF_FAULT_KILL`` names ``label`` and this is its n-th call.

    With a third field ``INT`` the signal is SIGINT (Ctrl-C) to this process group when this process leads it
    (else to this process alone); Python raises the KeyboardInterrupt at once on the main thread.

    Args:
        label: the name of this point of the code, as ``FNF_FAULT_KILL`` names it.

    Example:
        >>> 'FNF_FAULT_KILL' in os.environ, fault_point('write_atomically')  # unset: nothing happens
        (False, None)
    """
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    target, count, how = (spec.split(':') + ['KILL'])[:3]
    if target != label:
        return
    _FAULT_COUNTS[label] = _FAULT_COUNTS.get(label, 0) + 1
    if _FAULT_COUNTS[label] != int(count):
        return
    if how == 'INT':  # the whole group, as a terminal does, only when this process leads it (tests start one)
        os.killpg(os.getpgid(0), signal.SIGINT) if os.getpgid(0) == os.getpid() else os.kill(os.getpid(), signal.SIGINT)
    else:
        os.kill(os.getpid(), signal.SIGKILL)


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh temporary path beside ``path`` that :func:`remove_stale_temporaries` recognises.

    Args:
        path: the final path the temporary stands for.

    Returns:
        ``.<name>.fnf-tmp-<pid>-<32 hex digits>.tmp`` in the folder of ``path``; nothing is created.

    Example:
        >>> tmp = temporary_path('out/model.pth')
        >>> tmp.parent, tmp.name.startswith('.model.pth.fnf-tmp-'), temporary_target(tmp.name)
        (PosixPath('out'), True, 'model.pth')
    """
    path = Path(path)
    return path.with_name(f'.{path.name}.{TEMPORARY_TAG}-{os.getpid()}-{uuid.uuid4().hex}.tmp')


def temporary_target(name: str) -> str | None:
    """The final name whose temporary ``name`` is (see :func:`temporary_path`), or None for any other name.

    Args:
        name: a file name (no folder part).

    Returns:
        The target's file name, or None.

    Example:
        >>> temporary_target(f'.a.png.fnf-tmp-12-{"0" * 32}.tmp'), temporary_target('.a.png.tmp')
        ('a.png', None)
    """
    match = _TEMPORARY_NAME.match(name)
    return match['target'] if match else None


def remove_stale_temporaries(path: str | os.PathLike, any_name: bool = False,
                             contents: Iterable[str] = ()) -> list[Path]:
    """Delete the temporaries of ``path`` left by processes that no longer run.

    Only names of :func:`temporary_path`'s form are considered, only files are removed, and a folder
    only when every entry in it is a file named in ``contents`` or a temporary of one (an LMDB being
    built); anything else is left alone, whatever its name.

    Args:
        path: the final path whose temporaries to remove; with ``any_name``, a folder whose
            temporaries of any name are removed.
        any_name: remove the temporaries of every name in the folder ``path``.
        contents: the file names a temporary folder of this command may hold.

    Returns:
        The paths removed.

    Raises:
        DataError: a stale temporary fails a check of :func:`remove_owned`; nothing is removed then.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> folder = Path(tmp.name)
        >>> stale = folder / f'.out.png.{TEMPORARY_TAG}-999999999-{"0" * 32}.tmp'  # a pid no process has
        >>> _ = stale.write_bytes(b'')
        >>> [p.name for p in remove_stale_temporaries(folder / 'out.png')] == [stale.name], stale.exists()
        (True, False)
        >>> tmp.cleanup()
    """
    path = Path(path)
    folder = path if any_name else path.parent
    if not folder.is_dir():
        return []
    stale = []
    for candidate in folder.iterdir():
        match = _TEMPORARY_NAME.match(candidate.name)
        if not match or (not any_name and match['target'] != path.name) or _process_alive(int(match['pid'])):
            continue  # not one of ours, or another run is writing it right now
        if _removable(candidate, contents):
            stale.append(candidate.name)
    return remove_owned(folder, stale, contents)


def is_plain_name(name: object) -> bool:
    """True for a single file name: no folder part, not absolute, not ``.`` or ``..``, no control characters.

    Args:
        name: the candidate; anything but a str is not a plain name.

    Returns:
        Whether ``name`` is a plain file name.

    Example:
        >>> is_plain_name('model.pth'), is_plain_name('../model.pth'), is_plain_name('..')
        (True, False, False)
    """
    return (isinstance(name, str) and name not in ('', '.', '..') and '/' not in name and '\\' not in name
            and not any(ord(char) < 32 for char in name))


def owned_entry(folder: str | os.PathLike, name: str, within: str | os.PathLike | None = None) -> Path:
    """``folder / name``, refused unless it can be an entry this command wrote in the folder it owns.

    Checked on resolved paths: ``name`` is a plain name, the entry resolves directly inside ``folder``
    (a link pointing elsewhere does not), and ``folder`` lies inside ``within`` when given.

    Args:
        folder: the folder this command writes to.
        name: the entry's file name.
        within: a folder that must contain ``folder`` (or be it); None: no such check.

    Returns:
        ``Path(folder) / name``; the entry need not exist.

    Raises:
        DataError: naming the entry and why it is not ours.

    Example:
        >>> owned_entry('reports', 'table.md')
        PosixPath('reports/table.md')
        >>> owned_entry('reports', '../table.md')  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        fnf_basicsr.errors.DataError: refusing to delete '../table.md' in reports: ...
    """
    folder = Path(folder)
    if not is_plain_name(name):
        raise DataError(f'refusing to delete {name!r} in {folder}: not a plain file name of that folder '
                        '(absolute, or with a folder part or ..); nothing was deleted')
    path = folder / name
    owned = folder.resolve()
    if within is not None and owned != Path(within).resolve() and Path(within).resolve() not in owned.parents:
        raise DataError(f'refusing to delete in {folder}: it lies outside {within}, the folder this command '
                        'writes to; nothing was deleted')
    if path.is_symlink() or path.resolve().parent != owned:
        raise DataError(f'refusing to delete {path}: it is a link or lies outside {folder}; this command '
                        'deletes only files it wrote there; nothing was deleted')
    return path


def owned_entries(folder: str | os.PathLike, names: Iterable[str], contents: Iterable[str] = (),
                  within: str | os.PathLike | None = None) -> list[Path]:
    """The existing entries ``names`` of ``folder``, each checked to be removable by :func:`remove_owned`.

    An entry must pass :func:`owned_entry` and be a regular file, or a folder (not a link) whose every
    entry is a regular file named in ``contents`` or a temporary of one. Missing entries are left out.

    Args:
        folder: the folder this command writes to.
        names: the entries' file names.
        contents: the file names a folder entry may hold.
        within: a folder that must contain ``folder`` (see :func:`owned_entry`).

    Returns:
        The paths of the entries that exist, in the order of ``names``.

    Raises:
        DataError: an entry fails a check, naming it.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / 'a.txt').write_bytes(b'')
        ...     [p.name for p in owned_entries(folder, ['a.txt', 'missing.txt'])]
        ['a.txt']
    """
    paths = [owned_entry(folder, name, within) for name in names]
    paths = [path for path in paths if path.exists() or path.is_symlink()]
    for path in paths:
        if not _removable(path, contents):
            raise DataError(f'refusing to delete {path}: not a file this command wrote (a link, a folder holding '
                            'other files, or a special file); nothing was deleted')
    return paths


def remove_owned(folder: str | os.PathLike, names: Iterable[str], contents: Iterable[str] = (),
                 within: str | os.PathLike | None = None) -> list[Path]:
    """Delete the entries ``names`` of ``folder`` that this command wrote; all are checked before any is removed.

    The checks are :func:`owned_entries`'; a folder is emptied of its known files and removed, nothing
    recursive beyond. Missing entries are skipped.

    Args:
        folder: the folder this command writes to.
        names: the entries' file names.
        contents: the file names a folder entry may hold.
        within: a folder that must contain ``folder`` (see :func:`owned_entry`).

    Returns:
        The paths removed.

    Raises:
        DataError: an entry fails a check; nothing is deleted then.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / 'a.txt').write_bytes(b'')
        ...     [p.name for p in remove_owned(folder, ['a.txt'])], sorted(os.listdir(folder))
        (['a.txt'], [])
    """
    paths = owned_entries(folder, names, contents, within)
    for path in paths:
        if path.is_dir():
            for entry in path.iterdir():
                entry.unlink(missing_ok=True)
            path.rmdir()
        else:
            path.unlink(missing_ok=True)
    return paths


def _removable(path, contents):
    if path.is_symlink():
        return False
    if path.is_file():
        return True
    if not path.is_dir():
        return False
    allowed = set(contents)
    return all(entry.is_file() and not entry.is_symlink()
               and (entry.name in allowed or temporary_target(entry.name) in allowed) for entry in path.iterdir())


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


def check_separate(output: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], flag: str = '--output',
                   fix: str = 'write to another folder') -> None:
    """Refuse an output folder that is, lies inside, or contains one of ``inputs`` (resolved: links and ``..``).

    A command replacing or cleaning its output must never reach its inputs through it.

    Args:
        output: the output folder.
        inputs: the input folders; None entries are skipped.
        flag: the command-line flag of ``output``, named in the error.
        fix: what to do instead, named in the error.

    Raises:
        ConfigError: naming the flag, both folders and ``fix``.

    Example:
        >>> check_separate('reports/run1', ['datasets/faid', None])  # apart: nothing happens
        >>> check_separate('datasets/faid/out', ['datasets/faid'])  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        fnf_basicsr.errors.ConfigError: --output datasets/faid/out lies inside the input .../datasets/faid; ...
    """
    resolved = Path(output).resolve()
    for source in filter(None, inputs):
        source = Path(source).resolve()
        if source == resolved or resolved in source.parents or source in resolved.parents:
            relation = 'is' if source == resolved else 'contains' if resolved in source.parents else 'lies inside'
            raise ConfigError(f'{flag} {output} {relation} the input {source}; {fix}')


def prepare_output_folder(folder: str | os.PathLike, what: str = 'output') -> None:
    """Create ``folder`` (and its parents) and check that files can be created in it, before any work.

    Args:
        folder: the output folder.
        what: what will be written there, named in errors.

    Raises:
        OutputError: a parent is a regular file, the folder cannot be created, or it is read-only.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root:
        ...     prepare_output_folder(Path(root) / 'a' / 'b')
        ...     (Path(root) / 'a' / 'b').is_dir(), os.listdir(Path(root) / 'a' / 'b')
        (True, [])
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


def write_atomically(path: str | os.PathLike, data: bytes, overwrite: bool = False) -> None:
    """Write ``data`` (bytes) to ``path`` through a temporary file in the same folder.

    Without ``overwrite`` the final step is a hard link, which fails if ``path`` appeared in the
    meantime, so another process's file is never replaced (file systems without hard links fall
    back to a check then a rename). The data are flushed to disk before the file gets its name.

    Args:
        path: the final path; its folder is created if missing.
        data: the file's content.
        overwrite: replace an existing file.

    Raises:
        OutputExistsError: ``path`` exists and ``overwrite`` is False (a FileExistsError).
        OutputError: the file cannot be written (full disk, read-only folder, ...).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_atomically(Path(folder) / 'a.txt', b'one')
        ...     write_atomically(Path(folder) / 'a.txt', b'two', overwrite=True)
        ...     (Path(folder) / 'a.txt').read_bytes(), os.listdir(folder)
        (b'two', ['a.txt'])
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


HASH_CHUNK = 2 ** 22  # files are hashed in chunks: checkpoints are hundreds of MB


def bytes_sha256(data: bytes) -> str:
    """SHA-256 (hex) of bytes in memory, e.g. a frozen sample before it is written.

    Args:
        data: the bytes to hash.

    Returns:
        64 lowercase hex digits.

    Example:
        >>> bytes_sha256(b'')[:8]
        'e3b0c442'
    """
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 (hex) of a file's content, read in chunks; equal to :func:`bytes_sha256` of the content.

    Args:
        path: the file to hash.

    Returns:
        64 lowercase hex digits.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / 'a.bin').write_bytes(b'abc')
        ...     file_sha256(Path(folder) / 'a.bin') == bytes_sha256(b'abc')
        True
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK), b''):
            digest.update(chunk)
    return digest.hexdigest()
