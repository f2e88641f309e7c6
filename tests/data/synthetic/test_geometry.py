"""The ray caster's shapes (fnf_basicsr.data.synthetic.geometry): ray hits against closed forms for planes, spheres
and rotated boxes, shadow segments, surface normals, camera rays and first hits."""
import numpy as np
import pytest

from fnf_basicsr.data.synthetic.geometry import (Box, RoomPlane, Sphere, camera_rays, disk_points, first_hits,
                                                 rays_near, rotation_y)
from fnf_basicsr.data.synthetic.materials import Material, flat_albedo

GRAY = Material(flat_albedo(0.5), 1.0)


def rays(*directions):
    return np.asarray(directions, np.float32).T  # (3, N) columns


def test_a_plane_is_hit_at_its_distance_along_the_axis_and_never_behind():
    back = RoomPlane(axis=2, coord=4.0, normal_sign=-1, material=GRAY)
    t = back.intersect(np.zeros(3), rays((0, 0, 1), (0.5, 0, 2), (0, 0, -1), (1, 0, 0)))
    np.testing.assert_allclose(t[:2], [4.0, 2.0])
    assert np.isinf(t[2]) and np.isinf(t[3])  # behind the origin; parallel to the plane
    normals, u, v = back.surface(rays((1, 2, 4), (-1, 3, 4)))
    np.testing.assert_array_equal(normals, rays((0, 0, -1), (0, 0, -1)))
    np.testing.assert_array_equal(u, [1, -1]) and np.testing.assert_array_equal(v, [2, 3])


def test_a_sphere_is_hit_at_its_near_side_with_outward_normals():
    sphere = Sphere(center=np.array([0.0, 0.0, 5.0]), radius=1.0, material=GRAY)
    t = sphere.intersect(np.zeros(3), rays((0, 0, 1), (0, 0, 2), (1, 0, 1), (0, 0, -1)))
    np.testing.assert_allclose(t[:2], [4.0, 2.0], rtol=1e-6)  # t scales with the direction's length
    assert np.isinf(t[2]) and np.isinf(t[3])  # a miss at 45 degrees; the sphere behind
    normals, _, _ = sphere.surface(rays((0, 0, 4), (1, 0, 5)))
    np.testing.assert_allclose(normals, rays((0, 0, -1), (1, 0, 0)), atol=1e-6)
    blocked = sphere.segment_blocker(rays((0, 0, 0), (3, 0, 0), (0, 0, 3.5)))
    assert blocked(np.array([0.0, 0.0, 10.0])).tolist() == [True, False, True]
    assert blocked(np.array([0.0, 0.0, 3.8])).tolist() == [False, False, False]  # the light before the sphere


def test_a_rotated_box_is_hit_on_its_rotated_faces():
    box = Box(center=np.array([0.0, 0.0, 5.0]), half=np.array([1.0, 1.0, 1.0]), yaw=np.pi / 4, material=GRAY)
    np.testing.assert_allclose(box.rotation, rotation_y(np.pi / 4))
    t = box.intersect(np.zeros(3), rays((0, 0, 1), (0, 1, 0)))
    assert t[0] == pytest.approx(5 - np.sqrt(2), rel=1e-6)  # a vertical edge faces the camera
    assert np.isinf(t[1])
    half_sqrt2 = np.sqrt(0.5)
    on_face = (half_sqrt2, 0.2, 5 - half_sqrt2)  # the centre of the face of local normal +x, moved up 0.2
    normals, _, _ = box.surface(rays(on_face))
    np.testing.assert_allclose(normals[:, 0], [half_sqrt2, 0, -half_sqrt2], atol=1e-6)  # rotated with the box
    blocked = box.segment_blocker(rays((0, 0, 0), (0, 3, 0)))
    assert blocked(np.array([0.0, 0.0, 10.0])).tolist() == [True, False]
    assert box.bounding_radius == pytest.approx(np.sqrt(3))


def test_camera_rays_have_unit_depth_and_span_the_field_of_view():
    dirs = camera_rays(4, focal_px=2.0, rotation=np.eye(3))
    assert dirs.shape == (3, 16) and dirs.dtype == np.float32
    np.testing.assert_array_equal(dirs[2], 1)  # camera z is 1: t is the depth
    np.testing.assert_allclose(sorted(set(dirs[0].tolist())), [-0.75, -0.25, 0.25, 0.75])  # pixel centres / f
    turned = camera_rays(4, 2.0, rotation_y(np.pi / 2))
    np.testing.assert_allclose(turned[0], 1, atol=1e-6)  # looking along +x


def test_first_hits_take_the_nearest_surface_and_refuse_rays_that_leave_the_room():
    room = [RoomPlane(2, 6.0, -1, GRAY), RoomPlane(0, 3.0, -1, GRAY), RoomPlane(0, -3.0, 1, GRAY),
            RoomPlane(1, 3.0, -1, GRAY), RoomPlane(1, -3.0, 1, GRAY)]
    sphere = Sphere(np.array([0.0, 0.0, 4.0]), 1.0, GRAY)
    depth, index = first_hits(room + [sphere], rays((0, 0, 1), (0.9, 0, 1)))
    np.testing.assert_allclose(depth, [3.0, 3.0 / 0.9], rtol=1e-6)
    assert index.tolist() == [5, 1]  # the sphere before the back wall; the right wall
    with pytest.raises(RuntimeError, match='left the room'):
        first_hits(room, rays((0, 0, -1)))


def test_rays_near_selects_the_cone_around_a_sphere_and_disk_points_fill_the_disk():
    unit_dirs = rays((0, 0, 1), (0.1, 0, 0.995), (1, 0, 0))
    assert rays_near(unit_dirs, np.zeros(3), np.array([0.0, 0.0, 5.0]), 1.0).tolist() == [0, 1]
    assert rays_near(unit_dirs, np.zeros(3), np.array([0.0, 0.0, 0.5]), 1.0).tolist() == [0, 1, 2]  # apex inside
    points = disk_points(200, 0.3)
    assert points.shape == (200, 3) and np.all(points[:, 1] == 0)
    radii = np.linalg.norm(points, axis=1)
    assert radii.max() <= 1 and np.mean(radii < np.sqrt(0.5)) == pytest.approx(0.5, abs=0.01)  # uniform in area
