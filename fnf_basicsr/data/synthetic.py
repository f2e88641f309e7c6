"""Synthetic flash/no-flash scenes: a small ray caster that writes the FAID file format.

The default data when FAID is absent. Each scene is a room (back wall, floor, side walls,
ceiling) with boxes and spheres at random places, so the images have real depth
discontinuities, occlusions and cast shadows rather than noise on a picture. Surfaces carry
albedo textures from photographs bundled with scikit-image and procedural ones (stripes,
checkers, value noise), mapped by surface coordinates.

Two lightings are rendered from the same geometry, matching what FAID holds:

* ambient: a dim, warm (tungsten-colored) area lamp off the camera axis with soft shadows and
  inverse-square falloff, plus a low fill light darkened near contacts (ambient occlusion);
* flash-only: a cold point light a few centimetres beside the lens, with inverse-square falloff,
  a beam that weakens off axis, Lambertian plus Blinn-Phong specular reflection, and the thin
  hard shadows that the small offset casts.

Colors are defined in linear sRGB. Each scene draws a plausible camera (an XYZ->camera matrix
near a real camera's, and a calibration illuminant) and stores camera RGB made through the inverse
of :func:`fnf_basicsr.utils.rendering.render_srgb`'s color path, so rendering a stored image gives
back the designed colors. Both images are exposed independently (FAID's pairs are well exposed),
blurred slightly like a lens, and quantised to 16 bits by :func:`write_faid_pair`.

Everything is drawn from ``numpy.random.default_rng(seed)``: the same seed gives bit-identical
files, and the splits use disjoint seed ranges (:data:`SPLIT_SEED_OFFSETS`).
"""
import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import skimage.data
from tqdm import tqdm

from fnf_basicsr.data.faid import (AMBIENT_SUFFIX, FLASH_SUFFIX, INCOMPLETE_MARKER, ColorMetadata, list_faid_names,
                                   mark_complete, mark_incomplete, write_faid_pair)
from fnf_basicsr.errors import ConfigError, DataError, OutputExistsError
from fnf_basicsr.utils.files import fault_point, prepare_output_folder, remove_stale_temporaries, write_atomically
from fnf_basicsr.utils.rendering import XYZ_TO_LINEAR_SRGB, srgb_degamma

SPLIT_SEED_OFFSETS = {'train': 0, 'val': 1_000_000, 'test': 2_000_000}

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

# Photographs shipped inside scikit-image's wheel (loaded from disk, never downloaded): color
# ones for pictures and objects, gray ones (tinted) for objects, and gray stationary textures that
# also cover walls and floors (a large, mirrored portrait on a floor would look like a shadow).
COLOR_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry')
GRAY_PHOTOS = ('camera', 'moon', 'page', 'coins', 'text')
GRAY_TEXTURES = ('brick', 'grass', 'gravel')

# Correlated color temperatures (kelvin): tungsten / warm LED ambient, cold LED flash.
AMBIENT_CCT = (2600.0, 3600.0)
FLASH_CCT = (5500.0, 7500.0)
FLASH_OFFSET_M = (0.01, 0.03)  # distance between flash and lens on a phone
LAMP_SAMPLES = 16  # points on the area lamp for soft shadows
SHADOW_EPS = 1e-3  # metres: start shadow rays off the surface to avoid self-hits
LENS_BLUR_SIGMA = 0.6  # pixels; also softens the aliased geometric edges of the ray caster
EXPOSURE_PERCENTILE = 99.0
EXPOSURE_TARGET = (0.5, 0.85)  # the EXPOSURE_PERCENTILE of each image's max channel


@dataclass
class Material:
    """Albedo texture (linear sRGB, (h, w, 3)), its size on the surface, and specular terms."""
    albedo: np.ndarray
    texel_m: float
    specular: float = 0.0
    shininess: float = 32.0


def _col(vector):
    """A 3-vector as a float32 (3, 1) column that broadcasts against (3, N) arrays."""
    return np.asarray(vector, dtype=np.float32).reshape(3, 1)


def _dot(a, b):
    """Row-wise dot product of (3, N) arrays (vectors are stored as columns for speed)."""
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


@dataclass
class RoomPlane:
    """An axis-aligned wall, floor or ceiling: points with ``p[axis] == coord``; normal into the room."""
    axis: int
    coord: float
    normal_sign: float
    material: Material
    casts_shadows = False  # the lights are inside the room

    def intersect(self, origin, dirs):
        """Ray parameter of the hit (inf for none) for rays ``origin + t * dirs``, dirs (3, N)."""
        with np.errstate(divide='ignore'):
            t = np.float32(self.coord - origin[self.axis]) / dirs[self.axis]
        return np.where(t > 0, t, np.inf)

    def surface(self, points):
        """Normals (3, M) and texture coordinates u, v (metres) of points (3, M) on the plane."""
        normals = np.zeros_like(points)
        normals[self.axis] = self.normal_sign
        u_axis, v_axis = [(2, 1), (0, 2), (0, 1)][self.axis]  # the two in-plane axes
        return normals, points[u_axis], points[v_axis]


@dataclass
class Sphere:
    center: np.ndarray
    radius: float
    material: Material
    casts_shadows = True

    @property
    def bounding_radius(self):
        return self.radius

    def intersect(self, origin, dirs):
        offset = _col(origin - self.center)
        a, b = _dot(dirs, dirs), _dot(offset, dirs)
        c = np.float32(offset.ravel() @ offset.ravel() - self.radius ** 2)
        disc = b * b - a * c
        t = (-b - np.sqrt(np.maximum(disc, 0))) / a  # the camera is outside every object
        return np.where((disc > 0) & (t > 0), t, np.inf)

    def segment_blocker(self, starts):
        """A function ``light -> (M,) bool``: does the segment from each start (3, M) to ``light`` cross the sphere?"""
        offsets = starts - _col(self.center)
        c = _dot(offsets, offsets) - np.float32(self.radius ** 2)

        def blocked(light):
            dirs = _col(light - self.center) - offsets
            a, b = _dot(dirs, dirs), _dot(offsets, dirs)
            disc = b * b - a * c
            root = np.sqrt(np.maximum(disc, 0))
            return (disc > 0) & (root - b > 0) & (-b - root < a)  # the hit interval overlaps (0, 1)
        return blocked

    def surface(self, points):
        normals = (points - _col(self.center)) / np.float32(self.radius)
        u = np.arctan2(normals[0], normals[2]) * np.float32(self.radius)
        v = np.arccos(np.clip(normals[1], -1, 1)) * np.float32(self.radius)
        return normals, u, v


@dataclass
class Box:
    """A box rotated by ``yaw`` about the vertical axis (also a picture on a wall, casting no shadow)."""
    center: np.ndarray
    half: np.ndarray
    yaw: float
    material: Material
    casts_shadows: bool = True
    rotation: np.ndarray = field(init=False)  # box -> world

    def __post_init__(self):
        self.rotation = _rotation_y(self.yaw)

    @property
    def bounding_radius(self):
        return float(np.linalg.norm(self.half))

    def _to_local(self, points):
        return self.rotation.T.astype(np.float32) @ (points - _col(self.center))

    def intersect(self, origin, dirs):
        local_origin = self.rotation.T @ (origin - self.center)
        local_dirs = self.rotation.T.astype(np.float32) @ dirs
        t_near, t_far = self._slabs(np.float32(-self.half)[:, None] - _col(local_origin),
                                    np.float32(self.half)[:, None] - _col(local_origin), local_dirs, 0, np.inf)
        return np.where((t_near < t_far) & (t_near > 0), t_near, np.inf)

    def segment_blocker(self, starts):
        """A function ``light -> (M,) bool``: does the segment from each start (3, M) to ``light`` cross the box?"""
        local = self._to_local(starts)
        low, high = np.float32(-self.half)[:, None] - local, np.float32(self.half)[:, None] - local

        def blocked(light):
            local_dirs = _col(self.rotation.T @ (light - self.center)) - local
            t_near, t_far = self._slabs(low, high, local_dirs, 0, 1)
            return t_near < t_far
        return blocked

    @staticmethod
    def _slabs(low, high, dirs, t_min, t_max):
        """Kay-Kajiya slab test: the ray interval inside the box, clipped to [t_min, t_max].

        ``low`` and ``high`` are the box faces minus the ray origins, (3, N) or (3, 1).
        """
        t_near, t_far = np.float32(t_min), np.float32(t_max)
        with np.errstate(divide='ignore', invalid='ignore'):
            for axis in range(3):
                inverse = 1 / dirs[axis]
                t_low, t_high = low[axis] * inverse, high[axis] * inverse
                t_near = np.maximum(t_near, np.minimum(t_low, t_high))
                t_far = np.minimum(t_far, np.maximum(t_low, t_high))
        return t_near, t_far

    def surface(self, points):
        local = self._to_local(points)
        axis = np.argmax(np.abs(local) / np.float32(self.half)[:, None], axis=0)
        columns = np.arange(points.shape[1])
        local_normals = np.zeros_like(local)
        local_normals[axis, columns] = np.sign(local[axis, columns])
        # Planar mapping per face: the two local coordinates other than the face normal, from
        # the box corner, so that a picture of the face's size appears once and upright.
        corner = local + np.float32(self.half)[:, None]
        u = np.where(axis == 0, corner[2], corner[0])
        v = np.where(axis == 1, corner[2], corner[1])
        return self.rotation.astype(np.float32) @ local_normals, u, v


@dataclass
class Scene:
    """Everything :func:`render` needs; drawn by :func:`sample_scene`, editable in tests."""
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


@dataclass
class RenderResult:
    """Camera-RGB images in [0, 1] plus the buffers tests and figures inspect."""
    ambient: np.ndarray  # (H, W, 3) float32
    flash_only: np.ndarray  # (H, W, 3) float32
    depth: np.ndarray  # (H, W) float32, metres along the optical axis
    flash_visibility: np.ndarray  # (H, W) bool, False in the flash's cast shadows
    lamp_visibility: np.ndarray  # (H, W) float32, fraction of the lamp in view (soft shadows)


def render_scene(seed, size=512, return_depth=False):
    """Render one synthetic scene.

    Args:
        seed: the scene's seed (the split offset is added by :func:`generate_split`).
        size: image height and width in pixels.
        return_depth: also return the (H, W) depth map in metres.

    Returns:
        ``(ambient, flash_only, metadata)`` with (H, W, 3) float32 linear camera RGB in [0, 1],
        and ``depth`` last when ``return_depth`` is set.
    """
    scene = sample_scene(seed, size)
    result = render(scene)
    if return_depth:
        return result.ambient, result.flash_only, scene.metadata, result.depth
    return result.ambient, result.flash_only, scene.metadata


MANIFEST = 'synthetic_{split}.json'


def generate_split(root, split, num_scenes, size=512, workers=2, overwrite=False, progress=True,
                   resume_command=None):
    """Render ``num_scenes`` scenes of a split into the FAID folder ``root``; an interrupted run resumes.

    Each file is written atomically; until the last scene is written the folder carries the mark
    of :func:`fnf_basicsr.data.faid.mark_incomplete`, so readers refuse it. A later call with the
    same split, count and size renders only the scenes that are missing and produces the same files
    as an uninterrupted run (every scene is a pure function of its seed). The last steps write the
    manifest ``synthetic_<split>.json`` (names, sizes, SHA-256 of every file) and remove the mark.

    Args:
        root: output folder (created if missing).
        split: 'train', 'val' or 'test'; selects the seed range and the names
            ``Synth_<split>_<index:06d>``.
        num_scenes: number of scenes (indices 0 .. num_scenes - 1).
        size: image size in pixels.
        workers: processes rendering in parallel (1: in this process).
        overwrite: replace existing files; otherwise an existing scene file is an error, except
            in a folder whose generation with the same parameters was interrupted (resumed).
        progress: show a tqdm progress bar.
        resume_command: the command named in the refusal of the unfinished folder.

    Returns:
        The scene names, in index order.

    Raises:
        ConfigError: bad split, count or size.
        OutputExistsError: scenes exist already (and the folder is no interrupted run of these parameters).
        OutputError: ``root`` cannot be created or written.
    """
    if split not in SPLIT_SEED_OFFSETS:
        raise ConfigError(f'split must be one of {sorted(SPLIT_SEED_OFFSETS)}, got {split!r}')
    for label, value, low in (('num_scenes', num_scenes, 1), ('size', size, 8), ('workers', workers, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f'{label} must be an integer >= {low}, got {value!r}')
    root = Path(root)
    names = [scene_name(split, index) for index in range(num_scenes)]
    parameters = {'split': split, 'num_scenes': num_scenes, 'size': size}
    resuming = _interrupted_run_of(root, parameters, overwrite)
    if not overwrite and not resuming and root.is_dir():
        existing = set(os.listdir(root))
        clashes = [name for name in names
                   if f'{name}{AMBIENT_SUFFIX}' in existing or f'{name}{FLASH_SUFFIX}' in existing]
        if clashes:
            raise OutputExistsError(f'{root} already holds {len(clashes)} of these scenes (e.g. {clashes[0]}); '
                                    f'pass overwrite=True (--overwrite) or choose another folder')
    prepare_output_folder(root, 'synthetic scenes')
    remove_stale_temporaries(root, any_name=True)
    resume_command = resume_command or (f'python scripts/data_preparation/generate_synthetic.py --root {root} '
                                        f'--split {split} --num {num_scenes} --size {size}')
    mark_incomplete(root, resume_command, parameters)
    todo = [(str(root), name, SPLIT_SEED_OFFSETS[split] + index, size, True)
            for index, name in enumerate(names) if overwrite or not _scene_written(root, name)]
    bar = functools.partial(tqdm, total=len(todo), desc=f'synthetic {split}', unit='scene', disable=not progress)
    if workers > 1 and len(todo) > 1:
        _srgb8_to_linear()  # computed once here: forked workers inherit it and never call torch
        with _serial_opencv(), multiprocessing.Pool(workers) as pool:
            for _ in bar(pool.imap_unordered(_render_and_write, todo)):
                fault_point('synthetic_scene')
    else:
        for job in bar(todo):
            _render_and_write(job)
            fault_point('synthetic_scene')
    write_manifest(root, parameters, names)
    mark_complete(root)
    return names


def _interrupted_run_of(root, parameters, overwrite):
    """True if ``root`` holds an interrupted generation with these parameters; refuses other ones."""
    marker = root / INCOMPLETE_MARKER
    if not marker.is_file():
        return False
    try:
        found = {key: json.loads(marker.read_text()).get(key) for key in parameters}
    except (OSError, ValueError, AttributeError):
        found = None
    if found == parameters:
        return True
    if not overwrite:
        raise OutputExistsError(f'{root} holds an unfinished generation with other parameters ({found}, now '
                                f'{parameters}); rerun it with its own parameters to finish it, or pass --overwrite')
    return False


def _scene_written(root, name):
    return all((root / f'{name}{suffix}').is_file() for suffix in (AMBIENT_SUFFIX, FLASH_SUFFIX))


def write_manifest(root, parameters, names):
    """Write ``synthetic_<split>.json``: the parameters and every file's byte count and SHA-256."""
    files = {}
    for name in names:
        for suffix in (AMBIENT_SUFFIX, FLASH_SUFFIX):
            data = (Path(root) / f'{name}{suffix}').read_bytes()
            files[f'{name}{suffix}'] = {'bytes': len(data), 'sha256': hashlib.sha256(data).hexdigest()}
    manifest = {'format': 'fnf-basicsr synthetic scenes', **parameters, 'files': files}
    write_atomically(Path(root) / MANIFEST.format(split=parameters['split']),
                     json.dumps(manifest, indent=1, sort_keys=True).encode(), overwrite=True)


def ensure_synthetic_dataset(root, split, num_scenes, size=512, workers=2, progress=True):
    """The folder of a synthetic split, generated on first use.

    The folder is ``<root>/<split>_<num_scenes>x<size>``. If it exists it is used as it is (after
    checking it holds exactly the expected scenes). Otherwise the scenes are rendered into the
    sibling ``.<folder>.partial`` that is renamed into place at the end, so an interrupted run never
    leaves a partial dataset under the final name, and the next call resumes the partial folder.
    Concurrent processes take turns through a lock file: the first generates, the others use its result.

    Args:
        root: parent folder of the generated splits (created if missing).
        split, num_scenes, size, workers, progress: as for :func:`generate_split`.

    Returns:
        The folder, as a string.

    Raises:
        DataError: the folder exists but holds other scenes than the expected ones.
    """
    root = Path(root)
    folder = root / f'{split}_{num_scenes}x{size}'
    expected = [scene_name(split, index) for index in range(num_scenes)]
    if not folder.is_dir():
        prepare_output_folder(root, 'synthetic dataset')
        with _exclusive_lock(root):
            if not folder.is_dir():  # another process may have finished it while we waited
                partial = root / f'.{folder.name}.partial'
                generate_split(partial, split, num_scenes, size, workers=workers, progress=progress,
                               overwrite=False, resume_command='the same training command (it resumes)')
                try:
                    os.rename(partial, folder)  # atomic; fails if another process (without flock) finished first
                except OSError:
                    if not folder.is_dir():
                        raise
                    shutil.rmtree(partial, ignore_errors=True)
    found = list_faid_names(folder)
    if found != expected:
        raise DataError(f'{folder} holds {len(found)} scenes, not the {num_scenes} expected '
                        f'({expected[0]} .. {expected[-1]}); delete the folder to regenerate it')
    return str(folder)


@contextlib.contextmanager
def _exclusive_lock(folder):
    """Hold an exclusive advisory lock on ``folder`` itself (POSIX flock, no lock file left behind;
    elsewhere no lock, and the rename in :func:`ensure_synthetic_dataset` settles a race)."""
    try:
        import fcntl
        descriptor = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def scene_name(split, index):
    """FAID-style name of a synthetic scene, e.g. ``Synth_train_000042``."""
    return f'Synth_{split}_{index:06d}'


def sample_scene(seed, size=512):
    """Draw a random scene: room, objects, materials, lights, camera and color calibration."""
    rng = np.random.default_rng(seed)
    hfov = np.deg2rad(rng.uniform(55, 75))
    focal_px = 0.5 * size / np.tan(hfov / 2)
    camera_rotation = _rotation_y(np.deg2rad(rng.uniform(-12, 12))) @ _rotation_x(np.deg2rad(rng.uniform(-22, -4)))

    # World: camera at the origin, x right, y down, z forward (before the camera rotation).
    camera_height = rng.uniform(0.8, 1.5)
    ceiling = camera_height - rng.uniform(2.4, 2.9)
    back = rng.uniform(2.5, 5.0)
    left, right = -rng.uniform(1.2, 2.5), rng.uniform(1.2, 2.5)
    wall_material = _wall_material(rng)
    surfaces = [
        RoomPlane(2, back, -1.0, _wall_material(rng) if rng.random() < 0.5 else wall_material),
        RoomPlane(1, camera_height, -1.0, _floor_material(rng)),
        RoomPlane(1, ceiling, 1.0, _material(_flat(rng.uniform(0.6, 0.85)), 1.0)),
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
        lamp_points=lamp_center + lamp_radius * _disk_points(LAMP_SAMPLES, rng.uniform(0, 2 * np.pi)),
        lamp_radius=lamp_radius,
        lamp_rgb=cct_to_linear_srgb(rng.uniform(*AMBIENT_CCT)),
        fill_rgb=cct_to_linear_srgb(rng.uniform(*AMBIENT_CCT)) * rng.uniform(0.05, 0.15),
        flash_position=flash_direction * rng.uniform(*FLASH_OFFSET_M),
        flash_rgb=cct_to_linear_srgb(rng.uniform(*FLASH_CCT)),
        flash_beam_exponent=rng.uniform(1.0, 4.0),
        exposure_targets=(rng.uniform(*EXPOSURE_TARGET), rng.uniform(*EXPOSURE_TARGET)),
        metadata=ColorMetadata(xyz_to_camera, illuminant),
    )


def render(scene):
    """Ray-cast a scene under its ambient lamp and under its flash.

    Vectors are (3, N) float32 columns, one per pixel, so every operation runs on whole rows.

    Returns:
        RenderResult with camera-RGB images exposed, lens-blurred and clipped to [0, 1].
    """
    dirs = _camera_rays(scene.size, scene.focal_px, scene.camera_rotation)
    depth, surface_index = _first_hits(scene.surfaces, dirs)
    points = dirs * depth
    normals, albedo, specular, shininess = _shade_inputs(scene, points, surface_index, depth)
    to_camera = _unit(-points)
    starts = points + np.float32(SHADOW_EPS) * normals

    # Soft shadows: the fraction of lamp samples in view, smoothed within each surface (16
    # samples alone draw a penumbra as 16 steps). Shading uses the lamp's centre.
    lamp_visible = _visibility(scene, starts, scene.lamp_points, scene.lamp_radius, surface_index)
    lamp_visibility = _smooth_per_surface(lamp_visible.mean(axis=0, dtype=np.float32), surface_index, scene.size)
    lamp_center = scene.lamp_points.mean(axis=0)
    lamp_irradiance = lamp_visibility * lamp_emission(points, lamp_center) * point_light_irradiance(
        points, normals, lamp_center)
    lamp_reflectance = albedo / np.float32(np.pi) + specular * blinn_phong(
        normals, _unit(_col(lamp_center) - points), to_camera, shininess)
    fill = (0.7 - 0.3 * normals[1]) * (1 - _ambient_occlusion(scene, points, normals))
    ambient = _col(scene.lamp_rgb) * lamp_irradiance * lamp_reflectance + _col(scene.fill_rgb) * albedo * fill

    flash_visibility = _visibility(scene, starts, scene.flash_position[None], 0.0, surface_index)[0]
    to_flash = _unit(_col(scene.flash_position) - points)
    beam = np.clip(-_dot(to_flash, _col(scene.camera_rotation[:, 2])), 0, 1) ** np.float32(scene.flash_beam_exponent)
    flash_irradiance = flash_visibility * beam * point_light_irradiance(points, normals, scene.flash_position)
    flash_only = _col(scene.flash_rgb) * flash_irradiance * (
        albedo / np.float32(np.pi) + specular * blinn_phong(normals, to_flash, to_camera, shininess))

    shape = (scene.size, scene.size)
    return RenderResult(
        ambient=_to_camera_image(ambient, scene, scene.exposure_targets[0]),
        flash_only=_to_camera_image(flash_only, scene, scene.exposure_targets[1]),
        depth=depth.reshape(shape),
        flash_visibility=flash_visibility.reshape(shape),
        lamp_visibility=lamp_visibility.reshape(shape),
    )


def point_light_irradiance(points, normals, light_position):
    """Irradiance from a unit point light: max(0, cos(incidence)) / distance^2 (no occlusion).

    Shape:
        points, normals: (3, N); light_position: (3,); output: (N,).
    """
    to_light = _col(light_position) - points
    distance2 = _dot(to_light, to_light)
    cosine = _dot(normals, to_light) / np.sqrt(distance2)
    return np.clip(cosine, 0, None) / distance2


def lamp_emission(points, lamp_point):
    """Relative intensity a downward-facing Lambertian lamp emits toward each point (3, N) -> (N,)."""
    from_lamp = points - _col(lamp_point)
    return np.clip(from_lamp[1] / np.sqrt(_dot(from_lamp, from_lamp)), 0, 1)  # y points down


def blinn_phong(normals, to_light, to_camera, shininess):
    """Energy-normalised Blinn-Phong lobe ``(s + 8) / (8 pi) * max(0, n.h)^s`` per unit irradiance.

    Shape:
        normals, to_light, to_camera: (3, N) unit vectors; shininess: scalar or (N,); output: (N,).
    """
    n_dot_h = np.clip(_dot(normals, _unit(to_light + to_camera)), 0, 1)
    return (shininess + 8) / np.float32(8 * np.pi) * n_dot_h ** shininess


def cct_to_linear_srgb(kelvin):
    """Linear sRGB color of a black body (Planckian locus), scaled to luminance Y = 1.

    Uses the cubic-spline fit of the Planckian locus by Kim et al. (valid 1667 K - 25000 K).
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


# ----------------------------------------------------------------------------- geometry


def _rotation_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rotation_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _unit(vectors):
    return vectors / np.sqrt(_dot(vectors, vectors))


def _disk_points(count, angle):
    """``count`` points evenly spread (sunflower pattern) over the horizontal unit disk."""
    radius = np.sqrt((np.arange(count) + 0.5) / count)
    theta = angle + np.arange(count) * np.pi * (3 - np.sqrt(5))
    return np.stack([radius * np.cos(theta), np.zeros(count), radius * np.sin(theta)], axis=1)


def _camera_rays(size, focal_px, rotation):
    """(3, size*size) world ray directions whose camera-z component is 1 (so t is the depth)."""
    coords = ((np.arange(size) + 0.5 - size / 2) / focal_px).astype(np.float32)
    u, v = np.meshgrid(coords, coords)
    return rotation.astype(np.float32) @ np.stack([u.ravel(), v.ravel(), np.ones(size * size, np.float32)])


def _first_hits(surfaces, dirs):
    """Depth (N,) and index of the surface each camera ray (from the origin) hits first."""
    origin = np.zeros(3)
    unit_dirs = _unit(dirs)
    depth = np.full(dirs.shape[1], np.inf, np.float32)
    index = np.full(dirs.shape[1], -1)
    for k, surface in enumerate(surfaces):
        if isinstance(surface, RoomPlane):
            columns = np.arange(dirs.shape[1])
        else:  # only the rays that pass near the object
            columns = _rays_near(unit_dirs, origin, surface.center, surface.bounding_radius)
        t = surface.intersect(origin, dirs[:, columns])
        closer = t < depth[columns]
        depth[columns[closer]], index[columns[closer]] = t[closer], k
    if np.isinf(depth).any():
        raise RuntimeError('a camera ray left the room; the room must enclose the view')
    return depth, index


def _rays_near(unit_dirs, apex, center, radius):
    """Indices of the rays from ``apex`` along ``unit_dirs`` (3, N) that pass within ``radius`` of ``center``.

    Such a ray lies in the cone from the apex around the sphere: one dot product per ray.
    """
    offset = np.asarray(center, np.float64) - apex
    distance = float(np.linalg.norm(offset))
    if distance <= radius:  # the apex is inside the sphere
        return np.arange(unit_dirs.shape[1])
    cos_cone = np.sqrt(1 - (radius / distance) ** 2)
    return np.flatnonzero(_dot(unit_dirs, _col(offset / distance)) > np.float32(cos_cone))


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
    from_light = _unit(starts - _col(center))
    for k, occluder in _occluders(scene):
        candidates = _rays_near(from_light, center, occluder.center, occluder.bounding_radius + light_radius)
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
        offsets = _col(occluder.center) - points
        distance2 = np.maximum(_dot(offsets, offsets), np.float32(radius ** 2))
        cosine = _dot(normals, offsets) / np.sqrt(distance2)
        occlusion += np.clip(cosine, 0, 1) * np.float32(radius ** 2) / distance2
    return np.clip(occlusion, 0, 0.8)


def _sample_posters(rng, ceiling_y, floor_y, back, left, right):
    """Up to two framed-less photographs hanging on the back wall (thin boxes), side by side."""
    posters = []
    count = rng.choice(3, p=(0.3, 0.4, 0.3))
    slots = np.linspace(left, right, count + 1)
    for low, high in zip(slots[:-1], slots[1:]):
        photo = _photo(str(rng.choice(COLOR_PHOTOS)))
        width = min(rng.uniform(0.4, 1.2), 0.8 * (high - low))
        height = width * photo.shape[0] / photo.shape[1]
        x = rng.uniform(low + width / 2, high - width / 2)
        y = rng.uniform(ceiling_y + 0.3 + height / 2, max(ceiling_y + 0.3 + height / 2, floor_y - 0.6 - height / 2))
        half = np.array([width / 2, height / 2, 0.01])
        material = _material(np.clip(photo, 0.02, 0.9), width, rng.uniform(0, 0.3), 64.0)
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
                               _object_material(rng)))
            if rng.random() < 0.3:
                radius = rng.uniform(0.05, min(half[0], half[2]))
                objects.append(Sphere(np.array([x, floor_y - 2 * half[1] - radius, depth]), radius,
                                      _object_material(rng)))
        else:
            radius = rng.uniform(0.08, 0.4)
            objects.append(Sphere(np.array([x, floor_y - radius, depth]), radius, _object_material(rng)))
    return objects


# ----------------------------------------------------------------------------- materials


@functools.lru_cache(maxsize=None)
def _srgb8_to_linear():
    """Lookup table: 8-bit sRGB code -> linear value (float32, 256 entries)."""
    return srgb_degamma(np.arange(256) / 255.0).numpy().astype(np.float32)


@functools.lru_cache(maxsize=None)
def _photo(name):
    """A scikit-image sample photograph as linear sRGB float32 (h, w, 3); gray ones are replicated."""
    image = np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)
    image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    return _srgb8_to_linear()[image]


def _random_color(rng, saturation=(0.05, 0.6), value=(0.25, 0.9)):
    """A random albedo color, drawn in HSV on the sRGB scale, returned in linear sRGB (3,)."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]])
    return _srgb8_to_linear()[cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]]


def _flat(level):
    return np.full((1, 1, 3), level, np.float32)


def _value_noise(rng, size=256, octaves=4):
    """Fractal value noise in [0, 1], (size, size)."""
    noise = np.zeros((size, size), np.float32)
    for octave in range(octaves):
        cells = 4 * 2 ** octave
        grid = rng.random((cells, cells)).astype(np.float32)
        noise += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) / 2 ** octave
    noise -= noise.min()
    return noise / max(float(noise.max()), 1e-6)


def _procedural(rng, size=256):
    """Stripes, checker, wood-like rings or plaster noise, mixing two random colors."""
    kind = rng.choice(['stripes', 'checker', 'wood', 'noise'])
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == 'stripes':
        angle = rng.uniform(0, np.pi)
        phase = (xx * np.cos(angle) + yy * np.sin(angle)) * rng.integers(3, 16)
        mix = np.clip(2 * np.sin(2 * np.pi * phase) + 0.5, 0, 1)
    elif kind == 'checker':
        cells = rng.integers(2, 10)
        mix = ((np.floor(xx * cells) + np.floor(yy * cells)) % 2).astype(np.float32)
    elif kind == 'wood':
        mix = 0.5 + 0.5 * np.sin(2 * np.pi * (rng.uniform(6, 20) * yy + 3 * _value_noise(rng, size, 3)))
    else:
        mix = _value_noise(rng, size)
    mix = np.clip(mix * 0.85 + 0.15 * _value_noise(rng, size, 5), 0, 1)[..., None]
    return (1 - mix) * _random_color(rng) + mix * _random_color(rng)


def _tinted_photo(rng, names):
    """A gray photograph multiplied by a random color (linear sRGB); the / 0.6 keeps it about as bright."""
    image = _photo(str(rng.choice(names))) * (_random_color(rng, value=(0.5, 1.0)) / 0.6)
    return np.clip(image, 0.02, 0.9)


def _material(albedo, width_m, specular=0.0, shininess=32.0):
    """A Material whose texture spans ``width_m`` metres on the surface before it repeats."""
    return Material(albedo, width_m / albedo.shape[1], specular, shininess)


def _wall_material(rng):
    choice = rng.random()
    if choice < 0.4:  # paint: a pale color with faint blotches
        paint = _random_color(rng, saturation=(0.0, 0.35), value=(0.55, 0.95))
        return _material(paint * (0.85 + 0.15 * _value_noise(rng)[..., None]), 2.0)
    if choice < 0.75:  # wallpaper
        return _material(_procedural(rng), rng.uniform(0.5, 1.5))
    return _material(_tinted_photo(rng, GRAY_TEXTURES), rng.uniform(1.0, 2.5))


def _floor_material(rng):
    if rng.random() < 0.6:
        return _material(_procedural(rng), rng.uniform(0.8, 2.5), rng.uniform(0, 0.15), rng.uniform(8, 64))
    return _material(_tinted_photo(rng, GRAY_TEXTURES), rng.uniform(1.0, 3.0), rng.uniform(0, 0.1))


def _object_material(rng):
    specular, shininess = rng.uniform(0, 0.4), float(np.exp(rng.uniform(np.log(8), np.log(120))))
    choice = rng.random()
    if choice < 0.4:
        albedo = np.clip(_photo(str(rng.choice(COLOR_PHOTOS))), 0.02, 0.9)
        return _material(albedo, rng.uniform(0.45, 1.2), specular, shininess)
    if choice < 0.7:
        return _material(_procedural(rng, 128), rng.uniform(0.2, 0.6), specular, shininess)
    if choice < 0.85:
        return _material(_tinted_photo(rng, GRAY_PHOTOS + GRAY_TEXTURES), rng.uniform(0.3, 0.8), specular, shininess)
    return _material(_flat(1.0) * _random_color(rng, saturation=(0.2, 0.9)), 1.0, specular, shininess)


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
        albedo[:, columns] = _sample_texture(material.albedo, material.texel_m, footprint, u, v).T
        specular[columns], shininess[columns] = material.specular, material.shininess
    return normals, albedo, specular, shininess


def _sample_texture(texture, texel_m, footprint_m, u, v):
    """Bilinear lookup with mirrored repetition.

    Args:
        texture: (h, w, 3) albedo; ``texel_m`` metres per texel.
        footprint_m: size of a pixel on the surface; coarser than a texel, the texture is averaged.
        u, v: (M,) surface coordinates in metres.

    Returns:
        (M, 3) albedo.
    """
    if texture.shape[0] > 1 and footprint_m > texel_m:  # minified: average texels (a 1-level mip map)
        scale = texel_m / footprint_m
        small = (max(2, round(texture.shape[1] * scale)), max(2, round(texture.shape[0] * scale)))
        texel_m *= texture.shape[1] / small[0]
        texture = cv2.resize(texture, small, interpolation=cv2.INTER_AREA)
    height, width = texture.shape[:2]
    x, y = u / texel_m - 0.5, v / texel_m - 0.5
    x0, y0 = np.floor(x), np.floor(y)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    left, right = _mirror(x0, width), _mirror(x0 + 1, width)
    upper, lower = _mirror(y0, height) * width, _mirror(y0 + 1, height) * width
    texels = texture.reshape(-1, texture.shape[2])
    top = texels[upper + left] * (1 - fx) + texels[upper + right] * fx
    bottom = texels[lower + left] * (1 - fx) + texels[lower + right] * fx
    return top * (1 - fy) + bottom * fy


def _mirror(index, length):
    index = np.mod(index, 2 * length)
    return np.where(index >= length, 2 * length - 1 - index, index)


# ----------------------------------------------------------------------------- camera


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


# ----------------------------------------------------------------------------- workers


@contextlib.contextmanager
def _serial_opencv():
    """One OpenCV thread while worker processes are forked (two processes on two cores need no more).

    Set in the parent, before the fork: a forked child calling ``cv2.setNumThreads`` waits forever
    for the parent's OpenCV pool threads, which do not exist in the child (a deadlock seen once an
    earlier cv2 call in the process had started that pool). Children inherit the setting.
    """
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _render_and_write(job):
    root, name, seed, size, overwrite = job
    ambient, flash_only, metadata = render_scene(seed, size)
    write_faid_pair(root, name, ambient, flash_only, metadata, overwrite=overwrite)
    return name
