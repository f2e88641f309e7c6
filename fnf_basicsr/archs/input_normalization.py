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
import torch

from fnf_basicsr.data.input_layout import frames_in, image_channels, std_channels

INPUT_NORMALIZATIONS = ('none', 'frame_mean')
# Means below this (a black frame, a capture far darker than any training dimming) are clamped so
# the division stays finite.
MIN_FRAME_MEAN = 1e-4
# Name of the state-dict entry a normalising network carries (see PaddedUNet).
NORMALIZATION_MARKER = 'input_normalized_by_frame_mean'


def check_input_normalization(name):
    """``name`` if it is one of :data:`INPUT_NORMALIZATIONS`, else a ValueError naming the choices."""
    if name not in INPUT_NORMALIZATIONS:
        raise ValueError(f'input_normalization must be one of {list(INPUT_NORMALIZATIONS)} (network_g option), '
                         f'got {name!r}')
    return name


def frame_means(lq):
    """Mean of each frame's noisy image in ``lq`` (B, 6 * frames, H, W): float32 (B, frames), clamped."""
    num_frames = frames_in(lq.shape[1])
    means = [lq[:, image_channels(frame)].float().mean(dim=(1, 2, 3)) for frame in range(num_frames)]
    return torch.stack(means, dim=1).clamp_min(MIN_FRAME_MEAN)


def normalize_frames(lq, means=None):
    """``lq`` with every frame and its noise-std map divided by the frame's mean.

    Args:
        lq (Tensor): network input (B, 6 * frames, H, W), layout of :mod:`fnf_basicsr.data.input_layout`.
        means (Tensor, optional): (B, frames) means to divide by, e.g. :func:`frame_means` of the
            whole image when ``lq`` is one tile of it; default: those of ``lq`` itself.
    """
    num_frames = frames_in(lq.shape[1])
    means = frame_means(lq) if means is None else means
    scale = torch.ones(lq.shape[0], lq.shape[1], device=lq.device, dtype=torch.float32)
    for frame in range(num_frames):
        for channels in (image_channels(frame), std_channels(frame, num_frames)):
            scale[:, channels] = means[:, frame:frame + 1].float()
    return lq / scale[:, :, None, None].to(lq.dtype)
