"""Geometry of the ray caster: the shapes a room is built of, camera rays and their first hits.

Vectors are (3, N) float32 columns, one per pixel or ray, so every operation runs on whole rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from fnf_basicsr.data.synthetic.materials import Material


def column(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """A 3-vector as a float32 (3, 1) column that broadcasts against (3, N) arrays.

    Args:
        vector: three numbers.

    Returns:
        A (3, 1) float32 array.

    Example:
        >>> column([1, 2, 3]).shape
        (3, 1)
    """
    return np.asarray(vector, dtype=np.float32).reshape(3, 1)


def dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot product of (3, N) arrays (vectors are stored as columns for speed).

    Args:
        a: (3, N) or (3, 1) vectors.
        b: (3, N) or (3, 1) vectors.

    Returns:
        The (N,) dot products.

    Example:
        >>> dot(np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 0.0]]), column([1, 1, 1]))
        array([3., 1.])
    """
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def unit(vectors: np.ndarray) -> np.ndarray:
    """The (3, N) vectors scaled to unit length.

    Args:
        vectors: (3, N) non-zero vectors.

    Returns:
        (3, N) unit vectors.

    Example:
        >>> unit(column([3, 0, 4])).ravel()
        array([0.6, 0. , 0.8], dtype=float32)
    """
    return vectors / np.sqrt(dot(vectors, vectors))


def rotation_x(angle: float) -> np.ndarray:
    """The 3x3 rotation by ``angle`` (radians) about the x axis.

    Args:
        angle: in radians.

    Returns:
        (3, 3) float64 matrix acting on column vectors.

    Example:
        >>> np.round(rotation_x(np.pi / 2) @ [0, 1, 0], 6)
        array([0., 0., 1.])
    """
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_y(angle: float) -> np.ndarray:
    """The 3x3 rotation by ``angle`` (radians) about the y axis (the vertical one here: yaw).

    Args:
        angle: in radians.

    Returns:
        (3, 3) float64 matrix acting on column vectors.

    Example:
        >>> np.round(rotation_y(np.pi / 2) @ [0, 0, 1], 6)
        array([1., 0., 0.])
    """
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


@dataclass
class RoomPlane:
    """An axis-aligned wall, floor or ceiling: points with ``p[axis] == coord``; normal into the room.

    Attributes:
        axis: 0 (x), 1 (y, pointing down) or 2 (z, forward).
        coord: the plane's coordinate on ``axis``, metres.
        normal_sign: +1 or -1, the normal's direction along ``axis``.
        material: its surface.

    Example:
        >>> from fnf_basicsr.data.synthetic.materials import flat_albedo, material_spanning
        >>> floor = RoomPlane(1, 1.2, -1.0, material_spanning(flat_albedo(0.5), 1.0))
        >>> floor.intersect(np.zeros(3), np.array([[0.0, 0.0], [1.0, -1.0], [1.0, 1.0]], np.float32))
        array([1.2, inf], dtype=float32)
    """
    axis: int
    coord: float
    normal_sign: float
    material: Material
    casts_shadows = False  # the lights are inside the room

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Ray parameter of the hit (inf for none) for rays ``origin + t * dirs``, dirs (3, N).

        Args:
            origin: (3,) ray origin.
            dirs: (3, N) ray directions.

        Returns:
            (N,) ray parameters, inf where the ray does not hit in front of the origin.
        """
        with np.errstate(divide='ignore'):
            t = np.float32(self.coord - origin[self.axis]) / dirs[self.axis]
        return np.where(t > 0, t, np.inf)

    def surface(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normals (3, M) and texture coordinates u, v (metres) of points (3, M) on the plane.

        Args:
            points: (3, M) points on the plane.

        Returns:
            ``(normals (3, M), u (M,), v (M,))``.
        """
        normals = np.zeros_like(points)
        normals[self.axis] = self.normal_sign
        u_axis, v_axis = [(2, 1), (0, 2), (0, 1)][self.axis]  # the two in-plane axes
        return normals, points[u_axis], points[v_axis]


@dataclass
class Sphere:
    """A sphere; the camera is never inside one.

    Attributes:
        center: (3,) centre, metres.
        radius: metres.
        material: its surface.

    Example:
        >>> from fnf_basicsr.data.synthetic.materials import flat_albedo, material_spanning
        >>> ball = Sphere(np.array([0.0, 0.0, 3.0]), 1.0, material_spanning(flat_albedo(0.5), 1.0))
        >>> ball.intersect(np.zeros(3), np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]]))
        array([ 2., inf])
    """
    center: np.ndarray
    radius: float
    material: Material
    casts_shadows = True

    @property
    def bounding_radius(self) -> float:
        """The radius of a sphere holding the object: its own radius."""
        return self.radius

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Ray parameter of the nearest hit (inf for none) for rays ``origin + t * dirs``.

        Args:
            origin: (3,) ray origin, outside the sphere.
            dirs: (3, N) ray directions.

        Returns:
            (N,) ray parameters.
        """
        offset = column(origin - self.center)
        a, b = dot(dirs, dirs), dot(offset, dirs)
        c = np.float32(offset.ravel() @ offset.ravel() - self.radius ** 2)
        disc = b * b - a * c
        t = (-b - np.sqrt(np.maximum(disc, 0))) / a  # the camera is outside every object
        return np.where((disc > 0) & (t > 0), t, np.inf)

    def segment_blocker(self, starts: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """A function ``light -> (M,) bool``: does the segment from each start (3, M) to ``light`` cross the sphere?

        Args:
            starts: (3, M) segment starts (surface points).

        Returns:
            A function of a (3,) light position giving (M,) bools.

        Example:
            >>> from fnf_basicsr.data.synthetic.materials import flat_albedo, material_spanning
            >>> ball = Sphere(np.array([0.0, 0.0, 3.0]), 1.0, material_spanning(flat_albedo(0.5), 1.0))
            >>> ball.segment_blocker(np.array([[0.0, 5.0], [0.0, 0.0], [0.0, 0.0]]))(np.array([0.0, 0.0, 6.0]))
            array([ True, False])
        """
        offsets = starts - column(self.center)
        c = dot(offsets, offsets) - np.float32(self.radius ** 2)

        def blocked(light):
            dirs = column(light - self.center) - offsets
            a, b = dot(dirs, dirs), dot(offsets, dirs)
            disc = b * b - a * c
            root = np.sqrt(np.maximum(disc, 0))
            return (disc > 0) & (root - b > 0) & (-b - root < a)  # the hit interval overlaps (0, 1)
        return blocked

    def surface(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normals and texture coordinates (metres along the surface) of points on the sphere.

        Args:
            points: (3, M) points on the sphere.

        Returns:
            ``(normals (3, M), u (M,), v (M,))``.
        """
        normals = (points - column(self.center)) / np.float32(self.radius)
        u = np.arctan2(normals[0], normals[2]) * np.float32(self.radius)
        v = np.arccos(np.clip(normals[1], -1, 1)) * np.float32(self.radius)
        return normals, u, v


@dataclass
class Box:
    """A box rotated by ``yaw`` about the vertical axis (also a picture on a wall, casting no shadow).

    Attributes:
        center: (3,) centre, metres.
        half: (3,) half extents along the box's own axes, metres.
        yaw: rotation about the vertical axis, radians.
        material: its surface.
        casts_shadows: False for pictures on walls.

    Example:
        >>> from fnf_basicsr.data.synthetic.materials import flat_albedo, material_spanning
        >>> box = Box(np.array([0.0, 0.0, 3.0]), np.full(3, 0.5), 0.0, material_spanning(flat_albedo(0.5), 1.0))
        >>> box.intersect(np.zeros(3), np.array([[0.0, 1.0], [0.0, 0.0], [1.0, 0.0]], np.float32))
        array([2.5, inf], dtype=float32)
    """
    center: np.ndarray
    half: np.ndarray
    yaw: float
    material: Material
    casts_shadows: bool = True
    rotation: np.ndarray = field(init=False)  # box -> world

    def __post_init__(self):
        self.rotation = rotation_y(self.yaw)

    @property
    def bounding_radius(self) -> float:
        """The radius of a sphere about the centre holding the box: half its diagonal."""
        return float(np.linalg.norm(self.half))

    def _to_local(self, points):
        return self.rotation.T.astype(np.float32) @ (points - column(self.center))

    def intersect(self, origin: np.ndarray, dirs: np.ndarray) -> np.ndarray:
        """Ray parameter of the nearest hit (inf for none) for rays ``origin + t * dirs``.

        Args:
            origin: (3,) ray origin, outside the box.
            dirs: (3, N) ray directions.

        Returns:
            (N,) ray parameters.
        """
        local_origin = self.rotation.T @ (origin - self.center)
        local_dirs = self.rotation.T.astype(np.float32) @ dirs
        t_near, t_far = self._slabs(np.float32(-self.half)[:, None] - column(local_origin),
                                    np.float32(self.half)[:, None] - column(local_origin), local_dirs, 0, np.inf)
        return np.where((t_near < t_far) & (t_near > 0), t_near, np.inf)

    def segment_blocker(self, starts: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        """A function ``light -> (M,) bool``: does the segment from each start (3, M) to ``light`` cross the box?

        Args:
            starts: (3, M) segment starts (surface points).

        Returns:
            A function of a (3,) light position giving (M,) bools.

        Example:
            >>> from fnf_basicsr.data.synthetic.materials import flat_albedo, material_spanning
            >>> box = Box(np.array([0.0, 0.0, 3.0]), np.full(3, 0.5), 0.3, material_spanning(flat_albedo(0.5), 1.0))
            >>> box.segment_blocker(np.array([[0.0, 5.0], [0.0, 0.0], [0.0, 0.0]]))(np.array([0.0, 0.0, 6.0]))
            array([ True, False])
        """
        local = self._to_local(starts)
        low, high = np.float32(-self.half)[:, None] - local, np.float32(self.half)[:, None] - local

        def blocked(light):
            local_dirs = column(self.rotation.T @ (light - self.center)) - local
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

    def surface(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normals and texture coordinates (metres from the box corner, per face) of points on the box.

        Args:
            points: (3, M) points on the box.

        Returns:
            ``(normals (3, M), u (M,), v (M,))``.
        """
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


def disk_points(count: int, angle: float) -> np.ndarray:
    """``count`` points evenly spread (sunflower pattern) over the horizontal unit disk.

    Args:
        count: number of points.
        angle: rotation of the pattern, radians.

    Returns:
        (count, 3) points with y = 0 and x^2 + z^2 < 1.

    Example:
        >>> points = disk_points(16, 0.0)
        >>> points.shape, bool(np.all(np.hypot(points[:, 0], points[:, 2]) < 1)), bool(np.all(points[:, 1] == 0))
        ((16, 3), True, True)
    """
    radius = np.sqrt((np.arange(count) + 0.5) / count)
    theta = angle + np.arange(count) * np.pi * (3 - np.sqrt(5))
    return np.stack([radius * np.cos(theta), np.zeros(count), radius * np.sin(theta)], axis=1)


def camera_rays(size: int, focal_px: float, rotation: np.ndarray) -> np.ndarray:
    """(3, size*size) world ray directions whose camera-z component is 1 (so t is the depth).

    Args:
        size: image side in pixels.
        focal_px: focal length in pixels.
        rotation: (3, 3) camera -> world rotation.

    Returns:
        (3, size * size) float32 directions, row-major pixel order.

    Example:
        >>> rays = camera_rays(2, 1.0, np.eye(3))
        >>> rays
        array([[-0.5,  0.5, -0.5,  0.5],
               [-0.5, -0.5,  0.5,  0.5],
               [ 1. ,  1. ,  1. ,  1. ]], dtype=float32)
    """
    coords = ((np.arange(size) + 0.5 - size / 2) / focal_px).astype(np.float32)
    u, v = np.meshgrid(coords, coords)
    return rotation.astype(np.float32) @ np.stack([u.ravel(), v.ravel(), np.ones(size * size, np.float32)])


def first_hits(surfaces: Sequence[RoomPlane | Sphere | Box], dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Depth (N,) and index of the surface each camera ray (from the origin) hits first.

    Args:
        surfaces: the scene's surfaces; the room planes must enclose the view.
        dirs: (3, N) camera ray directions (:func:`camera_rays`).

    Returns:
        ``(depth (N,) float32, index (N,) int)``.

    Raises:
        RuntimeError: a ray hits nothing (the room does not enclose the view).

    Example:
        >>> from fnf_basicsr.data.synthetic.materials import flat_albedo, material_spanning
        >>> paint = material_spanning(flat_albedo(0.5), 1.0)
        >>> surfaces = [RoomPlane(2, 4.0, -1.0, paint), Sphere(np.array([0.0, 0.0, 2.0]), 0.5, paint)]
        >>> first_hits(surfaces, np.array([[0.0, 0.5], [0.0, 0.0], [1.0, 1.0]]))
        (array([1.5, 4. ], dtype=float32), array([1, 0]))
    """
    origin = np.zeros(3)
    unit_dirs = unit(dirs)
    depth = np.full(dirs.shape[1], np.inf, np.float32)
    index = np.full(dirs.shape[1], -1)
    for k, surface in enumerate(surfaces):
        if isinstance(surface, RoomPlane):
            columns = np.arange(dirs.shape[1])
        else:  # only the rays that pass near the object
            columns = rays_near(unit_dirs, origin, surface.center, surface.bounding_radius)
        t = surface.intersect(origin, dirs[:, columns])
        closer = t < depth[columns]
        depth[columns[closer]], index[columns[closer]] = t[closer], k
    if np.isinf(depth).any():
        raise RuntimeError('a camera ray left the room; the room must enclose the view')
    return depth, index


def rays_near(unit_dirs: np.ndarray, apex: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the rays from ``apex`` along ``unit_dirs`` (3, N) that pass within ``radius`` of ``center``.

    Such a ray lies in the cone from the apex around the sphere: one dot product per ray.

    Args:
        unit_dirs: (3, N) unit ray directions.
        apex: (3,) the rays' common origin.
        center: (3,) centre of the sphere.
        radius: its radius.

    Returns:
        The indices of the rays in the cone (all of them when the apex is inside the sphere).

    Example:
        >>> dirs = unit(np.array([[0.0, 1.0, 0.1], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0]], np.float32))
        >>> rays_near(dirs, np.zeros(3), np.array([0.0, 0.0, 5.0]), 1.0)
        array([0, 2])
    """
    offset = np.asarray(center, np.float64) - apex
    distance = float(np.linalg.norm(offset))
    if distance <= radius:  # the apex is inside the sphere
        return np.arange(unit_dirs.shape[1])
    cos_cone = np.sqrt(1 - (radius / distance) ** 2)
    return np.flatnonzero(dot(unit_dirs, column(offset / distance)) > np.float32(cos_cone))
