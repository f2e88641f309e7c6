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
    """The parameters of one random misalignment (angles in degrees, shifts in pixels)."""
    theta_x: float = 0.0
    theta_y: float = 0.0
    theta_z: float = 0.0
    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def scaled(self, factor):
        """The same motion with every deviation from the identity multiplied by ``factor``."""
        return replace(self, theta_x=self.theta_x * factor, theta_y=self.theta_y * factor,
                       theta_z=self.theta_z * factor, scale=1.0 + (self.scale - 1.0) * factor,
                       shift_x=self.shift_x * factor, shift_y=self.shift_y * factor)

    def matrix(self, crop_size, fov_deg=DEFAULT_FOV_DEG, scale_pivot=None):
        """The 3x3 homography (float64) of this motion for a square crop of ``crop_size`` pixels.

        Args:
            crop_size: side of the reference crop in pixels.
            fov_deg: horizontal field of view of the pinhole camera across the crop.
            scale_pivot: ``(x, y)`` in crop coordinates about which the scale acts; None: the centre.
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


def sample_camera_motion(rng, rotation_deg=DEFAULT_ROTATION_DEG, scale_range=DEFAULT_SCALE_RANGE,
                         translation_px=DEFAULT_TRANSLATION_PX):
    """Draw a :class:`CameraMotion` from the paper's distribution.

    Args:
        rng: ``numpy.random.Generator``.
        rotation_deg: each rotation angle is uniform in ``[-rotation_deg, rotation_deg]``.
        scale_range: the scale is uniform in this range.
        translation_px: each of the two shifts is uniform in this range.
    """
    theta_x, theta_y, theta_z = rng.uniform(-rotation_deg, rotation_deg, size=3)
    scale = rng.uniform(*scale_range)
    shift_x, shift_y = rng.uniform(*translation_px, size=2)
    return CameraMotion(float(theta_x), float(theta_y), float(theta_z), float(scale), float(shift_x), float(shift_y))


def sample_homography(crop_size, rng, rotation_deg=DEFAULT_ROTATION_DEG, scale_range=DEFAULT_SCALE_RANGE,
                      translation_px=DEFAULT_TRANSLATION_PX, fov_deg=DEFAULT_FOV_DEG, scale_pivot=None):
    """A random misalignment homography (3x3 float64) for a square crop.

    Args: see :func:`sample_camera_motion` and :meth:`CameraMotion.matrix`.

    Example:
        >>> H = sample_homography(448, np.random.default_rng(0))
        >>> 0 < mean_displacement(H, 448) < 20
        True
    """
    motion = sample_camera_motion(rng, rotation_deg, scale_range, translation_px)
    return motion.matrix(crop_size, fov_deg, scale_pivot)


def image_origin_pivot(crop_top, crop_left):
    """The scale pivot of the released code: the image's top-left corner, in crop coordinates.

    Args:
        crop_top, crop_left: position of the crop's top-left pixel in the whole image.
    """
    return (-float(crop_left), -float(crop_top))


def apply_homography(H, points):
    """Map ``(N, 2)`` points ``(x, y)`` through ``H``; returns ``(N, 2)`` float64."""
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


def mean_displacement(H, size, step=1):
    """Mean Manhattan displacement ``|dx| + |dy|`` in pixels over the pixels of a crop.

    Args:
        H: 3x3 homography (crop coordinates, see the module docstring).
        size: crop side, or ``(height, width)``.
        step: 1 evaluates every pixel (exact); larger values evaluate one point per
            ``step x step`` block (faster; at crop 448 we measured errors below 0.001 px at
            step 4 over 500 random homographies).
    """
    height, width = (size, size) if np.isscalar(size) else size
    xs = _sample_axis(width, step)[None, :]
    ys = _sample_axis(height, step)[:, None]
    h = np.asarray(H, dtype=np.float64)
    w = h[2, 0] * xs + h[2, 1] * ys + h[2, 2]
    dx = (h[0, 0] * xs + h[0, 1] * ys + h[0, 2]) / w - xs
    dy = (h[1, 0] * xs + h[1, 1] * ys + h[1, 2]) / w - ys
    return float((np.abs(dx) + np.abs(dy)).mean())


def required_margin(H, size):
    """Pixels the source window must extend beyond the crop on every side so that no sample of
    the warp falls outside it.

    A homography maps the crop square to the quadrilateral spanned by the images of its four
    corners, so the corners bound the whole source region.
    """
    height, width = (size, size) if np.isscalar(size) else size
    corners = np.array([[0, 0], [width - 1, 0], [0, height - 1], [width - 1, height - 1]], dtype=np.float64)
    mapped = apply_homography(H, corners)
    beyond = max(-mapped[:, 0].min(), -mapped[:, 1].min(),
                 mapped[:, 0].max() - (width - 1), mapped[:, 1].max() - (height - 1), 0.0)
    # Bilinear interpolation at x also reads floor(x) + 1, which ceil() already includes.
    return int(math.ceil(beyond - 1e-9))


def warp_image(image, H, out_size, center):
    """Warp an image so that ``output[p] = image[H p]`` around a crop of ``out_size``.

    The crop is centred at ``center`` in ``image``; pass a window larger than the crop by
    :func:`required_margin` on each side and no sample falls outside it (bilinear interpolation,
    coordinates quantised to 1/32 pixel by OpenCV; samples outside repeat the border).

    Args:
        image: (H, W, C) float32 array.
        H: 3x3 homography in crop coordinates.
        out_size: crop side, or ``(height, width)``.
        center: ``(x, y)`` of the crop centre in ``image`` coordinates.

    Returns:
        (out_h, out_w, C) float32 array.
    """
    out_h, out_w = (out_size, out_size) if np.isscalar(out_size) else out_size
    offset_x = center[0] - (out_w - 1) / 2.0
    offset_y = center[1] - (out_h - 1) / 2.0
    crop_to_image = np.array([[1.0, 0.0, offset_x], [0.0, 1.0, offset_y], [0.0, 0.0, 1.0]])
    output_to_source = crop_to_image @ np.asarray(H, np.float64)
    warped = cv2.warpPerspective(image, output_to_source, (out_w, out_h),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return warped.reshape(out_h, out_w, -1)


def homography_for_displacement(target_px, crop_size, rng, rotation_deg=DEFAULT_ROTATION_DEG,
                                scale_range=DEFAULT_SCALE_RANGE, translation_px=DEFAULT_TRANSLATION_PX,
                                fov_deg=DEFAULT_FOV_DEG, scale_pivot=None, tolerance_px=0.01):
    """A random homography whose mean displacement equals ``target_px`` (Fig. 3 of the paper).

    Method: draw a camera motion from the training distribution (its direction in parameter
    space), then multiply all its deviations from the identity (angles, scale - 1, shifts) by one
    factor ``k`` found by bisection so that :func:`mean_displacement` hits the target. The
    displacement grows monotonically with ``k`` for these small motions, so bisection converges;
    the answer is within ``tolerance_px`` of the target, evaluated on 4x4-pixel blocks (within
    0.001 px of the all-pixel mean, see :func:`mean_displacement`).

    Args:
        target_px: wanted mean Manhattan displacement in pixels (0 gives the identity).
        crop_size: crop side in pixels.
        rng: ``numpy.random.Generator``.
        tolerance_px: accepted error of the mean displacement.
        Other arguments: the direction's distribution (:func:`sample_camera_motion`) and the
            camera (:meth:`CameraMotion.matrix`).

    Returns:
        3x3 float64 homography.
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
