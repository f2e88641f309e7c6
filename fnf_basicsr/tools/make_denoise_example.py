"""Make the README's denoising example: a synthetic low-light capture through ``fnf-denoise``.

1. Renders a synthetic test-split scene (never seen in training) and degrades it with the
   project's one degradation (:func:`fnf_basicsr.data.degradation.make_sample`: dimmed, flash
   added, hand-held misalignment, the paper's test noise), then writes the noisy no-flash and
   flash photos as 16-bit linear PNGs with FAID color metadata, as a camera pipeline would.
2. Runs the command on them (in a subprocess, exactly as a user would) and prints it, so the
   README can quote it.
3. Writes a labelled figure: noisy no-flash | flash | result | ground truth. The no-flash photo,
   the result and the ground truth share the command's automatic gain (recomputed from the
   saved linear result with the same function); the flash photo has its own, being far brighter.
   PSNRs are on the rendered, clipped images.

The figure is refused when the result is not better than the noisy input (an untrained or wrong
checkpoint); ``--force`` writes it anyway, e.g. to try the script with a seed-built checkpoint
and ``--figure`` somewhere outside ``docs/``.

Usage:
    python scripts/figures/make_denoise_example.py      # experiments/train_fnf_synthetic/models/net_g_latest.pth
    python scripts/figures/make_denoise_example.py --weights CKPT --figure /tmp/example.png --force
"""
import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import torch

from fnf_basicsr.data.faid import encode_png16
from fnf_basicsr.data.input_layout import FLASH_FRAME, NOFLASH_FRAME, image_channels
from fnf_basicsr.data.synthetic import scene_name, simulated_test_capture
from fnf_basicsr.inference.capture_io import LINEAR_SUFFIX, auto_gain, read_image, write_atomically
from fnf_basicsr.utils.rendering import render_srgb
from fnf_basicsr.utils.files import remove_owned

REPO = Path(__file__).resolve().parents[2]
DEFAULT_WEIGHTS = REPO / 'experiments' / 'train_fnf_synthetic' / 'models' / 'net_g_latest.pth'
DEFAULT_FIGURE = REPO / 'docs' / 'denoise_example.png'
DEFAULT_WORK_DIR = REPO / 'results' / 'denoise_example'
LABEL_HEIGHT = 36


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--weights', type=Path, default=DEFAULT_WEIGHTS, help='checkpoint (net_g_*.pth).')
    parser.add_argument('--opt', type=Path, help='its option file, if not in its experiment folder.')
    parser.add_argument('--index', type=int, default=3, help='synthetic test-split scene index.')
    parser.add_argument('--size', type=int, default=512, help='side of the example, pixels.')
    parser.add_argument('--dimming', type=float, default=50.0, help='low-light factor (1/alpha), e.g. 50.')
    parser.add_argument('--work-dir', type=Path, default=DEFAULT_WORK_DIR, help='where the pair and result go.')
    parser.add_argument('--figure', type=Path, default=DEFAULT_FIGURE, help='the figure to write.')
    parser.add_argument('--force', action='store_true', help='write the figure even if the result is worse.')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    # the command runs from the repository root: paths given relative to here must still hold
    args.weights, args.work_dir, args.figure = (Path(p).resolve() for p in (args.weights, args.work_dir, args.figure))
    args.opt = Path(args.opt).resolve() if args.opt else None
    if not args.weights.is_file():
        raise SystemExit(f'{args.weights} does not exist: train the quickstart first (basicsr train -opt '
                         'options/synthetic/train_fnf.yml) or pass --weights')
    name = scene_name('test', args.index)
    noflash_path, flash_path, gt, color_matrix = write_capture(args.work_dir, name, args.index, args.size,
                                                               args.dimming)
    result_path = args.work_dir / f'{name}_denoised.png'
    linear_path = result_path.with_name(result_path.stem + LINEAR_SUFFIX)
    # this script's own outputs of an earlier run (through the deletion guard: plain files in the work folder only)
    remove_owned(args.work_dir, [result_path.name, linear_path.name])
    command = ['--noflash', noflash_path, '--flash', flash_path, '--weights', args.weights, '--out', result_path,
               '--save-linear'] + (['--opt', args.opt] if args.opt else [])
    quoted = ' '.join(shlex.quote(_display(part)) for part in command)
    print(f'running: fnf-denoise {quoted}  (same as python -m fnf_basicsr.denoise)', flush=True)
    subprocess.run([sys.executable, '-m', 'fnf_basicsr.denoise', *map(str, command)], check=True, cwd=REPO)

    linear = torch.from_numpy(read_image(linear_path).pixels)
    gain = auto_gain(linear.permute(2, 0, 1), color_matrix)  # the command's own automatic gain
    noisy = read_image(noflash_path).pixels
    flash = read_image(flash_path).pixels
    panels = {'noisy no-flash': render(noisy, gain, color_matrix),
              'flash': render(flash, auto_gain(torch.from_numpy(flash).permute(2, 0, 1), color_matrix), color_matrix),
              'fnf-denoise': cv2.cvtColor(cv2.imread(str(result_path)), cv2.COLOR_BGR2RGB) / 255.0,
              'ground truth': render(gt, gain, color_matrix)}
    truth = panels['ground truth']
    psnr_noisy, psnr_result = psnr(panels['noisy no-flash'], truth), psnr(panels['fnf-denoise'], truth)
    print(f'PSNR against the ground truth (rendered, gain {gain:.4g}): noisy {psnr_noisy:.2f} dB, '
          f'result {psnr_result:.2f} dB')
    if psnr_result <= psnr_noisy and not args.force:
        raise SystemExit(f'the result ({psnr_result:.2f} dB) is not better than the noisy input ({psnr_noisy:.2f} dB): '
                         f'is {args.weights} trained? Not writing {args.figure} (--force writes it anyway)')
    labels = [f'noisy no-flash ({psnr_noisy:.1f} dB)', 'flash', f'fnf-denoise ({psnr_result:.1f} dB)', 'ground truth']
    figure = compose(list(panels.values()), labels)
    ok, encoded = cv2.imencode('.png', cv2.cvtColor(figure, cv2.COLOR_RGB2BGR))
    write_atomically(args.figure, encoded.tobytes(), overwrite=True)
    print(f'wrote {args.figure}')


def write_capture(folder, name, index, size, dimming):
    """Render, degrade and write one pair; returns the two paths, the (H, W, 3) target and the color matrix."""
    sample, metadata = simulated_test_capture(index, size, dimming)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for suffix, frame in (('noflash', NOFLASH_FRAME), ('flash', FLASH_FRAME)):
        image = sample['lq'][image_channels(frame)].permute(1, 2, 0).clamp(0, 1).numpy()  # a sensor clips too
        path = folder / f'{name}_{suffix}.png'
        write_atomically(path, encode_png16(np.round(image * 65535).astype(np.uint16), metadata.to_text()),
                         overwrite=True)
        paths.append(path)
    return paths[0], paths[1], sample['gt'].permute(1, 2, 0).numpy(), metadata.color_matrix


def render(linear_hwc, gain, color_matrix):
    linear = torch.from_numpy(np.ascontiguousarray(linear_hwc)).permute(2, 0, 1)[None]
    return render_srgb(linear, gain, torch.from_numpy(color_matrix))[0].permute(1, 2, 0).clamp(0, 1).numpy()


def psnr(image, reference):
    return float(10 * np.log10(1.0 / np.mean((np.asarray(image, np.float64) - reference) ** 2)))


def compose(panels, labels):
    """Panels side by side, each under a white band with its label; uint8 RGB."""
    columns = []
    for panel, label in zip(panels, labels):
        image = np.round(np.clip(panel, 0, 1) * 255).astype(np.uint8)
        band = np.full((LABEL_HEIGHT, image.shape[1], 3), 255, np.uint8)
        cv2.putText(band, label, (8, LABEL_HEIGHT - 12), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
        columns.append(np.concatenate([band, image], axis=0))
    gap = np.full((columns[0].shape[0], 4, 3), 255, np.uint8)
    return np.concatenate([part for column in columns for part in (column, gap)][:-1], axis=1)


def _display(part):
    """Paths inside the repository relative to it (the README runs commands from its root)."""
    path = Path(part)
    if isinstance(part, Path) and path.resolve().is_relative_to(REPO):
        return str(path.resolve().relative_to(REPO))
    return str(part)


if __name__ == '__main__':
    main()
