"""fnf-denoise: the clean ambient picture from a no-flash and a flash photo, with a trained checkpoint.

Reads a capture pair (linear 16-bit PNG/TIFF as FAID stores it, 8/16-bit sRGB PNG/JPEG, or DNG
raw with the ``raw`` extra), estimates the sensor noise from the no-flash photo unless given,
denoises it at full resolution tile by tile (:mod:`fnf_basicsr.inference.tiling`) and writes an
sRGB PNG brightened by an exposure gain. ``python -m fnf_basicsr.denoise`` is the same command.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import torch

from fnf_basicsr.data.degradation import assemble_input
from fnf_basicsr.data.faid import FaidFormatError
from fnf_basicsr.data.noise_estimation import NoiseEstimationError, estimate_noise
from fnf_basicsr.errors import ConfigError, FnFError, report_errors
from fnf_basicsr.inference.capture_io import (AUTO_GAIN_PERCENTILE, AUTO_GAIN_TARGET, ENCODINGS, LINEAR_SUFFIX,
                                              CaptureError, CapturePair, auto_gain, check_output_paths,
                                              encode_float_tiff, encode_srgb_png, find_pairs, number_problem,
                                              read_capture_pair, unpaired_entries, write_atomically)
from fnf_basicsr.inference.checkpoint import CheckpointError, load_network
from fnf_basicsr.inference.tiling import (DEFAULT_OVERLAP, DEFAULT_TILE, check_tiling, default_overlap, denoise_tiled,
                                          denoise_whole)
from fnf_basicsr.utils import hardware
from fnf_basicsr.utils.hardware import as_channels_last, set_channels_last
from fnf_basicsr.utils.rendering import render_srgb

PROG = 'fnf-denoise'
DENOISED_SUFFIX = '_denoised.png'
# Smallest capture side: the network pools 5 times (32 px) and DeepFnF's kernels reflect-pad by
# up to 28 px, which needs at least 29 px; below this a picture comes out as noise or black.
MIN_CAPTURE_SIDE = 32
USER_ERRORS = (FileNotFoundError, FileExistsError, CaptureError, CheckpointError, FaidFormatError,
               NoiseEstimationError, FnFError)

EPILOG = f"""inputs:
  16-bit PNG/TIFF (or float32 TIFF): linear camera RGB, FAID style; a PNG's FAID color metadata
    (text chunks Comment/Description) gives the color transform. FAID's _flash.png holds the flash
    light alone: pass --flash-only-input for such files (default: a real flash photo).
  8-bit PNG/JPEG (or 16-bit with --encoding srgb): sRGB pictures, linearised with the sRGB curve.
  DNG: camera raw via rawpy (pip install "fnf-basicsr[raw]").
  Folder mode pairs <Name>_noflash.<ext> + <Name>_flash.<ext>, or FAID's <Name>_ambient.png +
  <Name>_flash.png, and writes <out-dir>/<Name>{DENOISED_SUFFIX}.

outputs:
  an sRGB PNG (--bits 8 or 16) of the denoised no-flash photo times --gain; with --save-linear
  also <output stem>{LINEAR_SUFFIX}: float32 RGB TIFF of the network output, linear camera RGB at
  the no-flash photo's exposure (no gain, no color transform, not clipped).

examples:
  {PROG} --noflash scene_noflash.png --flash scene_flash.png \\
      --weights experiments/train_fnf/models/net_g_latest.pth --out scene_denoised.png
  {PROG} --input-dir captures/ --out-dir denoised/ --weights net_g_latest.pth --opt options/train_fnf.yml
  {PROG} --noflash a.dng --flash b.dng --weights net_g_latest.pth --out a.png --bits 16 --device cuda
"""


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``fnf-denoise``.

    Returns:
        The parser.

    Example:
        >>> args = build_parser().parse_args(['--noflash', 'a_noflash.png', '--flash', 'a_flash.png',
        ...                                   '--out', 'a.png', '--weights', 'net_g_latest.pth'])
        >>> args.tile, args.overlap, args.bits, args.encoding
        (512, None, 8, 'auto')
    """
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    single = parser.add_argument_group('one pair')
    single.add_argument('--noflash', type=Path, metavar='FILE', help='the no-flash (ambient) photo.')
    single.add_argument('--flash', type=Path, metavar='FILE', help='the flash photo of the same scene.')
    single.add_argument('--out', type=Path, metavar='FILE.png', help='the output PNG.')
    folder = parser.add_argument_group('a folder of pairs')
    folder.add_argument('--input-dir', type=Path, metavar='DIR', help='folder of capture pairs (naming below).')
    folder.add_argument('--out-dir', type=Path, metavar='DIR', help=f'folder for <Name>{DENOISED_SUFFIX}.')

    model = parser.add_argument_group('model')
    model.add_argument('--weights', type=Path, required=True, metavar='CKPT',
                       help='BasicSR checkpoint, experiments/<name>/models/net_g_<iter>.pth.')
    model.add_argument('--opt', type=Path, metavar='FILE',
                       help='training option file (network_g); default: the .yml in the experiment folder.')
    model.add_argument('--param-key', default='params', metavar='KEY',
                       help="checkpoint entry to load, BasicSR's rule (path.param_key_g): default params; "
                       'params_ema for the EMA weights; without that entry params is used, a bare state dict '
                       'as it is.')
    model.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto',
                       help='auto: CUDA when available, else CPU.')
    model.add_argument('--tile', type=int, default=DEFAULT_TILE,
                       help=f'tile size in pixels, a multiple of 32 (default {DEFAULT_TILE}); 0: the whole '
                       'image at once (memory grows with the image).')
    model.add_argument('--overlap', type=int, default=None,
                       help=f'minimum overlap of neighbouring tiles in pixels (default: twice the reach of the '
                            f"network's kernels, at least {DEFAULT_OVERLAP}; 64 for DeepFnF's K = 15, d = 4).")
    hardware.add_inference_arguments(model)

    capture = parser.add_argument_group('capture')
    capture.add_argument('--encoding', choices=ENCODINGS, default='auto',
                         help='pixel encoding of PNG/TIFF/JPEG inputs: auto = 8-bit sRGB, 16-bit/float linear.')
    capture.add_argument('--flash-only-input', action='store_true',
                         help='the flash file holds the flash light alone (FAID); the no-flash photo is added.')
    capture.add_argument('--exposure-ratio', type=float, metavar='R',
                         help='no-flash exposure / flash exposure (time x ISO); the flash photo is multiplied '
                         'by R. Default: from both files\' EXIF, else 1.')
    capture.add_argument('--sig-read', type=float, metavar='S',
                         help='read-noise std (linear [0, 1] units); with --sig-shot. Default: estimated.')
    capture.add_argument('--sig-shot', type=float, metavar='S',
                         help='shot-noise scale: variance = sig_read^2 + sig_shot^2 * intensity.')
    capture.add_argument('--color-matrix', type=float, nargs=9, metavar='M',
                         help='camera RGB -> linear sRGB, 9 numbers row-major; overrides the file metadata.')

    output = parser.add_argument_group('output')
    output.add_argument('--gain', type=float,
                        help=f'exposure gain applied before the sRGB curve; default: automatic (the '
                        f'{AUTO_GAIN_PERCENTILE:g}th percentile of luminance maps to sRGB {AUTO_GAIN_TARGET}).')
    output.add_argument('--bits', type=int, choices=[8, 16], default=8, help='bits per sample of the PNG.')
    output.add_argument('--save-linear', action='store_true',
                        help=f'also write <output stem>{LINEAR_SUFFIX} (float32 linear camera RGB).')
    output.add_argument('--overwrite', action='store_true', help='replace existing outputs (never an input).')
    output.add_argument('--no-progress', action='store_true', help='no progress bars.')
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns 0, or exits 2 with one line naming the problem and the fix (130 on Ctrl-C).

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        0 on success.

    Raises:
        SystemExit: bad arguments or a user error (2), or Ctrl-C (130).
    """
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else list(argv))
    _check_arguments(parser, args)
    with report_errors(PROG, USER_ERRORS):
        _check_numbers(args)
        run(args)
    return 0


def run(args: argparse.Namespace) -> None:
    """Load the checkpoint, then read, denoise, render and write every pair, printing what it reads and assumes.

    Args:
        args: parsed by :func:`build_parser` and checked.

    Raises:
        CheckpointError, CaptureError, NoiseEstimationError, FnFError: see :data:`USER_ERRORS`.
    """
    device = _device(args.device)
    loaded = load_network(args.weights, args.opt, args.param_key, device)
    print(f'network: {loaded.describe()} on {device}')
    if not trained_on_clipped_inputs(loaded.option_file):
        print(f'note: {loaded.option_file} trains without clip_input: true, so the network never saw the clipped '
              'noise that image files and sensors hold; dark captures may come out with a magenta cast '
              '(docs/denoising.md; options/synthetic/train_fnf_long_captures.yml fine-tunes for files)')
    args.runtime = tuple(choice.value for choice in hardware.resolve_inference(args, device))
    if loaded.input_mode == 'noflash_burst':
        raise CheckpointError(f'{args.weights} was trained on 2-frame no-flash bursts (input_mode noflash_burst); '
                              f'{PROG} denoises flash/no-flash pairs: use a flash_noflash checkpoint')
    uses_flash = loaded.input_mode == 'flash_noflash'
    jobs = _jobs(args, uses_flash)
    inputs = [path for _, noflash, flash, _ in jobs for path in (noflash, flash)]
    outputs = [path for *_, out in jobs for path in (out, _linear_path(out) if args.save_linear else None) if path]
    check_output_paths(outputs, inputs, args.overwrite)
    for name, noflash_path, flash_path, out in jobs:
        print(f'{name}:')
        pair = read_capture_pair(noflash_path, flash_path if uses_flash else None, args.encoding,
                                 args.flash_only_input, args.exposure_ratio, args.color_matrix)
        for note in pair.notes:
            print(f'  {note}')
        _check_capture_size(pair)
        linear = denoise_capture(loaded.net, pair, loaded.input_mode, args, device)
        gain = args.gain if args.gain is not None else auto_gain(linear, pair.color_matrix)
        print(f'  gain {gain:.4g}' + (' (--gain)' if args.gain is not None else ' (automatic)'))
        srgb = render_srgb(linear[None], gain, torch.from_numpy(pair.color_matrix))[0].permute(1, 2, 0).numpy()
        write_atomically(out, encode_srgb_png(srgb, args.bits), args.overwrite)
        print(f'  wrote {out} ({args.bits}-bit sRGB, {srgb.shape[1]}x{srgb.shape[0]})')
        if args.save_linear:
            write_atomically(_linear_path(out), encode_float_tiff(linear.permute(1, 2, 0).numpy()), args.overwrite)
            print(f'  wrote {_linear_path(out)} (float32 linear camera RGB)')


def denoise_capture(net: torch.nn.Module, pair: CapturePair, input_mode: str, args: argparse.Namespace,
                    device: torch.device) -> torch.Tensor:
    """The network's (3, H, W) linear estimate of the no-flash photo, tiled as the options say.

    Args:
        net: the network, in eval mode, on ``device``.
        pair: the capture.
        input_mode: the network's ``lq`` layout.
        args: the command's options (``sig_read``, ``sig_shot``, ``tile``, ``overlap``, ``no_progress``) and
            ``runtime``, the resolved ``(precision, channels_last)``.
        device: where the network runs.

    Returns:
        The estimate, float32 on the CPU.

    Shape:
        - pair.noflash, pair.flash: (H, W, 3).
        - output: (3, H, W).

    Example:
        >>> import numpy as np
        >>> from fnf_basicsr.archs.kpn_arch import KPN
        >>> photo = np.full((40, 48, 3), 0.05, np.float32)
        >>> pair = CapturePair(photo, photo * 4, np.eye(3, dtype=np.float32), Path('a_noflash.png'))
        >>> args = argparse.Namespace(sig_read=0.01, sig_shot=0.02, tile=32, overlap=0, no_progress=True,
        ...                           runtime=('fp32', False))
        >>> net = KPN(kernel_size=3, width=0.0625).eval()
        >>> denoise_capture(net, pair, 'flash_noflash', args, torch.device('cpu')).shape
          noise: sig_read=0.01 sig_shot=0.02 (given)
        torch.Size([3, 40, 48])
    """
    sig_read, sig_shot = noise_parameters(pair, args.sig_read, args.sig_shot)
    noflash = torch.from_numpy(pair.noflash).permute(2, 0, 1)
    flash = torch.from_numpy(pair.flash).permute(2, 0, 1) if pair.flash is not None else None

    precision, channels_last = args.runtime
    set_channels_last(net, channels_last)  # tiles keep their layout through .to(device)

    def read_tile(tile):
        second = flash[:, tile.rows, tile.cols] if flash is not None else None
        lq = assemble_input(noflash[:, tile.rows, tile.cols], second, sig_read, sig_shot, input_mode)[None]
        return as_channels_last(lq, channels_last)

    height, width = pair.noflash.shape[:2]
    with hardware.autocast(precision, device):
        if args.tile == 0:
            lq = assemble_input(noflash, flash, sig_read, sig_shot, input_mode)[None]
            return denoise_whole(net, as_channels_last(lq, channels_last), device)
        overlap = default_overlap(net) if args.overlap is None else args.overlap
        check_tiling(args.tile, overlap)
        return denoise_tiled(net, read_tile, height, width, args.tile, overlap, device,
                             progress=not args.no_progress)


def trained_on_clipped_inputs(option_file) -> bool:
    """Whether the training set of an option file clipped its noisy inputs (``clip_input: true``), as files are;
    the authors' converted model and any file without a train set count as not (their noise was not clipped)."""
    from fnf_basicsr.utils.options import load_option_file
    try:
        train = ((load_option_file(option_file).get('datasets') or {}).get('train') or {})
    except FnFError:
        return False
    return bool(train.get('clip_input')) or bool(train.get('isp'))  # the ISP's 8-bit images clip too


def noise_parameters(pair: CapturePair, sig_read: float | None = None,
                     sig_shot: float | None = None) -> tuple[float, float]:
    """The given noise parameters, else the file's (DNG NoiseProfile), else estimated (printed).

    The estimate uses the no-flash photo, and the flash photo too when it was taken with the same
    exposure settings: its bright regions show the shot noise that a dark no-flash photo hides.

    Args:
        pair: the capture.
        sig_read: the read-noise std given, or None.
        sig_shot: the shot-noise scale given, or None.

    Returns:
        ``(sig_read, sig_shot)``.

    Raises:
        NoiseEstimationError: they must be estimated and the photos hold too few flat blocks.

    Example:
        >>> import numpy as np
        >>> photo = np.zeros((8, 8, 3), np.float32)
        >>> pair = CapturePair(photo, None, np.eye(3), Path('a.dng'), noise=(0.002, 0.01))
        >>> noise_parameters(pair, 0.01, 0.03)
          noise: sig_read=0.01 sig_shot=0.03 (given)
        (0.01, 0.03)
        >>> noise_parameters(pair)
          noise: sig_read=0.002 sig_shot=0.01 (DNG NoiseProfile of a.dng)
        (0.002, 0.01)
    """
    if sig_read is not None and sig_shot is not None:
        print(f'  noise: sig_read={sig_read:.4g} sig_shot={sig_shot:.4g} (given)')
        return sig_read, sig_shot
    if pair.noise is not None:
        print(f'  noise: sig_read={pair.noise[0]:.4g} sig_shot={pair.noise[1]:.4g} (DNG NoiseProfile of '
              f'{pair.noflash_path.name})')
        return pair.noise
    images = (pair.noflash, pair.flash) if pair.flash_shares_noise else (pair.noflash,)
    estimate = estimate_noise(*images)
    source = 'the no-flash and flash photos' if len(images) == 2 else 'the no-flash photo'
    print(f'  noise: {estimate} (estimated from {source})')
    return estimate.sig_read, estimate.sig_shot


def _check_arguments(parser, args):
    single, folder = args.noflash is not None, args.input_dir is not None
    if single == folder:
        parser.error('give either --noflash FILE [--flash FILE] --out FILE.png, or --input-dir DIR --out-dir DIR')
    if single and (args.out is None or args.out_dir is not None):
        parser.error('with --noflash, give the output file with --out FILE.png (--out-dir is for --input-dir)')
    if folder and (args.out_dir is None or args.out is not None or args.flash is not None):
        parser.error('with --input-dir, give --out-dir DIR (the pairs are found in the folder; no --out/--flash)')
    if single and args.out.suffix.lower() != '.png':
        parser.error(f'the output is written as PNG: give --out a .png path, got {args.out}')
    if (args.sig_read is None) != (args.sig_shot is None):
        parser.error('give both --sig-read and --sig-shot, or neither (then they are estimated)')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda: no CUDA device is available here; use --device cpu (or auto)')
    if args.tile != 0:
        try:
            check_tiling(args.tile, DEFAULT_OVERLAP if args.overlap is None else args.overlap)
        except ValueError as error:
            parser.error(str(error))


def _check_numbers(args):
    """Noise levels, gain and exposure ratio are finite and within what a capture can mean (one line each)."""
    for name in ('sig_read', 'sig_shot', 'gain', 'exposure_ratio'):
        problem = number_problem(f'--{name.replace("_", "-")}', getattr(args, name))
        if problem:
            raise ConfigError(problem)


def _jobs(args, uses_flash):
    """(name, noflash, flash, output) for every pair to denoise."""
    if args.input_dir is None:
        if uses_flash and args.flash is None:
            raise CaptureError('this checkpoint takes a flash/no-flash pair: give the flash photo with --flash FILE')
        if not uses_flash and args.flash is not None:
            print(f'note: the checkpoint is a no-flash-only network; {args.flash} is not used')
        _faid_hint(args, [args.noflash])
        return [(args.noflash.stem, args.noflash, args.flash, args.out)]
    pairs = find_pairs(args.input_dir)
    for entry, reason in unpaired_entries(args.input_dir, pairs):
        print(f'note: not paired, skipped: {entry.name}{"/" if entry.is_dir() else ""} ({reason})')
    _faid_hint(args, [noflash for _, noflash, _ in pairs])
    return [(name, noflash, flash, args.out_dir / f'{name}{DENOISED_SUFFIX}') for name, noflash, flash in pairs]


def _faid_hint(args, noflash_paths):
    """FAID's _flash.png holds the flash light alone: say so when the names are FAID's and the flag is missing."""
    if not args.flash_only_input and any(Path(path).stem.endswith('_ambient') for path in noflash_paths):
        print('note: FAID naming (<Name>_ambient.png); if these are FAID files, their _flash.png holds the flash '
              'light alone: pass --flash-only-input')


def _check_capture_size(pair):
    height, width = pair.noflash.shape[:2]
    if min(height, width) < MIN_CAPTURE_SIDE:
        raise CaptureError(f'{pair.noflash_path} is {width}x{height} pixels; the network needs at least '
                           f'{MIN_CAPTURE_SIDE}x{MIN_CAPTURE_SIDE}: use a larger capture')


def _linear_path(out):
    return out.with_name(f'{out.stem}{LINEAR_SUFFIX}')


def _device(choice):
    if choice == 'auto':
        return torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    return torch.device(choice)


if __name__ == '__main__':
    sys.exit(main())
