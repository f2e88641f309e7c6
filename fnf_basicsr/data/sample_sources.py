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
    """One clean scene (or LMDB crop): 16-bit linear images, their camera -> sRGB matrix, where they were read."""
    ambient: np.ndarray
    flash_only: np.ndarray
    color_matrix: np.ndarray
    source: str


@runtime_checkable
class SceneSource(Protocol):
    """Clean pairs to degrade: ``keys`` (scene names, or ``<scene>_y<top>_x<left>`` crop keys) and ``load``."""
    root: str
    keys: list

    def load(self, key: str) -> ScenePair:
        """The pair stored under ``key``; raises with the file or record that is missing or damaged."""


@runtime_checkable
class StoredTestSet(Protocol):
    """Noisy test samples stored once, read as the dataset's samples.

    ``keys`` name the samples in order; :meth:`item` gives one in the layout of
    :func:`~fnf_basicsr.data.degradation.sample_dict`; :meth:`recorded_options` the degradation options
    the set was made with (a dict as :func:`~fnf_basicsr.data.frozen_set.degradation_options` writes, or
    None when the format records none); :meth:`identity` what identifies its content for result caches.
    """
    kind: str
    root: Path
    keys: list

    def __len__(self) -> int:
        """Number of samples."""

    def item(self, index: int, input_mode: str) -> dict:
        """Sample ``index`` for a network of ``input_mode``; raises ConfigError/DataError when the set has none."""

    def recorded_options(self) -> Optional[dict]:
        """The degradation options the samples were made with, or None."""

    def identity(self) -> dict:
        """A JSON-able value that changes whenever the samples do."""


class FolderScenes:
    """A FAID-format folder (``<Name>_ambient.png``, ``<Name>_flash.png``), real FAID or synthetic scenes."""
    kind = 'folder'

    def __init__(self, root):
        self.root = str(root)
        self.keys = faid.list_faid_names(self.root)

    def load(self, key):
        locations = [str(Path(self.root) / f'{key}{suffix}') for suffix in (faid.AMBIENT_SUFFIX, faid.FLASH_SUFFIX)]
        client = _shared_file_client({'type': 'disk'})
        ambient, flash_only, metadata = faid.decode_pair(*[client.get(path) for path in locations], *locations)
        return ScenePair(ambient, flash_only, metadata.color_matrix, locations[0])


class LmdbScenes:
    """An LMDB of crops written by scripts/data_preparation/create_lmdb.py (:mod:`fnf_basicsr.data.lmdb_store`)."""
    kind = 'lmdb'

    def __init__(self, root, io_backend_opt=None):
        self.root = str(root)
        self.io_backend_opt = {**(io_backend_opt or {}), 'type': 'lmdb', 'db_paths': [self.root],
                               'client_keys': ['default']}
        self.keys = lmdb_crop_keys(self.root)

    def load(self, key):
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


def open_scene_source(root, io_backend_opt=None):
    """The scene source at ``root``: an LMDB with ``io_backend: {type: lmdb}``, else a FAID-format folder."""
    backend = (io_backend_opt or {}).get('type', 'disk')
    if backend not in ('disk', 'lmdb'):
        raise ConfigError(f"io_backend.type must be one of ['disk', 'lmdb'], got {backend!r}")
    return LmdbScenes(root, io_backend_opt) if backend == 'lmdb' else FolderScenes(root)


class FrozenSamples:
    """A frozen set (:mod:`fnf_basicsr.data.frozen_set`), complete and checked, as a :class:`StoredTestSet`."""
    kind = 'frozen'

    def __init__(self, root):
        self.root = Path(root)
        self.manifest = read_frozen_manifest(self.root)
        check_complete(self.root, self.manifest)
        self.entries = self.manifest['samples']
        self.keys = [entry['key'] for entry in self.entries]

    def __len__(self):
        return len(self.entries)

    def recorded_options(self):
        return self.manifest['options']

    def identity(self):
        """The manifest's hash: it lists every sample file with its checksum and the freezing options."""
        return {'kind': self.kind,
                'manifest_sha256': hashlib.sha256((self.root / FROZEN_MANIFEST).read_bytes()).hexdigest()}

    def item(self, index, input_mode):
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


def register_test_set_format(name: str, detect: Callable[[Path], bool], opener: Callable[[Path], StoredTestSet]):
    """Teach :func:`open_stored_test_set` (so the dataset's ``frozen_root``, ``basicsr test`` and
    ``fnf-benchmark``) a stored test-set format: ``detect(root)`` says whether a folder is one,
    ``opener(root)`` returns a :class:`StoredTestSet`. Registering a name again replaces it."""
    _TEST_SET_FORMATS[:] = [entry for entry in _TEST_SET_FORMATS if entry[0] != name] + [(name, detect, opener)]


def open_stored_test_set(root) -> StoredTestSet:
    """The stored test set at ``root``: a registered format whose ``detect`` accepts it, else a frozen set."""
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
