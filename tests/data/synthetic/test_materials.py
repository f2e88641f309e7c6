"""Surface materials (fnf_basicsr.data.synthetic.materials): the sRGB lookup, photographs as linear albedo, texture
lookup (bilinear, mirrored, averaged when minified), and random materials drawn reproducibly within albedo bounds."""
import numpy as np
import pytest

from fnf_basicsr.data.synthetic.materials import (Material, flat_albedo, load_photo, material_spanning,
                                                  random_floor_material, random_object_material,
                                                  random_wall_material, sample_texture, srgb8_to_linear)


def test_srgb8_lookup_is_the_srgb_curve():
    table = srgb8_to_linear()
    assert table.shape == (256,) and table.dtype == np.float32
    assert table[0] == 0 and table[255] == pytest.approx(1) and np.all(np.diff(table) > 0)
    assert table[10] == pytest.approx(10 / 255 / 12.92, rel=1e-5)  # the linear toe
    assert table[128] == pytest.approx(((128 / 255 + 0.055) / 1.055) ** 2.4, rel=1e-5)


def test_photos_are_linear_rgb_with_gray_ones_replicated():
    gray = load_photo('camera')
    assert gray.ndim == 3 and gray.shape[2] == 3 and gray.dtype == np.float32
    assert np.array_equal(gray[..., 0], gray[..., 2]) and 0 <= gray.min() and gray.max() <= 1
    assert load_photo('camera') is gray  # cached


def test_texture_lookup_is_bilinear_between_texel_centres_and_mirrors_at_the_edges():
    texture = np.array([[[0.0] * 3, [1.0] * 3], [[2.0] * 3, [3.0] * 3]], np.float32)  # 2 x 2 texels of 1 m
    u = np.array([0.5, 1.0, 1.5, 0.5, 2.5, -0.5])
    v = np.array([0.5, 0.5, 0.5, 1.0, 0.5, 0.5])
    values = sample_texture(texture, 1.0, 0.01, u, v)[:, 0]
    # texel centres; halfway in u; halfway in v; mirrored repetition beyond either edge
    np.testing.assert_allclose(values, [0.0, 0.5, 1.0, 1.0, 1.0, 0.0])


def test_a_minified_texture_is_averaged():
    checker = np.indices((64, 64)).sum(axis=0) % 2
    texture = np.repeat(checker[..., None], 3, axis=2).astype(np.float32)
    u = np.random.default_rng(0).integers(0, 64, 500) + 0.5  # texel centres
    sharp = sample_texture(texture, 1.0, 0.01, u, np.full(500, 10.5))
    blurred = sample_texture(texture, 1.0, 8.0, u, np.full(500, 10.0))
    assert set(np.unique(sharp)) <= {0.0, 1.0} and sharp.std() > 0.45
    np.testing.assert_allclose(blurred, 0.5, atol=0.05)


def test_random_materials_are_reproducible_and_within_albedo_bounds():
    for draw in (random_wall_material, random_floor_material, random_object_material):
        for seed in range(6):
            material = draw(np.random.default_rng(seed))
            again = draw(np.random.default_rng(seed))
            assert isinstance(material, Material) and np.array_equal(material.albedo, again.albedo)
            assert material.albedo.ndim == 3 and material.albedo.shape[2] == 3
            assert material.albedo.min() >= 0 and material.albedo.max() <= 1 and material.texel_m > 0
            assert 0 <= material.specular <= 0.4


def test_material_spanning_sets_the_texel_size_from_the_width():
    albedo = np.zeros((10, 40, 3), np.float32)
    material = material_spanning(albedo, 2.0, specular=0.1, shininess=16)
    assert material.texel_m == pytest.approx(0.05) and (material.specular, material.shininess) == (0.1, 16)
    assert np.array_equal(flat_albedo(0.3), np.full((1, 1, 3), 0.3, np.float32))
