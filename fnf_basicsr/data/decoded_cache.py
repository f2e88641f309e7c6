"""Decoded training images kept in memory, so each one is decoded once per DataLoader worker.

A 128 px training crop of a 384 px synthetic scene spends about 70 % of its 15 ms decoding the two
16-bit PNGs, and on a 2-core machine the worker that decodes competes with the training threads.
With ``decoded_cache_mb: N`` the dataset keeps up to N MiB of decoded images per process, the least
recently used leaving first; with ``persistent_workers: true`` (a BasicSR DataLoader option) the
workers, and their caches, live through every epoch. Without a budget only the last image is kept.
"""
from collections import OrderedDict

MIB = 2 ** 20


class DecodedCache:
    """Least-recently-used mapping bounded by the bytes of its values (0: keep only the last one).

    Args:
        max_bytes (int): budget for the arrays held.
    """

    def __init__(self, max_bytes=0):
        if max_bytes < 0:
            raise ValueError(f'decoded_cache_mb must be >= 0 (0: no cache), got {max_bytes / MIB:g}')
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self.bytes = 0

    def __len__(self):
        return len(self._entries)

    def get(self, key):
        """The value stored for ``key`` (now the most recently used), or None."""
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key][0]

    def put(self, key, value, nbytes):
        """Store ``value`` of ``nbytes`` bytes, dropping the least recently used entries beyond the budget."""
        if key in self._entries:
            self.bytes -= self._entries.pop(key)[1]
        self._entries[key] = (value, nbytes)
        self.bytes += nbytes
        while len(self._entries) > 1 and self.bytes > self.max_bytes:
            self.bytes -= self._entries.popitem(last=False)[1][1]
