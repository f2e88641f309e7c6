"""The authors' released test set (likesum/deepFnF ``data/testset``): reading it, in our sample layout.

The release's frozen test set is ``<root>/<k>/<c>.npz`` (k = 0..3, one dimming level each, c = 0..127),
each file holding NHWC arrays with a batch axis of one. Its ``test.py`` feeds the network the noisy
no-flash and flash images and their noise-std maps, divides the output by the file's ``alpha``, renders
output and the clean ``ambient`` through ``color_matrix`` (XYZ -> camera, solved) and ``adapt_matrix`` (to
D65), then XYZ -> sRGB and the sRGB curve, clips to [0, 1] and scores each image.
:class:`ReleaseTestSet` reproduces exactly that for ``fnf-benchmark`` and gives the same files as the
dataset's samples (:meth:`ReleaseTestSet.item`) for ``basicsr test``. The weights' conversion is in
:mod:`fnf_basicsr.inference.release`.
"""
from __future__ import annotations

import math
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from fnf_basicsr.data.degradation import sample_dict
from fnf_basicsr.data.input_layout import FRAMES, image_channels, input_channels, std_channels
from fnf_basicsr.data.noise import noise_std
from fnf_basicsr.errors import DataError, MissingInputError

# The release's XYZ -> linear sRGB matrix (utils/tf_utils.py), used to score exactly as test.py.
RELEASE_XYZ_TO_SRGB = np.array([[3.24071, -1.53726, -0.498571],
                                [-0.969258, 1.87599, 0.0415557],
                                [0.0556352, -0.203996, 1.05707]], dtype=np.float32)
RELEASE_TESTSET_KEYS = ('alpha', 'ambient', 'warped_ambient', 'flash_only', 'warped_flash_only', 'noisy_ambient',
                        'noisy_warped_flash', 'sig_read', 'sig_shot', 'color_matrix', 'adapt_matrix')
# The arrays of a test file holding the noisy frames that input_layout.FRAMES names.
RELEASE_FRAME_ARRAYS = {'noflash': 'noisy_ambient', 'flash': 'noisy_warped_flash'}
RELEASE_LEVELS = 4
FILE_PATTERN = re.compile(r'^(\d+)\.npz$')


def is_release_testset(root: str | Path) -> bool:
    """True if ``root`` looks like the release's ``data/testset``: folders 0..3 holding ``<c>.npz``.

    Args:
        root: a folder.

    Returns:
        Whether folders ``0`` .. ``3`` exist and ``0`` holds a ``<c>.npz`` file.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for level in range(RELEASE_LEVELS):
        ...         (Path(folder) / str(level)).mkdir()
        ...     before = is_release_testset(folder)
        ...     _ = (Path(folder) / '0' / '7.npz').write_bytes(b'')
        ...     before, is_release_testset(folder)
        (False, True)
    """
    root = Path(root)
    levels = [root / str(k) for k in range(RELEASE_LEVELS)]
    return all(level.is_dir() for level in levels) and any(
        FILE_PATTERN.match(path.name) for path in levels[0].iterdir())


def camera_to_srgb_release(linear: torch.Tensor, color_matrix: np.ndarray,
                           adapt_matrix: np.ndarray) -> torch.Tensor:
    """test.py's rendering: solve with the XYZ -> camera matrix, adapt to D65, XYZ -> sRGB, sRGB curve.

    Args:
        linear: (B, 3, H, W) linear camera RGB.
        color_matrix: (B, 3, 3) or (3, 3) XYZ -> camera matrix of the test file.
        adapt_matrix: (B, 3, 3) or (3, 3) adaptation matrix of the test file.

    Returns:
        The sRGB images, float32, not clipped.

    Shape:
        - linear: (B, 3, H, W).
        - output: (B, 3, H, W).

    Example:
        >>> camera_to_xyz = np.linalg.inv(RELEASE_XYZ_TO_SRGB)  # a camera that sees linear sRGB
        >>> srgb = camera_to_srgb_release(torch.full((1, 3, 2, 2), 0.5), np.linalg.inv(camera_to_xyz), np.eye(3))
        >>> srgb.shape, round(srgb.mean().item(), 3)
        (torch.Size([1, 3, 2, 2]), 0.735)
    """
    from fnf_basicsr.utils.rendering import srgb_gamma
    linear = linear.float()
    color = torch.as_tensor(np.asarray(color_matrix, dtype=np.float32)).reshape(-1, 3, 3).to(linear.device)
    adapt = torch.as_tensor(np.asarray(adapt_matrix, dtype=np.float32)).reshape(-1, 3, 3).to(linear.device)
    pixels = linear.flatten(2)  # (B, 3, HW)
    # the same three steps as the release, in float32
    xyz = torch.linalg.solve(color.expand(pixels.shape[0], 3, 3), pixels)
    xyz = adapt.expand(pixels.shape[0], 3, 3) @ xyz
    rgb = torch.as_tensor(RELEASE_XYZ_TO_SRGB, device=linear.device) @ xyz
    return srgb_gamma(rgb).reshape(linear.shape)


def release_input(data: Mapping[str, np.ndarray], input_mode: str) -> torch.Tensor:
    """test.py's network input from the arrays of a test file: ``lq`` (C, H, W) float32, in our layout.

    The std maps are computed in NumPy from the file's float32 ``sig_read`` and ``sig_shot``, as test.py does.

    Args:
        data: the arrays of a test file (NHWC, batch axis of one).
        input_mode: ``flash_noflash`` or ``noflash``.

    Returns:
        The network input.

    Shape:
        - data['noisy_ambient'], data['noisy_warped_flash']: (1, H, W, 3).
        - output: (12, H, W), or (6, H, W) for ``noflash``.

    Example:
        >>> data = {'noisy_ambient': np.zeros((1, 4, 5, 3), np.float32), 'noisy_warped_flash': np.ones((1, 4, 5, 3)),
        ...         'sig_read': np.float32([0.01]), 'sig_shot': np.float32([0.02])}
        >>> lq = release_input(data, 'flash_noflash')
        >>> lq.shape, round(lq[6, 0, 0].item(), 4), round(lq[9, 0, 0].item(), 4)
        (torch.Size([12, 4, 5]), 0.01, 0.0224)
    """
    frames = [np.asarray(data[RELEASE_FRAME_ARRAYS[name]], dtype=np.float32)[0].transpose(2, 0, 1)
              for name in FRAMES[input_mode]]
    sig_read, sig_shot = (np.float32(np.asarray(data[key]).reshape(-1)[0]) for key in ('sig_read', 'sig_shot'))
    lq = np.empty((input_channels(input_mode),) + frames[0].shape[1:], dtype=np.float32)
    for index, frame in enumerate(frames):
        lq[image_channels(index)] = frame
        lq[std_channels(index, len(frames))] = noise_std(frame, sig_read, sig_shot)
    return torch.from_numpy(lq)


class ReleaseTestSet:
    """The release's ``data/testset``: samples in our layout, scored exactly as its test.py.

    Args:
        root: the folder holding ``0/`` ... ``3/``.

    Attributes:
        entries: one dict per file, ``{'key': 'level<k>_<c>', 'file': Path, 'level': k}``, level-major.

    Raises:
        MissingInputError: ``root`` does not exist.
        DataError: a level folder is missing, or no ``<c>.npz`` file at all.

    Example:
        >>> import tempfile
        >>> arrays = {key: np.full((1, 8, 8, 3), 0.25, np.float32) for key in RELEASE_TESTSET_KEYS}
        >>> identity = np.eye(3, dtype=np.float32)[None]
        >>> arrays.update(alpha=np.float32([0.02]), sig_read=np.float32([0.01]), sig_shot=np.float32([0.02]),
        ...               color_matrix=identity, adapt_matrix=identity)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for level in range(RELEASE_LEVELS):
        ...         (Path(folder) / str(level)).mkdir()
        ...         np.savez(Path(folder) / str(level) / '0.npz', **arrays)
        ...     test_set = ReleaseTestSet(folder)
        ...     sample = test_set.sample(0, 'flash_noflash')
        ...     result, target = test_set.render_pair(sample['lq'][None, :3] * sample['alpha'], sample)
        ...     len(test_set), test_set.keys[:2], test_set.dimming(0), test_set.item(0, 'noflash')['lq'].shape
        (4, ['level0_000', 'level1_000'], 50.0, torch.Size([6, 8, 8]))
        >>> sample['lq'].shape, torch.allclose(result, target)
        (torch.Size([12, 8, 8]), True)
    """
    kind = 'release'

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise MissingInputError(f'test set {self.root} does not exist; pass the data/testset folder of the '
                                    'released test set (see the README) or a frozen set')
        self.entries = []
        for level in range(RELEASE_LEVELS):
            folder = self.root / str(level)
            if not folder.is_dir():
                raise DataError(f'{self.root} is not the released test-set layout: {folder} is missing (expected '
                                f'folders 0..{RELEASE_LEVELS - 1} of <c>.npz files); unpack testset.zip again')
            numbers = sorted(int(m.group(1)) for m in map(FILE_PATTERN.match, (p.name for p in folder.iterdir())) if m)
            self.entries += [{'key': f'level{level}_{number:03d}', 'file': folder / f'{number}.npz', 'level': level}
                             for number in numbers]
        if not self.entries:
            raise DataError(f'{self.root}: no <c>.npz files in its folders 0..3; unpack testset.zip again')

    def __len__(self):
        return len(self.entries)

    def identity(self) -> list[list]:
        """What identifies the set's content cheaply: each file's name, size and modification time.

        Returns:
            ``[relative path, bytes, mtime in ns]`` per file.
        """
        return [[str(entry['file'].relative_to(self.root)), entry['file'].stat().st_size,
                 entry['file'].stat().st_mtime_ns] for entry in self.entries]

    def load(self, index: int, keys: Sequence[str] = RELEASE_TESTSET_KEYS) -> dict[str, np.ndarray]:
        """The arrays ``keys`` of one file (default: all that test.py reads), checked to be there.

        Args:
            index: the file, ``0 .. len - 1``.
            keys: the arrays to read.

        Returns:
            Array name -> numpy array.

        Raises:
            DataError: keys missing, or a truncated or corrupt file.
        """
        path = self.entries[index]['file']
        try:
            with np.load(path, allow_pickle=False) as npz:
                missing = [key for key in RELEASE_TESTSET_KEYS if key not in npz.files]
                if missing:
                    raise DataError(f'{path}: not a released test-set file, keys {missing} missing (it has '
                                    f'{sorted(npz.files)}); unpack testset.zip again')
                return {key: npz[key] for key in keys}
        except (zipfile.BadZipFile, EOFError, ValueError, OSError) as error:
            if isinstance(error, DataError):
                raise
            raise DataError(f'{path} is truncated or corrupt ({type(error).__name__}: {error}); unpack '
                            'testset.zip again') from None

    def dimming(self, index: int) -> float:
        """1 / alpha of one file, rounded to 4 decimals (the dimming factor its results are grouped by).

        Args:
            index: the file, ``0 .. len - 1``.

        Returns:
            The dimming factor.
        """
        return round(1.0 / float(np.asarray(self.load(index, ('alpha',))['alpha']).reshape(-1)[0]), 4)

    def sample(self, index: int, input_mode: str) -> dict[str, Any]:
        """One test image in our layout: ``lq``, ``dimming`` (1 / alpha), ``displacement`` (NaN: not stored).

        ``lq`` is test.py's network input (:func:`release_input`): noisy no-flash, noisy warped flash,
        then the noise std of each (``noflash``: no-flash and its std).

        Args:
            index: the file, ``0 .. len - 1``.
            input_mode: ``flash_noflash`` or ``noflash``.

        Returns:
            ``key``, ``lq``, ``data`` (the file's arrays), ``alpha``, ``dimming``, ``displacement``.

        Raises:
            DataError: ``noflash_burst`` (the release has one no-flash frame), or a damaged file.
        """
        data = self.load(index)
        if input_mode == 'noflash_burst':
            raise DataError(f'{self.root}: the released test set has one no-flash frame per image; a 2-frame '
                            'no-flash burst network (input_mode noflash_burst) cannot be scored on it')
        lq = release_input(data, input_mode)
        alpha = float(np.asarray(data['alpha']).reshape(-1)[0])
        return {'key': self.entries[index]['key'], 'lq': lq, 'data': data, 'alpha': alpha,
                'dimming': round(1.0 / alpha, 4), 'displacement': math.nan}

    def item(self, index: int, input_mode: str) -> dict:
        """Sample ``index`` in the layout of every sample source (:func:`~fnf_basicsr.data.degradation.sample_dict`),
        for ``basicsr test``: ``gt`` is the clean ambient at the input's scale (times alpha) and ``color_matrix``
        test.py's three rendering steps as one matrix, so the model's rendering gives test.py's images up to
        float rounding (``fnf-benchmark`` scores with :meth:`render_pair`, exactly as test.py).

        Args:
            index: the file, ``0 .. len - 1``.
            input_mode: ``flash_noflash`` or ``noflash``.

        Returns:
            The sample dict.

        Raises:
            DataError: see :meth:`sample`.
        """
        sample = self.sample(index, input_mode)
        data, alpha = sample['data'], sample['alpha']
        ambient = np.asarray(data['ambient'], dtype=np.float32)[0].transpose(2, 0, 1)
        color, adapt = (np.asarray(data[key], dtype=np.float64).reshape(-1, 3, 3)[0]
                        for key in ('color_matrix', 'adapt_matrix'))
        matrix = RELEASE_XYZ_TO_SRGB.astype(np.float64) @ adapt @ np.linalg.inv(color)
        sig_read, sig_shot = (float(np.asarray(data[key]).reshape(-1)[0]) for key in ('sig_read', 'sig_shot'))
        gt = torch.from_numpy(np.ascontiguousarray(ambient * np.float32(alpha)))
        return sample_dict(sample['lq'], gt, matrix, 1.0 / alpha, sig_read, sig_shot, math.nan, sample['dimming'],
                           sample['key'])

    @property
    def keys(self) -> list[str]:
        """The samples' keys, ``level<k>_<c>``, level-major."""
        return [entry['key'] for entry in self.entries]

    def recorded_options(self) -> None:
        """The degradation options the set records: none (the release's files say only alpha and noise).

        Returns:
            None.
        """
        return None

    def render_pair(self, output: torch.Tensor, sample: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """test.py's scored images: (output / alpha, ambient) rendered and clipped, each (3, H, W).

        Args:
            output: (1, 3, H, W) network output at the input's scale.
            sample: from :meth:`sample`.

        Returns:
            The rendered result and target, clipped to [0, 1].
        """
        data = sample['data']
        denoised = output.float().cpu() / np.float32(sample['alpha'])
        ambient = torch.from_numpy(np.ascontiguousarray(data['ambient'], dtype=np.float32)).permute(0, 3, 1, 2)
        result = camera_to_srgb_release(denoised, data['color_matrix'], data['adapt_matrix'])
        target = camera_to_srgb_release(ambient, data['color_matrix'], data['adapt_matrix'])
        return result.clamp(0, 1)[0], target.clamp(0, 1)[0]

    def render_input(self, linear: torch.Tensor, sample: Mapping[str, Any], gain: float) -> torch.Tensor:
        """Render a (3, H, W) linear image of this sample for a figure, brightened by ``gain``.

        Args:
            linear: (3, H, W) linear camera RGB.
            sample: from :meth:`sample` (its matrices are used).
            gain: brightness gain.

        Returns:
            (3, H, W) sRGB, clipped to [0, 1].
        """
        data = sample['data']
        image = camera_to_srgb_release(linear[None].float() * gain, data['color_matrix'], data['adapt_matrix'])
        return image.clamp(0, 1)[0]

