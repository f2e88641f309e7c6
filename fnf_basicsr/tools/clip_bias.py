"""How a checkpoint fares on clipped inputs: every PNG/TIFF capture and sensor hold no negative value.

The paper's degradation (and its released test set) keeps the negative part of the noise; a file cannot.
For synthetic test scenes at each dimming factor this scores the checkpoint on the same noisy pair three
ways: as simulated (float), clipped to [0, 1], and clipped and quantised to 16 bits (what a PNG holds), and
prints PSNR on rendered sRGB and the mean error per sRGB channel (a colour cast shows as a bias).

Example:
    python scripts/evaluation/clip_bias.py experiments/train_fnf_long_synthetic/models/net_g_latest.pth
"""
import argparse

import numpy as np
import torch

from fnf_basicsr.data.degradation import assemble_input
from fnf_basicsr.data.input_layout import FRAMES, image_channels
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT
from fnf_basicsr.data.synthetic import simulated_test_capture
from fnf_basicsr.errors import report_errors
from fnf_basicsr.inference.checkpoint import load_network
from fnf_basicsr.inference.tiling import denoise_whole
from fnf_basicsr.utils.rendering import render_srgb

INPUTS = ('float', 'clipped', 'clipped 16-bit')


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('weights', help='checkpoint (.pth) with its option file beside it or in its experiment folder')
    parser.add_argument('--scenes', type=int, default=4, help='synthetic test scenes (default 4).')
    parser.add_argument('--size', type=int, default=256, help='crop side in pixels (default 256).')
    parser.add_argument('--dimming-factors', nargs='+', type=float, default=[100, 50, 25, 12.5],
                        help='dimming factors (default: the paper\'s 100 50 25 12.5).')
    return parser


def degraded_inputs(lq, input_mode):
    """The network input as simulated, clipped, and clipped then quantised to 16 bits (std maps recomputed)."""
    frames = [lq[image_channels(index)] for index in range(len(FRAMES[input_mode]))]

    def rebuilt(convert):
        converted = [convert(frame) for frame in frames]
        return assemble_input(converted[0], converted[1] if len(converted) > 1 else None, TEST_SIG_READ,
                              TEST_SIG_SHOT, input_mode)
    return {'float': lq, 'clipped': rebuilt(lambda f: f.clamp(0, 1)),
            'clipped 16-bit': rebuilt(lambda f: torch.round(f.clamp(0, 1) * 65535) / 65535)}


def measure(net, input_mode, scenes, size, dimming_factors):
    """{dimming: {input: (mean PSNR, mean per-channel error of the rendered result)}}."""
    results = {}
    for dimming in dimming_factors:
        scores = {name: [] for name in INPUTS}
        for index in range(scenes):
            sample, metadata = simulated_test_capture(index, size, dimming, input_mode)
            matrix = torch.from_numpy(metadata.color_matrix).float()
            target = render_srgb(sample['gt'][None], dimming, matrix).clamp(0, 1)
            for name, lq in degraded_inputs(sample['lq'], input_mode).items():
                result = render_srgb(denoise_whole(net, lq[None])[None], dimming, matrix).clamp(0, 1)
                error = result - target
                scores[name].append((float(-10 * torch.log10((error ** 2).mean())), error.mean(dim=(0, 2, 3))))
        results[dimming] = {name: (float(np.mean([s[0] for s in rows])), torch.stack([s[1] for s in rows]).mean(0))
                            for name, rows in scores.items()}
    return results


def main(argv=None):
    args = build_parser().parse_args(argv)
    with report_errors('clip_bias.py'):
        loaded = load_network(args.weights)
        results = measure(loaded.net, loaded.input_mode, args.scenes, args.size, args.dimming_factors)
    print(f'{args.weights}: {args.scenes} synthetic test scenes, {args.size} px, PSNR on rendered sRGB '
          '(mean error R/G/B)')
    print('| dimming | ' + ' | '.join(INPUTS) + ' |')
    print('|---|' + '---|' * len(INPUTS))
    for dimming, row in results.items():
        cells = [f'{psnr:.2f} dB ({"/".join(f"{v:+.3f}" for v in bias.tolist())})' for psnr, bias in row.values()]
        print(f'| {dimming:g}x | ' + ' | '.join(cells) + ' |')
    return results


if __name__ == '__main__':
    main()
