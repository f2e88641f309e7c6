"""BasicSR-style discovery (fnf_basicsr.utils.discovery): every <stem><suffix>.py of a package is imported, in name
order, and nothing else."""
import sys
from pathlib import Path

import pytest

import fnf_basicsr.archs
import fnf_basicsr.losses
from fnf_basicsr.utils.discovery import import_suffixed_modules

PACKAGE = 'discovery_probe_pkg'


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A package whose modules append their name to ``imported`` when imported (as registration would)."""
    folder = tmp_path / PACKAGE
    folder.mkdir()
    (folder / '__init__.py').write_text('imported = []\n')
    for stem in ('zeta_arch', 'alpha_arch', 'beta_arch', 'helper', 'arch_util', 'gamma_arch_test'):
        (folder / f'{stem}.py').write_text(f'from {PACKAGE} import imported\nimported.append({stem!r})\n')
    (folder / 'notes_arch.txt').write_text('not a module\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    yield folder
    for name in [name for name in sys.modules if name == PACKAGE or name.startswith(f'{PACKAGE}.')]:
        del sys.modules[name]


def test_imports_the_suffixed_modules_in_name_order_and_nothing_else(package):
    modules = import_suffixed_modules(PACKAGE, str(package / '__init__.py'), '_arch')
    names = [module.__name__ for module in modules]
    assert names == [f'{PACKAGE}.alpha_arch', f'{PACKAGE}.beta_arch', f'{PACKAGE}.zeta_arch']
    assert sys.modules[PACKAGE].imported == ['alpha_arch', 'beta_arch', 'zeta_arch']  # registration order
    assert not {f'{PACKAGE}.{stem}' for stem in ('helper', 'arch_util', 'gamma_arch_test')} & set(sys.modules)
    assert import_suffixed_modules(PACKAGE, str(package / '__init__.py'), '_none') == []


def test_a_second_discovery_returns_the_same_modules_without_importing_again(package):
    first = import_suffixed_modules(PACKAGE, str(package / '__init__.py'), '_arch')
    second = import_suffixed_modules(PACKAGE, str(package / '__init__.py'), '_arch')
    assert [a is b for a, b in zip(first, second, strict=True)] == [True] * 3
    assert len(sys.modules[PACKAGE].imported) == 3


def test_the_packages_networks_and_losses_are_those_on_disk():
    for package, suffix in ((fnf_basicsr.archs, '_arch'), (fnf_basicsr.losses, '_loss')):
        folder = package.__path__[0]
        modules = import_suffixed_modules(package.__name__, package.__file__, suffix)
        on_disk = sorted(path.stem for path in Path(folder).glob(f'*{suffix}.py'))
        assert [module.__name__.rsplit('.', 1)[1] for module in modules] == on_disk and on_disk
