"""Where samples come from: one interface for each kind of source, shared by every reader.

Two kinds of source, each a small protocol:

* :class:`SceneSource`: clean flash/ambient pairs that the dataset degrades on the fly (training,
  validation, and the freezer, which stores the dataset's test samples): a FAID-format folder, real or
  synthetic (:class:`FolderScenes`), or an LMDB of crops (:class:`LmdbScenes`).
* :class:`StoredTestSet`: noisy test samples made once and stored: our frozen sets
  (:class:`FrozenSamples`) and the authors' released test set
  (:class:`~fnf_basicsr.data.release_testset.ReleaseTestSet`). ``FlashNoFlashDataset``'s
  ``frozen_root`` (hence ``basicsr test``) and ``fnf-benchmark`` open them with the same
  :func:`open_stored_test_set` and read the same :meth:`StoredTestSet.item`.

Adding a stored format: write a class with the members of :class:`StoredTestSet` and register it with
:func:`register_test_set_format` (docs/extending.md).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Callable, NamedTuple, Optional, Protocol, runtime_checkable

import numpy as np
import torch
from basicsr.utils import FileClient

from fnf_basicsr.data import faid
from fnf_basicsr.data.degradation import assemble_input, sample_dict
from fnf_basicsr.data.frozen_set import FROZEN_MANIFEST, check_complete, load_frozen_sample, read_frozen_manifest
from fnf_basicsr.data.input_layout import FRAMES
from fnf_basicsr.data.lmdb_store import (LMDB_AMBIENT_SUFFIX, LMDB_FLASH_SUFFIX, LMDB_META_INFO, decode_record_pair,
                                         lmdb_crop_keys, lmdb_errors)
from fnf_basicsr.data.release_testset import ReleaseTestSet, is_release_testset
from fnf_basicsr.errors import ConfigError, MissingInputError

_FILE_CLIENTS = {}  # see _shared_file_client


class ScenePair(NamedTuple):
    """One clean scene (or LMDB crop): 16-bit linear images, their camera -> sRGB matrix, where they were read.

    Attributes:
        ambient: (H, W, 3) uint16 ambient image.
        flash_only: (H, W, 3) uint16 flash-only image.
        color_matrix: (3, 3) camera -> linear sRGB.
        source: the file or record the pair was read from.

    Example:
        >>> pair = ScenePair(np.zeros((2, 2, 3), np.uint16), np.zeros((2, 2, 3), np.uint16), np.eye(3), 'a.png')
        >>> pair.source, pair.ambient.shape
        ('a.png', (2, 2, 3))
    """
    ambient: np.ndarray
    flash_only: np.ndarray
    color_matrix: np.ndarray
    source: str


@runtime_checkable
class SceneSource(Protocol):
    """Clean pairs to degrade: ``keys`` (scene names, or ``<scene>_y<top>_x<left>`` crop keys) and ``load``.

    Example:
        >>> class OneScene:
        ...     root, keys = 'memory', ['Demo_1']
        ...     def load(self, key):
        ...         image = np.zeros((4, 4, 3), np.uint16)
        ...         return ScenePair(image, image, np.eye(3), f'memory:{key}')
        >>> isinstance(OneScene(), SceneSource)
        True
    """
    root: str
    keys: list

    def load(self, key: str) -> ScenePair:
        """The pair stored under ``key``; raises with the file or record that is missing or damaged.

        Args:
            key: one of ``keys``.

        Returns:
            The clean pair.
        """


@runtime_checkable
class StoredTestSet(Protocol):
    """Noisy test samples stored once, read as the dataset's samples.

    ``keys`` name the samples in order; :meth:`item` gives one in the layout of
    :func:`~fnf_basicsr.data.degradation.sample_dict`; :meth:`recorded_options` the degradation options
    the set was made with (a dict as :func:`~fnf_basicsr.data.frozen_set.degradation_options` writes, or
    None when the format records none); :meth:`identity` what identifies its content for result caches.

    Example:
        >>> class Empty:
        ...     kind, root, keys = 'empty', Path('.'), []
        ...     def __len__(self):
        ...         return 0
        ...     def item(self, index, input_mode):
        ...         raise IndexError(index)
        ...     def recorded_options(self):
        ...         return None
        ...     def identity(self):
        ...         return {'kind': 'empty'}
        >>> isinstance(Empty(), StoredTestSet)
        True
    """
    kind: str
    root: Path
    keys: list

    def __len__(self) -> int:
        """Number of samples."""

    def item(self, index: int, input_mode: str) -> dict:
        """Sample ``index`` for a network of ``input_mode``; raises ConfigError/DataError when the set has none.

        Args:
            index: the sample, ``0 .. len - 1``.
            input_mode: the network's input mode.

        Returns:
            The sample in the layout of :func:`~fnf_basicsr.data.degradation.sample_dict`.
        """

    def recorded_options(self) -> Optional[dict]:
        """The degradation options the samples were made with, or None.

        Returns:
            A dict as :func:`~fnf_basicsr.data.frozen_set.degradation_options` writes, or None.
        """

    def identity(self) -> dict:
        """A JSON-able value that changes whenever the samples do.

        Returns:
            The value result caches are keyed by.
        """


class FolderScenes:
    """A FAID-format folder (``<Name>_ambient.png``, ``<Name>_flash.png``), real FAID or synthetic scenes.

    Args:
        root: the folder.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((4, 6, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(folder, 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     scenes = FolderScenes(folder)
        ...     scenes.keys, scenes.load('Demo_1').ambient.shape
        (['Demo_1'], (4, 6, 3))
    """
    kind = 'folder'

    def __init__(self, root: str | Path):
        self.root = str(root)
        self.keys = faid.list_faid_names(self.root)

    def load(self, key: str) -> ScenePair:
        """The pair of scene ``key``.

        Args:
            key: a scene name of ``keys``.

        Returns:
            The clean pair, its source the ambient file.

        Raises:
            MissingInputError, FaidFormatError: a file is missing or damaged.
        """
        locations = [str(Path(self.root) / f'{key}{suffix}') for suffix in (faid.AMBIENT_SUFFIX, faid.FLASH_SUFFIX)]
        client = _shared_file_client({'type': 'disk'})
        ambient, flash_only, metadata = faid.decode_pair(*[client.get(path) for path in locations], *locations)
        return ScenePair(ambient, flash_only, metadata.color_matrix, locations[0])


class LmdbScenes:
    """An LMDB of crops written by scripts/data_preparation/create_lmdb.py (:mod:`fnf_basicsr.data.lmdb_store`).

    Args:
        root: the LMDB folder.
        io_backend_opt: BasicSR ``io_backend`` options (``type`` and the LMDB paths are set here).

    Example:
        >>> import tempfile
        >>> from fnf_basicsr.data.lmdb_store import create_lmdb
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((32, 32, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(Path(folder) / 'scenes', 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     _ = create_lmdb(Path(folder) / 'scenes', Path(folder) / 'crops.lmdb', crop_size=32, progress=False)
        ...     scenes = LmdbScenes(Path(folder) / 'crops.lmdb')
        ...     scenes.keys, scenes.load(scenes.keys[0]).ambient.shape
        (['Demo_1_y00000_x00000'], (32, 32, 3))
    """
    kind = 'lmdb'

    def __init__(self, root: str | Path, io_backend_opt: dict | None = None):
        self.root = str(root)
        self.io_backend_opt = {**(io_backend_opt or {}), 'type': 'lmdb', 'db_paths': [self.root],
                               'client_keys': ['default']}
        self.keys = lmdb_crop_keys(self.root)

    def load(self, key: str) -> ScenePair:
        """The pair of crop ``key``.

        Args:
            key: a crop key of ``keys``.

        Returns:
            The clean pair, its source ``<root>:<key>_ambient``.

        Raises:
            LookupError: no such record.
            DataError: a damaged LMDB or record.
        """
        # Looked up on every call, not kept: a forked DataLoader worker must open its own LMDB handle.
        client = _shared_file_client(self.io_backend_opt)
        locations = [f'{key}{LMDB_AMBIENT_SUFFIX}', f'{key}{LMDB_FLASH_SUFFIX}']
        sources = [f'{self.root}:{location}' for location in locations]
        payloads = []
        for location in locations:
            with lmdb_errors(self.root):  # MDB_CORRUPTED & co. name the LMDB
                payload = client.get(location)
            if payload is None:
                raise LookupError(f'key {location!r} is not in the LMDB {self.root}; rebuild it with '
                                  f'scripts/data_preparation/create_lmdb.py or fix {LMDB_META_INFO}')
            payloads.append(payload)
        ambient, flash_only, metadata = decode_record_pair(*payloads, *sources)
        return ScenePair(ambient, flash_only, metadata.color_matrix, sources[0])


def open_scene_source(root: str | Path, io_backend_opt: dict | None = None) -> SceneSource:
    """The scene source at ``root``: an LMDB with ``io_backend: {type: lmdb}``, else a FAID-format folder.

    Args:
        root: the folder.
        io_backend_opt: the dataset's ``io_backend`` options (default ``{type: disk}``).

    Returns:
        A :class:`LmdbScenes` or :class:`FolderScenes`.

    Raises:
        ConfigError: an ``io_backend.type`` other than disk or lmdb.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((4, 4, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(folder, 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     type(open_scene_source(folder)).__name__
        'FolderScenes'
    """
    backend = (io_backend_opt or {}).get('type', 'disk')
    if backend not in ('disk', 'lmdb'):
        raise ConfigError(f"io_backend.type must be one of ['disk', 'lmdb'], got {backend!r}")
    return LmdbScenes(root, io_backend_opt) if backend == 'lmdb' else FolderScenes(root)


class FrozenSamples:
    """A frozen set (:mod:`fnf_basicsr.data.frozen_set`), complete and checked, as a :class:`StoredTestSet`.

    Args:
        root: the frozen set's folder.

    Raises:
        MissingInputError, DataError: no manifest, a damaged one, or an incomplete set.

    Example:
        >>> import tempfile
        >>> from fnf_basicsr.data.frozen_writer import freeze
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((48, 48, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(Path(folder) / 'scenes', 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     _ = freeze({'dataroot': str(Path(folder) / 'scenes'), 'crop_size': 16, 'dimming_factors': [50]},
        ...                Path(folder) / 'frozen', progress=False)
        ...     frozen = FrozenSamples(Path(folder) / 'frozen')
        ...     len(frozen), frozen.keys, frozen.item(0, 'noflash')['lq'].shape
        (1, ['Demo_1_dim50'], torch.Size([6, 16, 16]))
    """
    kind = 'frozen'

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.manifest = read_frozen_manifest(self.root)
        check_complete(self.root, self.manifest)
        self.entries = self.manifest['samples']
        self.keys = [entry['key'] for entry in self.entries]

    def __len__(self):
        return len(self.entries)

    def recorded_options(self) -> dict:
        """The degradation options the set was frozen with.

        Returns:
            The manifest's ``options``.
        """
        return self.manifest['options']

    def identity(self) -> dict:
        """The manifest's hash: it lists every sample file with its checksum and the freezing options.

        Returns:
            ``{'kind': 'frozen', 'manifest_sha256': ...}``.
        """
        return {'kind': self.kind,
                'manifest_sha256': hashlib.sha256((self.root / FROZEN_MANIFEST).read_bytes()).hexdigest()}

    def item(self, index: int, input_mode: str) -> dict:
        """Sample ``index`` rebuilt for a network of ``input_mode`` (its noise-std channels from the frames).

        Args:
            index: the sample, ``0 .. len - 1``.
            input_mode: one of the set's ``input_modes``.

        Returns:
            The sample in the layout of :func:`~fnf_basicsr.data.degradation.sample_dict`.

        Raises:
            ConfigError: the set was not frozen for ``input_mode``.
            MissingInputError, DataError: the sample's file is missing or damaged.
        """
        stored_modes = self.manifest['options']['input_modes']
        if input_mode not in stored_modes:
            raise ConfigError(f'{self.root}: frozen for input modes {stored_modes}, not {input_mode!r}; '
                              f'freeze it again with --input-modes {input_mode}')
        arrays = load_frozen_sample(self.root, self.entries[index])
        noflash, *second = [torch.from_numpy(arrays[name]) for name in FRAMES[input_mode]]
        sig_read, sig_shot = float(arrays['sig_read']), float(arrays['sig_shot'])
        # Frames whose noise differs from the sample's (the clean flash of srgb_awgn) store their own.
        second_noise = arrays.get(f'{FRAMES[input_mode][1]}_noise') if second else None
        lq = assemble_input(noflash, second[0] if second else None, sig_read, sig_shot, input_mode,
                            second_noise=None if second_noise is None else tuple(float(v) for v in second_noise))
        return sample_dict(lq, torch.from_numpy(arrays['gt']), arrays['color_matrix'], float(arrays['gain']),
                           sig_read, sig_shot, float(arrays['displacement']), float(arrays['dimming']),
                           str(arrays['key']), awgn_sigma=float(arrays.get('awgn_sigma', 0.0)),
                           encoded=bool(arrays.get('encoded', False)))


# (name, detect(root) -> bool, open(root) -> StoredTestSet), tried in order; frozen sets last (the fallback).
_TEST_SET_FORMATS = [('release', is_release_testset, ReleaseTestSet)]


def register_test_set_format(name: str, detect: Callable[[Path], bool],
                             opener: Callable[[Path], StoredTestSet]) -> None:
    """Teach :func:`open_stored_test_set` (so the dataset's ``frozen_root``, ``basicsr test`` and
    ``fnf-benchmark``) a stored test-set format: ``detect(root)`` says whether a folder is one,
    ``opener(root)`` returns a :class:`StoredTestSet`. Registering a name again replaces it.

    Args:
        name: the format's name.
        detect: ``root -> bool``, tried before the frozen-set fallback, in registration order.
        opener: ``root -> StoredTestSet``.

    Example:
        >>> import tempfile
        >>> register_test_set_format('demo', lambda root: (root / 'demo.txt').is_file(), lambda root: 'a demo set')
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / 'demo.txt').write_text('')
        ...     open_stored_test_set(folder)
        'a demo set'
        >>> _TEST_SET_FORMATS[:] = [entry for entry in _TEST_SET_FORMATS if entry[0] != 'demo']
    """
    _TEST_SET_FORMATS[:] = [entry for entry in _TEST_SET_FORMATS if entry[0] != name] + [(name, detect, opener)]


def open_stored_test_set(root: str | Path) -> StoredTestSet:
    """The stored test set at ``root``: a registered format whose ``detect`` accepts it, else a frozen set.

    Args:
        root: the test set's folder.

    Returns:
        The opened set.

    Raises:
        MissingInputError: no such folder, or no manifest of a frozen set.
        DataError: see the format's reader.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     try:
        ...         open_stored_test_set(folder)
        ...     except MissingInputError as error:
        ...         print('manifest.json does not exist' in str(error))
        True
    """
    root = Path(root)
    if not root.is_dir():
        raise MissingInputError(f'test set {root} does not exist; freeze one with '
                                'scripts/data_preparation/freeze_testset.py or pass the released data/testset folder')
    for _, detect, opener in _TEST_SET_FORMATS:
        if detect(root):
            return opener(root)
    return FrozenSamples(root)


def _shared_file_client(io_backend_opt):
    """One FileClient per process and backend options.

    py-lmdb refuses to open an environment twice in a process (e.g. train and val datasets on
    one LMDB), and an environment must not be used across fork(): a forked DataLoader worker
    closes what it inherited (:func:`_close_inherited_clients`) and opens its own.
    """
    options = dict(io_backend_opt)
    backend = options.pop('type', 'disk')
    cache_key = (os.getpid(), backend, repr(sorted(options.items())))
    if cache_key not in _FILE_CLIENTS:
        with lmdb_errors(options.get('db_paths', ['?'])[0] if backend == 'lmdb' else '?'):
            _FILE_CLIENTS[cache_key] = FileClient(backend, **options)
    return _FILE_CLIENTS[cache_key]


def _close_inherited_clients():
    """In a forked child: close the parent's LMDB environments (closing the child's copy leaves
    the parent's intact); py-lmdb >= 2 would otherwise refuse to open them again here."""
    for cache_key, client in list(_FILE_CLIENTS.items()):
        if cache_key[0] != os.getpid():
            if client.backend == 'lmdb':
                for env in client.client._client.values():  # BasicSR's LmdbBackend: client key -> env
                    env.close()
            del _FILE_CLIENTS[cache_key]


if hasattr(os, 'register_at_fork'):  # POSIX; with spawn, workers start with an empty cache anyway
    os.register_at_fork(after_in_child=_close_inherited_clients)
