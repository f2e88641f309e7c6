"""scripts/create_lmdb.py: bit-exact 16-bit round trip, per-key metadata, meta_info, refusals."""

import lmdb
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import fnf_basicsr  # noqa: F401
from fnf_basicsr.data import faid
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset, crop_key, parse_crop_key
from conftest import load_script

SHAPE = (70, 90, 3)  # crops of 48 every 32 px: rows at 0, 22; columns at 0, 32, 42


@pytest.fixture(scope='module')
def create_lmdb():
    return load_script('create_lmdb')


@pytest.fixture(scope='module')
def faid_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('faid')
    rng = np.random.default_rng(0)
    for index, name in enumerate(['Scene_a', 'Scene_b', faid.load_test_split()[0]]):
        metadata = faid.ColorMetadata(np.eye(3) * (1 + index) + 0.1, (17, 21, 23)[index])
        # Full 16-bit range, including odd values that an 8-bit or float16 path would lose.
        ambient, flash_only = (rng.integers(0, 65536, SHAPE, dtype=np.uint16) for _ in range(2))
        faid.write_faid_pair(folder, name, ambient, flash_only, metadata)
    return folder


def test_crop_positions_cover_the_image(create_lmdb):
    assert create_lmdb.crop_positions(70, 48, 32) == [0, 22]
    assert create_lmdb.crop_positions(96, 48, 24) == [0, 24, 48]
    assert create_lmdb.crop_positions(40, 48, 32) == [0]
    assert parse_crop_key(crop_key('Toys_242', 22, 320)) == ('Toys_242', 22, 320)
    assert parse_crop_key('plain') == ('plain', 0, 0)


def test_round_trip_is_bit_exact_with_metadata_per_key(create_lmdb, faid_folder, tmp_path):
    lmdb_path = tmp_path / 'train.lmdb'
    report = create_lmdb.create_lmdb(faid_folder, lmdb_path, crop_size=48, stride=32, progress=False)
    # The test-split scene is left out of the default split 'all'.
    assert report['scenes'] == 2 and report['crops'] == 2 * 2 * 3 and report['verified'] == 24
    meta_lines = (lmdb_path / 'meta_info.txt').read_text().splitlines()
    assert 'Scene_a_y00022_x00042_ambient.png (48,48,3) 1' in meta_lines and len(meta_lines) == 24
    env = lmdb.open(str(lmdb_path), readonly=True, lock=False)
    with env.begin() as txn:
        for name in ('Scene_a', 'Scene_b'):
            source = faid.read_faid_pair(faid_folder, name)
            for top in (0, 22):
                for left in (0, 32, 42):
                    key = crop_key(name, top, left)
                    for suffix, image in (('_ambient', source.ambient), ('_flash', source.flash_only)):
                        payload = txn.get(f'{key}{suffix}'.encode())
                        decoded = faid.decode_png16(payload, key)
                        expected = np.round(image[top:top + 48, left:left + 48] * 65535).astype(np.uint16)
                        np.testing.assert_array_equal(decoded, expected)
                        metadata = faid.ColorMetadata.from_text(faid.read_png_text(payload), key)
                        np.testing.assert_array_equal(metadata.xyz_to_camera, source.metadata.xyz_to_camera)
                        assert metadata.illuminant == source.metadata.illuminant
    env.close()


def test_dataset_reads_the_lmdb_like_the_folder(create_lmdb, faid_folder, tmp_path):
    lmdb_path = tmp_path / 'whole.lmdb'
    # One crop per image holding the whole image: both backends must read the same pixels and
    # metadata. (The noise differs: val samples are seeded by their key, here the crop key.)
    create_lmdb.create_lmdb(faid_folder, lmdb_path, crop_size=100, stride=100, progress=False)
    common = {'phase': 'val', 'crop_size': 48, 'margin': 6, 'dimming_factors': [20]}
    from_lmdb = FlashNoFlashDataset({**common, 'dataroot': str(lmdb_path), 'io_backend': {'type': 'lmdb'}})
    from_disk = FlashNoFlashDataset({**common, 'dataroot': str(faid_folder)})
    assert from_lmdb.entries == ['Scene_a_y00000_x00000', 'Scene_b_y00000_x00000']
    for index in range(2):
        lmdb_sample, disk_sample = from_lmdb[index], from_disk[index]
        assert lmdb_sample['key'] == f'{disk_sample["key"][:7]}_y00000_x00000_dim20'
        for key in ('gt', 'color_matrix', 'gain'):
            assert torch.equal(lmdb_sample[key], disk_sample[key]), key
    # Forked DataLoader workers open their own LMDB handle, even after the parent used one.
    batches = list(DataLoader(from_lmdb, batch_size=1, num_workers=2))
    for index, batch in enumerate(batches):
        assert torch.equal(batch['lq'][0], from_lmdb[index]['lq'])
    train = FlashNoFlashDataset({**common, 'phase': 'train', 'dataroot': str(lmdb_path),
                                 'io_backend': {'type': 'lmdb'}})
    assert train[1]['lq'].shape == (12, 48, 48)


def test_splits_and_refusals(create_lmdb, faid_folder, tmp_path):
    test_split = create_lmdb.create_lmdb(faid_folder, tmp_path / 'test.lmdb', split='test', crop_size=48,
                                         stride=32, progress=False)
    assert test_split['scenes'] == 1
    with pytest.raises(FileExistsError, match='--overwrite'):
        create_lmdb.create_lmdb(faid_folder, tmp_path / 'test.lmdb', split='test', progress=False)
    replaced = create_lmdb.create_lmdb(faid_folder, tmp_path / 'test.lmdb', split='test', crop_size=64,
                                       stride=64, overwrite=True, progress=False)
    assert replaced['crops'] == 4  # rows 0, 6; columns 0, 26
    with pytest.raises(ValueError, match='must end with .lmdb'):
        create_lmdb.create_lmdb(faid_folder, tmp_path / 'out', progress=False)
    with pytest.raises(ValueError, match='no scenes in split'):
        create_lmdb.create_lmdb(faid_folder, tmp_path / 'val.lmdb', split='val', val_names=['Nope'],
                                progress=False)


def test_missing_lmdb_key_names_the_key_and_the_lmdb(create_lmdb, faid_folder, tmp_path):
    lmdb_path = tmp_path / 'broken.lmdb'
    create_lmdb.create_lmdb(faid_folder, lmdb_path, crop_size=64, stride=64, progress=False)
    with open(lmdb_path / 'meta_info.txt', 'a') as meta:
        meta.write('Ghost_y00000_x00000_ambient.png (64,64,3) 1\n')
    dataset = FlashNoFlashDataset({'phase': 'val', 'dataroot': str(lmdb_path), 'io_backend': {'type': 'lmdb'},
                                   'crop_size': 48, 'margin': 6, 'dimming_factors': [20]})
    assert dataset.entries[0] == 'Ghost_y00000_x00000'
    with pytest.raises(LookupError, match=f"'Ghost_y00000_x00000_ambient' is not in the LMDB {lmdb_path}"):
        dataset[0]


def test_command_line_help_documents_every_option(create_lmdb):
    help_text = create_lmdb.build_parser().format_help()
    for option in ('--input', '--output', '--split', '--crop-size', '--stride', '--num-val', '--val-names',
                   '--max-images', '--overwrite', '--quiet'):
        assert option in help_text
    assert all(action.help for action in create_lmdb.build_parser()._actions)
