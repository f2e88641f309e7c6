"""Read real flash/no-flash captures and write the denoiser's outputs.

Inputs (one no-flash and one flash photo of the same scene, same size):

* 16-bit PNG or TIFF, and float32 TIFF: linear camera RGB, as FAID stores it. A PNG's color
  metadata (FAID's text chunks, :mod:`fnf_basicsr.data.faid`) gives the camera -> sRGB color
  transform; without it the data are rendered as if they were linear sRGB.
* 8-bit PNG, JPEG or TIFF (and 16-bit ones declared ``srgb``): sRGB-encoded pictures, linearised
  with the sRGB curve (:func:`~fnf_basicsr.utils.rendering.srgb_degamma`); identity color
  transform. The EXIF orientation of such files is applied, to both photos alike.
* DNG camera raw files, demosaiced by rawpy (LibRaw) to linear camera RGB without white balance
  (the FAID convention) and scaled by the file's black and white levels; the color matrix
  (ColorMatrix1/2), exposure and noise profile (NoiseProfile) come from its TIFF tags, read with
  tifffile. Needs the optional extra: ``pip install "fnf-basicsr[raw]"``.

Pairs in a folder are ``<Name>_ambient.png`` + ``<Name>_flash.png`` (FAID naming) or
``<Name>_noflash.<ext>`` + ``<Name>_flash.<ext>`` with any supported extension.

Outputs are written to a temporary file beside the target and moved into place, so a reader
never sees half a file; an existing file is only replaced when asked, and never an input.
"""
import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from fnf_basicsr.data.faid import ILLUMINANT_KEY, MATRIX_KEY, ColorMetadata, FaidFormatError, read_png_text
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


class CaptureError(DataError):
    """An input file that cannot be used as it is; the message names the file and the fix (a ValueError)."""


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
    """
    pixels: np.ndarray
    path: Path
    encoding: str
    bit_depth: int
    color_matrix: np.ndarray = None
    exposure: float = None
    noise: tuple = None


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
        noise: (sig_read, sig_shot) of the no-flash photo from its metadata, or None.
        notes: what was assumed or read, for the user.
    """
    noflash: np.ndarray
    flash: np.ndarray
    color_matrix: np.ndarray
    noflash_path: Path
    flash_path: Path = None
    flash_shares_noise: bool = False
    noise: tuple = None
    notes: list = field(default_factory=list)


def read_capture_pair(noflash_path, flash_path=None, encoding='auto', flash_only=False, exposure_ratio=None,
                      color_matrix=None):
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

    Raises:
        FileNotFoundError, CaptureError: see :func:`read_image`; the photos differ in size or
            encoding, or ``exposure_ratio`` is not positive.
    """
    noflash = read_image(noflash_path, encoding)
    notes = [f'no-flash: {noflash.path} ({noflash.bit_depth}-bit, {_ENCODING_NOTES[noflash.encoding]})']
    flash = None
    if flash_path is not None:
        flash = read_image(flash_path, encoding)
        _check_same_kind(noflash, flash)
        notes.append(f'flash: {flash.path} ({"flash light only" if flash_only else "flash photo"})')
    matrix, color_note = _color_matrix(noflash, color_matrix)
    notes.append(color_note)
    pixels, shares_noise = None, False
    if flash is not None:
        ratio, ratio_note = _exposure_ratio(noflash, flash, exposure_ratio)
        notes.append(ratio_note)
        pixels = flash.pixels * np.float32(ratio) if ratio != 1 else flash.pixels
        if flash_only:
            pixels = pixels + noflash.pixels
        shares_noise = ratio == 1 and not flash_only
    return CapturePair(noflash.pixels, pixels, matrix, noflash.path, flash.path if flash else None, shares_noise,
                       noflash.noise, notes)


_ENCODING_NOTES = {'linear': 'linear', 'srgb': 'sRGB, linearised', 'raw': 'camera raw, demosaiced'}


def read_image(path, encoding='auto'):
    """Read one photo as linear RGB (see the module docstring for the formats).

    Raises:
        FileNotFoundError: the file does not exist.
        CaptureError: unsupported extension, undecodable file, grayscale, a bit depth that
            contradicts ``encoding``, malformed color metadata, or DNG without rawpy.
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
    pixels, bit_depth = _rgb_pixels(pixels, path)
    _check_finite(pixels, path)
    encoding = _resolve_encoding(encoding, bit_depth, path)
    exif = _read_exif(path)
    pixels = _apply_orientation(pixels, exif.get(EXIF_ORIENTATION, 1))
    scale = {8: 255.0, 16: 65535.0, 32: 1.0}[bit_depth]
    linear = pixels.astype(np.float32) / np.float32(scale)
    if encoding == 'srgb':
        linear = srgb_degamma(linear).numpy().astype(np.float32)
    color_matrix = _png_color_matrix(data, path) if suffix == '.png' and encoding == 'linear' else None
    return LinearImage(linear, path, encoding, bit_depth, color_matrix, _exposure(exif))


def find_pairs(folder):
    """The capture pairs of a folder, sorted by name.

    Returns:
        list of (name, noflash_path, flash_path).

    Raises:
        FileNotFoundError: the folder does not exist.
        CaptureError: a name with two no-flash (or two flash) files, a photo without its partner,
            or no pair at all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f'input folder {folder} does not exist (or is not a folder)')
    roles = {'noflash': {}, 'flash': {}}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() not in RASTER_SUFFIXES + RAW_SUFFIXES or path.name.startswith('.'):
            continue
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
                           f'<Name>_noflash.<ext> (or <Name>_ambient.png) + <Name>_flash.<ext>')
    if not roles['noflash']:
        raise CaptureError(f'{folder}: no pairs found; name them <Name>_noflash.<ext> + <Name>_flash.<ext> '
                           f'(or FAID\'s <Name>_ambient.png + <Name>_flash.png), <ext> one of '
                           f'{sorted(RASTER_SUFFIXES + RAW_SUFFIXES)}')
    return [(name, roles['noflash'][name], roles['flash'][name]) for name in sorted(roles['noflash'])]


def check_output_paths(outputs, inputs, overwrite=False):
    """Refuse outputs that are an input (always), that exist (unless ``overwrite``), or whose folder
    cannot be written; create missing output folders and remove temporaries that killed runs left.

    Raises:
        CaptureError: an output names an input file, or exists and ``overwrite`` is False.
        OutputError: an output's folder is under a regular file, cannot be created, or is read-only.
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


def encode_srgb_png(srgb, bits=8):
    """PNG bytes of an (H, W, 3) sRGB image in [0, 1] (clipped), 8 or 16 bits per sample."""
    if bits not in (8, 16):
        raise ValueError(f'bits must be 8 or 16, got {bits}')
    top = 255 if bits == 8 else 65535
    quantised = np.round(np.clip(srgb, 0, 1) * top).astype(np.uint8 if bits == 8 else np.uint16)
    return _encode('.png', quantised)


def encode_float_tiff(linear):
    """TIFF bytes of an (H, W, 3) float32 image (RGB order, values kept as they are)."""
    return _encode('.tiff', np.asarray(linear, dtype=np.float32))


def _encode(extension, image_rgb):
    ok, encoded = cv2.imencode(extension, cv2.cvtColor(np.ascontiguousarray(image_rgb), cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {image_rgb.shape} {image_rgb.dtype} image as {extension}')
    return encoded.tobytes()


def _rgb_pixels(pixels, path):
    """(H, W, 3) RGB pixels and their bit depth from what OpenCV decoded (BGR, maybe with alpha)."""
    if pixels.ndim == 2 or pixels.shape[2] not in (3, 4):
        channels = 1 if pixels.ndim == 2 else pixels.shape[2]
        raise CaptureError(f'{path}: {channels}-channel image; the denoiser needs RGB color photos')
    depths = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16, np.dtype(np.float32): 32}
    if pixels.dtype not in depths:
        raise CaptureError(f'{path}: {pixels.dtype} samples are not supported; save it as 8/16-bit integers or '
                           'float32')
    conversion = cv2.COLOR_BGRA2RGB if pixels.shape[2] == 4 else cv2.COLOR_BGR2RGB
    return cv2.cvtColor(pixels, conversion), depths[pixels.dtype]


def _check_finite(pixels, path):
    """Refuse NaN / Inf samples (float TIFFs): they would turn the whole picture black or NaN."""
    if pixels.dtype.kind != 'f':
        return
    bad = ~np.isfinite(pixels)
    if bad.any():
        row, col, _ = np.argwhere(bad)[0]
        raise CaptureError(f'{path}: {int(bad.sum())} NaN or Inf sample(s), the first at row {row}, column {col}; '
                           'the denoiser needs finite intensities: fix or re-export the image')


def _resolve_encoding(encoding, bit_depth, path):
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
        matrix = np.asarray(override, dtype=np.float32)
        if matrix.size != 9 or not np.all(np.isfinite(matrix)):
            raise CaptureError(f'--color-matrix needs 9 finite numbers (camera RGB -> linear sRGB, row-major), '
                               f'got {np.asarray(override).ravel().tolist()}')
        return matrix.reshape(3, 3), 'color: camera -> sRGB matrix from --color-matrix'
    if noflash.color_matrix is not None:
        return noflash.color_matrix.astype(np.float32), f'color: camera -> sRGB matrix from {noflash.path.name}'
    if noflash.encoding == 'srgb':
        return np.eye(3, dtype=np.float32), 'color: sRGB input, identity color transform'
    return np.eye(3, dtype=np.float32), ('color: no color metadata, the linear data are rendered as linear sRGB '
                                         '(pass --color-matrix for camera RGB)')


def _check_same_kind(noflash, flash):
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


def _exposure_ratio(noflash, flash, ratio):
    if ratio is not None:
        if not ratio > 0:
            raise CaptureError(f'--exposure-ratio must be positive (no-flash exposure / flash exposure), got {ratio}')
        return float(ratio), f'exposure ratio {ratio:g} (--exposure-ratio): flash photo scaled by it'
    if noflash.exposure and flash.exposure:
        ratio = noflash.exposure / flash.exposure
        return ratio, f'exposure ratio {ratio:.4g} from EXIF exposure time x ISO: flash photo scaled by it'
    return 1.0, 'exposure ratio 1 (no EXIF exposure time and ISO in both files; set --exposure-ratio otherwise)'


def _read_exif(path):
    """EXIF tags of a file (IFD0 and the Exif sub-IFD merged); empty when it has none."""
    try:
        with Image.open(path) as image:
            exif = image.getexif()
            tags = dict(exif)
            tags.update(exif.get_ifd(EXIF_IFD))
            return tags
    except Exception:  # Pillow cannot open every TIFF/DNG variant; EXIF is optional
        return {}


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
    transform = transforms.get(int(orientation) if isinstance(orientation, (int, np.integer)) else 1)
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
