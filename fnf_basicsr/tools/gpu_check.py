"""One prepared run of every GPU check of the project, written to one markdown report (issue 24).

Steps, each a fresh process with a timeout, run in this order whatever the earlier ones gave:
nvidia-smi, install (as the README says, or offline from a wheelhouse), environment (torch, CUDA, the
GPU, what ``mixed_precision: auto`` picks), the CUDA-marked tests, synthetic scenes, the training
speed of the paper configuration (``scripts/profiling/profile_training.py``: fp32/bf16 x
NCHW/channels_last), an LMDB of raw records and the training speed fed from it with the file's
workers, 50 iterations of ``basicsr train`` under torchrun (``--launcher pytorch``, NCCL) and their
resume to 60, ``fnf-denoise`` on a 12-megapixel pair with the full-size network
(``scripts/profiling/profile_tiling.py``), and the kernel filter's FFT and direct paths (speed,
agreement with a float64 reference). The report (and a JSON twin) is rewritten after every step,
so a run cut short still leaves what it measured.

``--device cpu`` is a dry run of the same steps with tiny sizes and a tiny network, two at a time, to
debug the script where there is no GPU (tests/test_gpu_check.py runs it). ``--device cuda`` is sized to end
within ``--budget`` seconds (default 450) on one H100/H200. docs/gpu_check.md has the details.

This file runs as a plain script too (``scripts/profiling/gpu_check.sh`` does so): the install
step comes before the package can be imported, so only the probes import torch or fnf_basicsr.

Examples:
    # on the GPU machine (offline: wheels for basicsr and lmdb in .whl, see docs/gpu_check.md)
    scripts/profiling/gpu_check.sh --device cuda --wheelhouse .whl --report reports/gpu_check.md
    # the dry run here, on the CPU
    scripts/profiling/gpu_check.sh --device cpu --skip-install --report reports/gpu_check_cpu.md
    # on a machine with network access: the wheels the offline install needs (Python 3.12 by default)
    scripts/profiling/gpu_check.sh --prepare-wheelhouse .whl
"""
import argparse
import concurrent.futures
import dataclasses
import datetime
import glob
import json
import math
import os
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SELF = Path(__file__).resolve()  # probes run it again as a plain script
REPO = SELF.parents[2]
PROBE_TAG = 'GPU_CHECK_JSON '
# Issue 24: the paper's 1.5M iterations in a day need 17.4 iterations/s; 50 is the aim.
GOAL_ITERS_PER_S = 17
AIM_ITERS_PER_S = 50
PAPER_OPTIONS = REPO / 'options' / 'train_fnf.yml'
# What the GPU image lacks of our dependencies (it has torch, numpy, opencv-python-headless, scipy, ...):
# basicsr ships only an sdist (built here into a wheel), lmdb has binary wheels; and the setuptools our
# pyproject.toml needs (PEP 639 license string), since the offline install cannot isolate the build.
WHEELHOUSE_PACKAGES = ('basicsr==1.4.2', 'lmdb', 'setuptools>=77')
# Output lines kept in the report per step (the full logs stay in the work folder).
TAIL_LINES = 40
# A step is not started with less budget than this left: it could not finish anything useful.
MIN_STEP_SECONDS = 5


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each step is on a device: the GPU run fits the budget, the CPU one is a quick dry run."""
    scenes: int
    scene_size: int
    render_workers: int
    iters: int
    warmup: int
    precisions: tuple
    memory_formats: tuple
    lmdb_crop: int
    train_iters: int
    resume_iters: int
    print_freq: int
    denoise_size: tuple  # width, height
    tile: int
    overlap: int
    filter_sizes: tuple
    filter_basis: int
    filter_repeats: int
    budget_s: float
    step_timeout_s: float
    jobs: int
    # CPU only: options replacing the paper file's (tiny network, crop, workers), or None for the file's own.
    tiny: dict = None


SIZES = {
    'cuda': Sizes(scenes=8, scene_size=512, render_workers=8, iters=30, warmup=5, precisions=('fp32', 'bf16'),
                  memory_formats=('nchw', 'channels_last'), lmdb_crop=480, train_iters=50, resume_iters=60,
                  print_freq=10, denoise_size=(4000, 3000), tile=512, overlap=64, filter_sizes=(96, 192, 448),
                  filter_basis=90, filter_repeats=20, budget_s=450, step_timeout_s=240, jobs=1),
    'cpu': Sizes(scenes=2, scene_size=128, render_workers=1, iters=2, warmup=1, precisions=('bf16',),
                 memory_formats=('channels_last',), lmdb_crop=96, train_iters=4, resume_iters=6, print_freq=2,
                 denoise_size=(160, 128), tile=128, overlap=32, filter_sizes=(64,), filter_basis=8,
                 filter_repeats=1, budget_s=600, step_timeout_s=120, jobs=2,
                 # no DataLoader worker: under torchrun each is a spawned process importing torch (seconds here)
                 tiny={'network_g': {'width': 0.125, 'num_basis': 8}, 'crop_size': 64, 'num_worker_per_gpu': 0}),
}


@dataclasses.dataclass
class Step:
    """One check: its commands (run in order until one fails), where, and how to read its output."""
    name: str
    title: str
    commands: list
    cwd: Path = REPO
    parse: object = None  # output text -> dict of key numbers
    skip: str = None  # why the step is not run (a flag, nothing to run)
    after: tuple = ()  # steps whose outputs this one needs (only matters with --jobs > 1)


@dataclasses.dataclass
class Result:
    """What a step gave: the report's row and section (``tail``: the last output lines)."""
    name: str
    title: str
    commands: list
    status: str  # ok, failed, timed out, skipped, not run
    exit_code: int = None
    seconds: float = None
    numbers: dict = dataclasses.field(default_factory=dict)
    tail: str = ''
    note: str = ''


# --- parsing the steps' outputs --------------------------------------------------------------------------------

def parse_markdown_table(text):
    """The rows of the last markdown table in ``text`` as dicts keyed by its header.

    >>> parse_markdown_table('| a | b |\\n|---|---|\\n| 1 | x |')
    [{'a': '1', 'b': 'x'}]
    """
    tables, current = [], []
    for line in text.splitlines() + ['']:
        if line.startswith('|'):
            current.append([cell.strip() for cell in line.strip().strip('|').split('|')])
        elif current:
            tables.append(current)
            current = []
    if not tables or len(tables[-1]) < 2:
        return []
    header, rows = tables[-1][0], [row for row in tables[-1][1:] if not set(''.join(row)) <= set('-: ')]
    return [dict(zip(header, row)) for row in rows]


def parse_training_profile(text):
    """profile_training.py's table -> one dict per variant (precision, memory format, rates, peak memory)."""
    rows = []
    for row in parse_markdown_table(text):
        memory = re.match(r'([\d.]+) MB \((\w+)\)', row['peak memory'])
        rows.append({'precision': row['precision'], 'memory_format': row['memory format'],
                     'batch_crop': row['batch x crop'], 'parameters': row['parameters'],
                     's_per_iter_compute': float(row['s/iter (compute)']), 'it_per_s': float(row['it/s (compute)']),
                     's_per_iter_with_data': float(row['s/iter (with data)']),
                     'samples_per_s_with_data': float(row['samples/s (with data)']),
                     'peak_mb': float(memory.group(1)), 'peak_kind': memory.group(2)})
    if not rows:
        raise ValueError('no result table in the output')
    return {'rows': rows}


def parse_pytest_summary(text):
    """Counts of pytest's last summary line, e.g. {'passed': 3, 'skipped': 1}.

    >>> parse_pytest_summary('...\\n2 passed, 1 skipped, 3 deselected in 4.20s')
    {'passed': 2, 'skipped': 1, 'deselected': 3}
    """
    lines = [line for line in text.splitlines() if re.search(r'\d+ (passed|failed|skipped|error|deselected)', line)]
    if not lines:
        raise ValueError('no pytest summary line')
    return {word.rstrip('s') if word == 'errors' else word: int(count)
            for count, word in re.findall(r'(\d+) (passed|failed|skipped|errors?|deselected|xfailed|xpassed)',
                                          lines[-1])}


def parse_generation(text):
    """generate_synthetic.py's last line -> scenes, size, seconds."""
    match = re.search(r'wrote (\d+) scenes .* of (\d+)x\d+ to .* in ([\d.]+) s', text)
    if not match:
        raise ValueError('no "wrote N scenes" line')
    return {'scenes': int(match.group(1)), 'size': int(match.group(2)), 'seconds': float(match.group(3))}


def parse_lmdb(text):
    """create_lmdb.py's last line -> scenes, crops, records, MiB, encoding, verified records."""
    match = re.search(r': (\d+) scenes, (\d+) crops, (\d+) records \(([\d.]+) MiB, (\w+)\); verified (\d+)', text)
    if not match:
        raise ValueError('no "N scenes, M crops" line')
    scenes, crops, records, mib, encoding, verified = match.groups()
    return {'scenes': int(scenes), 'crops': int(crops), 'records': int(records), 'mib': float(mib),
            'encoding': encoding, 'verified': int(verified)}


def parse_training_log(text):
    """BasicSR's training log -> start and last logged iteration, seconds per iteration, resume point.

    ``s_per_iter`` is BasicSR's own figure, averaged from the first iteration (warm-up included);
    ``interval_s_per_iter`` is the wall time between the last two log lines over their iterations (the
    steady state, logging included), when the lines carry timestamps.

    >>> parse_training_log('Start training from epoch: 0, iter: 0\\n'
    ...                    '[train..][epoch:  0, iter:      10, lr:(1.000e-04,)] [eta: 0:00:01, time (data): 0.250 '
    ...                    '(0.010)] l_pix: 1.0e-01\\nEnd of training. Time consumed: 0:00:03')
    {'start_iter': 0, 'last_logged_iter': 10, 's_per_iter': 0.25, 'data_s_per_iter': 0.01, 'finished': True}
    """
    start = re.findall(r'Start training from epoch: \d+, iter: (\d+)', text)
    logged = re.findall(r'iter:\s*([\d,]+), lr:.*?time \(data\): ([\d.]+) \(([\d.]+)\)', text)
    if not start:
        raise ValueError('training did not start')
    numbers = {'start_iter': int(start[-1])}
    resumed = re.findall(r'Resuming training from epoch: \d+, iter: (\d+)', text)
    if resumed:
        numbers['resumed_from'] = int(resumed[-1])
    if logged:
        iteration, seconds, data_seconds = logged[-1]
        numbers.update(last_logged_iter=int(iteration.replace(',', '')), s_per_iter=float(seconds),
                       data_s_per_iter=float(data_seconds))
    stamped = re.findall(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO: \[.*?iter:\s*([\d,]+), lr:', text,
                         flags=re.MULTILINE)
    if len(stamped) >= 2:
        (start_time, first), (end_time, last) = [(datetime.datetime.strptime(stamp, '%Y-%m-%d %H:%M:%S,%f'),
                                                  int(iteration.replace(',', ''))) for stamp, iteration in stamped[-2:]]
        numbers['interval_s_per_iter'] = round((end_time - start_time).total_seconds() / (last - first), 4)
    numbers['finished'] = 'End of training.' in text
    return numbers


def parse_denoise(text):
    """profile_tiling.py's result line -> wall and CPU seconds, peak RSS and CUDA peak (GiB), tiles."""
    match = re.search(r'(cpu|cuda): wall ([\d.]+) s, CPU ([\d.]+) s, peak RSS ([\d.]+) GiB'
                      r'(?:, CUDA peak allocated ([\d.]+) GiB)?', text)
    if not match:
        raise ValueError('no "wall ... s" result line')
    numbers = {'wall_s': float(match.group(2)), 'cpu_s': float(match.group(3)),
               'peak_rss_gib': float(match.group(4))}
    if match.group(5):
        numbers['cuda_peak_gib'] = float(match.group(5))
    size = re.search(r'(\d+)x(\d+) pair \(([\d.]+) MP\).*?: (\d+) tiles', text)
    if size:
        numbers.update(width=int(size.group(1)), height=int(size.group(2)), megapixels=float(size.group(3)),
                       tiles=int(size.group(4)))
    return numbers


def parse_nvidia_smi(text):
    """nvidia-smi's banner -> driver and CUDA versions, and the GPU names listed.

    >>> parse_nvidia_smi('| NVIDIA-SMI 580.1  Driver Version: 580.159.03   CUDA Version: 13.0  |')
    {'driver': '580.159.03', 'cuda': '13.0', 'gpus': []}
    """
    driver = re.search(r'Driver Version:\s*([\d.]+)', text)
    cuda = re.search(r'CUDA Version:\s*([\d.]+)', text)
    if not driver:
        raise ValueError('no "Driver Version" in the output')
    gpus = re.findall(r'^\|\s+\d+\s+(NVIDIA [^|]*?)\s{2,}', text, flags=re.MULTILINE)
    return {'driver': driver.group(1), 'cuda': cuda.group(1) if cuda else None, 'gpus': gpus}


def parse_probe(text):
    """The JSON line a probe (``--probe``) printed last."""
    lines = [line for line in text.splitlines() if line.startswith(PROBE_TAG)]
    if not lines:
        raise ValueError(f'no {PROBE_TAG.strip()} line')
    return json.loads(lines[-1][len(PROBE_TAG):])


# --- running steps ---------------------------------------------------------------------------------------------

def step_environment(device):
    """Environment for every step: this checkout first on the path (whatever the install did), output unbuffered,
    one CPU thread in the dry run (the machine is shared and the sizes are tiny)."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    if device == 'cpu':
        env.setdefault('OMP_NUM_THREADS', '1')
    return env


def run_command(command, cwd, env, timeout, log):
    """Run one command in its own process group, output appended to ``log``; returns (exit code, timed out).

    The whole group is killed at the timeout and after the command ends: torchrun's workers and DataLoader
    processes would otherwise outlive it.
    """
    log.write(f'$ {shlex.join(map(str, command))}\n')
    log.flush()
    try:
        process = subprocess.Popen([str(part) for part in command], cwd=cwd, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    except FileNotFoundError as error:
        log.write(f'{error}\n')
        return 127, False
    timed_out = not _wait_unreaped(process.pid, timeout)
    _kill_group(process.pid)
    code = process.wait()
    if timed_out:
        log.write(f'\n[gpu_check] killed after {timeout:.0f} s\n')
    return code, timed_out


def _wait_unreaped(pid, timeout):
    """Wait up to ``timeout`` s for ``pid`` to end, without reaping it: until it is reaped, neither its pid nor its
    process group id can go to another process, so killing the group then can only hit what the command started."""
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG) is None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _kill_group(pgid):
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):  # the group ended with its leader
        pass


def run_step(step, timeout, env, log_path):
    """Run ``step`` (its commands in order, until one fails) within ``timeout`` seconds; returns its Result."""
    result = Result(step.name, step.title, [shlex.join(map(str, c)) for c in step.commands], 'ok')
    if step.skip:
        result.status, result.note = 'skipped', step.skip
        return result
    start = time.perf_counter()
    code, timed_out = 0, False
    with open(log_path, 'w') as log:
        for command in step.commands:
            remaining = timeout - (time.perf_counter() - start)
            code, timed_out = run_command(command, step.cwd, env, max(remaining, 1), log)
            if code != 0:
                break
    result.seconds = time.perf_counter() - start
    result.exit_code = code
    output = Path(log_path).read_text(errors='replace')
    result.tail = '\n'.join(output.splitlines()[-TAIL_LINES:])
    if timed_out:
        result.status, result.note = 'timed out', f'killed after {timeout:.0f} s'
    elif code != 0:
        result.status = 'failed'
    if step.parse:
        try:
            result.numbers = step.parse(output)
        except (ValueError, KeyError, AttributeError, json.JSONDecodeError) as error:
            result.note = '; '.join(filter(None, [result.note, f'output not understood: {error}']))
            if result.status == 'ok':
                result.status = 'failed'
    return result


def run_steps(steps, budget_s, step_timeout_s, env, log_dir, on_result=None, jobs=1):
    """Run every step, each within ``step_timeout_s`` and what is left of ``budget_s``; a failure stops nothing.

    With ``jobs`` > 1, up to that many steps run at once, each after the steps it names in ``after`` have
    ended (however they ended); with 1 they run one by one in the given order (the GPU run: no timing may
    overlap another). Steps that would start with less than MIN_STEP_SECONDS of the budget left are recorded
    as not run. ``on_result`` is called with the results so far, in step order, after each step.
    Returns the results in step order.
    """
    deadline = time.perf_counter() + budget_s
    names = {step.name for step in steps}
    pending, running, results = list(steps), {}, {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        while pending or running:
            ready = [step for step in pending if all(n in results or n not in names for n in step.after)]
            if not ready and not running:
                raise ValueError(f'steps wait on each other: {[step.name for step in pending]}')
            for step in ready[:jobs - len(running)]:
                pending.remove(step)
                running[pool.submit(_start_step, step, deadline, budget_s, step_timeout_s, env, log_dir)] = step
            done, _ = concurrent.futures.wait(running, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                results[running.pop(future).name] = future.result()
            if on_result:
                on_result([results[step.name] for step in steps if step.name in results])
    return [results[step.name] for step in steps]


def _start_step(step, deadline, budget_s, step_timeout_s, env, log_dir):
    """Run one step with what is left of the budget, or record it as not run."""
    left = deadline - time.perf_counter()
    if left < MIN_STEP_SECONDS and not step.skip:
        return Result(step.name, step.title, [shlex.join(map(str, c)) for c in step.commands], 'not run',
                      note=f'budget of {budget_s:.0f} s spent')
    print(f'[gpu_check] {step.name} ...', flush=True)
    result = run_step(step, min(step_timeout_s, left), env, Path(log_dir) / f'{step.name}.log')
    print(f'[gpu_check] {step.name}: {result.status}'
          + (f' (exit {result.exit_code}, {result.seconds:.1f} s)' if result.seconds is not None else ''), flush=True)
    return result


# --- the steps -------------------------------------------------------------------------------------------------

def derived_options(work, device, sizes, lmdb_path):
    """Option files derived from options/train_fnf.yml under ``work/options``: the CPU dry run's tiny twin
    (``paper.yml``), the same fed from the LMDB (``lmdb.yml``), and a short training run (50 iterations) on synthetic
    scenes without validation (``train.yml``). Returns their paths by name."""
    import yaml  # a dependency of the project, and in every image we run on; not needed for --prepare-wheelhouse
    base = yaml.safe_load(PAPER_OPTIONS.read_text())
    if sizes.tiny:
        base['network_g'].update(sizes.tiny['network_g'])
        base['datasets']['train'].update(crop_size=sizes.tiny['crop_size'],
                                         num_worker_per_gpu=sizes.tiny['num_worker_per_gpu'])
    folder = Path(work) / 'options'
    folder.mkdir(parents=True, exist_ok=True)
    files = {'paper': folder / 'paper.yml', 'lmdb': folder / 'lmdb.yml', 'train': folder / 'train.yml'}
    files['paper'].write_text(yaml.safe_dump(base, sort_keys=False))
    lmdb = json.loads(json.dumps(base))
    lmdb['datasets']['train']['dataroot'] = str(lmdb_path)
    files['lmdb'].write_text(yaml.safe_dump(lmdb, sort_keys=False))
    files['train'].write_text(yaml.safe_dump(training_options(base, device, sizes), sort_keys=False))
    return files


def training_options(base, device, sizes):
    """The short torchrun training run: the paper file on synthetic scenes, checkpoint at the last iteration."""
    opt = json.loads(json.dumps(base))
    train = {key: value for key, value in opt['datasets']['train'].items() if key not in ('io_backend',)}
    # One epoch covers both runs, as FAID's thousands of crops do: BasicSR starts its DataLoader workers again
    # every epoch, and under torchrun they are spawned processes (seconds each), every 8 iterations on 8 scenes.
    train.update(name='synthetic_train', dataroot='datasets/synthetic', exclude_test_split=False,
                 synthetic={'split': 'train', 'num_scenes': sizes.scenes, 'size': sizes.scene_size},
                 dataset_enlarge_ratio=math.ceil(sizes.resume_iters * train['batch_size_per_gpu'] / sizes.scenes))
    opt.update(name='gpu_check_train', num_gpu=1 if device == 'cuda' else 0, datasets={'train': train})
    opt.pop('val', None)  # validation needs FAID; the check is about the training loop and its resume
    opt['train']['total_iter'] = sizes.train_iters
    opt['logger'] = {'print_freq': sizes.print_freq, 'save_checkpoint_freq': sizes.train_iters,
                     'use_tb_logger': True}
    return opt


def python(*args):
    return [sys.executable, *map(str, args)]


def plan(args, work):
    """The steps of a run, in order."""
    sizes = SIZES[args.device]
    scenes = Path(work) / 'datasets' / 'synthetic' / f'train_{sizes.scenes}x{sizes.scene_size}'
    lmdb_path = Path(work) / 'datasets' / 'lmdb' / 'train.lmdb'
    options = derived_options(work, args.device, sizes, lmdb_path)
    paper = PAPER_OPTIONS if args.device == 'cuda' else options['paper']
    scripts = REPO / 'scripts'
    bench = [scripts / 'profiling' / 'profile_training.py', '--device', args.device, '--iters', sizes.iters,
             '--warmup', sizes.warmup]
    torchrun = python('-m', 'torch.distributed.run', '--standalone', '--nnodes=1', '--nproc_per_node=1',
                      '-m', 'fnf_basicsr.train', '-opt', options['train'], '--launcher', 'pytorch')
    width, height = sizes.denoise_size
    installed = ('install',)  # every step runs the installed project
    return [
        Step('nvidia-smi', 'the driver and the GPU as nvidia-smi shows them', [['nvidia-smi']],
             parse=parse_nvidia_smi, skip=None if shutil.which('nvidia-smi') or args.device == 'cuda'
             else 'nvidia-smi not found: no NVIDIA driver here'),
        install_step(args),
        Step('environment', 'torch, CUDA, GPU, mixed_precision: auto',
             [python(SELF, '--probe', 'environment', '--device', args.device)], parse=parse_probe,
             after=installed),
        Step('cuda-tests', 'the CUDA-marked tests (pytest -m cuda)', [cuda_test_command()], parse=parse_pytest_summary,
             after=installed),
        Step('synthetic-data', 'synthetic scenes for the training steps',
             [python(scripts / 'data_preparation' / 'generate_synthetic.py', '--root', scenes, '--split', 'train',
                     '--num', sizes.scenes, '--size', sizes.scene_size, '--workers', sizes.render_workers)],
             cwd=work, parse=parse_generation, after=installed),
        Step('training-speed', 'the paper configuration: iterations/s, samples/s, peak memory',
             [python(*bench, paper, '--synthetic-data', f'{sizes.scenes}x{sizes.scene_size}', '--precision',
                     *sizes.precisions, '--memory-format', *sizes.memory_formats)],
             cwd=work, parse=parse_training_profile, after=('synthetic-data',)),
        Step('lmdb', 'an LMDB of raw records from the synthetic scenes',
             [python(scripts / 'data_preparation' / 'create_lmdb.py', '--input', scenes, '--output', lmdb_path,
                     '--crop-size', sizes.lmdb_crop, '--stride', 16, '--encoding', 'raw', '--overwrite', '--quiet')],
             cwd=work, parse=parse_lmdb, after=('synthetic-data',)),
        Step('lmdb-training-speed', "the paper configuration fed from the LMDB with the file's workers",
             [python(*bench, options['lmdb'], '--precision', 'bf16', '--memory-format', 'channels_last')],
             cwd=work, parse=parse_training_profile, after=('lmdb',)),
        Step('train', f'{sizes.train_iters} iterations of basicsr train under torchrun (--launcher pytorch)',
             [torchrun], cwd=work, parse=parse_training_log, after=('synthetic-data',)),
        Step('resume', f'--auto_resume to {sizes.resume_iters} iterations',
             [[*torchrun, '--auto_resume', '--force_yml', f'train:total_iter={sizes.resume_iters}']], cwd=work,
             parse=parse_training_log, after=('train',)),
        Step('denoise', f'fnf-denoise on a {width}x{height} pair, full-size DeepFnF (random weights)',
             [python(scripts / 'profiling' / 'profile_tiling.py', '--device', args.device, '--width', width,
                     '--height', height, '--tile', sizes.tile, '--overlap', sizes.overlap)],
             cwd=work, parse=parse_denoise, after=installed),
        Step('kernel-filter', "the two-scale filter's FFT and direct paths: speed and agreement",
             [python(SELF, '--probe', 'filter', '--device', args.device)], parse=parse_probe, after=installed),
    ]


def install_step(args):
    """The README's install (pip install -e ".[dev]"), or offline from ``--wheelhouse`` (no registry on the GPU
    machine: the wheels the image lacks, then this checkout without dependencies and without build isolation)."""
    check = python('-c', 'import json, torch, fnf_basicsr, basicsr, lmdb; '  # ours first: it makes basicsr importable
                   f'print({PROBE_TAG!r} + json.dumps({{"fnf_basicsr": fnf_basicsr.__version__, '
                   '"basicsr": basicsr.__version__, "torch": torch.__version__}))')
    if args.wheelhouse:
        wheels = sorted(glob.glob(str(Path(args.wheelhouse).resolve() / '*.whl')))  # pip runs in the checkout
        commands = [python('-m', 'pip', 'install', '--no-index', '--no-deps', *wheels),
                    python('-m', 'pip', 'install', '--no-index', '--no-deps', '--no-build-isolation', '-e', REPO),
                    check]
    else:
        commands = [python('-m', 'pip', 'install', '-e', f'{REPO}[dev]'), check]
    return Step('install', 'install the project', commands, parse=parse_probe,
                skip='--skip-install' if args.skip_install else None)


def cuda_test_command():
    """pytest -m cuda on the test files that carry the marker (collecting the whole suite costs more than
    running these)."""
    files = sorted(str(path.relative_to(REPO)) for path in (REPO / 'tests').rglob('test_*.py')
                   if 'mark.cuda' in path.read_text(errors='replace'))
    return python('-m', 'pytest', '-q', '-m', 'cuda', '-p', 'no:cacheprovider', *(files or ['tests']))


# --- probes: run as ``gpu_check.py --probe NAME`` in a fresh process -------------------------------------------

def probe_environment(device):
    """Versions, the device, and what ``mixed_precision: auto`` resolves to (when the resolver exists)."""
    import platform

    import torch
    info = {'python': platform.python_version(), 'platform': platform.platform(), 'cpu_count': os.cpu_count(),
            'torch': torch.__version__, 'torch_cuda': torch.version.cuda, 'cuda_available': torch.cuda.is_available(),
            'cudnn': torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            'commit': _git_commit()}
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2 ** 30, 1),
                    capability=f'sm_{properties.major}{properties.minor}', gpu_count=torch.cuda.device_count(),
                    multiprocessors=properties.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported(),
                    nccl=_nccl_version(),
                    cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                    matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    info['mixed_precision_auto'] = _auto_precision(device)
    print(PROBE_TAG + json.dumps(info))


def _nccl_version():
    """NCCL's version as torch reports it (a tuple in recent releases, an int in older ones), or why not."""
    import torch
    try:
        version = torch.cuda.nccl.version()
    except Exception as error:  # noqa: BLE001 - a report line; a torch built without NCCL raises here
        return f'not available ({error})'
    return '.'.join(map(str, version)) if isinstance(version, tuple) else str(version)


def _git_commit():
    try:
        return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip() or 'unknown'
    except (OSError, subprocess.SubprocessError):
        return 'unknown'


def _auto_precision(device):
    """``mixed_precision: auto`` and ``channels_last: auto`` as fnf_basicsr.utils.hardware resolves them on
    ``device``, or why not (the resolver is newer than this script and may be absent from a checkout)."""
    try:
        from fnf_basicsr.utils.hardware import resolve_channels_last, resolve_precision
    except ImportError as error:
        return f'not available ({error})'
    try:
        precision = resolve_precision('auto', device)
        layout = resolve_channels_last('auto', precision.value, device)
        return f'{precision.describe("precision")}; {layout.describe("channels_last")}'
    except Exception as error:  # noqa: BLE001 - a report line, whatever the resolver raises
        return f'not available ({type(error).__name__}: {error})'


def probe_filter(device):
    """Time the two-scale filter's direct and FFT paths on ``device`` and compare both with a float64 reference.

    Inputs are DeepFnF's at batch 1 (J basis elements, K = 15, d = 4); forward, and forward + backward for
    the coefficients and the bases as in training. Errors are relative to the reference's largest magnitude,
    with torch's default TF32 setting for convolutions (what training uses).
    """
    import torch

    from fnf_basicsr.ops.kernel_filter import FOURIER_MIN_PIXELS, two_scale_filter
    sizes = SIZES[device]
    rows = []
    for size in sizes.filter_sizes:
        inputs = _filter_inputs(size, sizes.filter_basis)
        reference = two_scale_filter(*[t.double() for t in inputs], 4, method='direct')
        for method in ('direct', 'fourier'):
            on_device = [t.to(device) for t in inputs]
            output = two_scale_filter(*on_device, 4, method=method)
            error = float((output.double().cpu() - reference).abs().max() / reference.abs().max())
            forward = _median_seconds(lambda: two_scale_filter(*on_device, 4, method=method), device,
                                      sizes.filter_repeats)
            backward, peak_mb = _backward_seconds(on_device, method, device, sizes.filter_repeats)
            rows.append({'size': size, 'method': method, 'forward_ms': forward * 1e3,
                         'forward_backward_ms': backward * 1e3, 'peak_mb': peak_mb, 'max_rel_error': error,
                         'auto_picks': 'fourier' if size * size >= FOURIER_MIN_PIXELS else 'direct'})
    print(PROBE_TAG + json.dumps({'device': device, 'basis': sizes.filter_basis, 'rows': rows,
                                  'cudnn_allow_tf32': torch.backends.cudnn.allow_tf32}))


def _filter_inputs(size, num_basis, kernel_size=15):
    import torch
    generator = torch.Generator().manual_seed(0)
    image = torch.rand(1, 3, size, size, generator=generator)
    coeffs = torch.randn(1, num_basis, size, size, generator=generator)
    basis = [torch.randn(1, num_basis, 3, kernel_size, kernel_size, generator=generator) / kernel_size
             for _ in range(2)]
    return [image, coeffs, *basis]


def _synchronize(device):
    import torch
    if device == 'cuda':
        torch.cuda.synchronize()


def _median_seconds(function, device, repeats, grad=False):
    """Median wall time of ``function`` over ``repeats`` calls after one untimed call (autograd on if ``grad``)."""
    import torch
    times = []
    with torch.set_grad_enabled(grad):
        for index in range(repeats + 1):
            _synchronize(device)
            start = time.perf_counter()
            function()
            _synchronize(device)
            if index:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def _backward_seconds(inputs, method, device, repeats):
    """Median seconds of forward + backward (coefficients and bases, as in training) and the CUDA peak in MB."""
    import torch

    from fnf_basicsr.ops.kernel_filter import two_scale_filter
    image, *predicted = inputs
    predicted = [tensor.detach().requires_grad_(True) for tensor in predicted]

    def step():
        output = two_scale_filter(image, *predicted, 4, method=method)
        output.backward(torch.ones_like(output))

    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
    seconds = _median_seconds(step, device, repeats, grad=True)
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if device == 'cuda' else None
    return seconds, peak


PROBES = {'environment': probe_environment, 'filter': probe_filter}


# --- the report ------------------------------------------------------------------------------------------------

def render_report(results, meta):
    """The markdown report: header, summary table, one section per measurement, then each step's command and
    output tail."""
    by_name = {result.name: result for result in results}
    lines = [f'# GPU check: {meta["device_label"]}', '',
             f'`{meta["command"]}` (device `{meta["device"]}`), started {meta["started"]}, '
             f'{meta["elapsed_s"]:.0f} s so far of the {meta["budget_s"]:.0f} s budget; work folder `{meta["work"]}`.',
             '', '## Summary', '', '| step | what | status | exit code | wall time | key numbers |',
             '|---|---|---|---|---|---|']
    for result in results:
        seconds = f'{result.seconds:.1f} s' if result.seconds is not None else '-'
        code = '-' if result.exit_code is None else str(result.exit_code)
        status = result.status + (f' ({result.note})' if result.note else '')
        lines.append(f'| {result.name} | {result.title} | {status} | {code} | {seconds} | '
                     f'{_key_numbers(result)} |')
    for section in (_environment_section, _training_section, _lmdb_section, _train_section, _denoise_section,
                    _filter_section):
        lines += section(by_name)
    lines += ['', '## Steps']
    for result in results:
        lines += _step_details(result)
    return '\n'.join(lines) + '\n'


def _key_numbers(result):
    """One cell of the summary: the step's headline numbers."""
    numbers = result.numbers
    if not numbers:
        return ''
    if result.name == 'training-speed' or result.name == 'lmdb-training-speed':
        return '; '.join(f"{r['precision']} {r['memory_format']}: {r['it_per_s']:.2f} it/s, "
                         f"{r['samples_per_s_with_data']:.2f} samples/s with data" for r in numbers['rows'])
    if result.name == 'kernel-filter':
        return '; '.join(f"{r['size']} px {r['method']}: {r['forward_backward_ms']:.1f} ms fwd+bwd, "
                         f"error {r['max_rel_error']:.1e}" for r in numbers['rows'])
    if result.name == 'environment':
        keys = ('gpu', 'torch', 'torch_cuda', 'mixed_precision_auto')
        return '; '.join(f'{key} {numbers[key]}' for key in keys if numbers.get(key) is not None)
    return ', '.join(f'{key} {value}' for key, value in numbers.items())


def _environment_section(by_name):
    result = by_name.get('environment')
    lines = ['', '## Environment', '']
    if result and result.numbers:
        lines += [f'- {key}: {value}' for key, value in result.numbers.items()]
    smi = by_name.get('nvidia-smi')
    if smi and smi.tail:
        lines += ['', '```', smi.tail, '```']
    return lines


def _goal(it_per_s):
    return ('yes' if it_per_s >= GOAL_ITERS_PER_S else 'no'), ('yes' if it_per_s >= AIM_ITERS_PER_S else 'no')


def _rate_table(rows):
    lines = ['| precision | memory format | batch x crop | it/s (compute) | s/iter (compute) | s/iter (with data) | '
             f'samples/s (with data) | peak memory | >= {GOAL_ITERS_PER_S} it/s | >= {AIM_ITERS_PER_S} it/s |',
             '|' + '---|' * 10]
    for row in rows:
        goal, aim = _goal(row['it_per_s'])
        lines.append(f"| {row['precision']} | {row['memory_format']} | {row['batch_crop']} | {row['it_per_s']:.2f} | "
                     f"{row['s_per_iter_compute']:.4f} | {row['s_per_iter_with_data']:.4f} | "
                     f"{row['samples_per_s_with_data']:.2f} | {row['peak_mb']:.0f} MB ({row['peak_kind']}) | "
                     f'{goal} | {aim} |')
    return lines


def _training_section(by_name):
    result = by_name.get('training-speed')
    lines = ['', '## Paper configuration: training speed', '',
             f'Goal (issue 24): at least {GOAL_ITERS_PER_S} iterations/s (1.5M iterations in a day), aim '
             f'{AIM_ITERS_PER_S}. Compute: one fed batch; with data: the file\'s dataloader on synthetic scenes.', '']
    return lines + (_rate_table(result.numbers['rows']) if result and result.numbers else ['(no result)'])


def _lmdb_section(by_name):
    result, lmdb = by_name.get('lmdb-training-speed'), by_name.get('lmdb')
    lines = ['', '## Fed from an LMDB of raw records', '']
    if lmdb and lmdb.numbers:
        numbers = lmdb.numbers
        lines += [f"LMDB: {numbers['scenes']} scenes, {numbers['crops']} crops, {numbers['records']} records, "
                  f"{numbers['mib']:.1f} MiB ({numbers['encoding']}), built in {lmdb.seconds:.1f} s.", '']
    return lines + (_rate_table(result.numbers['rows']) if result and result.numbers else ['(no result)'])


def _train_section(by_name):
    lines = ['', '## basicsr train under torchrun, then --auto_resume', '',
             's/iter (BasicSR): its average from the first iteration; last interval: wall time between the last two '
             'log lines per iteration.', '',
             '| run | started at iter | resumed from | last logged iter | s/iter (BasicSR) | s/iter (last interval) '
             '| finished | wall |', '|---|---|---|---|---|---|---|---|']
    for name in ('train', 'resume'):
        result = by_name.get(name)
        if not result or not result.numbers:
            lines.append(f'| {name} | (no result) | | | | | | |')
            continue
        numbers = result.numbers
        lines.append(f"| {name} | {numbers['start_iter']} | {numbers.get('resumed_from', '-')} | "
                     f"{numbers.get('last_logged_iter', '-')} | {numbers.get('s_per_iter', '-')} | "
                     f"{numbers.get('interval_s_per_iter', '-')} | "
                     f"{'yes' if numbers['finished'] else 'no'} | {result.seconds:.1f} s |")
    return lines


def _denoise_section(by_name):
    result = by_name.get('denoise')
    lines = ['', '## fnf-denoise, full-size DeepFnF', '']
    if not result or not result.numbers:
        return lines + ['(no result)']
    numbers = result.numbers
    cuda_peak = f"{numbers['cuda_peak_gib']:.2f} GiB" if 'cuda_peak_gib' in numbers else '-'
    return lines + ['| size | tiles | wall | CPU time | peak RSS | CUDA peak allocated |', '|---|---|---|---|---|---|',
                    f"| {numbers.get('width')}x{numbers.get('height')} ({numbers.get('megapixels')} MP) | "
                    f"{numbers.get('tiles')} | {numbers['wall_s']:.1f} s | {numbers['cpu_s']:.1f} s | "
                    f"{numbers['peak_rss_gib']:.2f} GiB | {cuda_peak} |"]


def _filter_section(by_name):
    result = by_name.get('kernel-filter')
    lines = ['', '## Kernel filter: FFT against direct', '']
    if not result or not result.numbers:
        return lines + ['(no result)']
    numbers = result.numbers
    lines += [f"J = {numbers['basis']}, K = 15, d = 4, batch 1; error: max |out - float64 reference| / "
              f"max |reference| (cuDNN TF32 allowed: {numbers['cudnn_allow_tf32']}).", '',
              '| size | method | auto picks | forward | forward + backward | peak (CUDA) | max relative error |',
              '|---|---|---|---|---|---|---|']
    for row in numbers['rows']:
        peak = '-' if row['peak_mb'] is None else f"{row['peak_mb']:.0f} MB"
        lines.append(f"| {row['size']} | {row['method']} | {row['auto_picks']} | {row['forward_ms']:.2f} ms | "
                     f"{row['forward_backward_ms']:.2f} ms | {peak} | {row['max_rel_error']:.2e} |")
    return lines


def _step_details(result):
    lines = ['', f'### {result.name}: {result.status}', '']
    lines += [f'- command: `{command}`' for command in result.commands]
    if result.exit_code is not None:
        lines.append(f'- exit code {result.exit_code}, {result.seconds:.1f} s')
    if result.note:
        lines.append(f'- note: {result.note}')
    if result.tail:
        lines += ['', '<details><summary>output (last lines)</summary>', '', '```', result.tail, '```', '',
                  '</details>']
    return lines


def write_report(results, meta, path):
    """Write the markdown report and its JSON twin (``.json`` beside it), each atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(meta, elapsed_s=time.perf_counter() - meta['start'])
    payload = {'meta': {k: v for k, v in meta.items() if k != 'start'},
               'steps': [dataclasses.asdict(result) for result in results]}
    for target, text in ((path, render_report(results, meta)),
                         (path.with_suffix('.json'), json.dumps(payload, indent=1))):
        partial = target.with_name(target.name + '.partial')
        partial.write_text(text)
        os.replace(partial, target)


# --- preparing the offline install -----------------------------------------------------------------------------

def prepare_wheelhouse(folder, python_version):
    """Download (or build) the wheels the GPU image lacks into ``folder``, for CPython ``python_version``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    platforms = [arg for tag in ('manylinux_2_28_x86_64', 'manylinux_2_17_x86_64', 'manylinux2014_x86_64')
                 for arg in ('--platform', tag)]
    commands = [python('-m', 'pip', 'wheel', '--no-deps', '-w', folder, WHEELHOUSE_PACKAGES[0]),
                python('-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--python-version', python_version,
                       '--implementation', 'cp', *platforms, '-d', folder, *WHEELHOUSE_PACKAGES[1:])]
    for command in commands:
        print('$', shlex.join(command), flush=True)
        subprocess.run(command, check=True)
    print('wheels:', ', '.join(sorted(path.name for path in folder.glob('*.whl'))))


# --- command line ----------------------------------------------------------------------------------------------

def build_parser():
    doc_head, doc_rest = __doc__.split('\n\n', 1)
    parser = argparse.ArgumentParser(prog='gpu_check.sh', description=doc_head, epilog=doc_rest,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', choices=sorted(SIZES), default='cuda',
                        help='cuda: the real check (default); cpu: a tiny dry run of every step.')
    parser.add_argument('--report', type=Path, default=REPO / 'reports' / 'gpu_check.md',
                        help='markdown report to write (a .json twin goes beside it). Default: reports/gpu_check.md.')
    parser.add_argument('--work-dir', type=Path,
                        help='folder for data, option files, runs and step logs. Default: a new temporary folder.')
    parser.add_argument('--step-timeout', type=float,
                        help='seconds each step may take. Default: 240 on cuda, 120 on cpu.')
    parser.add_argument('--budget', type=float,
                        help='seconds for the whole run; later steps get what is left. Default: 450 on cuda, '
                        '600 on cpu.')
    parser.add_argument('--jobs', type=int,
                        help='steps run at once (each after the steps it needs). Default: 1 on cuda (timings must '
                        'not overlap), 2 on cpu.')
    parser.add_argument('--skip-install', action='store_true', help='use the environment as it is.')
    parser.add_argument('--wheelhouse', type=Path,
                        help='install offline: the wheels in this folder (--prepare-wheelhouse), then this checkout '
                        'with no dependencies and no build isolation. Default: pip install -e ".[dev]".')
    parser.add_argument('--prepare-wheelhouse', type=Path, metavar='DIR',
                        help='only fetch the wheels the GPU image lacks (basicsr, lmdb, setuptools>=77) into DIR; '
                        'needs a registry.')
    parser.add_argument('--python-version', default='3.12',
                        help="with --prepare-wheelhouse: the GPU image's Python. Default: 3.12.")
    parser.add_argument('--probe', choices=sorted(PROBES), help=argparse.SUPPRESS)  # a step's own process
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.probe:
        PROBES[args.probe](args.device)
        return 0
    if args.prepare_wheelhouse:
        prepare_wheelhouse(args.prepare_wheelhouse, args.python_version)
        return 0
    sizes = SIZES[args.device]
    work = args.work_dir or Path(tempfile.mkdtemp(prefix='gpu_check_'))
    work = Path(work).resolve()
    (work / 'logs').mkdir(parents=True, exist_ok=True)
    meta = {'device': args.device, 'device_label': args.device, 'command': shlex.join(['gpu_check.sh', *(
        argv if argv is not None else sys.argv[1:])]), 'started': datetime.datetime.now().isoformat(timespec='seconds'),
        'budget_s': args.budget or sizes.budget_s, 'work': str(work), 'start': time.perf_counter()}

    def on_result(results):
        environment = next((r for r in results if r.name == 'environment'), None)
        if environment and environment.numbers.get('gpu'):
            meta['device_label'] = f"{environment.numbers['gpu']} ({args.device})"
        write_report(results, meta, args.report)

    results = run_steps(plan(args, work), meta['budget_s'], args.step_timeout or sizes.step_timeout_s,
                        step_environment(args.device), work / 'logs', on_result, args.jobs or sizes.jobs)
    failed = [result.name for result in results if result.status not in ('ok', 'skipped')]
    print(f'[gpu_check] report: {args.report}' + (f'; not ok: {", ".join(failed)}' if failed else '; all ok'))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
