"""``plugins:``: the listed packages are imported (their registrations count), a missing one is named with the fix."""
import pytest
from conftest import PLUGINS_DIR

from fnf_basicsr.errors import ConfigError
from fnf_basicsr.utils.plugins import import_plugins


def test_listed_plugins_are_imported_and_register_their_networks(monkeypatch):
    from basicsr.utils.registry import ARCH_REGISTRY
    monkeypatch.syspath_prepend(str(PLUGINS_DIR))
    modules = import_plugins({'plugins': ['example_restorer_plugin', 'json']}, 'o.yml')
    assert [module.__name__ for module in modules] == ['example_restorer_plugin', 'json']
    assert 'ExamplePluginRestorer' in ARCH_REGISTRY
    assert import_plugins({}, 'o.yml') == [] and import_plugins({'plugins': None}, 'o.yml') == []


def test_a_missing_plugin_is_named_with_the_file_and_the_fix():
    with pytest.raises(ConfigError, match=r"o\.yml: plugins: cannot import 'no_such_pkg_x' .*install that package"):
        import_plugins({'plugins': ['no_such_pkg_x']}, 'o.yml')
