"""The later literature's protocol (``degradation: srgb_awgn``): the noise, the clean flash, determinism, the
published split, frozen sets and fnf-benchmark's per-sigma table."""
import csv
import math

import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401
from basicsr.archs import build_network
from fnf_basicsr import benchmark
from fnf_basicsr.data import faid
from fnf_basicsr.data.degradation import make_awgn_sample
from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.scene_selection import select_names
from fnf_basicsr.data.frozen_writer import freeze, freeze_request
from fnf_basicsr.data.synthetic import generate_split
from fnf_basicsr.errors import ConfigError
from fnf_basicsr.utils.rendering import render_srgb, srgb_8bit

SIGMAS = [25.0, 50.0, 75.0]


@pytest.fixture(scope='module')
def scenes(tmp_path_factory):
    root = tmp_path_factory.mktemp('awgn') / 'scenes'
    generate_split(root, 'test', num_scenes=3, size=96, workers=1, progress=False)
    return root


def dataset(scenes, **options):
    opt = {'name': 'awgn', 'phase': 'test', 'dataroot': str(scenes), 'crop_size': 64, 'degradation': 'srgb_awgn',
           'awgn_sigmas': SIGMAS, **options}
    return FlashNoFlashDataset(opt)


def test_noise_has_the_stated_sigma_and_no_bias(scenes):
    data = dataset(scenes, crop_size='full')
    for index in range(len(data)):
        sample = data[index]
        sigma = float(sample['awgn_sigma'])
        noise = (sample['lq'][:3] - sample['gt']).double() * 255
        # 3 x 96 x 96 Gaussian draws: the std's standard error is sigma / sqrt(2n) ~ 0.4 %; allow 5 of them
        n = noise.numel()
        assert abs(noise.std().item() / sigma - 1) < 5 / math.sqrt(2 * n)
        assert abs(noise.mean().item()) < 5 * sigma / math.sqrt(n)
    assert sorted({float(data[i]['awgn_sigma']) for i in range(len(data))}) == SIGMAS


def test_flash_is_the_clean_8bit_srgb_render_and_gt_the_clean_noflash(scenes):
    data = dataset(scenes, crop_size='full')
    sample = data[1]
    pair = faid.read_faid_pair(scenes, data.entries[0])
    matrix = torch.as_tensor(pair.metadata.color_matrix, dtype=torch.float32)
    expected = [srgb_8bit(torch.from_numpy(image.transpose(2, 0, 1).copy()), matrix)
                for image in (pair.ambient, pair.flash_only)]
    assert torch.equal(sample['lq'][3:6], expected[1])
    assert torch.equal(sample['gt'], expected[0])
    assert torch.equal(sample['gt'] * 255, torch.round(sample['gt'] * 255))  # 8-bit values
    assert torch.all(sample['lq'][9:12] == 0)  # the flash's std map: clean
    assert torch.allclose(sample['lq'][6:9], torch.full_like(sample['lq'][6:9], 50 / 255))
    assert bool(sample['encoded']) and float(sample['gain']) == 1.0 and float(sample['dimming']) == 1.0


def test_rendering_leaves_encoded_samples_as_they_are(scenes):
    sample = dataset(scenes)[0]
    batch = {key: value[None] for key, value in sample.items() if torch.is_tensor(value)}
    rendered = render_srgb(batch['gt'], batch['gain'], batch['color_matrix'], batch['encoded'])
    assert torch.equal(rendered, batch['gt'])


def test_samples_are_deterministic_per_seed_and_image(scenes):
    first, again = dataset(scenes), dataset(scenes)
    other_seed = dataset(scenes, seed=1)
    fewer = dataset(scenes, max_images=1)
    for index in range(len(fewer)):
        assert torch.equal(first[index]['lq'], again[index]['lq'])
        assert torch.equal(first[index]['lq'], fewer[index]['lq'])  # an image's noise ignores the other images
        assert not torch.equal(first[index]['lq'][:3], other_seed[index]['lq'][:3])
        assert torch.equal(first[index]['lq'][3:6], other_seed[index]['lq'][3:6])  # the flash has no noise
    assert first[0]['key'].endswith('_sigma25')


def test_burst_and_noflash_modes(scenes):
    burst = dataset(scenes, input_mode='noflash_burst')[2]
    assert torch.allclose(burst['lq'][9:12], torch.full_like(burst['lq'][9:12], 75 / 255))
    assert not torch.equal(burst['lq'][:3], burst['lq'][3:6])
    single = dataset(scenes, input_mode='noflash')[2]
    assert single['lq'].shape[0] == 6 and torch.equal(single['lq'][:3], burst['lq'][:3])


def test_clipping_is_an_option(scenes):
    plain, clipped = dataset(scenes)[2], dataset(scenes, awgn_clip=True)[2]
    assert plain['lq'][:3].min() < 0 and plain['lq'][:3].max() > 1  # sigma 75: RIDFnF's unclipped noise
    torch.testing.assert_close(clipped['lq'][:3], plain['lq'][:3].clamp(0, 1), rtol=0, atol=0)
    assert torch.equal(clipped['lq'][3:], plain['lq'][3:])


def test_training_samples_draw_one_of_the_sigmas(scenes):
    data = dataset(scenes, phase='train', batch_size_per_gpu=1)
    torch.manual_seed(3)
    drawn = {float(data[i % len(data)]['awgn_sigma']) for i in range(30)}
    assert drawn == set(SIGMAS)


@pytest.mark.parametrize('options, needle', [
    ({'dimming_factors': [50]}, 'dimming_factors'),
    ({'noise': {'sig_read': 0.01, 'sig_shot': 0.01}}, 'noise'),
    ({'misalignment': {'enabled': True}}, 'misalignment.enabled'),
    ({'reference': 'flash'}, 'reference'),
    ({'isp': {'jpeg_quality': 90}}, 'isp'),
    ({'awgn_sigmas': [0]}, 'awgn_sigmas'),
    ({'awgn_clip': 'yes'}, 'awgn_clip'),
    ({'phase': 'train', 'crop_size': 'full', 'batch_size_per_gpu': 1}, 'crop_size: full'),
])
def test_options_of_the_other_protocol_are_refused(scenes, options, needle):
    with pytest.raises(ConfigError, match=needle.replace('.', r'\.')):
        dataset(scenes, **options)


@pytest.mark.parametrize('key, value', [('awgn_sigmas', [25]), ('awgn_clip', True)])
def test_awgn_options_without_the_degradation_are_refused(scenes, key, value):
    with pytest.raises(ConfigError, match=f'{key} is an option of degradation: srgb_awgn'):
        FlashNoFlashDataset({'name': 'x', 'phase': 'test', 'dataroot': str(scenes), 'crop_size': 64, key: value})


def test_ridfnf_split_files_are_read_and_select_scenes():
    test, val = faid.load_split('ridfnf', 'test'), faid.load_split('ridfnf', 'val')
    assert len(test) == len(set(test)) == 256 and len(val) == len(set(val)) == 256 and not set(test) & set(val)
    assert test[:2] == ['Objects_012', 'Objects_022'] and val[-1] == 'Toys_397'
    names = sorted({test[0], test[1], val[0], 'Rooms_999', faid.load_test_split()[0]})
    assert select_names(names, 'test', split='ridfnf') == sorted(test[:2])
    assert select_names(names, 'val', split='ridfnf') == [val[0]]
    train = select_names(names, 'train', split='ridfnf')
    assert train == sorted({'Rooms_999', faid.load_test_split()[0]} - set(test) - set(val))
    assert select_names(names, 'test') == [n for n in names if n in set(faid.load_test_split())]  # paper unchanged
    with pytest.raises(ValueError, match='split must be one of'):
        faid.load_split('nope')


def test_frozen_set_round_trips(scenes, tmp_path):
    options = {'dataroot': str(scenes), 'crop_size': 'full', 'subset': 'all', 'degradation': 'srgb_awgn',
               'awgn_sigmas': SIGMAS}
    dataset_opt, output = freeze_request(output=str(tmp_path / 'frozen'), **options)
    freeze(dataset_opt, output, progress=False)
    for mode in ('flash_noflash', 'noflash_burst', 'noflash'):
        live = dataset(scenes, crop_size='full', input_mode=mode)
        frozen = FlashNoFlashDataset({'name': 'f', 'phase': 'test', 'frozen_root': str(output), 'input_mode': mode})
        assert len(frozen) == len(live) == 9
        for index in range(len(live)):
            a, b = live[index], frozen[index]
            for key, value in a.items():
                assert (torch.equal(value, b[key]) if torch.is_tensor(value) else value == b[key]), (mode, key)


def save_checkpoint(folder, network_opt):
    torch.manual_seed(0)
    (folder / 'models').mkdir(parents=True)
    (folder / f'{folder.name}.yml').write_text(yaml.safe_dump({'name': folder.name, 'network_g': network_opt}))
    torch.save({'params': build_network(network_opt).state_dict()}, folder / 'models' / 'net_g_latest.pth')
    return folder / 'models' / 'net_g_latest.pth'


def test_benchmark_reports_per_sigma(scenes, tmp_path):
    dataset_opt, output = freeze_request(output=str(tmp_path / 'frozen'), dataroot=str(scenes), crop_size=64,
                                         subset='all', degradation='srgb_awgn', awgn_sigmas=[25, 75])
    freeze(dataset_opt, output, progress=False)
    net = save_checkpoint(tmp_path / 'experiments' / 'tiny', {
        'type': 'DeepFnF', 'in_channels': 12, 'width': 0.0625, 'num_basis': 4, 'kernel_size': 5, 'upsample': 2})
    benchmark.main([f'tiny={net}', '--test-set', str(output), '--out', str(tmp_path / 'report'), '--quiet',
                    '--strips', '1'])
    table = (tmp_path / 'report' / 'table.md').read_text()
    assert '| method | sigma 25 (PSNR' in table and 'sigma 75 (PSNR' in table and 'dimmed' not in table
    with open(tmp_path / 'report' / 'table.csv') as handle:
        rows = list(csv.DictReader(handle))
    noisy = {float(r['awgn_sigma']): float(r['psnr']) for r in rows if r['method'] == 'noisy input'}
    # the noisy input's PSNR is that of its Gaussian noise, raised a little by clipping to [0, 1]
    assert 20 * math.log10(255 / 25) - 0.5 < noisy[25] < 20 * math.log10(255 / 25) + 1.5
    assert 20 * math.log10(255 / 75) - 0.5 < noisy[75] < 20 * math.log10(255 / 75) + 3
    assert {r['method'] for r in rows} >= {'tiny', *benchmark.REFERENCES}
    assert all(int(r['images']) == 3 for r in rows)
    assert len(list((tmp_path / 'report' / 'strips').glob('*sigma75.png'))) == 0  # strips at the level nearest 50
    assert len(list((tmp_path / 'report' / 'strips').glob('*.png'))) == 1


def test_make_awgn_sample_checks_its_inputs():
    clean = torch.full((3, 4, 4), 0.5)
    with pytest.raises(ValueError, match='sigma must be > 0'):
        make_awgn_sample(clean, clean, sigma=0)
    with pytest.raises(ValueError, match='differ in size'):
        make_awgn_sample(clean, clean[:, :2], sigma=25)
