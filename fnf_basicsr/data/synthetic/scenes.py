"""Drawing a random scene: room, posters, objects, materials, lights, camera and color calibration.

Everything is drawn from ``numpy.random.default_rng(seed)``, so a seed fixes the whole scene.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fnf_basicsr.data.faid import ColorMetadata
from fnf_basicsr.data.synthetic.geometry import Box, RoomPlane, Sphere, disk_points, rotation_x, rotation_y
from fnf_basicsr.data.synthetic.materials import (COLOR_PHOTOS, flat_albedo, load_photo, material_spanning,
                                                  random_floor_material, random_object_material, random_wall_material)
from fnf_basicsr.utils.rendering import XYZ_TO_LINEAR_SRGB

# XYZ (D65) -> camera matrices of real cameras (Adobe DNG ColorMatrix2, as tabulated in dcraw's
# adobe_coeff, values / 10000). Each scene perturbs one of them.
BASE_XYZ_TO_CAMERA = {
    'Canon EOS 5D Mark II': (4716, 603, -830, -7798, 15474, 2480, -1496, 1937, 6651),
    'Canon EOS 5D Mark III': (6722, -635, -963, -4287, 12460, 2028, -908, 2162, 5668),
    'Canon EOS 6D': (7034, -804, -1014, -4420, 12564, 2058, -851, 1994, 5758),
}
# EXIF calibration illuminants (A, D65, D50) and how often each is drawn.
ILLUMINANT_CODES = (17, 21, 23)
ILLUMINANT_PROBABILITIES = (0.25, 0.5, 0.25)
COLOR_MATRIX_JITTER = 0.03  # relative std of the perturbation of each matrix entry

# Correlated color temperatures (kelvin): tungsten / warm LED ambient, cold LED flash.
AMBIENT_CCT = (2600.0, 3600.0)
FLASH_CCT = (5500.0, 7500.0)
FLASH_OFFSET_M = (0.01, 0.03)  # distance between flash and lens on a phone
LAMP_SAMPLES = 16  # points on the area lamp for soft shadows
EXPOSURE_TARGET = (0.5, 0.85)  # render.EXPOSURE_PERCENTILE of each image's max channel


@dataclass
class Scene:
    """Everything :func:`render` needs; drawn by :func:`sample_scene`, editable in tests.

    Example:
        >>> scene = sample_scene(0, 32)
        >>> scene.size, scene.lamp_points.shape, type(scene.surfaces[0]).__name__
        (32, (16, 3), 'RoomPlane')
    """
    size: int
    focal_px: float
    camera_rotation: np.ndarray  # camera -> world
    surfaces: list  # RoomPlane / Box / Sphere
    lamp_points: np.ndarray  # (LAMP_SAMPLES, 3) on the ambient area lamp
    lamp_radius: float
    lamp_rgb: np.ndarray  # linear sRGB power of the lamp
    fill_rgb: np.ndarray  # linear sRGB of the ambient fill
    flash_position: np.ndarray
    flash_rgb: np.ndarray
    flash_beam_exponent: float
    exposure_targets: tuple  # (ambient, flash_only)
    metadata: ColorMetadata


def sample_scene(seed: int, size: int = 512) -> Scene:
    """Draw a random scene: room, objects, materials, lights, camera and color calibration.

    Args:
        seed: seeds ``numpy.random.default_rng``; the same seed gives the same scene.
        size: image height and width in pixels.

    Returns:
        The scene.

    Example:
        >>> first, again = sample_scene(7, 32), sample_scene(7, 32)
        >>> bool(first.focal_px == again.focal_px), len(first.surfaces) == len(again.surfaces)
        (True, True)
    """
    rng = np.random.default_rng(seed)
    hfov = np.deg2rad(rng.uniform(55, 75))
    focal_px = 0.5 * size / np.tan(hfov / 2)
    camera_rotation = rotation_y(np.deg2rad(rng.uniform(-12, 12))) @ rotation_x(np.deg2rad(rng.uniform(-22, -4)))

    # World: camera at the origin, x right, y down, z forward (before the camera rotation).
    camera_height = rng.uniform(0.8, 1.5)
    ceiling = camera_height - rng.uniform(2.4, 2.9)
    back = rng.uniform(2.5, 5.0)
    left, right = -rng.uniform(1.2, 2.5), rng.uniform(1.2, 2.5)
    wall_material = random_wall_material(rng)
    surfaces = [
        RoomPlane(2, back, -1.0, random_wall_material(rng) if rng.random() < 0.5 else wall_material),
        RoomPlane(1, camera_height, -1.0, random_floor_material(rng)),
        RoomPlane(1, ceiling, 1.0, material_spanning(flat_albedo(rng.uniform(0.6, 0.85)), 1.0)),
        RoomPlane(0, left, 1.0, wall_material),
        RoomPlane(0, right, -1.0, wall_material),
    ]
    surfaces += _sample_posters(rng, ceiling, camera_height, back, left, right)
    surfaces += _sample_objects(rng, camera_height, back, left, right)

    # A downward-facing lamp below the ceiling, off the camera axis, clear of the walls.
    lamp_radius = rng.uniform(0.1, 0.3)
    clearance = lamp_radius + 0.4
    lamp_x = np.clip(rng.choice([left, right]) * rng.uniform(0.3, 1.0), left + clearance, right - clearance)
    lamp_center = np.array([lamp_x, ceiling + rng.uniform(0.3, 0.7), rng.uniform(0.3, back - clearance)])
    # The flash sits beside the lens, in the camera's image plane, in a random direction.
    flash_angle = rng.uniform(0, 2 * np.pi)
    flash_direction = camera_rotation @ np.array([np.cos(flash_angle), np.sin(flash_angle), 0.0])
    xyz_to_camera = (np.array(BASE_XYZ_TO_CAMERA[rng.choice(list(BASE_XYZ_TO_CAMERA))]) / 10000
                     * (1 + COLOR_MATRIX_JITTER * rng.standard_normal(9))).reshape(3, 3)
    illuminant = int(rng.choice(ILLUMINANT_CODES, p=ILLUMINANT_PROBABILITIES))
    return Scene(
        size=size, focal_px=focal_px, camera_rotation=camera_rotation, surfaces=surfaces,
        lamp_points=lamp_center + lamp_radius * disk_points(LAMP_SAMPLES, rng.uniform(0, 2 * np.pi)),
        lamp_radius=lamp_radius,
        lamp_rgb=cct_to_linear_srgb(rng.uniform(*AMBIENT_CCT)),
        fill_rgb=cct_to_linear_srgb(rng.uniform(*AMBIENT_CCT)) * rng.uniform(0.05, 0.15),
        flash_position=flash_direction * rng.uniform(*FLASH_OFFSET_M),
        flash_rgb=cct_to_linear_srgb(rng.uniform(*FLASH_CCT)),
        flash_beam_exponent=rng.uniform(1.0, 4.0),
        exposure_targets=(rng.uniform(*EXPOSURE_TARGET), rng.uniform(*EXPOSURE_TARGET)),
        metadata=ColorMetadata(xyz_to_camera, illuminant),
    )


def _sample_posters(rng, ceiling_y, floor_y, back, left, right):
    """Up to two framed-less photographs hanging on the back wall (thin boxes), side by side."""
    posters = []
    count = rng.choice(3, p=(0.3, 0.4, 0.3))
    slots = np.linspace(left, right, count + 1)
    for low, high in zip(slots[:-1], slots[1:]):
        photo = load_photo(str(rng.choice(COLOR_PHOTOS)))
        width = min(rng.uniform(0.4, 1.2), 0.8 * (high - low))
        height = width * photo.shape[0] / photo.shape[1]
        x = rng.uniform(low + width / 2, high - width / 2)
        y = rng.uniform(ceiling_y + 0.3 + height / 2, max(ceiling_y + 0.3 + height / 2, floor_y - 0.6 - height / 2))
        half = np.array([width / 2, height / 2, 0.01])
        material = material_spanning(np.clip(photo, 0.02, 0.9), width, rng.uniform(0, 0.3), 64.0)
        posters.append(Box(np.array([x, y, back - half[2]]), half, 0.0, material, casts_shadows=False))
    return posters


def _sample_objects(rng, floor_y, back, left, right):
    """Boxes and spheres standing on the floor (some spheres on boxes) inside the view."""
    objects = []
    for _ in range(rng.integers(3, 8)):
        depth = rng.uniform(0.9, back - 0.4)
        x = rng.uniform(0.7 * left, 0.7 * right) * min(1.0, depth / 2.5)
        if rng.random() < 0.55:
            half = rng.uniform([0.08, 0.08, 0.08], [0.45, 0.6, 0.45])
            objects.append(Box(np.array([x, floor_y - half[1], depth]), half, rng.uniform(0, np.pi / 2),
                               random_object_material(rng)))
            if rng.random() < 0.3:
                radius = rng.uniform(0.05, min(half[0], half[2]))
                objects.append(Sphere(np.array([x, floor_y - 2 * half[1] - radius, depth]), radius,
                                      random_object_material(rng)))
        else:
            radius = rng.uniform(0.08, 0.4)
            objects.append(Sphere(np.array([x, floor_y - radius, depth]), radius, random_object_material(rng)))
    return objects


def cct_to_linear_srgb(kelvin: float) -> np.ndarray:
    """Linear sRGB color of a black body (Planckian locus), scaled to luminance Y = 1.

    Uses the cubic-spline fit of the Planckian locus by Kim et al. (valid 1667 K - 25000 K).

    Args:
        kelvin: the color temperature.

    Returns:
        (3,) float64 linear sRGB.

    Example:
        >>> round(float(np.array([0.2126, 0.7152, 0.0722]) @ cct_to_linear_srgb(6504)), 3)  # luminance Y
        1.0
        >>> warm = cct_to_linear_srgb(2700)
        >>> bool(warm[0] > warm[1] > warm[2])
        True
    """
    t = float(kelvin)
    if t <= 4000:
        x = -0.2661239e9 / t ** 3 - 0.2343589e6 / t ** 2 + 0.8776956e3 / t + 0.179910
    else:
        x = -3.0258469e9 / t ** 3 + 2.1070379e6 / t ** 2 + 0.2226347e3 / t + 0.240390
    if t <= 2222:
        y = -1.1063814 * x ** 3 - 1.34811020 * x ** 2 + 2.18555832 * x - 0.20219683
    elif t <= 4000:
        y = -0.9549476 * x ** 3 - 1.37418593 * x ** 2 + 2.09137015 * x - 0.16748867
    else:
        y = 3.0817580 * x ** 3 - 5.87338670 * x ** 2 + 3.75112997 * x - 0.37001483
    xyz = np.array([x / y, 1.0, (1 - x - y) / y])
    return XYZ_TO_LINEAR_SRGB @ xyz
