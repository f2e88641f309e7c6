"""BasicSR-style discovery: import every module of a subpackage whose file ends in a suffix."""
import importlib
import os


def import_suffixed_modules(package_name, package_file, suffix):
    """Import ``<package_name>.<stem>`` for each ``<stem><suffix>.py`` beside ``package_file``.

    Returns the imported modules, sorted by name so registration order is stable.
    """
    folder = os.path.dirname(os.path.abspath(package_file))
    stems = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(f'{suffix}.py'))
    return [importlib.import_module(f'{package_name}.{stem}') for stem in stems]
