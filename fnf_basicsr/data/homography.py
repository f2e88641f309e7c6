"""Random homographies that misalign a flash/no-flash pair the way a hand-held camera does.

The paper (Sec. 4) undoes FAID's alignment by warping one image of the pair with a homography
induced by a small camera motion: a pinhole camera with a 90-degree field of view (focal length
= crop / 2, principal point at the crop centre) is rotated about its x, y and z axes by angles
uniform in [-0.5, 0.5] degrees; the image is then scaled by a factor uniform in [0.98, 1.02] and
shifted by a translation uniform in [-2, 2] pixels per axis (released code; the paper's text says
[0, 2]).

Conventions (shared by every function here):
    * Coordinates are crop pixel coordinates ``(x, y)``: pixel ``(row i, column j)`` sits at
      ``x = j, y = i``; the crop centre is ``((size - 1) / 2, (size - 1) / 2)``.
    * A homography ``H`` maps a pixel ``p`` of the *reference* crop to the position ``H p`` where
      the warped image samples its source: ``warped[p] = source[H p]`` (inverse mapping, as the
      released code's spatial transformer). The displacement of ``p`` is ``H p - p``.
    * Scaling acts about ``scale_pivot``, by default the crop centre. The released code scales
      about the top-left corner of the whole (uncropped) image, so there the displacement grows
      with the crop's distance from that corner; pass the corner's crop coordinates as
      ``scale_pivot`` to reproduce it (see :func:`image_origin_pivot`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import cv2
import numpy as np

DEFAULT_ROTATION_DEG = 0.5
DEFAULT_SCALE_RANGE = (0.98, 1.02)
DEFAULT_TRANSLATION_PX = (-2.0, 2.0)
DEFAULT_FOV_DEG = 90.0
# Search limits of homography_for_displacement: the motion is scaled by at most this factor,
# and 60 halvings resolve the factor to float64 precision.
MAX_MOTION_FACTOR = 1e6
MAX_BISECTIONS = 60


@dataclass(frozen=True)
class CameraMotion:
    """The parameters of one random misalignment (angles in degrees, shifts in pixels).

    Args:
        theta_x, theta_y, theta_z: rotation angles about the camera's x, y and z axes.
        scale: the image's scale factor (about the pivot of :meth:`matrix`).
        shift_x, shift_y: the image's translation.

    Example:
        >>> H = CameraMotion(shift_x=1.5, shift_y=-0.5).matrix(32)
        >>> apply_homography(H, [[0.0, 0.0]]), mean_displacement(H, 32)
        (array([[-1.5,  0.5]]), 2.0)
    """
    theta_x: float = 0.0
    theta_y: float = 0.0
    theta_z: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def scaled(self, factor: float) -> CameraMotion:
        """The same motion with every deviation from the identity multiplied by ``factor``.

        Args:
            factor: the multiplier of the angles, ``scale - 1`` and the shifts.

        Returns:
            A new motion.

        Example:
            >>> CameraMotion(theta_z=0.2, scale=1.01).scaled(2)
            CameraMotion(theta_x=0.0, theta_y=0.0, theta_z=0.4, scale=1.02, shift_x=0.0, shift_y=0.0)
        """
        return replace(self, theta_x=self.theta_x * factor, theta_y=self.theta_y * factor,
                       theta_z=self.theta_z * factor, scale=1.0 + (self.scale - 1.0) * factor,
                       shift_x=self.shift_x * factor, shift_y=self.shift_y * factor)

    def matrix(self, crop_size: int, fov_deg: float = DEFAULT_FOV_DEG,
               scale_pivot: tuple[float, float] | None = None) -> np.ndarray:
        """The 3x3 homography (float64) of this motion for a square crop of ``crop_size`` pixels.

        Args:
            crop_size: side of the reference crop in pixels.
            fov_deg: horizontal field of view of the pinhole camera across the crop.
            scale_pivot: ``(x, y)`` in crop coordinates about which the scale acts; None: the centre.

        Returns:
            (3, 3) float64 homography in crop coordinates (see the module docstring).

        Example:
            >>> CameraMotion(scale=1.02).matrix(5).round(3)  # about the centre (2, 2)
            array([[ 1.02,  0.  , -0.04],
                   [ 0.  ,  1.02, -0.04],
                   [ 0.  ,  0.  ,  1.  ]])
        """
        center = (crop_size - 1) / 2.0
        focal = crop_size / 2.0 / math.tan(math.radians(fov_deg) / 2.0)
        intrinsic = np.array([[focal, 0.0, center], [0.0, focal, center], [0.0, 0.0, 1.0]])
        rotation = _rotation_x(self.theta_x) @ _rotation_y(self.theta_y) @ _rotation_z(self.theta_z)
        rotation_homography = intrinsic @ rotation @ np.linalg.inv(intrinsic)
        pivot_x, pivot_y = (center, center) if scale_pivot is None else scale_pivot
        scale_shift = np.array([
            [self.scale, 0.0, (1.0 - self.scale) * pivot_x - self.shift_x],
            [0.0, self.scale, (1.0 - self.scale) * pivot_y - self.shift_y],
            [0.0, 0.0, 1.0]])
        return rotation_homography @ scale_shift


def sample_camera_motion(rng: np.random.Generator, rotation_deg: float = DEFAULT_ROTATION_DEG,
                         scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
                         translation_px: tuple[float, float] = DEFAULT_TRANSLATION_PX) -> CameraMotion:
    """Draw a :class:`CameraMotion` from the paper's distribution.

    Args:
        rng: the random generator.
        rotation_deg: each rotation angle is uniform in ``[-rotation_deg, rotation_deg]``.
        scale_range: the scale is uniform in this range.
        translation_px: each of the two shifts is uniform in this range.

    Returns:
        The motion.

    Example:
        >>> motion = sample_camera_motion(np.random.default_rng(0))
        >>> abs(motion.theta_z) <= 0.5, 0.98 <= motion.scale <= 1.02, abs(motion.shift_x) <= 2
        (True, True, True)
    """
    theta_x, theta_y, theta_z = rng.uniform(-rotation_deg, rotation_deg, size=3)
    scale = rng.uniform(*scale_range)
    shift_x, shift_y = rng.uniform(*translation_px, size=2)
    return CameraMotion(float(theta_x), float(theta_y), float(theta_z), float(scale), float(shift_x), float(shift_y))


def sample_homography(crop_size: int, rng: np.random.Generator, rotation_deg: float = DEFAULT_ROTATION_DEG,
                      scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
                      translation_px: tuple[float, float] = DEFAULT_TRANSLATION_PX, fov_deg: float = DEFAULT_FOV_DEG,
                      scale_pivot: tuple[float, float] | None = None) -> np.ndarray:
    """A random misalignment homography (3x3 float64) for a square crop.

    Args:
        crop_size: side of the reference crop in pixels.
        rng: the random generator.
        rotation_deg, scale_range, translation_px: the motion's distribution (:func:`sample_camera_motion`).
        fov_deg, scale_pivot: the camera (:meth:`CameraMotion.matrix`).

    Returns:
        (3, 3) float64 homography in crop coordinates.

    Example:
        >>> H = sample_homography(448, np.random.default_rng(0))
        >>> 0 < mean_displacement(H, 448) < 20
        True
    """
    motion = sample_camera_motion(rng, rotation_deg, scale_range, translation_px)
    return motion.matrix(crop_size, fov_deg, scale_pivot)


def image_origin_pivot(crop_top: int, crop_left: int) -> tuple[float, float]:
    """The scale pivot of the released code: the image's top-left corner, in crop coordinates.

    Args:
        crop_top, crop_left: position of the crop's top-left pixel in the whole image.

    Returns:
        ``(x, y)`` of the image's corner, for :meth:`CameraMotion.matrix`'s ``scale_pivot``.

    Example:
        >>> image_origin_pivot(316, 496)  # a central 448 crop of a 1440x1080 image
        (-496.0, -316.0)
    """
    return (-float(crop_left), -float(crop_top))


def apply_homography(H: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(N, 2)`` points ``(x, y)`` through ``H``; returns ``(N, 2)`` float64.

    Args:
        H: 3x3 homography.
        points: the points, any array-like of pairs.

    Returns:
        The mapped points (perspective division done).

    Shape:
        - points: (N, 2).
        - output: (N, 2).

    Example:
        >>> apply_homography(np.diag([2.0, 2.0, 1.0]), [[1.0, 3.0]])
        array([[2., 6.]])
    """
    points = np.asarray(points, dtype=np.float64)
    mapped = np.concatenate([points, np.ones((len(points), 1))], axis=1) @ np.asarray(H, np.float64).T
    return mapped[:, :2] / mapped[:, 2:3]


def _sample_axis(length, step):
    """Pixel positions along one axis: all of them (step 1), or the centres of ``step``-pixel
    blocks, which keeps the mean position at the crop centre so sub-sampled means stay unbiased."""
    if step == 1:
        return np.arange(length, dtype=np.float64)
    count = max(1, int(round(length / step)))
    return (np.arange(count) + 0.5) * (length / count) - 0.5


def mean_displacement(H: np.ndarray, size: int | tuple[int, int], step: int = 1) -> float:
    """Mean Manhattan displacement ``|dx| + |dy|`` in pixels over the pixels of a crop.

    Args:
        H: 3x3 homography (crop coordinates, see the module docstring).
        size: crop side, or ``(height, width)``.
        step: 1 evaluates every pixel (exact); larger values evaluate one point per
            ``step x step`` block (faster, and close: ``tests/data/test_homography.py`` holds step 4
            within 0.005 px of the exact mean at crop 448; docs/speed.md, "Moved from docstrings").

    Returns:
        The mean displacement in pixels.

    Example:
        >>> mean_displacement(CameraMotion(shift_x=1.5, shift_y=-0.5).matrix(32), 32)
        2.0
    """
    height, width = (size, size) if np.isscalar(size) else size
    xs = _sample_axis(width, step)[None, :]
    ys = _sample_axis(height, step)[:, None]
    h = np.asarray(H, dtype=np.float64)
    w = h[2, 0] * xs + h[2, 1] * ys + h[2, 2]
    dx = (h[0, 0] * xs + h[0, 1] * ys + h[0, 2]) / w - xs
    dy = (h[1, 0] * xs + h[1, 1] * ys + h[1, 2]) / w - ys
    return float((np.abs(dx) + np.abs(dy)).mean())


def required_margin(H: np.ndarray, size: int | tuple[int, int]) -> int:
    """Pixels the source window must extend beyond the crop on every side so that no sample of
    the warp falls outside it.

    A homography maps the crop square to the quadrilateral spanned by the images of its four
    corners, so the corners bound the whole source region.

    Args:
        H: 3x3 homography in crop coordinates.
        size: crop side, or ``(height, width)``.

    Returns:
        The margin in whole pixels, >= 0.

    Example:
        >>> required_margin(CameraMotion(shift_x=1.5).matrix(32), 32), required_margin(np.eye(3), 32)
        (2, 0)
    """
    height, width = (size, size) if np.isscalar(size) else size
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)
    mapped = apply_homography(H, corners)
    beyond = max(-mapped[:, 0].min(), -mapped[:, 1].min(),
                 mapped[:, 0].max() - (width - 1), mapped[:, 1].max() - (height - 1), 0.0)
    # Bilinear interpolation at x also reads floor(x) + 1, which ceil() already includes.
    return int(math.ceil(beyond - 1e-9))


def warp_image(image: np.ndarray, H: np.ndarray, out_size: int | tuple[int, int],
               center: tuple[float, float]) -> np.ndarray:
    """Warp an image so that ``output[p] = image[H p]`` around a crop of ``out_size``.

    The crop is centred at ``center`` in ``image``; pass a window larger than the crop by
    :func:`required_margin` on each side and no sample falls outside it (bilinear interpolation,
    coordinates quantised to 1/32 pixel by OpenCV; samples outside repeat the border).

    Args:
        image: the source image (or a window of it), float32.
        H: 3x3 homography in crop coordinates.
        out_size: crop side, or ``(height, width)``.
        center: ``(x, y)`` of the crop centre in ``image`` coordinates.

    Returns:
        The warped crop, float32.

    Shape:
        - image: (H, W, C).
        - output: (out_h, out_w, C).

    Example:
        >>> ramp = np.tile(np.arange(40, dtype=np.float32)[None, :, None], (40, 1, 3))  # value = x
        >>> warped = warp_image(ramp, CameraMotion(shift_x=-1.0).matrix(32), 32, (19.5, 19.5))
        >>> warped.shape, float(warped[0, 0, 0])  # the crop starts at x = 4, sampled 1 px to the right
        ((32, 32, 3), 5.0)
    """
    out_h, out_w = (out_size, out_size) if np.isscalar(out_size) else out_size
    offset_x = center[0] - (out_w - 1) / 2.0
    offset_y = center[1] - (out_h - 1) / 2.0
    crop_to_image = np.array([[1.0, 0.0, offset_x], [0.0, 1.0, offset_y], [0.0, 0.0, 1.0]])
    output_to_source = crop_to_image @ np.asarray(H, np.float64)
    warped = cv2.warpPerspective(image, output_to_source, (out_w, out_h),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(out_h, out_w, -1)


def homography_for_displacement(target_px: float, crop_size: int, rng: np.random.Generator,
                                rotation_deg: float = DEFAULT_ROTATION_DEG,
                                scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE,
                                translation_px: tuple[float, float] = DEFAULT_TRANSLATION_PX,
                                fov_deg: float = DEFAULT_FOV_DEG, scale_pivot: tuple[float, float] | None = None,
                                tolerance_px: float = 0.01) -> np.ndarray:
    """A random homography whose mean displacement equals ``target_px`` (Fig. 3 of the paper).

    Method: draw a camera motion from the training distribution (its direction in parameter
    space), then multiply all its deviations from the identity (angles, scale - 1, shifts) by one
    factor ``k`` found by bisection so that :func:`mean_displacement` hits the target. The
    displacement grows monotonically with ``k`` for these small motions, so bisection converges;
    the answer is within ``tolerance_px`` of the target, evaluated on 4x4-pixel blocks (close to
    the all-pixel mean, see :func:`mean_displacement`).

    Args:
        target_px: wanted mean Manhattan displacement in pixels (0 gives the identity).
        crop_size: crop side in pixels.
        rng: the random generator.
        rotation_deg, scale_range, translation_px: the direction's distribution (:func:`sample_camera_motion`).
        fov_deg, scale_pivot: the camera (:meth:`CameraMotion.matrix`).
        tolerance_px: accepted error of the mean displacement.

    Returns:
        3x3 float64 homography.

    Raises:
        ValueError: a negative target, or one the drawn motion cannot reach.

    Example:
        >>> H = homography_for_displacement(4.0, 64, np.random.default_rng(0))
        >>> abs(mean_displacement(H, 64) - 4.0) < 0.05
        True
    """
    if target_px < 0:
        raise ValueError(f'target displacement must be >= 0 pixels, got {target_px}')
    motion = sample_camera_motion(rng, rotation_deg, scale_range, translation_px)
    if target_px == 0:
        return np.eye(3)

    def displacement(factor):
        return mean_displacement(motion.scaled(factor).matrix(crop_size, fov_deg, scale_pivot), crop_size, step=4)

    low, high = 0.0, 1.0
    while displacement(high) < target_px:
        low, high = high, high * 2.0
        if high > MAX_MOTION_FACTOR:
            raise ValueError(f'cannot reach a mean displacement of {target_px} px with this motion')
    for _ in range(MAX_BISECTIONS):
        middle = (low + high) / 2.0
        value = displacement(middle)
        if abs(value - target_px) <= tolerance_px:
            break
        low, high = (middle, high) if value < target_px else (low, middle)
    return motion.scaled(middle).matrix(crop_size, fov_deg, scale_pivot)


def _rotation_x(degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rotation_y(degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _rotation_z(degrees):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
