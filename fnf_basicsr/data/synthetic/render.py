"""Rendering a scene under its ambient lamp and under its flash, to exposed camera RGB."""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from fnf_basicsr.data.synthetic.geometry import Sphere, camera_rays, column, dot, first_hits, rays_near, unit
from fnf_basicsr.data.synthetic.materials import sample_texture
from fnf_basicsr.data.synthetic.scenes import Scene, sample_scene

SHADOW_EPS = 1e-3  # metres: start shadow rays off the surface to avoid self-hits
LENS_BLUR_SIGMA = 0.6  # pixels; also softens the aliased geometric edges of the ray caster
EXPOSURE_PERCENTILE = 99.0


@dataclass
class RenderResult:
    """Camera-RGB images in [0, 1] plus the buffers tests and figures inspect.

    Example:
        >>> result = render(sample_scene(0, 32))
        >>> result.ambient.shape, result.depth.shape, result.flash_visibility.dtype
        ((32, 32, 3), (32, 32), dtype('bool'))
    """
    ambient: np.ndarray  # (H, W, 3) float32
    flash_only: np.ndarray  # (H, W, 3) float32
    depth: np.ndarray  # (H, W) float32, metres along the optical axis
    flash_visibility: np.ndarray  # (H, W) bool, False in the flash's cast shadows
    lamp_visibility: np.ndarray  # (H, W) float32, fraction of the lamp in view (soft shadows)


def render_scene(seed: int, size: int = 512, return_depth: bool = False) -> tuple:
    """Render one synthetic scene.

    Args:
        seed: the scene's seed (the split offset is added by :func:`generate_split`).
        size: image height and width in pixels.
        return_depth: also return the (H, W) depth map in metres.

    Returns:
        ``(ambient, flash_only, metadata)`` with (H, W, 3) float32 linear camera RGB in [0, 1] and the
        scene's :class:`~fnf_basicsr.data.faid.ColorMetadata`, and ``depth`` last when ``return_depth`` is set.

    Example:
        >>> ambient, flash_only, metadata, depth = render_scene(0, 32, return_depth=True)
        >>> ambient.shape, flash_only.dtype, depth.shape, bool(ambient.max() <= 1)
        ((32, 32, 3), dtype('float32'), (32, 32), True)
    """
    scene = sample_scene(seed, size)
    result = render(scene)
    if return_depth:
        return result.ambient, result.flash_only, scene.metadata, result.depth
    return result.ambient, result.flash_only, scene.metadata


def render(scene: Scene) -> RenderResult:
    """Ray-cast a scene under its ambient lamp and under its flash.

    Vectors are (3, N) float32 columns, one per pixel, so every operation runs on whole rows.

    Args:
        scene: from :func:`~fnf_basicsr.data.synthetic.scenes.sample_scene` (or edited).

    Returns:
        RenderResult with camera-RGB images exposed, lens-blurred and clipped to [0, 1].

    Example:
        >>> scene = sample_scene(0, 32)
        >>> scene.flash_rgb = scene.flash_rgb * 0  # no flash light at all
        >>> float(render(scene).flash_only.max())
        0.0
    """
    dirs = camera_rays(scene.size, scene.focal_px, scene.camera_rotation)
    depth, surface_index = first_hits(scene.surfaces, dirs)
    points = dirs * depth
    normals, albedo, specular, shininess = _shade_inputs(scene, points, surface_index, depth)
    to_camera = unit(-points)
    starts = points + np.float32(SHADOW_EPS) * normals

    # Soft shadows: the fraction of lamp samples in view, smoothed within each surface (16
    # samples alone draw a penumbra as 16 steps). Shading uses the lamp's centre.
    lamp_visible = _visibility(scene, starts, scene.lamp_points, scene.lamp_radius, surface_index)
    lamp_visibility = _smooth_per_surface(lamp_visible.mean(axis=0, dtype=np.float32), surface_index, scene.size)
    lamp_center = scene.lamp_points.mean(axis=0)
    lamp_irradiance = lamp_visibility * lamp_emission(points, lamp_center) * point_light_irradiance(
        points, normals, lamp_center)
    lamp_reflectance = albedo / np.float32(np.pi) + specular * blinn_phong(
        normals, unit(column(lamp_center) - points), to_camera, shininess)
    fill = (0.7 - 0.3 * normals[1]) * (1 - _ambient_occlusion(scene, points, normals))
    ambient = column(scene.lamp_rgb) * lamp_irradiance * lamp_reflectance + column(scene.fill_rgb) * albedo * fill

    flash_visibility = _visibility(scene, starts, scene.flash_position[None], 0.0, surface_index)[0]
    to_flash = unit(column(scene.flash_position) - points)
    beam = np.clip(-dot(to_flash, column(scene.camera_rotation[:, 2])), 0, 1) ** np.float32(scene.flash_beam_exponent)
    flash_irradiance = flash_visibility * beam * point_light_irradiance(points, normals, scene.flash_position)
    flash_only = column(scene.flash_rgb) * flash_irradiance * (
        albedo / np.float32(np.pi) + specular * blinn_phong(normals, to_flash, to_camera, shininess))

    shape = (scene.size, scene.size)
    return RenderResult(
        ambient=_to_camera_image(ambient, scene, scene.exposure_targets[0]),
        flash_only=_to_camera_image(flash_only, scene, scene.exposure_targets[1]),
        depth=depth.reshape(shape),
        flash_visibility=flash_visibility.reshape(shape),
        lamp_visibility=lamp_visibility.reshape(shape),
    )


def point_light_irradiance(points: np.ndarray, normals: np.ndarray, light_position: np.ndarray) -> np.ndarray:
    """Irradiance from a unit point light: max(0, cos(incidence)) / distance^2 (no occlusion).

    Args:
        points: surface points.
        normals: their unit normals.
        light_position: the light.

    Returns:
        The irradiance at every point.

    Shape:
        points, normals: (3, N); light_position: (3,); output: (N,).

    Example:
        >>> points = np.zeros((3, 2), np.float32)
        >>> normals = np.array([[0.0, 0.0], [-1.0, 1.0], [0.0, 0.0]], np.float32)  # facing the light, away
        >>> point_light_irradiance(points, normals, np.array([0.0, -2.0, 0.0]))
        array([0.25, 0.  ], dtype=float32)
    """
    to_light = column(light_position) - points
    distance2 = dot(to_light, to_light)
    cosine = dot(normals, to_light) / np.sqrt(distance2)
    return np.clip(cosine, 0, None) / distance2


def lamp_emission(points: np.ndarray, lamp_point: np.ndarray) -> np.ndarray:
    """Relative intensity a downward-facing Lambertian lamp emits toward each point (3, N) -> (N,).

    Args:
        points: (3, N) points lit.
        lamp_point: (3,) a point of the lamp.

    Returns:
        (N,) cosine of the angle below the lamp, 0 above it (y points down).

    Example:
        >>> lamp_emission(np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.0]], np.float32), np.zeros(3))
        array([1., 0.], dtype=float32)
    """
    from_lamp = points - column(lamp_point)
    return np.clip(from_lamp[1] / np.sqrt(dot(from_lamp, from_lamp)), 0, 1)  # y points down


def blinn_phong(normals: np.ndarray, to_light: np.ndarray, to_camera: np.ndarray,
                shininess: float | np.ndarray) -> np.ndarray:
    """Energy-normalised Blinn-Phong lobe ``(s + 8) / (8 pi) * max(0, n.h)^s`` per unit irradiance.

    Args:
        normals: unit surface normals.
        to_light: unit vectors toward the light.
        to_camera: unit vectors toward the camera.
        shininess: the exponent s.

    Returns:
        The lobe's value per point.

    Shape:
        normals, to_light, to_camera: (3, N) unit vectors; shininess: scalar or (N,); output: (N,).

    Example:
        >>> up = np.array([[0.0], [-1.0], [0.0]], np.float32)
        >>> round(float(blinn_phong(up, up, up, 8.0)[0]), 4)  # the mirror direction: (8 + 8) / (8 pi)
        0.6366
    """
    n_dot_h = np.clip(dot(normals, unit(to_light + to_camera)), 0, 1)
    return (shininess + 8) / np.float32(8 * np.pi) * n_dot_h ** shininess


def _occluders(scene):
    return [(k, s) for k, s in enumerate(scene.surfaces) if s.casts_shadows]


def _visibility(scene, starts, lights, light_radius, surface_index):
    """(K, N) bool: True where the segment from start point n to light k hits no object.

    An object is tested only against the rays inside the cone from the lights' centre that holds
    its bounding sphere grown by the light's radius (a segment to any light point that touches
    the sphere lies in that cone). The room planes never occlude: the lights are inside the room.

    Args:
        starts: (3, N) shadow-ray origins.
        lights: (K, 3) sample points on one light.
        light_radius: radius of the disk holding all ``lights``.
        surface_index: (N,) surface each start point lies on.
    """
    visible = np.ones((len(lights), starts.shape[1]), dtype=bool)
    center = lights.mean(axis=0)
    from_light = unit(starts - column(center))
    for k, occluder in _occluders(scene):
        candidates = rays_near(from_light, center, occluder.center, occluder.bounding_radius + light_radius)
        candidates = candidates[surface_index[candidates] != k]  # convex objects do not shadow themselves
        if not len(candidates):
            continue
        blocked = occluder.segment_blocker(starts[:, candidates])
        for light, light_visible in zip(lights, visible):
            light_visible[candidates[blocked(light)]] = False
    return visible


def _smooth_per_surface(values, surface_index, size, radius=2):
    """Box-average per-pixel ``values`` (N,) over (2r+1)^2 windows, only among pixels of the same surface."""
    image, labels = values.reshape(size, size).astype(np.float32), surface_index.reshape(size, size)
    smoothed = np.empty_like(image)
    window = (2 * radius + 1, 2 * radius + 1)
    for k in np.unique(labels):
        mask = labels == k
        weight = mask.astype(np.float32)
        total = cv2.blur(image * weight, window, borderType=cv2.BORDER_REFLECT)
        smoothed[mask] = total[mask] / cv2.blur(weight, window, borderType=cv2.BORDER_REFLECT)[mask]
    return smoothed.ravel()


def _ambient_occlusion(scene, points, normals):
    """Occlusion of the fill light by nearby objects, each approximated by a sphere.

    The solid-angle-weighted occlusion of a sphere of radius r at distance d in direction w is
    max(0, n.w) * (r / d)^2; it darkens the floor around contacts and the corners between objects.
    """
    occlusion = np.zeros(points.shape[1], np.float32)
    for _, occluder in _occluders(scene):
        radius = occluder.radius if isinstance(occluder, Sphere) else float(np.cbrt(np.prod(occluder.half)))
        offsets = column(occluder.center) - points
        distance2 = np.maximum(dot(offsets, offsets), np.float32(radius ** 2))
        cosine = dot(normals, offsets) / np.sqrt(distance2)
        occlusion += np.clip(cosine, 0, 1) * np.float32(radius ** 2) / distance2
    return np.clip(occlusion, 0, 0.8)


def _shade_inputs(scene, points, surface_index, depth):
    """Per-pixel normals (3, N), albedo (3, N, linear sRGB), specular weight and shininess (N,)."""
    count = points.shape[1]
    normals = np.zeros((3, count), np.float32)
    albedo = np.zeros((3, count), np.float32)
    specular, shininess = np.zeros(count, np.float32), np.ones(count, np.float32)
    for k, surface in enumerate(scene.surfaces):
        columns = np.flatnonzero(surface_index == k)
        if not len(columns):
            continue
        normals[:, columns], u, v = surface.surface(points[:, columns])
        material = surface.material
        # Pixel footprint on the surface (metres) decides how much the texture is pre-filtered.
        footprint = float(np.median(depth[columns])) / scene.focal_px
        albedo[:, columns] = sample_texture(material.albedo, material.texel_m, footprint, u, v).T
        specular[columns], shininess[columns] = material.specular, material.shininess
    return normals, albedo, specular, shininess


def _to_camera_image(linear_srgb, scene, exposure_target):
    """Linear sRGB radiance (3, N) -> exposed, lens-blurred camera RGB in [0, 1], (H, W, 3) float32.

    Camera RGB is ``inverse(color_matrix) @ sRGB``: the inverse of the rendering path, so
    ``render_srgb(camera, gain, metadata.color_matrix)`` gives back the designed colors.
    """
    srgb_to_camera = np.linalg.inv(scene.metadata.color_matrix.astype(np.float64)).astype(np.float32)
    camera = (srgb_to_camera @ linear_srgb).T.reshape(scene.size, scene.size, 3)
    level = float(np.percentile(camera.max(axis=2), EXPOSURE_PERCENTILE))
    camera *= np.float32(exposure_target / max(level, 1e-12))
    camera = cv2.GaussianBlur(camera, (0, 0), LENS_BLUR_SIGMA)
    return np.clip(camera, 0, 1)
