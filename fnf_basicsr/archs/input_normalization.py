"""Frame-mean normalisation of what the encoder sees (our option; the released code feeds raw frames).

A no-flash frame dimmed 50x has a mean near 0.005 and a noise-std map as small, while the flash
frame is about a hundred times brighter. Freshly initialised convolutions therefore see almost
nothing of the no-flash image, nor how noisy it is, and Adam's small steps take tens of thousands
of iterations to scale those weights up. With ``input_normalization: frame_mean`` the encoder gets
every frame and its noise-std map divided by that frame's mean (per image), so its inputs are of
order one at any dimming. The kernels still filter the raw frames, so the output of a
kernel-predicting network keeps the input's brightness without any rescaling.

Tiled inference passes whole-image means (:func:`frame_means` of the full input) so that every
tile is normalised alike.
"""
from __future__ import annotations

import torch

from fnf_basicsr.data.input_layout import frames_in, image_channels, std_channels

INPUT_NORMALIZATIONS = ('none', 'frame_mean')
# Means below this (a black frame, a capture far darker than any training dimming) are clamped so
# the division stays finite.
MIN_FRAME_MEAN = 1e-4
# Name of the state-dict entry a normalising network carries (see PaddedUNet).
NORMALIZATION_MARKER = 'input_normalized_by_frame_mean'


def check_input_normalization(name: str) -> str:
    """``name`` if it is one of :data:`INPUT_NORMALIZATIONS`, else a ValueError naming the choices.

    Args:
        name: the ``input_normalization`` option of ``network_g``.

    Returns:
        ``name``, unchanged.

    Raises:
        ValueError: ``name`` is not one of :data:`INPUT_NORMALIZATIONS`.

    Example:
        >>> check_input_normalization('frame_mean')
        'frame_mean'
    """
    if name not in INPUT_NORMALIZATIONS:
        raise ValueError(f'input_normalization must be one of {list(INPUT_NORMALIZATIONS)} (network_g option), '
                         f'got {name!r}')
    return name


def frame_means(lq: torch.Tensor) -> torch.Tensor:
    """Mean of each frame's noisy image in ``lq``, clamped below at :data:`MIN_FRAME_MEAN`.

    Args:
        lq: network input, layout of :mod:`fnf_basicsr.data.input_layout`.

    Returns:
        float32 means, one per sample and frame.

    Shape:
        - lq: (B, 6 * frames, H, W).
        - output: (B, frames).

    Example:
        >>> lq = torch.cat([torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 4, 4), 2.0), torch.ones(1, 6, 4, 4)], 1)
        >>> frame_means(lq)
        tensor([[0.5000, 2.0000]])
    """
    num_frames = frames_in(lq.shape[1])
    means = [lq[:, image_channels(frame)].float().mean(dim=(1, 2, 3)) for frame in range(num_frames)]
    return torch.stack(means, dim=1).clamp_min(MIN_FRAME_MEAN)


def normalize_frames(lq: torch.Tensor, means: torch.Tensor | None = None) -> torch.Tensor:
    """``lq`` with every frame and its noise-std map divided by the frame's mean.

    Args:
        lq: network input, layout of :mod:`fnf_basicsr.data.input_layout`.
        means: (B, frames) means to divide by, e.g. :func:`frame_means` of the whole image when
            ``lq`` is one tile of it; default: those of ``lq`` itself.

    Returns:
        The normalised input, of ``lq``'s dtype.

    Shape:
        - lq: (B, 6 * frames, H, W).
        - means: (B, frames).
        - output: (B, 6 * frames, H, W).

    Example:
        >>> lq = torch.cat([torch.full((1, 3, 2, 2), 0.5), torch.full((1, 3, 2, 2), 0.1)], dim=1)
        >>> normalize_frames(lq)[0, :, 0, 0]
        tensor([1.0000, 1.0000, 1.0000, 0.2000, 0.2000, 0.2000])
    """
    num_frames = frames_in(lq.shape[1])
    means = frame_means(lq) if means is None else means
    scale = torch.ones(lq.shape[0], lq.shape[1], device=lq.device, dtype=torch.float32)
    for frame in range(num_frames):
        for channels in (image_channels(frame), std_channels(frame, num_frames)):
            scale[:, channels] = means[:, frame:frame + 1].float()
    return lq / scale[:, :, None, None].to(lq.dtype)
