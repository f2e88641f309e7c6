"""The synthetic scenes' ray caster (fnf_basicsr.data.synthetic.render): determinism, exposure, the physics of the
two lightings (inverse square, cosine, shadows), depth, colours."""
import cv2
import numpy as np
import pytest
import torch

from fnf_basicsr.data.synthetic import (Material, RoomPlane, cct_to_linear_srgb, point_light_irradiance, render,
                                        render_scene, sample_scene)
from fnf_basicsr.data.synthetic.geometry import camera_rays, first_hits
from fnf_basicsr.data.synthetic.scenes import ILLUMINANT_CODES
from fnf_basicsr.utils.rendering import render_srgb

SIZE = 64


def _gray_scene(seed, size=SIZE, keep_objects=True):
    """A scene whose every surface is matte 50% gray, lit by D65-white light (linear sRGB 1, 1, 1)."""
    scene = sample_scene(seed, size)
    if not keep_objects:
        scene.surfaces = [s for s in scene.surfaces if isinstance(s, RoomPlane)]
    for surface in scene.surfaces:
        surface.material = Material(np.full((1, 1, 3), 0.5, np.float32), 1.0)
    scene.lamp_rgb = scene.fill_rgb = scene.flash_rgb = np.ones(3)
    return scene


def _render_to_srgb(camera_rgb, color_matrix):
    linear = torch.from_numpy(camera_rgb).permute(2, 0, 1)[None]
    return render_srgb(linear, torch.tensor([1.0]), torch.from_numpy(color_matrix))[0].permute(1, 2, 0).numpy()


def test_same_seed_is_bit_identical_and_seeds_differ():
    first, second, other = render_scene(7, SIZE), render_scene(7, SIZE), render_scene(8, SIZE)
    for a, b in zip(first[:2], second[:2]):
        assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(first[2].xyz_to_camera, second[2].xyz_to_camera)
    assert not np.allclose(first[0], other[0])


def test_images_are_well_exposed_camera_rgb():
    ambient, flash_only, metadata = render_scene(3, SIZE)
    for image in (ambient, flash_only):
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.float32
        assert image.min() >= 0 and image.max() <= 1
        assert (image >= 1).mean() < 0.01  # highlights may clip, nothing else
        assert 0.3 < np.percentile(image.max(axis=2), 99) < 1
    assert metadata.illuminant in ILLUMINANT_CODES


def test_point_light_follows_inverse_square_and_cosine_laws():
    points = np.array([[0, 0, 0, 0], [0, 0, 0, 0], [1, 2, 1, 1]], np.float32)  # (3, N) columns
    tilt = np.deg2rad(60)
    normals = np.array([[0, 0, np.sin(tilt), 0], [0, 0, 0, 0], [-1, -1, -np.cos(tilt), 1]], np.float32)
    irradiance = point_light_irradiance(points, normals, np.zeros(3))
    np.testing.assert_allclose(irradiance, [1.0, 0.25, 0.5, 0.0], rtol=1e-5)


def test_flash_on_a_uniform_floor_falls_off_as_cosine_over_distance_squared():
    # The flash is (almost) at the camera and the floor at height h below it: a floor point at
    # distance r receives cos / r^2 = (h / r) / r^2, so the image falls off as r^-3.
    scene = _gray_scene(11, size=96, keep_objects=False)
    scene.flash_beam_exponent = 0.0  # isotropic flash, to isolate the geometric falloff
    result = render(scene)
    floor_index = next(k for k, s in enumerate(scene.surfaces) if s.axis == 1 and s.normal_sign < 0)
    dirs = camera_rays(scene.size, scene.focal_px, scene.camera_rotation)
    _, surface_index = first_hits(scene.surfaces, dirs)
    on_floor = (surface_index.reshape(scene.size, scene.size) == floor_index).astype(np.uint8)
    on_floor = cv2.erode(on_floor, np.ones((5, 5), np.uint8)).ravel().astype(bool)  # away from blurred edges
    distance = np.linalg.norm(dirs * result.depth.ravel() - scene.flash_position[:, None], axis=0)[on_floor]
    intensity = result.flash_only.reshape(-1, 3)[on_floor].mean(axis=1)
    assert on_floor.sum() > 200 and intensity.max() < 1
    slope = np.polyfit(np.log(distance), np.log(intensity), 1)[0]
    assert slope == pytest.approx(-3, abs=0.1)


def test_depth_has_discontinuities_at_object_edges():
    _, _, _, depth = render_scene(0, SIZE, return_depth=True)
    assert depth.shape == (SIZE, SIZE) and depth.min() > 0
    relative_jump = np.abs(np.diff(depth, axis=1)) / depth[:, 1:]
    assert relative_jump.max() > 0.3  # an object in front of the room
    assert np.median(relative_jump) < 0.01  # surfaces are smooth between edges


def test_flash_shadows_are_thin_and_come_from_the_flash_offset():
    scene = sample_scene(2, 128)
    shadow = ~render(scene).flash_visibility
    assert 0 < shadow.mean() < 0.02
    eroded = cv2.erode(shadow.astype(np.uint8), np.ones((5, 5), np.uint8))
    assert eroded.sum() <= 0.1 * shadow.sum()  # nowhere wider than a few pixels
    scene.flash_position = np.zeros(3)  # a flash in the lens casts no visible shadow
    assert (~render(scene).flash_visibility).sum() <= 0.0005 * shadow.size


def test_lamp_shadows_are_soft():
    visibility = render(sample_scene(2, 128)).lamp_visibility
    assert (visibility < 0.05).any()  # umbra
    assert ((visibility > 0.05) & (visibility < 0.95)).mean() > 0.01  # penumbra


def test_gray_scene_under_white_light_renders_gray():
    scene = _gray_scene(5)
    result = render(scene)
    for image in (result.ambient, result.flash_only):
        assert image[..., 1].mean() > max(image[..., 0].mean(), image[..., 2].mean())  # raw camera: green-heavy
        srgb = _render_to_srgb(image, scene.metadata.color_matrix)
        lit = srgb.mean(axis=2) > 0.1
        chroma = srgb.max(axis=2) - srgb.min(axis=2)
        assert np.percentile(chroma[lit], 99) < 0.01


def test_ambient_is_warm_and_flash_is_cold():
    assert np.allclose(cct_to_linear_srgb(6504), 1, atol=0.05)  # near D65 white
    ambient, flash_only, metadata = render_scene(4, SIZE)
    ambient_srgb, flash_srgb = (_render_to_srgb(image, metadata.color_matrix).mean(axis=(0, 1))
                                for image in (ambient, flash_only))
    assert ambient_srgb[0] > ambient_srgb[2]
    assert flash_srgb[2] / flash_srgb[0] > 1.3 * ambient_srgb[2] / ambient_srgb[0]
