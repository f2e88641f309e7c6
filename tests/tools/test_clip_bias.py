"""clip_bias.py: the same noisy pair scored as simulated, clipped and clipped to 16 bits; clipping shows as bias."""
import torch

from fnf_basicsr.tools.clip_bias import INPUTS, degraded_inputs, measure


class PassThrough(torch.nn.Module):
    def forward(self, lq):
        return lq[:, :3]


def test_each_level_is_scored_on_the_three_inputs():
    results = measure(PassThrough(), 'flash_noflash', scenes=1, size=48, dimming_factors=[100, 12.5])
    assert list(results) == [100, 12.5]
    for row in results.values():
        assert list(row) == list(INPUTS) and all(bias.shape == (3,) for _, bias in row.values())
        assert abs(row['clipped 16-bit'][0] - row['clipped'][0]) < 0.01  # 16-bit steps are far below the noise
    assert results[100]['clipped'][0] != results[100]['float'][0]  # a dark pair loses its negative noise
    assert results[100]['float'][0] < results[12.5]['float'][0]  # the pass-through is the noisy input


def test_degraded_inputs_recompute_the_std_maps_of_the_clipped_frames():
    lq = torch.full((12, 4, 4), -0.01)
    lq[6:] = 1.0
    inputs = degraded_inputs(lq, 'flash_noflash')
    assert torch.equal(inputs['float'], lq)
    assert torch.all(inputs['clipped'][:6] == 0) and torch.all(inputs['clipped'][6:] < 0.01)  # std of a 0 pixel
