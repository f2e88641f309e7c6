"""Which scenes of a FAID-format collection a dataset, an LMDB or a frozen set uses (``subset``, ``split``)."""
from __future__ import annotations

from pathlib import Path
from typing import Collection, Iterable

import numpy as np
from basicsr.utils import get_root_logger

from fnf_basicsr.data import faid
from fnf_basicsr.data.dataset_options import DEFAULT_NUM_VAL, SUBSETS
from fnf_basicsr.errors import ConfigError


def select_names(names: Iterable[str], subset: str = 'all', exclude_test_split: bool = True,
                 num_val: int = DEFAULT_NUM_VAL, val_names: Iterable[str] | None = None,
                 split: str = 'paper') -> list[str]:
    """The scene names of a subset of a FAID-format collection.

    Args:
        names: all scene names available.
        subset: ``'test'``: the test scenes of ``split`` that are present; ``'all'``: every
            scene; ``'val'``: ``val_names`` if given, else the split's validation list if it has
            one, else ``num_val`` scenes chosen by a fixed-seed permutation of the sorted names (the
            same on every machine); ``'train'``: all but the ``'val'`` scenes.
        exclude_test_split: leave the test scenes out of ``'all'``, ``'train'`` and ``'val'``.
        num_val: size of the deterministic validation selection.
        val_names: explicit validation scene names (e.g. the released code's ``val.txt``).
        split: ``'paper'`` (DeepFnF's 128 test scenes) or ``'ridfnf'`` (RIDFnF's 256 test and 256
            validation scenes), :func:`fnf_basicsr.data.faid.load_split`.

    Returns:
        Sorted list of names.

    Raises:
        ConfigError: ``subset`` is not one of :data:`~fnf_basicsr.data.dataset_options.SUBSETS`.

    Example:
        >>> names = [f'Synth_{i}' for i in range(6)]
        >>> select_names(names, 'val', num_val=2), len(select_names(names, 'train', num_val=2))
        (['Synth_2', 'Synth_3'], 4)
    """
    if subset not in SUBSETS:
        raise ConfigError(f'subset must be one of {list(SUBSETS)}, got {subset!r}')
    test_names = set(faid.load_split(split, 'test'))
    if val_names is None:
        val_names = faid.load_split(split, 'val')
    if subset == 'test':
        return sorted(name for name in names if name in test_names)
    pool = sorted(name for name in names if not (exclude_test_split and name in test_names))
    if subset == 'all':
        return pool
    if val_names is not None:
        validation = set(val_names) & set(pool)
    else:
        order = np.random.default_rng(0).permutation(len(pool))
        validation = {pool[i] for i in order[:min(num_val, len(pool))]}
    return [name for name in pool if (name in validation) == (subset == 'val')]


def read_val_names(path: str | Path, scenes: Collection[str]) -> list[str]:
    """The scene names of a ``val_names_file``; refused when none of them is a scene of the dataset, and the
    names it lists that are not there are logged (a typo or another dataset's list would otherwise pass).

    Args:
        path: the text file, one scene name per line.
        scenes: the dataset's scene names.

    Returns:
        The listed names that are scenes of the dataset, in the file's order.

    Raises:
        ConfigError: the file cannot be read, or none of its names is a scene.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / 'val.txt').write_text('Toys_1\\nToys_2\\n')
        ...     read_val_names(Path(folder) / 'val.txt', {'Toys_2', 'Toys_3'})
        ['Toys_2']
    """
    try:
        names = Path(path).read_text(encoding='utf-8').split()
    except OSError as error:
        raise ConfigError(f'val_names_file {path}: cannot read it ({error.strerror})') from None
    found = [name for name in names if name in scenes]
    if not found:
        example = f' (e.g. {sorted(scenes)[0]})' if scenes else ''
        raise ConfigError(f'val_names_file {path}: none of its {len(names)} names is a scene of this dataset'
                          f'{example}; list scene names without _ambient.png / _flash.png, one per line')
    if len(found) < len(names):
        missing = [name for name in names if name not in scenes]
        get_root_logger().warning(f'val_names_file {path}: {len(missing)} of {len(names)} names are not in this '
                                  f'dataset and are ignored, e.g. {missing[:3]}')
    return found
