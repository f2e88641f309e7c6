"""scripts/profiling/gpu_check.sh: its CPU dry run end to end, its parsers and step runner; and the CUDA tests it
runs on a GPU (marked ``cuda``, skipped without a CUDA device)."""
import contextlib
import json
import math
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
import yaml

from conftest import SCRIPTS_DIR
from fnf_basicsr.tools import gpu_check

SCRIPT = SCRIPTS_DIR / 'profiling' / 'gpu_check.sh'
STEPS = ['nvidia-smi', 'install', 'environment', 'cuda-tests', 'synthetic-data', 'training-speed', 'lmdb',
         'lmdb-training-speed', 'train', 'resume', 'denoise', 'kernel-filter']
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


# --- the CPU dry run, end to end -------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def dry_run(tmp_path_factory):
    """One CPU dry run of the shell script (install skipped: this environment is the installed one)."""
    root = tmp_path_factory.mktemp('gpu_check')
    report = root / 'report.md'
    env = {**os.environ, 'PYTHON': sys.executable, 'OMP_NUM_THREADS': '1'}
    proc = subprocess.run(['bash', str(SCRIPT), '--device', 'cpu', '--skip-install', '--report', str(report),
                           '--work-dir', str(root / 'work')], env=env, capture_output=True, text=True, timeout=600)
    steps = json.loads(report.with_suffix('.json').read_text())['steps'] if report.exists() else []
    return SimpleNamespace(proc=proc, report=report, steps={step['name']: step for step in steps})


def test_dry_run_runs_every_step_and_reports_its_exit_code(dry_run):
    assert dry_run.proc.returncode == 0, dry_run.proc.stdout[-3000:] + dry_run.proc.stderr[-3000:]
    assert list(dry_run.steps) == STEPS
    text = dry_run.report.read_text()
    for name, step in dry_run.steps.items():
        if name == 'install' or (name == 'nvidia-smi' and step['status'] == 'skipped'):
            assert step['status'] == 'skipped' and step['exit_code'] is None
            continue
        assert step['status'] == 'ok' and step['exit_code'] == 0 and step['seconds'] > 0, step
        assert f'| {name} | {step["title"]} | ok | 0 | {step["seconds"]:.1f} s |' in text
        assert f'### {name}: ok' in text and f'- command: `{step["commands"][0]}`' in text
    assert '| install | install the project | skipped (--skip-install) | - | - |' in text


def test_dry_run_measures_what_the_issue_asks(dry_run):
    numbers = {name: step['numbers'] for name, step in dry_run.steps.items()}
    assert numbers['environment']['torch'] == torch.__version__
    assert numbers['environment']['mixed_precision_auto']
    tests = numbers['cuda-tests']
    assert tests.get('failed', 0) == 0 and tests.get('passed', 0) + tests.get('skipped', 0) >= 4
    for name in ('training-speed', 'lmdb-training-speed'):
        (row,) = numbers[name]['rows']
        assert row['it_per_s'] > 0 and row['samples_per_s_with_data'] > 0 and row['batch_crop'] == '1 x 64'
    assert numbers['lmdb']['records'] == 2 * numbers['lmdb']['crops'] == numbers['lmdb']['verified']
    assert numbers['train'] == {**numbers['train'], 'start_iter': 0, 'last_logged_iter': 4, 'finished': True}
    assert numbers['resume'] == {**numbers['resume'], 'resumed_from': 4, 'last_logged_iter': 6, 'finished': True}
    assert numbers['denoise']['wall_s'] > 0 and numbers['denoise']['tiles'] == 2
    rows = numbers['kernel-filter']['rows']
    assert [row['method'] for row in rows] == ['direct', 'fourier']
    assert all(row['max_rel_error'] < 1e-5 and row['forward_backward_ms'] > 0 for row in rows)


def test_dry_run_report_has_the_tables(dry_run):
    text = dry_run.report.read_text()
    for heading in ('## Summary', '## Environment', '## Paper configuration: training speed',
                    '## Fed from an LMDB of raw records', '## basicsr train under torchrun, then --auto_resume',
                    '## fnf-denoise, full-size DeepFnF', '## Kernel filter: FFT against direct'):
        assert heading in text
    assert '| bf16 | channels_last | 1 x 64 |' in text and '| resume | 4 | 4 | 6 |' in text
    assert dry_run.steps['train']['numbers']['interval_s_per_iter'] > 0


# --- the step runner ------------------------------------------------------------------------------------------

def step(name, *commands, **extra):
    return gpu_check.Step(name, f'the {name} step', [list(command) for command in commands], **extra)


def run(steps, tmp_path, budget=60, timeout=30):
    return gpu_check.run_steps(steps, budget, timeout, dict(os.environ), tmp_path)


def test_a_failing_step_stops_neither_its_later_commands_nor_the_next_steps(tmp_path):
    results = run([step('fails', [sys.executable, '-c', 'raise SystemExit(3)'], [sys.executable, '-c', 'print(1)']),
                   step('runs', [sys.executable, '-c', 'print("second")'])], tmp_path)
    assert [(r.status, r.exit_code) for r in results] == [('failed', 3), ('ok', 0)]
    assert len(results[0].commands) == 2 and 'print(1)' not in results[0].tail  # the step's own commands do stop
    assert results[1].tail.endswith('second')


def test_a_timeout_kills_the_whole_process_group(tmp_path):
    pid_file = tmp_path / 'child.pid'
    script = f'sleep 60 & echo $! > {pid_file}; wait'
    start = time.perf_counter()
    (result,) = run([step('hangs', ['bash', '-c', script])], tmp_path, timeout=2)
    assert result.status == 'timed out' and result.exit_code != 0 and time.perf_counter() - start < 15
    child = int(pid_file.read_text())
    for _ in range(50):  # the orphaned sleep is reaped by init shortly after the kill
        if not _alive(child):
            break
        time.sleep(0.1)
    assert not _alive(child)


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().split()[2] != 'Z'
    except FileNotFoundError:
        return False


def test_parallel_steps_wait_for_the_steps_they_need_and_report_in_plan_order(tmp_path):
    made = tmp_path / 'made'
    steps = [step('slow', ['bash', '-c', f'sleep 1; touch {made}']),
             step('needs-slow', ['test', '-f', str(made)], after=('slow',)),
             step('free', ['bash', '-c', f'test -e {made} && echo made || echo absent'])]
    results = gpu_check.run_steps(steps, 60, 30, dict(os.environ), tmp_path, jobs=2)
    assert [(r.name, r.status) for r in results] == [('slow', 'ok'), ('needs-slow', 'ok'), ('free', 'ok')]
    assert results[2].tail.endswith('absent')  # it ran beside the slow step, not after it
    with pytest.raises(ValueError, match='wait on each other'):
        gpu_check.run_steps([step('a', ['true'], after=('b',)), step('b', ['true'], after=('a',))], 60, 30,
                            dict(os.environ), tmp_path, jobs=2)


def test_missing_command_and_unreadable_output_fail_the_step(tmp_path):
    def parse(text):
        raise ValueError('no table')
    results = run([step('missing', ['no-such-command-for-gpu-check']),
                   step('garbled', [sys.executable, '-c', 'print("?")'], parse=parse)], tmp_path)
    assert (results[0].status, results[0].exit_code) == ('failed', 127)
    assert (results[1].status, results[1].exit_code) == ('failed', 0)
    assert 'output not understood: no table' in results[1].note


def test_spent_budget_leaves_later_steps_not_run_and_skips_stay_skipped(tmp_path):
    results = run([step('late', [sys.executable, '-c', 'print(1)']),
                   step('flagged', ['true'], skip='--skip-install')], tmp_path, budget=0)
    assert [(r.status, r.exit_code) for r in results] == [('not run', None), ('skipped', None)]
    report = gpu_check.render_report(results, {'device_label': 'cpu', 'command': 'gpu_check.sh', 'device': 'cpu',
                                               'started': 'now', 'elapsed_s': 0, 'budget_s': 0, 'work': 'w'})
    assert '| late | the late step | not run (budget of 0 s spent) | - | - |' in report
    assert '| flagged | the flagged step | skipped (--skip-install) | - | - |' in report


def test_option_files_of_the_gpu_run_keep_the_paper_configuration(tmp_path):
    sizes = gpu_check.SIZES['cuda']
    files = gpu_check.derived_options(tmp_path, 'cuda', sizes, tmp_path / 'train.lmdb')
    paper = yaml.safe_load(gpu_check.PAPER_OPTIONS.read_text())
    lmdb, train = (yaml.safe_load(files[name].read_text()) for name in ('lmdb', 'train'))
    assert lmdb['datasets']['train'] == {**paper['datasets']['train'], 'dataroot': str(tmp_path / 'train.lmdb')}
    assert lmdb['network_g'] == train['network_g'] == paper['network_g'] and lmdb['train'] == paper['train']
    data = train['datasets']['train']
    assert 'val' not in train and 'io_backend' not in data and train['num_gpu'] == 1
    assert data['num_worker_per_gpu'] == 4 and data['crop_size'] == 448
    assert data['dataset_enlarge_ratio'] * sizes.scenes >= sizes.resume_iters  # one epoch: workers start once
    assert train['train']['total_iter'] == train['logger']['save_checkpoint_freq'] == 50


def test_offline_install_takes_the_wheels_then_this_checkout_without_dependencies(tmp_path):
    for name in ('basicsr-1.4.2-py3-none-any.whl', 'lmdb-3.0.0-cp312-cp312-manylinux_2_28_x86_64.whl'):
        (tmp_path / name).touch()
    install = gpu_check.install_step(SimpleNamespace(wheelhouse=tmp_path, skip_install=False))
    wheels, project, check = install.commands
    assert wheels[1:] == ['-m', 'pip', 'install', '--no-index', '--no-deps', *sorted(map(str, tmp_path.iterdir()))]
    assert project[1:] == ['-m', 'pip', 'install', '--no-index', '--no-deps', '--no-build-isolation', '-e',
                           str(gpu_check.REPO)]
    assert 'import json, torch, fnf_basicsr, basicsr' in check[2] and install.skip is None
    readme = gpu_check.install_step(SimpleNamespace(wheelhouse=None, skip_install=True))
    assert readme.commands[0][1:] == ['-m', 'pip', 'install', '-e', f'{gpu_check.REPO}[dev]']
    assert readme.skip == '--skip-install'


def test_cuda_tests_step_runs_the_marked_files_only():
    command = gpu_check.cuda_test_command()
    assert command[command.index('-m', 2) + 1] == 'cuda'
    assert 'tests/test_gpu_check.py' in command and 'tests/test_cli.py' not in command


# --- the parsers ----------------------------------------------------------------------------------------------

TRAINING_TABLE = """options/train_fnf.yml cuda fp32 nchw fused Adam: 0.061 s/iter
| option file | network | parameters | batch x crop | device | precision | memory format | Adam | runs \
| s/iter (compute) | it/s (compute) | s/iter (with data) | samples/s (with data) | speed-up (compute) | peak memory |
|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
| `options/train_fnf.yml` (synthetic data) | DeepFnF | 78,471,033 | 1 x 448 | cuda | fp32 | nchw | fused | 1 | 0.061 \
| 16.39 | 0.070 | 14.29 | 1.00x | 5120 MB (CUDA) |
| `options/train_fnf.yml` (synthetic data) | DeepFnF | 78,471,033 | 1 x 448 | cuda | bf16 | channels_last | fused | 1 \
| 0.025 | 40.00 | 0.030 | 33.33 | 2.44x | 3072 MB (CUDA) |

CPU: some CPU, 1 threads
"""


def test_training_profile_table_is_read_row_by_row():
    rows = gpu_check.parse_training_profile(TRAINING_TABLE)['rows']
    assert [(r['precision'], r['memory_format'], r['it_per_s'], r['peak_mb'], r['peak_kind']) for r in rows] == [
        ('fp32', 'nchw', 16.39, 5120.0, 'CUDA'), ('bf16', 'channels_last', 40.0, 3072.0, 'CUDA')]
    assert rows[1]['samples_per_s_with_data'] == 33.33 and rows[1]['batch_crop'] == '1 x 448'
    report = '\n'.join(gpu_check._rate_table(rows))
    assert '| fp32 | nchw | 1 x 448 | 16.39 | 0.0610 | 0.0700 | 14.29 | 5120 MB (CUDA) | no | no |' in report
    assert '| bf16 | channels_last | 1 x 448 | 40.00 | 0.0250 | 0.0300 | 33.33 | 3072 MB (CUDA) | yes | no |' in report
    with pytest.raises(ValueError, match='no result table'):
        gpu_check.parse_training_profile('Traceback (most recent call last): ...')


def test_training_log_of_a_resumed_run():
    line = '2026-12-04 18:22:{} INFO: [gpu_c..][epoch:  0, iter:{:>8}, lr:(1.000e-04,)] [eta: 0:00:00, time (data): {}'
    log = '\n'.join(["2026-12-04 18:22:00,000 INFO: Resuming training from epoch: 0, iter: 50.",
                     "2026-12-04 18:22:00,001 INFO: Start training from epoch: 0, iter: 50",
                     line.format('01,000', 55, '0.300 (0.010)] l_pix: 1'),
                     line.format('01,400', 60, '0.081 (0.002)] l_pix: 1'),
                     "2026-12-04 18:22:01,500 INFO: Saving models and training states."])
    assert gpu_check.parse_training_log(log) == {'start_iter': 50, 'resumed_from': 50, 'last_logged_iter': 60,
                                                 's_per_iter': 0.081, 'data_s_per_iter': 0.002,
                                                 'interval_s_per_iter': 0.08, 'finished': False}
    assert gpu_check.parse_training_log(log.replace('iter:      60', 'iter:   1,060'))['last_logged_iter'] == 1060
    with pytest.raises(ValueError, match='did not start'):
        gpu_check.parse_training_log('RuntimeError: NCCL error')


def test_denoise_lmdb_generation_and_pytest_lines():
    denoise = ('4000x3000 pair (12.0 MP), full-width DeepFnF (random weights), tile 512, overlap 64: 63 tiles, two '
               'passes\ncuda: wall 21.5 s, CPU 30.2 s, peak RSS 3.10 GiB, CUDA peak allocated 7.25 GiB (torch ...)')
    assert gpu_check.parse_denoise(denoise) == {'wall_s': 21.5, 'cpu_s': 30.2, 'peak_rss_gib': 3.1,
                                                'cuda_peak_gib': 7.25, 'width': 4000, 'height': 3000,
                                                'megapixels': 12.0, 'tiles': 63}
    result = gpu_check.Result('denoise', 'fnf-denoise', [], 'ok', numbers=gpu_check.parse_denoise(denoise))
    assert '| 4000x3000 (12.0 MP) | 63 | 21.5 s | 30.2 s | 3.10 GiB | 7.25 GiB |' in gpu_check._denoise_section(
        {'denoise': result})
    lmdb = 'x/train.lmdb: 8 scenes, 72 crops, 144 records (151.9 MiB, raw); verified 144 records bit-exact'
    assert gpu_check.parse_lmdb(lmdb) == {'scenes': 8, 'crops': 72, 'records': 144, 'mib': 151.9, 'encoding': 'raw',
                                          'verified': 144}
    generation = 'wrote 8 scenes (Synth_train_000000 .. Synth_train_000007) of 512x512 to d in 9.5 s (1.19 s per scene)'
    assert gpu_check.parse_generation(generation) == {'scenes': 8, 'size': 512, 'seconds': 9.5}
    assert gpu_check.parse_pytest_summary('F.s\n1 failed, 4 passed, 1 skipped, 2 errors in 9.1s') == {
        'failed': 1, 'passed': 4, 'skipped': 1, 'error': 2}
    for parse in (gpu_check.parse_denoise, gpu_check.parse_lmdb, gpu_check.parse_generation,
                  gpu_check.parse_pytest_summary, gpu_check.parse_nvidia_smi, gpu_check.parse_probe):
        with pytest.raises(ValueError):
            parse('Killed')


def test_nvidia_smi_banner_and_probe_lines():
    smi = """+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 580.159.03             Driver Version: 580.159.03     CUDA Version: 13.0     |
|-----------------------------------------+------------------------+----------------------+
|   0  NVIDIA H200                    On  |   00000000:18:00.0 Off |                    0 |
| N/A   29C    P0             76W /  700W |       0MiB / 143771MiB |      0%      Default |"""
    assert gpu_check.parse_nvidia_smi(smi) == {'driver': '580.159.03', 'cuda': '13.0', 'gpus': ['NVIDIA H200']}
    text = f'warning: x\n{gpu_check.PROBE_TAG}{{"a": 1}}\n{gpu_check.PROBE_TAG}{{"a": 2}}\n'
    assert gpu_check.parse_probe(text) == {'a': 2}


# --- CUDA paths: skipped without a GPU; gpu_check.sh runs them with -m cuda -----------------------------------

@contextlib.contextmanager
def exact_float32():
    """cuDNN and cuBLAS in true float32 (PyTorch lets cuDNN convolutions use TF32 by default)."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize('method', ['direct', 'fourier'])
def test_two_scale_filter_on_cuda_matches_float64_with_its_gradients(method):
    from fnf_basicsr.ops.kernel_filter import two_scale_filter
    inputs = gpu_check._filter_inputs(128, 8)
    reference = [tensor.double().requires_grad_(True) for tensor in inputs]
    expected = two_scale_filter(*reference, 4, method='direct')
    expected.square().sum().backward()
    on_cuda = [tensor.cuda().requires_grad_(True) for tensor in inputs]
    with exact_float32():
        output = two_scale_filter(*on_cuda, 4, method=method)
        output.square().sum().backward()
    assert output.device.type == 'cuda' and output.dtype == torch.float32
    for got, want in [(output, expected)] + [(a.grad, b.grad) for a, b in zip(on_cuda, reference)]:
        got, want = got.detach().double().cpu(), want.detach()
        assert float((got - want).abs().max() / want.abs().max()) < 1e-5


@pytest.mark.cuda
@needs_cuda
def test_deepfnf_forward_on_cuda_matches_cpu():
    from fnf_basicsr.archs.deepfnf_arch import DeepFnF
    torch.manual_seed(0)
    net = DeepFnF(width=0.125, num_basis=8).eval()
    lq = torch.rand(1, 12, 64, 64)
    with torch.no_grad(), exact_float32():
        expected = net(lq)
        output = net.cuda()(lq.cuda()).cpu()
    assert float((output - expected).abs().max() / expected.abs().max()) < 1e-4


@pytest.mark.cuda
@needs_cuda
def test_fnf_model_trains_on_cuda_in_bf16_channels_last_with_fused_adam(tmp_path):
    from basicsr.data import build_dataset
    from basicsr.models import build_model
    from fnf_basicsr.data.synthetic import generate_split
    generate_split(tmp_path / 'scenes', 'train', num_scenes=1, size=96, workers=1, progress=False)
    data = build_dataset({'name': 'scenes', 'type': 'FlashNoFlashDataset', 'phase': 'val', 'crop_size': 64,
                          'dataroot': str(tmp_path / 'scenes'), 'dimming_factors': [20], 'exclude_test_split': False})
    experiments = tmp_path / 'experiments'
    model = build_model({
        'name': 'cuda', 'model_type': 'FnFModel', 'is_train': True, 'num_gpu': 1, 'dist': False, 'rank': 0,
        'world_size': 1, 'network_g': {'type': 'DeepFnF', 'width': 0.125, 'num_basis': 8},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, **{key: str(experiments / key) for key in (
            'experiments_root', 'models', 'training_states', 'visualization', 'log')}},
        'train': {'optim_g': {'type': 'Adam', 'lr': 1e-4, 'fused': True}, 'mixed_precision': 'bf16',
                  'channels_last': True, 'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'pixel_opt': {'type': 'MSELoss', 'loss_weight': 1.0},
                  'gradient_opt': {'type': 'GradientL1Loss', 'loss_weight': 0.5}}})
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data(torch.utils.data.default_collate([data[0]]))
    model.optimize_parameters(1)
    assert all(math.isfinite(value) and value > 0 for value in model.log_dict.values())
    assert all(p.is_cuda for p in model.net_g.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    convolution = next(m for m in model.net_g.modules() if isinstance(m, torch.nn.Conv2d))
    assert convolution.weight.is_contiguous(memory_format=torch.channels_last)
