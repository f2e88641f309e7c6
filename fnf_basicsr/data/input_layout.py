"""The channel layout of the network input ``lq``, for every input mode.

``lq`` stacks the noisy frames first, then one noise-std map per frame in the same order: for the
flash/no-flash pair, noisy no-flash 0:3, noisy flash 3:6, std of the no-flash 6:9, std of the
flash 9:12 (paper Sec. 3). Frame 0 is always the no-flash image whose geometry and exposure the
network's output has; the second frame, where there is one, is the flash (``flash_noflash``) or a
second no-flash exposure (``noflash_burst``). The std maps come from :mod:`fnf_basicsr.data.noise`.

Everything that builds ``lq``, reads a frame or a std map out of it, or infers a mode from a
channel count uses this module, so the layout is stated here only.
"""
from __future__ import annotations

COLOR_CHANNELS = 3
# Channels of ``lq`` per frame: the frame and its noise-std map.
CHANNELS_PER_FRAME = 2 * COLOR_CHANNELS
# The frames of each input mode, in ``lq`` order (also the array names of a frozen test set).
FRAMES = {'flash_noflash': ('noflash', 'flash'), 'noflash': ('noflash',), 'noflash_burst': ('noflash', 'noflash2')}
INPUT_MODES = tuple(FRAMES)
NOFLASH_FRAME = 0
FLASH_FRAME = 1  # in ``flash_noflash``


def check_input_mode(mode: str) -> None:
    """Raise a ValueError naming the choices unless ``mode`` is one of :data:`INPUT_MODES`.

    Args:
        mode: the input mode to check.

    Raises:
        ValueError: ``mode`` is no input mode.

    Example:
        >>> check_input_mode('flash_noflash')
        >>> check_input_mode('flash')
        Traceback (most recent call last):
            ...
        ValueError: input mode must be one of ['flash_noflash', 'noflash', 'noflash_burst'], got 'flash'
    """
    if mode not in INPUT_MODES:
        raise ValueError(f'input mode must be one of {list(INPUT_MODES)}, got {mode!r}')


def frame_count(mode: str) -> int:
    """Number of frames in the ``lq`` of an input mode (2, 1 or 2).

    Args:
        mode: one of :data:`INPUT_MODES`.

    Returns:
        The number of frames.

    Raises:
        ValueError: ``mode`` is no input mode.

    Example:
        >>> [frame_count(mode) for mode in INPUT_MODES]
        [2, 1, 2]
    """
    check_input_mode(mode)
    return len(FRAMES[mode])


def input_channels(mode: str) -> int:
    """Number of ``lq`` channels for an input mode (12, 6 or 12).

    Args:
        mode: one of :data:`INPUT_MODES`.

    Returns:
        The number of channels: frames and their std maps.

    Raises:
        ValueError: ``mode`` is no input mode.

    Example:
        >>> [input_channels(mode) for mode in INPUT_MODES]
        [12, 6, 12]
    """
    return CHANNELS_PER_FRAME * frame_count(mode)


def input_mode_for_channels(channels: int) -> str:
    """The input mode assumed for a network of ``channels`` input channels whose options name none.

    One frame is ``noflash``; anything else is taken for the flash/no-flash pair (12 channels are a
    pair or a burst alike, and the pair is the project's main job), so a channel count no mode has
    is caught when it is compared with :func:`input_channels` of the result.

    Args:
        channels: the network's input channels.

    Returns:
        ``'noflash'`` or ``'flash_noflash'``.

    Example:
        >>> input_mode_for_channels(6), input_mode_for_channels(12)
        ('noflash', 'flash_noflash')
    """
    return 'noflash' if channels == input_channels('noflash') else 'flash_noflash'


def frames_in(channels: int) -> int:
    """Number of frames in an ``lq`` of ``channels`` channels (a whole number only for a valid layout).

    Args:
        channels: the channels of ``lq``.

    Returns:
        ``channels // CHANNELS_PER_FRAME``.

    Example:
        >>> frames_in(12), frames_in(6)
        (2, 1)
    """
    return channels // CHANNELS_PER_FRAME


def image_channels(frame: int) -> slice:
    """Channels of the noisy image of frame ``frame`` (0 = no-flash), as a slice of ``lq``'s channel axis.

    Args:
        frame: the frame's index in ``lq`` (:data:`NOFLASH_FRAME`, :data:`FLASH_FRAME`).

    Returns:
        The slice of its three color channels.

    Example:
        >>> image_channels(NOFLASH_FRAME), image_channels(FLASH_FRAME)
        (slice(0, 3, None), slice(3, 6, None))
    """
    return slice(frame * COLOR_CHANNELS, (frame + 1) * COLOR_CHANNELS)


def std_channels(frame: int, num_frames: int) -> slice:
    """Channels of the noise-std map of frame ``frame`` in an ``lq`` of ``num_frames`` frames.

    Args:
        frame: the frame's index in ``lq``.
        num_frames: the frames in ``lq`` (:func:`frame_count`).

    Returns:
        The slice of its three std channels.

    Example:
        >>> std_channels(NOFLASH_FRAME, 2), std_channels(FLASH_FRAME, 2), std_channels(NOFLASH_FRAME, 1)
        (slice(6, 9, None), slice(9, 12, None), slice(3, 6, None))
    """
    return image_channels(num_frames + frame)


def all_images(num_frames: int) -> slice:
    """Channels of all noisy images (frame after frame) of an ``lq`` of ``num_frames`` frames.

    Args:
        num_frames: the frames in ``lq`` (:func:`frame_count`).

    Returns:
        The slice of their color channels.

    Example:
        >>> all_images(2)
        slice(0, 6, None)
    """
    return slice(0, num_frames * COLOR_CHANNELS)
