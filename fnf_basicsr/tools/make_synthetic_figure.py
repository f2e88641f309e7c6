"""Draw docs/synthetic_pairs.png: what the synthetic flash/no-flash scenes look like.

One row per scene of the synthetic test split; the columns are
(1) the flash image the camera records, 2 * flash-only + alpha * ambient (the dataset's model of a
flash capture in a room dimmed by alpha), (2) the ambient image (the denoising target), and
(3) the flash-only image. Each is rendered to sRGB with the scene's own color matrix by
``render_srgb``, exactly as the training loss and the metrics see images.

Example:
    python scripts/figures/make_synthetic_figure.py
"""
import argparse
import io
from pathlib import Path

import torch
from PIL import Image

from fnf_basicsr.data.synthetic import SPLIT_SEED_OFFSETS, render_scene, scene_name
from fnf_basicsr.utils.rendering import render_srgb

REPO_ROOT = Path(__file__).resolve().parents[2]
ALPHA = 1 / 20  # dimming of the ambient light in the flash column
FLASH_GAIN = 0.5  # the flash image is 2 * flash-only + ...: halve it to show it well exposed
MAX_BYTES = 400_000


def render_tile(camera_rgb, gain, color_matrix):
    """(H, W, 3) linear camera RGB -> (H, W, 3) sRGB in [0, 1] via the project's renderer."""
    linear = torch.from_numpy(camera_rgb).permute(2, 0, 1)[None]
    srgb = render_srgb(linear, torch.tensor([gain]), torch.from_numpy(color_matrix))
    return srgb[0].permute(1, 2, 0).clamp(0, 1).numpy()


def make_figure(indices, size):
    # imported here: choosing the backend is the command's business, not that of importing this module
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    columns = (f'flash image\n2 x flash-only + ambient / {round(1 / ALPHA)}',
               'ambient (no flash)\nwarm lamp, soft shadows', 'flash-only\ninverse-square, thin shadows')
    figure, axes = plt.subplots(len(indices), 3, figsize=(7.5, 2.6 * len(indices)), dpi=100, squeeze=False)
    for row, index in enumerate(indices):
        ambient, flash_only, metadata = render_scene(SPLIT_SEED_OFFSETS['test'] + index, size)
        matrix = metadata.color_matrix
        tiles = (render_tile(2 * flash_only + ALPHA * ambient, FLASH_GAIN, matrix),
                 render_tile(ambient, 1.0, matrix), render_tile(flash_only, 1.0, matrix))
        for column, tile in enumerate(tiles):
            axis = axes[row, column]
            axis.imshow(tile, interpolation='none')
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(columns[column], fontsize=9)
            if column == 0:
                axis.set_ylabel(scene_name('test', index), fontsize=8)
    figure.tight_layout()
    return figure


def save_small_png(figure, path):
    """Save as PNG; fall back to a 256-color palette if the full-color file exceeds MAX_BYTES."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format='png')
    image = Image.open(buffer).convert('RGB')
    output = io.BytesIO()
    image.save(output, format='png', optimize=True)
    if output.tell() > MAX_BYTES:  # an adaptive palette with error diffusion keeps smooth shading smooth
        palette = image.quantize(256, method=Image.Quantize.MEDIANCUT)
        output = io.BytesIO()
        image.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG).save(output, format='png', optimize=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(output.getvalue())
    return output.tell()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--out', type=Path, default=REPO_ROOT / 'docs' / 'synthetic_pairs.png',
                        help='output PNG (default: docs/synthetic_pairs.png in the repository)')
    parser.add_argument('--indices', type=int, nargs='+', default=[1, 2, 3],
                        help='scene indices of the synthetic test split (default: %(default)s)')
    parser.add_argument('--size', type=int, default=224, help='rendered size in pixels (default: %(default)s)')
    args = parser.parse_args(argv)
    size_bytes = save_small_png(make_figure(args.indices, args.size), args.out)
    print(f'wrote {args.out} ({size_bytes / 1000:.0f} KB)')


if __name__ == '__main__':
    main()
