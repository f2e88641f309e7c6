"""BasicSR-style discovery: import every module of a subpackage whose file ends in a suffix."""
from __future__ import annotations

import importlib
import os
from types import ModuleType


def import_suffixed_modules(package_name: str, package_file: str, suffix: str) -> list[ModuleType]:
    """Import ``<package_name>.<stem>`` for each ``<stem><suffix>.py`` beside ``package_file``.

    Args:
        package_name: the dotted name of the package, e.g. its ``__name__``.
        package_file: a file of the package (its ``__init__.py``, i.e. ``__file__``).
        suffix: the end of the module names to import, e.g. ``'_loss'``.

    Returns:
        The imported modules, sorted by name so registration order is stable.

    Example:
        >>> import fnf_basicsr.losses
        >>> [m.__name__ for m in import_suffixed_modules('fnf_basicsr.losses', fnf_basicsr.losses.__file__, '_loss')]
        ['fnf_basicsr.losses.gradient_loss']
    """
    folder = os.path.dirname(os.path.abspath(package_file))
    stems = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(f'{suffix}.py'))
    return [importlib.import_module(f'{package_name}.{stem}') for stem in stems]
