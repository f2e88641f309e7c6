"""The noise level a test sample is scored at, for both protocols: a table column, a log line, a tag.

The paper's protocol (``degradation: paper``) scores each dimming factor (100x ... 12.5x, noisiest
first); the later literature's (``degradation: srgb_awgn``) each Gaussian noise std in 8-bit units
(sigma 25, 50, 75, as their tables list them). A sample of the second carries ``awgn_sigma > 0``.
"""
from __future__ import annotations

from collections.abc import Iterable


def level_of(dimming: float, awgn_sigma: float | None = 0.0) -> float:
    """The value a sample is grouped by: its AWGN sigma where it has one, else its dimming factor.

    Args:
        dimming: the sample's dimming factor.
        awgn_sigma: its Gaussian noise std in 8-bit units; 0 or None for the paper's protocol.

    Returns:
        The level, a float.

    Example:
        >>> level_of(100.0), level_of(1.0, 25.0)
        (100.0, 25.0)
    """
    return float(awgn_sigma) if awgn_sigma and float(awgn_sigma) > 0 else float(dimming)


def level_label(value: float, awgn: bool) -> str:
    """A level as tables and logs print it.

    Args:
        value: the level (:func:`level_of`).
        awgn: the level is an AWGN sigma, not a dimming factor.

    Returns:
        ``'<factor>x'`` or ``'sigma <sigma>'``.

    Example:
        >>> level_label(12.5, awgn=False), level_label(50.0, awgn=True)
        ('12.5x', 'sigma 50')
    """
    return f'sigma {value:g}' if awgn else f'{value:g}x'


def level_tag(value: float, awgn: bool) -> str:
    """A level in a TensorBoard tag or a file name (no spaces).

    Args:
        value: the level (:func:`level_of`).
        awgn: the level is an AWGN sigma, not a dimming factor.

    Returns:
        :func:`level_label` without spaces.

    Example:
        >>> level_tag(12.5, awgn=False), level_tag(50.0, awgn=True)
        ('12.5x', 'sigma50')
    """
    return level_label(value, awgn).replace(' ', '')


def ordered_levels(values: Iterable[float], awgn: bool) -> list[float]:
    """Distinct levels in table order: dimming factors noisiest (largest) first, sigmas ascending.

    Args:
        values: the levels of the samples, repeats allowed.
        awgn: the levels are AWGN sigmas, not dimming factors.

    Returns:
        The distinct levels, sorted.

    Example:
        >>> ordered_levels([25, 100, 25], awgn=False), ordered_levels([75, 25], awgn=True)
        ([100, 25], [25, 75])
    """
    return sorted(set(values), reverse=not awgn)
