"""Time and peak memory of ``fnf-denoise`` on a 12-megapixel capture pair (tiled inference).

Into a temporary folder it writes a 4000x3000 pair of 16-bit linear PNGs with FAID color
metadata (a synthetic scene rendered at 512 px, resized and noised: the content changes neither
time nor memory), and a checkpoint of the default full-width DeepFnF with random weights from a
seed plus its option file (the weights change neither either). Then, for each device, it runs
the whole command (reading, noise estimation, both tile passes, rendering, writing) in a fresh
Python subprocess and reports its wall time, its CPU time (user + system, all threads: on a shared
machine the wall time also counts the waits for other processes), and its peak memory: the peak
resident set size of that subprocess (``os.wait4``), and on CUDA ``torch.cuda.max_memory_allocated``.

Usage:
    python scripts/profiling/profile_tiling.py                         # CPU, and CUDA when available
    python scripts/profiling/profile_tiling.py --device cpu --tile 512 --overlap 64
    python scripts/profiling/profile_tiling.py --width 1024 --height 768   # a quick smaller run
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml

from fnf_basicsr.archs.deepfnf_arch import DeepFnF
from fnf_basicsr.data.degradation import FLASH_GAIN
from fnf_basicsr.data.faid import encode_png16
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT, add_noise
from fnf_basicsr.data.synthetic import SPLIT_SEED_OFFSETS, render_scene
from fnf_basicsr.inference.tiling import DEFAULT_OVERLAP, DEFAULT_TILE, plan_tiles

DIMMING = 0.05  # the no-flash exposure relative to the well-exposed ambient image
SCENE_SIZE = 512
# Runs the command in the subprocess and reports the CUDA peak, which only the process itself knows.
RUNNER = """
import json, sys, torch
from fnf_basicsr.denoise import main
main(sys.argv[1:])
peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
print('BENCHMARK ' + json.dumps({'cuda_peak_bytes': peak}))
"""


def write_pair(folder, width, height, seed):
    """A noisy no-flash / flash pair of the given size as 16-bit linear PNGs; returns their paths."""
    ambient, flash_only, metadata = render_scene(SPLIT_SEED_OFFSETS['test'] + seed, SCENE_SIZE)
    generator = torch.Generator().manual_seed(seed)
    paths = []
    for name, clean in (('bench_noflash.png', DIMMING * ambient),
                        ('bench_flash.png', FLASH_GAIN * flash_only + DIMMING * ambient)):
        resized = torch.from_numpy(cv2.resize(clean, (width, height), interpolation=cv2.INTER_CUBIC))
        noisy = add_noise(resized.clamp(min=0), TEST_SIG_READ, TEST_SIG_SHOT, generator).clamp(0, 1)
        path = folder / name
        path.write_bytes(encode_png16(np.round(noisy.numpy() * 65535).astype(np.uint16), metadata.to_text()))
        paths.append(path)
    return paths


def write_checkpoint(folder, seed):
    """The default DeepFnF with seeded random weights, saved as BasicSR saves it, and its option file."""
    torch.manual_seed(seed)
    models = folder / 'experiments' / 'benchmark' / 'models'
    models.mkdir(parents=True)
    torch.save({'params': DeepFnF().state_dict()}, models / 'net_g_latest.pth')
    options = {'name': 'benchmark', 'network_g': {'type': 'DeepFnF'}}
    (models.parent / 'benchmark.yml').write_text(yaml.safe_dump(options))
    return models / 'net_g_latest.pth'


def run_command(arguments, threads):
    """Run the denoiser in a fresh subprocess.

    Returns:
        dict with wall and CPU seconds, peak RSS and CUDA peak allocated bytes, and the output.
    """
    env = dict(os.environ)
    if threads:
        env['OMP_NUM_THREADS'] = str(threads)
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, '-c', RUNNER, *arguments], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env=env)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f'the denoiser failed (exit {process.returncode}):\n{output[-4000:]}')
    report = json.loads(next(line for line in output.splitlines() if line.startswith('BENCHMARK '))[10:])
    return {'seconds': seconds, 'cpu_seconds': usage.ru_utime + usage.ru_stime,
            'peak_rss': usage.ru_maxrss * 1024,  # ru_maxrss is in KiB on Linux
            'cuda_peak': report['cuda_peak_bytes'], 'output': output}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--width', type=int, default=4000)
    parser.add_argument('--height', type=int, default=3000)
    parser.add_argument('--tile', type=int, default=DEFAULT_TILE)
    parser.add_argument('--overlap', type=int, default=DEFAULT_OVERLAP)
    parser.add_argument('--device', choices=['all', 'cpu', 'cuda'], default='all',
                        help='all: CPU, and CUDA when available.')
    parser.add_argument('--threads', type=int, default=0, help='OMP_NUM_THREADS of the subprocess (0: default).')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    devices = ['cpu', 'cuda'] if args.device == 'all' else [args.device]
    if 'cuda' in devices and not torch.cuda.is_available():
        if args.device == 'cuda':
            raise SystemExit('no CUDA device here; use --device cpu')
        devices.remove('cuda')
    tiles = len(plan_tiles(args.height, args.width, args.tile, args.overlap))
    with tempfile.TemporaryDirectory(prefix='fnf_benchmark_') as tmp:
        folder = Path(tmp)
        noflash, flash = write_pair(folder, args.width, args.height, args.seed)
        weights = write_checkpoint(folder, args.seed)
        print(f'{args.width}x{args.height} pair ({args.width * args.height / 1e6:.1f} MP), full-width DeepFnF '
              f'(random weights), tile {args.tile}, overlap {args.overlap}: {tiles} tiles, two passes')
        for device in devices:
            out = folder / f'out_{device}.png'
            arguments = ['--noflash', str(noflash), '--flash', str(flash), '--weights', str(weights),
                         '--out', str(out), '--tile', str(args.tile), '--overlap', str(args.overlap),
                         '--device', device, '--no-progress']
            print(f'running: fnf-denoise {" ".join(arguments)}', flush=True)
            result = run_command(arguments, args.threads)
            line = (f'{device}: wall {result["seconds"]:.1f} s, CPU {result["cpu_seconds"]:.1f} s, '
                    f'peak RSS {result["peak_rss"] / 2 ** 30:.2f} GiB')
            if device == 'cuda':
                line += f', CUDA peak allocated {result["cuda_peak"] / 2 ** 30:.2f} GiB'
            print(line + f' (torch threads: {args.threads or torch.get_num_threads()}, CPU cores: {os.cpu_count()}, '
                  f'load average at the end: {os.getloadavg()[0]:.1f})', flush=True)


if __name__ == '__main__':
    main()
