"""``fnf-benchmark``: evaluate trained models and classical references on frozen test sets.

Writes the paper's Table 1 / Table 2 layout (PSNR and two SSIMs per dimming factor, markdown and
CSV), the PSNR-vs-displacement plot of Figure 3 (from a frozen displacement sweep), and a
qualitative strip per image like Figure 4. Test sets are our frozen sets or the authors' released
``data/testset``, scored exactly as their ``test.py`` (:mod:`fnf_basicsr.inference.release`).
Per-image results are cached as JSON lines keyed by everything that determines them, so an
interrupted run resumes where it stopped and a changed checkpoint, test set or metric is
recomputed; finished reports are never overwritten unless ``--overwrite``.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
import torch
from tqdm import tqdm

from fnf_basicsr.archs.capabilities import capability
from fnf_basicsr.archs.contracts import estimate_from_output
from fnf_basicsr.data.input_layout import FLASH_FRAME, NOFLASH_FRAME, image_channels
from fnf_basicsr.data.levels import level_label, level_of, ordered_levels
from fnf_basicsr.errors import ConfigError, DataError, FnFError, MissingInputError, OutputExistsError, report_errors
from fnf_basicsr.utils import hardware
from fnf_basicsr.utils.hardware import as_channels_last, set_channels_last
from fnf_basicsr.utils.files import check_separate, fault_point, file_sha256, remove_owned, write_atomically

PROG = 'fnf-benchmark'
REFERENCES = {
    'noisy input': {'type': 'NoisyInput'},
    'joint bilateral (flash-guided)': {'type': 'JointBilateralFnF'},
    'single-image denoiser (no-flash)': {'type': 'NLMeansNoFlash'},
}
GROUP_TITLES = {'noflash': 'No-flash input only', 'noflash_burst': '2-frame burst input (no flash)',
                'flash_noflash': 'Flash and no-flash input pair', 'reference': 'References (no training)'}
METRIC_NAMES = ('psnr', 'ssim_basicsr', 'ssim_release')
ROW_FIELDS = ('key', 'dimming', 'displacement', *METRIC_NAMES)
# Bump when what a cached row means changes in a way the code hash below would not show.
CACHE_FORMAT = 'fnf-benchmark per-image cache v2'
CHECKPOINT_SUFFIXES = ('.pth', '.pt', '.ckpt')
# Labels name folders and table rows: these characters would make a path or break the markdown table.
LABEL_FORBIDDEN = '/\\|'
MAX_LABEL_LENGTH = 100


class NoisyInput(torch.nn.Module):
    """The noisy no-flash input itself, scored like a method.

    Shape:
        forward(lq): (B, C, H, W) -> (B, 3, H, W), channels 0:3 of ``lq``.

    Example:
        >>> NoisyInput()(torch.rand(2, 12, 4, 4)).shape
        torch.Size([2, 3, 4, 4])
    """
    trainable = False

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        """The noisy no-flash frame of ``lq``.

        Args:
            lq: the network input.

        Returns:
            Its channels 0:3.
        """
        return lq[:, image_channels(NOFLASH_FRAME)]


class Method:
    """A network to evaluate: a trained checkpoint or a parameter-free reference.

    ``identity`` is everything that determines its outputs (checkpoint content, network options,
    weights entry, input layout); the result cache is keyed by it.

    Args:
        label: the method's name in tables and report folders.
        net: the network, in eval mode.
        input_mode: the ``lq`` layout it takes.
        group: the table group (an input mode, or ``'reference'``).
        source: the checkpoint path or the reference's type.
        identity: what determines its outputs (JSON-able).

    Example:
        >>> method = Method.reference('noisy input', 'cpu')
        >>> method.group, method.source, method.run(torch.rand(1, 12, 4, 4))[0].shape
        ('reference', 'NoisyInput', torch.Size([1, 3, 4, 4]))
    """

    def __init__(self, label: str, net: torch.nn.Module, input_mode: str, group: str, source: str, identity: dict):
        self.label, self.net, self.input_mode, self.group, self.source = label, net, input_mode, group, source
        self.identity = identity
        self.precision, self.channels_last, self.device = 'fp32', False, 'cpu'

    def use_runtime(self, precision: str, channels_last: bool, device: str | torch.device) -> None:
        """Run in ``precision`` autocast ('fp32': none; other precisions are cached apart, since the results
        differ) and in channels_last memory format (same results up to float rounding, cached alike).

        Args:
            precision: ``'fp32'``, ``'bf16'`` or ``'fp16'``.
            channels_last: run the network in channels_last memory format.
            device: where the network runs (for autocast).

        Example:
            >>> method = Method.reference('noisy input', 'cpu')
            >>> method.use_runtime('bf16', False, 'cpu')
            >>> method.identity['precision']
            'bf16'
        """
        self.precision, self.channels_last, self.device = precision, channels_last, device
        if precision != 'fp32':
            self.identity = {**self.identity, 'precision': precision}
        set_channels_last(self.net, channels_last)

    @classmethod
    def from_spec(cls, spec: str, device: str | torch.device, param_key: str = 'params') -> Method:
        """``LABEL=SPEC`` or ``SPEC``; SPEC is an experiment name or a checkpoint file.

        Args:
            spec: the command line's method argument.
            device: where the network runs.
            param_key: the checkpoint entry to load (BasicSR's rule).

        Returns:
            The method, its identity holding the checkpoint's SHA-256.

        Raises:
            MissingInputError, CheckpointError: see :func:`checkpoint_of` and
                :func:`~fnf_basicsr.inference.checkpoint.load_network`.

        Example:
            >>> import tempfile, yaml
            >>> from fnf_basicsr.archs.kpn_arch import KPN
            >>> with tempfile.TemporaryDirectory() as folder:
            ...     network_g = {'type': 'KPN', 'kernel_size': 3, 'width': 0.0625}
            ...     _ = (Path(folder) / 'kpn.yml').write_text(yaml.safe_dump({'network_g': network_g}))
            ...     torch.save({'params': KPN(kernel_size=3, width=0.0625).state_dict()}, Path(folder) / 'kpn.pth')
            ...     method = Method.from_spec(f'tiny KPN={Path(folder) / "kpn.pth"}', 'cpu')
            >>> method.label, method.group, sorted(method.identity)
            ('tiny KPN', 'flash_noflash', ['checkpoint_sha256', 'input_mode', 'network_g', 'param_key'])
        """
        from fnf_basicsr.inference.checkpoint import load_network
        label, target = split_spec(spec)
        checkpoint = checkpoint_of(target)
        loaded = load_network(checkpoint, param_key=param_key, device=device)
        identity = {'checkpoint_sha256': file_sha256(checkpoint), 'network_g': loaded.network_opt,
                    'param_key': loaded.param_key, 'input_mode': loaded.input_mode}
        return cls(label, loaded.net, loaded.input_mode, loaded.input_mode, str(checkpoint), identity)

    @classmethod
    def reference(cls, label: str, device: str | torch.device) -> Method:
        """One of the parameter-free :data:`REFERENCES`, built with its default options.

        Args:
            label: a key of :data:`REFERENCES`.
            device: where it runs.

        Returns:
            The method (group ``'reference'``, input mode ``flash_noflash``).

        Example:
            >>> Method.reference('joint bilateral (flash-guided)', 'cpu').source
            'JointBilateralFnF'
        """
        from basicsr.archs import build_network
        opt = dict(REFERENCES[label])
        net = NoisyInput() if opt['type'] == 'NoisyInput' else build_network(opt)
        return cls(label, net.to(device).eval(), 'flash_noflash', 'reference', opt['type'], {'reference': opt})

    def run(self, lq: torch.Tensor) -> tuple[torch.Tensor, dict | None]:
        """The output and, for networks that expose them (DeepFnF), the intermediates.

        Args:
            lq: (B, C, H, W) network input on the method's device.

        Returns:
            ``(estimate (B, 3, H, W) float32, intermediates dict or None)``.
        """
        lq = as_channels_last(lq, self.channels_last)
        with torch.no_grad(), hardware.autocast(self.precision, self.device):
            if capability(self.net, 'supports_intermediates'):
                parts = self.net(lq, return_intermediates=True)
                return parts['output'].float(), parts
            return estimate_from_output(self.net(lq)).float(), None


def safe_name(text: str) -> str:
    """The folder / file name of a (checked, :func:`check_labels`) method label.

    Args:
        text: the label.

    Returns:
        The label with every character but letters, digits and ``-_.`` replaced by ``_``.

    Example:
        >>> safe_name('DeepFnF (authors)')
        'DeepFnF__authors_'
    """
    return ''.join(c if c.isalnum() or c in '-_.' else '_' for c in text)


def split_spec(spec: str) -> tuple[str, str]:
    """``(label, target)`` of ``LABEL=SPEC`` or ``SPEC`` (then the label is SPEC itself).

    Args:
        spec: the command line's method argument.

    Returns:
        ``(label, target)``, split at the last ``=``.

    Example:
        >>> split_spec('DeepFnF=train_fnf'), split_spec('train_fnf')
        (('DeepFnF', 'train_fnf'), ('train_fnf', 'train_fnf'))
    """
    label, _, target = spec.rpartition('=')
    return (label or target), target


def checkpoint_of(target: str) -> Path:
    """The checkpoint file a method SPEC names: an existing file (any suffix), else experiments/<name>/models/.

    Args:
        target: a checkpoint path or an experiment name.

    Returns:
        The file, or ``experiments/<target>/models/net_g_latest.pth`` for a plain name.

    Raises:
        MissingInputError: a folder, or a path that looks like a file but does not exist.

    Example:
        >>> checkpoint_of('train_fnf_synthetic').as_posix()
        'experiments/train_fnf_synthetic/models/net_g_latest.pth'
    """
    path = Path(target)
    if path.is_file():
        return path
    if path.is_dir():
        raise MissingInputError(f'{target} is a folder; pass its models/net_g_<iter>.pth, or the experiment name '
                                'alone (experiments/<name>/models/net_g_latest.pth)')
    if path.suffix in CHECKPOINT_SUFFIXES or len(path.parts) > 1:
        raise MissingInputError(f'checkpoint {target} does not exist (or is not a file); check the path')
    return Path('experiments') / target / 'models' / 'net_g_latest.pth'


def label_problem(label: str) -> str | None:
    """Why ``label`` cannot name a method (None if it can): it becomes a folder name and a table row.

    Args:
        label: a method label.

    Returns:
        A phrase completing "method label ... ", or None.

    Example:
        >>> label_problem('DeepFnF (ours)') is None, label_problem('a/b')
        (True, "holds '/', '\\\\', '|' or a control character")
    """
    if not label or label != label.strip():
        return 'is empty or starts or ends with a space'
    if label.startswith('.'):
        return "starts with '.' (it would name a hidden or parent folder)"
    if any(char in LABEL_FORBIDDEN or not char.isprintable() for char in label):
        return "holds '/', '\\', '|' or a control character"
    if len(label) > MAX_LABEL_LENGTH:
        return f'is longer than {MAX_LABEL_LENGTH} characters'
    return None


def check_labels(labels: Iterable[str]) -> None:
    """Refuse labels that are not plain names, and two labels that would share a report folder.

    Args:
        labels: every method's label.

    Raises:
        ConfigError: a bad label, or two labels with the same (case-folded) :func:`safe_name`.

    Example:
        >>> check_labels(['DeepFnF', 'KPN'])
        >>> try:
        ...     check_labels(['Deep FnF', 'deep_fnf'])
        ... except ConfigError as error:
        ...     print(str(error).split(';')[0])
        method labels 'Deep FnF' and 'deep_fnf' share the report folder 'deep_fnf'
    """
    folders = {}
    for label in labels:
        problem = label_problem(label)
        if problem:
            raise ConfigError(f'method label {label!r} {problem}; a label is a plain name (letters, digits, spaces, '
                              "'-_.()+' ...): name it with LABEL=SPEC")
        folder = safe_name(label).lower()  # case-insensitive file systems fold case
        if folder in folders:
            raise ConfigError(f'method labels {folders[folder]!r} and {label!r} share the report folder '
                              f'{safe_name(label)!r}; give them distinct labels with LABEL=SPEC')
        folders[folder] = label


def code_version() -> dict[str, str]:
    """The package version and a hash of its sources: results of other code are never reused.

    Returns:
        ``{'version': ..., 'sources_sha256': ...}`` over every ``.py`` file of the package.

    Example:
        >>> sorted(code_version()), len(code_version()['sources_sha256'])
        (['sources_sha256', 'version'], 64)
    """
    import fnf_basicsr
    package = Path(fnf_basicsr.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob('*.py')):
        digest.update(str(path.relative_to(package)).encode() + b'\0' + path.read_bytes())
    return {'version': fnf_basicsr.__version__, 'sources_sha256': digest.hexdigest()}


# ---------------------------------------------------------------------------------------------
# Test sets: our frozen sets and the release's data/testset, behind one interface
# ---------------------------------------------------------------------------------------------

class FrozenTestSet:
    """A stored test set whose samples render with our one rendering function: our frozen sets, and any format
    registered with :func:`fnf_basicsr.data.sample_sources.register_test_set_format`.

    Args:
        stored: the opened set (:class:`~fnf_basicsr.data.sample_sources.StoredTestSet`).

    Example:
        >>> import tempfile
        >>> from fnf_basicsr.data.faid import ColorMetadata, write_faid_pair
        >>> from fnf_basicsr.data.frozen_writer import freeze
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((48, 48, 3), 0.5, np.float32)
        ...     write_faid_pair(Path(folder) / 'scenes', 'Demo_1', image, image, ColorMetadata(np.eye(3), 21))
        ...     _ = freeze({'dataroot': str(Path(folder) / 'scenes'), 'crop_size': 16, 'dimming_factors': [50, 25]},
        ...                Path(folder) / 'frozen', progress=False)
        ...     test_set = open_test_set(Path(folder) / 'frozen')
        ...     sample = test_set.sample(1, 'flash_noflash')
        ...     result, target = test_set.render_pair(sample['gt'][None], sample)
        ...     len(test_set), test_set.levels(), test_set.level_of(1), [p.shape for p in test_set.panels(sample)][0]
        (2, [50.0, 25.0], 25.0, torch.Size([3, 16, 16]))
        >>> type(test_set).__name__, torch.equal(result, target), test_set.is_awgn()
        ('FrozenTestSet', True, False)
    """

    def __init__(self, stored: Any):
        self.stored = stored
        self.kind = stored.kind
        self.root = Path(stored.root)
        self.entries = [{'key': key} for key in stored.keys]
        self.options = stored.recorded_options() or {}

    def __len__(self) -> int:
        """Number of samples."""
        return len(self.entries)

    def identity(self) -> Any:
        """What identifies the set's content (the stored set's own identity), for result caches.

        Returns:
            A JSON-able value.
        """
        return self.stored.identity()

    def sample(self, index: int, input_mode: str) -> dict:
        """Sample ``index`` for a network of ``input_mode``, with its ``key``.

        Args:
            index: ``0 .. len - 1``.
            input_mode: the network's input mode.

        Returns:
            The sample dict (:func:`~fnf_basicsr.data.degradation.sample_dict`).
        """
        sample = dict(self.stored.item(index, input_mode))
        sample['key'] = self.entries[index]['key']
        return sample

    def render_pair(self, output: torch.Tensor, sample: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The scored images: output and target rendered with the sample's gain and color matrix, clipped.

        Args:
            output: (1, 3, H, W) network output.
            sample: from :meth:`sample`.

        Returns:
            ``(result, target)``, each (3, H, W) in [0, 1].
        """
        return self._render(output.float().cpu(), sample), self._render(sample['gt'], sample)

    @staticmethod
    def _render(image, sample, gain=None):
        from fnf_basicsr.utils.rendering import render_srgb
        gain = sample['gain'][None] if gain is None else torch.tensor([gain])
        rendered = render_srgb(image.reshape(-1, *image.shape[-3:]), gain, sample['color_matrix'][None],
                               sample.get('encoded'))
        return rendered.clamp(0, 1)[0]

    def panels(self, sample: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(no-flash input, flash input, target) rendered for a strip.

        Args:
            sample: a flash/no-flash sample from :meth:`sample`.

        Returns:
            Three (3, H, W) images in [0, 1].
        """
        lq = sample['lq']
        # the flash frame is well exposed at the input scale (2 x flash-only + dimmed ambient)
        return (self._render(lq[image_channels(NOFLASH_FRAME)], sample),
                self._render(lq[image_channels(FLASH_FRAME)], sample, gain=0.5),
                self._render(sample['gt'], sample))

    def is_awgn(self) -> bool:
        """Whether the set was frozen with ``degradation: srgb_awgn`` (levels are sigmas)."""
        return self.options.get('degradation', 'paper') == 'srgb_awgn'

    def level_of(self, index: int) -> float:
        """The dimming factor of sample ``index`` (its sigma for an srgb_awgn set).

        Args:
            index: ``0 .. len - 1``.

        Returns:
            The level.
        """
        sample = self.stored.item(index, self.options.get('input_modes', ['flash_noflash'])[0])
        return level_of(float(sample['dimming']), float(sample['awgn_sigma']))

    def levels(self) -> list[float]:
        """The set's levels: the recorded dimming factors (sigmas for srgb_awgn), else those of its samples.

        Returns:
            The levels, in the recorded order (else the dimming factors descending, sigmas ascending).
        """
        if 'dimming_factors' not in self.options:  # a format that records no options: read the samples
            return sorted({self.level_of(index) for index in range(len(self))}, reverse=not self.is_awgn())
        return [float(d) for d in self.options['awgn_sigmas' if self.is_awgn() else 'dimming_factors']]


class ReleaseSet:
    """The release's data/testset (:class:`fnf_basicsr.data.release_testset.ReleaseTestSet`), scored as test.py.

    The members are those of :class:`FrozenTestSet`, read from the release's files.

    Args:
        root_or_reader: the ``data/testset`` folder, or its opened reader.

    Example:
        >>> import tempfile
        >>> from fnf_basicsr.data.release_testset import RELEASE_LEVELS, RELEASE_TESTSET_KEYS
        >>> arrays = {key: np.full((1, 8, 8, 3), 0.25, np.float32) for key in RELEASE_TESTSET_KEYS}
        >>> identity = np.eye(3, dtype=np.float32)[None]
        >>> arrays.update(sig_read=np.float32([0.01]), sig_shot=np.float32([0.02]), color_matrix=identity,
        ...               adapt_matrix=identity)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for level, alpha in zip(range(RELEASE_LEVELS), (0.01, 0.02, 0.04, 0.08)):
        ...         (Path(folder) / str(level)).mkdir()
        ...         np.savez(Path(folder) / str(level) / '0.npz', **{**arrays, 'alpha': np.float32([alpha])})
        ...     test_set = open_test_set(folder)
        ...     type(test_set).__name__, len(test_set), test_set.levels()
        ('ReleaseSet', 4, [100.0, 50.0, 25.0, 12.5])
    """
    kind = 'release'

    def __init__(self, root_or_reader: str | Path | Any):
        from fnf_basicsr.data.release_testset import ReleaseTestSet
        self.reader = root_or_reader if isinstance(root_or_reader, ReleaseTestSet) else ReleaseTestSet(root_or_reader)
        self.root, self.entries = self.reader.root, self.reader.entries
        self._dimmings = {}

    def __len__(self) -> int:
        """Number of files."""
        return len(self.entries)

    def identity(self) -> dict:
        """Each file's name, size and modification time, for result caches."""
        return {'kind': self.kind, 'files': self.reader.identity()}

    def sample(self, index: int, input_mode: str) -> dict:
        """Sample ``index`` as test.py reads it (:meth:`~fnf_basicsr.data.release_testset.ReleaseTestSet.sample`).

        Args:
            index: ``0 .. len - 1``.
            input_mode: ``flash_noflash`` or ``noflash``.

        Returns:
            The sample dict.
        """
        return self.reader.sample(index, input_mode)

    def render_pair(self, output: torch.Tensor, sample: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """test.py's scored images (:meth:`~fnf_basicsr.data.release_testset.ReleaseTestSet.render_pair`).

        Args:
            output: (1, 3, H, W) network output.
            sample: from :meth:`sample`.

        Returns:
            ``(result, target)``, each (3, H, W) in [0, 1].
        """
        return self.reader.render_pair(output, sample)

    def panels(self, sample: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(no-flash input, flash input, target) rendered for a strip.

        Args:
            sample: a flash/no-flash sample from :meth:`sample`.

        Returns:
            Three (3, H, W) images in [0, 1].
        """
        lq, gain = sample['lq'], 1.0 / sample['alpha']
        ambient = torch.from_numpy(np.ascontiguousarray(sample['data']['ambient'][0], dtype=np.float32))
        return (self.reader.render_input(lq[image_channels(NOFLASH_FRAME)], sample, gain),
                self.reader.render_input(lq[image_channels(FLASH_FRAME)], sample, 0.5),
                self.reader.render_input(ambient.permute(2, 0, 1), sample, 1.0))

    def is_awgn(self) -> bool:
        """False: the release's set is the paper's protocol."""
        return False

    def level_of(self, index: int) -> float:
        """The dimming factor of file ``index`` (1 / alpha, read once).

        Args:
            index: ``0 .. len - 1``.

        Returns:
            The dimming factor.
        """
        if index not in self._dimmings:
            self._dimmings[index] = self.reader.dimming(index)
        return self._dimmings[index]

    def levels(self) -> list[float]:
        """The dimming factor of each level folder, in folder order.

        Returns:
            One factor per level folder (read from its first file).
        """
        first = {}
        for index, entry in enumerate(self.entries):
            first.setdefault(entry['level'], index)
        return [self.level_of(index) for index in first.values()]


def open_test_set(root: str | Path) -> FrozenTestSet | ReleaseSet:
    """The test set at ``root`` (:func:`fnf_basicsr.data.sample_sources.open_stored_test_set`: the release's
    layout, a registered format or one of our frozen sets) with what scoring it needs.

    Args:
        root: the test set's folder.

    Returns:
        A :class:`ReleaseSet` for the release's layout, else a :class:`FrozenTestSet`.

    Raises:
        MissingInputError: no such folder or manifest.
        DataError: a garbled manifest or damaged files.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / 'manifest.json').write_text('{"format": ')
        ...     try:
        ...         open_test_set(folder)
        ...     except DataError as error:
        ...         print('is not readable JSON' in str(error))
        True
    """
    from fnf_basicsr.data.frozen_set import FROZEN_MANIFEST
    from fnf_basicsr.data.release_testset import ReleaseTestSet
    from fnf_basicsr.data.sample_sources import open_stored_test_set
    manifest_path = Path(root) / FROZEN_MANIFEST
    try:
        stored = open_stored_test_set(root)
        return ReleaseSet(stored) if isinstance(stored, ReleaseTestSet) else FrozenTestSet(stored)
    except FnFError:
        raise
    except (ValueError, UnicodeDecodeError, KeyError, TypeError) as error:  # JSONDecodeError is a ValueError
        if not manifest_path.is_file():
            raise
        raise DataError(f'{manifest_path} is unreadable or garbled ({type(error).__name__}: {error}); freeze the '
                        f'set again with scripts/data_preparation/freeze_testset.py --output {root}') from None


# ---------------------------------------------------------------------------------------------
# Per-image results, cached and keyed by everything that determines them
# ---------------------------------------------------------------------------------------------

def cache_identity(method: Method, test_set: FrozenTestSet | ReleaseSet) -> tuple[str, dict]:
    """What a cached result depends on; a cache written for anything else is recomputed.

    Args:
        method: the method scored.
        test_set: the set it is scored on.

    Returns:
        ``(fingerprint, identity)``: the SHA-256 of the identity's JSON, and the identity (cache format,
        method, test set, metric definitions, code version).
    """
    from fnf_basicsr.metrics import METRIC_DEFINITIONS
    identity = {'format': CACHE_FORMAT, 'method': method.identity, 'test_set': test_set.identity(),
                'metrics': METRIC_DEFINITIONS, 'code': code_version()}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return digest, identity


def read_cache(path: Path, fingerprint: str) -> tuple[dict[str, dict], str | None]:
    """The rows cached in ``path`` for ``fingerprint``, and why others were dropped (None: all kept).

    A partial last line (a run killed while writing) is dropped and the rest kept; a cache of
    another fingerprint, an old format, or a garbled line elsewhere is discarded whole: a row is
    only reused when it is certain to be the result this run would compute.

    Args:
        path: the ``per_image/<method>.jsonl`` cache.
        fingerprint: from :func:`cache_identity`.

    Returns:
        ``(rows by key, note or None)``.

    Example:
        >>> import tempfile
        >>> row = {'key': 'a', 'dimming': 50.0, 'displacement': None, 'psnr': 1.0, 'ssim_basicsr': 0.1,
        ...        'ssim_release': 0.1}
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     start_cache(Path(folder) / 'm.jsonl', 'f1', {}, {'a': row})
        ...     with open(Path(folder) / 'm.jsonl', 'a') as cache:
        ...         _ = cache.write('{"key": "b", "dimm')  # a run killed while writing
        ...     rows, note = read_cache(Path(folder) / 'm.jsonl', 'f1')
        ...     list(rows), note, read_cache(Path(folder) / 'm.jsonl', 'f2')[1][:22]
        (['a'], 'partial last line 3 dropped (interrupted run)', 'computed for another c')
    """
    if not path.is_file():
        return {}, None
    try:
        lines = path.read_text(encoding='utf-8').splitlines()
    except (UnicodeDecodeError, OSError) as error:
        return {}, f'unreadable ({type(error).__name__})'
    header = _parse_json(lines[0]) if lines else None
    if not isinstance(header, dict) or 'cache' not in header:
        return {}, 'garbled or of an older format'
    if header['cache'] != fingerprint:
        return {}, 'computed for another checkpoint, network, test set, metric or code version'
    rows, note = {}, None
    for number, line in enumerate(lines[1:], start=2):
        row = _parse_json(line)
        if _valid_row(row):
            rows[row['key']] = row
        elif number == len(lines):
            note = f'partial last line {number} dropped (interrupted run)'
        else:
            return {}, f'garbled at line {number}'
    return rows, note


def _parse_json(line):
    try:
        return json.loads(line)
    except ValueError:
        return None


def _valid_row(row):
    if not isinstance(row, dict) or not isinstance(row.get('key'), str):
        return False
    numbers = [row.get(name) for name in ROW_FIELDS[1:]]
    return all(isinstance(value, (int, float)) or (value is None and name == 'displacement')
               for name, value in zip(ROW_FIELDS[1:], numbers))


def start_cache(path: Path, fingerprint: str, identity: dict, rows: dict[str, dict]) -> None:
    """(Re)write ``path`` as a header plus ``rows``, atomically, so appends start on a clean line.

    Args:
        path: the cache file.
        fingerprint: from :func:`cache_identity`.
        identity: what the fingerprint hashes (kept in the header for reading).
        rows: the rows to keep, by key.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     start_cache(Path(folder) / 'm.jsonl', 'f1', {'method': 'demo'}, {})
        ...     (Path(folder) / 'm.jsonl').read_text()
        '{"cache": "f1", "identity": {"method": "demo"}}\\n'
    """
    from fnf_basicsr.utils.files import write_atomically
    lines = [json.dumps({'cache': fingerprint, 'identity': identity}, default=str)]
    lines += [json.dumps(row) for row in rows.values()]
    write_atomically(path, ('\n'.join(lines) + '\n').encode('utf-8'), overwrite=True)


def evaluate(method: Method, test_set: FrozenTestSet | ReleaseSet, cache_path: Path, strip_keys: set[str],
             strip_dir: Path, device: str | torch.device, progress: bool = True, overwrite: bool = False,
             owner: Path | None = None) -> list[dict]:
    """Per-image metrics of ``method`` on ``test_set``, resuming from ``cache_path`` when it is valid.

    Strip images of an older result are removed from ``strip_dir`` (only ``<key>.npz`` of this set's keys,
    inside ``owner``, the report folder).

    Args:
        method: the method to score.
        test_set: from :func:`open_test_set`.
        cache_path: its per-image cache (JSON lines).
        strip_keys: keys whose strip parts are saved in ``strip_dir``.
        strip_dir: folder of the strip parts (``<key>.npz``).
        device: where the network runs.
        progress: show a tqdm progress bar.
        overwrite: ignore the cache and recompute everything.
        owner: the report folder, the only place strip parts are removed from.

    Returns:
        One row per image: ``key``, ``dimming``, ``displacement`` (None where unknown), the metrics of
        :data:`METRIC_NAMES` and, for srgb_awgn sets, ``awgn_sigma``.

    Example:
        >>> import tempfile
        >>> from fnf_basicsr.data.faid import ColorMetadata, write_faid_pair
        >>> from fnf_basicsr.data.frozen_writer import freeze
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     image = np.full((48, 48, 3), 0.5, np.float32)
        ...     write_faid_pair(Path(folder) / 'scenes', 'Demo_1', image, image, ColorMetadata(np.eye(3), 21))
        ...     _ = freeze({'dataroot': str(Path(folder) / 'scenes'), 'crop_size': 16, 'dimming_factors': [50, 25]},
        ...                Path(folder) / 'frozen', progress=False)
        ...     test_set, report = open_test_set(Path(folder) / 'frozen'), Path(folder) / 'report'
        ...     rows = evaluate(Method.reference('noisy input', 'cpu'), test_set, report / 'noisy.jsonl', set(),
        ...                     report / 'strips', 'cpu', progress=False)
        >>> [row['key'] for row in rows], sorted(rows[0])
        (['Demo_1_dim50', 'Demo_1_dim25'], ['dimming', 'displacement', 'key', 'psnr', 'ssim_basicsr', 'ssim_release'])
    """
    from fnf_basicsr.metrics import score
    fingerprint, identity = cache_identity(method, test_set)
    done, note = ({}, None) if overwrite else read_cache(cache_path, fingerprint)
    if note:
        print(f'{PROG}: {cache_path}: {note}; recomputing what is missing', file=sys.stderr)
    if (overwrite or not done) and strip_dir.is_dir():
        keys = [entry['key'] for entry in test_set.entries]
        remove_owned(strip_dir, [f'{key}.npz' for key in keys if (strip_dir / f'{key}.npz').exists()], within=owner)
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    start_cache(cache_path, fingerprint, identity, done)
    with open(cache_path, 'a', encoding='utf-8') as cache:
        for index in tqdm(range(len(test_set)), desc=f'{method.label} on {test_set.root.name}', unit='image',
                          disable=not progress):
            key = test_set.entries[index]['key']
            needs_strip = key in strip_keys and not (strip_dir / f'{key}.npz').is_file()
            if key in done and not needs_strip:
                continue
            sample = test_set.sample(index, method.input_mode)
            output, parts = method.run(sample['lq'][None].to(device))
            result, target = test_set.render_pair(output, sample)
            if needs_strip:
                save_strip_parts(strip_dir / f'{key}.npz', result, parts, test_set, sample)
            if key in done:
                continue
            displacement = float(sample['displacement'])
            row = {'key': key, 'dimming': float(sample['dimming']),
                   'displacement': None if math.isnan(displacement) else displacement, **score(result, target)}
            if float(sample.get('awgn_sigma', 0.0)) > 0:
                row['awgn_sigma'] = float(sample['awgn_sigma'])
            cache.write(json.dumps(row) + '\n')
            cache.flush()
            done[key] = row
            fault_point('benchmark_image')
    return list(done.values())


def save_strip_parts(path: Path, result: torch.Tensor, parts: dict | None, test_set: FrozenTestSet | ReleaseSet,
                     sample: dict) -> None:
    """Write what a strip shows of one method on one image: its rendered result, and DeepFnF's F and G.

    Args:
        path: the ``<key>.npz`` to write (atomically).
        result: (3, H, W) rendered result.
        parts: the intermediates of :meth:`Method.run`, or None.
        test_set: the set (renders F like the result).
        sample: the image's sample.
    """
    arrays = {'result': result.numpy()}
    if parts is not None and parts.get('scale_map') is not None:  # DeepFnF's F and G, as in Figure 4
        # F and G are only defined up to a per-channel factor (Y = F * G, either may be negative):
        # show F at the output's level and G relative to its mean, channel by channel
        filtered, scale_map = parts['filtered'].float().cpu(), parts['scale_map'].float().cpu()
        level = scale_map.mean(dim=(2, 3), keepdim=True)
        level = torch.where(level.abs() < 1e-12, torch.ones_like(level), level)
        arrays['filtered'] = test_set.render_pair(filtered * level, sample)[0].numpy()
        arrays['scale_map'] = (scale_map / level)[0].numpy()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomically(path, buffer.getvalue(), overwrite=True)  # an interrupted run leaves no half file


def summarise(rows: Iterable[dict], by: Callable[[dict], Any]) -> dict[Any, dict[str, float]]:
    """Mean of every metric over rows grouped by ``by`` (a row -> group function).

    Args:
        rows: per-image rows of :func:`evaluate`.
        by: a row -> group function.

    Returns:
        Group -> the mean of each of :data:`METRIC_NAMES`, and ``count``.

    Example:
        >>> rows = [{'dimming': d, 'psnr': p, 'ssim_basicsr': 0.5, 'ssim_release': 0.5} for d, p in
        ...         ((50.0, 20.0), (50.0, 22.0), (25.0, 24.0))]
        >>> summarise(rows, row_level)[50.0]
        {'psnr': 21.0, 'ssim_basicsr': 0.5, 'ssim_release': 0.5, 'count': 2}
    """
    groups = defaultdict(list)
    for row in rows:
        groups[by(row)].append(row)
    return {group: {m: float(np.mean([r[m] for r in members])) for m in METRIC_NAMES} | {'count': len(members)}
            for group, members in groups.items()}


TABLE_NOTE = ('PSNR in dB; SSIM BasicSR = basicsr.metrics.calculate_ssim (what training logs); SSIM release = '
              'the authors\' test.py SSIM (scikit-image, data_range 2, sample covariance), the one of the '
              "paper's Table 1. All on clipped sRGB, averaged per image.")


def row_level(row: dict) -> float:
    """The level a per-image row is grouped by: its dimming factor, or its sigma for srgb_awgn.

    Args:
        row: a row of :func:`evaluate`.

    Returns:
        :func:`~fnf_basicsr.data.levels.level_of` of the row.

    Example:
        >>> row_level({'dimming': 50.0}), row_level({'dimming': 1.0, 'awgn_sigma': 25.0})
        (50.0, 25.0)
    """
    return level_of(row['dimming'], row.get('awgn_sigma', 0.0))


def write_table(methods: Sequence[Method], results: dict[str, list[dict]], out_dir: Path) -> str:
    """Table 1 layout: a row per method grouped by input, PSNR / SSIM BasicSR / SSIM release per dimming factor
    (per noise sigma for an srgb_awgn set, the later literature's columns).

    Args:
        methods: the methods, in table order within their groups.
        results: label -> per-image rows.
        out_dir: where ``table.md`` and ``table.csv`` are written.

    Returns:
        The markdown table.

    Example:
        >>> import tempfile
        >>> method = Method.reference('noisy input', 'cpu')
        >>> rows = [{'key': 'a', 'dimming': 50.0, 'psnr': 20.0, 'ssim_basicsr': 0.5, 'ssim_release': 0.6}]
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     table = write_table([method], {method.label: rows}, Path(folder))
        ...     sorted(path.name for path in Path(folder).iterdir())
        ['table.csv', 'table.md']
        >>> print(table.splitlines()[0])
        | method | 50x dimmed (PSNR / SSIM BasicSR / SSIM release) |
    """
    all_rows = [row for rows in results.values() for row in rows]
    awgn = any('awgn_sigma' in row for row in all_rows)
    dimmings = ordered_levels([row_level(row) for row in all_rows], awgn)
    column = (lambda d: level_label(d, awgn)) if awgn else (lambda d: f'{d:g}x dimmed')
    header = '| method | ' + ' | '.join(f'{column(d)} (PSNR / SSIM BasicSR / SSIM release)' for d in dimmings) + ' |'
    lines = [header, '|' + '---|' * (len(dimmings) + 1)]
    level_key = 'awgn_sigma' if awgn else 'dimming'
    csv_rows = []
    for group in GROUP_TITLES:
        members = [m for m in methods if m.group == group]
        if members:
            lines.append(f'| *{GROUP_TITLES[group]}* |' + ' |' * len(dimmings))
        for method in members:
            stats = summarise(results[method.label], row_level)
            cells = [f"{stats[d]['psnr']:.2f} dB / {stats[d]['ssim_basicsr']:.3f} / {stats[d]['ssim_release']:.3f}"
                     if d in stats else '-' for d in dimmings]
            lines.append(f'| {method.label} | ' + ' | '.join(cells) + ' |')
            csv_rows += [{'method': method.label, 'input': group, level_key: d, 'psnr': round(stats[d]['psnr'], 4),
                          'ssim_basicsr': round(stats[d]['ssim_basicsr'], 5),
                          'ssim_release': round(stats[d]['ssim_release'], 5), 'images': stats[d]['count']}
                         for d in dimmings if d in stats]
    lines += ['', TABLE_NOTE]
    write_atomically(out_dir / 'table.md', ('\n'.join(lines) + '\n').encode(), overwrite=True)
    handle = io.StringIO(newline='')
    writer = csv.DictWriter(handle, fieldnames=['method', 'input', level_key, *METRIC_NAMES, 'images'])
    writer.writeheader()
    writer.writerows(csv_rows)
    write_atomically(out_dir / 'table.csv', handle.getvalue().encode(), overwrite=True)
    return '\n'.join(lines)


def save_figure(figure: Any, path: Path) -> None:
    """Write a matplotlib figure to ``path`` as PNG, atomically (an interrupted run leaves no half file).

    Args:
        figure: a ``matplotlib.figure.Figure``.
        path: the PNG to write.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    write_atomically(path, buffer.getvalue(), overwrite=True)


def write_displacement_plot(methods: Sequence[Method], sweep_results: dict[str, list[dict]],
                            bin_edges: Sequence[float], out_path: Path) -> None:
    """Figure 3: mean PSNR per displacement bin, one line per method.

    Args:
        methods: the methods, one line each.
        sweep_results: label -> per-image rows on the displacement sweep.
        bin_edges: the sweep's displacement bin edges, pixels.
        out_path: the PNG to write.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    def bin_of(row):
        return int(np.clip(np.searchsorted(bin_edges, row['displacement'], side='right') - 1, 0, len(bin_edges) - 2))

    figure, axis = plt.subplots(figsize=(8.5, 4), dpi=120)
    colours = plt.get_cmap('tab20').colors  # distinct colours for up to 20 methods (tab10 repeats after 10)
    for index, method in enumerate(methods):
        stats = summarise(sweep_results[method.label], bin_of)
        bins = sorted(stats)
        centres = [(bin_edges[b] + bin_edges[b + 1]) / 2 for b in bins]
        axis.plot(centres, [stats[b]['psnr'] for b in bins], marker='o', label=method.label,
                  color=colours[(2 * index) % 20 + (2 * index) // 20 % 2])
    axis.set_xlabel('mean displacement between flash and no-flash (px)')
    axis.set_ylabel('PSNR (dB)')
    axis.grid(alpha=0.3)
    axis.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))  # outside: never over the curves
    figure.tight_layout()
    save_figure(figure, out_path)
    plt.close(figure)


def write_strip(key: str, test_set: FrozenTestSet | ReleaseSet, methods: Sequence[Method], strip_dir: Path,
                out_path: Path) -> None:
    """Figure 4 style: inputs, each method, DeepFnF's filtered no-flash and scale map, target.

    Args:
        key: the image.
        test_set: the set it belongs to.
        methods: the methods, whose parts :func:`save_strip_parts` wrote.
        strip_dir: ``strip_parts``, one folder per method.
        out_path: the PNG to write.
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    sample = test_set.sample([entry['key'] for entry in test_set.entries].index(key), 'flash_noflash')
    noflash, flash, target = (image.numpy() for image in test_set.panels(sample))
    panels = [('no-flash input', noflash), ('flash input', flash)]
    extras = []
    for method in methods:
        parts = np.load(strip_dir / safe_name(method.label) / f'{key}.npz')
        panels.append((method.label, parts['result']))
        if 'filtered' in parts and not extras:
            extras = [(f'{method.label}: filtered F', parts['filtered']),
                      (f'{method.label}: scale map G / (2 mean G)', np.clip(parts['scale_map'] / 2, 0, 1))]
    panels += extras + [('ground truth', target)]
    columns = min(len(panels), 7)
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.5 * rows), dpi=110, squeeze=False)
    for axis in axes.flat:
        axis.axis('off')
    for axis, (title, image) in zip(axes.flat, panels):
        axis.imshow(np.transpose(image, (1, 2, 0)))
        axis.set_title(title, fontsize=7)
    figure.suptitle(f'{key}', fontsize=8)
    figure.tight_layout()
    save_figure(figure, out_path)
    plt.close(figure)


def report_paths(out_dir: Path, with_sweep: bool, strip_keys: Iterable[str]) -> list[Path]:
    """The finished report's files (refused when they exist, unless ``--overwrite``).

    Args:
        out_dir: the report folder.
        with_sweep: a displacement sweep is scored (the Figure 3 plot).
        strip_keys: the images drawn as strips.

    Returns:
        The tables, the plot, and one strip PNG per key.

    Example:
        >>> [path.as_posix() for path in report_paths(Path('report'), False, ['a'])]
        ['report/table.md', 'report/table.csv', 'report/strips/a.png']
    """
    paths = [out_dir / 'table.md', out_dir / 'table.csv']
    paths += [out_dir / 'fig3_displacement.png'] if with_sweep else []
    return paths + [out_dir / 'strips' / f'{key}.png' for key in strip_keys]


def pick_strip_keys(test_set: FrozenTestSet | ReleaseSet, count: int) -> list[str]:
    """The first ``count`` images at the level closest to 50 (the paper's Fig. 3/4 level: 50x; sigma 50).

    Args:
        test_set: from :func:`open_test_set`.
        count: how many.

    Returns:
        The keys.
    """
    target = min(test_set.levels(), key=lambda d: abs(float(d) - 50))
    keys = []
    for index, entry in enumerate(test_set.entries):
        if len(keys) == count:
            break
        if test_set.level_of(index) == float(target):
            keys.append(entry['key'])
    return keys


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``fnf-benchmark``.

    Returns:
        The parser.

    Example:
        >>> args = build_parser().parse_args(['DeepFnF=train_fnf', '--test-set', 'frozen', '--out', 'report'])
        >>> args.methods, args.strips, args.device
        (['DeepFnF=train_fnf'], 2, 'auto')
    """
    from fnf_basicsr.inference.checkpoint import DEFAULT_PARAM_KEY, PARAM_KEY_HELP
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG)
    parser.add_argument('methods', nargs='+', metavar='[LABEL=]SPEC',
                        help='experiment names (experiments/<name>/models/net_g_latest.pth) or .pth checkpoints '
                        '(e.g. one written by scripts/model_conversion/convert_release_weights.py)')
    parser.add_argument('--test-set', required=True,
                        help='frozen test set (scripts/data_preparation/freeze_testset.py) or the released '
                        'data/testset folder (<k>/<c>.npz), scored as the authors\' test.py.')
    parser.add_argument('--sweep-set', help='frozen displacement sweep (freeze_testset.py --displacement-bins).')
    parser.add_argument('--out', required=True, help='report folder (created).')
    parser.add_argument('--param-key', default=DEFAULT_PARAM_KEY, metavar='KEY', help=PARAM_KEY_HELP)
    parser.add_argument('--strips', type=int, default=2, help='qualitative strips to draw (default 2).')
    parser.add_argument('--no-references', action='store_true',
                        help='skip the noisy input and the two classical references.')
    parser.add_argument('--device', default='auto', help='auto, cpu or cuda (default auto).')
    hardware.add_inference_arguments(parser)
    parser.add_argument('--overwrite', action='store_true',
                        help='rewrite existing report files and recompute every cached per-image result.')
    parser.add_argument('--quiet', action='store_true', help='no progress bars.')
    return parser


EPILOG = """Per-image results are cached in <out>/per_image/*.jsonl, keyed by the checkpoint's content, the
network options, the weights entry, the test set, the metric definitions and the code version: an
interrupted run resumes, anything else is recomputed. Tables report PSNR and two SSIMs, BasicSR's and
the authors' test.py one (the paper's Table 1).

examples:
  fnf-benchmark DeepFnF=train_fnf_synthetic KPN=train_kpn_synthetic \\
      --test-set datasets/frozen/synthetic_test --sweep-set datasets/frozen/synthetic_fig3 \\
      --out reports/synthetic
  fnf-benchmark "DeepFnF (authors)=weights/deepfnf_release.pth" --test-set data/testset --out reports/release
"""


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``fnf-benchmark``; a user error exits 2 with one line naming the problem and the fix.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).
    """
    with report_errors(PROG):
        run(build_parser().parse_args(argv))


def run(args: argparse.Namespace) -> None:
    """Score every method (and the references) on the test set (and the sweep), then write the report.

    Args:
        args: parsed by :func:`build_parser`.

    Raises:
        ConfigError, DataError, MissingInputError, OutputExistsError: bad arguments or inputs, or an
            existing report without ``--overwrite``.
    """
    import fnf_basicsr  # noqa: F401
    device = _device(args.device)
    out_dir = Path(args.out)
    if args.strips < 0:
        raise ConfigError(f'--strips must be 0 or more (the number of qualitative strips to draw), got {args.strips}')
    labels = [split_spec(spec)[0] for spec in args.methods] + ([] if args.no_references else list(REFERENCES))
    check_labels(labels)
    test_set = open_test_set(args.test_set)
    sweep_set = open_sweep_set(args.sweep_set) if args.sweep_set else None
    check_separate(out_dir, [test_set.root, sweep_set.root if sweep_set else None], '--out',
                   'write the report to another folder (a report never goes into a test set)')
    strip_keys = pick_strip_keys(test_set, args.strips)
    existing = [p for p in report_paths(out_dir, bool(sweep_set), strip_keys) if p.exists()]
    if existing and not args.overwrite:
        raise OutputExistsError(f'{existing[0]} already exists ({len(existing)} report files); pass --overwrite to '
                                'rewrite the report, or choose another --out')
    methods = [Method.from_spec(spec, device, args.param_key) for spec in args.methods]
    if not args.no_references:
        methods += [Method.reference(label, device) for label in REFERENCES]
    precision, channels_last = hardware.resolve_inference(args, device)
    for method in methods:
        method.use_runtime(precision.value, channels_last.value, device)
    results, sweep = {}, {}
    for method in methods:
        name = safe_name(method.label)
        results[method.label] = evaluate(method, test_set, out_dir / 'per_image' / f'{name}.jsonl', set(strip_keys),
                                         out_dir / 'strip_parts' / name, device, not args.quiet, args.overwrite,
                                         out_dir)
        if sweep_set is not None:
            sweep[method.label] = evaluate(method, sweep_set, out_dir / 'per_image' / f'{name}_sweep.jsonl', set(),
                                           out_dir / 'strip_parts' / f'{name}_sweep', device, not args.quiet,
                                           args.overwrite, out_dir)
    print(write_table(methods, results, out_dir))
    if sweep_set is not None:
        edges = sweep_set.options['displacement_bins']
        write_displacement_plot(methods, sweep, edges, out_dir / 'fig3_displacement.png')
    (out_dir / 'strips').mkdir(parents=True, exist_ok=True)
    for key in strip_keys:
        write_strip(key, test_set, methods, out_dir / 'strip_parts', out_dir / 'strips' / f'{key}.png')
    print(f'report written to {out_dir}')


def open_sweep_set(root: str | Path) -> FrozenTestSet:
    """The frozen displacement sweep of ``--sweep-set``, refused before any scoring unless it has its bins.

    Args:
        root: the sweep's folder.

    Returns:
        The opened set.

    Raises:
        ConfigError: not a frozen set, or frozen without increasing displacement bins.
    """
    sweep_set = open_test_set(root)
    if sweep_set.kind != 'frozen':
        raise ConfigError(f'--sweep-set {root}: a displacement sweep must be a frozen set written with '
                          'freeze_testset.py --displacement-bins (the released test set stores no displacement)')
    edges = sweep_set.options.get('displacement_bins')
    if not (isinstance(edges, list) and len(edges) >= 2 and all(isinstance(e, (int, float)) for e in edges)
            and all(a < b for a, b in zip(edges, edges[1:]))):
        raise ConfigError(f'--sweep-set {root} was frozen without displacement bins (displacement_bins: {edges!r}); '
                          'freeze the sweep with freeze_testset.py --displacement-bins 0 2 4 8 12 16 20 (or drop '
                          '--sweep-set)')
    return sweep_set


def _device(name):
    from fnf_basicsr.errors import DeviceError
    if name == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if name.startswith('cuda') and not torch.cuda.is_available():
        raise DeviceError(f'--device {name}: CUDA is not available on this machine; use --device cpu or auto')
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f'--device {name!r} is not a device; use auto, cpu or cuda') from None


if __name__ == '__main__':
    main()
