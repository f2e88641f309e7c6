"""Measure the data pipeline's speed: synthetic scene generation and FlashNoFlashDataset throughput.

Renders a small synthetic split (scenes/s at ``--size``), packs it into an LMDB in each record
encoding (raw, png), then times training samples (random crop, homography, dimming, noise, std
maps) at ``--crop-size`` from the disk backend and both LMDBs in this process with one thread,
which is what one DataLoader worker does (PyTorch sets one thread per worker). Everything is
written to a fresh scratch folder that the tool creates in ``--root`` (default: the system's temporary
folder) and removes at the end; nothing else there is touched. This is a measurement tool, not a test.

Example:
    python scripts/profiling/profile_data.py --num-scenes 8 --samples 100
"""
import argparse
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import torch

from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.lmdb_store import ENCODINGS, create_lmdb
from fnf_basicsr.data.synthetic import ensure_synthetic_dataset


def time_generation(root, num_scenes, size):
    start = time.perf_counter()
    folder = ensure_synthetic_dataset(root, 'train', num_scenes, size, workers=1, progress=False)
    return folder, num_scenes / (time.perf_counter() - start)


def time_samples(options, num_samples, phase='train'):
    dataset = FlashNoFlashDataset({**options, 'phase': phase})
    dataset[0]  # opens files and warms caches
    start = time.perf_counter()
    for index in range(num_samples):
        dataset[index % len(dataset)]
    return num_samples / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--root', type=Path, default=Path(tempfile.gettempdir()),
                        help='folder in which a fresh scratch folder is made, then removed. Default: the temporary '
                        'folder.')
    parser.add_argument('--num-scenes', type=int, default=8, help='synthetic scenes to render. Default: 8.')
    parser.add_argument('--size', type=int, default=512, help='synthetic image size. Default: 512.')
    parser.add_argument('--crop-size', type=int, default=448, help='training crop size. Default: 448.')
    parser.add_argument('--samples', type=int, default=100, help='samples timed per configuration. Default: 100.')
    args = parser.parse_args(argv)

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    args.root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix='fnf_profile_data.', dir=args.root))  # ours alone: removed at the end
    try:
        measure(args, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def measure(args, scratch):
    folder, scenes_per_second = time_generation(scratch / 'synthetic', args.num_scenes, args.size)
    print(f'synthetic generation: {scenes_per_second:.3f} scenes/s at {args.size}x{args.size} (1 process)')

    backends = {'disk': {'dataroot': folder}}
    for encoding in ENCODINGS:
        lmdb_path = scratch / f'train_{encoding}.lmdb'
        start = time.perf_counter()
        report = create_lmdb(folder, lmdb_path, crop_size=args.size, stride=args.size // 2, progress=False,
                             encoding=encoding)
        print(f'LMDB ({encoding} records) packing + verification: {time.perf_counter() - start:.2f} s for '
              f'{args.num_scenes} scenes, {report["bytes"] / 2 ** 20:.1f} MiB of records')
        backends[f'lmdb {encoding}'] = {'dataroot': str(lmdb_path), 'io_backend': {'type': 'lmdb'}}

    common = {'crop_size': args.crop_size}
    print(f'FlashNoFlashDataset samples/s per worker at {args.crop_size}x{args.crop_size} (1 thread):')
    for backend, source in backends.items():
        for mode in ('flash_noflash', 'noflash'):
            rate = time_samples({**common, **source, 'input_mode': mode}, args.samples)
            print(f'  train  {backend:9s} {mode:14s} {rate:7.1f}')
    rate = time_samples({**common, **backends['disk']}, args.samples, phase='val')
    print(f'  val    disk      flash_noflash  {rate:7.1f}')


if __name__ == '__main__':
    main()
