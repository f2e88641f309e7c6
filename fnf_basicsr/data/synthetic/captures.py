"""A synthetic test-split scene degraded as a test capture: the pairs the figure and clip-bias tools use."""
from __future__ import annotations

import numpy as np
import torch

from fnf_basicsr.data.degradation import make_sample
from fnf_basicsr.data.faid import ColorMetadata
from fnf_basicsr.data.homography import required_margin, sample_homography
from fnf_basicsr.data.noise import TEST_SIG_READ, TEST_SIG_SHOT
from fnf_basicsr.data.synthetic.render import render_scene
from fnf_basicsr.data.synthetic.splits import SPLIT_SEED_OFFSETS


def simulated_test_capture(index: int, size: int, dimming: float,
                           mode: str = 'flash_noflash') -> tuple[dict, ColorMetadata]:
    """Test-split scene ``index`` (never trained on) degraded with the paper's test noise and a hand-held homography.

    Everything is seeded by ``index``: the same arguments give the same pair.

    Args:
        index: the scene's number in the test split.
        size: side of the capture in pixels.
        dimming: low-light factor (1 / alpha).
        mode: input mode of the sample (:data:`fnf_basicsr.data.input_layout.INPUT_MODES`).

    Returns:
        ``(sample, metadata)``: :func:`~fnf_basicsr.data.degradation.make_sample`'s dict (``lq``, ``gt``, ...)
        and the scene's colour metadata.

    Example:
        >>> sample, metadata = simulated_test_capture(0, 32, 50.0)
        >>> tuple(sample['lq'].shape), metadata.color_matrix.shape
        ((12, 32, 32), (3, 3))
    """
    rng = np.random.default_rng(index)
    homography = sample_homography(size, rng)
    window = size + 2 * required_margin(homography, size)
    ambient, flash_only, metadata = render_scene(SPLIT_SEED_OFFSETS['test'] + index, window)
    sample = make_sample(ambient, flash_only, alpha=1.0 / dimming, sig_read=TEST_SIG_READ, sig_shot=TEST_SIG_SHOT,
                         homography=homography, crop_size=size, mode=mode,
                         generator=torch.Generator().manual_seed(index))
    return sample, metadata
