"""The synthetic-pairs figure (fnf_basicsr.tools.make_synthetic_figure): tiles through the project's renderer, a
small PNG (a palette when the full-colour file is too large), the command end to end at a tiny size."""
import numpy as np
import torch
from PIL import Image

from fnf_basicsr.data.synthetic import render_scene
from fnf_basicsr.tools import make_synthetic_figure
from fnf_basicsr.utils.rendering import render_srgb


def test_tiles_are_the_project_rendering_clipped():
    ambient, _, metadata = render_scene(3, 16)
    tile = make_synthetic_figure.render_tile(ambient, 2.0, metadata.color_matrix)
    expected = render_srgb(torch.from_numpy(ambient).permute(2, 0, 1)[None], torch.tensor([2.0]),
                           torch.from_numpy(metadata.color_matrix))[0].permute(1, 2, 0).clamp(0, 1).numpy()
    assert tile.shape == (16, 16, 3) and np.array_equal(tile, expected)


def test_the_figure_is_written_small_with_a_palette_when_needed(tmp_path, monkeypatch, capsys):
    out = tmp_path / 'docs' / 'pairs.png'
    make_synthetic_figure.main(['--out', str(out), '--indices', '1', '--size', '24'])
    assert 'wrote' in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.mode == 'RGB' and image.size[0] > 3 * 24
    monkeypatch.setattr(make_synthetic_figure, 'MAX_BYTES', 1)  # too large at any size: quantised
    size = make_synthetic_figure.save_small_png(make_synthetic_figure.make_figure([1], 24), out)
    with Image.open(out) as image:
        assert image.mode == 'P' and out.stat().st_size == size
