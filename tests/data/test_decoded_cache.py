"""DecodedCache: least recently used out first, within a byte budget."""
import pytest

from fnf_basicsr.data.decoded_cache import DecodedCache


def test_least_recently_used_entries_leave_first_within_the_budget():
    cache = DecodedCache(max_bytes=250)
    cache.put('a', 'A', 100)
    cache.put('b', 'B', 100)
    assert cache.get('a') == 'A'  # now b is the least recently used
    cache.put('c', 'C', 100)
    assert cache.get('b') is None and cache.get('a') == 'A' and cache.get('c') == 'C'
    assert len(cache) == 2 and cache.bytes == 200


def test_a_zero_budget_keeps_only_the_last_entry_and_storing_again_replaces():
    cache = DecodedCache()
    cache.put('a', 'A', 10)
    cache.put('a', 'A2', 10)
    assert cache.get('a') == 'A2' and cache.bytes == 10
    cache.put('b', 'B', 10)
    assert cache.get('a') is None and cache.get('b') == 'B' and len(cache) == 1


def test_a_negative_budget_is_refused():
    with pytest.raises(ValueError, match='decoded_cache_mb must be >= 0'):
        DecodedCache(-1)
