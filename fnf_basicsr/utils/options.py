"""Option files and ``--force_yml`` overrides: read safely, checked in one place, one-line errors naming the key.

Every option file we or BasicSR read goes through :func:`load_option_file` (BasicSR itself only ever reads
the file :func:`effective_options` produced, see ``fnf_basicsr.compat``):

* YAML safe loading: no Python tag is constructed, nothing is evaluated;
* a key given twice in one mapping is refused (plain YAML keeps the last one silently);
* ``1e-3`` and ``1e3`` are numbers, as in YAML 1.2 (YAML 1.1, PyYAML's default, reads them as strings).

``--force_yml KEY=VALUE`` values are parsed by the same loader (:func:`parse_override`), never by BasicSR,
whose parser calls ``eval`` on values starting with ``[`` and ``exec`` on the keys. :func:`check_option_values`
then reads every known numeric option as a number or refuses it in one line naming the key.
"""
from __future__ import annotations

import difflib
import fnmatch
import os
import re
import sys
from collections.abc import Callable, Iterable
from typing import IO, Any

import yaml

from fnf_basicsr.errors import ConfigError, MissingInputError

# The first line of the option file BasicSR copies into experiments/<name>/ when it holds the options after
# every override (fnf-denoise and fnf-benchmark build the network from that copy).
EFFECTIVE_MARKER = '# EFFECTIVE OPTIONS'
_MERGE_TAG = 'tag:yaml.org,2002:merge'
_OPTION_NAME = re.compile(r'^[A-Za-z0-9_.\-]+$')
# YAML 1.2 floats without a dot (1e3, 1e-3, 1.5E+2, .5e3): YAML 1.1 reads them as strings.
_EXPONENT_FLOAT = re.compile(r'^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$')


class DuplicateKeyError(yaml.YAMLError):
    """A mapping names one key twice.

    Example:
        >>> try:
        ...     load_yaml('{lr: 1, lr: 2}')
        ... except DuplicateKeyError as error:
        ...     print(error)
        key 'lr' is given twice (line 1 and line 1; the last one would win silently); keep one
    """


class OptionLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and reads exponent-only floats as numbers.

    Example:
        >>> yaml.load('{lr: 1e-3, iters: 1e3, name: 1e3x}', Loader=OptionLoader)
        {'lr': 0.001, 'iters': 1000.0, 'name': '1e3x'}
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        """``SafeLoader.construct_mapping``, after refusing a key given twice (merged ``<<`` keys aside).

        Args:
            node: the mapping's YAML node.
            deep: construct nested objects at once (SafeLoader's argument).

        Returns:
            The mapping.

        Raises:
            DuplicateKeyError: naming the key and both lines.
        """
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE_TAG:
                continue  # keys merged in with << may be overridden: that is what merging is for
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node)
            except TypeError:
                continue  # an unhashable key: SafeLoader reports it
            if first is not key_node:
                raise DuplicateKeyError(f'key {key!r} is given twice (line {first.start_mark.line + 1} and line '
                                        f'{key_node.start_mark.line + 1}; the last one would win silently); keep '
                                        'one')
        return super().construct_mapping(node, deep)


OptionLoader.add_implicit_resolver('tag:yaml.org,2002:float', _EXPONENT_FLOAT, list('-+.0123456789'))


def load_yaml(text_or_stream: str | IO) -> Any:
    """The YAML document of a string or open file, read with :class:`OptionLoader`.

    Args:
        text_or_stream: YAML text, or a file open for reading.

    Returns:
        The document: a mapping, list or scalar.

    Raises:
        DuplicateKeyError: a mapping names a key twice.
        yaml.YAMLError: the text is not valid YAML.

    Example:
        >>> load_yaml('[1e-3, ~, yes]')
        [0.001, None, True]
    """
    return yaml.load(text_or_stream, Loader=OptionLoader)


def load_option_file(path: str | os.PathLike, what: str = 'the path of a YAML option file',
                     example: str = 'options/synthetic/train_fnf.yml') -> dict:
    """The option mapping of ``path``; ``what`` and ``example`` word the fix when the file is missing.

    Args:
        path: the option file.
        what: what the user should pass instead, when the file is missing.
        example: an example of it.

    Returns:
        The options.

    Raises:
        MissingInputError: no such file.
        ConfigError: invalid YAML, a duplicate key, or a document that is not a mapping.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, 'a.yml')
        ...     with open(path, 'w') as handle:
        ...         _ = handle.write('{name: demo, train: {total_iter: 1e3}}')
        ...     load_option_file(path)
        {'name': 'demo', 'train': {'total_iter': 1000.0}}
    """
    if not os.path.isfile(path):
        raise MissingInputError(f'option file not found: {path}; pass {what}, e.g. -opt {example}')
    with open(path, encoding='utf-8') as handle:
        try:
            opt = load_yaml(handle)
        except DuplicateKeyError as err:
            raise ConfigError(f'{path}: {err}') from None
        except yaml.YAMLError as err:
            raise ConfigError(f'{path} is not valid YAML: {" ".join(str(err).split())}') from None
    if not isinstance(opt, dict):
        raise ConfigError(f'{path} must hold a mapping of options, got {type(opt).__name__}.')
    return opt


# --- --force_yml ------------------------------------------------------------------------------------------------

def split_override(entry: str) -> tuple[list[str], Any]:
    """``'a:b=VALUE'`` -> (['a', 'b'], VALUE parsed as YAML); refuses what cannot be meant.

    Args:
        entry: one ``--force_yml`` argument.

    Returns:
        The key path and the value (see :func:`parse_override`).

    Raises:
        ConfigError: no ``=``, two unquoted ``=``, a key part that is no option name, or a value
            that is not valid YAML.

    Example:
        >>> split_override('train:total_iter=1e3'), split_override('name=my run')
        ((['train', 'total_iter'], 1000.0), (['name'], 'my run'))
    """
    if '=' not in entry:
        raise ConfigError(f'--force_yml {entry!r}: expected KEY=VALUE, e.g. train:total_iter=1000')
    key, text = (part.strip() for part in entry.split('=', 1))
    if '=' in text and not text.startswith(("'", '"')):
        raise ConfigError(f"--force_yml {entry!r} has two '='; pass one KEY=VALUE per key (quote a value that "
                          f"contains '=', e.g. {key}='a=b')")
    keys = [part.strip() for part in key.split(':')]
    if not all(_OPTION_NAME.match(part) for part in keys):
        raise ConfigError(f'--force_yml {entry!r}: {key!r} is no option key (letters, digits, _ . - joined by '
                          'colons, e.g. train:total_iter=1000)')
    return keys, parse_override(entry, text)


def parse_override(entry: str, text: str) -> Any:
    """A ``--force_yml`` value, read as YAML (``[1, 2]`` is a list, ``1e-3`` a number, ``~`` null); ``none``
    in any case is null too, as BasicSR reads it.

    Args:
        entry: the whole ``--force_yml`` argument, named in errors.
        text: its value part.

    Returns:
        The value.

    Raises:
        ConfigError: the value is not valid YAML.

    Example:
        >>> parse_override('a=[1, 2]', '[1, 2]'), parse_override('a=None', 'None'), parse_override('a=~', '~')
        ([1, 2], None, None)
    """
    if text.lower() == 'none':
        return None
    try:
        return load_yaml(text)
    except yaml.YAMLError as err:
        raise ConfigError(f'--force_yml {entry!r}: the value is not valid YAML ({" ".join(str(err).split())}); '
                          'quote it, e.g. name="my run"') from None


def check_override_keys(opt: dict, entries: Iterable[str] | None, path: str | os.PathLike,
                        known_keys: Callable[[list[str], dict], Iterable[str]] | None = None) -> None:
    """Refuse ``--force_yml`` entries whose key path cannot be meant: a missing section, or a new key that is a
    near-miss of an existing one (a typo BasicSR would silently add). Prints a note for a new key.

    ``known_keys(sections, section)`` may name keys that are valid in a section although the file does not set
    them (e.g. the constructor arguments of a network): those are never taken for typos.

    Args:
        opt: the options of the file.
        entries: the ``--force_yml`` arguments; None for none.
        path: the option file, named in errors.
        known_keys: called with the key path of a section and the section itself.

    Raises:
        ConfigError: a missing section, a value where a section is needed, or a near-miss key.

    Example:
        >>> check_override_keys({'train': {'total_iter': 10}}, ['train:total_iter=20'], 'a.yml')
        >>> try:
        ...     check_override_keys({'train': {'total_iter': 10}}, ['train:total_iters=20'], 'a.yml')
        ... except ConfigError as error:
        ...     print(error)  # doctest: +ELLIPSIS
        --force_yml 'train:total_iters=20': a.yml has no key 'total_iters' there (did you mean 'total_iter'?); ...
    """
    for entry in entries or []:
        *sections, leaf = split_override(entry)[0]
        node = opt
        for depth, key in enumerate(sections):
            if not isinstance(node, dict) or key not in node:
                known = sorted(node) if isinstance(node, dict) else []
                raise ConfigError(f'--force_yml {entry!r}: {path} has no section {":".join(sections[:depth + 1])!r}'
                                  f'{did_you_mean(key, known)}')
            node = node[key]
        if not isinstance(node, dict):
            raise ConfigError(f'--force_yml {entry!r}: {":".join(sections)!r} in {path} is a value, not a section')
        if leaf not in node:
            near = difflib.get_close_matches(leaf, list(node), n=1, cutoff=0.75)
            if near and not (known_keys and leaf in known_keys(sections, node)):
                raise ConfigError(f'--force_yml {entry!r}: {path} has no key {leaf!r} there (did you mean '
                                  f'{near[0]!r}?); fix the key')
            print(f'basicsr: note: --force_yml adds {leaf!r}, which {path} does not set', file=sys.stderr)


def did_you_mean(key: str, known: list[str]) -> str:
    """A hint for an unknown ``key``: the closest of ``known``, or all of them.

    Args:
        key: the key given.
        known: the keys there are.

    Returns:
        ``" (did you mean 'x'?)"`` or ``" (it has [...])"``, to append to an error.

    Example:
        >>> did_you_mean('optim', ['optim_g', 'scheduler']), did_you_mean('zzz', ['a'])
        (" (did you mean 'optim_g'?)", " (it has ['a'])")
    """
    near = difflib.get_close_matches(key, known, n=1)
    return f' (did you mean {near[0]!r}?)' if near else f' (it has {known})'


def apply_overrides(opt: dict, entries: Iterable[str] | None, path: str | os.PathLike) -> dict:
    """Set each ``--force_yml`` entry in ``opt`` (in place) after checking its value against the file's.

    A value must be of the kind the file's value is: a number for a number, true/false for a flag, a list for a
    list, a mapping for a section; null is always allowed; a number given for a string stays the text typed.

    Args:
        opt: the options of the file, changed in place.
        entries: the ``--force_yml`` arguments; None for none.
        path: the option file, named in errors.

    Returns:
        ``opt``.

    Raises:
        ConfigError: a missing section, a value of another kind than the file's, or a malformed entry.

    Example:
        >>> apply_overrides({'name': 'a', 'train': {'total_iter': 10}}, ['train:total_iter=20', 'name=2024'], 'a.yml')
        {'name': '2024', 'train': {'total_iter': 20}}
    """
    for entry in entries or []:
        keys, value = split_override(entry)
        node = opt
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ConfigError(f'--force_yml {entry!r}: {path} has no section {key!r}')
        node[keys[-1]] = _same_kind(entry, ':'.join(keys), node.get(keys[-1]), value, path)
    return opt


def _kind(value):
    if isinstance(value, bool):
        return 'true or false'
    if isinstance(value, (int, float)):
        return 'a number'
    if isinstance(value, list):
        return 'a list, e.g. [1, 2]'
    if isinstance(value, dict):
        return 'a section, e.g. {key: value}'
    return 'text'


def _same_kind(entry, key, old, new, path):
    if old is None or new is None:
        return new
    if isinstance(old, str) and not isinstance(new, (list, dict)):
        return new if isinstance(new, (str, bool)) else entry.split('=', 1)[1].strip()
    if _kind(old) != _kind(new):
        raise ConfigError(f'--force_yml {entry!r}: {key} is {_kind(old)} in {path} ({old!r}), got {_kind(new)} '
                          f'({new!r}); pass {_kind(old)}')
    return new


def effective_options(path: str | os.PathLike, entries: Iterable[str] | None = None) -> dict:
    """The options of ``path`` after its ``--force_yml`` entries, every known number checked.

    Args:
        path: the option file.
        entries: the ``--force_yml`` arguments; None for none.

    Returns:
        The options (:func:`load_option_file`, :func:`apply_overrides`, :func:`check_option_values`).

    Raises:
        MissingInputError: no such file.
        ConfigError: the file, an override or a number is refused.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, 'a.yml')
        ...     with open(path, 'w') as handle:
        ...         _ = handle.write('{train: {total_iter: 1000}}')
        ...     effective_options(path, ['train:total_iter=2e3'])
        {'train': {'total_iter': 2000}}
    """
    return check_option_values(apply_overrides(load_option_file(path), entries, path), path)


# --- numbers --------------------------------------------------------------------------------------------------

def _number(low=None, above=None, integer=False, allow_none=True):
    """A checker: (value) -> normalised value, or raises ValueError with what was expected."""
    kind = 'a whole number' if integer else 'a number'
    bound = f' >= {low}' if low is not None else f' > {above}' if above is not None else ''

    def check(value):
        if value is None and allow_none:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            raise ValueError(f'{kind}{bound}')
        if integer:
            if value != int(value):
                raise ValueError(f'{kind}{bound}')
            value = int(value)
        if (low is not None and value < low) or (above is not None and value <= above):
            raise ValueError(f'{kind}{bound}')
        return value
    return check


def _list_of(check, length=None):
    def check_list(value):
        if value is None:
            return value
        if not isinstance(value, list) or (length is not None and len(value) != length):
            raise ValueError(f'a list of {length or "any number of"} items, each {_expected(check)}')
        try:
            return [check(item) for item in value]
        except ValueError as error:
            raise ValueError(f'a list whose items are each {error}') from None
    return check_list


def _expected(check):
    try:
        check('?')
    except ValueError as error:
        return str(error)
    return 'valid'


def _num_gpu(value):
    return value if value == 'auto' else _number(low=0, integer=True)(value)


POSITIVE_INT = _number(low=1, integer=True)
NON_NEGATIVE_INT = _number(low=0, integer=True)
POSITIVE = _number(above=0)
NON_NEGATIVE = _number(low=0)

NUMERIC_OPTIONS = {
    'manual_seed': NON_NEGATIVE_INT,
    'num_gpu': _num_gpu,
    'train:total_iter': POSITIVE_INT,
    'train:warmup_iter': _number(low=-1, integer=True),
    'train:ema_decay': NON_NEGATIVE,
    'train:optim_*:lr': POSITIVE,
    'train:optim_*:weight_decay': NON_NEGATIVE,
    'train:optim_*:eps': POSITIVE,
    'train:optim_*:momentum': NON_NEGATIVE,
    'train:optim_*:betas': _list_of(NON_NEGATIVE, 2),
    'train:scheduler:milestones': _list_of(NON_NEGATIVE_INT),
    'train:scheduler:gamma': POSITIVE,
    'train:scheduler:periods': _list_of(POSITIVE_INT),
    'train:scheduler:restart_weights': _list_of(NON_NEGATIVE),
    'train:scheduler:eta_min': NON_NEGATIVE,
    'train:*_opt:loss_weight': NON_NEGATIVE,
    'datasets:*:batch_size_per_gpu': POSITIVE_INT,
    'datasets:*:num_worker_per_gpu': NON_NEGATIVE_INT,
    'datasets:*:dataset_enlarge_ratio': POSITIVE_INT,
    'datasets:*:crop_size': POSITIVE_INT,
    'datasets:*:max_images': POSITIVE_INT,
    'val:val_freq': POSITIVE_INT,
    'logger:print_freq': POSITIVE_INT,
    'logger:save_checkpoint_freq': POSITIVE_INT,
}
BELOW_ONE = ('train:ema_decay', 'train:optim_*:betas')  # checked after the kind of value


def check_option_values(opt: dict, path: str | os.PathLike) -> dict:
    """Read every option of :data:`NUMERIC_OPTIONS` that ``opt`` sets as a number (``1e3`` for a count becomes
    1000) or raise ConfigError naming the key, what it holds and what it must be.

    Args:
        opt: the options, normalised in place.
        path: the option file, named in errors.

    Returns:
        ``opt``.

    Raises:
        ConfigError: naming the key, its value and what it must be.

    Example:
        >>> check_option_values({'train': {'total_iter': 1e3, 'ema_decay': 0.999}}, 'a.yml')
        {'train': {'total_iter': 1000, 'ema_decay': 0.999}}
        >>> try:
        ...     check_option_values({'train': {'total_iter': '1e3'}}, 'a.yml')
        ... except ConfigError as error:
        ...     print(error)  # doctest: +ELLIPSIS
        a.yml: train:total_iter must be a whole number >= 1, got the text '1e3' (write it unquoted: ...)
    """
    for pattern, check in NUMERIC_OPTIONS.items():
        for key, parent, leaf in _entries(opt, pattern.split(':')):
            value = parent[leaf]
            try:
                parent[leaf] = check(value)
                if any(fnmatch.fnmatchcase(key, p) for p in BELOW_ONE):
                    _below_one(parent[leaf])
            except ValueError as error:
                shown = f'the text {value!r}' if isinstance(value, str) else repr(value)
                hint = ' (write it unquoted: 1e-3 and 1e3 are numbers)' if isinstance(value, str) else ''
                raise ConfigError(f'{path}: {key} must be {error}, got {shown}{hint}') from None
    return opt


def _below_one(value):
    values = value if isinstance(value, list) else [value]
    if any(v is not None and v >= 1 for v in values):
        raise ValueError('below 1' if not isinstance(value, list) else 'a list of two numbers in [0, 1)')


def _entries(node, parts, prefix=()):
    """(``a:b:c``, parent mapping, leaf key) for every key path of ``node`` that matches ``parts`` (globs)."""
    if not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    for key in list(node):
        if not isinstance(key, str) or not fnmatch.fnmatchcase(key, head):
            continue
        if rest:
            yield from _entries(node[key], rest, (*prefix, key))
        else:
            yield ':'.join((*prefix, key)), node, key
