"""What one training iteration of an option file costs: whole FnFModel steps, timed.

Each (option file, device, precision, memory format) is measured in a fresh Python process
(nothing cached, allocator and thread pools new), with the model, loss, optimizer and dataset its
file describes. Two timings per run, each the median over ``iterations`` steps after ``warmup``
steps:

* compute: ``optimize_parameters`` on one batch fed once (forward, rendering, losses, backward,
  optimizer step);
* with data: the same, fed from BasicSR's own dataloader of the file's training dataset.

Variants override the file's ``train: mixed_precision`` (``fp32``: off, ``bf16``, ``auto``),
``train: channels_last`` (``auto`` too; rows show what ``auto`` resolved to) and the Adam
implementation (``adam``: ``fused`` or ``foreach``, the ``optim_g: fused`` key; the option
files use fused, foreach was the default before); ``crop``
overrides the training crop, and ``synthetic`` replaces the
training data by generated synthetic scenes (so that files for data one does not have, e.g. the
FAID LMDB of options/train_fnf.yml, can be timed). Timings are for reports
(``scripts/profiling/profile_training.py``), never for tests.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

PRECISIONS = {'fp32': None, 'bf16': 'bf16', 'auto': 'auto'}
MEMORY_FORMATS = {'nchw': False, 'channels_last': True, 'auto': 'auto'}
ADAM_IMPLEMENTATIONS = {'fused': True, 'foreach': False}


def training_options(option_file: str | os.PathLike, device: str, root: str | os.PathLike,
                     precision: str | None = None, channels_last: bool | str | None = None, crop: int | None = None,
                     synthetic: dict | None = None, adam: str | None = None) -> dict:
    """The option dict BasicSR's parse_options would make for training, with outputs under ``root``.

    ``precision`` ('fp32' or 'bf16'), ``channels_last`` (bool) and ``adam`` ('fused' or 'foreach')
    override the file's training settings when given; ``crop`` the training crop; ``synthetic``
    ({num_scenes, size}) swaps the training data for synthetic scenes under ``datasets/synthetic`` of
    the current folder.

    Args:
        option_file: a training option file.
        device: ``'cpu'`` or ``'cuda'``.
        root: the folder that takes every output path (experiments, models, logs).
        precision: a key of :data:`PRECISIONS`, or None for the file's.
        channels_last: True, False or ``'auto'``, or None for the file's.
        crop: the training crop side, or None for the file's.
        synthetic: ``{'num_scenes': N, 'size': S}`` to train on synthetic scenes, or None.
        adam: a key of :data:`ADAM_IMPLEMENTATIONS`, or None for the file's.

    Returns:
        The options, with the training dataset alone under ``datasets``.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as root:
        ...     path = os.path.join(root, 'train.yml')
        ...     with open(path, 'w') as handle:
        ...         _ = handle.write('{datasets: {train: {crop_size: 128}}, train: {optim_g: {type: Adam}}}')
        ...     opt = training_options(path, 'cpu', root, precision='bf16', crop=64, adam='fused')
        >>> opt['datasets']['train']['crop_size'], opt['train']['mixed_precision'], opt['train']['optim_g']['fused']
        (64, 'bf16', True)
    """
    from basicsr.utils.options import ordered_yaml
    import yaml
    with open(option_file, encoding='utf-8') as handle:
        opt = yaml.load(handle, Loader=ordered_yaml()[0])
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=1 if device == 'cuda' else 0)
    opt['path'] = {**(opt.get('path') or {}), 'pretrain_network_g': None, 'resume_state': None}
    opt['path'].update({key: os.path.join(root, key) for key in
                        ('experiments_root', 'models', 'training_states', 'log', 'visualization')})
    train = dict(opt['datasets']['train'], phase='train', scale=opt.get('scale', 1))
    if crop:
        train['crop_size'] = int(crop)
    if synthetic:
        train = _synthetic_training_data(train, synthetic)
    opt['datasets'] = {'train': train}
    opt['train'] = dict(opt.get('train') or {})
    if precision is not None:
        opt['train']['mixed_precision'] = PRECISIONS[precision]
    if channels_last is not None:
        opt['train']['channels_last'] = channels_last
    if adam is not None:
        opt['train']['optim_g'] = dict(opt['train']['optim_g'], fused=ADAM_IMPLEMENTATIONS[adam])
    return opt


def _synthetic_training_data(train, synthetic):
    """The training dataset options with the data swapped for synthetic scenes (same crop, noise, batch)."""
    train = {key: value for key, value in train.items() if key not in ('io_backend', 'subset', 'max_images')}
    train['dataroot'] = os.path.join('datasets', 'synthetic')
    train['synthetic'] = {'split': 'train', 'num_scenes': int(synthetic['num_scenes']),
                          'size': int(synthetic['size'])}
    train['exclude_test_split'] = False  # synthetic scene names never overlap the FAID test list
    return train


def _median_step_seconds(step: Callable[[int], object], iterations: int, warmup: int,
                         synchronize: Callable[[], object]) -> float:
    times = []
    for index in range(warmup + iterations):
        start = time.perf_counter()
        step(index)
        synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(option_file: str | os.PathLike, iterations: int = 10, warmup: int = 2, threads: int = 1,
            device: str = 'cpu', precision: str | None = None, channels_last: bool | str | None = None,
            crop: int | None = None, synthetic: dict | None = None, adam: str | None = None) -> dict:
    """Time one option file (and variant) in this process; returns a dict of the measurements.

    Args:
        option_file: a training option file.
        iterations: timed steps; each timing is their median.
        warmup: steps run before the timed ones.
        threads: torch's CPU threads.
        device: ``'cpu'`` or ``'cuda'``.
        precision, channels_last, crop, synthetic, adam: the variant, as :func:`training_options` takes it.

    Returns:
        One row: the file, network, parameter count, batch and crop, device, threads, resolved precision
        and memory format, CPU, Adam implementation, ``seconds_per_iter_compute``,
        ``seconds_per_iter_with_data``, ``peak_rss_mb`` and ``peak_cuda_mb`` (None on CPU).

    Example:
        >>> sorted(PRECISIONS)  # the values of precision
        ['auto', 'bf16', 'fp32']
        >>> row = measure('options/synthetic/train_fnf.yml', iterations=2, warmup=1)  # doctest: +SKIP
    """
    import torch
    import fnf_basicsr  # noqa: F401  (compatibility fixes and registration)
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.models import build_model
    from fnf_basicsr.utils.hardware import describe_cpu

    torch.set_num_threads(threads)
    synchronize = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    with tempfile.TemporaryDirectory() as root:
        opt = training_options(option_file, device, root, precision, channels_last, crop, synthetic, adam)
        torch.manual_seed(opt.get('manual_seed', 0))
        dataset_opt = opt['datasets']['train']
        dataset = build_dataset(dataset_opt)
        sampler = EnlargedSampler(dataset, 1, 0, dataset_opt.get('dataset_enlarge_ratio', 1))
        loader = build_dataloader(dataset, dataset_opt, num_gpu=opt['num_gpu'], dist=False, sampler=sampler,
                                  seed=opt.get('manual_seed', 0))
        model = build_model(opt)
        batches = iter(loader)
        model.feed_data(next(batches))
        compute = _median_step_seconds(lambda i: model.optimize_parameters(i + 1), iterations, warmup, synchronize)

        def step_with_data(index):
            nonlocal batches
            try:
                batch = next(batches)
            except StopIteration:
                batches = iter(loader)
                batch = next(batches)
            model.feed_data(batch)
            model.optimize_parameters(index + 1)
        with_data = _median_step_seconds(step_with_data, iterations, warmup, synchronize)
        network = model.get_bare_model(model.net_g)
        return {
            'option_file': str(option_file), 'network': opt['network_g']['type'],
            'parameters': sum(p.numel() for p in network.parameters()),
            'batch': int(dataset_opt.get('batch_size_per_gpu', 1)), 'crop': int(dataset_opt.get('crop_size', 0)),
            'data': 'synthetic' if synthetic else 'file',
            'device': device, 'threads': threads,
            'precision': model.runtime('train')[0].value,
            'memory_format': 'channels_last' if model.channels_last('train') else 'nchw',
            'cpu': describe_cpu(),
            'adam': 'fused' if opt['train']['optim_g'].get('fused') else 'foreach',
            'seconds_per_iter_compute': compute, 'seconds_per_iter_with_data': with_data,
            'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            'peak_cuda_mb': torch.cuda.max_memory_allocated() / 2 ** 20 if device == 'cuda' else None,
        }


def measure_isolated(option_file: str | os.PathLike, iterations: int = 10, warmup: int = 2, threads: int = 1,
                     device: str = 'cpu', precision: str | None = None, channels_last: bool | str | None = None,
                     crop: int | None = None, synthetic: dict | None = None, adam: str | None = None,
                     timeout: float = 3600) -> dict:
    """:func:`measure` in a fresh Python process (environment threads pinned to ``threads``).

    Args:
        option_file, iterations, warmup, threads, device, precision, channels_last, crop, synthetic, adam:
            as :func:`measure` takes them.
        timeout: seconds the process may run.

    Returns:
        The row of :func:`measure`.

    Raises:
        RuntimeError: the process failed, with the end of its error output.
        subprocess.TimeoutExpired: it ran past ``timeout``.

    Example:
        >>> sorted(ADAM_IMPLEMENTATIONS)  # the values of adam
        ['foreach', 'fused']
        >>> row = measure_isolated('options/synthetic/train_fnf.yml', adam='fused')  # doctest: +SKIP
    """
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    arguments = {'option_file': str(option_file), 'iterations': iterations, 'warmup': warmup, 'threads': threads,
                 'device': device, 'precision': precision, 'channels_last': channels_last, 'crop': crop,
                 'synthetic': synthetic, 'adam': adam}
    command = [sys.executable, '-m', 'fnf_basicsr.utils.training_profile', json.dumps(arguments)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'timing {option_file} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of_runs(runs: list[dict]) -> dict:
    """One row from several fresh-process runs of the same variant: the median of each timing, the largest peak.

    Args:
        runs: rows of :func:`measure` for one variant.

    Returns:
        The first row with the median timings, the largest peak memory and ``runs``, their count.

    Example:
        >>> runs = [{'seconds_per_iter_compute': t, 'seconds_per_iter_with_data': t, 'peak_rss_mb': m,
        ...          'peak_cuda_mb': None} for t, m in ((1.0, 10.0), (3.0, 30.0), (2.0, 20.0))]
        >>> row = median_of_runs(runs)
        >>> row['seconds_per_iter_compute'], row['peak_rss_mb'], row['peak_cuda_mb'], row['runs']
        (2.0, 30.0, None, 3)
    """
    row = dict(runs[0], runs=len(runs))
    for key in ('seconds_per_iter_compute', 'seconds_per_iter_with_data'):
        row[key] = statistics.median(run[key] for run in runs)
    for key in ('peak_rss_mb', 'peak_cuda_mb'):
        row[key] = None if runs[0][key] is None else max(run[key] for run in runs)
    return row


def _baseline_key(row):
    return row['option_file'], row['device'], row['crop'], row['batch']


def markdown_table(rows: list[dict]) -> str:
    """One table of all rows; the speed-up is against the fp32 NCHW row of the same file, device and crop
    (with foreach Adam, the implementation before the option files chose fused, when both were timed).

    Args:
        rows: rows of :func:`measure` or :func:`median_of_runs`.

    Returns:
        A Markdown table: a header, its rule, and one line per row.

    Example:
        >>> row = {'option_file': 'train.yml', 'network': 'DeepFnF', 'parameters': 1000, 'batch': 2, 'crop': 96,
        ...        'device': 'cpu', 'seconds_per_iter_compute': 0.5, 'seconds_per_iter_with_data': 0.5,
        ...        'peak_rss_mb': 100.0}
        >>> table = markdown_table([row, dict(row, precision='bf16', seconds_per_iter_compute=0.25)])
        >>> len(table.splitlines()), table.splitlines()[-1].split(' | ')[-2]
        (4, '2.00x')
    """
    candidates = [r for r in rows if r.get('precision', 'fp32') == 'fp32' and r.get('memory_format', 'nchw') == 'nchw']
    baselines = {_baseline_key(r): r for r in sorted(candidates, key=lambda r: r.get('adam') == 'foreach')}
    lines = ['| option file | network | parameters | batch x crop | device | precision | memory format | Adam | runs '
             '| s/iter (compute) | it/s (compute) | s/iter (with data) | samples/s (with data) | speed-up (compute) '
             '| peak memory |', '|' + '---|' * 15]
    for row in rows:
        base = baselines.get(_baseline_key(row))
        speed_up = f"{base['seconds_per_iter_compute'] / row['seconds_per_iter_compute']:.2f}x" if base else 'n/a'
        memory = (f"{row['peak_cuda_mb']:.0f} MB (CUDA)" if row.get('peak_cuda_mb') is not None
                  else f"{row['peak_rss_mb']:.0f} MB (RSS)")
        data = ' (synthetic data)' if row.get('data') == 'synthetic' else ''
        lines.append(f"| `{row['option_file']}`{data} | {row['network']} | {row['parameters']:,} | {row['batch']} x "
                     f"{row['crop']} | {row['device']} | {row.get('precision', 'fp32')} | "
                     f"{row.get('memory_format', 'nchw')} | {row.get('adam', 'foreach')} | {row.get('runs', 1)} | "
                     f"{row['seconds_per_iter_compute']:.3f} | {1 / row['seconds_per_iter_compute']:.2f} | "
                     f"{row['seconds_per_iter_with_data']:.3f} | {row['batch'] / row['seconds_per_iter_with_data']:.2f}"
                     f" | {speed_up} | {memory} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    print(json.dumps(measure(**json.loads(sys.argv[1]))))
