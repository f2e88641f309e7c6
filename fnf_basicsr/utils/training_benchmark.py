"""What one training iteration of an option file costs: whole FnFModel steps, timed.

Each option file is measured in a fresh Python process (nothing cached, allocator and thread pools
new), with the model, loss, optimizer and dataset its file describes. Two timings per file, each
the median over ``iterations`` steps after ``warmup`` steps:

* compute: ``optimize_parameters`` on one batch fed once (forward, rendering, losses, backward,
  optimizer step);
* with data: the same, fed from BasicSR's own dataloader of the file's training dataset.

Timings are for reports (``scripts/benchmark_training.py``), never for tests.
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def training_options(option_file, device, root):
    """The option dict BasicSR's parse_options would make for training, with outputs under ``root``."""
    from basicsr.utils.options import ordered_yaml
    import yaml
    with open(option_file, encoding='utf-8') as handle:
        opt = yaml.load(handle, Loader=ordered_yaml()[0])
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=1 if device == 'cuda' else 0)
    opt['path'] = {**(opt.get('path') or {}), 'pretrain_network_g': None, 'resume_state': None}
    opt['path'].update({key: os.path.join(root, key) for key in
                        ('experiments_root', 'models', 'training_states', 'log', 'visualization')})
    train = dict(opt['datasets']['train'], phase='train', scale=opt.get('scale', 1))
    opt['datasets'] = {'train': train}
    return opt


def _median_step_seconds(step, iterations, warmup, synchronize):
    times = []
    for index in range(warmup + iterations):
        start = time.perf_counter()
        step(index)
        synchronize()
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(option_file, iterations=10, warmup=2, threads=1, device='cpu'):
    """Time one option file in this process; returns a dict of the measurements."""
    import torch
    import fnf_basicsr  # noqa: F401  (compatibility fixes and registration)
    from basicsr.data import build_dataloader, build_dataset
    from basicsr.data.data_sampler import EnlargedSampler
    from basicsr.models import build_model

    torch.set_num_threads(threads)
    synchronize = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    with tempfile.TemporaryDirectory() as root:
        opt = training_options(option_file, device, root)
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
            'device': device, 'threads': threads, 'seconds_per_iter_compute': compute,
            'seconds_per_iter_with_data': with_data,
            'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        }


def measure_isolated(option_file, iterations=10, warmup=2, threads=1, device='cpu', timeout=3600):
    """:func:`measure` in a fresh Python process (environment threads pinned to ``threads``)."""
    env = {**os.environ, 'OMP_NUM_THREADS': str(threads), 'MKL_NUM_THREADS': str(threads)}
    command = [sys.executable, '-m', 'fnf_basicsr.utils.training_benchmark', str(option_file), str(iterations),
               str(warmup), str(threads), device]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'timing {option_file} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def markdown_table(rows):
    lines = ['| option file | network | parameters | batch x crop | s/iter (compute) | s/iter (with data) | '
             'samples/s (with data) | peak RSS |', '|---|---|---|---|---|---|---|---|']
    for row in rows:
        lines.append(f"| `{row['option_file']}` | {row['network']} | {row['parameters']:,} | {row['batch']} x "
                     f"{row['crop']} | {row['seconds_per_iter_compute']:.3f} | {row['seconds_per_iter_with_data']:.3f}"
                     f" | {row['batch'] / row['seconds_per_iter_with_data']:.2f} | {row['peak_rss_mb']:.0f} MB |")
    return '\n'.join(lines)


if __name__ == '__main__':
    file, iterations, warmup, threads, device = sys.argv[1:6]
    print(json.dumps(measure(file, int(iterations), int(warmup), int(threads), device)))
