"""FlashNoFlashDataset: sample layout, randomness and determinism, subsets, frozen sets, bad input."""
import io
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import fnf_basicsr  # noqa: F401  (registers the dataset)
from basicsr.utils.registry import DATASET_REGISTRY
from fnf_basicsr.data import faid
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.utils.files import bytes_sha256
from fnf_basicsr.data.frozen_writer import freeze, freeze_request
from fnf_basicsr.data.input_layout import INPUT_MODES, input_channels
from fnf_basicsr.errors import ConfigError

CROP, MARGIN, IMAGE_SHAPE = 64, 8, (88, 100, 3)
METADATA = faid.ColorMetadata(np.array([[0.9, 0.1, -0.1], [-0.3, 1.2, 0.1], [0.0, 0.2, 0.7]]), 21)


def write_scenes(folder, names, shape=IMAGE_SHAPE, seed=0):
    rng = np.random.default_rng(seed)
    for name in names:
        faid.write_faid_pair(folder, name, rng.random(shape), rng.random(shape), METADATA)
    return folder


@pytest.fixture(scope='module')
def faid_folder(tmp_path_factory):
    return write_scenes(tmp_path_factory.mktemp('faid'), ['Scene_a', 'Scene_b', 'Scene_c'])


def options(root, phase='val', **extra):
    return {'phase': phase, 'dataroot': str(root), 'crop_size': CROP, 'margin': MARGIN, **extra}


def assert_samples_equal(first, second):
    assert first.keys() == second.keys()
    for key, value in first.items():
        if torch.is_tensor(value):
            assert torch.equal(value, second[key]), key
        else:
            assert value == second[key], key


def test_registered_with_basicsr():
    assert DATASET_REGISTRY.get('FlashNoFlashDataset') is FlashNoFlashDataset


@pytest.mark.parametrize('reference', ['noflash', 'flash'])
@pytest.mark.parametrize('mode', INPUT_MODES)
def test_train_sample_layout(faid_folder, mode, reference):
    dataset = FlashNoFlashDataset(options(faid_folder, 'train', input_mode=mode, reference=reference))
    sample = dataset[1]
    assert len(dataset) == 3
    assert sample['lq'].shape == (input_channels(mode), CROP, CROP) and sample['lq'].dtype == torch.float32
    assert sample['gt'].shape == (3, CROP, CROP) and sample['gt'].dtype == torch.float32
    torch.testing.assert_close(sample['color_matrix'], torch.from_numpy(METADATA.color_matrix))
    for key in ('gain', 'sig_read', 'sig_shot', 'displacement', 'dimming'):
        assert sample[key].shape == () and sample[key].dtype == torch.float32
    assert sample['key'] == sample['lq_path'] == 'Scene_b'
    assert sample['gain'] == sample['dimming']


def test_train_parameters_follow_their_ranges(faid_folder):
    torch.manual_seed(0)  # train randomness derives from torch's seed; a fresh process draws its own
    dataset = FlashNoFlashDataset(options(faid_folder, 'train', dimming_range=[5, 50]))
    samples = [dataset[i % 3] for i in range(20)]
    gains = np.array([float(s['gain']) for s in samples])
    log_read = np.log10([float(s['sig_read']) for s in samples])
    log_shot = np.log10([float(s['sig_shot']) for s in samples])
    assert gains.min() >= 5 and gains.max() <= 50 and len(set(gains)) == 20
    assert log_read.min() >= -3 and log_read.max() <= -2
    assert log_shot.min() >= -2 and log_shot.max() <= -1.3
    # Crop 64: the +-2 px shifts dominate (Manhattan up to 4); rotations (f = 32 px, 0.5 degrees:
    # up to ~0.3 px per axis, ~0.4 px at the corners for roll) and scale (+-2 %: up to 0.64 px at
    # the corners) add at most ~1.7 px, so the mean displacement stays below 6 px.
    assert all(0 < float(s['displacement']) < 6 for s in samples)


def test_train_samples_are_random_but_repeat_under_the_same_torch_seed(faid_folder):
    torch.manual_seed(123)
    dataset = FlashNoFlashDataset(options(faid_folder, 'train'))
    first, second = dataset[0], dataset[0]
    assert not torch.equal(first['lq'], second['lq'])
    torch.manual_seed(123)
    assert_samples_equal(first, FlashNoFlashDataset(options(faid_folder, 'train'))[0])


def test_train_samples_differ_between_dataloader_workers(faid_folder):
    torch.manual_seed(0)
    dataset = FlashNoFlashDataset(options(faid_folder, 'train'))
    # Index 0 four times: workers 0 and 1 take two batches each, in turn.
    batches = list(DataLoader(dataset, batch_size=1, sampler=[0, 0, 0, 0], num_workers=2))
    lqs = [batch['lq'][0] for batch in batches]
    assert all(not torch.equal(lqs[i], lqs[j]) for i in range(4) for j in range(i + 1, 4))


def count_decodes(monkeypatch):
    calls = []
    decode = faid.decode_pair

    def counting(*args, **kwargs):
        calls.append(args[-2])
        return decode(*args, **kwargs)
    monkeypatch.setattr(faid, 'decode_pair', counting)
    return calls


def test_decoded_cache_decodes_each_image_once_and_changes_no_sample(faid_folder, monkeypatch):
    torch.manual_seed(7)
    uncached = FlashNoFlashDataset(options(faid_folder, 'train'))
    plain = [uncached[i] for i in (0, 1, 2, 0, 1, 2)]
    calls = count_decodes(monkeypatch)
    torch.manual_seed(7)
    cached = FlashNoFlashDataset(options(faid_folder, 'train', decoded_cache_mb=1))
    for expected, index in zip(plain, (0, 1, 2, 0, 1, 2)):
        assert_samples_equal(expected, cached[index])
    assert len(calls) == 3  # three images, each decoded once


def test_decoded_cache_keeps_within_its_budget(faid_folder, monkeypatch):
    """One image pair is 2 x 88 x 100 x 3 uint16 = 105,600 bytes: a 0.15 MiB budget holds one, not two."""
    calls = count_decodes(monkeypatch)
    dataset = FlashNoFlashDataset(options(faid_folder, 'train', decoded_cache_mb=0.15))
    for index in (0, 1, 0, 1):
        dataset[index]
    assert len(calls) == 4
    assert dataset._decoded.bytes <= 0.15 * 2 ** 20


def test_decoded_cache_without_persistent_workers_warns(faid_folder, caplog):
    import logging
    logger = logging.getLogger('basicsr')  # BasicSR's root logger does not propagate: listen on it directly
    logger.addHandler(caplog.handler)
    try:
        opt = options(faid_folder, 'train', decoded_cache_mb=64, num_worker_per_gpu=2, name='train_set')
        FlashNoFlashDataset(opt)
        assert "'train_set': decoded_cache_mb" in caplog.text and 'add persistent_workers: true' in caplog.text
        caplog.clear()
        FlashNoFlashDataset({**opt, 'persistent_workers': True})
        assert 'persistent_workers' not in caplog.text
    finally:
        logger.removeHandler(caplog.handler)


def test_val_samples_enumerate_images_and_dimming_factors(faid_folder):
    dataset = FlashNoFlashDataset(options(faid_folder))
    assert len(dataset) == 3 * 4
    samples = [dataset[i] for i in range(4)]
    assert [float(s['dimming']) for s in samples] == [100, 50, 25, 12.5]
    assert [s['key'] for s in samples] == ['Scene_a_dim100', 'Scene_a_dim50', 'Scene_a_dim25', 'Scene_a_dim12p5']
    # One homography per image, shared by its dimming factors; the test-protocol noise.
    assert len({float(s['displacement']) for s in samples}) == 1
    assert float(samples[0]['sig_read']) == pytest.approx(10 ** -2.6)
    assert float(samples[0]['sig_shot']) == pytest.approx(10 ** -1.8)
    # gt is the central crop of the ambient image, dimmed.
    ambient = faid.read_faid_pair(faid_folder, 'Scene_a').ambient
    top, left = (IMAGE_SHAPE[0] - CROP) // 2, (IMAGE_SHAPE[1] - CROP) // 2
    central = torch.from_numpy(ambient[top:top + CROP, left:left + CROP].transpose(2, 0, 1).copy())
    torch.testing.assert_close(samples[1]['gt'], central / 50)


def test_val_is_identical_across_instances_and_worker_counts(faid_folder):
    def collect(num_workers):
        dataset = FlashNoFlashDataset(options(faid_folder, max_images=2))
        return list(DataLoader(dataset, batch_size=1, num_workers=num_workers))

    serial, parallel = collect(0), collect(2)
    assert len(serial) == len(parallel) == 8
    for first, second in zip(serial, parallel):
        assert_samples_equal(first, second)
    assert_samples_equal(FlashNoFlashDataset(options(faid_folder))[5], FlashNoFlashDataset(options(faid_folder))[5])
    assert not torch.equal(FlashNoFlashDataset(options(faid_folder, seed=1))[5]['lq'], serial[5]['lq'][0])


def test_val_sample_of_an_image_does_not_depend_on_the_other_images(faid_folder, tmp_path):
    for suffix in ('_ambient.png', '_flash.png'):
        shutil.copy(faid_folder / f'Scene_c{suffix}', tmp_path / f'Scene_c{suffix}')
    alone, among_others = FlashNoFlashDataset(options(tmp_path)), FlashNoFlashDataset(options(faid_folder))
    for index in range(4):
        assert_samples_equal(alone[index], among_others[8 + index])


def test_displacement_sweep_lands_in_each_bin(faid_folder):
    dataset = FlashNoFlashDataset(options(faid_folder, displacement_bins=[0, 1, 3, 6], dimming_factors=[50],
                                          margin=12))
    assert len(dataset) == 3 * 3
    for index, (low, high) in enumerate([(0, 1), (1, 3), (3, 6)] * 3):
        sample = dataset[index]
        assert low - 0.02 <= float(sample['displacement']) <= high + 0.02
        assert f'disp{low:g}-{high:g}' in sample['key']


def test_subsets_keep_the_test_split_apart(tmp_path):
    test_name = faid.load_test_split()[0]
    folder = write_scenes(tmp_path, [test_name, 'Other_1', 'Other_2'])
    assert FlashNoFlashDataset(options(folder, 'train')).entries == ['Other_1', 'Other_2']
    assert FlashNoFlashDataset(options(folder, subset='test')).entries == [test_name]
    everything = FlashNoFlashDataset(options(folder, 'train', exclude_test_split=False)).entries
    assert everything == sorted([test_name, 'Other_1', 'Other_2'])


def test_val_names_file_is_checked_against_the_scenes(faid_folder, tmp_path, basicsr_log):
    listed = tmp_path / 'val.txt'
    listed.write_text('Scene_b\nScene_x\n')
    assert FlashNoFlashDataset(options(faid_folder, subset='val', val_names_file=str(listed))).entries == ['Scene_b']
    assert "1 of 2 names are not in this dataset and are ignored, e.g. ['Scene_x']" in basicsr_log.text
    listed.write_text('path-to-dataset/Rooms_659\n')  # a list of paths, or of another dataset
    for subset in ('val', 'train'):
        with pytest.raises(ConfigError, match=f'val_names_file {listed}: none of its 1 names is a scene'):
            FlashNoFlashDataset(options(faid_folder, subset=subset, val_names_file=str(listed)))
    with pytest.raises(ConfigError, match='cannot read it'):
        FlashNoFlashDataset(options(faid_folder, subset='val', val_names_file=str(tmp_path / 'absent.txt')))


def test_synthetic_split_is_generated_once_and_frozen_whole(tmp_path):
    synthetic = {'split': 'test', 'num_scenes': 2, 'size': 80, 'workers': 1}
    dataset = FlashNoFlashDataset(options(tmp_path, synthetic=synthetic))
    assert dataset.entries == ['Synth_test_000000', 'Synth_test_000001'] and len(dataset) == 8
    folder = Path(dataset.dataroot)
    assert folder.parent == tmp_path
    written = sorted(path.stat().st_mtime_ns for path in folder.iterdir())
    assert_samples_equal(FlashNoFlashDataset(options(tmp_path, synthetic=synthetic))[3], dataset[3])
    assert sorted(path.stat().st_mtime_ns for path in folder.iterdir()) == written  # reused, not rendered again
    # Synthetic names are not FAID test names: the freeze script's 'auto' subset takes them all.
    assert freeze_request(dataroot=str(folder), output=str(tmp_path / 'frozen'))[0]['subset'] == 'all'


def test_frozen_set_reads_back_the_on_the_fly_samples(faid_folder, tmp_path):
    frozen_options, output = freeze_request(dataroot=str(faid_folder), output=str(tmp_path / 'frozen'),
                                            crop_size=CROP, margin=MARGIN, max_images=2)
    assert freeze(frozen_options, output, progress=False) == (8, 0)
    for mode in INPUT_MODES:
        frozen = FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(tmp_path / 'frozen'), 'input_mode': mode})
        live = FlashNoFlashDataset(options(faid_folder, 'test', input_mode=mode, max_images=2))
        assert len(frozen) == len(live) == 8
        for index in range(8):
            assert_samples_equal(frozen[index], live[index])
    # Resuming rewrites only what is missing; other options never touch the set.
    next((tmp_path / 'frozen').glob('00003_*.npz')).unlink()
    assert freeze(frozen_options, output, progress=False) == (1, 7)
    with pytest.raises(FileExistsError, match="other options.*'seed'"):
        freeze({**frozen_options, 'seed': 1}, output, progress=False)


def test_frozen_set_errors_name_the_file(faid_folder, tmp_path):
    frozen_options, root = freeze_request(dataroot=str(faid_folder), output=str(tmp_path / 'frozen'), crop_size=CROP,
                                          margin=MARGIN, max_images=1, dimming_factors=[50], input_modes=['noflash'])
    freeze(frozen_options, root, progress=False)
    with pytest.raises(ValueError, match='--input-modes flash_noflash'):
        FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(root)})
    manifest = json.loads((root / 'manifest.json').read_text())
    path = root / manifest['samples'][0]['file']
    arrays = dict(np.load(path))
    arrays['gt'][0, 0, 0] = np.nan
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.write_bytes(buffer.getvalue())
    dataset = FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(root), 'input_mode': 'noflash'})
    with pytest.raises(ValueError, match=f'{path.name}: checksum differs'):
        dataset[0]
    manifest['samples'][0]['sha256'] = bytes_sha256(buffer.getvalue())
    (root / 'manifest.json').write_text(json.dumps(manifest))
    dataset = FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(root), 'input_mode': 'noflash'})
    with pytest.raises(ValueError, match=f"{path.name}: array 'gt' holds NaN or Inf"):
        dataset[0]
    with pytest.raises(FileNotFoundError, match='freeze_testset.py'):
        FlashNoFlashDataset({'phase': 'test', 'frozen_root': str(tmp_path / 'nothing')})


def write_pair_files(folder, name, ambient_u16, flash_u16, text):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f'{name}_ambient.png').write_bytes(faid.encode_png16(ambient_u16, text))
    (folder / f'{name}_flash.png').write_bytes(faid.encode_png16(flash_u16, text))


def test_bad_images_raise_errors_that_name_the_file(tmp_path):
    image = np.full(IMAGE_SHAPE, 1000, np.uint16)
    text = METADATA.to_text()
    cases = {
        'size': (image, image[:80], text, r'Bad_flash\.png is 100x80.*same size'),
        'no_metadata': (image, image, {}, r'Bad_ambient\.png: missing PNG text chunk'),
        'bad_metadata': (image, image, {**text, 'Comment': 'one two'}, r'Bad_ambient\.png: "Comment" must hold'),
        'small': (image[:60], image[:60], text, r'Bad_ambient\.png is 100x60, smaller than crop_size \+ 2 \* margin'
                                                r'.*use a smaller crop_size or margin, or pad'),
    }
    for case, (ambient, flash_only, chunks, message) in cases.items():
        folder = tmp_path / case
        write_pair_files(folder, 'Bad', ambient, flash_only, chunks)
        for phase in ('train', 'val'):
            with pytest.raises(ValueError, match=message):
                FlashNoFlashDataset(options(folder, phase))[0]
    folder = tmp_path / 'eight_bit'
    write_pair_files(folder, 'Bad', image, image, text)
    cv2.imwrite(str(folder / 'Bad_flash.png'), np.zeros(IMAGE_SHAPE, np.uint8))
    with pytest.raises(faid.FaidFormatError, match=r'Bad_flash\.png: expected a 16-bit PNG'):
        FlashNoFlashDataset(options(folder))[0]


def test_bad_folders_and_options_are_refused(faid_folder, tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(faid.FaidFormatError, match='empty: no <Name>_ambient.png'):
        FlashNoFlashDataset(options(tmp_path / 'empty'))
    with pytest.raises(ValueError, match='empty is an unfinished LMDB'):
        FlashNoFlashDataset(options(tmp_path / 'empty', io_backend={'type': 'lmdb'}))
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['dimming_rnage'\] \('dimming_rnage': did you mean "
                                         r"'dimming_range'\?\)"):
        FlashNoFlashDataset(options(faid_folder, dimming_rnage=[5, 50]))
    for bad in ({'crop_size': 0}, {'margin': -1}):
        with pytest.raises(ValueError, match='crop_size must be >= 1 and margin >= 0'):
            FlashNoFlashDataset(options(faid_folder, **bad))
    with pytest.raises(ValueError, match='max_images must be >= 1'):
        FlashNoFlashDataset(options(faid_folder, max_images=0))
    with pytest.raises(ValueError, match='sig_read and sig_shot must be finite'):
        FlashNoFlashDataset(options(faid_folder, noise={'sig_read': float('nan'), 'sig_shot': 0.01}))
    with pytest.raises(ValueError, match=r'3 training sample\(s\), 3 per process, but batch_size_per_gpu 4.*'
                                         r'0 iterations'):
        FlashNoFlashDataset(options(faid_folder, 'train', batch_size_per_gpu=4))
    with pytest.raises(ValueError, match=r"misalignment: unknown option\(s\) \['rotation'\]"):
        FlashNoFlashDataset(options(faid_folder, misalignment={'rotation': 1}))
    with pytest.raises(ValueError, match="input_mode must be one of"):
        FlashNoFlashDataset(options(faid_folder, input_mode='flash'))
    with pytest.raises(ValueError, match='no images left'):
        FlashNoFlashDataset(options(faid_folder, subset='test'))
