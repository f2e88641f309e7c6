"""Camera RGB -> sRGB: the one rendering function used by the model, the metrics and the scripts.

The paper trains and evaluates on rendered images, f(Y) = gamma(gain * C * Y), where C maps linear
camera RGB to linear sRGB. C is built from the image's XYZ->camera color matrix (FAID / DNG
``ColorMatrix``): camera -> XYZ by inverting it, Bradford adaptation from the calibration
illuminant to D65, then XYZ -> linear sRGB.
"""
from __future__ import annotations

import numpy as np
import torch

# Bradford cone-response matrix (Lam 1985).
BRADFORD = np.array([[0.8951, 0.2664, -0.1614],
                     [-0.7502, 1.7135, 0.0367],
                     [0.0389, -0.0685, 1.0296]])
XYZ_TO_LINEAR_SRGB = np.array([[3.2404542, -1.5371385, -0.4985314],
                               [-0.9692660, 1.8760108, 0.0415560],
                               [0.0556434, -0.2040259, 1.0572252]])
# CIE 1931 2-degree white points, Y = 1.
WHITE_POINTS = {
    'A': (1.09850, 1.0, 0.35585),
    'C': (0.98074, 1.0, 1.18232),
    'D50': (0.96422, 1.0, 0.82521),
    'D55': (0.95682, 1.0, 0.92149),
    'D65': (0.95047, 1.0, 1.08883),
}
# EXIF LightSource codes used as DNG CalibrationIlluminant; anything else is treated as D65.
EXIF_ILLUMINANTS = {17: 'A', 19: 'C', 20: 'D55', 21: 'D65', 23: 'D50'}

SRGB_LINEAR_THRESHOLD = 0.0031308
SRGB_SLOPE_ABOVE_ONE = 1.055 / 2.4  # derivative of the sRGB curve at 1


def illuminant_name(exif_code: int) -> str:
    """The white point name for an EXIF light-source code (unknown codes: D65).

    Args:
        exif_code: EXIF ``LightSource`` code, as DNG ``CalibrationIlluminant`` stores it.

    Returns:
        A key of :data:`WHITE_POINTS`.

    Example:
        >>> illuminant_name(17), illuminant_name(99)
        ('A', 'D65')
    """
    return EXIF_ILLUMINANTS.get(int(exif_code), 'D65')


def bradford_adaptation(src_white: str, dst_white: str = 'D65') -> np.ndarray:
    """3x3 matrix adapting XYZ colors seen under ``src_white`` to ``dst_white``.

    Args:
        src_white: white point name (a key of :data:`WHITE_POINTS`) the colors were seen under.
        dst_white: white point name to adapt them to.

    Returns:
        (3, 3) float64 matrix acting on XYZ column vectors.

    Example:
        >>> np.allclose(bradford_adaptation('D65'), np.eye(3))
        True
    """
    src = BRADFORD @ np.asarray(WHITE_POINTS[src_white])
    dst = BRADFORD @ np.asarray(WHITE_POINTS[dst_white])
    return np.linalg.inv(BRADFORD) @ np.diag(dst / src) @ BRADFORD


def camera_to_srgb_matrix(xyz_to_camera: np.ndarray, illuminant: str | int = 'D65') -> np.ndarray:
    """3x3 matrix mapping linear camera RGB to linear sRGB (D65).

    Args:
        xyz_to_camera: 3x3 XYZ -> camera matrix (row-major, as stored by FAID / DNG); any array of
            9 numbers.
        illuminant: white point name or EXIF light-source code of the calibration illuminant.

    Returns:
        (3, 3) float64 matrix acting on camera RGB column vectors.

    Example:
        >>> np.allclose(camera_to_srgb_matrix(XYZ_TO_LINEAR_SRGB, 21), np.eye(3))  # a camera that sees sRGB
        True
    """
    if not isinstance(illuminant, str):
        illuminant = illuminant_name(illuminant)
    xyz_to_camera = np.asarray(xyz_to_camera, dtype=np.float64).reshape(3, 3)
    camera_to_xyz = np.linalg.inv(xyz_to_camera)
    return XYZ_TO_LINEAR_SRGB @ bradford_adaptation(illuminant) @ camera_to_xyz


def srgb_gamma(linear: torch.Tensor) -> torch.Tensor:
    """sRGB transfer curve; linear below 0.0031308 (also for negatives) and above 1.

    Continued above 1 by its tangent, so that unclipped network outputs keep a gradient.

    Args:
        linear: linear intensities.

    Returns:
        The encoded values, elementwise.

    Shape:
        - linear: any shape.
        - output: the shape of ``linear``.

    Example:
        >>> srgb_gamma(torch.tensor([0.0, 0.001, 0.5, 1.0]))
        tensor([0.0000, 0.0129, 0.7354, 1.0000])
    """
    low = 12.92 * linear
    mid = 1.055 * torch.clamp(linear, SRGB_LINEAR_THRESHOLD, 1.0) ** (1 / 2.4) - 0.055
    high = 1.0 + SRGB_SLOPE_ABOVE_ONE * (linear - 1.0)
    return torch.where(linear <= SRGB_LINEAR_THRESHOLD, low, torch.where(linear <= 1.0, mid, high))


def srgb_degamma(encoded: torch.Tensor | np.ndarray | float) -> torch.Tensor:
    """Inverse of :func:`srgb_gamma` on [0, 1] (used to linearise 8-bit sRGB inputs).

    Args:
        encoded: sRGB-encoded values (a tensor, or anything ``torch.as_tensor`` takes).

    Returns:
        The linear values, elementwise.

    Shape:
        - encoded: any shape.
        - output: the shape of ``encoded``.

    Example:
        >>> srgb_degamma(torch.tensor([0.0, 0.5, 1.0]))
        tensor([0.0000, 0.2140, 1.0000])
    """
    encoded = torch.as_tensor(encoded)
    low = encoded / 12.92
    high = ((torch.clamp(encoded, min=0.04045) + 0.055) / 1.055) ** 2.4
    return torch.where(encoded <= 0.04045, low, high)


def render_srgb(linear: torch.Tensor, gain: torch.Tensor | float, color_matrix: torch.Tensor | np.ndarray,
                encoded: torch.Tensor | bool | None = None) -> torch.Tensor:
    """Render linear camera RGB to sRGB: ``gamma(gain * color_matrix @ linear)``.

    Differentiable and batched; computed in float32 even under autocast. Not clipped: metrics clip.

    Args:
        linear: (B, 3, H, W) linear camera RGB.
        gain: (B,) or scalar brightness gain (the inverse dimming factor).
        color_matrix: (B, 3, 3) or (3, 3) camera -> linear sRGB matrix.
        encoded: optional (B,) bool or a bool: samples that are already display-encoded sRGB (the
            ``srgb_awgn`` protocol) pass through unchanged (in float32).

    Returns:
        The rendered sRGB image, float32.

    Raises:
        ValueError: ``linear`` is not (B, 3, H, W).

    Shape:
        - linear: (B, 3, H, W).
        - output: (B, 3, H, W).

    Example:
        >>> x = torch.full((1, 3, 2, 2), 0.1)
        >>> render_srgb(x, torch.tensor([2.0]), torch.eye(3)).shape
        torch.Size([1, 3, 2, 2])
    """
    if linear.dim() != 4 or linear.shape[1] != 3:
        raise ValueError(f'render_srgb expects (B, 3, H, W) linear RGB, got {tuple(linear.shape)}')
    with torch.autocast(device_type=linear.device.type, enabled=False):
        linear = linear.float()
        matrix = torch.as_tensor(color_matrix, dtype=torch.float32, device=linear.device)
        matrix = matrix.expand(linear.shape[0], 3, 3)
        gain = torch.as_tensor(gain, dtype=torch.float32, device=linear.device).reshape(-1, 1, 1, 1)
        srgb_linear = torch.einsum('bij,bjhw->bihw', matrix, linear) * gain
        rendered = srgb_gamma(srgb_linear)
        if encoded is None:
            return rendered
        as_is = torch.as_tensor(encoded, dtype=torch.bool, device=linear.device).reshape(-1, 1, 1, 1)
        return torch.where(as_is, linear, rendered)


def srgb_8bit(linear: torch.Tensor, color_matrix: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A linear camera-RGB image as an 8-bit sRGB picture (values / 255), as a camera would save it.

    Args:
        linear: (3, H, W) linear camera RGB at its exposure (gain 1).
        color_matrix: (3, 3) camera -> linear sRGB matrix.

    Returns:
        float32 tensor of multiples of 1/255 in [0, 1].

    Shape:
        - linear: (3, H, W).
        - output: (3, H, W).

    Example:
        >>> (srgb_8bit(torch.full((3, 1, 1), 0.2), torch.eye(3)) * 255).flatten().tolist()
        [124.0, 124.0, 124.0]
    """
    rendered = render_srgb(linear[None], 1.0, color_matrix)[0].clamp(0, 1)
    return torch.round(rendered * 255) / 255
