"""Scene drawing (fnf_basicsr.data.synthetic.scenes): every draw pinned to the released generator, seeds
reproducible, plausible cameras and lights, colour temperatures."""
import numpy as np
import pytest

from fnf_basicsr.data.synthetic import SPLIT_SEED_OFFSETS, render_scene, sample_scene
from fnf_basicsr.data.synthetic.scenes import ILLUMINANT_CODES, cct_to_linear_srgb


def test_scene_draws_and_images_are_those_of_the_released_generator():
    # Pinned from the generator as it was before it was split into modules: a reordered draw or a
    # changed formula shows here (tolerances only absorb last-bit differences between CPUs).
    scene = sample_scene(SPLIT_SEED_OFFSETS['val'] + 1, 32)
    assert [type(s).__name__ for s in scene.surfaces] == ['RoomPlane'] * 5 + ['Box', 'Box', 'Sphere']
    assert scene.metadata.illuminant == 17
    np.testing.assert_allclose([scene.focal_px, scene.lamp_radius, *scene.exposure_targets],
                               [26.731185124186172, 0.16796126778280018, 0.7844265745085606, 0.5786901564567688],
                               rtol=1e-12)
    np.testing.assert_allclose(scene.metadata.xyz_to_camera.ravel()[[0, 4, 8]],
                               [0.4745025103369594, 1.5860422718625538, 0.6589729732007873], rtol=1e-12)
    np.testing.assert_allclose(scene.flash_position, [-0.01096693352022336, -0.0053220466254899875,
                                                      0.0038207047875592312], rtol=1e-12)
    ambient, flash_only, _ = render_scene(SPLIT_SEED_OFFSETS['val'] + 1, 32)
    np.testing.assert_allclose(ambient.mean(axis=(0, 1), dtype=np.float64),
                               [0.12644666554115247, 0.10185741125405912, 0.013163823974174704], rtol=1e-5)
    np.testing.assert_allclose(flash_only.mean(axis=(0, 1), dtype=np.float64),
                               [0.043694214199604176, 0.06964034836573774, 0.02289036934445221], rtol=1e-5)


def test_a_seed_draws_the_same_scene_and_other_seeds_other_ones():
    first, again, other = sample_scene(5, 32), sample_scene(5, 32), sample_scene(6, 32)
    for name in ('focal_px', 'lamp_radius', 'flash_position', 'lamp_rgb', 'flash_rgb'):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    np.testing.assert_array_equal(first.metadata.xyz_to_camera, again.metadata.xyz_to_camera)
    assert [type(s).__name__ for s in first.surfaces] == [type(s).__name__ for s in again.surfaces]
    assert not np.array_equal(first.flash_position, other.flash_position)
    assert first.metadata.illuminant in ILLUMINANT_CODES and first.size == 32


def test_colour_temperature_runs_from_warm_through_white_to_cold():
    warm, white, cold = cct_to_linear_srgb(2700), cct_to_linear_srgb(6504), cct_to_linear_srgb(9000)
    assert np.allclose(white, 1, atol=0.05)  # D65
    assert warm[0] > warm[1] > warm[2] and cold[2] > cold[0]
    assert warm[2] / warm[0] < white[2] / white[0] < cold[2] / cold[0]
    for kelvin in (2000, 2700, 4000, 6504, 9000, 20000):  # luminance Y = 1 (sRGB primaries' Y weights)
        assert np.dot([0.2126, 0.7152, 0.0722], cct_to_linear_srgb(kelvin)) == pytest.approx(1, abs=1e-3)
