"""Other BasicSR plugins an option file lists under ``plugins:``, imported before anything is built.

``basicsr train|test`` import them before BasicSR reads the file; ``fnf-benchmark`` and ``fnf-denoise``
import those of the option file a checkpoint was trained with, so a plugin's network is loaded, scored and
used as ours are.
"""
import importlib

from fnf_basicsr.errors import ConfigError


def import_plugins(opt: dict, path) -> list:
    """Import every module named under ``opt['plugins']`` (their registrations then count).

    Args:
        opt: the parsed option file.
        path: the option file, named in errors.

    Returns:
        The imported modules, in the file's order.

    Raises:
        ConfigError: a listed module cannot be imported (named, with the fix).

    Example:
        >>> [module.__name__ for module in import_plugins({'plugins': ['json']}, 'o.yml')]
        ['json']
    """
    modules = []
    for name in opt.get('plugins') or []:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as error:
            raise ConfigError(f'{path}: plugins: cannot import {name!r} ({error}); install that package or fix '
                              'its name') from None
    return modules
