"""Surface materials: albedo textures from scikit-image's photographs and procedural patterns.

Textures are linear sRGB float32 (h, w, 3), mapped by surface coordinates in metres.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np
import skimage.data

from fnf_basicsr.utils.rendering import srgb_degamma

# Photographs shipped inside scikit-image's wheel (loaded from disk, never downloaded): color
# ones for pictures and objects, gray ones (tinted) for objects, and gray stationary textures that
# also cover walls and floors (a large, mirrored portrait on a floor would look like a shadow).
COLOR_PHOTOS = ('astronaut', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry')
GRAY_PHOTOS = ('camera', 'moon', 'page', 'coins', 'text')
GRAY_TEXTURES = ('brick', 'grass', 'gravel')


@dataclass
class Material:
    """Albedo texture (linear sRGB, (h, w, 3)), its size on the surface, and specular terms.

    Attributes:
        albedo: (h, w, 3) float32 linear sRGB albedo.
        texel_m: metres per texel on the surface.
        specular: weight of the Blinn-Phong lobe.
        shininess: its exponent.

    Example:
        >>> Material(flat_albedo(0.5), 1.0).shininess
        32.0
    """
    albedo: np.ndarray
    texel_m: float
    specular: float = 0.0
    shininess: float = 32.0


@functools.lru_cache(maxsize=None)
def srgb8_to_linear() -> np.ndarray:
    """Lookup table: 8-bit sRGB code -> linear value (float32, 256 entries).

    Returns:
        (256,) float32 array (cached; do not modify it).

    Example:
        >>> table = srgb8_to_linear()
        >>> table.shape, float(table[0]), float(table[255])
        ((256,), 0.0, 1.0)
    """
    return srgb_degamma(np.arange(256) / 255.0).numpy().astype(np.float32)


@functools.lru_cache(maxsize=None)
def load_photo(name: str) -> np.ndarray:
    """A scikit-image sample photograph as linear sRGB float32 (h, w, 3); gray ones are replicated.

    Args:
        name: a function of ``skimage.data`` returning an image (e.g. one of :data:`COLOR_PHOTOS`).

    Returns:
        (h, w, 3) float32 (cached; do not modify it).

    Example:
        >>> load_photo('camera').shape, load_photo('camera').dtype
        ((512, 512, 3), dtype('float32'))
    """
    image = np.asarray(getattr(skimage.data, name)(), dtype=np.uint8)
    image = np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image[..., :3]
    return srgb8_to_linear()[image]


def _random_color(rng, saturation=(0.05, 0.6), value=(0.25, 0.9)):
    """A random albedo color, drawn in HSV on the sRGB scale, returned in linear sRGB (3,)."""
    hsv = np.array([[[rng.uniform(0, 180), rng.uniform(*saturation) * 255, rng.uniform(*value) * 255]]])
    return srgb8_to_linear()[cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]]


def flat_albedo(level: float) -> np.ndarray:
    """A one-texel gray albedo texture.

    Args:
        level: the albedo, linear.

    Returns:
        (1, 1, 3) float32.

    Example:
        >>> flat_albedo(0.5).ravel()
        array([0.5, 0.5, 0.5], dtype=float32)
    """
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
    image = load_photo(str(rng.choice(names))) * (_random_color(rng, value=(0.5, 1.0)) / 0.6)
    return np.clip(image, 0.02, 0.9)


def material_spanning(albedo: np.ndarray, width_m: float, specular: float = 0.0, shininess: float = 32.0) -> Material:
    """A Material whose texture spans ``width_m`` metres on the surface before it repeats.

    Args:
        albedo: (h, w, 3) texture.
        width_m: the width the texture covers, metres.
        specular: weight of the Blinn-Phong lobe.
        shininess: its exponent.

    Returns:
        The material, ``texel_m = width_m / w``.

    Example:
        >>> material_spanning(np.zeros((4, 8, 3), np.float32), 2.0).texel_m
        0.25
    """
    return Material(albedo, width_m / albedo.shape[1], specular, shininess)


def random_wall_material(rng: np.random.Generator) -> Material:
    """A wall: pale paint, wallpaper (a procedural pattern) or a tinted stationary texture.

    Args:
        rng: the scene's generator.

    Returns:
        The material.

    Example:
        >>> material = random_wall_material(np.random.default_rng(0))
        >>> material.albedo.ndim, material.specular
        (3, 0.0)
    """
    choice = rng.random()
    if choice < 0.4:  # paint: a pale color with faint blotches
        paint = _random_color(rng, saturation=(0.0, 0.35), value=(0.55, 0.95))
        return material_spanning(paint * (0.85 + 0.15 * _value_noise(rng)[..., None]), 2.0)
    if choice < 0.75:  # wallpaper
        return material_spanning(_procedural(rng), rng.uniform(0.5, 1.5))
    return material_spanning(_tinted_photo(rng, GRAY_TEXTURES), rng.uniform(1.0, 2.5))


def random_floor_material(rng: np.random.Generator) -> Material:
    """A floor: a procedural pattern or a tinted stationary texture, slightly specular.

    Args:
        rng: the scene's generator.

    Returns:
        The material.

    Example:
        >>> material = random_floor_material(np.random.default_rng(0))
        >>> material.albedo.shape[2], 0 <= material.specular <= 0.15
        (3, True)
    """
    if rng.random() < 0.6:
        return material_spanning(_procedural(rng), rng.uniform(0.8, 2.5), rng.uniform(0, 0.15), rng.uniform(8, 64))
    return material_spanning(_tinted_photo(rng, GRAY_TEXTURES), rng.uniform(1.0, 3.0), rng.uniform(0, 0.1))


def random_object_material(rng: np.random.Generator) -> Material:
    """An object's surface: a color photograph, a procedural pattern, a tinted gray photo or a flat color.

    Args:
        rng: the scene's generator.

    Returns:
        The material, with specular weight in [0, 0.4] and shininess in [8, 120].

    Example:
        >>> material = random_object_material(np.random.default_rng(0))
        >>> 0 <= material.specular <= 0.4, 8 <= material.shininess <= 120
        (True, True)
    """
    specular, shininess = rng.uniform(0, 0.4), float(np.exp(rng.uniform(np.log(8), np.log(120))))
    choice = rng.random()
    if choice < 0.4:
        albedo = np.clip(load_photo(str(rng.choice(COLOR_PHOTOS))), 0.02, 0.9)
        return material_spanning(albedo, rng.uniform(0.45, 1.2), specular, shininess)
    if choice < 0.7:
        return material_spanning(_procedural(rng, 128), rng.uniform(0.2, 0.6), specular, shininess)
    if choice < 0.85:
        return material_spanning(_tinted_photo(rng, GRAY_PHOTOS + GRAY_TEXTURES), rng.uniform(0.3, 0.8), specular,
                                 shininess)
    return material_spanning(flat_albedo(1.0) * _random_color(rng, saturation=(0.2, 0.9)), 1.0, specular, shininess)


def sample_texture(texture: np.ndarray, texel_m: float, footprint_m: float, u: np.ndarray,
                   v: np.ndarray) -> np.ndarray:
    """Bilinear lookup with mirrored repetition.

    Args:
        texture: (h, w, 3) albedo.
        texel_m: metres per texel.
        footprint_m: size of a pixel on the surface; coarser than a texel, the texture is averaged.
        u: (M,) horizontal surface coordinates in metres.
        v: (M,) vertical surface coordinates in metres.

    Returns:
        (M, 3) albedo.

    Example:
        >>> texture = np.array([[[0.0] * 3, [1.0] * 3]], np.float32)  # 1 x 2 texels
        >>> sample_texture(texture, 1.0, 0.01, np.array([0.5, 1.0, 2.5, 3.5]), np.full(4, 0.5))[:, 0]  # mirrored
        array([0. , 0.5, 1. , 0. ])
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
