"""The LMDB crop layout (fnf_basicsr.data.lmdb_store): bit-exact 16-bit round trip, per-key metadata, meta_info,
the dataset reading it, refusals, damaged LMDBs. The create_lmdb command: tests/tools/test_create_lmdb.py."""

import json
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from conftest import LMDB_SCENE_SHAPE

import fnf_basicsr  # noqa: F401
from fnf_basicsr.data import faid
from fnf_basicsr.data import lmdb_store
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.lmdb_store import crop_key, parse_crop_key
from fnf_basicsr.errors import DataError

SHAPE = LMDB_SCENE_SHAPE


def test_crop_positions_cover_the_image():
    assert lmdb_store.crop_positions(70, 48, 32) == [0, 22]
    assert lmdb_store.crop_positions(96, 48, 24) == [0, 24, 48]
    assert lmdb_store.crop_positions(40, 48, 32) == [0]
    assert parse_crop_key(crop_key('Toys_242', 22, 320)) == ('Toys_242', 22, 320)
    assert parse_crop_key('plain') == ('plain', 0, 0)


@pytest.mark.parametrize('encoding', ['png', 'raw'])
def test_round_trip_is_bit_exact_with_metadata_per_key(faid_folder, tmp_path, encoding):
    lmdb_path = tmp_path / 'train.lmdb'
    report = lmdb_store.create_lmdb(faid_folder, lmdb_path, crop_size=48, stride=32, progress=False,
                                    encoding=encoding)
    # The test-split scene is left out of the default split 'all'.
    assert report['scenes'] == 2 and report['crops'] == 2 * 2 * 3 and report['verified'] == 24
    meta_lines = (lmdb_path / 'meta_info.txt').read_text().splitlines()
    compression = {'png': 1, 'raw': 0}[encoding]
    assert f'Scene_a_y00022_x00042_ambient.{encoding} (48,48,3) {compression}' in meta_lines
    assert len(meta_lines) == 24
    assert json.loads((lmdb_path / lmdb_store.COMPLETE_MARKER).read_text())['encoding'] == encoding
    env = lmdb.open(str(lmdb_path), readonly=True, lock=False)
    with env.begin() as txn:
        for name in ('Scene_a', 'Scene_b'):
            source = faid.read_faid_pair(faid_folder, name)
            for top in (0, 22):
                for left in (0, 32, 42):
                    key = crop_key(name, top, left)
                    for suffix, image in (('_ambient', source.ambient), ('_flash', source.flash_only)):
                        payload = txn.get(f'{key}{suffix}'.encode())
                        if encoding == 'png':
                            decoded, text = faid.decode_png16(payload, key), faid.read_png_text(payload)
                        else:
                            assert payload.startswith(lmdb_store.RAW_MAGIC)
                            decoded, text = lmdb_store.decode_raw_record(payload, key)
                        expected = np.round(image[top:top + 48, left:left + 48] * 65535).astype(np.uint16)
                        np.testing.assert_array_equal(decoded, expected)
                        metadata = faid.ColorMetadata.from_text(text, key)
                        np.testing.assert_array_equal(metadata.xyz_to_camera, source.metadata.xyz_to_camera)
                        assert metadata.illuminant == source.metadata.illuminant
    env.close()


def test_both_encodings_give_the_dataset_identical_samples(faid_folder, tmp_path):
    datasets = {}
    for encoding in lmdb_store.ENCODINGS:
        lmdb_path = tmp_path / f'{encoding}.lmdb'
        lmdb_store.create_lmdb(faid_folder, lmdb_path, crop_size=64, stride=32, progress=False, encoding=encoding)
        datasets[encoding] = FlashNoFlashDataset({'phase': 'train', 'dataroot': str(lmdb_path), 'crop_size': 32,
                                                  'margin': 8, 'io_backend': {'type': 'lmdb'}})
    raw, png = datasets['raw'], datasets['png']
    assert raw.entries == png.entries
    for index in range(3):
        torch.manual_seed(index)
        raw_sample = raw[index]
        torch.manual_seed(index)
        png_sample = png[index]
        for key in ('lq', 'gt', 'color_matrix', 'gain'):
            assert torch.equal(raw_sample[key], png_sample[key]), key


def test_damaged_raw_records_are_refused_with_their_key():
    image = np.arange(2 * 3 * 3, dtype=np.uint16).reshape(2, 3, 3)
    record = lmdb_store.encode_record(image, {'k': 'v'}, 'raw')
    decoded, text = lmdb_store.decode_raw_record(record, 'x')
    np.testing.assert_array_equal(decoded, image)
    assert text == {'k': 'v'}
    with pytest.raises(DataError, match='crop_a_ambient: raw LMDB record holds 34 pixel bytes.*truncated'):
        lmdb_store.decode_raw_record(record[:-2], 'crop_a_ambient')
    with pytest.raises(DataError, match='crop_a_ambient: damaged raw LMDB record'):
        lmdb_store.decode_raw_record(record[:len(lmdb_store.RAW_MAGIC) + 6], 'crop_a_ambient')
    png = lmdb_store.encode_record(image, {'k': 'v'}, 'png')
    with pytest.raises(DataError, match='crop_a_flash: not a raw record like crop_a_ambient'):
        lmdb_store.decode_record_pair(record, png, 'crop_a_ambient', 'crop_a_flash')


def test_dataset_reads_the_lmdb_like_the_folder(faid_folder, tmp_path):
    lmdb_path = tmp_path / 'whole.lmdb'
    # One crop per image holding the whole image: both backends must read the same pixels and
    # metadata. (The noise differs: val samples are seeded by their key, here the crop key.)
    lmdb_store.create_lmdb(faid_folder, lmdb_path, crop_size=100, stride=100, progress=False)
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


def test_splits_and_refusals(faid_folder, tmp_path):
    test_split = lmdb_store.create_lmdb(faid_folder, tmp_path / 'test.lmdb', split='test', crop_size=48,
                                         stride=32, progress=False)
    assert test_split['scenes'] == 1
    with pytest.raises(FileExistsError, match='--overwrite'):
        lmdb_store.create_lmdb(faid_folder, tmp_path / 'test.lmdb', split='test', progress=False)
    replaced = lmdb_store.create_lmdb(faid_folder, tmp_path / 'test.lmdb', split='test', crop_size=64,
                                       stride=64, overwrite=True, progress=False)
    assert replaced['crops'] == 4  # rows 0, 6; columns 0, 26
    with pytest.raises(ValueError, match='must end with .lmdb'):
        lmdb_store.create_lmdb(faid_folder, tmp_path / 'out', progress=False)
    with pytest.raises(ValueError, match='no scenes in split'):
        lmdb_store.create_lmdb(faid_folder, tmp_path / 'val.lmdb', split='val', val_names=['Nope'],
                                progress=False)


def test_missing_lmdb_key_names_the_key_and_the_lmdb(faid_folder, tmp_path):
    lmdb_path = tmp_path / 'broken.lmdb'
    lmdb_store.create_lmdb(faid_folder, lmdb_path, crop_size=64, stride=64, progress=False)
    with open(lmdb_path / 'meta_info.txt', 'a') as meta:
        meta.write('Ghost_y00000_x00000_ambient.png (64,64,3) 1\n')
    dataset = FlashNoFlashDataset({'phase': 'val', 'dataroot': str(lmdb_path), 'io_backend': {'type': 'lmdb'},
                                   'crop_size': 48, 'margin': 6, 'dimming_factors': [20]})
    assert dataset.entries[0] == 'Ghost_y00000_x00000'
    with pytest.raises(LookupError, match=f"'Ghost_y00000_x00000_ambient' is not in the LMDB {lmdb_path}"):
        dataset[0]


# --- reliability: nothing unfinished under the final name, damaged LMDBs refused with their path ---------------

LMDB_OPTIONS = {'phase': 'val', 'io_backend': {'type': 'lmdb'}, 'crop_size': 32, 'margin': 4, 'dimming_factors': [20]}


def read_every_sample(lmdb_path):
    dataset = FlashNoFlashDataset({**LMDB_OPTIONS, 'dataroot': str(lmdb_path)})
    return [dataset[index]['key'] for index in range(len(dataset))]


@pytest.fixture
def small_lmdb(faid_folder, tmp_path):
    lmdb_path = tmp_path / 'small.lmdb'
    lmdb_store.create_lmdb(faid_folder, lmdb_path, crop_size=48, stride=32, progress=False)
    return lmdb_path


def test_output_under_a_regular_file_is_refused_before_the_work(faid_folder, tmp_path, monkeypatch):
    (tmp_path / 'file').write_text('not a folder')
    monkeypatch.setattr(lmdb_store, 'plan_crops', lambda *args: pytest.fail('the work started'))
    from fnf_basicsr.errors import OutputError
    with pytest.raises(OutputError, match=f'{tmp_path / "file"} is a file, not a folder'):
        lmdb_store.create_lmdb(faid_folder, tmp_path / 'file' / 'sub' / 'train.lmdb', progress=False)


def test_output_in_a_read_only_folder_is_refused_before_the_work(faid_folder, tmp_path, monkeypatch):
    import os
    read_only = tmp_path / 'read_only'
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.access(read_only, os.W_OK):  # root ignores permissions: use a folder the kernel refuses
        read_only = next((p for p in map(Path, ('/sys', '/proc/sys')) if p.is_dir() and not _writable(p)), None)
        if read_only is None:
            pytest.skip('no read-only folder available')
    monkeypatch.setattr(lmdb_store, 'plan_crops', lambda *args: pytest.fail('the work started'))
    from fnf_basicsr.errors import OutputError
    with pytest.raises(OutputError, match='cannot write the LMDB in'):
        lmdb_store.create_lmdb(faid_folder, read_only / 'train.lmdb', progress=False)


def _writable(folder):
    try:
        (folder / '.fnf_probe').write_bytes(b'')
    except OSError:
        return False
    (folder / '.fnf_probe').unlink()
    return True


def test_failed_run_leaves_nothing_and_keeps_the_old_lmdb(faid_folder, small_lmdb, monkeypatch):
    before = read_every_sample(small_lmdb)
    calls = []
    real_encode = lmdb_store.encode_record

    def failing_encode(*args):
        calls.append(1)
        if len(calls) == 5:
            raise OSError(28, 'No space left on device')
        return real_encode(*args)

    monkeypatch.setattr(lmdb_store, 'encode_record', failing_encode)
    with pytest.raises(OSError):
        lmdb_store.create_lmdb(faid_folder, small_lmdb, crop_size=64, stride=64, overwrite=True, progress=False)
    assert read_every_sample(small_lmdb) == before  # still the complete old one, not a mix
    assert sorted(p.name for p in small_lmdb.parent.iterdir()) == ['small.lmdb']  # no temporaries


def test_unfinished_lmdb_is_refused_with_how_to_rebuild(small_lmdb):
    from fnf_basicsr.data.lmdb_store import COMPLETE_MARKER
    from fnf_basicsr.errors import DataError
    (small_lmdb / COMPLETE_MARKER).unlink()  # what a killed run of the old script left
    with pytest.raises(DataError, match=f'{small_lmdb} is an unfinished LMDB.*create_lmdb.py --overwrite'):
        read_every_sample(small_lmdb)


TRUNCATED_READER = '''
import sys
import fnf_basicsr
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
dataset = FlashNoFlashDataset({'phase': 'val', 'io_backend': {'type': 'lmdb'}, 'crop_size': 32, 'margin': 4,
                               'dimming_factors': [20], 'dataroot': sys.argv[1]})
for index in range(len(dataset)):
    dataset[index]
'''


@pytest.mark.parametrize('keep_size_record', [True, False])
def test_truncated_data_file_is_an_error_not_sigbus(small_lmdb, tmp_path, keep_size_record):
    import json
    import subprocess
    import sys
    from fnf_basicsr.data.lmdb_store import COMPLETE_MARKER
    data = small_lmdb / 'data.mdb'
    with open(data, 'r+b') as file:
        file.truncate(data.stat().st_size // 2)
    if not keep_size_record:  # the check must also work from LMDB's own header
        (small_lmdb / COMPLETE_MARKER).write_text(json.dumps({'format': 'fnf-basicsr crops'}))
    proc = subprocess.run([sys.executable, '-c', TRUNCATED_READER, str(small_lmdb)], capture_output=True, text=True,
                          check=False, timeout=120)
    assert proc.returncode == 1, f'exit {proc.returncode} (-7 is SIGBUS)'
    assert f'DataError: {data} is truncated' in proc.stderr


def test_corrupted_lmdb_names_its_path(small_lmdb):
    from fnf_basicsr.errors import DataError
    data = bytearray((small_lmdb / 'data.mdb').read_bytes())
    for offset in range(2 * 4096, len(data), 4096):  # wreck every page header after the two meta pages
        data[offset:offset + 16] = b'\xff' * 16
    (small_lmdb / 'data.mdb').write_bytes(bytes(data))
    with pytest.raises(DataError, match=f'LMDB {small_lmdb} is damaged.*MDB_CORRUPTED'):
        read_every_sample(small_lmdb)


def test_not_an_lmdb_is_refused(small_lmdb):
    from fnf_basicsr.errors import DataError
    (small_lmdb / 'data.mdb').write_bytes(b'\0' * 8192)
    with pytest.raises(DataError, match='not an LMDB data file'):
        read_every_sample(small_lmdb)


def test_temporaries_of_dead_runs_are_removed(faid_folder, tmp_path):
    dead = tmp_path / f'.train.lmdb.fnf-tmp-999999999-{"0" * 32}.tmp'  # no process has that id
    dead.mkdir()
    (dead / 'data.mdb').write_bytes(b'partial')
    lmdb_store.create_lmdb(faid_folder, tmp_path / 'train.lmdb', crop_size=64, stride=64, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['train.lmdb']


def test_overwrite_replaces_only_an_lmdb_it_wrote(faid_folder, tmp_path, monkeypatch):
    from fnf_basicsr.errors import OutputExistsError
    folder = tmp_path / 'notes.lmdb'  # a folder of the user's that happens to end with .lmdb
    folder.mkdir()
    (folder / 'thesis.tex').write_text('years of work')
    monkeypatch.setattr(lmdb_store, 'plan_crops', lambda *args: pytest.fail('the work started'))
    with pytest.raises(OutputExistsError, match='not an LMDB this command wrote'):
        lmdb_store.create_lmdb(faid_folder, folder, overwrite=True, progress=False)
    assert (folder / 'thesis.tex').read_text() == 'years of work'
