"""FAID format: lossless round trips, metadata in PNG text chunks, and every malformed input."""
import cv2
import numpy as np
import pytest
from PIL import Image

from fnf_basicsr.data.faid import (AMBIENT_SUFFIX, FLASH_SUFFIX, ColorMetadata, FaidFormatError, decode_png16,
                                   encode_png16, list_faid_names, load_test_split, read_faid_pair, read_png_text,
                                   write_faid_pair)
from fnf_basicsr.utils.rendering import camera_to_srgb_matrix

XYZ_TO_CAMERA = np.array([[0.7188, -0.2153, -0.0473],
                          [-0.4339, 1.2306, 0.2307],
                          [-0.0767, 0.1616, 0.6199]])


@pytest.fixture
def metadata():
    return ColorMetadata(XYZ_TO_CAMERA, 17)


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 65536, (9, 7, 3), dtype=np.uint16), rng.integers(0, 65536, (9, 7, 3), dtype=np.uint16)


@pytest.fixture
def scene(tmp_path, images, metadata):
    write_faid_pair(tmp_path, 'Toys_001', *images, metadata)
    return tmp_path


def _write_text_png(path, image, text):
    path.write_bytes(encode_png16(image, text))


def test_round_trip_is_bit_exact(scene, images, metadata):
    pair = read_faid_pair(scene, 'Toys_001')
    assert pair.name == 'Toys_001'
    for read, written in zip((pair.ambient, pair.flash_only), images):
        assert read.dtype == np.float32 and read.shape == (9, 7, 3)
        np.testing.assert_array_equal(np.round(read * 65535).astype(np.uint16), written)
    np.testing.assert_array_equal(pair.metadata.xyz_to_camera, XYZ_TO_CAMERA)
    assert pair.metadata.illuminant == 17


def test_float_input_is_quantised_to_16_bit(tmp_path, metadata):
    ambient = np.linspace(0, 1, 4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    write_faid_pair(tmp_path, 'a', ambient, ambient[::-1].copy(), metadata)
    pair = read_faid_pair(tmp_path, 'a')
    np.testing.assert_allclose(pair.ambient, ambient, atol=0.5 / 65535)
    np.testing.assert_allclose(pair.flash_only, ambient[::-1], atol=0.5 / 65535)


def test_channel_order_is_rgb_on_disk(tmp_path, metadata):
    red = np.zeros((2, 2, 3), np.uint16)
    red[..., 0] = 65535
    write_faid_pair(tmp_path, 'r', red, red, metadata)
    on_disk_bgr = cv2.imread(str(tmp_path / f'r{AMBIENT_SUFFIX}'), cv2.IMREAD_UNCHANGED)
    assert on_disk_bgr[0, 0].tolist() == [0, 0, 65535]
    assert read_faid_pair(tmp_path, 'r').ambient[0, 0].tolist() == [1.0, 0.0, 0.0]


def test_text_chunks_are_readable_by_pillow(scene, metadata):
    for suffix in (AMBIENT_SUFFIX, FLASH_SUFFIX):
        with Image.open(scene / f'Toys_001{suffix}') as image:
            assert image.text == metadata.to_text()
    assert read_png_text(scene / f'Toys_001{AMBIENT_SUFFIX}') == metadata.to_text()


def test_read_png_text_parses_compressed_chunks_written_by_pillow(tmp_path):
    from PIL.PngImagePlugin import PngInfo
    info = PngInfo()
    info.add_text('Comment', '1 0 0 0 1 0 0 0 1', zip=True)
    info.add_itxt('Description', '21', zip=True)
    path = tmp_path / 'p.png'
    Image.new('RGB', (3, 2)).save(path, pnginfo=info)
    assert read_png_text(path) == {'Comment': '1 0 0 0 1 0 0 0 1', 'Description': '21'}


def test_color_matrix_is_camera_to_srgb(metadata):
    expected = camera_to_srgb_matrix(XYZ_TO_CAMERA, 'A')
    assert metadata.color_matrix.dtype == np.float32
    np.testing.assert_allclose(metadata.color_matrix, expected, rtol=1e-6)


def test_metadata_text_round_trip_and_unknown_illuminant():
    original = ColorMetadata(XYZ_TO_CAMERA + 1e-13, 99)
    parsed = ColorMetadata.from_text(original.to_text(), 'x.png')
    np.testing.assert_array_equal(parsed.xyz_to_camera, original.xyz_to_camera)
    assert parsed.illuminant == 99
    np.testing.assert_allclose(parsed.color_matrix, camera_to_srgb_matrix(parsed.xyz_to_camera, 'D65'), rtol=1e-6)


@pytest.mark.parametrize('chunks, message', [
    ({'Description': '21'}, 'missing PNG text chunk'),
    ({'Comment': '1 0 0 0 1 0 0 0 1'}, 'missing PNG text chunk'),
    ({'Comment': '1 0 0 0 1 0 0 0', 'Description': '21'}, 'got 8'),
    ({'Comment': '1 0 0 0 one 0 0 0 1', 'Description': '21'}, '9 numbers'),
    ({'Comment': '1 0 0 0 1 0 0 0 1', 'Description': 'D65'}, 'integer EXIF'),
    ({'Comment': '1 1 1 1 1 1 0 0 1', 'Description': '21'}, 'singular'),
    ({'Comment': '1 0 0 0 nan 0 0 0 1', 'Description': '21'}, 'non-finite'),
])
def test_malformed_metadata_names_the_file(chunks, message):
    with pytest.raises(FaidFormatError, match=message) as error:
        ColorMetadata.from_text(chunks, 'Toys_001_ambient.png')
    assert 'Toys_001_ambient.png' in str(error.value) and 'write_faid_pair' in str(error.value)


def test_missing_metadata_in_file(tmp_path, images):
    _write_text_png(tmp_path / f'x{AMBIENT_SUFFIX}', images[0], {'Comment': '1 0 0 0 1 0 0 0 1'})
    _write_text_png(tmp_path / f'x{FLASH_SUFFIX}', images[1], None)
    with pytest.raises(FaidFormatError, match=r'x_ambient\.png.*Description'):
        read_faid_pair(tmp_path, 'x')


def test_size_mismatch(tmp_path, metadata):
    text = metadata.to_text()
    _write_text_png(tmp_path / f'x{AMBIENT_SUFFIX}', np.zeros((4, 5, 3), np.uint16), text)
    _write_text_png(tmp_path / f'x{FLASH_SUFFIX}', np.zeros((4, 6, 3), np.uint16), text)
    with pytest.raises(FaidFormatError, match='same size'):
        read_faid_pair(tmp_path, 'x')


def test_8_bit_png_is_rejected(scene):
    path = scene / f'Toys_001{FLASH_SUFFIX}'
    cv2.imwrite(str(path), np.zeros((9, 7, 3), np.uint8))
    with pytest.raises(FaidFormatError, match=r'Toys_001_flash\.png.*16-bit'):
        read_faid_pair(scene, 'Toys_001')


@pytest.mark.parametrize('image, message', [
    (np.zeros((4, 4), np.uint16), 'got 1'),
    (np.zeros((4, 4, 4), np.uint16), 'got 4'),
])
def test_non_rgb_png_is_rejected(image, message):
    ok, data = cv2.imencode('.png', image)
    with pytest.raises(FaidFormatError, match=message):
        decode_png16(data.tobytes(), 'g.png')


def test_undecodable_png_is_rejected():
    with pytest.raises(FaidFormatError, match='bad.png.*decodable'):
        decode_png16(b'not a png at all', 'bad.png')


def test_missing_partner_file(scene):
    (scene / f'Toys_001{FLASH_SUFFIX}').unlink()
    with pytest.raises(FileNotFoundError, match='Toys_001_flash.png'):
        read_faid_pair(scene, 'Toys_001')
    with pytest.raises(FaidFormatError, match='Toys_001_ambient.png has no _flash.png partner'):
        list_faid_names(scene)


def test_list_names_sorted_with_exclude(tmp_path, images, metadata):
    for name in ('Rooms_2', 'Toys_242', 'Objects_1'):
        write_faid_pair(tmp_path, name, *images, metadata)
    (tmp_path / 'notes.txt').write_text('unrelated files are ignored')
    assert list_faid_names(tmp_path) == ['Objects_1', 'Rooms_2', 'Toys_242']
    assert list_faid_names(tmp_path, exclude=load_test_split()) == ['Objects_1', 'Rooms_2']
    with pytest.raises(FaidFormatError, match='after excluding'):
        list_faid_names(tmp_path, exclude=['Objects_1', 'Rooms_2', 'Toys_242'])


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(FaidFormatError, match='no <Name>_ambient.png'):
        list_faid_names(tmp_path)
    with pytest.raises(FileNotFoundError, match='does not exist'):
        list_faid_names(tmp_path / 'absent')


def test_refuses_to_overwrite(scene, images, metadata):
    with pytest.raises(FileExistsError, match='overwrite=True'):
        write_faid_pair(scene, 'Toys_001', *images, metadata)
    write_faid_pair(scene, 'Toys_001', images[1], images[0], metadata, overwrite=True)
    assert np.array_equal(np.round(read_faid_pair(scene, 'Toys_001').ambient * 65535), images[1])
    assert sorted(p.name for p in scene.iterdir()) == [f'Toys_001{AMBIENT_SUFFIX}', f'Toys_001{FLASH_SUFFIX}']


@pytest.mark.parametrize('ambient, message', [
    (np.full((2, 2, 3), 1.5, np.float32), 'outside'),
    (np.full((2, 2, 3), np.nan, np.float32), 'NaN'),
    (np.zeros((2, 2), np.float32), r'\(H, W, 3\)'),
    (np.zeros((2, 2, 3), np.uint8), 'uint16 or float'),
])
def test_write_rejects_bad_images(tmp_path, metadata, ambient, message):
    with pytest.raises(ValueError, match=message):
        write_faid_pair(tmp_path, 'x', ambient, np.zeros((2, 2, 3), np.float32), metadata)
    assert not list(tmp_path.iterdir())


def test_test_split():
    names = load_test_split()
    assert len(names) == 128 and len(set(names)) == 128
    assert 'Toys_242' in names


# --- damaged files: one-line errors naming the file (before: raw cv2.error, or a wrong diagnosis) ---------------

def _damage(scene, how):
    path = scene / f'Toys_001{AMBIENT_SUFFIX}'
    good = path.read_bytes()
    iend = good.rindex(b'IEND') - 4  # start of the IEND chunk
    damaged = {'empty': b'', 'signature_only': good[:8], 'half': good[:len(good) // 2],
               'before_iend': good[:iend], 'not_png': b'GIF89a' + good[6:],
               'eight_bit': cv2.imencode('.png', np.zeros((9, 7, 3), np.uint8))[1].tobytes(),
               'gray': cv2.imencode('.png', np.zeros((9, 7), np.uint16))[1].tobytes()}[how]
    path.write_bytes(damaged)
    return path


@pytest.mark.parametrize('how, message', [
    ('empty', 'empty file \\(0 bytes\\)'), ('signature_only', 'not a decodable PNG'),
    ('half', 'not a decodable PNG'), ('before_iend', 'truncated|not a decodable'),
    ('not_png', 'not a decodable PNG'), ('eight_bit', 'expected a 16-bit PNG'),
    ('gray', 'expected 3 color channels')])
def test_damaged_file_names_the_file_and_the_problem(scene, how, message):
    from fnf_basicsr.errors import DataError
    path = _damage(scene, how)
    with pytest.raises(DataError, match=message) as raised:
        read_faid_pair(scene, 'Toys_001')
    assert str(path) in str(raised.value) and '\n' not in str(raised.value)


def test_text_chunks_of_bytes_truncated_at_a_chunk_boundary_are_refused(scene):
    good = (scene / f'Toys_001{AMBIENT_SUFFIX}').read_bytes()
    with pytest.raises(FaidFormatError, match='lmdb:key.*truncated'):
        read_png_text(good[:good.rindex(b'IEND') - 4], 'lmdb:key')


def test_folder_marked_incomplete_is_refused_with_the_command_that_finishes_it(scene):
    from fnf_basicsr.data.faid import check_complete, mark_complete, mark_incomplete
    command = 'python scripts/data_preparation/generate_synthetic.py --root x'
    mark_incomplete(scene, command)
    with pytest.raises(FaidFormatError, match=f'incomplete.*`{command}`'):
        list_faid_names(scene)
    mark_complete(scene)
    assert list_faid_names(scene) == ['Toys_001']
    check_complete(scene)
