"""The authors' released DeepFnF (TensorFlow, likesum/deepFnF): its weights and its test set in our plugin.

Weights. The release stores its trained network as ``wts/model.npz``: one float32 array per
convolution, ``<layer>_w`` (height, width, in, out) and ``<layer>_b``, for the 46 convolutions
of its ``net.py`` (names in :data:`RELEASE_LAYERS`). Our :class:`~fnf_basicsr.archs.deepfnf_arch.DeepFnF`
has the same layers in the same order, and its basis channels are read the same way (channel
``(colour * 2 + a_or_b) * J + j``, map position = kernel tap, applied as a correlation), so the
conversion is a transpose of each kernel to (out, in, height, width). Two conventions of the
TensorFlow graph differ from our defaults and are written into the converted model's options
(:data:`RELEASE_CONVENTIONS`): the TF1 ``resize_bilinear`` upsampling and the zero-padded tent
prefilter. :func:`convert_release_weights` writes a BasicSR checkpoint ``{'params': state_dict}``
and, beside it, ``<stem>.yml`` with the ``network_g`` block, which
:func:`fnf_basicsr.inference.checkpoint.load_network` finds by itself.

Test set: :mod:`fnf_basicsr.data.release_testset` (re-exported here).
"""
from __future__ import annotations

import inspect
import zipfile
from pathlib import Path

import numpy as np
import torch
import yaml

from fnf_basicsr.archs.deepfnf_arch import DeepFnF
from fnf_basicsr.data.release_testset import (FILE_PATTERN, RELEASE_FRAME_ARRAYS, RELEASE_LEVELS,  # noqa: F401
                                              RELEASE_TESTSET_KEYS, RELEASE_XYZ_TO_SRGB, ReleaseTestSet,
                                              camera_to_srgb_release, is_release_testset, release_input)
from fnf_basicsr.errors import DataError, MissingInputError, OutputExistsError

# network_g of the released model: DeepFnF's own defaults (the paper's network; tests/inference/test_release.py pins
# them to the release's 78,471,033 parameters) with the release graph's two conventions. width and num_basis
# are read from the file on conversion (tests use tiny ones).
RELEASE_CONVENTIONS = {'upsampling': 'tf1', 'tent_padding': 'zeros'}
RELEASE_NETWORK = {'type': 'DeepFnF', **{name: parameter.default for name, parameter in
                                         inspect.signature(DeepFnF.__init__).parameters.items()
                                         if name in ('in_channels', 'num_basis', 'kernel_size', 'upsample', 'width',
                                                     'use_lowpass', 'use_scale_map')},
                   **RELEASE_CONVENTIONS}
BASE_WIDTH = 64  # output channels of the release's first conv at width 1
SCALE_CHANNELS = 3  # the release's 'output' conv: num_basis coefficients + 3 scale-map channels
SIDECAR_SUFFIX = '.yml'
MAX_NAMED = 3  # arrays named in an error message



def _conv_pairs():
    """(release layer name, our module path) for each convolution, in net.py's order of creation."""
    pairs = [('inp', 'encoder.stem.0')]
    for level in range(5):
        pairs += [(f'down{level + 1}_{i + 1}', f'encoder.levels.{level}.{i}.0') for i in range(2)]
    pairs += [('bottleneck_1', 'encoder.bottleneck.0.0'), ('bottleneck_2', 'encoder.bottleneck.1.0')]
    for decoder, prefix, blocks in (('coefficient_decoder', '', 5), ('basis_decoder', 'k_', 4)):
        for block in range(blocks):
            base = f'{decoder}.up_blocks.{block}'
            name = f'{prefix}up{block + 1}'
            pairs += [(f'{name}_1', f'{base}.up_conv.0'), (f'{name}_2', f'{base}.fuse.0.0'),
                      (f'{name}_3', f'{base}.fuse.1.0')]
        if decoder == 'coefficient_decoder':
            pairs += [('end_1', f'{decoder}.end.0.0'), ('end_2', f'{decoder}.end.1.0'), ('output', f'{decoder}.output')]
    pairs += [('k_conv', 'basis_decoder.end.0.0'), ('k_output_1', 'basis_decoder.end.1.0'),
              ('k_output_2', 'basis_decoder.output')]
    return pairs


RELEASE_LAYERS = tuple(_conv_pairs())


def release_array_names() -> list[str]:
    """Every array name of a release weights file, in net.py's order: ``inp_w``, ``inp_b``, ...

    Returns:
        ``<layer>_w`` and ``<layer>_b`` of every layer of :data:`RELEASE_LAYERS`.

    Example:
        >>> names = release_array_names()
        >>> len(names), names[:3], names[-1]
        (92, ['inp_w', 'inp_b', 'down1_1_w'], 'k_output_2_b')
    """
    return [f'{layer}_{part}' for layer, _ in RELEASE_LAYERS for part in ('w', 'b')]


def state_dict_to_release(state_dict: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Our DeepFnF state dict in the release's npz layout (HWIO kernels), e.g. to write test files.

    Args:
        state_dict: a :class:`~fnf_basicsr.archs.deepfnf_arch.DeepFnF` state dict.

    Returns:
        Array name (:func:`release_array_names`) -> numpy array; kernels (height, width, in, out).

    Example:
        >>> arrays = state_dict_to_release(DeepFnF(width=0.0625, num_basis=2).state_dict())
        >>> arrays['inp_w'].shape, arrays['inp_b'].shape
        ((3, 3, 12, 4), (4,))
    """
    arrays = {}
    for layer, module in RELEASE_LAYERS:
        arrays[f'{layer}_w'] = state_dict[f'{module}.weight'].detach().cpu().permute(2, 3, 1, 0).numpy().copy()
        arrays[f'{layer}_b'] = state_dict[f'{module}.bias'].detach().cpu().numpy().copy()
    return arrays


def network_options(arrays: dict[str, np.ndarray]) -> dict:
    """The ``network_g`` block for release-layout ``arrays``: the release's, with width and J from the shapes.

    Args:
        arrays: release-layout arrays (:func:`read_release_weights`).

    Returns:
        :data:`RELEASE_NETWORK` with ``in_channels``, ``width`` and ``num_basis`` read from the shapes of
        ``inp_w`` and ``output_b`` where they are there.

    Example:
        >>> options = network_options(state_dict_to_release(DeepFnF(width=0.0625, num_basis=2).state_dict()))
        >>> options['width'], options['num_basis'], options['upsampling'], options['tent_padding']
        (0.0625, 2, 'tf1', 'zeros')
    """
    options = dict(RELEASE_NETWORK)
    first, output = arrays.get('inp_w'), arrays.get('output_b')
    if first is not None and first.ndim == 4:
        options['in_channels'] = int(first.shape[2])
        options['width'] = float(first.shape[3]) / BASE_WIDTH
    if output is not None and output.ndim == 1 and output.shape[0] > SCALE_CHANNELS:
        options['num_basis'] = int(output.shape[0]) - SCALE_CHANNELS
    return options


def release_to_state_dict(arrays: dict[str, np.ndarray],
                          source: str = 'the weights file') -> tuple[dict[str, torch.Tensor], dict]:
    """Map release-layout arrays to (DeepFnF state dict, network_g options), checking every array.

    Args:
        arrays: release-layout arrays (:func:`read_release_weights`).
        source: how messages name the file.

    Returns:
        ``(state_dict, network_g options)``: OIHW float32 tensors, and :func:`network_options`.

    Raises:
        DataError: names missing or unexpected, wrong shapes, non-float or non-finite values; the
            message names the first few and the file.

    Example:
        >>> net = DeepFnF(width=0.0625, num_basis=2)
        >>> state_dict, options = release_to_state_dict(state_dict_to_release(net.state_dict()))
        >>> all(torch.equal(state_dict[name], value) for name, value in net.state_dict().items())
        True
    """
    from fnf_basicsr.archs.deepfnf_arch import DeepFnF
    options = network_options(arrays)
    kwargs = {key: value for key, value in options.items() if key != 'type'}
    with torch.device('meta'):  # shapes only, nothing allocated
        expected = DeepFnF(**kwargs).state_dict()
    _check_names(arrays, source)
    state_dict, wrong = {}, []
    for layer, module in RELEASE_LAYERS:
        for part, suffix in (('w', 'weight'), ('b', 'bias')):
            name, array = f'{layer}_{part}', arrays[f'{layer}_{part}']
            want = tuple(expected[f'{module}.{suffix}'].shape)
            want_release = (want[2], want[3], want[1], want[0]) if part == 'w' else want
            if tuple(array.shape) != want_release:
                wrong.append(f'{name} {tuple(array.shape)} (expected {want_release})')
                continue
            state_dict[f'{module}.{suffix}'] = _tensor(name, array, source, part)
    if wrong:
        raise DataError(f'{source}: {len(wrong)} array(s) of the wrong shape for the released DeepFnF '
                        f'(in_channels={options["in_channels"]}, width={options["width"]:g}, '
                        f'num_basis={options["num_basis"]}): {", ".join(wrong[:MAX_NAMED])}; '
                        'pass the wts/model.npz of likesum/deepFnF unmodified')
    return state_dict, options


def _check_names(arrays, source):
    names = release_array_names()
    missing = [name for name in names if name not in arrays]
    unexpected = sorted(set(arrays) - set(names))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f'{len(missing)} missing (first: {", ".join(missing[:MAX_NAMED])})')
        if unexpected:
            parts.append(f'{len(unexpected)} unexpected (first: {", ".join(unexpected[:MAX_NAMED])})')
        raise DataError(f'{source} is not the released DeepFnF weights layout: arrays {"; ".join(parts)}; '
                        f'expected the {len(names)} arrays <layer>_w / <layer>_b of net.py (inp, down1_1 ... '
                        'k_output_2), as np.savez wrote wts/model.npz')


def _tensor(name, array, source, part):
    if not np.issubdtype(array.dtype, np.floating):
        raise DataError(f'{source}: array {name} has dtype {array.dtype}, expected float32 weights')
    if not np.isfinite(array).all():
        raise DataError(f'{source}: array {name} holds NaN or Inf values; the file is corrupt, download it again')
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    return tensor.permute(3, 2, 0, 1).contiguous() if part == 'w' else tensor  # HWIO -> OIHW


def read_release_weights(path: str | Path) -> dict[str, np.ndarray]:
    """All arrays of a release weights file (a dict name -> numpy array).

    Args:
        path: the release's ``wts/model.npz``.

    Returns:
        Array name -> numpy array, every array of the file.

    Raises:
        MissingInputError: no such file.
        DataError: not an npz, truncated or unreadable.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     np.savez(Path(folder) / 'model.npz', inp_w=np.zeros((3, 3, 12, 64), np.float32))
        ...     sorted(read_release_weights(Path(folder) / 'model.npz'))
        ['inp_w']
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f'{path} does not exist; download the released model (wts/model.npz of '
                                'likesum/deepFnF, see the README) and pass its path')
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (zipfile.BadZipFile, EOFError, ValueError, OSError, KeyError) as error:
        raise DataError(f'{path} is not a complete .npz file ({type(error).__name__}: {error}); the download '
                        'is truncated or corrupt: download wts/model.npz again') from None


def sidecar_path(checkpoint: str | Path) -> Path:
    """``OUT.yml`` beside ``OUT.pth``: the option file holding the converted network's ``network_g``.

    Args:
        checkpoint: the converted checkpoint.

    Returns:
        The path with the suffix :data:`SIDECAR_SUFFIX`.

    Example:
        >>> sidecar_path('weights/deepfnf_release.pth').as_posix()
        'weights/deepfnf_release.yml'
    """
    return Path(checkpoint).with_suffix(SIDECAR_SUFFIX)


def convert_release_weights(npz_path: str | Path, out_path: str | Path,
                            overwrite: bool = False) -> tuple[Path, Path, dict]:
    """Convert the released ``model.npz`` to a BasicSR checkpoint plus its ``network_g`` option file.

    Args:
        npz_path: the release's weights file.
        out_path: the ``.pth`` to write; ``<stem>.yml`` is written beside it.
        overwrite: replace existing outputs.

    Returns:
        (checkpoint path, option file path, network_g options).

    Raises:
        OutputExistsError: an output exists and ``overwrite`` is False (checked before any work).
        DataError / MissingInputError: see :func:`read_release_weights`, :func:`release_to_state_dict`.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     arrays = state_dict_to_release(DeepFnF(width=0.0625, num_basis=2).state_dict())
        ...     np.savez(Path(folder) / 'model.npz', **arrays)
        ...     checkpoint, options_file, options = convert_release_weights(Path(folder) / 'model.npz',
        ...                                                                 Path(folder) / 'release.pth')
        ...     checkpoint.name, options_file.name, options['num_basis']
        ('release.pth', 'release.yml', 2)
    """
    from fnf_basicsr.utils.files import prepare_output_folder, write_atomically
    out_path = Path(out_path)
    if out_path.suffix != '.pth':
        raise DataError(f'output {out_path} must end in .pth (a BasicSR checkpoint); e.g. deepfnf_release.pth')
    option_path = sidecar_path(out_path)
    existing = [path for path in (out_path, option_path) if path.exists()]
    if existing and not overwrite:
        raise OutputExistsError(f'{existing[0]} already exists; pass --overwrite to replace it, or choose another '
                                'output path')
    prepare_output_folder(out_path.parent, 'converted model')
    state_dict, options = release_to_state_dict(read_release_weights(npz_path), source=str(npz_path))
    write_atomically(out_path, _checkpoint_bytes(state_dict), overwrite=overwrite)
    write_atomically(option_path, _option_text(options, out_path, npz_path).encode('utf-8'), overwrite=overwrite)
    return out_path, option_path, options


def _checkpoint_bytes(state_dict):
    import io
    buffer = io.BytesIO()
    torch.save({'params': state_dict}, buffer)
    return buffer.getvalue()


def _option_text(options, out_path, npz_path):
    header = (f'# network_g of the released DeepFnF (likesum/deepFnF), converted from {Path(npz_path).name}\n'
              '# by scripts/model_conversion/convert_release_weights.py. upsampling: tf1 and tent_padding: zeros '
              'reproduce the\n'
              '# TensorFlow graph; copy network_g and path into a test option file to use it with basicsr test.\n')
    body = {'network_g': options,
            'path': {'pretrain_network_g': str(out_path), 'param_key_g': 'params', 'strict_load_g': True}}
    return header + yaml.safe_dump(body, sort_keys=False)


# ---------------------------------------------------------------------------------------------
# The released test set
# ---------------------------------------------------------------------------------------------
