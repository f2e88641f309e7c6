"""fnf-benchmark end to end: two tiny models and the references on a 4-image frozen set."""
import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import yaml
from conftest import write_release_testset

import fnf_basicsr  # noqa: F401
from basicsr.archs import build_network
from fnf_basicsr import benchmark
from fnf_basicsr.data.synthetic import generate_split
from fnf_basicsr.data.frozen_writer import freeze, freeze_request
from fnf_basicsr.inference import release
from fnf_basicsr.tools import convert_release_weights

TINY = {'DeepFnF': {'type': 'DeepFnF', 'in_channels': 12, 'width': 0.0625, 'num_basis': 4, 'kernel_size': 5,
                    'upsample': 2},
        'Direct': {'type': 'DirectUNet', 'in_channels': 12, 'width': 0.0625},
        'No-flash': {'type': 'DeepFnF', 'in_channels': 6, 'use_scale_map': False, 'width': 0.0625, 'num_basis': 4,
                     'kernel_size': 5, 'upsample': 2}}


def save_experiment(root, name, network_opt):
    torch.manual_seed(0)
    folder = root / 'experiments' / name
    (folder / 'models').mkdir(parents=True, exist_ok=True)
    mode = 'noflash' if network_opt.get('in_channels') == 6 else 'flash_noflash'
    (folder / f'{name}.yml').write_text(yaml.safe_dump({'name': name, 'network_g': network_opt,
                                                        'datasets': {'train': {'input_mode': mode}}}))
    torch.save({'params': build_network(network_opt).state_dict()}, folder / 'models' / 'net_g_latest.pth')
    return folder / 'models' / 'net_g_latest.pth'


@pytest.fixture(scope='module')
def frozen_sets(tmp_path_factory):
    root = tmp_path_factory.mktemp('bench')
    generate_split(root / 'scenes', 'test', num_scenes=4, size=96, workers=1, progress=False)
    common = {'dataroot': str(root / 'scenes'), 'crop_size': 64, 'subset': 'all'}
    freeze(*freeze_request(output=str(root / 'test'), dimming_factors=[50, 12.5], **common), progress=False)
    freeze(*freeze_request(output=str(root / 'sweep'), displacement_bins=[0, 2, 4], **common), progress=False)
    return root


def run(frozen_sets, tmp_path, *extra):
    checkpoints = [f'{label}={save_experiment(tmp_path, label.lower().replace("-", ""), opt)}'
                   for label, opt in TINY.items()]
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
    assert all(0 < float(r['psnr']) < 60 and -1 <= float(r['ssim_basicsr']) <= 1 for r in rows)
    # Table 1's SSIM (data_range 2) reads higher than BasicSR's on the same images
    assert all(float(r['ssim_release']) > float(r['ssim_basicsr']) for r in rows if r['method'] == 'noisy input')
    assert 'SSIM BasicSR / SSIM release' in table and 'Table 1' in table
    noisy = {float(r['dimming']): float(r['psnr']) for r in rows if r['method'] == 'noisy input'}
    assert noisy[12.5] > noisy[50]  # less dimming, less noise
    assert (report / 'fig3_displacement.png').stat().st_size > 10_000
    strips = sorted((report / 'strips').glob('*.png'))
    assert len(strips) == 2 and all(p.stat().st_size > 10_000 for p in strips)


def fails(capsys, call):
    """Run ``call``; it must exit 2 with one line on stderr (no traceback). Returns the line."""
    with pytest.raises(SystemExit) as exit_info:
        call()
    message = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and len(message) == 1 and 'Traceback' not in message[0]
    return message[0]


def run_one(test_set, tmp_path, checkpoint, *extra):
    """fnf-benchmark on one checkpoint labelled DeepFnF, no references, no sweep."""
    benchmark.main([f'DeepFnF={checkpoint}', '--test-set', str(test_set), '--out', str(tmp_path / 'report'),
                    '--no-references', '--strips', '1', '--quiet', *extra])
    return tmp_path / 'report'


def cache_rows(report, label='DeepFnF'):
    lines = (report / 'per_image' / f'{label}.jsonl').read_text().splitlines()
    assert 'cache' in json.loads(lines[0])  # header: the identity the rows were computed for
    return {row['key']: row for row in map(json.loads, lines[1:])}


def remove_report_files(report):
    for name in ('table.md', 'table.csv', 'fig3_displacement.png'):
        (report / name).unlink(missing_ok=True)
    shutil.rmtree(report / 'strips')


@pytest.fixture
def deepfnf_checkpoint(tmp_path):
    return save_experiment(tmp_path, 'deepfnf', TINY['DeepFnF'])


def test_refuses_to_overwrite_and_resumes_from_cache(frozen_sets, tmp_path, capsys):
    report = run(frozen_sets, tmp_path)
    assert 'table.md already exists' in fails(capsys, lambda: run(frozen_sets, tmp_path))
    cache = report / 'per_image' / 'DeepFnF.jsonl'
    lines = cache.read_text().splitlines()
    original = cache_rows(report)
    kept = json.loads(lines[1])
    kept['psnr'] = 123.0  # a marker: still there after resuming means the row was reused
    # as if killed three rows before the end, in the middle of writing a line
    cache.write_text('\n'.join([lines[0], json.dumps(kept), *lines[2:-3], lines[-3][:25]]))
    remove_report_files(report)
    run(frozen_sets, tmp_path)
    resumed = cache_rows(report)
    assert resumed.keys() == original.keys() and resumed[kept['key']]['psnr'] == 123.0
    assert all(resumed[key] == original[key] for key in original if key != kept['key'])
    assert 'partial last line' in capsys.readouterr().err
    run(frozen_sets, tmp_path, '--overwrite')  # recomputes everything, the marker included
    assert cache_rows(report) == original


def test_retrained_checkpoint_under_the_same_label_is_recomputed(frozen_sets, tmp_path, deepfnf_checkpoint):
    report = run_one(frozen_sets / 'test', tmp_path, deepfnf_checkpoint)
    before = cache_rows(report)
    torch.manual_seed(1)  # "retrained": other weights in the same file
    torch.save({'params': build_network(TINY['DeepFnF']).state_dict()}, deepfnf_checkpoint)
    run_one(frozen_sets / 'test', tmp_path, deepfnf_checkpoint, '--overwrite')
    after = cache_rows(report)
    assert after.keys() == before.keys() and all(after[k]['psnr'] != before[k]['psnr'] for k in before)
    remove_report_files(report)  # same without --overwrite: the cache no longer matches the checkpoint
    torch.manual_seed(0)
    torch.save({'params': build_network(TINY['DeepFnF']).state_dict()}, deepfnf_checkpoint)
    run_one(frozen_sets / 'test', tmp_path, deepfnf_checkpoint)
    assert cache_rows(report) == before


def test_weights_entry_is_part_of_the_cache_key(frozen_sets, tmp_path, deepfnf_checkpoint):
    saved = torch.load(deepfnf_checkpoint, weights_only=True)
    torch.manual_seed(2)
    saved['params_ema'] = build_network(TINY['DeepFnF']).state_dict()
    torch.save(saved, deepfnf_checkpoint)
    report = run_one(frozen_sets / 'test', tmp_path, deepfnf_checkpoint)
    params = cache_rows(report)
    remove_report_files(report)
    run_one(frozen_sets / 'test', tmp_path, deepfnf_checkpoint, '--param-key', 'params_ema')
    ema = cache_rows(report)
    assert all(ema[key]['psnr'] != params[key]['psnr'] for key in params)


@pytest.mark.parametrize('damage', ['middle line', 'header', 'old format', 'binary'])
def test_garbled_cache_is_recomputed_not_a_traceback(frozen_sets, tmp_path, deepfnf_checkpoint, capsys, damage):
    report = run_one(frozen_sets / 'test', tmp_path, deepfnf_checkpoint)
    cache = report / 'per_image' / 'DeepFnF.jsonl'
    original, lines = cache_rows(report), cache.read_text().splitlines()
    damaged = {'middle line': [lines[0], lines[1], '{"key": "x", "psn', *lines[2:]],
               'header': ['{"cache": ', *lines[1:]],
               'old format': lines[1:]}  # today's rows without a header
    if damage == 'binary':
        cache.write_bytes(b'\xff\xfe\x00garbage')
    else:
        cache.write_text('\n'.join(damaged[damage]) + '\n')
    remove_report_files(report)
    run_one(frozen_sets / 'test', tmp_path, deepfnf_checkpoint)
    assert cache_rows(report) == original
    assert str(cache) in capsys.readouterr().err


def test_garbled_manifest_is_one_line_error(frozen_sets, tmp_path, deepfnf_checkpoint, capsys):
    damaged = tmp_path / 'test_copy'
    shutil.copytree(frozen_sets / 'test', damaged)
    manifest = damaged / 'manifest.json'
    manifest.write_text(manifest.read_text()[:40])
    assert 'manifest.json' in fails(capsys, lambda: run_one(damaged, tmp_path, deepfnf_checkpoint))
    assert 'does not exist' in fails(capsys, lambda: run_one(tmp_path / 'absent', tmp_path, deepfnf_checkpoint))


# ---------------------------------------------------------------------------------------------
# The authors' released test set layout, written from our own generator
# ---------------------------------------------------------------------------------------------

def release_scores(path, output):
    """test.py's PSNR and SSIM for one file, restated in NumPy: output / alpha vs ambient, release rendering."""
    from skimage.metrics import structural_similarity
    data = np.load(path)
    color, adapt, alpha = data['color_matrix'][0].astype(np.float64), data['adapt_matrix'][0], float(data['alpha'])

    def render(image):
        xyz = adapt @ np.linalg.solve(color, image.reshape(-1, 3).T)
        rgb = release.RELEASE_XYZ_TO_SRGB.astype(np.float64) @ xyz
        srgb = np.where(rgb < 0.0031308, 12.92 * rgb, 1.055 * np.maximum(rgb, 0.0031308) ** (1 / 2.4) - 0.055)
        srgb = np.where(rgb > 1, 1.055 / 2.4 * (rgb - 1) + 1, srgb)
        return np.clip(srgb.T.reshape(image.shape), 0, 1)

    denoised, ambient = render(output / alpha), render(data['ambient'][0].astype(np.float64))
    psnr = -10 * np.log10(np.mean((denoised - ambient) ** 2))
    ssim = structural_similarity(denoised, ambient, win_size=11, gaussian_weights=True, sigma=1.5,
                                 channel_axis=-1, data_range=2.0)
    return psnr, ssim


def test_release_testset_is_scored_as_testpy(tmp_path):
    from fnf_basicsr.archs.deepfnf_arch import DeepFnF
    testset = write_release_testset(tmp_path / 'data' / 'testset')
    torch.manual_seed(0)
    net = DeepFnF(width=0.0625, num_basis=4, kernel_size=15, upsample=4, **release.RELEASE_CONVENTIONS)
    np.savez(tmp_path / 'model.npz', **release.state_dict_to_release(net.state_dict()))
    convert_release_weights.main([str(tmp_path / 'model.npz'), str(tmp_path / 'authors.pth')])
    benchmark.main(['DeepFnF (authors)=' + str(tmp_path / 'authors.pth'), '--test-set', str(testset),
                    '--out', str(tmp_path / 'report'), '--strips', '1', '--quiet'])
    report = tmp_path / 'report'
    with open(report / 'table.csv') as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({float(r['dimming']) for r in rows}) == [12.5, 25.0, 50.0, 100.0]  # 1 / alpha of each file
    assert all(int(r['images']) == 2 for r in rows) and len(rows) == 4 * 4
    noisy = cache_rows(report, 'noisy_input')
    for key, row in noisy.items():
        level, number = key[len('level'):].split('_')
        path = testset / level / f'{int(number)}.npz'
        psnr, ssim = release_scores(path, np.load(path)['noisy_ambient'][0].astype(np.float64))
        assert row['psnr'] == pytest.approx(psnr, abs=1e-3) and row['ssim_release'] == pytest.approx(ssim, abs=1e-4)
    authors = cache_rows(report, 'DeepFnF__authors_')
    path = testset / '1' / '0.npz'
    lq = benchmark.ReleaseSet(testset).sample(2, 'flash_noflash')['lq']  # level 1, image 0
    with torch.no_grad():
        output = net.eval()(lq[None])[0].permute(1, 2, 0).double().numpy()
    psnr, ssim = release_scores(path, output)
    assert authors['level1_000']['psnr'] == pytest.approx(psnr, abs=1e-3)
    assert authors['level1_000']['ssim_release'] == pytest.approx(ssim, abs=1e-4)
    assert len(list((report / 'strips').glob('*.png'))) == 1


def test_damaged_release_testset_files_are_one_line_errors(tmp_path, deepfnf_checkpoint, capsys):
    testset = write_release_testset(tmp_path / 'testset', images=1, size=32)
    path = testset / '2' / '0.npz'
    arrays = dict(np.load(path))
    del arrays['adapt_matrix']
    np.savez(path, **arrays)
    assert "keys ['adapt_matrix'] missing" in fails(capsys, lambda: run_one(testset, tmp_path, deepfnf_checkpoint))
    path.write_bytes((testset / '1' / '0.npz').read_bytes()[:100])
    assert 'truncated or corrupt' in fails(capsys, lambda: run_one(testset, tmp_path, deepfnf_checkpoint))


def test_scores_basicsr_restorers_that_return_more_channels_than_three(frozen_sets, tmp_path):
    swinir = {'type': 'SwinIR', 'in_chans': 12, 'upscale': 1, 'img_size': 64, 'window_size': 8, 'embed_dim': 12,
              'depths': [1], 'num_heads': [2], 'mlp_ratio': 1, 'upsampler': '', 'resi_connection': '1conv'}
    checkpoint = save_experiment(tmp_path, 'swinir', swinir)
    benchmark.main([f'SwinIR={checkpoint}', '--test-set', str(frozen_sets / 'test'), '--out', str(tmp_path / 'r'),
                    '--quiet'])
    with open(tmp_path / 'r' / 'table.csv') as handle:
        rows = [r for r in csv.DictReader(handle) if r['method'] == 'SwinIR']
    assert len(rows) == 2 and all(0 < float(r['psnr']) < 60 for r in rows)


def test_a_killed_run_resumes_to_the_report_an_uninterrupted_run_writes(frozen_sets, tmp_path):
    checkpoint = save_experiment(tmp_path, 'deepfnf', TINY['DeepFnF'])
    env = {**os.environ, 'OMP_NUM_THREADS': '1'}

    def command(out):
        return [sys.executable, '-m', 'fnf_basicsr.benchmark', f'DeepFnF={checkpoint}', '--test-set',
                str(frozen_sets / 'test'), '--out', str(out), '--quiet']
    subprocess.run(command(tmp_path / 'whole'), env=env, check=True, capture_output=True, timeout=600)
    process = subprocess.Popen(command(tmp_path / 'killed'), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    caches = tmp_path / 'killed' / 'per_image'
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        if any(len(path.read_bytes().splitlines()) >= 4 for path in caches.glob('*.jsonl')):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / 'killed' / 'table.csv').exists() or process.returncode == 0  # no report from a killed run
    subprocess.run(command(tmp_path / 'killed'), env=env, check=True, capture_output=True, timeout=600)
    for name in ('table.csv', 'table.md'):
        assert (tmp_path / 'killed' / name).read_text() == (tmp_path / 'whole' / name).read_text()
    assert not list((tmp_path / 'killed').rglob('.*.tmp'))


class ForeignWithIntermediatesArgument(torch.nn.Module):
    """A plugin's restorer whose forward happens to take return_intermediates but declares no capability."""

    def forward(self, lq, return_intermediates=False):
        assert not return_intermediates, 'asked for intermediates it never declared'
        return 2 * lq[:, :3]


def test_intermediates_are_asked_only_of_networks_that_declare_them():
    lq = torch.rand(1, 12, 32, 32, generator=torch.Generator().manual_seed(0))
    method = benchmark.Method('plugin', ForeignWithIntermediatesArgument(), 'flash_noflash', 'flash_noflash', 'x', {})
    output, parts = method.run(lq)
    assert parts is None and torch.equal(output, 2 * lq[:, :3])
    torch.manual_seed(0)
    deepfnf = build_network(dict(TINY['DeepFnF'])).eval()
    output, parts = benchmark.Method('DeepFnF', deepfnf, 'flash_noflash', 'flash_noflash', 'x', {}).run(lq)
    assert parts is not None and parts['scale_map'] is not None and torch.equal(output, parts['output'])


def test_channels_last_scores_like_the_default_layout(frozen_sets, tmp_path, deepfnf_checkpoint, monkeypatch):
    nchw = cache_rows(run_one(frozen_sets / 'test', tmp_path / 'nchw', deepfnf_checkpoint, '--channels-last', 'off'))
    layouts = []
    real_run = benchmark.Method.run

    def recording_run(self, lq, *args, **kwargs):
        conv = next(m for m in self.net.modules() if isinstance(m, torch.nn.Conv2d))
        layouts.append(conv.weight.is_contiguous(memory_format=torch.channels_last) and conv.weight.shape[-1] > 1)
        return real_run(self, lq, *args, **kwargs)
    monkeypatch.setattr(benchmark.Method, 'run', recording_run)
    channels_last = cache_rows(run_one(frozen_sets / 'test', tmp_path / 'cl', deepfnf_checkpoint, '--channels-last'))
    assert layouts and all(layouts), 'the network must run in channels_last'
    assert channels_last.keys() == nchw.keys()
    for key in nchw:
        assert abs(channels_last[key]['psnr'] - nchw[key]['psnr']) < 1e-3, key


def test_a_reduced_precision_is_cached_apart_from_float32():
    method = benchmark.Method('DeepFnF', torch.nn.Identity(), 'flash_noflash', 'flash_noflash', 'x', {'k': 1})
    method.use_runtime('fp32', False, 'cpu')
    assert method.identity == {'k': 1}  # float32 results share the cache of earlier runs
    method.use_runtime('bf16', False, 'cpu')
    assert method.identity == {'k': 1, 'precision': 'bf16'}


# --- labels, report folders and sets: refused in one line before any scoring (issue 20) -------------------------

def copy_set(frozen_sets, tmp_path, name='test'):
    shutil.copytree(frozen_sets / name, tmp_path / name)
    return tmp_path / name


def test_a_label_of_dotdot_with_the_report_in_the_test_set_deletes_nothing(frozen_sets, tmp_path, deepfnf_checkpoint,
                                                                           capsys):
    test_set = copy_set(frozen_sets, tmp_path)
    before = sorted(p.name for p in test_set.iterdir())
    for label, out in (('..', test_set), ('DeepFnF', test_set), ('DeepFnF', test_set / 'report'),
                       ('DeepFnF', tmp_path)):
        line = fails(capsys, lambda: benchmark.main([f'{label}={deepfnf_checkpoint}', '--test-set', str(test_set),
                                                     '--out', str(out), '--no-references', '--quiet']))
        assert ("method label '..'" in line) if label == '..' else f'--out {out}' in line and 'the input' in line
    assert sorted(p.name for p in test_set.iterdir()) == before


@pytest.mark.parametrize('labels, message', [
    (['x/y', 'x y'], "method label 'x/y' holds '/'"),
    (['x y', 'x_y'], "method labels 'x y' and 'x_y' share the report folder 'x_y'"),
    (['Net', 'net'], "method labels 'Net' and 'net' share the report folder"),
    (['.hidden'], "starts with '.'"),
    (['a|b'], "'|' or a control character"),
    (['noisy input'], "'noisy input' and 'noisy input' share"),
], ids=['separator', 'same-folder', 'case', 'dot', 'table-bar', 'reference-name'])
def test_labels_are_plain_names_of_distinct_folders(frozen_sets, tmp_path, deepfnf_checkpoint, capsys, labels,
                                                    message, monkeypatch):
    monkeypatch.setattr(benchmark.Method, 'from_spec', lambda *args: pytest.fail('loaded a checkpoint first'))
    line = fails(capsys, lambda: benchmark.main([f'{label}={deepfnf_checkpoint}' for label in labels] + [
        '--test-set', str(frozen_sets / 'test'), '--out', str(tmp_path / 'r'), '--quiet']))
    assert message in line and not (tmp_path / 'r').exists()


def test_a_sweep_without_displacement_bins_is_refused_before_scoring(frozen_sets, tmp_path, deepfnf_checkpoint,
                                                                      capsys, monkeypatch):
    monkeypatch.setattr(benchmark, 'evaluate', lambda *args: pytest.fail('scored before the check'))
    line = fails(capsys, lambda: run_one(frozen_sets / 'test', tmp_path, deepfnf_checkpoint, '--sweep-set',
                                         str(frozen_sets / 'test')))
    assert 'frozen without displacement bins' in line and '--displacement-bins' in line
    assert not (tmp_path / 'report').exists()


def test_negative_strips_lmdb_test_sets_and_checkpoint_paths_are_one_line_errors(frozen_sets, tmp_path,
                                                                                 deepfnf_checkpoint, capsys):
    assert '--strips must be 0 or more' in fails(capsys, lambda: run_one(frozen_sets / 'test', tmp_path,
                                                                         deepfnf_checkpoint, '--strips', '-1'))
    fake_lmdb = tmp_path / 'train.lmdb'
    fake_lmdb.mkdir()
    (fake_lmdb / 'data.mdb').write_bytes(b'')
    assert 'is an LMDB of training crops, not a frozen test set' in fails(
        capsys, lambda: run_one(fake_lmdb, tmp_path, deepfnf_checkpoint))
    for missing in ('missing.pt', 'models/net_g_5.pth'):
        line = fails(capsys, lambda: run_one(frozen_sets / 'test', tmp_path, tmp_path / missing))
        assert f'checkpoint {tmp_path / missing} does not exist' in line


def test_a_checkpoint_file_of_any_suffix_is_scored(frozen_sets, tmp_path, deepfnf_checkpoint):
    shutil.copy(deepfnf_checkpoint.parents[1] / 'deepfnf.yml', tmp_path)
    pt = tmp_path / 'deepfnf.pt'
    shutil.copy(deepfnf_checkpoint, pt)
    report = run_one(frozen_sets / 'test', tmp_path, pt, '--strips', '0')
    assert '| DeepFnF |' in (report / 'table.md').read_text()
