"""Writing frozen test sets: what to freeze (an option file and flags) and the resumable writer.

The format and its reader are :mod:`fnf_basicsr.data.frozen_set`; the writer makes every sample with
``FlashNoFlashDataset.simulate`` (so a frozen sample is exactly the dataset's), which is why it
lives apart from the reader the dataset itself imports.
"""
from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from fnf_basicsr.data import faid
from fnf_basicsr.data.degradation import AWGN_UNIT
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.frozen_set import (FROZEN_FORMAT, FROZEN_MANIFEST, degradation_options, differing_options,
                                         read_frozen_manifest)
from fnf_basicsr.data.input_layout import FRAMES, image_channels
from fnf_basicsr.errors import ConfigError, OutputExistsError
from fnf_basicsr.utils.files import (bytes_sha256, check_separate, fault_point, file_sha256, prepare_output_folder,
                                     remove_owned, remove_stale_temporaries, write_atomically)
from fnf_basicsr.utils.options import load_option_file


# ------------------------------------------------------------------------------------------ requests

FIG3_DIMMING = 50.0
FIG3_NUM_IMAGES = 64
SUBSET_CHOICES = ('auto', 'all', 'train', 'val', 'test')
# Flat overrides (the freeze script's flags) -> where they go in a dataset's options.
_NESTED_OVERRIDES = {'sig_read': ('noise', 'sig_read'), 'sig_shot': ('noise', 'sig_shot'),
                     'scale_pivot': ('misalignment', 'scale_pivot'), 'io_backend': ('io_backend', 'type')}


def read_option_file_dataset(option_file: str | Path, dataset_name: str | None = None) -> tuple[dict, str]:
    """``(dataset options, name)`` of one dataset of a BasicSR option file (default: the one named test*).

    Args:
        option_file: a BasicSR option file with a ``datasets`` section.
        dataset_name: which dataset; default: the only one whose name starts with ``test`` (or the only one).

    Returns:
        A copy of the dataset's options, and its name.

    Raises:
        MissingInputError: no such file.
        ConfigError: no datasets, no such dataset, or several test datasets and no name.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     text = 'datasets: {train: {crop_size: 448}, test_1: {crop_size: 256}}'
        ...     _ = (Path(folder) / 'test.yml').write_text(text)
        ...     read_option_file_dataset(Path(folder) / 'test.yml')
        ({'crop_size': 256}, 'test_1')
    """
    path = Path(option_file)
    opt = load_option_file(path, 'a test option file', 'options/test_fnf.yml')
    datasets = opt.get('datasets')
    if not isinstance(datasets, dict) or not datasets:
        raise ConfigError(f'{path} has no datasets: section; pass a test option file')
    if dataset_name is None:
        tests = [name for name in datasets if name.startswith('test')] or list(datasets)
        if len(tests) > 1:
            raise ConfigError(f'{path} has several datasets ({tests}); choose one with --dataset NAME')
        dataset_name = tests[0]
    if dataset_name not in datasets:
        raise ConfigError(f'{path} has no dataset {dataset_name!r} (it has {sorted(datasets)}); fix --dataset')
    return dict(datasets[dataset_name]), dataset_name


def freeze_request(option_file: str | Path | None = None, dataset_name: str | None = None,
                   output: str | Path | None = None, **overrides: Any) -> tuple[dict, Path]:
    """The dataset options to freeze and the output folder, from an option file and/or overrides.

    Args:
        option_file: a BasicSR test option file; its dataset's options are the base.
        dataset_name: which of its datasets (default: the test one).
        output: output folder; default: the dataset's ``frozen_root``.
        **overrides: flat options (None: not given): dataroot, subset ('auto': the paper's test
            scenes when the folder holds any, else all), crop_size, margin, reference,
            input_modes, dimming_factors, sig_read, sig_shot, seed, displacement_bins,
            scale_pivot, max_images, io_backend.

    Returns:
        ``(dataset_opt, output)``.

    Raises:
        ConfigError: no dataroot or output folder, bad dimming factors or seed, or a bad option file.

    Example:
        >>> dataset_opt, output = freeze_request(dataroot='datasets/faid', subset='test', output='frozen',
        ...                                      displacement_bins=[0, 4, 8])
        >>> dataset_opt['subset'], dataset_opt['dimming_factors'], dataset_opt['max_images'], output.name
        ('test', [50.0], 64, 'frozen')
    """
    dataset_opt = read_option_file_dataset(option_file, dataset_name)[0] if option_file else {}
    overrides = {key: value for key, value in overrides.items() if value is not None}
    if not option_file:
        overrides.setdefault('subset', 'auto')
    for key, value in overrides.items():
        if key in _NESTED_OVERRIDES:
            section, name = _NESTED_OVERRIDES[key]
            dataset_opt[section] = {**(dataset_opt.get(section) or {}), name: value}
        else:
            dataset_opt[key] = value
    _check_numbers(dataset_opt)
    if dataset_opt.get('displacement_bins') is not None:
        dataset_opt.setdefault('dimming_factors', [FIG3_DIMMING])
        dataset_opt.setdefault('max_images', FIG3_NUM_IMAGES)
    if 'dataroot' not in dataset_opt:
        raise ConfigError('no dataroot: pass -opt with a test option file whose dataset names its dataroot, or '
                          '--dataroot FOLDER')
    if dataset_opt.get('subset') == 'auto':
        dataset_opt['subset'] = _auto_subset(dataset_opt)
    output = output or dataset_opt.get('frozen_root')
    if not output:
        raise ConfigError('no output folder: pass --output, or give the dataset a frozen_root in the option file')
    dataset_opt.pop('frozen_root', None)
    return dataset_opt, Path(output)


def _check_numbers(dataset_opt):
    """Refuse, naming the flag, dimming factors (1/alpha) that are not finite and positive (0 would divide by
    zero, a negative one flip the image) and a negative seed (NumPy's generators take none)."""
    factors, seed = dataset_opt.get('dimming_factors'), dataset_opt.get('seed')
    if factors is not None and (not isinstance(factors, (list, tuple)) or not factors or not all(
            isinstance(f, (int, float)) and not isinstance(f, bool) and math.isfinite(f) and f > 0 for f in factors)):
        raise ConfigError(f'dimming_factors (--dimming-factors) must be finite numbers > 0 (1/alpha, e.g. 100 50 25 '
                          f'12.5), got {factors!r}')
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ConfigError(f'seed (--seed) must be an integer >= 0, got {seed!r}')


def _auto_subset(dataset_opt):
    if (dataset_opt.get('io_backend') or {}).get('type') == 'lmdb':
        return 'test'
    names = set(faid.list_faid_names(dataset_opt['dataroot']))
    return 'test' if names & set(faid.load_split(dataset_opt.get('split', 'paper'), 'test')) else 'all'


# ------------------------------------------------------------------------------------------ writing


def sample_arrays(dataset: FlashNoFlashDataset, index: int, options: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Everything stored for sample ``index``: the frames of each mode, target and scalars.

    Args:
        dataset: a val/test dataset.
        index: the sample.
        options: :func:`~fnf_basicsr.data.frozen_set.degradation_options` of the dataset.

    Returns:
        Array name -> numpy array: the noisy frames (``noflash``, ``flash``, ``noflash2``), ``gt``,
        ``gain``, ``color_matrix``, ``displacement``, ``dimming``, ``sig_read``, ``sig_shot``, ``key``
        (and ``awgn_sigma``, ``encoded``, ``flash_noise`` for ``srgb_awgn``).

    Raises:
        RuntimeError: a frame differs between the input modes (it never should).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((48, 48, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(folder, 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     dataset_opt = {'dataroot': folder, 'crop_size': 16, 'dimming_factors': [50]}
        ...     dataset = FlashNoFlashDataset({**dataset_opt, 'phase': 'test'})
        ...     arrays = sample_arrays(dataset, 0, degradation_options(dataset_opt))
        >>> sorted(arrays)[:6], arrays['noflash'].shape, str(arrays['key'])
        (['color_matrix', 'dimming', 'displacement', 'flash', 'gain', 'gt'], (3, 16, 16), 'Demo_1_dim50')
    """
    arrays = {}
    for mode in options['input_modes']:
        sample = dataset.simulate(index, mode)
        for frame_index, name in enumerate(FRAMES[mode]):
            frame = sample['lq'][image_channels(frame_index)].numpy()
            if name in arrays and not np.array_equal(arrays[name], frame):
                raise RuntimeError(f'sample {index}: frame {name!r} differs between input modes')
            arrays[name] = frame
    arrays['gt'] = sample['gt'].numpy()
    for name in ('gain', 'color_matrix', 'displacement', 'dimming'):
        arrays[name] = sample[name].numpy()
    # The exact (float64) noise levels the frames were made with: the std channels are rebuilt from them.
    arrays['sig_read'], arrays['sig_shot'] = np.float64(options['sig_read']), np.float64(options['sig_shot'])
    if options['degradation'] == 'srgb_awgn':
        sigma = float(sample['awgn_sigma'])
        arrays['sig_read'], arrays['sig_shot'] = np.float64(sigma / AWGN_UNIT), np.float64(0.0)
        arrays['awgn_sigma'], arrays['encoded'] = np.float32(sigma), np.bool_(True)
        arrays['flash_noise'] = np.zeros(2)  # the flash is clean; the dataset reads it as <frame>_noise
    arrays['key'] = np.array(sample['key'])
    return arrays


def encode_npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    """The bytes of a compressed ``.npz`` file holding ``arrays``.

    Args:
        arrays: array name -> array.

    Returns:
        What ``np.savez_compressed`` writes.

    Example:
        >>> with np.load(io.BytesIO(encode_npz({'gain': np.float32(50)}))) as loaded:
        ...     float(loaded['gain'])
        50.0
    """
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def write_manifest(output: str | Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` into the set's folder, atomically (replacing the previous one).

    Args:
        output: the frozen set's folder.
        manifest: the manifest.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_manifest(folder, {'format': FROZEN_FORMAT, 'samples': []})
        ...     json.loads((Path(folder) / FROZEN_MANIFEST).read_text())['samples']
        []
    """
    write_atomically(Path(output) / FROZEN_MANIFEST, json.dumps(manifest, indent=1).encode(), overwrite=True)


def check_output_location(output: str | Path, inputs: Iterable[str | Path | None]) -> None:
    """Refuse an output that is, contains or lies inside an input; make sure the folder can be written, first.

    Args:
        output: the frozen set's folder (created if missing).
        inputs: the folders read (None entries are skipped).

    Raises:
        ConfigError: ``output`` is, contains or lies inside an input.
        OutputError: the folder cannot be created or written.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     check_output_location(Path(folder) / 'frozen', [Path(folder) / 'scenes'])
        ...     (Path(folder) / 'frozen').is_dir()
        True
    """
    check_separate(output, inputs, '--output', 'write the frozen set to another folder')
    prepare_output_folder(output, 'frozen set')


def remove_written_files(output: str | Path, manifest: Mapping[str, Any]) -> None:
    """Delete what a previous run of the writer left: its listed samples, temporaries and manifest (only those,
    checked on resolved paths before any is deleted).

    Args:
        output: the frozen set's folder.
        manifest: its manifest (``samples`` list the files).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for name in ('00000_a.npz', FROZEN_MANIFEST, 'notes.txt'):
        ...         _ = (Path(folder) / name).write_bytes(b'')
        ...     remove_written_files(folder, {'samples': [{'file': '00000_a.npz'}]})
        ...     sorted(path.name for path in Path(folder).iterdir())
        ['notes.txt']
    """
    names = [entry['file'] for entry in manifest.get('samples', [])]
    remove_owned(output, [*names, FROZEN_MANIFEST])
    remove_stale_temporaries(output, any_name=True)


def prepare_output(output: str | Path, options: Mapping[str, Any], overwrite: bool,
                   software: Mapping[str, str]) -> dict:
    """The manifest to continue: the existing one when written with the same options, else a fresh one.

    ``overwrite`` replaces only a frozen set written by this module (the files its manifest lists);
    a folder holding anything else is never emptied.

    Args:
        output: the frozen set's folder (existing).
        options: :func:`~fnf_basicsr.data.frozen_set.degradation_options` of the set to write.
        overwrite: replace a set written with other options.
        software: versions recorded in a fresh manifest.

    Returns:
        The manifest (``complete`` false for a fresh one).

    Raises:
        OutputExistsError: a set of other options without ``overwrite``, or files that are no frozen set.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     manifest = prepare_output(folder, degradation_options({}), False, {'numpy': np.__version__})
        >>> manifest['complete'], manifest['samples']
        (False, [])
    """
    output = Path(output)
    manifest_path = output / FROZEN_MANIFEST
    if manifest_path.is_file():
        manifest = read_frozen_manifest(output)
        changed = differing_options(manifest.get('options', {}), options)
        if not changed:
            remove_stale_temporaries(output, any_name=True)  # left by a killed run
            return manifest
        if not overwrite:
            raise OutputExistsError(f'{output} holds a frozen set written with other options ({changed}); choose '
                                    f'another --output or pass --overwrite to replace that set')
        remove_written_files(output, manifest)
    elif any(path.name != FROZEN_MANIFEST for path in output.iterdir() if path.suffix != '.tmp'):
        raise OutputExistsError(f'{output} exists and holds files that are not a frozen set; choose an empty or new '
                                f'--output (nothing in it is deleted, not even with --overwrite)')
    return {'format': FROZEN_FORMAT, 'options': options, 'complete': False, 'samples': [], 'software': software}


def is_written(output: str | Path, entry: Mapping[str, Any]) -> bool:
    """Whether a manifest entry's file exists with its recorded checksum.

    Args:
        output: the frozen set's folder.
        entry: the sample's manifest entry (``file``, ``sha256``).

    Returns:
        True when the file is there and its SHA-256 is the entry's.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / 'a.npz').write_bytes(b'data')
        ...     is_written(folder, {'file': 'a.npz', 'sha256': bytes_sha256(b'data')}), is_written(
        ...         folder, {'file': 'a.npz', 'sha256': None})
        (True, False)
    """
    path = Path(output) / entry['file']
    return entry.get('sha256') is not None and path.is_file() and file_sha256(path) == entry['sha256']


def freeze(dataset_opt: Mapping[str, Any], output: str | Path, overwrite: bool = False,
           progress: bool = True) -> tuple[int, int]:
    """Write (or complete) the frozen set of the val/test dataset ``dataset_opt`` in ``output``.

    The options are checked and the first sample is made before the output folder is created or
    touched, so a set that cannot be made (bad options, crops larger than the images) leaves nothing.

    Args:
        dataset_opt: ``FlashNoFlashDataset`` options; ``input_modes`` picks the modes stored.
        output: the frozen set's folder.
        overwrite: replace a set written with other options (never other files).
        progress: show a tqdm progress bar.

    Returns:
        ``(written, skipped)`` sample counts.

    Raises:
        ConfigError, DataError: bad options, unreadable scenes, crops larger than the images.
        OutputExistsError: see :func:`prepare_output`.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((48, 48, 3), 0.5, np.float32)
        ...     faid.write_faid_pair(Path(folder) / 'scenes', 'Demo_1', image, image, faid.ColorMetadata(np.eye(3), 21))
        ...     dataset_opt = {'dataroot': str(Path(folder) / 'scenes'), 'crop_size': 16, 'dimming_factors': [50, 25]}
        ...     freeze(dataset_opt, Path(folder) / 'frozen', progress=False)
        ...     sorted(path.name for path in (Path(folder) / 'frozen').iterdir())
        (2, 0)
        ['00000_Demo_1_dim50.npz', '00001_Demo_1_dim25.npz', 'manifest.json']
    """
    import torch
    from tqdm import tqdm

    import fnf_basicsr

    options = degradation_options(dataset_opt)
    check_separate(output, [options['dataroot']], '--output', 'write the frozen set to another folder')
    dataset_opt = {key: value for key, value in dataset_opt.items() if key not in ('frozen_root', 'input_modes')}
    dataset = FlashNoFlashDataset({**dataset_opt, 'phase': 'test'})
    first = sample_arrays(dataset, 0, options)  # fails here, before any output, if the crops do not fit
    check_output_location(output, [options['dataroot']])
    software = {'fnf_basicsr': fnf_basicsr.__version__, 'torch': torch.__version__, 'numpy': np.__version__}
    manifest = prepare_output(output, options, overwrite, software)
    done = {entry['index']: entry for entry in manifest['samples']}
    write_manifest(output, manifest)  # first: from now on the folder is an (incomplete) set that a rerun resumes
    written = skipped = 0
    for index in tqdm(range(len(dataset)), desc=f'freeze {Path(output).name}', unit='sample', disable=not progress):
        entry = done.get(index)
        if entry is not None and is_written(output, entry):
            skipped += 1
            continue
        arrays = first if index == 0 else sample_arrays(dataset, index, options)
        key = str(arrays['key'])
        payload = encode_npz(arrays)
        entry = {'index': index, 'key': key, 'file': f'{index:05d}_{key}.npz', 'sha256': bytes_sha256(payload)}
        done[index] = entry
        manifest['samples'] = [done[i] for i in sorted(done)]
        write_manifest(output, manifest)  # listed before it is written: --overwrite and a rerun know every file
        write_atomically(Path(output) / entry['file'], payload, overwrite=True)
        written += 1
        fault_point('freeze_sample')
    manifest['complete'] = True
    write_manifest(output, manifest)
    return written, skipped
