"""Build a trained network from a BasicSR checkpoint and the option file it was trained with.

BasicSR saves ``experiments/<name>/models/net_g_<iter>.pth`` as ``{'params': state_dict}`` (plus
``'params_ema'`` when training keeps an exponential moving average) and copies the training
option file to ``experiments/<name>/<option file>.yml``; its ``network_g`` entry holds the
network's type and constructor arguments. :func:`load_network` finds that option file from the
checkpoint's path (or takes one explicitly), builds the network and loads the weights, and
every failure names the file, what was expected, and the fix.

Which weights are used follows BasicSR's own rule (``BaseModel.load_network``, the
``path.param_key_g`` option): the entry named by ``param_key`` (default ``'params'``); if the
checkpoint has no such entry, ``'params'``; a bare state dict is used as it is. So fnf-denoise,
fnf-benchmark and ``basicsr test`` score the same weights of the same file.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
# The parent package's __init__ has run first: basicsr is patched and every network registered.
from basicsr.utils.registry import ARCH_REGISTRY

from fnf_basicsr.archs.capabilities import capability
from fnf_basicsr.archs.contracts import check_network
from fnf_basicsr.archs.input_normalization import NORMALIZATION_MARKER
from fnf_basicsr.data.input_layout import INPUT_MODES, input_channels, input_mode_for_channels
from fnf_basicsr.errors import DataError, FnFError, MissingInputError
from fnf_basicsr.inference.release import sidecar_path
from fnf_basicsr.utils.options import EFFECTIVE_MARKER, load_option_file
from fnf_basicsr.utils.plugins import import_plugins

DEFAULT_PARAM_KEY = 'params'  # BasicSR's default param_key_g, and its fallback
OPTION_SUFFIXES = ('.yml', '.yaml')
MAX_LISTED = 3  # mismatching tensors named in an error message
PARAM_KEY_HELP = ("checkpoint entry to load, as BasicSR's path.param_key_g: default params; params_ema for the "
                  'EMA weights; a checkpoint without that entry falls back to params, a bare state dict is used '
                  'as it is.')


class CheckpointError(DataError):
    """A checkpoint or option file that cannot be turned into the network it should hold.

    Example:
        >>> issubclass(CheckpointError, ValueError)
        True
    """


class NetworkMismatchError(CheckpointError):
    """Readable weights of another network (other names or shapes) than the options build.

    Example:
        >>> issubclass(NetworkMismatchError, CheckpointError)
        True
    """


@dataclass
class LoadedNetwork:
    """A network ready for inference and where it came from.

    Attributes:
        net: the network, in eval mode, on the requested device.
        network_opt: the ``network_g`` options it was built from.
        input_mode: ``flash_noflash``, ``noflash`` or ``noflash_burst`` (the ``lq`` layout).
        checkpoint: the weights file.
        option_file: the option file ``network_g`` was read from.
        param_key: the entry the weights came from (``None`` for a bare state dict).

    Example:
        >>> loaded = LoadedNetwork(torch.nn.Identity(), {'type': 'KPN', 'kernel_size': 3}, 'flash_noflash',
        ...                        Path('net_g_1.pth'), Path('train_kpn.yml'), 'params')
        >>> loaded.describe()
        'KPN(kernel_size=3) from net_g_1.pth[params], options train_kpn.yml'
    """
    net: torch.nn.Module
    network_opt: dict
    input_mode: str
    checkpoint: Path
    option_file: Path
    param_key: str

    def describe(self) -> str:
        """One line naming the network, its options, and the files it came from.

        Returns:
            ``'<type>(<options>) from <checkpoint>[<param_key>], options <option file>'``.
        """
        options = ', '.join(f'{key}={value}' for key, value in self.network_opt.items() if key != 'type')
        key = f'[{self.param_key}]' if self.param_key else ''
        return f'{self.network_opt["type"]}({options}) from {self.checkpoint}{key}, options {self.option_file}'


def load_network(checkpoint: str | Path, option_file: str | Path | None = None, param_key: str = DEFAULT_PARAM_KEY,
                 device: str | torch.device = 'cpu') -> LoadedNetwork:
    """Build the network of a BasicSR checkpoint and load its weights.

    Args:
        checkpoint: path of ``net_g_<iter>.pth`` (or any ``{'params': state_dict}`` / bare state dict).
        option_file: the training option file; default: the one :func:`find_option_file` finds.
        param_key: the checkpoint entry to load (BasicSR's rule, see :func:`read_state_dict`).
        device: where to put the network.

    Returns:
        LoadedNetwork.

    Raises:
        MissingInputError: the checkpoint or option file does not exist (a FileNotFoundError).
        CheckpointError: no option file found, no ``network_g``, unknown network type, unreadable
            checkpoint, missing parameter key, or weights of another architecture or size.

    Example:
        >>> import tempfile, yaml
        >>> from fnf_basicsr.archs.kpn_arch import KPN
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     network_g = {'type': 'KPN', 'kernel_size': 3, 'width': 0.0625}
        ...     _ = (Path(folder) / 'train_kpn.yml').write_text(yaml.safe_dump({'network_g': network_g}))
        ...     torch.save({'params': KPN(kernel_size=3, width=0.0625).state_dict()}, Path(folder) / 'net_g_1.pth')
        ...     loaded = load_network(Path(folder) / 'net_g_1.pth')
        ...     type(loaded.net).__name__, loaded.input_mode, loaded.option_file.name, loaded.param_key
        ('KPN', 'flash_noflash', 'train_kpn.yml', 'params')
    """
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise MissingInputError(f'checkpoint {checkpoint} does not exist; pass the net_g_<iter>.pth of a trained '
                                f'experiment, e.g. --weights experiments/<name>/models/net_g_latest.pth')
    option_file = Path(option_file) if option_file else find_option_file(checkpoint)
    opt = read_option_file(option_file)
    import_plugins(opt, option_file)  # a plugin's network is registered by importing its package
    network_opt = dict(opt['network_g'])
    arch_type = network_opt.pop('type')
    try:
        arch = ARCH_REGISTRY.get(arch_type)
    except KeyError:
        raise CheckpointError(f'{option_file}: network_g type {arch_type!r} is not a registered network; '
                              f'known: {sorted(name for name, _ in ARCH_REGISTRY)}') from None
    try:
        net = arch(**network_opt)
    except TypeError as error:
        raise CheckpointError(f'{option_file}: cannot build {arch_type} from network_g {network_opt}: {error}; '
                              'fix the network_g keys (they are the constructor arguments)') from None
    check_network(net, f'{option_file}: network_g')
    state_dict, used_key = read_state_dict(checkpoint, param_key)
    _load_weights(net, state_dict, checkpoint, option_file, arch_type, network_opt)
    input_mode = input_mode_of(opt, option_file, capability(net, 'in_channels'))
    return LoadedNetwork(net.to(device).eval(), {'type': arch_type, **network_opt}, input_mode, checkpoint,
                         option_file, used_key)


def experiment_folder(checkpoint: str | Path) -> Path:
    """``experiments/<name>`` for ``experiments/<name>/models/<file>.pth``; otherwise the file's folder.

    Args:
        checkpoint: a checkpoint path.

    Returns:
        The resolved experiment folder.

    Example:
        >>> experiment_folder('/runs/experiments/train_fnf/models/net_g_latest.pth').as_posix()
        '/runs/experiments/train_fnf'
    """
    folder = Path(checkpoint).resolve().parent
    return folder.parent if folder.name == 'models' else folder


def find_option_file(checkpoint: str | Path) -> Path:
    """The option file of a checkpoint: ``<stem>.yml`` beside it, else the one BasicSR copied.

    ``<stem>.yml`` next to ``<stem>.pth`` (what scripts/model_conversion/convert_release_weights.py writes) wins
    when it holds a ``network_g``. Otherwise, among the ``.yml`` files of the experiment folder
    holding a ``network_g`` entry: the only one, or the one whose stem is the folder's name (the
    experiment ``name``).

    Args:
        checkpoint: the checkpoint path.

    Returns:
        The option file.

    Raises:
        CheckpointError: none, or several and none named after the experiment.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     (Path(folder) / 'demo' / 'models').mkdir(parents=True)
        ...     _ = (Path(folder) / 'demo' / 'demo.yml').write_text('network_g: {type: KPN}')
        ...     find_option_file(Path(folder) / 'demo' / 'models' / 'net_g_5.pth').name
        'demo.yml'
    """
    sidecar = sidecar_path(checkpoint)
    if sidecar.is_file() and _has_network(sidecar):
        return sidecar
    folder = experiment_folder(checkpoint)
    candidates = [path for path in sorted(folder.iterdir()) if path.suffix in OPTION_SUFFIXES and _has_network(path)]
    if len(candidates) == 1:
        return candidates[0]
    named = [path for path in candidates if path.stem == folder.name]
    if len(named) == 1:
        return named[0]
    if not candidates:
        raise CheckpointError(f'no option file with a network_g entry in {folder} (BasicSR copies the training '
                              f'option file there); pass it with --opt FILE, e.g. the options/*.yml the '
                              f'checkpoint {Path(checkpoint).name} was trained with')
    raise CheckpointError(f'several option files with network_g in {folder}: {[p.name for p in candidates]}; '
                          'choose one with --opt FILE')


def read_option_file(path: str | Path) -> dict:
    """The option mapping of a YAML file, checked to hold a ``network_g`` with a ``type``.

    Args:
        path: the option file.

    Returns:
        The options.

    Raises:
        MissingInputError: no such file.
        ConfigError: not a YAML mapping.
        CheckpointError: no ``network_g`` with a ``type``, or a BasicSR copy whose recorded command
            overrode the network or its input (the file is not what was trained).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / 'a.yml').write_text('network_g: {type: DeepFnF, width: 0.5}')
        ...     read_option_file(Path(folder) / 'a.yml')
        {'network_g': {'type': 'DeepFnF', 'width': 0.5}}
    """
    path = Path(path)
    opt = load_option_file(path, 'the YAML file the checkpoint was trained with (--opt), or leave --opt out to '
                                 'use the copy in its experiment folder', 'experiments/<name>/<name>.yml')
    text = path.read_text(encoding='utf-8')
    network_opt = opt.get('network_g')
    if not isinstance(network_opt, dict) or 'type' not in network_opt:
        raise CheckpointError(f'{path} has no network_g mapping with a type (e.g. network_g: {{type: DeepFnF}}); '
                              'pass the training option file of the checkpoint')
    _refuse_unrecorded_overrides(path, text)
    return opt


def _refuse_unrecorded_overrides(path, text):
    """A copy BasicSR made before the effective options were recorded holds the file as it was, the overrides only
    in its ``# CMD:`` comment: refuse it when they changed the network or its input (what we would build)."""
    header = []
    for line in text.splitlines():
        if not line.startswith('#'):
            break
        header.append(line)
    if any(line.startswith(EFFECTIVE_MARKER) for line in header) or '# CMD:' not in header:
        return
    command = ' '.join(header[header.index('# CMD:') + 1:])
    if '--force_yml' not in command:
        return
    overrides = [word for word in command.split('--force_yml', 1)[1].split()
                 if word.startswith(('network_g:', 'network_g=')) or ':input_mode=' in word]
    if overrides:
        raise CheckpointError(f'{path} holds the options before the overrides {" ".join(overrides)} of the command '
                              'that trained the checkpoint (its # CMD: line): the network built from it is not the '
                              'one trained; pass --opt with a copy of that file where these values are set')


def read_state_dict(checkpoint: str | Path,
                    param_key: str = DEFAULT_PARAM_KEY) -> tuple[dict[str, torch.Tensor], str | None]:
    """The state dict of a checkpoint and the key it was stored under, by BasicSR's rule.

    The entry ``param_key`` if the checkpoint has it; else ``'params'`` (BasicSR falls back the
    same way, e.g. from ``params_ema``); else, when every value is a tensor, the checkpoint is a
    bare state dict and is used as it is.

    Args:
        checkpoint: the weights file.
        param_key: the entry to read.

    Returns:
        (dict name -> Tensor without any ``module.`` prefix, key or None for a bare state dict).

    Raises:
        CheckpointError: unreadable, not a dict of tensors, Python objects other than tensors, or
            neither entry.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     torch.save({'params': {'module.conv.weight': torch.zeros(1)}}, Path(folder) / 'net.pth')
        ...     read_state_dict(Path(folder) / 'net.pth', 'params_ema')
        ({'conv.weight': tensor([0.])}, 'params')
    """
    try:
        saved = torch.load(checkpoint, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        if 'global' not in str(error).lower():  # torch names the refused global (a function, a class)
            raise CheckpointError(f'{checkpoint} is not a readable PyTorch checkpoint (UnpicklingError: not a '
                                  'pickle of tensors); pass a net_g_<iter>.pth saved by BasicSR') from None
        raise CheckpointError(f'{checkpoint} holds Python objects other than tensors, which are refused (loading '
                              'them could run code); pass a net_g_<iter>.pth saved by BasicSR') from None
    except Exception as error:  # zip and torch errors all mean "not a weights file"
        raise CheckpointError(f'{checkpoint} is not a readable PyTorch checkpoint ({type(error).__name__}: '
                              f'{_first_line(error)}), e.g. truncated by a kill or a full disk; pass a '
                              'net_g_<iter>.pth saved by BasicSR') from None
    if not isinstance(saved, dict):
        raise CheckpointError(f'{checkpoint} holds a {type(saved).__name__}, not a state dict; '
                              "pass a net_g_<iter>.pth saved by BasicSR ({'params': state_dict})")
    key = _param_key(saved, param_key, checkpoint)
    state_dict = saved[key] if key else saved
    if not state_dict or not all(isinstance(value, torch.Tensor) for value in state_dict.values()):
        raise CheckpointError(f'{checkpoint} holds no network weights (keys {sorted(saved)[:8]}); pass a '
                              'net_g_<iter>.pth from experiments/<name>/models, not a training state')
    return {name[len('module.'):] if name.startswith('module.') else name: value
            for name, value in state_dict.items()}, key


def check_checkpoint_fits(checkpoint: str | Path, network_opt: dict, param_key: str = DEFAULT_PARAM_KEY,
                          strict: bool = True) -> None:
    """Raise CheckpointError (one line) unless the weights of ``checkpoint`` load into the network ``network_opt``
    builds, as BasicSR loads them (``strict``: the same names; always: the same shapes).

    The network is built on the meta device (no memory for its weights) where it can be.

    Args:
        checkpoint: the weights file.
        network_opt: a ``network_g`` mapping (with ``type``).
        param_key: the entry to read (:func:`read_state_dict`).
        strict: also require the same parameter names.

    Raises:
        NetworkMismatchError: names (``strict``) or shapes differ.
        CheckpointError: the checkpoint is unreadable or the network cannot be built.

    Example:
        >>> import tempfile
        >>> from fnf_basicsr.archs.kpn_arch import KPN
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     torch.save({'params': KPN(kernel_size=3, width=0.0625).state_dict()}, Path(folder) / 'kpn.pth')
        ...     check_checkpoint_fits(Path(folder) / 'kpn.pth', {'type': 'KPN', 'kernel_size': 3, 'width': 0.0625})
        ...     try:
        ...         check_checkpoint_fits(Path(folder) / 'kpn.pth', {'type': 'KPN', 'kernel_size': 5, 'width': 0.0625})
        ...     except NetworkMismatchError as error:
        ...         print('does not fit' in str(error))
        True
    """
    state_dict, _ = read_state_dict(checkpoint, param_key)
    expected = {name: tuple(value.shape) for name, value in _skeleton(network_opt).state_dict().items()}
    problems = []
    if strict:
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        problems += [f'{len(missing)} parameter(s) missing (e.g. {missing[:MAX_LISTED]})'] if missing else []
        problems += [f'{len(unexpected)} unexpected (e.g. {unexpected[:MAX_LISTED]})'] if unexpected else []
    resized = [f'{name}: checkpoint {tuple(state_dict[name].shape)}, network {shape}' for name, shape in
               expected.items() if name in state_dict and tuple(state_dict[name].shape) != shape]
    if resized:
        problems.append(f'{len(resized)} of another size (e.g. {"; ".join(resized[:MAX_LISTED])})')
    if problems:
        raise NetworkMismatchError(f'{checkpoint} does not fit network_g {dict(network_opt)}: {", ".join(problems)}')


def _skeleton(network_opt):
    """The network ``network_opt`` describes, on the meta device when its constructor allows."""
    options = dict(network_opt)
    arch = ARCH_REGISTRY.get(options.pop('type'))
    try:
        with torch.device('meta'):
            return arch(**options)
    except TypeError as error:
        raise CheckpointError(f'cannot build {arch.__name__} from network_g {dict(network_opt)}: {error}; fix the '
                              'network_g keys (they are the constructor arguments)') from None
    except (RuntimeError, NotImplementedError):  # a constructor that computes on its tensors: build it for real
        return arch(**options)


def _first_line(error):
    return (str(error).strip().splitlines() or [''])[0]


def _param_key(saved, param_key, checkpoint):
    """BasicSR's choice of entry: ``param_key``, else ``'params'``, else None for a bare state dict."""
    for key in (param_key, DEFAULT_PARAM_KEY):
        if key in saved and isinstance(saved[key], dict):
            return key
    if saved and all(isinstance(value, torch.Tensor) for value in saved.values()):
        return None
    raise CheckpointError(f'{checkpoint} has neither a {param_key!r} nor a {DEFAULT_PARAM_KEY!r} entry (it has '
                          f'{sorted(map(str, saved))[:8]}); pass --param-key with one of its entries, or a '
                          'net_g_<iter>.pth saved by BasicSR')


def input_mode_of(opt: dict, option_file: str | Path, in_channels: int | None) -> str:
    """The ``lq`` layout the network was trained on: the datasets' ``input_mode``, checked.

    Falls back to the mode its input channels suggest (:func:`~fnf_basicsr.data.input_layout.input_mode_for_channels`).

    Args:
        opt: the training options.
        option_file: where they were read (named in messages).
        in_channels: the network's declared input channels, or None.

    Returns:
        One of :data:`~fnf_basicsr.data.input_layout.INPUT_MODES`.

    Raises:
        CheckpointError: the datasets disagree, the mode is unknown, or it does not give ``in_channels``.

    Example:
        >>> input_mode_of({'datasets': {'train': {'input_mode': 'noflash'}}}, 'a.yml', 6)
        'noflash'
        >>> input_mode_of({}, 'a.yml', 12)
        'flash_noflash'
    """
    modes = {dataset.get('input_mode') for dataset in (opt.get('datasets') or {}).values()
             if isinstance(dataset, dict) and dataset.get('input_mode')}
    if len(modes) > 1:
        raise CheckpointError(f'{option_file}: the datasets use different input_mode values {sorted(modes)}; '
                              'the network takes one layout')
    mode = modes.pop() if modes else input_mode_for_channels(in_channels)
    if mode not in INPUT_MODES:
        raise CheckpointError(f'{option_file}: input_mode {mode!r} is not one of {list(INPUT_MODES)}')
    if in_channels is not None and input_channels(mode) != in_channels:
        raise CheckpointError(f'{option_file}: input_mode {mode} gives {input_channels(mode)} input channels but '
                              f'network_g takes in_channels={in_channels}; fix one of them')
    return mode


def _load_weights(net, state_dict, checkpoint, option_file, arch_type, network_opt):
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    resized = [(name, tuple(state_dict[name].shape), tuple(expected[name].shape)) for name in expected
               if name in state_dict and state_dict[name].shape != expected[name].shape]
    if not (missing or unexpected or resized):
        net.load_state_dict(state_dict)
        return
    lines = [f'checkpoint {checkpoint} does not fit the network of {option_file}: '
             f'expected {arch_type}({", ".join(f"{k}={v}" for k, v in network_opt.items())}).',
             f'  The checkpoint seems to be for: {_guess_architecture(state_dict, checkpoint, option_file)}.']
    if missing:
        lines.append(f'  {len(missing)} parameter(s) missing from the checkpoint (e.g. {missing[:MAX_LISTED]}).')
    if unexpected:
        lines.append(f'  {len(unexpected)} parameter(s) the network does not have (e.g. {unexpected[:MAX_LISTED]}).')
    if NORMALIZATION_MARKER in missing + unexpected:
        trained = 'frame_mean' if NORMALIZATION_MARKER in unexpected else 'none'
        lines.append(f'  The checkpoint was trained with network_g input_normalization: {trained}; the option file '
                     f'says {network_opt.get("input_normalization", "none")}.')
    if resized:
        shown = '; '.join(f'{name}: checkpoint {got}, network {want}' for name, got, want in resized[:MAX_LISTED])
        lines.append(f'  {len(resized)} parameter(s) of another size ({shown}): the network options differ '
                     '(e.g. width, num_basis, kernel_size, in_channels).')
    lines.append('  Fix: pass the option file the checkpoint was trained with (--opt experiments/<name>/<name>.yml), '
                 'or a checkpoint trained with this option file.')
    raise CheckpointError('\n'.join(lines))


def _guess_architecture(state_dict, checkpoint, option_file):
    """A description of the network a state dict was saved from.

    First the option file in the checkpoint's own experiment folder, when it is not the one
    used; then the registered network of this package whose parameter names match best (built
    with default options on the meta device, which allocates nothing); the first layer's shape
    tells the input channels and width.
    """
    first_name, first = next(((name, value) for name, value in state_dict.items() if value.dim() == 4),
                             (None, None))
    shape = f'first conv {first_name} {tuple(first.shape)}' if first is not None else 'no conv layer'
    try:
        own = find_option_file(checkpoint)
    except CheckpointError:
        own = None
    if own is not None and own.resolve() != Path(option_file).resolve():
        return f'network_g {read_option_file(own)["network_g"]} (from {own}, next to it); {shape}'
    scores, skipped = {}, []
    for name, arch in _own_architectures():
        try:
            with torch.device('meta'):
                layout = arch().state_dict()
        except Exception:  # an architecture without defaults for every argument cannot be compared
            skipped.append(name)
            continue
        scores[name] = _layout_similarity(state_dict, layout)
    unchecked = f'; not compared: {", ".join(skipped)} (no default for every argument)' if skipped else ''
    best = max(scores.values(), default=(0.0, 0))
    if best[0] < 0.5:
        return f'an unknown network ({len(state_dict)} tensors, {shape}{unchecked})'
    names = sorted(name for name, score in scores.items() if score == best)
    which = names[0] if len(names) == 1 else f'one of {", ".join(names)}'
    return f'{which} ({best[0]:.0%} of parameter names match the default layout; {shape}{unchecked})'


def _layout_similarity(state_dict, layout):
    """(share of parameter names in common, count of common tensors with the same output channels).

    Names tell the family; the output channels break ties between networks of the same layers,
    e.g. KPN and DirectUNet, whose last convs have K*K*frames and 3 channels whatever the width.
    """
    common = set(state_dict) & set(layout)
    names = len(common) / len(set(state_dict) | set(layout))
    same_outputs = sum(1 for name in common if state_dict[name].shape[:1] == layout[name].shape[:1])
    return names, same_outputs


def _own_architectures():
    """(name, class) of the networks this package registers (BasicSR's own may download weights when built)."""
    return sorted((name, arch) for name, arch in ARCH_REGISTRY if arch.__module__.startswith('fnf_basicsr.'))


def _has_network(path):
    """True for a readable YAML mapping with a ``network_g`` entry (other files are skipped)."""
    try:
        return 'network_g' in load_option_file(path)
    except (FnFError, UnicodeDecodeError, OSError):
        return False
