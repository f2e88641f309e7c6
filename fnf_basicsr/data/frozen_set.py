"""The frozen test-set format: manifest, reader and verification (the writer: :mod:`~fnf_basicsr.data.frozen_writer`).

A frozen set stores every noisy input of a test protocol once, so that all methods are scored on
bit-identical inputs whatever the library versions. Layout of the folder:

* ``manifest.json``: ``format`` (:data:`FROZEN_FORMAT`), ``options`` (the degradation options the
  samples were made with, :func:`degradation_options`), ``complete`` (false until the last sample
  is written), ``samples`` (``index``, ``key``, ``file``, ``sha256`` of each), ``software``.
* one compressed ``.npz`` per sample: the noisy frames of each stored input mode (``noflash``,
  ``flash``, ``noflash2``), ``gt``, ``gain``, ``color_matrix``, ``sig_read``, ``sig_shot``,
  ``displacement``, ``dimming`` and ``key``. The noise-std channels of the network input are
  rebuilt from the frames on reading, so one set serves all input modes.

Samples are exactly ``FlashNoFlashDataset``'s val/test samples with the same options (the writer
calls its ``simulate``). Writing is resumable and never deletes what it did not write.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from fnf_basicsr.data.dataset_options import DEFAULTS, MISALIGNMENT_DEFAULTS, NOISE_DEFAULTS
from fnf_basicsr.data.input_layout import INPUT_MODES
from fnf_basicsr.errors import ConfigError, DataError, MissingInputError
from fnf_basicsr.utils.files import bytes_sha256, is_plain_name

FROZEN_MANIFEST = 'manifest.json'
FROZEN_FORMAT = 'fnf-basicsr frozen test set'
# Options that identify where the scenes come from rather than how they are degraded: a set moved
# to another folder, or frozen by path instead of through `synthetic:`, is still the same set.
SOURCE_KEYS = ('dataroot', 'io_backend', 'input_modes')


def degradation_options(dataset_opt: Mapping[str, Any]) -> dict[str, Any]:
    """The options that fix a frozen set's samples, with the dataset's defaults filled in.

    Args:
        dataset_opt: ``FlashNoFlashDataset`` options (YAML keys) of a val/test dataset.

    Returns:
        A flat dict (the manifest's ``options``): dataroot, io_backend, subset, crop_size, margin,
        reference, input_modes, dimming_factors, sig_read, sig_shot, seed, displacement_bins,
        scale_pivot, misalign, rotation_deg, scale_range, translation_px, fov_deg, max_images, isp,
        degradation, awgn_sigmas, awgn_clip, split, clip_input.

    Example:
        >>> options = degradation_options({'dataroot': 'datasets/synthetic', 'noise': {'sig_read': 0.01}})
        >>> options['sig_read'], options['crop_size'], options['dimming_factors'], options['input_modes']
        (0.01, 448, [100.0, 50.0, 25.0, 12.5], ['flash_noflash', 'noflash', 'noflash_burst'])
    """
    opt = {**DEFAULTS, **dataset_opt}
    noise = {**NOISE_DEFAULTS, **(dataset_opt.get('noise') or {})}
    motion = {**MISALIGNMENT_DEFAULTS, **(dataset_opt.get('misalignment') or {})}
    bins, max_images = opt['displacement_bins'], opt['max_images']
    return {
        'dataroot': None if dataset_opt.get('dataroot') is None else str(dataset_opt['dataroot']),
        'io_backend': {**DEFAULTS['io_backend'], **(dataset_opt.get('io_backend') or {})}['type'],
        'subset': opt['subset'],
        'crop_size': opt['crop_size'] if opt['crop_size'] == 'full' else int(opt['crop_size']),
        'margin': int(opt['margin']),
        'reference': opt['reference'],
        'input_modes': list(dataset_opt.get('input_modes', INPUT_MODES)),
        'dimming_factors': [float(v) for v in opt['dimming_factors']],
        'sig_read': float(noise['sig_read']),
        'sig_shot': float(noise['sig_shot']),
        'seed': int(opt['seed']),
        'displacement_bins': None if bins is None else [float(v) for v in bins],
        'scale_pivot': motion['scale_pivot'],
        'misalign': bool(motion['enabled']),
        'rotation_deg': float(motion['rotation_deg']),
        'scale_range': [float(v) for v in motion['scale_range']],
        'translation_px': [float(v) for v in motion['translation_px']],
        'fov_deg': float(motion['fov_deg']),
        'max_images': None if max_images is None else int(max_images),
        # The simulated ISP changes every frame: a set frozen with it must not score as one without.
        'isp': dict(dataset_opt['isp']) if dataset_opt.get('isp') else None,
        'clip_input': bool(opt['clip_input']),
        'degradation': opt['degradation'],
        'awgn_sigmas': [float(v) for v in opt['awgn_sigmas']],
        'awgn_clip': bool(opt['awgn_clip']),
        'split': opt['split'],
    }


def differing_options(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Names of the degradation options on which a stored set and the wanted options disagree.

    Options missing from ``stored`` (manifests written before they were recorded) count as their
    defaults.

    Args:
        stored: a manifest's ``options``.
        wanted: :func:`degradation_options` of the dataset.

    Returns:
        The sorted names; the source keys (:data:`SOURCE_KEYS`) are never compared.

    Example:
        >>> stored = degradation_options({'dataroot': 'a'})
        >>> differing_options(stored, degradation_options({'dataroot': 'b', 'seed': 3}))
        ['seed']
    """
    defaults = degradation_options({})
    return sorted(key for key in wanted if key not in SOURCE_KEYS
                  and _normalised(stored.get(key, defaults[key])) != _normalised(wanted[key]))


def _normalised(value):
    return json.loads(json.dumps(value))  # tuples -> lists, as the manifest stores them


def read_frozen_manifest(root: str | Path) -> dict:
    """The manifest of a frozen set, checked for format; raises with the fix when absent or unreadable.

    Args:
        root: the frozen set's folder.

    Returns:
        The manifest.

    Raises:
        MissingInputError: no manifest.
        DataError: an LMDB instead, unreadable JSON, another format, or sample entries naming files
            outside the folder.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     manifest = {'format': FROZEN_FORMAT, 'samples': [{'file': '00000_a.npz', 'key': 'a'}]}
        ...     _ = (Path(folder) / FROZEN_MANIFEST).write_text(json.dumps(manifest))
        ...     read_frozen_manifest(folder)['samples']
        [{'file': '00000_a.npz', 'key': 'a'}]
    """
    path = Path(root) / FROZEN_MANIFEST
    if not path.is_file():
        if (Path(root) / 'data.mdb').is_file():
            raise DataError(f'{root} is an LMDB of training crops, not a frozen test set; freeze one from it with '
                            f'scripts/data_preparation/freeze_testset.py --dataroot {root} --io-backend lmdb '
                            '--output FOLDER and pass that folder')
        raise MissingInputError(f'{path} does not exist; write the frozen set with '
                                f'scripts/data_preparation/freeze_testset.py --output {root}')
    try:
        manifest = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f'{path} is not readable JSON ({error}); the frozen set is damaged: write it again with '
                        f'scripts/data_preparation/freeze_testset.py --output {root} --overwrite') from None
    if not isinstance(manifest, dict) or manifest.get('format') != FROZEN_FORMAT:
        found = manifest.get('format') if isinstance(manifest, dict) else type(manifest).__name__
        raise DataError(f'{path}: not a frozen set manifest (format {found!r}, expected {FROZEN_FORMAT!r})')
    _check_sample_files(path, manifest.get('samples', []))
    return manifest


def _check_sample_files(path, samples):
    """Every sample a manifest lists is a plain ``.npz`` name of the set's folder with a plain key: a manifest
    naming ``../x`` or an absolute path is refused, so neither reading, reports nor ``--overwrite`` reach outside."""
    if not isinstance(samples, list):
        raise DataError(f'{path}: samples is not a list; the frozen set is damaged: freeze it again')
    for entry in samples:
        name, key = (entry.get('file'), entry.get('key')) if isinstance(entry, dict) else (None, None)
        if not (is_plain_name(name) and name.endswith('.npz')):
            raise DataError(f'{path} lists the sample file {name!r}, which is not a .npz file of the set\'s '
                            'folder; the manifest is damaged or crafted: delete the folder and freeze the set again')
        if not is_plain_name(key):  # keys name report files (fnf-benchmark strips)
            raise DataError(f'{path} lists the sample key {key!r}, which is not a plain name; the manifest is '
                            'damaged or crafted: delete the folder and freeze the set again')


def load_frozen_sample(root: str | Path, entry: Mapping[str, Any], verify: bool = True) -> dict[str, np.ndarray]:
    """Arrays of one frozen sample (dict name -> numpy array), checked for checksum and finiteness.

    Args:
        root: the frozen set's folder.
        entry: the sample's manifest entry (``file``, ``sha256``).
        verify: compare the file's SHA-256 with the entry's.

    Returns:
        Array name -> numpy array.

    Raises:
        MissingInputError: the file is missing.
        DataError: its checksum differs, or an array holds NaN or Inf.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     buffer = io.BytesIO()
        ...     np.savez(buffer, gain=np.float32(50))
        ...     _ = (Path(folder) / 'a.npz').write_bytes(buffer.getvalue())
        ...     entry = {'file': 'a.npz', 'sha256': bytes_sha256(buffer.getvalue())}
        ...     load_frozen_sample(folder, entry)
        {'gain': array(50., dtype=float32)}
    """
    path = Path(root) / entry['file']
    if not path.is_file():
        raise MissingInputError(f'{path} is listed in {Path(root) / FROZEN_MANIFEST} but missing; resume '
                                f'scripts/data_preparation/freeze_testset.py to write it again')
    payload = path.read_bytes()
    if verify and bytes_sha256(payload) != entry['sha256']:
        raise DataError(f'{path}: checksum differs from the manifest (corrupt or modified file); delete it and '
                        f'resume scripts/data_preparation/freeze_testset.py')
    with np.load(io.BytesIO(payload)) as arrays:
        sample = {name: arrays[name] for name in arrays.files}
    for name, array in sample.items():
        if array.dtype.kind == 'f' and not np.all(np.isfinite(array)):
            raise DataError(f'{path}: array {name!r} holds NaN or Inf values; delete the file and resume '
                            f'scripts/data_preparation/freeze_testset.py')
    return sample


def check_complete(root: str | Path, manifest: Mapping[str, Any]) -> None:
    """Refuse a frozen set whose writing did not finish.

    Args:
        root: the frozen set's folder (named in the message).
        manifest: its manifest.

    Raises:
        DataError: ``complete`` is not set.

    Example:
        >>> check_complete('frozen', {'complete': True})
        >>> try:
        ...     check_complete('frozen', {'complete': False})
        ... except DataError as error:
        ...     print(str(error).split(';')[0])
        frozen/manifest.json: the frozen set is incomplete (interrupted run)
    """
    if not manifest.get('complete'):
        raise DataError(f'{Path(root) / FROZEN_MANIFEST}: the frozen set is incomplete (interrupted run); run '
                        f'scripts/data_preparation/freeze_testset.py again with the same options to finish it')


def check_matches(root: str | Path, manifest: Mapping[str, Any], dataset_opt: Mapping[str, Any],
                  option_file: str | Path | None = None) -> None:
    """Refuse a frozen set made with other degradation options than those ``dataset_opt`` describes.

    Args:
        root: the frozen set's folder (named in the message).
        manifest: its manifest.
        dataset_opt: the dataset's options.
        option_file: the option file they come from, named in the fix.

    Raises:
        ConfigError: the options differ (the first few are named, frozen and wanted).

    Example:
        >>> manifest = {'options': degradation_options({'dataroot': 'a'})}
        >>> check_matches('frozen', manifest, {'dataroot': 'a'})
        >>> try:
        ...     check_matches('frozen', manifest, {'dataroot': 'a', 'seed': 1})
        ... except ConfigError as error:
        ...     print(str(error).split(';')[0])
        frozen was frozen with other options than the dataset asks for (seed: frozen 0, options 1)
    """
    changed = differing_options(manifest.get('options', {}), degradation_options(dataset_opt))
    if changed:
        stored = manifest.get('options', {})
        details = ', '.join(f'{key}: frozen {stored.get(key)!r}, options {degradation_options(dataset_opt)[key]!r}'
                            for key in changed[:4])
        source = f'-opt {option_file}' if option_file else 'the same options'
        raise ConfigError(f'{root} was frozen with other options than the dataset asks for ({details}); freeze it '
                          f'again with scripts/data_preparation/freeze_testset.py {source} --overwrite, or point '
                          f'frozen_root at a set frozen from these options')
