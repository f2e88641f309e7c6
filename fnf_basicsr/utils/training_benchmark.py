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
(``scripts/profiling/benchmark_training.py``), never for tests.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

PRECISIONS = {'fp32': None, 'bf16': 'bf16', 'auto': 'auto'}
MEMORY_FORMATS = {'nchw': False, 'channels_last': True, 'auto': 'auto'}
ADAM_IMPLEMENTATIONS = {'fused': True, 'foreach': False}


def training_options(option_file, device, root, precision=None, channels_last=None, crop=None, synthetic=None,
                     adam=None):
    """The option dict BasicSR's parse_options would make for training, with outputs under ``root``.

    ``precision`` ('fp32' or 'bf16'), ``channels_last`` (bool) and ``adam`` ('fused' or 'foreach')
    override the file's training settings when given; ``crop`` the training crop; ``synthetic``
    ({num_scenes, size}) swaps the training data for synthetic scenes under ``datasets/synthetic`` of
    the current folder.
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


def _median_step_seconds(step, iterations, warmup, synchronize):
    times = []
    for index in range(warmup + iterations):
        start = time.perf_counter()
        step(index)
        synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(option_file, iterations=10, warmup=2, threads=1, device='cpu', precision=None, channels_last=None,
            crop=None, synthetic=None, adam=None):
    """Time one option file (and variant) in this process; returns a dict of the measurements."""
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


def measure_isolated(option_file, iterations=10, warmup=2, threads=1, device='cpu', precision=None,
                     channels_last=None, crop=None, synthetic=None, adam=None, timeout=3600):
    """:func:`measure` in a fresh Python process (environment threads pinned to ``threads``)."""
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    arguments = {'option_file': str(option_file), 'iterations': iterations, 'warmup': warmup, 'threads': threads,
                 'device': device, 'precision': precision, 'channels_last': channels_last, 'crop': crop,
                 'synthetic': synthetic, 'adam': adam}
    command = [sys.executable, '-m', 'fnf_basicsr.utils.training_benchmark', json.dumps(arguments)]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'timing {option_file} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_of_runs(runs):
    """One row from several fresh-process runs of the same variant: the median of each timing, the largest peak."""
    row = dict(runs[0], runs=len(runs))
    for key in ('seconds_per_iter_compute', 'seconds_per_iter_with_data'):
        row[key] = statistics.median(run[key] for run in runs)
    for key in ('peak_rss_mb', 'peak_cuda_mb'):
        row[key] = None if runs[0][key] is None else max(run[key] for run in runs)
    return row


def _baseline_key(row):
    return row['option_file'], row['device'], row['crop'], row['batch']


def markdown_table(rows):
    """One table of all rows; the speed-up is against the fp32 NCHW row of the same file, device and crop
    (with foreach Adam, the implementation before the option files chose fused, when both were timed)."""
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
