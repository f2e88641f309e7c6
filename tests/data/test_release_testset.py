"""The authors' released test set (data/release_testset.py): test.py's network input, and its files read as the
dataset's samples (so ``basicsr test`` scores them; fnf-benchmark's exact test.py scoring is tested in
tests/test_benchmark.py)."""
import numpy as np
import torch
from conftest import write_release_testset

from fnf_basicsr.data.fnf_dataset import FlashNoFlashDataset
from fnf_basicsr.data.release_testset import ReleaseTestSet, camera_to_srgb_release, release_input
from fnf_basicsr.data.sample_sources import StoredTestSet, open_stored_test_set
from fnf_basicsr.utils.rendering import render_srgb


def test_release_input_is_testpys_network_input_in_float32():
    rng = np.random.default_rng(5)
    noflash = rng.normal(scale=0.05, size=(1, 8, 10, 3)).astype(np.float32)  # negatives: their std uses max(0, .)
    flash = rng.normal(scale=0.3, size=(1, 8, 10, 3))  # float64 in the file: read as float32 first
    data = {'noisy_ambient': noflash, 'noisy_warped_flash': flash, 'sig_read': np.float32(0.004),
            'sig_shot': np.array([0.03], np.float32)}

    def std(noisy):
        return np.sqrt(np.float32(0.004) ** 2 + np.maximum(np.float32(0), noisy) * np.float32(0.03) ** 2)

    flash = flash.astype(np.float32)
    expected = np.concatenate([noflash, flash, std(noflash), std(flash)], axis=-1)[0].transpose(2, 0, 1)
    pair = release_input(data, 'flash_noflash')
    assert pair.dtype == torch.float32 and np.array_equal(pair.numpy(), expected)
    single = release_input(data, 'noflash')
    assert np.array_equal(single.numpy(), np.concatenate([noflash, std(noflash)], axis=-1)[0].transpose(2, 0, 1))


def test_the_dataset_reads_the_released_test_set_as_a_stored_set(tmp_path):
    root = write_release_testset(tmp_path / 'testset', images=1, size=48)
    stored = open_stored_test_set(root)
    assert isinstance(stored, ReleaseTestSet) and isinstance(stored, StoredTestSet)
    dataset = FlashNoFlashDataset({'name': 'release', 'phase': 'test', 'frozen_root': str(root)})
    assert len(dataset) == 4 and [float(dataset[i]['dimming']) for i in range(4)] == [100.0, 50.0, 25.0, 12.5]
    sample, raw = dataset[1], stored.sample(1, 'flash_noflash')
    assert torch.equal(sample['lq'], raw['lq'])  # test.py's network input, bit for bit
    # The model's rendering of the target is test.py's rendering of the ambient image (float rounding apart).
    rendered = render_srgb(sample['gt'][None], sample['gain'][None], sample['color_matrix'][None])[0]
    ambient = torch.from_numpy(raw['data']['ambient']).permute(0, 3, 1, 2)
    expected = camera_to_srgb_release(ambient, raw['data']['color_matrix'], raw['data']['adapt_matrix'])[0]
    torch.testing.assert_close(rendered, expected, rtol=0, atol=2e-5)
