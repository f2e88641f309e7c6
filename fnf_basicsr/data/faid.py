"""The FAID file format: read and write flash/no-flash pairs with their color metadata.

A FAID folder is flat and holds, for every scene ``<Name>``:

* ``<Name>_ambient.png``: the ambient (no-flash) image,
* ``<Name>_flash.png``: the flash-only image (the ambient already subtracted),

both 16-bit PNGs of linear camera RGB of the same size. The color metadata travels in PNG text
chunks: ``Comment`` holds the 3x3 XYZ->camera color matrix (9 numbers, row-major, whitespace
separated) and ``Description`` the EXIF code of its calibration illuminant (17 A, 19 C, 20 D55,
21 D65, 23 D50; any other code renders as D65). The real dataset and the synthetic generator
(:mod:`fnf_basicsr.data.synthetic`) both use this format, so all code after reading is shared.

Pixels are decoded with OpenCV because Pillow cannot hold 16-bit RGB; text chunks are parsed
here directly so that reading the metadata never decodes pixels.
"""
from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from fnf_basicsr.errors import DataError, MissingInputError
from fnf_basicsr.utils.files import write_atomically
from fnf_basicsr.utils.rendering import WHITE_POINTS, camera_to_srgb_matrix, illuminant_name

AMBIENT_SUFFIX = '_ambient.png'
FLASH_SUFFIX = '_flash.png'
MATRIX_KEY = 'Comment'
ILLUMINANT_KEY = 'Description'
UINT16_MAX = 65535

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_CHUNK_HEADER = struct.Struct('>I4s')
# Largest condition number accepted for a color matrix (those of the Canon 5D Mark II / III and 6D
# are 2.8 to 4.1); a singular or near-singular matrix cannot be inverted to render the image.
MAX_MATRIX_CONDITION = 1e6
# A folder being written (synthetic scenes) holds this file until it is complete; readers refuse it.
INCOMPLETE_MARKER = '.fnf_incomplete.json'


class FaidFormatError(DataError):
    """A file exists but does not follow the FAID format (pixel type, size, metadata); a ValueError.

    Example:
        >>> try:
        ...     decode_png16(b'GIF89a', 'a.png')
        ... except FaidFormatError as error:
        ...     print(error)
        a.png: not a decodable PNG file (no PNG signature); FAID images are 16-bit RGB PNGs
    """


def color_matrix_problem(matrix: np.ndarray, camera_white: Callable[[np.ndarray], np.ndarray]) -> str | None:
    """Why a 3x3 colour matrix cannot render a picture, or None: the one check of every matrix we read.

    Args:
        matrix: (3, 3) float64 matrix.
        camera_white: function of the matrix giving the camera's response to white light (XYZ -> camera:
            the matrix times the white point; camera -> sRGB: its inverse times (1, 1, 1)).

    Returns:
        A phrase (``'is singular ...'``), or None for a usable matrix: finite, invertible, with a positive
        determinant, and a camera that responds positively to white (a zeroed, negated or row-swapped
        matrix fails; every real camera passes).

    Example:
        >>> white = lambda m: m @ np.ones(3)
        >>> color_matrix_problem(np.eye(3), white), color_matrix_problem(-np.eye(3), white)
        (None, 'has a negative determinant (negated, or two rows swapped)')
    """
    if not np.all(np.isfinite(matrix)):
        return 'has non-finite entries'
    if np.linalg.cond(matrix) > MAX_MATRIX_CONDITION:
        return 'is singular (it cannot be inverted to render the picture)'
    if np.linalg.det(matrix) <= 0:
        return 'has a negative determinant (negated, or two rows swapped)'
    white = camera_white(matrix)
    if not np.all(white > 0):
        return f'maps white light to camera values {np.round(white, 4).tolist()}, not all positive (negated?)'
    return None


@dataclass
class ColorMetadata:
    """Per-image color calibration of a FAID pair.

    Args:
        xyz_to_camera: (3, 3) XYZ -> camera RGB matrix (DNG ``ColorMatrix``), row-major; any 9 numbers.
        illuminant: EXIF light-source code of the illuminant the matrix was calibrated under.

    Raises:
        FaidFormatError: not 9 numbers, or a matrix :func:`color_matrix_problem` refuses.

    Example:
        >>> metadata = ColorMetadata(np.eye(3), 21)
        >>> metadata.to_text()
        {'Comment': '1.0 0.0 0.0 0.0 1.0 0.0 0.0 0.0 1.0', 'Description': '21'}
        >>> ColorMetadata.from_text(metadata.to_text(), 'a.png').illuminant
        21
    """
    xyz_to_camera: np.ndarray
    illuminant: int

    def __post_init__(self) -> None:
        matrix = np.asarray(self.xyz_to_camera, dtype=np.float64)
        if matrix.size != 9:
            raise FaidFormatError(f'xyz_to_camera needs 9 numbers (a 3x3 matrix), got shape {matrix.shape}')
        matrix = matrix.reshape(3, 3)
        problem = color_matrix_problem(matrix, lambda m: m @ np.asarray(WHITE_POINTS[illuminant_name(self.illuminant)]))
        if problem:
            raise FaidFormatError(f'xyz_to_camera {problem}: {matrix.tolist()}')
        self.xyz_to_camera = matrix
        self.illuminant = int(self.illuminant)

    @property
    def color_matrix(self) -> np.ndarray:
        """(3, 3) float32 matrix mapping linear camera RGB to linear sRGB (D65).

        Example:
            >>> ColorMetadata(np.eye(3), 21).color_matrix[0].round(3)  # a camera that sees XYZ
            array([ 3.24 , -1.537, -0.499], dtype=float32)
        """
        return camera_to_srgb_matrix(self.xyz_to_camera, self.illuminant).astype(np.float32)

    def to_text(self) -> dict[str, str]:
        """The PNG text chunks that store this metadata (repr of a float reads back exactly).

        Returns:
            ``{'Comment': <9 numbers>, 'Description': <EXIF code>}``.
        """
        numbers = ' '.join(repr(float(value)) for value in self.xyz_to_camera.ravel())
        return {MATRIX_KEY: numbers, ILLUMINANT_KEY: str(self.illuminant)}

    @classmethod
    def from_text(cls, chunks: dict[str, str], source: str) -> ColorMetadata:
        """Parse the metadata from PNG text chunks.

        Args:
            chunks: dict of PNG text chunks (keyword -> text), e.g. from :func:`read_png_text`.
            source: the file the chunks came from, named in error messages.

        Returns:
            The metadata.

        Raises:
            FaidFormatError: a chunk is missing or does not hold what FAID stores there.
        """
        fix = ('FAID files store the XYZ->camera matrix in the PNG text chunk "Comment" (9 numbers) '
               'and the EXIF illuminant code in "Description"; rewrite the pair with '
               'fnf_basicsr.data.faid.write_faid_pair')
        missing = [key for key in (MATRIX_KEY, ILLUMINANT_KEY) if key not in chunks]
        if missing:
            raise FaidFormatError(f'{source}: missing PNG text chunk(s) {missing} (found {sorted(chunks)}). {fix}')
        try:
            numbers = [float(token) for token in chunks[MATRIX_KEY].replace(',', ' ').split()]
        except ValueError:
            raise FaidFormatError(
                f'{source}: "Comment" must hold 9 numbers, got {chunks[MATRIX_KEY]!r}. {fix}') from None
        if len(numbers) != 9:
            raise FaidFormatError(
                f'{source}: "Comment" must hold 9 numbers, got {len(numbers)}: {chunks[MATRIX_KEY]!r}. {fix}')
        try:
            illuminant = int(chunks[ILLUMINANT_KEY].strip())
        except ValueError:
            raise FaidFormatError(
                f'{source}: "Description" must hold an integer EXIF illuminant code (e.g. 21 for D65), '
                f'got {chunks[ILLUMINANT_KEY]!r}. {fix}') from None
        try:
            return cls(np.array(numbers).reshape(3, 3), illuminant)
        except FaidFormatError as error:
            raise FaidFormatError(f'{source}: {error}. {fix}') from None


@dataclass
class FaidPair:
    """One scene: ambient and flash-only images, (H, W, 3) float32 linear camera RGB in [0, 1].

    Args:
        name: the scene name (file stem without suffix).
        ambient: the no-flash image.
        flash_only: the flash-only image (ambient subtracted).
        metadata: the pair's color calibration.

    Shape:
        - ambient: (H, W, 3).
        - flash_only: (H, W, 3).

    Example:
        >>> image = np.zeros((2, 2, 3), np.float32)
        >>> FaidPair('scene', image, image, ColorMetadata(np.eye(3), 21)).name
        'scene'
    """
    name: str
    ambient: np.ndarray
    flash_only: np.ndarray
    metadata: ColorMetadata


def list_faid_names(folder: str | os.PathLike, exclude: Iterable[str] = ()) -> list[str]:
    """Sorted names of the complete pairs in a FAID folder.

    Args:
        folder: the FAID folder.
        exclude: names to leave out (e.g. :func:`load_test_split` when listing training scenes).

    Returns:
        The scene names, sorted.

    Raises:
        MissingInputError: the folder does not exist (a FileNotFoundError).
        FaidFormatError: the folder is still being written (or its writer was killed), a name has
            only one of its two files, or no pair is left.

    Example:
        >>> import tempfile
        >>> image = np.full((2, 2, 3), 0.5, np.float32)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     for name in ('b', 'a', 'test'):
        ...         write_faid_pair(folder, name, image, image, ColorMetadata(np.eye(3), 21))
        ...     list_faid_names(folder, exclude=['test'])
        ['a', 'b']
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInputError(f'FAID folder {folder} does not exist (or is not a folder); pass the folder '
                                f'holding <Name>{AMBIENT_SUFFIX} / <Name>{FLASH_SUFFIX} files')
    check_complete(folder)
    files = os.listdir(folder)
    ambient = {f[:-len(AMBIENT_SUFFIX)] for f in files if f.endswith(AMBIENT_SUFFIX)}
    flash = {f[:-len(FLASH_SUFFIX)] for f in files if f.endswith(FLASH_SUFFIX)}
    excluded = set(exclude)
    unpaired = sorted((ambient ^ flash) - excluded)
    if unpaired:
        lines = [f'{name}{AMBIENT_SUFFIX if name in ambient else FLASH_SUFFIX} has no '
                 f'{FLASH_SUFFIX if name in ambient else AMBIENT_SUFFIX} partner' for name in unpaired]
        raise FaidFormatError(f'{folder}: {len(unpaired)} incomplete pair(s): ' + '; '.join(lines)
                              + '. Add the missing files or remove the orphans.')
    names = sorted((ambient & flash) - excluded)
    if not names:
        detail = f' after excluding {len(excluded)} name(s)' if ambient else ''
        raise FaidFormatError(f'{folder}: no <Name>{AMBIENT_SUFFIX} / <Name>{FLASH_SUFFIX} pairs{detail}; '
                              + (_other_layout(files) or 'download FAID there or generate synthetic scenes with '
                                 'scripts/data_preparation/generate_synthetic.py'))
    return names


def _other_layout(files):
    """The fix when a folder of another of our layouts is given where a FAID folder is expected, or None."""
    if 'data.mdb' in files:
        return 'it is an LMDB of crops: read it with io_backend: {type: lmdb} (freeze_testset.py --io-backend lmdb)'
    if 'manifest.json' in files:
        return 'it is a frozen test set: score it with fnf-benchmark --test-set, or name it frozen_root'
    return None


def mark_incomplete(folder: str | os.PathLike, resume_command: str, details: dict | None = None) -> None:
    """Mark ``folder`` as being written; :func:`list_faid_names` refuses it until :func:`mark_complete`.

    Args:
        folder: the folder being written (it must exist).
        resume_command: the command that finishes it, named in the refusal.
        details: more JSON-able entries to record (e.g. the writer's parameters).

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     mark_incomplete(folder, 'python generate.py --resume')
        ...     try:
        ...         check_complete(folder)
        ...     except FaidFormatError as error:
        ...         print('run `python generate.py --resume` to finish it' in str(error))
        ...     mark_complete(folder)
        ...     check_complete(folder)
        True
    """
    record = {**(details or {}), 'resume': resume_command}
    write_atomically(Path(folder) / INCOMPLETE_MARKER, json.dumps(record).encode(), overwrite=True)


def mark_complete(folder: str | os.PathLike) -> None:
    """Remove the mark of :func:`mark_incomplete` (the last step of writing a folder).

    Args:
        folder: the folder written; a folder without the mark is left as it is.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     mark_incomplete(folder, 'rerun')
        ...     mark_complete(folder)
        ...     os.listdir(folder)
        []
    """
    (Path(folder) / INCOMPLETE_MARKER).unlink(missing_ok=True)


def check_complete(folder: str | os.PathLike) -> None:
    """Raise FaidFormatError if ``folder`` carries the mark of an unfinished write, naming the command that
    finishes it.

    Args:
        folder: the folder to check.

    Raises:
        FaidFormatError: the folder carries the mark of :func:`mark_incomplete`.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     check_complete(folder)  # no mark: nothing happens
    """
    marker = Path(folder) / INCOMPLETE_MARKER
    if not marker.exists():
        return
    try:
        resume = json.loads(marker.read_text())['resume']
    except (OSError, ValueError, KeyError, TypeError):
        resume = None  # a damaged marker still marks the folder unfinished
    fix = f'run `{resume}` to finish it' if resume else 'rerun the command that wrote it'
    raise FaidFormatError(f'{folder} is incomplete: the run that wrote it stopped before the end ({marker} '
                          f'exists); {fix}, or delete the folder')


def read_file_bytes(path: str | os.PathLike) -> bytes:
    """The bytes of an input file; unreadable, empty or missing files raise one-line errors naming it.

    Args:
        path: the file.

    Returns:
        Its content, never empty.

    Raises:
        MissingInputError: no such file.
        DataError: the file cannot be read, or is empty.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = Path(folder, 'a.bin').write_bytes(b'abc')
        ...     read_file_bytes(Path(folder, 'a.bin'))
        b'abc'
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise MissingInputError(f'{path} does not exist') from None
    except OSError as error:
        raise DataError(f'{path}: cannot read it ({error.strerror or error}); check the file and its '
                        'permissions') from None
    if not data:
        raise DataError(f'{path}: empty file (0 bytes), e.g. from an interrupted copy; copy or download it again')
    return data


def decode_png16(data: bytes, source: str) -> np.ndarray:
    """Decode 16-bit RGB PNG bytes.

    Args:
        data: the PNG file's bytes.
        source: the file name, used in error messages.

    Returns:
        uint16 array, channels in RGB order.

    Raises:
        FaidFormatError: empty, not a PNG, undecodable, 8-bit, or not 3 channels.

    Shape:
        - output: (H, W, 3).

    Example:
        >>> image = np.arange(12, dtype=np.uint16).reshape(2, 2, 3)
        >>> np.array_equal(decode_png16(encode_png16(image), 'a.png'), image)
        True
    """
    if not data:
        raise FaidFormatError(f'{source}: empty (0 bytes), e.g. from an interrupted copy; copy or download it again')
    if not bytes(data[:len(PNG_SIGNATURE)]) == PNG_SIGNATURE:
        raise FaidFormatError(f'{source}: not a decodable PNG file (no PNG signature); FAID images are 16-bit RGB PNGs')
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV raises on some damaged headers instead of returning None
        image = None
    if image is None:
        raise FaidFormatError(f'{source}: not a decodable PNG file (truncated or corrupt?); re-download or rewrite it')
    if image.dtype != np.uint16:
        raise FaidFormatError(f'{source}: expected a 16-bit PNG of linear camera RGB, got {image.dtype} pixels. '
                              f'8-bit images are gamma-encoded and quantised; use the 16-bit FAID files')
    if image.ndim != 3 or image.shape[2] != 3:
        channels = 1 if image.ndim == 2 else image.shape[2]
        raise FaidFormatError(f'{source}: expected 3 color channels (RGB), got {channels}; '
                              f'save it as a 16-bit RGB PNG without alpha')
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def encode_png16(image_u16: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """Encode a lossless 16-bit RGB PNG with optional tEXt chunks.

    Args:
        image_u16: uint16 RGB image.
        text: dict keyword -> text (Latin-1), written as tEXt chunks right after the header so
            that readers find them without decoding pixels.

    Returns:
        The PNG file's bytes.

    Raises:
        ValueError: not an (H, W, 3) uint16 image, or a keyword of more than 79 characters.
        RuntimeError: OpenCV failed to encode.

    Shape:
        - image_u16: (H, W, 3).

    Example:
        >>> data = encode_png16(np.zeros((2, 2, 3), np.uint16), {'Comment': 'hello'})
        >>> data[:8] == PNG_SIGNATURE, read_png_text(data)
        (True, {'Comment': 'hello'})
    """
    image_u16 = np.asarray(image_u16)
    if image_u16.dtype != np.uint16 or image_u16.ndim != 3 or image_u16.shape[2] != 3:
        raise ValueError(f'encode_png16 expects an (H, W, 3) uint16 RGB image, got {image_u16.dtype} '
                         f'{image_u16.shape}')
    ok, encoded = cv2.imencode('.png', cv2.cvtColor(image_u16, cv2.COLOR_RGB2BGR))
    if not ok:
        raise RuntimeError(f'OpenCV could not encode a {image_u16.shape} 16-bit PNG')
    data = encoded.tobytes()
    chunks = b''.join(_text_chunk(key, value) for key, value in (text or {}).items())
    # The first chunk is always IHDR: 8-byte signature + 4 length + 4 type + 13 data + 4 CRC.
    assert data[12:16] == b'IHDR', 'a PNG starts with its IHDR chunk'
    header_end = len(PNG_SIGNATURE) + _CHUNK_HEADER.size + 13 + 4
    return data[:header_end] + chunks + data[header_end:]


def read_png_text(data_or_path: bytes | bytearray | memoryview | str | os.PathLike,
                  source: str | None = None) -> dict[str, str]:
    """The tEXt / zTXt / iTXt chunks of a PNG, as a dict keyword -> text; pixels are not decoded.

    Args:
        data_or_path: PNG bytes or a path to a PNG file.
        source: the name of the bytes in error messages (default: the path, or ``<PNG bytes>``).

    Returns:
        The text of each keyword (the last chunk of a keyword wins).

    Raises:
        MissingInputError: a path that does not exist.
        DataError: a file that cannot be read or is empty.
        FaidFormatError: not a PNG, truncated, or a malformed text chunk.

    Example:
        >>> read_png_text(encode_png16(np.zeros((1, 1, 3), np.uint16), {'Description': '21'}))
        {'Description': '21'}
    """
    if isinstance(data_or_path, (bytes, bytearray, memoryview)):
        data, source = bytes(data_or_path), source or '<PNG bytes>'
    else:
        data, source = read_file_bytes(data_or_path), source or str(data_or_path)
    text = {}
    for chunk_type, body in _iter_chunks(data, source):
        if chunk_type in (b'tEXt', b'zTXt', b'iTXt'):
            key, value = _parse_text_chunk(chunk_type, body, source)
            text[key] = value
    return text


def read_faid_pair(folder: str | os.PathLike, name: str) -> FaidPair:
    """Read one scene of a FAID folder.

    Args:
        folder: the FAID folder.
        name: the scene name (file stem without suffix).

    Returns:
        FaidPair with float32 images (uint16 / 65535) and the ambient file's color metadata.

    Raises:
        MissingInputError: one of the two files is missing (a FileNotFoundError).
        DataError: a file cannot be read or is empty.
        FaidFormatError: 8-bit or non-RGB pixels, different sizes, missing or malformed metadata,
            an undecodable or truncated file.

    Example:
        >>> import tempfile
        >>> image = np.full((2, 3, 3), 0.5, np.float32)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_faid_pair(folder, 'scene', image, image, ColorMetadata(np.eye(3), 21))
        ...     pair = read_faid_pair(folder, 'scene')
        >>> pair.ambient.shape, pair.ambient.dtype, round(float(pair.ambient[0, 0, 0]), 4), pair.metadata.illuminant
        ((2, 3, 3), dtype('float32'), 0.5, 21)
    """
    ambient_path, flash_path = _pair_paths(folder, name)
    for path in (ambient_path, flash_path):
        if not path.is_file():
            raise MissingInputError(f'{path} does not exist; a FAID scene needs both {ambient_path.name} '
                                    f'and {flash_path.name} in {Path(folder)}')
    ambient, flash_only, metadata = decode_pair(read_file_bytes(ambient_path), read_file_bytes(flash_path),
                                                str(ambient_path), str(flash_path))
    return FaidPair(name, _to_float(ambient, ambient_path), _to_float(flash_only, flash_path), metadata)


def decode_pair(ambient_bytes: bytes, flash_bytes: bytes, ambient_source: str,
                flash_source: str) -> tuple[np.ndarray, np.ndarray, ColorMetadata]:
    """Decode the two 16-bit PNGs of a pair (from files or LMDB records) and the color metadata.

    Args:
        ambient_bytes, flash_bytes: the PNG files' bytes.
        ambient_source, flash_source: their paths or LMDB keys, named in errors.

    Returns:
        ``(ambient, flash_only, metadata)``: (H, W, 3) uint16 RGB arrays and :class:`ColorMetadata`.

    Raises:
        FaidFormatError: not 16-bit RGB, different sizes, missing or malformed metadata.

    Example:
        >>> text = ColorMetadata(np.eye(3), 21).to_text()
        >>> data = encode_png16(np.zeros((2, 2, 3), np.uint16), text)
        >>> ambient, flash_only, metadata = decode_pair(data, data, 'a_ambient.png', 'a_flash.png')
        >>> ambient.shape, ambient.dtype, metadata.illuminant
        ((2, 2, 3), dtype('uint16'), 21)
    """
    # Pixels first: a truncated, 8-bit or gray file is reported as such, not as missing metadata.
    ambient = decode_png16(ambient_bytes, ambient_source)
    flash_only = decode_png16(flash_bytes, flash_source)
    # Both files carry the same camera's metadata; the ambient one is authoritative.
    metadata = ColorMetadata.from_text(read_png_text(ambient_bytes, ambient_source), ambient_source)
    if ambient.shape != flash_only.shape:
        raise FaidFormatError(f'{ambient_source} is {ambient.shape[1]}x{ambient.shape[0]} but {flash_source} is '
                              f'{flash_only.shape[1]}x{flash_only.shape[0]}; the two images of a pair must be the '
                              f'same size (same capture)')
    return ambient, flash_only, metadata


def write_faid_pair(folder: str | os.PathLike, name: str, ambient: np.ndarray, flash_only: np.ndarray,
                    metadata: ColorMetadata, overwrite: bool = False) -> None:
    """Write one scene in the FAID format (both files carry the metadata).

    Each file is written to a temporary name in the same folder and moved into place, so a
    reader never sees a half-written PNG.

    Args:
        folder: the FAID folder (created if missing).
        name: the scene name (file stem without suffix).
        ambient, flash_only: (H, W, 3) linear camera RGB, float in [0, 1] or uint16.
        metadata: the pair's :class:`ColorMetadata`.
        overwrite: replace existing files of the same name.

    Raises:
        FileExistsError: a file of the pair exists and ``overwrite`` is False.
        ValueError: images that are not (H, W, 3), differ in size, or hold values outside [0, 1].

    Shape:
        - ambient: (H, W, 3).
        - flash_only: (H, W, 3).

    Example:
        >>> import tempfile
        >>> image = np.zeros((2, 2, 3), np.uint16)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     write_faid_pair(folder, 'scene', image, image, ColorMetadata(np.eye(3), 21))
        ...     sorted(os.listdir(folder))
        ['scene_ambient.png', 'scene_flash.png']
    """
    folder = Path(folder)
    paths = _pair_paths(folder, name)
    if not overwrite:
        existing = [str(path) for path in paths if path.exists()]
        if existing:
            raise FileExistsError(f'{existing} already exist; pass overwrite=True to replace them')
    images = [_to_uint16(ambient, 'ambient'), _to_uint16(flash_only, 'flash_only')]
    if images[0].shape != images[1].shape:
        raise ValueError(f'{name}: ambient {images[0].shape} and flash_only {images[1].shape} differ in size')
    folder.mkdir(parents=True, exist_ok=True)
    text = metadata.to_text()
    for path, image in zip(paths, images):
        # the temporary name starts with a dot and has no FAID suffix: list_faid_names never sees it
        write_atomically(path, encode_png16(image, text), overwrite=True)


# The FAID splits shipped in fnf_basicsr/splits (docs/srgb_awgn.md says where each comes from): ``paper``
# holds out the 128 test scenes of DeepFnF's released code; ``ridfnf`` the 256 test and 256 validation
# scenes that RIDFnF (AAAI 2023) lists and RFFNet reuses. Scenes in no list are training scenes.
SPLIT_FILES = {'paper': {'test': 'faid_test.txt'},
               'ridfnf': {'test': 'ridfnf_test.txt', 'val': 'ridfnf_val.txt'}}


def load_split(split: str = 'paper', subset: str = 'test') -> list[str] | None:
    """The FAID scene names a published split lists for ``subset`` (``'test'`` or ``'val'``).

    Args:
        split: ``'paper'`` or ``'ridfnf'`` (:data:`SPLIT_FILES`).
        subset: ``'test'``, or ``'val'`` for splits that list one.

    Returns:
        The names in the file's order, or None when the split lists no such subset (``paper``'s val).

    Raises:
        ValueError: an unknown split.

    Example:
        >>> len(load_split('paper', 'test')), len(load_split('ridfnf', 'val')), load_split('paper', 'val')
        (128, 256, None)
    """
    if split not in SPLIT_FILES:
        raise ValueError(f'split must be one of {sorted(SPLIT_FILES)}, got {split!r}')
    filename = SPLIT_FILES[split].get(subset)
    if filename is None:
        return None
    text = resources.files('fnf_basicsr').joinpath(f'splits/{filename}').read_text()
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_test_split() -> list[str]:
    """The 128 FAID scene names held out for testing by the paper (never train or validate on them).

    Returns:
        :func:`load_split` ``('paper', 'test')``.

    Example:
        >>> len(load_test_split())
        128
    """
    return load_split('paper', 'test')


def _pair_paths(folder, name):
    folder = Path(folder)
    return folder / f'{name}{AMBIENT_SUFFIX}', folder / f'{name}{FLASH_SUFFIX}'


def _to_float(image_u16, source):
    image = image_u16.astype(np.float32) / UINT16_MAX
    if not np.all(np.isfinite(image)):  # impossible from uint16, kept as a guard on the conversion
        raise FaidFormatError(f'{source}: non-finite values after conversion to float')
    return image


def _to_uint16(image, label):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f'{label} must be (H, W, 3) RGB, got shape {image.shape}')
    if image.dtype == np.uint16:
        return image
    if not np.issubdtype(image.dtype, np.floating):
        raise ValueError(f'{label} must be uint16 or float in [0, 1], got {image.dtype}')
    if not np.all(np.isfinite(image)):
        raise ValueError(f'{label} has NaN or Inf values; FAID stores finite intensities in [0, 1]')
    low, high = float(image.min()), float(image.max())
    if low < 0 or high > 1:
        raise ValueError(f'{label} has values in [{low:.4g}, {high:.4g}], outside [0, 1]; clip or rescale it first')
    return np.round(image.astype(np.float64) * UINT16_MAX).astype(np.uint16)


def _text_chunk(key, value):
    if not 1 <= len(key) <= 79:
        raise ValueError(f'PNG text keywords have 1 to 79 characters, got {key!r}')
    body = key.encode('latin-1') + b'\0' + value.encode('latin-1')
    return (struct.pack('>I', len(body)) + b'tEXt' + body
            + struct.pack('>I', zlib.crc32(b'tEXt' + body) & 0xFFFFFFFF))


def _iter_chunks(data, source):
    if not data.startswith(PNG_SIGNATURE):
        raise FaidFormatError(f'{source}: not a PNG file (bad signature)')
    position = len(PNG_SIGNATURE)
    while position + _CHUNK_HEADER.size <= len(data):
        length, chunk_type = _CHUNK_HEADER.unpack_from(data, position)
        body_start = position + _CHUNK_HEADER.size
        if body_start + length + 4 > len(data):
            raise FaidFormatError(f'{source}: truncated PNG (chunk {chunk_type!r} runs past the end of the file)')
        yield chunk_type, data[body_start:body_start + length]
        if chunk_type == b'IEND':
            return
        position = body_start + length + 4
    raise FaidFormatError(f'{source}: truncated PNG (it ends before its IEND chunk); copy or download it again')


def _parse_text_chunk(chunk_type, body, source):
    try:
        key, rest = body.split(b'\0', 1)
        if chunk_type == b'tEXt':
            return key.decode('latin-1'), rest.decode('latin-1')
        if chunk_type == b'zTXt':  # compression method byte, then zlib data
            return key.decode('latin-1'), zlib.decompress(rest[1:]).decode('latin-1')
        # iTXt: compression flag, method, language tag \0, translated keyword \0, UTF-8 text.
        compressed = rest[0] == 1
        _language, _translated, value = rest[2:].split(b'\0', 2)
        return key.decode('latin-1'), (zlib.decompress(value) if compressed else value).decode('utf-8')
    except (ValueError, IndexError, zlib.error) as error:
        raise FaidFormatError(f'{source}: malformed PNG {chunk_type.decode()} chunk ({error})') from None
