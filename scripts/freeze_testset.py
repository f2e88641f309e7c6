#!/usr/bin/env python
"""Write a frozen test set: the paper's test protocol, degraded once and stored as files.

Freezing makes evaluations independent of library versions and random-number streams: every
method is scored on the very same noisy inputs. By default this is the paper's protocol
(Sec. 4): the 128 FAID test scenes, central 448x448 crops, sig_read = 10^-2.6, sig_shot =
10^-1.8, dimming factors 100, 50, 25, 12.5, and one random homography per scene (applied to the
flash, shared by its four dimming factors). ``--displacement-bins`` writes the Fig. 3 sweep
instead: 64 scenes at 50x, each once per displacement bin.

The samples are exactly FlashNoFlashDataset's val/test samples with the same options (the
script calls its ``simulate``). Each sample is one compressed ``.npz`` holding the noisy frames
of the requested input modes (``noflash``, ``flash``, ``noflash2``), ``gt``, ``gain``,
``color_matrix``, ``sig_read``, ``sig_shot``, ``displacement``, ``dimming`` and ``key``;
``manifest.json`` records the options and each file's SHA-256. Reading it back:
``FlashNoFlashDataset`` with ``frozen_root: <output>``.

The run is resumable: a sample whose file exists with the manifest's checksum is skipped. An
existing set written with other options is never touched unless ``--overwrite`` is given.

Example:
    python scripts/freeze_testset.py --dataroot datasets/FAID --output datasets/frozen/faid_test
    python scripts/freeze_testset.py --dataroot datasets/FAID --output datasets/frozen/faid_fig3 \\
        --displacement-bins 0 2 4 8 12 16 20
"""
import argparse
import io
import json
import shutil
import sys

from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import fnf_basicsr
from fnf_basicsr.data import faid
from fnf_basicsr.data.degradation import INPUT_MODES, REFERENCES
from fnf_basicsr.data.fnf_dataset import (DEFAULT_DIMMING_FACTORS, DEFAULT_MARGIN, FROZEN_FORMAT, FROZEN_FRAMES,
                                          FROZEN_MANIFEST, SCALE_PIVOTS, SUBSETS, FlashNoFlashDataset, file_sha256)
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT
from fnf_basicsr.utils.files import write_atomically

FIG3_DIMMING = 50.0
FIG3_NUM_IMAGES = 64


def frozen_options(args):
    """The dataset options of the frozen set (stored in the manifest)."""
    sweep = args.displacement_bins is not None
    dimming = args.dimming_factors or ([FIG3_DIMMING] if sweep else list(DEFAULT_DIMMING_FACTORS))
    max_images = args.max_images or (FIG3_NUM_IMAGES if sweep else None)
    return {
        'dataroot': str(args.dataroot), 'io_backend': args.io_backend, 'subset': resolve_subset(args),
        'crop_size': args.crop_size, 'margin': args.margin, 'reference': args.reference,
        'input_modes': args.input_modes, 'dimming_factors': dimming, 'sig_read': args.sig_read,
        'sig_shot': args.sig_shot, 'seed': args.seed, 'displacement_bins': args.displacement_bins,
        'scale_pivot': args.scale_pivot, 'max_images': max_images,
    }


def resolve_subset(args):
    """``auto``: the paper's test scenes if the folder holds any of them (FAID), else all (synthetic)."""
    if args.subset != 'auto':
        return args.subset
    if args.io_backend == 'lmdb':
        return 'test'
    names = set(faid.list_faid_names(args.dataroot))
    return 'test' if names & set(faid.load_test_split()) else 'all'


def build_dataset(options):
    return FlashNoFlashDataset({
        'phase': 'test', 'dataroot': options['dataroot'], 'io_backend': {'type': options['io_backend']},
        'subset': options['subset'], 'crop_size': options['crop_size'], 'margin': options['margin'],
        'reference': options['reference'], 'dimming_factors': options['dimming_factors'],
        'noise': {'sig_read': options['sig_read'], 'sig_shot': options['sig_shot']}, 'seed': options['seed'],
        'displacement_bins': options['displacement_bins'],
        'misalignment': {'scale_pivot': options['scale_pivot']}, 'max_images': options['max_images'],
    })


def sample_arrays(dataset, index, options):
    """Everything stored for sample ``index``: the frames of each mode, target and scalars."""
    arrays = {}
    for mode in options['input_modes']:
        sample = dataset.simulate(index, mode)
        for channel, name in enumerate(FROZEN_FRAMES[mode]):
            frame = sample['lq'][3 * channel:3 * channel + 3].numpy()
            if name in arrays and not np.array_equal(arrays[name], frame):
                raise RuntimeError(f'sample {index}: frame {name!r} differs between input modes')
            arrays[name] = frame
    arrays['gt'] = sample['gt'].numpy()
    for name in ('gain', 'color_matrix', 'displacement', 'dimming'):
        arrays[name] = sample[name].numpy()
    # The exact (float64) noise levels the frames were made with: the std channels are rebuilt from them.
    arrays['sig_read'], arrays['sig_shot'] = np.float64(options['sig_read']), np.float64(options['sig_shot'])
    arrays['key'] = np.array(sample['key'])
    return arrays


def encode_npz(arrays):
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def write_manifest(output, manifest):
    write_atomically(output / FROZEN_MANIFEST, json.dumps(manifest, indent=1).encode(), overwrite=True)


def prepare_output(output, options, overwrite):
    """The manifest to continue: a fresh one, or the existing one if written with the same options."""
    manifest_path = output / FROZEN_MANIFEST
    if output.exists() and overwrite:
        shutil.rmtree(output)
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get('options') != options:
            changed = sorted(key for key in set(options) | set(manifest.get('options', {}))
                             if manifest.get('options', {}).get(key) != options.get(key))
            raise FileExistsError(f'{output} holds a frozen set written with other options ({changed}); choose '
                                  f'another --output or pass --overwrite to replace it')
        return manifest
    if output.exists() and any(output.iterdir()):
        raise FileExistsError(f'{output} exists and is not a frozen set; choose another --output or pass '
                              f'--overwrite to replace its contents')
    output.mkdir(parents=True, exist_ok=True)
    return {'format': FROZEN_FORMAT, 'options': options, 'complete': False, 'samples': [],
            'software': {'fnf_basicsr': fnf_basicsr.__version__, 'torch': torch.__version__,
                         'numpy': np.__version__}}


def is_written(output, entry):
    path = output / entry['file']
    return entry.get('sha256') is not None and path.is_file() and file_sha256(path.read_bytes()) == entry['sha256']


def freeze(options, output, overwrite=False, progress=True):
    """Write (or complete) the frozen set; returns ``(written, skipped)`` sample counts."""
    output = Path(output)
    manifest = prepare_output(output, options, overwrite)
    dataset = build_dataset(options)
    done = {entry['index']: entry for entry in manifest['samples']}
    written = skipped = 0
    for index in tqdm(range(len(dataset)), desc=f'freeze {output.name}', unit='sample', disable=not progress):
        entry = done.get(index)
        if entry is not None and is_written(output, entry):
            skipped += 1
            continue
        arrays = sample_arrays(dataset, index, options)
        key = str(arrays['key'])
        payload = encode_npz(arrays)
        entry = {'index': index, 'key': key, 'file': f'{index:05d}_{key}.npz', 'sha256': file_sha256(payload)}
        write_atomically(output / entry['file'], payload, overwrite=True)
        done[index] = entry
        manifest['samples'] = [done[i] for i in sorted(done)]
        write_manifest(output, manifest)
        written += 1
    manifest['complete'] = True
    write_manifest(output, manifest)
    return written, skipped


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataroot', required=True, help='FAID-format folder (or LMDB with --io-backend lmdb).')
    parser.add_argument('--output', required=True, type=Path, help='folder to write the frozen set to.')
    parser.add_argument('--io-backend', choices=('disk', 'lmdb'), default='disk', help='how to read dataroot.')
    parser.add_argument('--subset', choices=('auto',) + SUBSETS, default='auto',
                        help='scenes to use: auto (the 128 paper test scenes when the folder holds FAID '
                        'names, else all, e.g. a synthetic test split), test, all, train, val.')
    parser.add_argument('--crop-size', type=int, default=448, help='central crop side. Default: 448.')
    parser.add_argument('--margin', type=int, default=DEFAULT_MARGIN,
                        help=f'pixels read around the crop for the warp. Default: {DEFAULT_MARGIN}.')
    parser.add_argument('--reference', choices=REFERENCES, default='noflash',
                        help='geometric reference (the other image is warped). Default: noflash.')
    parser.add_argument('--input-modes', nargs='+', choices=INPUT_MODES, default=list(INPUT_MODES),
                        help='input modes whose frames are stored. Default: all three.')
    parser.add_argument('--dimming-factors', nargs='+', type=float, default=None,
                        help='dimming factors. Default: 100 50 25 12.5 (with --displacement-bins: 50).')
    parser.add_argument('--sig-read', type=float, default=TEST_SIG_READ, help='read-noise std. Default: 10^-2.6.')
    parser.add_argument('--sig-shot', type=float, default=TEST_SIG_SHOT, help='shot-noise scale. Default: 10^-1.8.')
    parser.add_argument('--seed', type=int, default=0, help='base seed of homographies and noise. Default: 0.')
    parser.add_argument('--displacement-bins', nargs='+', type=float, default=None,
                        help='Fig. 3 sweep: bin edges of the mean displacement in pixels, e.g. 0 2 4 8 12 16 20.')
    parser.add_argument('--scale-pivot', choices=SCALE_PIVOTS, default='crop_center',
                        help='point the homography scales about: crop_center (default) or image_origin '
                        '(the released code).')
    parser.add_argument('--max-images', type=int, default=None,
                        help='use only the first N scenes. Default: all (with --displacement-bins: 64).')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output folder.')
    parser.add_argument('--quiet', action='store_true', help='no progress bar.')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        options = frozen_options(args)
        written, skipped = freeze(options, args.output, args.overwrite, progress=not args.quiet)
    except (FileExistsError, FileNotFoundError, ValueError, RuntimeError) as error:
        sys.exit(f'error: {error}')
    print(f'{args.output}: {written} samples written, {skipped} already present and verified')


if __name__ == '__main__':
    main()
