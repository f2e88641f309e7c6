"""fnf-benchmark end to end: two tiny models and the references on a 4-image frozen set."""
import csv

import pytest
import torch
import yaml

import fnf_basicsr  # noqa: F401
from basicsr.archs import build_network
from fnf_basicsr import benchmark
from fnf_basicsr.data.synthetic import generate_split
from conftest import load_script

TINY = {'DeepFnF': {'type': 'DeepFnF', 'in_channels': 12, 'width': 0.0625, 'num_basis': 4, 'kernel_size': 5,
                    'upsample': 2},
        'Direct': {'type': 'DirectUNet', 'in_channels': 12, 'width': 0.0625},
        'No-flash': {'type': 'DeepFnF', 'in_channels': 6, 'use_scale_map': False, 'width': 0.0625, 'num_basis': 4,
                     'kernel_size': 5, 'upsample': 2}}


def save_experiment(root, name, network_opt):
    torch.manual_seed(0)
    folder = root / 'experiments' / name
    (folder / 'models').mkdir(parents=True, exist_ok=True)
    mode = 'noflash' if network_opt['in_channels'] == 6 else 'flash_noflash'
    (folder / f'{name}.yml').write_text(yaml.safe_dump({'name': name, 'network_g': network_opt,
                                                        'datasets': {'train': {'input_mode': mode}}}))
    torch.save({'params': build_network(network_opt).state_dict()}, folder / 'models' / 'net_g_latest.pth')
    return folder / 'models' / 'net_g_latest.pth'


@pytest.fixture(scope='module')
def frozen_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench')
    generate_split(root / 'scenes', 'test', num_scenes=4, size=96, workers=1, progress=False)
    freeze = load_script('freeze_testset')
    common = ['--dataroot', str(root / 'scenes'), '--crop-size', '64', '--subset', 'all', '--quiet']
    freeze.main(common + ['--output', str(root / 'test'), '--dimming-factors', '50', '12.5'])
    freeze.main(common + ['--output', str(root / 'sweep'), '--displacement-bins', '0', '2', '4'])
    return root


def run(frozen_sets, tmp_path, *extra):
    checkpoints = [f'{label}={save_experiment(tmp_path, label.lower().replace("-", ""), opt)}' for label, opt in TINY.items()]
    benchmark.main(checkpoints + ['--test-set', str(frozen_sets / 'test'), '--sweep-set', str(frozen_sets / 'sweep'),
                                  '--out', str(tmp_path / 'report'), '--quiet', *extra])
    return tmp_path / 'report'


def test_writes_table_plot_and_strips(frozen_sets, tmp_path):
    report = run(frozen_sets, tmp_path)
    table = (report / 'table.md').read_text()
    assert '50x dimmed' in table and '12.5x dimmed' in table
    for label in ['DeepFnF', 'Direct', 'No-flash', *benchmark.REFERENCES]:
        assert f'| {label} |' in table
    assert table.index('*No-flash input only*') < table.index('| No-flash |') < table.index('*Flash and no-flash')
    with open(report / 'table.csv') as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 * 2 and all(int(r['images']) == 4 for r in rows)
    assert all(0 < float(r['psnr']) < 60 and -1 <= float(r['ssim']) <= 1 for r in rows)
    noisy = {float(r['dimming']): float(r['psnr']) for r in rows if r['method'] == 'noisy input'}
    assert noisy[12.5] > noisy[50]  # less dimming, less noise
    assert (report / 'fig3_displacement.png').stat().st_size > 10_000
    strips = sorted((report / 'strips').glob('*.png'))
    assert len(strips) == 2 and all(p.stat().st_size > 10_000 for p in strips)


def test_refuses_to_overwrite_and_resumes_from_cache(frozen_sets, tmp_path):
    report = run(frozen_sets, tmp_path)
    with pytest.raises(SystemExit, match='already exists'):
        run(frozen_sets, tmp_path)
    cache = report / 'per_image' / 'DeepFnF.jsonl'
    lines = cache.read_text().splitlines()
    cache.write_text('\n'.join(lines[:-3]) + '\n')  # as if interrupted three images before the end
    before = (report / 'table.csv').read_text()
    run(frozen_sets, tmp_path, '--overwrite')
    assert sorted(cache.read_text().splitlines()) == sorted(lines)
    assert (report / 'table.csv').read_text() == before
