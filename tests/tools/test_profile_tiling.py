"""The tiled-inference benchmark (fnf_basicsr.tools.profile_tiling), without running the denoiser: the capture
pair it times is a seeded noisy rendering at the asked size."""
import numpy as np

from fnf_basicsr.data.faid import decode_png16
from fnf_basicsr.tools.profile_tiling import DIMMING, write_pair


def test_the_pair_is_a_seeded_noisy_16_bit_capture_of_the_asked_size(tmp_path):
    noflash, flash = write_pair(tmp_path, width=40, height=24, seed=1)
    assert (noflash.name, flash.name) == ('bench_noflash.png', 'bench_flash.png')
    images = [decode_png16(path.read_bytes(), str(path)) for path in (noflash, flash)]
    assert all(image.shape == (24, 40, 3) and image.dtype == np.uint16 for image in images)
    assert images[1].mean() > images[0].mean()  # the flash adds light to the dimmed ambient
    assert images[0].mean() / 65535 < 2 * DIMMING
    (tmp_path / 'again').mkdir()
    again = write_pair(tmp_path / 'again', width=40, height=24, seed=1)
    assert [path.read_bytes() for path in again] == [noflash.read_bytes(), flash.read_bytes()]
