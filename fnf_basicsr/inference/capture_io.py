"""Read real flash/no-flash captures and write the denoiser's outputs.

Inputs (one no-flash and one flash photo of the same scene, same size):

* 16-bit PNG or TIFF, and float32 TIFF: linear camera RGB, as FAID stores it. A PNG's color
  metadata (FAID's text chunks, :mod:`fnf_basicsr.data.faid`) gives the camera -> sRGB color
  transform; without it the data are rendered as if they were linear sRGB.
* 8-bit PNG, JPEG or TIFF (and 16-bit ones declared ``srgb``): sRGB-encoded pictures, linearised
  with the sRGB curve (:func:`~fnf_basicsr.utils.rendering.srgb_degamma`); identity color
  transform. A 16-bit file marked gamma-encoded (sRGB or gAMA chunk, ICC profile) must be declared.
* DNG camera raw files, demosaiced by rawpy (LibRaw) to linear camera RGB without white balance
  (the FAID convention) and scaled by the file's black and white levels; the color matrix
  (ColorMatrix1/2), exposure and noise profile (NoiseProfile) come from its TIFF tags, read with
  tifffile. Needs the optional extra: ``pip install "fnf-basicsr[raw]"``.

Pairs in a folder are ``<Name>_ambient.png`` + ``<Name>_flash.png`` (FAID naming) or
``<Name>_noflash.<ext>`` + ``<Name>_flash.<ext>`` with any supported extension.

A pair is checked before it is trusted (:func:`read_capture_pair`): the EXIF orientation is applied
to each photo and must agree between them; an alpha channel must be opaque (it is dropped); negative
float samples near black are clipped; the two files must differ; the no-flash photo must not be black
nor brighter than the flash photo at its exposure (swapped inputs); the clipped share of the flash
photo is reported; exposure ratio and color matrix must be usable. Each refusal names the file and fix.

Outputs are written to a temporary file beside the target and moved into place, so a reader
never sees half a file; an existing file is only replaced when asked, and never an input.
"""
from __future__ import annotations

import io
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from fnf_basicsr.data.faid import (ILLUMINANT_KEY, MATRIX_KEY, ColorMetadata, FaidFormatError, color_matrix_problem,
                                   read_png_text)
from fnf_basicsr.data.noise import noise_params_from_terms
from fnf_basicsr.errors import DataError, MissingInputError
from fnf_basicsr.utils.files import prepare_output_folder, remove_stale_temporaries
from fnf_basicsr.utils.files import write_atomically  # noqa: F401  (part of this module's API)
from fnf_basicsr.utils.rendering import srgb_degamma

ENCODINGS = ('auto', 'linear', 'srgb')
RASTER_SUFFIXES = ('.png', '.tif', '.tiff', '.jpg', '.jpeg')
RAW_SUFFIXES = ('.dng',)
NOFLASH_MARKERS = ('_noflash', '_ambient')
FLASH_MARKER = '_flash'
RAW_INSTALL_HINT = 'pip install "fnf-basicsr[raw]"'
# EXIF tags (Pillow numbers them as in the standard).
EXIF_IFD = 0x8769
EXIF_EXPOSURE_TIME = 0x829A
EXIF_ISO = 0x8827
EXIF_ORIENTATION = 0x0112
D65_EXIF_CODE = 21
# DNG tags (Adobe DNG specification 1.4).
DNG_COLOR_MATRIX_1, DNG_COLOR_MATRIX_2 = 50721, 50722
DNG_ILLUMINANT_1, DNG_ILLUMINANT_2 = 50778, 50779
DNG_NOISE_PROFILE = 51041
TIFF_WIDTH, TIFF_LENGTH, TIFF_ORIENTATION = 256, 257, 274
# Numbers a user gives: finite, and within what a capture can mean (flag -> (lowest, highest)).
NUMBER_LIMITS = {'--exposure-ratio': (1e-4, 1e4), '--gain': (1e-3, 1e9), '--sig-read': (1e-6, 1.0),
                 '--sig-shot': (1e-6, 10.0)}
# Share of the flash photo's pixels at the white level above which a warning is printed.
CLIPPED_WARNING = 0.05
# A no-flash photo this much brighter than the flash photo at its exposure: the inputs look swapped.
SWAP_FACTOR = 1.1
# Float samples below this are not noise around black (linear intensities are >= 0, white = 1).
NEGATIVE_LIMIT = -0.5
# ICC profile names of gamma-encoded RGB spaces (a 16-bit file with such a profile is not linear data).
GAMMA_PROFILES = (b'sRGB', b'Adobe RGB', b'Display P3', b'ProPhoto', b'Rec. 709', b'Rec.709')


class CaptureError(DataError):
    """An input file that cannot be used as it is; the message names the file and the fix (a ValueError).

    Example:
        >>> issubclass(CaptureError, ValueError)
        True
    """


@dataclass
class LinearImage:
    """One photo as linear RGB.

    Attributes:
        pixels: (H, W, 3) float32 linear intensities (1.0 = the file's white level).
        path: the file read.
        encoding: ``'linear'``, ``'srgb'`` (linearised here) or ``'raw'`` (a DNG).
        bit_depth: bits per sample in the file (8, 16, or 32 for float TIFF).
        color_matrix: (3, 3) camera -> linear sRGB from the file's metadata, or None if it has none.
        exposure: EXIF exposure time x ISO, or None if the file does not record both.
        noise: (sig_read, sig_shot) from the file's metadata (DNG NoiseProfile), or None.
        orientation: the EXIF orientation (1-8) that was applied; 1 when the file has none.
        clipped: share of pixels with a channel at the file's white level (saturated).
        notes: what was dropped or clipped while reading, for the user.

    Example:
        >>> image = LinearImage(np.zeros((2, 2, 3), np.float32), Path('a.png'), 'srgb', 8)
        >>> image.orientation, image.color_matrix, image.notes
        (1, None, [])
    """
    pixels: np.ndarray
    path: Path
    encoding: str
    bit_depth: int
    color_matrix: np.ndarray | None = None
    exposure: float | None = None
    noise: tuple[float, float] | None = None
    orientation: int = 1
    clipped: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class CapturePair:
    """A no-flash / flash capture ready for :func:`fnf_basicsr.data.degradation.assemble_input`.

    Attributes:
        noflash: (H, W, 3) float32 linear no-flash photo.
        flash: (H, W, 3) float32 linear flash photo (with ambient light) at the no-flash exposure,
            or None when only the no-flash photo is used.
        color_matrix: (3, 3) float32 camera -> linear sRGB.
        flash_shares_noise: the flash image is the flash photo as read, taken with the no-flash
            photo's exposure settings, so it has the same noise parameters (not after exposure
            scaling, nor a flash-only difference image).
        noflash_path: the no-flash file.
        flash_path: the flash file, or None.
        noise: (sig_read, sig_shot) of the no-flash photo from its metadata, or None.
        notes: what was assumed or read, for the user.

    Example:
        >>> pair = CapturePair(np.zeros((2, 2, 3), np.float32), None, np.eye(3, dtype=np.float32), Path('a.png'))
        >>> pair.flash is None, pair.flash_shares_noise
        (True, False)
    """
    noflash: np.ndarray
    flash: np.ndarray | None
    color_matrix: np.ndarray
    noflash_path: Path
    flash_path: Path | None = None
    flash_shares_noise: bool = False
    noise: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)


def read_capture_pair(noflash_path: str | Path, flash_path: str | Path | None = None, encoding: str = 'auto',
                      flash_only: bool = False, exposure_ratio: float | None = None,
                      color_matrix: Sequence[float] | np.ndarray | None = None) -> CapturePair:
    """Read a capture pair and bring the flash photo to the no-flash exposure.

    Args:
        noflash_path: the no-flash (ambient) photo.
        flash_path: the flash photo, or None to read the no-flash photo alone.
        encoding: ``'auto'`` (8-bit: sRGB, 16-bit / float: linear), ``'linear'`` or ``'srgb'``.
        flash_only: the flash file holds the flash light alone (FAID's ``_flash.png``: the
            ambient subtracted); the no-flash photo is added back to make a flash photo.
        exposure_ratio: no-flash exposure / flash exposure (time x ISO); the flash photo is
            multiplied by it. Default: from both files' EXIF, else 1.
        color_matrix: (3, 3) camera -> linear sRGB overriding the files' metadata.

    Returns:
        The pair, with notes on what was read and assumed.

    Raises:
        FileNotFoundError, CaptureError: see :func:`read_image`; the same file given twice, photos that
            differ in size, encoding or orientation, a black no-flash photo, a no-flash photo brighter
            than the flash photo (swapped), an unusable exposure ratio or color matrix.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     noflash, flash = Path(folder) / 'a_noflash.png', Path(folder) / 'a_flash.png'
        ...     _ = cv2.imwrite(str(noflash), np.full((8, 8, 3), 40, np.uint8))
        ...     _ = cv2.imwrite(str(flash), np.full((8, 8, 3), 200, np.uint8))
        ...     pair = read_capture_pair(noflash, flash)
        >>> pair.noflash.shape, pair.flash.dtype, pair.flash_shares_noise
        ((8, 8, 3), dtype('float32'), True)
    """
    noflash = _clip_negative(read_image(noflash_path, encoding))
    notes = [f'no-flash: {noflash.path} ({noflash.bit_depth}-bit, {_ENCODING_NOTES[noflash.encoding]})',
             *noflash.notes]
    _check_not_black(noflash)
    flash = None
    if flash_path is not None:
        _check_distinct(noflash.path, Path(flash_path))
        flash = _clip_negative(read_image(flash_path, encoding))
        _check_same_kind(noflash, flash, notes)
        notes += [f'flash: {flash.path} ({"flash light only" if flash_only else "flash photo"})', *flash.notes,
                  *_clipping_notes(flash)]
    matrix, color_note = _color_matrix(noflash, color_matrix)
    notes.append(color_note)
    pixels, shares_noise = None, False
    if flash is not None:
        ratio, ratio_note = _exposure_ratio(noflash, flash, exposure_ratio)
        notes.append(ratio_note)
        pixels = flash.pixels * np.float32(ratio) if ratio != 1 else flash.pixels
        if flash_only:
            pixels = pixels + noflash.pixels
        else:
            notes += _check_not_swapped(noflash, flash, pixels, exposure_ratio is not None)
        shares_noise = ratio == 1 and not flash_only
    return CapturePair(noflash.pixels, pixels, matrix, noflash.path, flash.path if flash else None, shares_noise,
                       noflash.noise, notes)


_ENCODING_NOTES = {'linear': 'linear', 'srgb': 'sRGB, linearised', 'raw': 'camera raw, demosaiced'}


def read_image(path: str | Path, encoding: str = 'auto') -> LinearImage:
    """Read one photo as linear RGB (see the module docstring for the formats).

    Args:
        path: the photo.
        encoding: ``'auto'`` (8-bit: sRGB, 16-bit / float: linear), ``'linear'`` or ``'srgb'``.

    Returns:
        The photo with what its file says (bit depth, color matrix, exposure, orientation, clipping).

    Raises:
        FileNotFoundError: the file does not exist.
        CaptureError: unsupported extension, undecodable file, grayscale, a bit depth that
            contradicts ``encoding``, malformed color metadata, or DNG without rawpy.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = cv2.imwrite(str(Path(folder) / 'a.png'), np.full((4, 6, 3), 65535, np.uint16))
        ...     image = read_image(Path(folder) / 'a.png')
        >>> image.pixels.shape, image.encoding, image.bit_depth, image.clipped
        ((4, 6, 3), 'linear', 16, 1.0)
    """
    path = Path(path)
    if encoding not in ENCODINGS:
        raise ValueError(f'encoding must be one of {ENCODINGS}, got {encoding!r}')
    if not path.is_file():
        raise MissingInputError(f'{path} does not exist (or is not a file); check the path of the photo')
    if path.stat().st_size == 0:
        raise CaptureError(f'{path}: empty file (0 bytes), e.g. from an interrupted copy; copy it again')
    suffix = path.suffix.lower()
    if suffix in RAW_SUFFIXES:
        if encoding == 'srgb':
            raise CaptureError(f'{path}: a DNG holds linear raw data, not sRGB; drop --encoding srgb')
        return _read_dng(path)
    if suffix not in RASTER_SUFFIXES:
        raise CaptureError(f'{path}: unsupported file type {suffix!r}; use one of '
                           f'{sorted(RASTER_SUFFIXES + RAW_SUFFIXES)}')
    try:
        data = path.read_bytes()
    except OSError as error:
        raise CaptureError(f'{path}: cannot read it ({error.strerror or error})') from None
    try:
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV raises on some damaged headers instead of returning None
        pixels = None
    if pixels is None:
        raise CaptureError(f'{path}: not a decodable {suffix[1:].upper()} file (truncated or corrupt?)')
    pixels, bit_depth, notes = _rgb_pixels(pixels, path)
    _check_finite(pixels, path)
    exif, info = _file_tags(data, suffix)
    encoding = _resolve_encoding(encoding, bit_depth, path, _gamma_marker(info))
    orientation = _orientation(exif)
    if not (suffix in ('.tif', '.tiff') and _decoder_turned(data, pixels, orientation)):
        pixels = _apply_orientation(pixels, orientation)
    scale = {8: 255.0, 16: 65535.0, 32: 1.0}[bit_depth]
    clipped = float(np.mean(np.any(pixels >= scale, axis=2)))
    linear = pixels.astype(np.float32) / np.float32(scale)
    if encoding == 'srgb':
        linear = srgb_degamma(linear).numpy().astype(np.float32)
    color_matrix = _png_color_matrix(data, path) if suffix == '.png' and encoding == 'linear' else None
    return LinearImage(linear, path, encoding, bit_depth, color_matrix, _exposure(exif), None, orientation, clipped,
                       notes)


def find_pairs(folder: str | Path) -> list[tuple[str, Path, Path]]:
    """The capture pairs of a folder, sorted by name.

    Args:
        folder: the folder (not searched recursively).

    Returns:
        list of (name, noflash_path, flash_path).

    Raises:
        FileNotFoundError: the folder does not exist.
        CaptureError: a name with two no-flash (or two flash) files, a photo without its partner,
            or no pair at all.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for name in ('b_noflash.jpg', 'b_flash.jpg', 'a_ambient.png', 'a_flash.png', 'notes.txt'):
        ...         _ = (Path(folder) / name).write_bytes(b'')
        ...     [(name, noflash.name, flash.name) for name, noflash, flash in find_pairs(folder)]
        [('a', 'a_ambient.png', 'a_flash.png'), ('b', 'b_noflash.jpg', 'b_flash.jpg')]
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'input folder {folder} does not exist (or is not a folder)')
    roles = {'noflash': {}, 'flash': {}}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in RASTER_SUFFIXES + RAW_SUFFIXES or path.name.startswith('.') or not path.is_file():
            continue  # (reported by unpaired_entries)
        stem = path.stem
        for role, markers in (('noflash', NOFLASH_MARKERS), ('flash', (FLASH_MARKER,))):
            marker = next((m for m in markers if stem.endswith(m)), None)
            if marker:
                name = stem[:-len(marker)]
                if name in roles[role]:
                    raise CaptureError(f'{folder}: {name} has two {role} photos, {roles[role][name].name} and '
                                       f'{path.name}; keep one')
                roles[role][name] = path
    orphans = sorted(set(roles['noflash']) ^ set(roles['flash']))
    if orphans:
        described = [(roles['noflash'].get(n) or roles['flash'].get(n)).name for n in orphans]
        raise CaptureError(f'{folder}: {len(orphans)} photo(s) without a partner: {described}; a pair is '
                           f'<Name>_noflash.<ext> (or <Name>_ambient.png) + <Name>_flash.<ext>{_skipped(folder)}')
    if not roles['noflash']:
        raise CaptureError(f'{folder}: no pairs found; name them <Name>_noflash.<ext> + <Name>_flash.<ext> '
                           f'(or FAID\'s <Name>_ambient.png + <Name>_flash.png), <ext> one of '
                           f'{sorted(RASTER_SUFFIXES + RAW_SUFFIXES)}{_skipped(folder)}')
    return [(name, roles['noflash'][name], roles['flash'][name]) for name in sorted(roles['noflash'])]


def unpaired_entries(folder: str | Path, pairs: Iterable[tuple[str, Path, Path]]) -> list[tuple[Path, str]]:
    """Every entry of ``folder`` that :func:`find_pairs` did not put in ``pairs``, with why, sorted by name.

    Args:
        folder: the folder of pairs.
        pairs: what :func:`find_pairs` returned.

    Returns:
        ``(path, reason)`` per entry left out.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for name in ('a_noflash.png', 'a_flash.png', 'B_NoFlash.png', 'notes.txt'):
        ...         _ = (Path(folder) / name).write_bytes(b'')
        ...     for path, reason in unpaired_entries(folder, find_pairs(folder)):
        ...         print(f'{path.name}: {reason.split(":")[0]}')
        B_NoFlash.png: its name ends with '_NoFlash', but the markers are lower case
        notes.txt: not a supported image type (.txt)
    """
    used = {path.name for _, noflash, flash in pairs for path in (noflash, flash)}
    entries = [(path, _unpaired_reason(path)) for path in sorted(Path(folder).iterdir()) if path.name not in used]
    return [(path, reason) for path, reason in entries if reason]


def _skipped(folder, shown=3):
    """The first entries a folder holds that are no photo of a pair, with why (for a refusal's message)."""
    entries = sorted(unpaired_entries(folder, []), key=lambda entry: 'lower case' not in entry[1])  # likeliest first
    skipped = [f'{path.name}: {reason}' for path, reason in entries if not reason.startswith('its name ends with none')]
    skipped = skipped[:shown]
    return f' (skipped: {"; ".join(skipped)})' if skipped else ''


def _unpaired_reason(path):
    if path.is_dir():
        return 'a folder: pairs are read from the folder itself, not from sub-folders'
    if path.name.startswith('.'):
        return 'a hidden file'
    if path.suffix.lower() not in RASTER_SUFFIXES + RAW_SUFFIXES:
        return f'not a supported image type ({path.suffix or "no extension"})'
    if any(path.stem.endswith(m) for m in (*NOFLASH_MARKERS, FLASH_MARKER)):
        return None  # a photo of a pair
    marker = next((m for m in (*NOFLASH_MARKERS, FLASH_MARKER) if path.stem.lower().endswith(m)), None)
    if marker:
        return (f'its name ends with {path.stem[-len(marker):]!r}, but the markers are lower case: rename it to '
                f'{path.stem[:-len(marker)]}{marker}{path.suffix}')
    return "its name ends with none of '_noflash', '_ambient', '_flash'"


def check_output_paths(outputs: Iterable[str | Path], inputs: Iterable[str | Path | None],
                       overwrite: bool = False) -> None:
    """Refuse outputs that are an input (always), that exist (unless ``overwrite``), or whose folder
    cannot be written; create missing output folders and remove temporaries that killed runs left.

    Args:
        outputs: the files to write.
        inputs: the files read (None entries are skipped).
        overwrite: allow replacing existing outputs (never an input).

    Raises:
        CaptureError: an output names an input file, or exists and ``overwrite`` is False.
        OutputError: an output's folder is under a regular file, cannot be created, or is read-only.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     photo = Path(folder) / 'a_noflash.png'
        ...     _ = photo.write_bytes(b'')
        ...     check_output_paths([Path(folder) / 'out' / 'a.png'], [photo])
        ...     try:
        ...         check_output_paths([photo], [photo], overwrite=True)
        ...     except CaptureError as error:
        ...         print('is the input' in str(error))
        True
    """
    inputs = [Path(path) for path in inputs if path is not None]
    for output in outputs:
        output = Path(output)
        if output.is_dir():
            raise CaptureError(f'output {output} is a folder; give a file name ending in .png')
        prepare_output_folder(output.parent)
        remove_stale_temporaries(output)
        for source in inputs:
            same = output.exists() and source.exists() and os.path.samefile(output, source)  # also hard links
            if same or output.resolve() == source.resolve():
                raise CaptureError(f'output {output} is the input {source}; choose another output path '
                                   '(inputs are never overwritten, not even with --overwrite)')
        if output.exists() and not overwrite:
            raise CaptureError(f'output {output} already exists; pass --overwrite to replace it, or choose '
                               'another path')


def encode_srgb_png(srgb: np.ndarray, bits: int = 8) -> bytes:
    """PNG bytes of an (H, W, 3) sRGB image in [0, 1] (clipped), 8 or 16 bits per sample.

    Args:
        srgb: (H, W, 3) RGB values, clipped to [0, 1].
        bits: 8 or 16.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: ``bits`` is neither 8 nor 16.

    Example:
        >>> data = encode_srgb_png(np.full((2, 3, 3), 2.0), bits=16)
        >>> decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        >>> data[:4], decoded.shape, int(decoded.max())
        (b'\\x89PNG', (2, 3, 3), 65535)
    """
    if bits not in (8, 16):
        raise ValueError(f'bits must be 8 or 16, got {bits}')
    top = 255 if bits == 8 else 65535
    quantised = np.round(np.clip(srgb, 0, 1) * top).astype(np.uint8 if bits == 8 else np.uint16)
    return _encode('.png', quantised)


def encode_float_tiff(linear: np.ndarray) -> bytes:
    """TIFF bytes of an (H, W, 3) float32 image (RGB order, values kept as they are).

    Args:
        linear: (H, W, 3) values (converted to float32).

    Returns:
        The TIFF file's bytes.

    Example:
        >>> data = encode_float_tiff(np.full((2, 2, 3), 1.5))
        >>> cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)[0, 0]
        array([1.5, 1.5, 1.5], dtype=float32)
    """
    return _encode('.tiff', np.asarray(linear, dtype=np.float32))


def _encode(extension, image_rgb):
    ok, encoded = cv2.imencode(extension, cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {image_rgb.shape} {image_rgb.dtype} image as {extension}')
    return encoded.tobytes()


def _rgb_pixels(pixels, path):
    """(H, W, 3) RGB pixels, their bit depth and notes, from what OpenCV decoded (BGR, maybe with alpha).

    An alpha channel is dropped only when it is fully opaque: a transparent pixel has no photo value.
    """
    if pixels.ndim == 2 or pixels.shape[2] not in (3, 4):
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        raise CaptureError(f'{path}: {channels}-channel image; the denoiser needs RGB color photos')
    depths = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16, np.dtype(np.float32): 32}
    if pixels.dtype not in depths:
        raise CaptureError(f'{path}: {pixels.dtype} samples are not supported; save it as 8/16-bit integers or '
                           'float32')
    notes = []
    if pixels.shape[2] == 4:
        opaque = 1.0 if pixels.dtype == np.float32 else np.iinfo(pixels.dtype).max
        transparent = float(np.mean(pixels[..., 3] != opaque))
        if transparent:
            raise CaptureError(f'{path}: {transparent:.1%} of its pixels are transparent (alpha channel); a photo has '
                               'no transparency: export it without alpha (flattened)')
        notes.append(f'{path.name}: alpha channel fully opaque, dropped')
    conversion = cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(pixels, conversion), depths[pixels.dtype], notes


def _check_finite(pixels, path):
    """Refuse NaN / Inf samples (float TIFFs): they would turn the whole picture black or NaN."""
    if pixels.dtype.kind != 'f':
        return
    bad = ~np.isfinite(pixels)
    if bad.any():
        row, col, _ = np.argwhere(bad)[0]
        raise CaptureError(f'{path}: {int(bad.sum())} NaN or Inf sample(s), the first at row {row}, column {col}; '
                           'the denoiser needs finite intensities: fix or re-export the image')


def _clip_negative(image):
    """A capture's float samples slightly below 0 (noise around a subtracted black level) are clipped with a
    note; far below, the file does not hold linear intensities and is refused. (:func:`read_image` itself
    keeps them: it also reads back our own unclipped linear outputs.)"""
    pixels = image.pixels
    if not pixels.size or pixels.min() >= 0:
        return image
    lowest, count = float(pixels.min()), int(np.sum(pixels < 0))
    if lowest < NEGATIVE_LIMIT:
        raise CaptureError(f'{image.path}: samples down to {lowest:.3g}; linear intensities are >= 0 (white = 1), so '
                           'this is not a linear capture: re-export it as linear RGB in [0, 1]')
    image.notes.append(f'{image.path.name}: {count} negative sample(s), down to {lowest:.3g}, clipped to 0')
    image.pixels = np.maximum(pixels, 0)
    return image


def _gamma_marker(info):
    """What in a file's header says its values are gamma-encoded (sRGB chunk, gAMA != 1, ICC profile), or None."""
    if 'srgb' in info:
        return 'an sRGB chunk'
    gamma = info.get('gamma')
    if isinstance(gamma, (int, float)) and abs(gamma - 1) > 0.05:
        return f'a gAMA chunk of {gamma:g}'
    profile = info.get('icc_profile') or b''
    name = next((name for name in GAMMA_PROFILES if name in profile[:4096]), None)
    return f"an ICC profile '{name.decode()}'" if name else None


def _resolve_encoding(encoding, bit_depth, path, gamma_marker=None):
    if encoding == 'auto' and bit_depth == 16 and gamma_marker:
        raise CaptureError(f'{path}: 16-bit image marked gamma-encoded ({gamma_marker}), while 16-bit files are read '
                           'as linear by default: declare it with --encoding srgb (an sRGB export), or --encoding '
                           'linear if its values are linear despite the marker')
    if encoding == 'linear' and bit_depth == 8:
        raise CaptureError(f'{path}: 8-bit image, but --encoding linear declares 16-bit linear data. 8-bit '
                           'files are gamma-encoded sRGB pictures: use --encoding srgb (or auto), or pass the '
                           '16-bit linear export / the DNG of the capture')
    if encoding == 'srgb' and bit_depth == 32:
        raise CaptureError(f'{path}: float TIFF holds linear values, not sRGB; use --encoding linear (or auto)')
    if encoding == 'auto':
        return 'srgb' if bit_depth == 8 else 'linear'
    return encoding


def _png_color_matrix(data, path):
    """Camera -> sRGB matrix from FAID's text chunks, None if the PNG has neither chunk."""
    try:
        chunks = read_png_text(data)
        if MATRIX_KEY not in chunks and ILLUMINANT_KEY not in chunks:
            return None
        return ColorMetadata.from_text(chunks, str(path)).color_matrix
    except FaidFormatError as error:
        raise CaptureError(f'unreadable color metadata: {error}. Or pass --color-matrix (9 numbers, camera RGB '
                           '-> linear sRGB) to ignore the file\'s metadata') from None


def _color_matrix(noflash, override):
    if override is not None:
        matrix = np.asarray(override, dtype=np.float64)
        problem = 'needs 9 numbers' if matrix.size != 9 else color_matrix_problem(
            matrix.reshape(3, 3), lambda m: np.linalg.solve(m, np.ones(3)))  # the camera's response to sRGB white
        if problem:
            raise CaptureError(f'--color-matrix {problem} (camera RGB -> linear sRGB, 9 numbers row-major), got '
                               f'{matrix.ravel().tolist()}; e.g. 1 0 0 0 1 0 0 0 1 for linear sRGB data')
        return matrix.reshape(3, 3).astype(np.float32), 'color: camera -> sRGB matrix from --color-matrix'
    if noflash.color_matrix is not None:
        return noflash.color_matrix.astype(np.float32), f'color: camera -> sRGB matrix from {noflash.path.name}'
    if noflash.encoding == 'srgb':
        return np.eye(3, dtype=np.float32), 'color: sRGB input, identity color transform'
    return np.eye(3, dtype=np.float32), ('color: no color metadata, the linear data are rendered as linear sRGB '
                                         '(pass --color-matrix for camera RGB)')


def number_problem(flag: str, value: float | None) -> str | None:
    """Why ``value`` cannot be given to ``flag`` (one of :data:`NUMBER_LIMITS`), or None.

    Args:
        flag: a key of :data:`NUMBER_LIMITS`.
        value: the number given, or None (not given).

    Returns:
        A message naming the flag and its range, or None for a usable (or absent) value.

    Example:
        >>> number_problem('--gain', 2.0) is None, number_problem('--gain', None) is None
        (True, True)
        >>> number_problem('--sig-read', float('nan'))
        '--sig-read must be a finite number in [1e-06, 1], got nan'
    """
    low, high = NUMBER_LIMITS[flag]
    if value is None or (isinstance(value, (int, float)) and math.isfinite(value) and low <= value <= high):
        return None
    return f'{flag} must be a finite number in [{low:g}, {high:g}], got {value}'


def _check_distinct(noflash_path, flash_path):
    """The same file (or two copies of it) given as both photos is a mistake, never a flash/no-flash pair."""
    same = os.path.samefile(noflash_path, flash_path) if flash_path.exists() else False
    if same or (flash_path.is_file() and noflash_path.stat().st_size == flash_path.stat().st_size
                and noflash_path.read_bytes() == flash_path.read_bytes()):
        raise CaptureError(f'--noflash {noflash_path} and --flash {flash_path} are the same file (or identical '
                           'copies); give the photo taken without flash and the one taken with flash')


def _check_not_black(image):
    """A no-flash photo without a single non-zero sample holds nothing to denoise (and no gain can show it)."""
    if not np.any(image.pixels > 0):
        raise CaptureError(f'{image.path} is black (every sample is 0): nothing to denoise; check that it is the '
                           'no-flash photo, exported with its data (not an empty or fully masked frame)')


def _clipping_notes(flash):
    """The flash photo's clipped share, with a warning when so much is saturated that the result suffers."""
    if not flash.clipped:
        return []
    note = f'{flash.path.name}: {flash.clipped:.2%} of its pixels are clipped (a channel at the white level)'
    if flash.clipped > CLIPPED_WARNING:
        return [f'warning: {note}; the flash detail there is lost and the result may show halos: retake with less '
                'flash power or a shorter exposure']
    return [note]


def _check_not_swapped(noflash, flash, flash_at_noflash_exposure, ratio_given):
    """A flash adds light: at the no-flash exposure the flash photo is the brighter one. When it is not, the
    inputs are swapped or the exposure ratio is wrong; refused unless the user gave the ratio (then a warning)."""
    ambient, flashed = float(noflash.pixels.mean()), float(flash_at_noflash_exposure.mean())
    if ambient <= SWAP_FACTOR * flashed:
        return []
    message = (f'the no-flash photo {noflash.path} is brighter than the flash photo {flash.path} at the no-flash '
               f'exposure (mean {ambient:.4g} against {flashed:.4g})')
    if ratio_given:
        return [f'warning: {message}; check --exposure-ratio']
    raise CaptureError(f'{message}: the inputs look swapped; pass the photo taken without flash to --noflash and the '
                       'flash photo to --flash; if the flash file holds the flash light alone (FAID\'s _flash.png), '
                       'pass --flash-only-input; if the flash photo had a shorter exposure, give --exposure-ratio '
                       '(no-flash exposure time x ISO / flash exposure time x ISO)')


def _check_same_kind(noflash, flash, notes):
    if noflash.orientation != flash.orientation:
        _check_orientations(noflash, flash, notes)
    if noflash.pixels.shape != flash.pixels.shape:
        (h1, w1), (h2, w2) = noflash.pixels.shape[:2], flash.pixels.shape[:2]
        raise CaptureError(f'misaligned inputs: the no-flash photo {noflash.path} is {w1}x{h1} but the flash photo '
                           f'{flash.path} is {w2}x{h2}. Both must come from the same camera at the same resolution '
                           'and orientation; crop or resize them to the same size (the network absorbs a '
                           'hand-held misalignment of a few pixels, not a different framing)')
    if noflash.encoding != flash.encoding:
        raise CaptureError(f'the no-flash photo {noflash.path} is {noflash.encoding} ({noflash.bit_depth}-bit) but '
                           f'the flash photo {flash.path} is {flash.encoding} ({flash.bit_depth}-bit); export both '
                           'the same way')


def _check_orientations(noflash, flash, notes):
    """Photos whose EXIF orientations differ are consistent only if they were exported already turned: then
    both read as the same non-square size. Otherwise one would be turned against the other: refused."""
    same_size = noflash.pixels.shape == flash.pixels.shape
    if same_size and noflash.pixels.shape[0] != noflash.pixels.shape[1]:
        notes.append(f'EXIF orientations differ ({noflash.path.name}: {noflash.orientation}, {flash.path.name}: '
                     f'{flash.orientation}) but both read upright at the same size')
        return
    raise CaptureError(f'the no-flash photo {noflash.path} has EXIF orientation {noflash.orientation} but the flash '
                       f'photo {flash.path} has {flash.orientation}: applied, they would be turned against each other. '
                       'Export both the same way (both rotated, or the same orientation tag on both)')


def _exposure_ratio(noflash, flash, ratio):
    if ratio is not None:
        problem = number_problem('--exposure-ratio', ratio)
        if problem:
            raise CaptureError(f'{problem} (no-flash exposure / flash exposure)')
        return float(ratio), f'exposure ratio {ratio:g} (--exposure-ratio): flash photo scaled by it'
    if noflash.exposure and flash.exposure:
        ratio = noflash.exposure / flash.exposure
        if number_problem('--exposure-ratio', ratio):
            raise CaptureError(f'the EXIF exposures of {noflash.path} and {flash.path} give an exposure ratio of '
                               f'{ratio:.3g}, outside {NUMBER_LIMITS["--exposure-ratio"]}: the tags are wrong; give '
                               '--exposure-ratio (no-flash exposure / flash exposure)')
        return ratio, f'exposure ratio {ratio:.4g} from EXIF exposure time x ISO: flash photo scaled by it'
    return 1.0, 'exposure ratio 1 (no EXIF exposure time and ISO in both files; set --exposure-ratio otherwise)'


def _file_tags(data, suffix):
    """(EXIF tags with IFD0 and the Exif sub-IFD merged, Pillow's header info) of a file; empty when unreadable.

    Pillow cannot open float TIFFs: their orientation is read from the TIFF header directly.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            exif = image.getexif()
            tags = dict(exif)
            tags.update(exif.get_ifd(EXIF_IFD))
            return tags, dict(image.info)
    except Exception:  # Pillow cannot open every TIFF variant; EXIF is optional
        orientation = _tiff_tags(data).get(TIFF_ORIENTATION) if suffix in ('.tif', '.tiff') else None
        return ({EXIF_ORIENTATION: orientation} if orientation else {}), {}


def _tiff_tags(data):
    """The SHORT / LONG tags of a TIFF's first IFD (tag -> first value); empty if it is no TIFF. A minimal
    reader (header, IFD0 entries) for what Pillow cannot open (float TIFFs)."""
    tags = {}
    try:
        order = {b'II': '<', b'MM': '>'}[bytes(data[:2])]
        (offset,) = struct.unpack_from(order + 'I', data, 4)
        (count,) = struct.unpack_from(order + 'H', data, offset)
        for index in range(count):
            tag, kind, _, value = struct.unpack_from(order + 'HHI4s', data, offset + 2 + 12 * index)
            if kind in (3, 4):  # SHORT or LONG: a single value sits in the first bytes of the field
                tags[tag] = struct.unpack_from(order + ('H' if kind == 3 else 'I'), value)[0]
    except (KeyError, struct.error):
        return {}
    return tags


def _decoder_turned(data, pixels, orientation):
    """True if OpenCV's TIFF decoder applied the orientation itself (it does; PNG and JPEG decoders do not).

    Told from the shape where a turn shows (orientations 5-8 of a non-square image); else assumed, as
    the decoder applies every orientation alike.
    """
    if orientation < 5:
        return True
    tags = _tiff_tags(data)
    width, height = tags.get(TIFF_WIDTH), tags.get(TIFF_LENGTH)
    if width is None or height is None or width == height:
        return True
    return pixels.shape[:2] == (width, height)


def _orientation(tags):
    orientation = tags.get(EXIF_ORIENTATION, 1)
    return int(orientation) if isinstance(orientation, (int, np.integer)) and 1 <= orientation <= 8 else 1


def _exposure(tags):
    time, iso = tags.get(EXIF_EXPOSURE_TIME), tags.get(EXIF_ISO)
    if isinstance(iso, (tuple, list)):
        iso = iso[0] if iso else None
    try:
        exposure = float(time) * float(iso)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return exposure if exposure > 0 else None


def _apply_orientation(pixels, orientation):
    """Rotate / mirror as the EXIF orientation tag (1-8) says, like the photo viewers do."""
    transforms = {
        2: lambda p: p[:, ::-1], 3: lambda p: p[::-1, ::-1], 4: lambda p: p[::-1],
        5: lambda p: p.transpose(1, 0, 2), 6: lambda p: np.rot90(p, -1),
        7: lambda p: p[::-1, ::-1].transpose(1, 0, 2), 8: lambda p: np.rot90(p, 1),
    }
    transform = transforms.get(orientation)
    return np.ascontiguousarray(transform(pixels)) if transform else pixels


def _read_dng(path):
    """Demosaic a DNG to linear camera RGB without white balance; its metadata from the TIFF tags.

    LibRaw scales by the file's white and black levels only (``adjust_maximum_thr=0`` keeps it
    from stretching each photo to its own maximum, which would break the exposure ratio).
    """
    try:
        import rawpy
        import tifffile
    except ImportError:
        raise CaptureError(f'{path}: reading camera raw DNG files needs rawpy: {RAW_INSTALL_HINT}') from None
    try:
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(gamma=(1, 1), no_auto_bright=True, output_bps=16, use_camera_wb=False,
                                  use_auto_wb=False, user_wb=[1.0, 1.0, 1.0, 1.0], adjust_maximum_thr=0.0,
                                  output_color=rawpy.ColorSpace.raw)
    except rawpy.LibRawError as error:
        raise CaptureError(f'{path}: LibRaw cannot read it ({type(error).__name__}: {error}); is it a camera '
                           'DNG?') from None
    try:
        with tifffile.TiffFile(path) as tif:
            tags = _dng_tags(tif.pages[0])
    except (tifffile.TiffFileError, ValueError, IndexError) as error:
        raise CaptureError(f'{path}: unreadable DNG metadata ({error})') from None
    return LinearImage(rgb.astype(np.float32) / np.float32(65535), path, 'raw', 16, _dng_color_matrix(tags, path),
                       _exposure(tags), _dng_noise(tags))


def _dng_tags(page):
    """IFD0 tags by number, with the Exif sub-IFD's exposure time and ISO merged in, rationals as floats."""
    tags = {tag.code: tag.value for tag in page.tags}
    exif = tags.get(EXIF_IFD)
    if isinstance(exif, dict):  # tifffile decodes the Exif IFD into names -> values
        for code, name in ((EXIF_EXPOSURE_TIME, 'ExposureTime'), (EXIF_ISO, 'ISOSpeedRatings')):
            tags.setdefault(code, exif.get(name))
    if isinstance(tags.get(EXIF_EXPOSURE_TIME), tuple):
        tags[EXIF_EXPOSURE_TIME] = _rationals(tags[EXIF_EXPOSURE_TIME])[0]
    return tags


def _rationals(values):
    """Floats from a flat (numerator, denominator, ...) tuple, as TIFF stores (S)RATIONAL tags."""
    values = np.asarray(values, dtype=np.float64)
    return values[0::2] / values[1::2]


def _dng_color_matrix(tags, path):
    """Camera -> sRGB from ColorMatrix2/1 (the one calibrated nearer D65), or None without either."""
    for matrix_tag, illuminant_tag in ((DNG_COLOR_MATRIX_2, DNG_ILLUMINANT_2), (DNG_COLOR_MATRIX_1, DNG_ILLUMINANT_1)):
        if matrix_tag in tags and tags.get(illuminant_tag) == D65_EXIF_CODE:
            break
    else:
        matrix_tag, illuminant_tag = DNG_COLOR_MATRIX_1, DNG_ILLUMINANT_1
    if matrix_tag not in tags:
        return None
    values = _rationals(tags[matrix_tag])
    if values.size != 9:  # a 4-color camera (CMYG): its matrix is 4x3
        return None
    try:
        return ColorMetadata(values.reshape(3, 3), tags.get(illuminant_tag, D65_EXIF_CODE)).color_matrix
    except FaidFormatError as error:
        raise CaptureError(f'unreadable color metadata: {path}: {error}. Or pass --color-matrix (9 numbers, '
                           'camera RGB -> linear sRGB)') from None


def _dng_noise(tags):
    """(sig_read, sig_shot) from the DNG NoiseProfile (variance = S * x + O per plane), or None."""
    profile = tags.get(DNG_NOISE_PROFILE)
    if profile is None or len(profile) < 2:
        return None
    scales, offsets = np.asarray(profile[0::2], np.float64), np.asarray(profile[1::2], np.float64)
    if np.any(scales < 0) or np.any(offsets < 0):
        return None
    return noise_params_from_terms(float(offsets.mean()), float(scales.mean()))


# --- display exposure of a denoised capture --------------------------------------------------------------------

# Automatic gain: this percentile of the rendered (linear sRGB) luminance is mapped to the sRGB
# value AUTO_GAIN_TARGET, i.e. the brightest 1% of the picture sits at or above 0.9.
AUTO_GAIN_PERCENTILE = 99.0
AUTO_GAIN_TARGET = 0.9
LUMINANCE_WEIGHTS = (0.2126, 0.7152, 0.0722)  # linear sRGB (Rec. 709) -> Y
MAX_GAIN_SAMPLES = 4_000_000  # the percentile is taken on at most this many pixels (strided)
LINEAR_SUFFIX = '_linear.tiff'  # fnf-denoise --save-linear: the network output as float32 linear RGB


def auto_gain(linear: torch.Tensor, color_matrix: np.ndarray | torch.Tensor, percentile: float = AUTO_GAIN_PERCENTILE,
              target: float = AUTO_GAIN_TARGET) -> float:
    """The exposure gain that maps the ``percentile`` of rendered luminance to sRGB ``target``.

    Args:
        linear: (3, H, W) linear camera RGB.
        color_matrix: (3, 3) camera -> linear sRGB.
        percentile: the luminance percentile to map.
        target: the sRGB value it is mapped to.

    Returns:
        The gain, > 0.

    Raises:
        CaptureError: the image is black at that percentile (no gain can brighten it); pass a gain.

    Shape:
        - linear: (3, H, W).
        - color_matrix: (3, 3).

    Example:
        >>> gain = auto_gain(torch.full((3, 4, 4), 0.01), np.eye(3))
        >>> round(gain, 2)  # srgb_degamma(0.9) / 0.01
        78.74
    """
    weights = torch.tensor(LUMINANCE_WEIGHTS) @ torch.as_tensor(color_matrix, dtype=torch.float32)
    luminance = torch.einsum('c,chw->hw', weights, linear.float()).flatten()
    step = max(1, luminance.numel() // MAX_GAIN_SAMPLES)
    level = float(np.percentile(luminance[::step].numpy(), percentile))
    if not level > 0:
        raise CaptureError(f'the denoised image is black at its {percentile:g}th luminance percentile ({level:.3g}); '
                         'no automatic gain exists: pass --gain')
    return float(srgb_degamma(torch.tensor(target))) / level
