"""Reading capture pairs (linear 16-bit, sRGB 8/16-bit, float TIFF, EXIF), finding pairs, safe writes."""
import sys

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from fnf_basicsr.data.faid import ColorMetadata, encode_png16
from fnf_basicsr.inference.capture_io import (CaptureError, check_output_paths, encode_float_tiff, encode_srgb_png,
                                              find_pairs, read_capture_pair, read_image, write_atomically)
from fnf_basicsr.utils.rendering import srgb_degamma

XYZ_TO_CAMERA = np.array([[0.7188, -0.2153, -0.0473], [-0.4339, 1.2306, 0.2307], [-0.0767, 0.1616, 0.6199]])
METADATA = ColorMetadata(XYZ_TO_CAMERA, 17)


@pytest.fixture
def pixels16():
    return np.random.default_rng(0).integers(0, 65536, (6, 8, 3), dtype=np.uint16)


def write_png16(path, image, text=None):
    path.write_bytes(encode_png16(image, METADATA.to_text() if text is None else text))
    return path


def write_rgb(path, image_rgb):
    cv2.imwrite(str(path), cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    return path


def test_linear_16_bit_png_with_faid_metadata(tmp_path, pixels16):
    image = read_image(write_png16(tmp_path / 'a_noflash.png', pixels16))
    assert image.encoding == 'linear' and image.bit_depth == 16
    np.testing.assert_array_equal(np.round(image.pixels * 65535).astype(np.uint16), pixels16)
    np.testing.assert_allclose(image.color_matrix, METADATA.color_matrix)


def test_linear_png_without_metadata_renders_as_srgb(tmp_path, pixels16):
    pair = read_capture_pair(write_png16(tmp_path / 'a.png', pixels16, text={}))
    np.testing.assert_array_equal(pair.color_matrix, np.eye(3))
    assert any('no color metadata' in note for note in pair.notes)


def test_8_bit_srgb_png_is_linearised(tmp_path):
    srgb = np.random.default_rng(1).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = read_image(write_rgb(tmp_path / 'a.png', srgb))
    assert image.encoding == 'srgb' and image.bit_depth == 8 and image.color_matrix is None
    np.testing.assert_allclose(image.pixels, srgb_degamma(torch.from_numpy(srgb / 255.0)).numpy(), atol=1e-6)


def test_16_bit_png_declared_srgb_is_linearised(tmp_path, pixels16):
    image = read_image(write_png16(tmp_path / 'a.png', pixels16, text={}), encoding='srgb')
    np.testing.assert_allclose(image.pixels, srgb_degamma(torch.from_numpy(pixels16 / 65535.0)).numpy(), atol=1e-6)


def test_float_tiff_round_trip(tmp_path):
    linear = np.random.default_rng(2).normal(0.1, 0.2, (4, 5, 3)).astype(np.float32)
    path = tmp_path / 'x.tiff'
    path.write_bytes(encode_float_tiff(linear))
    image = read_image(path)
    assert image.encoding == 'linear' and image.bit_depth == 32
    np.testing.assert_array_equal(image.pixels, linear)


def test_srgb_png_encoding_8_and_16_bit(tmp_path):
    srgb = np.array([[[0.0, 0.5, 1.2], [-0.1, 0.25, 1.0]]], dtype=np.float32)
    for bits, dtype, top in ((8, np.uint8, 255), (16, np.uint16, 65535)):
        path = tmp_path / f'{bits}.png'
        path.write_bytes(encode_srgb_png(srgb, bits))
        decoded = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
        assert decoded.dtype == dtype
        np.testing.assert_array_equal(decoded, np.round(np.clip(srgb, 0, 1) * top).astype(dtype))


def test_8_bit_file_declared_linear_is_refused(tmp_path):
    path = write_rgb(tmp_path / 'a.png', np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(CaptureError, match='8-bit image.*--encoding linear.*--encoding srgb'):
        read_image(path, encoding='linear')


def test_malformed_metadata_names_the_file_and_the_override(tmp_path, pixels16):
    path = write_png16(tmp_path / 'a.png', pixels16, text={'Comment': 'shot on my phone', 'Description': '21'})
    with pytest.raises(CaptureError, match=r'unreadable color metadata: .*a\.png.*--color-matrix'):
        read_image(path)


def test_missing_file_and_unsupported_type(tmp_path):
    with pytest.raises(FileNotFoundError, match='nothere.png does not exist'):
        read_image(tmp_path / 'nothere.png')
    (tmp_path / 'a.bmp').write_bytes(b'BM')
    with pytest.raises(CaptureError, match="unsupported file type '.bmp'"):
        read_image(tmp_path / 'a.bmp')
    (tmp_path / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n broken')
    with pytest.raises(CaptureError, match='not a decodable PNG'):
        read_image(tmp_path / 'broken.png')


def test_grayscale_is_refused(tmp_path):
    path = tmp_path / 'gray.png'
    cv2.imwrite(str(path), np.zeros((4, 4), np.uint16))
    with pytest.raises(CaptureError, match='1-channel image'):
        read_image(path)


def test_dng_without_rawpy_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, 'rawpy', None)  # as if it were not installed (the dev install has it)
    (tmp_path / 'a.dng').write_bytes(b'II*\x00')
    with pytest.raises(CaptureError, match=r'pip install "fnf-basicsr\[raw\]"'):
        read_image(tmp_path / 'a.dng')


def write_dng(path, rgb, exposure_time, iso, noise_profile):
    """A minimal DNG: RGGB mosaic of ``rgb`` (16-bit, black 0, white 65535), ColorMatrix2 (D65),
    exposure, NoiseProfile; the tags LibRaw needs and nothing more."""
    import tifffile
    mosaic = np.round(rgb * 65535).astype(np.uint16)
    cfa = np.where(np.add.outer(np.arange(rgb.shape[0]) % 2, np.arange(rgb.shape[1]) % 2) == 1,
                   mosaic[..., 1], np.where((np.arange(rgb.shape[0]) % 2)[:, None] == 0, mosaic[..., 0],
                                            mosaic[..., 2]))
    matrix = [value for entry in XYZ_TO_CAMERA.ravel() for value in (int(round(entry * 10000)), 10000)]
    tags = [(50706, 'B', 4, (1, 4, 0, 0), True), (50708, 's', 0, 'Test Camera', True),
            (33421, 'H', 2, (2, 2), True), (33422, 'B', 4, (0, 1, 1, 2), True),
            (50714, 'H', 1, 0, True), (50717, 'H', 1, 65535, True),
            (50722, '2i', 9, tuple(matrix), True), (50779, 'H', 1, 21, True),
            (33434, '2I', 1, (int(exposure_time * 1e6), 1000000), True), (34855, 'H', 1, iso, True),
            (51041, 'd', 2, noise_profile, True)]
    tifffile.imwrite(path, cfa.astype(np.uint16), photometric=32803, extratags=tags)
    return path


def test_dng_pair_is_read_linear_with_its_metadata(tmp_path):
    pytest.importorskip('rawpy')
    rgb = np.broadcast_to(np.array([0.2, 0.4, 0.1], np.float32), (32, 48, 3))
    noflash = write_dng(tmp_path / 'a_noflash.dng', rgb, 0.1, 800, (1e-4, 4e-6))
    flash = write_dng(tmp_path / 'a_flash.dng', 2 * rgb, 0.05, 400, (1e-4, 4e-6))
    pair = read_capture_pair(noflash, flash)
    # Flat colors survive demosaicking; no white balance, no stretching to the photo's own maximum.
    np.testing.assert_allclose(pair.noflash[4:-4, 4:-4], rgb[4:-4, 4:-4], atol=1 / 65535)
    np.testing.assert_allclose(pair.color_matrix, ColorMetadata(XYZ_TO_CAMERA, 21).color_matrix, rtol=1e-5)
    np.testing.assert_allclose(pair.flash[4:-4, 4:-4], 4 * 2 * rgb[4:-4, 4:-4], atol=4 / 65535)  # ratio 4
    assert pair.noise == pytest.approx((2e-3, 1e-2))
    assert not pair.flash_shares_noise  # different exposure settings


def test_pairs_of_different_size_are_refused(tmp_path, pixels16):
    noflash = write_png16(tmp_path / 'a_noflash.png', pixels16)
    flash = write_png16(tmp_path / 'a_flash.png', pixels16[:, :6])
    with pytest.raises(CaptureError, match=r'misaligned inputs: .* is 8x6 .* is 6x6.*same size'):
        read_capture_pair(noflash, flash)


def test_pairs_of_different_encoding_are_refused(tmp_path, pixels16):
    noflash = write_png16(tmp_path / 'a_noflash.png', pixels16)
    flash = write_rgb(tmp_path / 'a_flash.png', (pixels16 // 257).astype(np.uint8))
    with pytest.raises(CaptureError, match='linear \\(16-bit\\) but the flash photo .* srgb \\(8-bit\\)'):
        read_capture_pair(noflash, flash)


def test_flash_only_input_adds_the_ambient_and_ratio_scales_the_flash(tmp_path, pixels16):
    noflash = write_png16(tmp_path / 'a_ambient.png', pixels16 // 4)
    flash = write_png16(tmp_path / 'a_flash.png', pixels16 // 2)
    ambient, flash_light = (pixels16 // 4) / 65535.0, (pixels16 // 2) / 65535.0
    photo = read_capture_pair(noflash, flash, exposure_ratio=2.0)
    np.testing.assert_allclose(photo.flash, 2.0 * flash_light, rtol=1e-6)
    faid = read_capture_pair(noflash, flash, flash_only=True)
    np.testing.assert_allclose(faid.flash, flash_light + ambient, rtol=1e-6)
    np.testing.assert_allclose(faid.noflash, ambient, rtol=1e-6)
    # Only the flash photo as taken, at the same exposure, shares the no-flash photo's noise model.
    assert read_capture_pair(noflash, flash).flash_shares_noise
    assert not photo.flash_shares_noise and not faid.flash_shares_noise
    for ratio in (0, -1, float('inf'), float('nan'), 1e-30):
        with pytest.raises(CaptureError, match='--exposure-ratio must be a finite number in'):
            read_capture_pair(noflash, flash, exposure_ratio=ratio)


def jpeg_with_exif(path, image_rgb, exposure_time, iso, orientation=1):
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif_ifd = exif.get_ifd(0x8769)
    exif_ifd[0x829A] = exposure_time
    exif_ifd[0x8827] = iso
    Image.fromarray(image_rgb).save(path, exif=exif, quality=100)
    return path


def test_exposure_ratio_from_exif_and_orientation(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    image[0, 0] = 255  # marks the top-left corner
    noflash = jpeg_with_exif(tmp_path / 'a_noflash.jpg', image, 0.1, 800, orientation=6)
    flash = jpeg_with_exif(tmp_path / 'a_flash.jpg', image, 0.02, 400, orientation=6)
    pair = read_capture_pair(noflash, flash)
    ratio = (0.1 * 800) / (0.02 * 400)
    assert any(f'exposure ratio {ratio:.4g} from EXIF' in note for note in pair.notes)
    np.testing.assert_allclose(pair.flash, read_image(flash).pixels * ratio, rtol=1e-6)
    # Orientation 6: displayed rotated 90 degrees clockwise, so the marked corner is top-right.
    assert pair.noflash.shape == (6, 4, 3)
    assert pair.noflash[0, -1].mean() > 0.5 and pair.noflash[0, 0].mean() < 0.1


def test_color_matrix_option_overrides_metadata(tmp_path, pixels16):
    path = write_png16(tmp_path / 'a.png', pixels16)
    matrix = np.array([[2, 0.1, 0], [0, 1, 0.2], [0.1, 0, 3]], dtype=np.float32)
    pair = read_capture_pair(path, color_matrix=matrix.ravel().tolist())
    np.testing.assert_array_equal(pair.color_matrix, matrix)


def test_find_pairs_with_both_namings(tmp_path, pixels16):
    for name in ('Toys_ambient.png', 'Toys_flash.png', 'cat_noflash.jpg', 'cat_flash.jpg', 'notes.txt',
                 '.cat_noflash.jpg.tmp'):
        (tmp_path / name).write_bytes(b'')
    pairs = find_pairs(tmp_path)
    assert [(name, a.name, b.name) for name, a, b in pairs] == [
        ('Toys', 'Toys_ambient.png', 'Toys_flash.png'), ('cat', 'cat_noflash.jpg', 'cat_flash.jpg')]


def test_find_pairs_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'):
        find_pairs(tmp_path / 'missing')
    with pytest.raises(CaptureError, match='no pairs found'):
        find_pairs(tmp_path)
    (tmp_path / 'a_noflash.png').write_bytes(b'')
    with pytest.raises(CaptureError, match=r"without a partner: \['a_noflash.png'\]"):
        find_pairs(tmp_path)
    (tmp_path / 'a_flash.png').write_bytes(b'')
    (tmp_path / 'a_ambient.png').write_bytes(b'')
    with pytest.raises(CaptureError, match='a has two noflash photos'):
        find_pairs(tmp_path)


def test_atomic_writes_refuse_to_replace_unless_asked(tmp_path):
    path = tmp_path / 'sub' / 'out.png'
    write_atomically(path, b'first')
    with pytest.raises(FileExistsError, match='--overwrite'):
        write_atomically(path, b'second')
    assert path.read_bytes() == b'first'
    write_atomically(path, b'third', overwrite=True)
    assert path.read_bytes() == b'third'
    assert sorted(p.name for p in path.parent.iterdir()) == ['out.png']  # no temporary file left


def test_outputs_never_replace_an_input(tmp_path):
    source = tmp_path / 'in.png'
    source.write_bytes(b'x')
    with pytest.raises(CaptureError, match='is the input'):
        check_output_paths([tmp_path / '.' / 'in.png'], [source], overwrite=True)
    with pytest.raises(CaptureError, match='already exists; pass --overwrite'):
        check_output_paths([source], [tmp_path / 'other.png'])
    check_output_paths([source], [tmp_path / 'other.png'], overwrite=True)
    check_output_paths([tmp_path / 'new.png'], [source, None])


# --- damaged inputs and unusable output folders: one-line errors naming the file, before the work --------------

@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_float_samples_are_refused_with_the_file(tmp_path, bad):
    image = np.full((8, 8, 3), 0.25, np.float32)
    image[2, 5, 1] = bad
    path = tmp_path / 'capture.tiff'
    path.write_bytes(encode_float_tiff(image))
    with pytest.raises(CaptureError, match=f'{path}: 1 NaN or Inf sample.*row 2, column 5'):
        read_image(path)


@pytest.mark.parametrize('data, message', [(b'', 'empty file \\(0 bytes\\)'), (b'\x89PNG\r\n\x1a\n', 'not a decodable'),
                                           (b'not an image', 'not a decodable')])
def test_empty_or_undecodable_files_name_the_file(tmp_path, data, message):
    path = tmp_path / 'photo.png'
    path.write_bytes(data)
    with pytest.raises(CaptureError, match=f'{path}: {message}'):
        read_image(path)


def test_output_folders_are_checked_and_created_before_the_work(tmp_path):
    from fnf_basicsr.errors import OutputError
    (tmp_path / 'file').write_text('x')
    with pytest.raises(OutputError, match='is a file, not a folder'):
        check_output_paths([tmp_path / 'file' / 'out.png'], [])
    with pytest.raises(CaptureError, match='is a folder'):
        check_output_paths([tmp_path], [])
    check_output_paths([tmp_path / 'new' / 'deeper' / 'out.png'], [])
    assert (tmp_path / 'new' / 'deeper').is_dir()


def test_temporaries_of_killed_runs_are_removed(tmp_path):
    stale = tmp_path / f'.out.png.fnf-tmp-999999999-{"a" * 32}.tmp'  # no process has that id
    live = tmp_path / f'.out.png.fnf-tmp-{__import__("os").getpid()}-{"a" * 32}.tmp'  # a run still writing
    stale.write_bytes(b'half')
    live.write_bytes(b'half')
    check_output_paths([tmp_path / 'out.png'], [])
    assert not stale.exists() and live.exists()


# --- a capture pair is checked before it is trusted (issue 20) -------------------------------------------------

def write_tiff(path, image, orientation=1):
    import tifffile
    tifffile.imwrite(path, image, photometric='rgb', extratags=[(0x0112, 'H', 1, orientation, True)])
    return path


@pytest.mark.parametrize('dtype', [np.uint16, np.float32])
@pytest.mark.parametrize('orientation, corner', [(3, (3, 5)), (6, (0, 3))])
def test_tiff_orientation_is_applied_once_like_jpeg(tmp_path, dtype, orientation, corner):
    """OpenCV turns TIFFs itself: applying the tag again turned 16-bit TIFFs twice (float ones once)."""
    image = np.full((4, 6, 3), 0.1 if dtype == np.float32 else 6000, dtype)
    image[0, 0, 0] = 1 if dtype == np.float32 else 65535  # marks the top-left corner as stored
    read = read_image(write_tiff(tmp_path / 'a.tiff', image, orientation))
    assert read.orientation == orientation and read.pixels.shape[:2] == ((4, 6) if orientation == 3 else (6, 4))
    assert tuple(np.argwhere(read.pixels[..., 0] > 0.5)[0]) == corner


def test_pairs_with_different_orientations_are_refused_unless_both_read_upright(tmp_path):
    square = np.full((6, 6, 3), 100, np.uint8)
    noflash = jpeg_with_exif(tmp_path / 'a_noflash.jpg', square, 0.1, 100, orientation=6)
    flash = jpeg_with_exif(tmp_path / 'a_flash.jpg', square + 50, 0.1, 100, orientation=1)
    with pytest.raises(CaptureError, match='has EXIF orientation 6 but the flash photo .* has 1'):
        read_capture_pair(noflash, flash)
    wide = np.full((4, 6, 3), 100, np.uint8)  # the flash exported already turned upright, its tag reset
    noflash = jpeg_with_exif(tmp_path / 'b_noflash.jpg', wide, 0.1, 100, orientation=6)
    flash = jpeg_with_exif(tmp_path / 'b_flash.jpg', np.ascontiguousarray(np.rot90(wide + 50, -1)), 0.1, 100)
    pair = read_capture_pair(noflash, flash)
    assert pair.flash.shape == pair.noflash.shape == (6, 4, 3)
    assert any('EXIF orientations differ' in note for note in pair.notes)


def test_alpha_is_dropped_when_opaque_and_refused_when_transparent(tmp_path, pixels16):
    rgba = np.concatenate([pixels16, np.full((6, 8, 1), 65535, np.uint16)], axis=2)
    opaque = tmp_path / 'opaque.png'
    cv2.imwrite(str(opaque), rgba)
    image = read_image(opaque)
    assert image.pixels.shape == (6, 8, 3) and any('alpha channel fully opaque, dropped' in n for n in image.notes)
    rgba[0, 0, 3] = 0
    cv2.imwrite(str(tmp_path / 'cutout.png'), rgba)
    with pytest.raises(CaptureError, match='cutout.png: 2.1% of its pixels are transparent'):
        read_image(tmp_path / 'cutout.png')


def _with_chunk(data, kind, payload):
    import struct
    import zlib
    chunk = struct.pack('>I', len(payload)) + kind + payload + struct.pack('>I', zlib.crc32(kind + payload))
    return data[:33] + chunk + data[33:]  # after the signature and IHDR


@pytest.mark.parametrize('kind, payload, marker', [(b'sRGB', b'\0', 'an sRGB chunk'),
                                                  (b'gAMA', (45455).to_bytes(4, 'big'), 'a gAMA chunk of 0.45455')])
def test_16_bit_png_marked_srgb_must_be_declared(tmp_path, pixels16, kind, payload, marker):
    path = tmp_path / 'export.png'
    path.write_bytes(_with_chunk(encode_png16(pixels16), kind, payload))
    with pytest.raises(CaptureError, match=f'marked gamma-encoded \\({marker}\\).*--encoding srgb'):
        read_image(path)
    assert read_image(path, encoding='srgb').encoding == 'srgb'
    assert read_image(path, encoding='linear').encoding == 'linear'


def test_the_same_file_twice_is_refused(tmp_path, pixels16):
    path = write_png16(tmp_path / 'a.png', pixels16)
    copy = write_png16(tmp_path / 'copy.png', pixels16)
    (tmp_path / 'link.png').symlink_to(path)
    for flash in (path, copy, tmp_path / 'link.png'):
        with pytest.raises(CaptureError, match='are the same file'):
            read_capture_pair(path, flash)


def test_a_no_flash_photo_brighter_than_its_flash_is_refused_as_swapped(tmp_path, pixels16):
    dark, bright = write_png16(tmp_path / 'dark.png', pixels16 // 8), write_png16(tmp_path / 'bright.png', pixels16)
    read_capture_pair(dark, bright)
    with pytest.raises(CaptureError, match='bright.png is brighter than the flash photo .*dark.png.*look swapped'):
        read_capture_pair(bright, dark)
    pair = read_capture_pair(bright, dark, exposure_ratio=2.0)  # the user vouches for the ratio: a warning
    assert any(note.startswith('warning:') and 'is brighter than' in note for note in pair.notes)


def test_clipped_flash_share_is_reported_and_warned_over_the_threshold(tmp_path, pixels16):
    noflash = write_png16(tmp_path / 'n.png', pixels16 // 8)
    flash = pixels16 // 2
    flash[0, :2] = 65535  # 2 of 48 pixels: 4.2 %, under the warning threshold
    pair = read_capture_pair(noflash, write_png16(tmp_path / 'f.png', flash))
    assert any(note.startswith('f.png: 4.17% of its pixels are clipped') for note in pair.notes)
    flash[1] = 65535
    pair = read_capture_pair(noflash, write_png16(tmp_path / 'g.png', flash))
    assert any(note.startswith('warning: g.png: 20.83% of its pixels are clipped') for note in pair.notes)


@pytest.mark.parametrize('matrix, problem', [
    ([0] * 9, 'is singular'), ([-1, 0, 0, 0, -1, 0, 0, 0, -1], 'has a negative determinant'),
    ([0, 1, 0, 1, 0, 0, 0, 0, 1], 'has a negative determinant'), ([1, 2, 3, 2, 4, 6, 1, 1, 1], 'is singular'),
    ([np.nan] + [0] * 8, 'has non-finite entries'),
    ([1, 0, 0, 0, -1, 0, 0, 0, -1], 'maps white light to camera values')])
def test_unusable_color_matrices_are_refused(tmp_path, pixels16, matrix, problem):
    path = write_png16(tmp_path / 'a.png', pixels16)
    with pytest.raises(CaptureError, match=f'--color-matrix {problem}'):
        read_capture_pair(path, color_matrix=matrix)
    negated = ' '.join(str(-value) for value in XYZ_TO_CAMERA.ravel())
    with pytest.raises(CaptureError, match='xyz_to_camera has a negative determinant'):
        read_image(write_png16(tmp_path / 'b.png', pixels16, {'Comment': negated, 'Description': '21'}))


def test_negative_float_samples_are_clipped_near_black_and_refused_far_below(tmp_path):
    noflash = np.full((4, 5, 3), 0.05, np.float32)
    noflash[0, 0, 0] = -0.002
    flash = tmp_path / 'f.tiff'
    flash.write_bytes(encode_float_tiff(np.full((4, 5, 3), 0.5, np.float32)))
    (tmp_path / 'n.tiff').write_bytes(encode_float_tiff(noflash))
    pair = read_capture_pair(tmp_path / 'n.tiff', flash)
    assert pair.noflash.min() == 0
    assert any('1 negative sample(s), down to -0.002, clipped to 0' in note for note in pair.notes)
    noflash[0, 0, 0] = -3
    (tmp_path / 'n.tiff').write_bytes(encode_float_tiff(noflash))
    with pytest.raises(CaptureError, match='samples down to -3; linear intensities are >= 0'):
        read_capture_pair(tmp_path / 'n.tiff', flash)


def test_a_black_no_flash_photo_is_refused(tmp_path, pixels16):
    black = write_png16(tmp_path / 'black.png', np.zeros_like(pixels16))
    with pytest.raises(CaptureError, match='black.png is black \\(every sample is 0\\)'):
        read_capture_pair(black, write_png16(tmp_path / 'f.png', pixels16))
