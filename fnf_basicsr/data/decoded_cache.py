"""Decoded training images kept in memory, so each one is decoded once per DataLoader worker.

Decoding the two 16-bit PNGs of a scene is most of the time a small training crop takes (docs/data.md),
and on a 2-core machine the worker that decodes competes with the training threads.
With ``decoded_cache_mb: N`` the dataset keeps up to N MiB of decoded images per process, the least
recently used leaving first; with ``persistent_workers: true`` (a BasicSR DataLoader option) the
workers, and their caches, live through every epoch. Without a budget only the last image is kept.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

MIB = 2 ** 20


class DecodedCache:
    """Least-recently-used mapping bounded by the bytes of its values (0: keep only the last one).

    Args:
        max_bytes: budget for the arrays held; the last one stored is kept even beyond it.

    Raises:
        ValueError: a negative budget.

    Example:
        >>> cache = DecodedCache(max_bytes=2 * MIB)
        >>> cache.put('a', 'image a', MIB)
        >>> cache.put('b', 'image b', MIB)
        >>> cache.get('a')  # now the most recently used
        'image a'
        >>> cache.put('c', 'image c', MIB)  # over budget: 'b' leaves
        >>> len(cache), cache.get('b'), cache.bytes == 2 * MIB
        (2, None, True)
    """

    def __init__(self, max_bytes: int = 0) -> None:
        if max_bytes < 0:
            raise ValueError(f'decoded_cache_mb must be >= 0 (0: no cache), got {max_bytes / MIB:g}')
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Any:
        """The value stored for ``key`` (now the most recently used), or None.

        Args:
            key: the entry's key, e.g. a scene name.

        Returns:
            The value, or None when it is not (or no longer) held.
        """
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key][0]

    def put(self, key: Hashable, value: Any, nbytes: int) -> None:
        """Store ``value`` of ``nbytes`` bytes, dropping the least recently used entries beyond the budget.

        Args:
            key: the entry's key; an entry of the same key is replaced.
            value: what to keep, e.g. decoded arrays.
            nbytes: the bytes ``value`` holds, counted against the budget.
        """
        if key in self._entries:
            self.bytes -= self._entries.pop(key)[1]
        self._entries[key] = (value, nbytes)
        self.bytes += nbytes
        while len(self._entries) > 1 and self.bytes > self.max_bytes:
            self.bytes -= self._entries.popitem(last=False)[1][1]
