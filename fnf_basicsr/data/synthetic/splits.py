"""Splits on disk: rendering numbered scenes into a FAID folder, resumably, and the cached dataset folder."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import signal
from pathlib import Path
from typing import Any, Iterable, Mapping

import cv2
from tqdm import tqdm

from fnf_basicsr.data.faid import (AMBIENT_SUFFIX, FLASH_SUFFIX, INCOMPLETE_MARKER, list_faid_names, mark_complete,
                                   mark_incomplete, write_faid_pair)
from fnf_basicsr.data.synthetic.materials import srgb8_to_linear
from fnf_basicsr.data.synthetic.render import render_scene
from fnf_basicsr.errors import ConfigError, DataError, OutputExistsError
from fnf_basicsr.utils.files import (fault_point, prepare_output_folder, remove_owned, remove_stale_temporaries,
                                     write_atomically)

SPLIT_SEED_OFFSETS = {'train': 0, 'val': 1_000_000, 'test': 2_000_000}
MANIFEST = 'synthetic_{split}.json'


def scene_name(split: str, index: int) -> str:
    """FAID-style name of a synthetic scene, e.g. ``Synth_train_000042``.

    Args:
        split: ``train``, ``val`` or ``test``.
        index: the scene's index in its split.

    Returns:
        ``Synth_<split>_<index:06d>``.

    Example:
        >>> scene_name('train', 42)
        'Synth_train_000042'
    """
    return f'Synth_{split}_{index:06d}'


def generate_split(root: str | Path, split: str, num_scenes: int, size: int = 512, workers: int = 2,
                   overwrite: bool = False, progress: bool = True, resume_command: str | None = None) -> list[str]:
    """Render ``num_scenes`` scenes of a split into the FAID folder ``root``; an interrupted run resumes.

    Each file is written atomically; until the last scene is written the folder carries the mark
    of :func:`fnf_basicsr.data.faid.mark_incomplete`, so readers refuse it. A later call with the
    same split, count and size renders only the scenes that are missing and produces the same files
    as an uninterrupted run (every scene is a pure function of its seed). The last steps write the
    manifest ``synthetic_<split>.json`` (names, sizes, SHA-256 of every file) and remove the mark.

    Args:
        root: output folder (created if missing).
        split: 'train', 'val' or 'test'; selects the seed range and the names
            ``Synth_<split>_<index:06d>``.
        num_scenes: number of scenes (indices 0 .. num_scenes - 1).
        size: image size in pixels.
        workers: processes rendering in parallel (1: in this process).
        overwrite: replace existing files; otherwise an existing scene file is an error, except
            in a folder whose generation with the same parameters was interrupted (resumed).
        progress: show a tqdm progress bar.
        resume_command: the command named in the refusal of the unfinished folder.

    Returns:
        The scene names, in index order.

    Raises:
        ConfigError: bad split, count or size.
        OutputExistsError: scenes exist already (and the folder is no interrupted run of these parameters).
        OutputError: ``root`` cannot be created or written.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     names = generate_split(folder, 'val', 2, size=16, workers=1, progress=False)
        ...     names, sorted(path.name for path in Path(folder).iterdir())[-1]
        (['Synth_val_000000', 'Synth_val_000001'], 'synthetic_val.json')
    """
    if split not in SPLIT_SEED_OFFSETS:
        raise ConfigError(f'split must be one of {sorted(SPLIT_SEED_OFFSETS)}, got {split!r}')
    for label, value, low in (('num_scenes', num_scenes, 1), ('size', size, 8), ('workers', workers, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f'{label} must be an integer >= {low}, got {value!r}')
    root = Path(root)
    names = [scene_name(split, index) for index in range(num_scenes)]
    parameters = {'split': split, 'num_scenes': num_scenes, 'size': size}
    resuming = _interrupted_run_of(root, parameters, overwrite)
    if not overwrite and not resuming and root.is_dir():
        existing = set(os.listdir(root))
        clashes = [name for name in names
                   if f'{name}{AMBIENT_SUFFIX}' in existing or f'{name}{FLASH_SUFFIX}' in existing]
        if clashes:
            raise OutputExistsError(f'{root} already holds {len(clashes)} of these scenes (e.g. {clashes[0]}); '
                                    f'pass overwrite=True (--overwrite) or choose another folder')
    prepare_output_folder(root, 'synthetic scenes')
    remove_stale_temporaries(root, any_name=True)
    resume_command = resume_command or (f'python scripts/data_preparation/generate_synthetic.py --root {root} '
                                        f'--split {split} --num {num_scenes} --size {size}')
    mark_incomplete(root, resume_command, parameters)
    todo = [(str(root), name, SPLIT_SEED_OFFSETS[split] + index, size, True)
            for index, name in enumerate(names) if overwrite or not _scene_written(root, name)]
    try:
        _render_all(todo, workers, progress, split)
    except KeyboardInterrupt:
        remove_stale_temporaries(root, any_name=True)  # what the stopped render workers were writing
        raise KeyboardInterrupt(f'the scenes written so far are kept; run `{resume_command}` to finish') from None
    write_manifest(root, parameters, names)
    mark_complete(root)
    return names


def _render_all(todo, workers, progress, split):
    bar = functools.partial(tqdm, total=len(todo), desc=f'synthetic {split}', unit='scene', disable=not progress)
    if workers > 1 and len(todo) > 1:
        srgb8_to_linear()  # computed once here: forked workers inherit it and never call torch
        # Ctrl-C reaches the whole process group: only this process handles it (the pool stops the workers),
        # so the user sees one line, not a traceback per worker.
        with _serial_opencv(), multiprocessing.Pool(workers, initializer=_ignore_interrupts) as pool:
            for _ in bar(pool.imap_unordered(_render_and_write, todo)):
                fault_point('synthetic_scene')
    else:
        for job in bar(todo):
            _render_and_write(job)
            fault_point('synthetic_scene')


def _ignore_interrupts():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupted_run_of(root, parameters, overwrite):
    """True if ``root`` holds an interrupted generation with these parameters; refuses other ones."""
    marker = root / INCOMPLETE_MARKER
    if not marker.is_file():
        return False
    try:
        found = {key: json.loads(marker.read_text()).get(key) for key in parameters}
    except (OSError, ValueError, AttributeError):
        found = None
    if found == parameters:
        return True
    if not overwrite:
        raise OutputExistsError(f'{root} holds an unfinished generation with other parameters ({found}, now '
                                f'{parameters}); rerun it with its own parameters to finish it, or pass --overwrite')
    return False


def _scene_written(root, name):
    return all((root / f'{name}{suffix}').is_file() for suffix in (AMBIENT_SUFFIX, FLASH_SUFFIX))


def write_manifest(root: str | Path, parameters: Mapping[str, Any], names: Iterable[str]) -> None:
    """Write ``synthetic_<split>.json``: the parameters and every file's byte count and SHA-256.

    Args:
        root: the split's folder.
        parameters: ``split``, ``num_scenes``, ``size``.
        names: the scenes, whose two files are hashed.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for suffix in (AMBIENT_SUFFIX, FLASH_SUFFIX):
        ...         _ = (Path(folder) / f'Synth_val_000000{suffix}').write_bytes(b'png')
        ...     write_manifest(folder, {'split': 'val', 'num_scenes': 1, 'size': 16}, ['Synth_val_000000'])
        ...     manifest = json.loads((Path(folder) / 'synthetic_val.json').read_text())
        >>> manifest['num_scenes'], manifest['files']['Synth_val_000000_flash.png']['bytes']
        (1, 3)
    """
    files = {}
    for name in names:
        for suffix in (AMBIENT_SUFFIX, FLASH_SUFFIX):
            data = (Path(root) / f'{name}{suffix}').read_bytes()
            files[f'{name}{suffix}'] = {'bytes': len(data), 'sha256': hashlib.sha256(data).hexdigest()}
    manifest = {'format': 'fnf-basicsr synthetic scenes', **parameters, 'files': files}
    write_atomically(Path(root) / MANIFEST.format(split=parameters['split']),
                     json.dumps(manifest, indent=1, sort_keys=True).encode(), overwrite=True)


def ensure_synthetic_dataset(root: str | Path, split: str, num_scenes: int, size: int = 512, workers: int = 2,
                             progress: bool = True) -> str:
    """The folder of a synthetic split, rendered once on first use however many processes ask for it.

    The folder is ``<root>/<split>_<num_scenes>x<size>``; an existing one is used as it is (after
    checking it holds exactly the expected scenes). A missing one is rendered by one process only:
    every process asking for it (each distributed rank builds its own dataset) takes an exclusive
    lock on ``root``; the first to hold it renders into the sibling ``.<folder>.partial`` and renames
    that into place, while the others wait on the lock and then find the folder and read it without
    rendering. A renderer that dies releases the lock with its process and leaves the partial folder,
    whose rendering the next holder of the lock finishes (only the scenes whose files are missing), so
    an interrupted run never leaves a partial dataset under the final name.

    Args:
        root: parent folder of the generated splits (created if missing).
        split: as for :func:`generate_split`.
        num_scenes: as for :func:`generate_split`.
        size: as for :func:`generate_split`.
        workers: as for :func:`generate_split`.
        progress: as for :func:`generate_split`.

    Returns:
        The folder, as a string.

    Raises:
        DataError: the folder exists but holds other scenes than the expected ones.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     Path(ensure_synthetic_dataset(folder, 'test', 1, size=16, workers=1, progress=False)).name
        'test_1x16'
    """
    root = Path(root)
    folder = root / f'{split}_{num_scenes}x{size}'
    if not folder.is_dir():
        prepare_output_folder(root, 'synthetic dataset')
        with _exclusive_lock(root):
            if not folder.is_dir():  # else the holder of the lock before us rendered it while we waited
                _render_into_place(folder, split, num_scenes, size, workers, progress)
    expected = [scene_name(split, index) for index in range(num_scenes)]
    found = list_faid_names(folder)
    if found != expected:
        raise DataError(f'{folder} holds {len(found)} scenes, not the {num_scenes} expected '
                        f'({expected[0]} .. {expected[-1]}); delete the folder to regenerate it')
    return str(folder)


def _render_into_place(folder, split, num_scenes, size, workers, progress):
    """Render the split (or finish an interrupted rendering) beside ``folder``, then rename it to ``folder``."""
    partial = folder.with_name(f'.{folder.name}.partial')
    if not _finished_split(partial, split):  # a renderer killed between its last write and the rename left it whole
        generate_split(partial, split, num_scenes, size, workers=workers, progress=progress,
                       overwrite=False, resume_command='the same training command (it resumes)')
    fault_point('synthetic_split_rendered')
    try:
        os.rename(partial, folder)  # atomic; fails if another process (without flock) finished first
    except OSError:
        if not folder.is_dir():
            raise
        remove_owned(partial.parent, [partial.name], split_files(split, num_scenes))  # only what it rendered


def split_files(split: str, num_scenes: int) -> list[str]:
    """Every file :func:`generate_split` writes into a folder for this split and count.

    Args:
        split: ``train``, ``val`` or ``test``.
        num_scenes: the number of scenes.

    Returns:
        The scenes' files, the manifest and the incomplete-mark file.

    Example:
        >>> split_files('val', 1)
        ['Synth_val_000000_ambient.png', 'Synth_val_000000_flash.png', 'synthetic_val.json', '.fnf_incomplete.json']
    """
    scenes = [f'{scene_name(split, index)}{suffix}' for index in range(num_scenes)
              for suffix in (AMBIENT_SUFFIX, FLASH_SUFFIX)]
    return [*scenes, MANIFEST.format(split=split), INCOMPLETE_MARKER]


def _finished_split(folder, split):
    """True if :func:`generate_split` completed in ``folder``: its manifest is written and its mark removed."""
    return (folder / MANIFEST.format(split=split)).is_file() and not (folder / INCOMPLETE_MARKER).exists()


@contextlib.contextmanager
def _exclusive_lock(folder):
    """Hold an exclusive advisory lock on ``folder`` itself, waiting while another process holds it.

    POSIX flock: no lock file is left behind, and the kernel releases the lock when every process
    sharing the descriptor has ended, however it ended. The render workers forked while it is held
    share it, so a killed renderer's workers finish their scene before the next holder resumes the
    folder they write to. Without flock there is no lock, and the rename in :func:`_render_into_place`
    settles a race.
    """
    try:
        import fcntl
        descriptor = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


@contextlib.contextmanager
def _serial_opencv():
    """One OpenCV thread while worker processes are forked (two processes on two cores need no more).

    Set in the parent, before the fork: a forked child calling ``cv2.setNumThreads`` waits forever
    for the parent's OpenCV pool threads, which do not exist in the child (a deadlock seen once an
    earlier cv2 call in the process had started that pool). Children inherit the setting.
    """
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _render_and_write(job):
    root, name, seed, size, overwrite = job
    ambient, flash_only, metadata = render_scene(seed, size)
    write_faid_pair(root, name, ambient, flash_only, metadata, overwrite=overwrite)
    return name
