"""A minimal camera ISP: Bayer mosaic, bilinear demosaicking, sRGB encoding, 8-bit JPEG, and back to linear.

Phone pictures do not carry the independent per-pixel noise of :mod:`fnf_basicsr.data.noise`: the
sensor samples one color per pixel (a Bayer mosaic), demosaicking interpolates the other two from
neighbours (so noise becomes correlated over 2-3 pixels, and the interpolated colors have less of
it), and JPEG quantises the 8x8 DCT coefficients of the sRGB-encoded picture (it removes weak
high-frequency noise and keeps the low-frequency part: blotches), after halving the chroma
resolution (4:2:0). This module simulates that chain in one place, so that the training
degradation (``isp`` option of :class:`~fnf_basicsr.data.fnf_dataset.FlashNoFlashDataset`), the
noise estimator's calibration (:mod:`fnf_basicsr.data.noise_estimation`) and the tests use the
same ISP:

    linear (3, H, W) -> mosaic -> bilinear demosaic -> x exposure -> sRGB curve -> 8 bits / JPEG
    -> decode -> inverse sRGB curve -> / exposure -> linear (3, H, W)

What a real ISP does besides (white balance, color matrix, tone curve, sharpening, its own
denoising, a better demosaicker) is left out: the result is the linear image as ``fnf-denoise``
reads an 8-bit file (sRGB curve undone), at the scale it came in.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from fnf_basicsr.utils.rendering import srgb_degamma, srgb_gamma

BAYER_PATTERNS = ('RGGB', 'BGGR', 'GRBG', 'GBRG')
CHANNEL_INDEX = {'R': 0, 'G': 1, 'B': 2}
# Bilinear demosaicking: the missing green is the mean of the 4 direct neighbours, the missing red
# or blue the mean of the 2 or 4 nearest samples of that color; applied to the zero-filled plane.
_GREEN_KERNEL = torch.tensor([[0.0, 1.0, 0.0], [1.0, 4.0, 1.0], [0.0, 1.0, 0.0]]) / 4
_RED_BLUE_KERNEL = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 4
EIGHT_BIT = 255.0


def bayer_mask(height: int, width: int, pattern: str = 'RGGB') -> torch.Tensor:
    """(3, H, W) float mask, 1 where the sensor samples that color.

    Args:
        height, width: image size.
        pattern: the colors of the top-left 2x2 cell, row by row (one of :data:`BAYER_PATTERNS`).

    Returns:
        float32 tensor; every pixel has exactly one 1 across the channels.

    Raises:
        ValueError: an unknown pattern.

    Shape:
        - output: (3, height, width).

    Example:
        >>> bayer_mask(2, 2)[:, 0, 0].tolist(), bayer_mask(2, 2)[1].sum().item()
        ([1.0, 0.0, 0.0], 2.0)
    """
    if pattern not in BAYER_PATTERNS:
        raise ValueError(f'bayer pattern must be one of {BAYER_PATTERNS}, got {pattern!r}')
    mask = torch.zeros(3, height, width)
    for index, color in enumerate(pattern):
        row, col = divmod(index, 2)
        mask[CHANNEL_INDEX[color], row::2, col::2] = 1
    return mask


def mosaic(image: torch.Tensor, pattern: str = 'RGGB') -> torch.Tensor:
    """The raw Bayer samples of a (3, H, W) linear image: (H, W), one color per pixel.

    Args:
        image: linear RGB image.
        pattern: Bayer pattern (one of :data:`BAYER_PATTERNS`).

    Returns:
        The sample of each pixel's color, of ``image``'s dtype.

    Shape:
        - image: (3, H, W).
        - output: (H, W).

    Example:
        >>> mosaic(torch.arange(12.).view(3, 2, 2)).tolist()
        [[0.0, 5.0], [6.0, 11.0]]
    """
    return (image * bayer_mask(*image.shape[-2:], pattern).to(image)).sum(0)


def demosaic_bilinear(raw: torch.Tensor, pattern: str = 'RGGB') -> torch.Tensor:
    """Bilinear demosaicking of an (H, W) Bayer image into (3, H, W).

    Sampled values are kept; missing ones are averages of the nearest samples of their color.
    Borders are reflected, which keeps the mosaic's parity (pixel -1 mirrors pixel 1).

    Args:
        raw: Bayer samples, H and W at least 2.
        pattern: Bayer pattern of ``raw`` (one of :data:`BAYER_PATTERNS`).

    Returns:
        The RGB image, of ``raw``'s dtype.

    Shape:
        - raw: (H, W).
        - output: (3, H, W).

    Example:
        >>> demosaic_bilinear(mosaic(torch.full((3, 6, 6), 0.5))).allclose(torch.full((3, 6, 6), 0.5))
        True
    """
    mask = bayer_mask(*raw.shape[-2:], pattern).to(raw)
    planes = F.pad((raw * mask)[None], (1, 1, 1, 1), mode='reflect')
    kernels = torch.stack([_RED_BLUE_KERNEL, _GREEN_KERNEL, _RED_BLUE_KERNEL])[:, None].to(raw)
    return F.conv2d(planes, kernels, groups=3)[0]


def encode_8bit(srgb: torch.Tensor, jpeg_quality: int | None = None) -> torch.Tensor:
    """Quantise a (3, H, W) sRGB image in [0, 1] to 8 bits, through JPEG when ``jpeg_quality`` is given.

    Args:
        srgb: sRGB-encoded image; values are clipped to [0, 1].
        jpeg_quality: JPEG quality 1-100 (OpenCV's libjpeg: standard tables, 4:2:0 chroma), or
            None for a lossless 8-bit image.

    Returns:
        float32 CPU tensor of decoded values k / 255.

    Raises:
        ValueError: a quality outside 1..100.
        RuntimeError: OpenCV failed to encode.

    Shape:
        - srgb: (3, H, W).
        - output: (3, H, W).

    Example:
        >>> gray = torch.full((3, 8, 8), 0.5)
        >>> (encode_8bit(gray) * 255).unique(), (encode_8bit(gray, jpeg_quality=90) * 255).unique()
        (tensor([128.]), tensor([128.]))
    """
    pixels = np.rint(np.clip(srgb.detach().cpu().numpy(), 0, 1) * EIGHT_BIT).astype(np.uint8).transpose(1, 2, 0)
    if jpeg_quality is not None:
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f'jpeg_quality must be in 1..100, got {jpeg_quality}')
        ok, data = cv2.imencode('.jpg', np.ascontiguousarray(pixels[..., ::-1]),
                                [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
        if not ok:
            raise RuntimeError('OpenCV failed to encode a JPEG')
        pixels = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).float() / EIGHT_BIT


def simulate_isp(linear: torch.Tensor, demosaic: bool = True, jpeg_quality: int | None = None, exposure: float = 1.0,
                 encode: bool = True, pattern: str = 'RGGB') -> torch.Tensor:
    """Put a (noisy) linear image through the ISP of the module docstring and read it back as linear.

    Args:
        linear: (3, H, W) linear image (e.g. a noisy no-flash frame).
        demosaic: keep one Bayer sample per pixel and interpolate the rest bilinearly.
        jpeg_quality: JPEG quality, or None for a lossless 8-bit file.
        exposure: gain applied before the sRGB encoding and removed after decoding (the camera's
            exposure: 8 bits of a dim image keep almost nothing); negative values clip at zero and
            values above ``1 / exposure`` clip at white, as in a file.
        encode: False stops after demosaicking (linear float, no sRGB curve, no 8 bits).
        pattern: Bayer pattern.

    Returns:
        float32 linear image at the input's scale, on its device.

    Raises:
        ValueError: a non-positive exposure, or a JPEG quality outside 1..100.

    Shape:
        - linear: (3, H, W).
        - output: (3, H, W).

    Example:
        >>> x = torch.full((3, 16, 16), 0.2)
        >>> (simulate_isp(x, jpeg_quality=90) - x).abs().max().item() < 0.003
        True
    """
    image = linear.float()
    if demosaic:
        image = demosaic_bilinear(mosaic(image, pattern), pattern)
    if not encode:
        return image
    if not exposure > 0:
        raise ValueError(f'exposure must be positive, got {exposure}')
    srgb = srgb_gamma((image * exposure).clamp(0, 1))
    decoded = srgb_degamma(encode_8bit(srgb, jpeg_quality)).float()
    return (decoded / exposure).to(linear.device)


def auto_exposure(linear: torch.Tensor, percentile: float = 99.5, target: float = 0.9) -> float:
    """The gain that maps the ``percentile`` of a linear image to ``target`` (a camera's auto-exposure).

    Args:
        linear: linear image.
        percentile: which brightness is kept below white.
        target: where it lands (linear, < 1 leaves headroom).

    Returns:
        float gain (1 for a black image).

    Shape:
        - linear: any shape, e.g. (3, H, W).

    Example:
        >>> round(auto_exposure(torch.full((3, 4, 4), 0.09)), 6)
        10.0
    """
    level = float(np.percentile(linear.detach().cpu().float().numpy(), percentile))
    return target / level if level > 0 else 1.0


def srgb_8bit_levels() -> np.ndarray:
    """The 256 linear values an 8-bit sRGB file decodes to, as ``fnf-denoise`` linearises it (float32).

    Returns:
        (256,) float32 array, increasing from 0 to 1.

    Example:
        >>> levels = srgb_8bit_levels()
        >>> levels.shape, levels.dtype, float(levels[0]), float(levels[255])
        ((256,), dtype('float32'), 0.0, 1.0)
    """
    codes = torch.from_numpy(np.arange(256, dtype=np.float32) / np.float32(EIGHT_BIT))
    return srgb_degamma(codes).numpy().astype(np.float32)


ISP_OPTION_KEYS = ('demosaic', 'jpeg_quality', 'bayer_pattern')


@dataclass(frozen=True)
class IspDegradation:
    """The ``isp`` dataset option: puts the noisy frames of a sample through :func:`simulate_isp`.

    Each frame is exposed on its own (:func:`auto_exposure`, as a camera exposes each shot),
    mosaicked and demosaicked, sRGB-encoded, stored as 8-bit JPEG (or lossless 8 bits), decoded
    and brought back to the dataset's linear scale. One JPEG quality per sample, drawn from the
    sample's generator after its noise, so the noise itself is the same with and without the option.

    Attributes:
        demosaic: Bayer mosaic and bilinear demosaicking.
        jpeg_quality: (low, high): quality drawn uniformly among the integers low..high; None: a
            lossless 8-bit file.
        bayer_pattern: one of :data:`BAYER_PATTERNS`.

    Example:
        >>> isp = IspDegradation.from_options({'jpeg_quality': [70, 95]})
        >>> frames = isp([torch.full((3, 16, 16), 0.01)], torch.Generator().manual_seed(0))
        >>> len(frames), tuple(frames[0].shape)
        (1, (3, 16, 16))
    """
    demosaic: bool = True
    jpeg_quality: tuple[int, int] | None = None
    bayer_pattern: str = 'RGGB'

    @classmethod
    def from_options(cls, options: dict | bool | None) -> IspDegradation | None:
        """The degradation an ``isp`` option describes, or None when it is absent, null or false.

        Args:
            options: the option's value: a mapping with keys among :data:`ISP_OPTION_KEYS`, True for the
                defaults (demosaicking, lossless 8 bits, RGGB), or None / False.

        Returns:
            The degradation, or None.

        Raises:
            ConfigError: unknown keys, a quality outside 1..100, or an unknown pattern.

        Example:
            >>> IspDegradation.from_options({'jpeg_quality': 85}), IspDegradation.from_options(None)
            (IspDegradation(demosaic=True, jpeg_quality=(85, 85), bayer_pattern='RGGB'), None)
        """
        from fnf_basicsr.errors import ConfigError
        if options is None or options is False:
            return None
        if options is True:
            options = {}
        if not isinstance(options, dict) or set(options) - set(ISP_OPTION_KEYS):
            raise ConfigError(f'isp: expected a mapping with keys among {list(ISP_OPTION_KEYS)}, got {options!r}')
        quality = options.get('jpeg_quality')
        if quality is not None:
            low, high = (quality, quality) if isinstance(quality, (int, float)) else quality
            if not 1 <= int(low) <= int(high) <= 100:
                raise ConfigError(f'isp: jpeg_quality must be a quality or [low, high] within 1..100, got {quality}')
            quality = (int(low), int(high))
        pattern = options.get('bayer_pattern', 'RGGB')
        if pattern not in BAYER_PATTERNS:
            raise ConfigError(f'isp: bayer_pattern must be one of {list(BAYER_PATTERNS)}, got {pattern!r}')
        return cls(bool(options.get('demosaic', True)), quality, pattern)

    def draw_quality(self, generator: torch.Generator | None = None) -> int | None:
        """The JPEG quality of one sample (None: lossless).

        Args:
            generator: the sample's random generator (None: torch's global one).

        Returns:
            An integer in ``jpeg_quality``'s range, or None for a lossless file.

        Example:
            >>> 70 <= IspDegradation(jpeg_quality=(70, 95)).draw_quality(torch.Generator().manual_seed(0)) <= 95
            True
        """
        if self.jpeg_quality is None:
            return None
        low, high = self.jpeg_quality
        return int(torch.randint(low, high + 1, (), generator=generator))

    def __call__(self, frames: list[torch.Tensor], generator: torch.Generator | None = None) -> list[torch.Tensor]:
        """The frames (each (3, H, W), linear, noisy) as the ISP leaves them, at their own scale.

        Args:
            frames: the sample's noisy linear frames.
            generator: the sample's random generator, drawn from once (the JPEG quality).

        Returns:
            The processed frames, float32, in the order given.
        """
        quality = self.draw_quality(generator)
        return [simulate_isp(frame, demosaic=self.demosaic, jpeg_quality=quality, exposure=auto_exposure(frame),
                             pattern=self.bayer_pattern) for frame in frames]
