"""The lq channel layout: counts, slices and the mode inferred from a channel count, checked against assemble_input."""
import pytest
import torch

from fnf_basicsr.data.degradation import assemble_input
from fnf_basicsr.data.input_layout import (CHANNELS_PER_FRAME, COLOR_CHANNELS, FLASH_FRAME, FRAMES, INPUT_MODES,
                                           NOFLASH_FRAME, all_images, frame_count, frames_in, image_channels,
                                           input_channels, input_mode_for_channels, std_channels)
from fnf_basicsr.data.noise import noise_std

SIG_READ, SIG_SHOT = 0.004, 0.03


def test_the_pair_is_laid_out_as_the_paper_says():
    # noisy no-flash, noisy flash, std of the no-flash, std of the flash
    assert (image_channels(NOFLASH_FRAME), image_channels(FLASH_FRAME)) == (slice(0, 3), slice(3, 6))
    assert (std_channels(NOFLASH_FRAME, 2), std_channels(FLASH_FRAME, 2)) == (slice(6, 9), slice(9, 12))
    assert FRAMES['flash_noflash'][FLASH_FRAME] == 'flash' and all(
        frames[NOFLASH_FRAME] == 'noflash' for frames in FRAMES.values())


def test_channel_counts_of_every_mode():
    assert INPUT_MODES == ('flash_noflash', 'noflash', 'noflash_burst')
    assert [input_channels(mode) for mode in INPUT_MODES] == [12, 6, 12]
    assert [frame_count(mode) for mode in INPUT_MODES] == [2, 1, 2]
    assert (COLOR_CHANNELS, CHANNELS_PER_FRAME) == (3, 6)
    assert [frames_in(input_channels(mode)) for mode in INPUT_MODES] == [2, 1, 2]


@pytest.mark.parametrize('mode', INPUT_MODES)
def test_slices_find_each_frame_and_its_std_map_in_assembled_input(mode):
    generator = torch.Generator().manual_seed(0)
    frames = [torch.rand(3, 8, 10, generator=generator) * 0.3 for _ in range(frame_count(mode))]
    lq = assemble_input(frames[0], frames[1] if len(frames) > 1 else None, SIG_READ, SIG_SHOT, mode)
    assert lq.shape[0] == input_channels(mode)
    for index, frame in enumerate(frames):
        assert torch.equal(lq[image_channels(index)], frame)
        assert torch.equal(lq[std_channels(index, len(frames))], noise_std(frame, SIG_READ, SIG_SHOT))
    assert torch.equal(lq[all_images(len(frames))], torch.cat(frames))


def test_mode_inferred_from_channels_is_the_pair_unless_one_frame():
    assert input_mode_for_channels(6) == 'noflash'
    assert input_mode_for_channels(12) == 'flash_noflash'
    assert input_mode_for_channels(None) == 'flash_noflash'
    assert all(input_channels(input_mode_for_channels(input_channels(mode))) == input_channels(mode)
               for mode in INPUT_MODES)


@pytest.mark.parametrize('call', [frame_count, input_channels])
def test_unknown_mode_names_the_choices(call):
    with pytest.raises(ValueError, match=r"input mode must be one of \['flash_noflash', 'noflash', 'noflash_burst'\], "
                                         r"got 'flash'"):
        call('flash')
