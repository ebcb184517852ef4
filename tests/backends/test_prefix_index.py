"""The gateway's prefix index: which leading blocks of a prompt each replica is expected to
hold, aged by each replica's own cache size, bounded in memory by an LRU over all replicas."""

from __future__ import annotations

import random
import tracemalloc

import pytest

from switchyard.backends.prefix_index import PrefixIndex

A, B = "http://a/v1", "http://b/v1"


def chain(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    return [rng.getrandbits(62) for _ in range(n)]


def test_a_replica_matches_the_leading_blocks_it_was_sent() -> None:
    index = PrefixIndex(max_blocks=1000)
    system = chain(8, 1)
    index.record(A, system + chain(2, 2), capacity_blocks=100)
    index.record(B, system[:3], capacity_blocks=100)
    assert index.matched(system + chain(4, 3)) == {A: 8, B: 3}
    assert index.matched(chain(4, 4)) == {}


def test_blocks_age_out_once_the_replica_was_sent_its_cache_size_of_newer_blocks() -> None:
    index = PrefixIndex(max_blocks=10_000)
    first = chain(10, 1)
    index.record(A, first, capacity_blocks=50)
    index.record(A, chain(39, 2), capacity_blocks=50)  # 49 written, its own included
    assert index.matched(first) == {A: 10}
    index.record(A, chain(1, 3), capacity_blocks=50)  # the 50th: pushed out
    assert index.matched(first) == {}
    index.record(B, first, capacity_blocks=50)  # another replica's clock is its own
    assert index.matched(first) == {B: 10}


def test_sending_a_cached_prefix_again_refreshes_it_without_ageing_the_replica() -> None:
    index = PrefixIndex(max_blocks=10_000)
    system = chain(10, 1)
    for i in range(20):  # a shared system prompt, then 4 blocks of its own per request
        index.record(A, system + chain(4, 100 + i), capacity_blocks=50)
    assert index.matched(system) == {A: 10}  # 10 + 20 x 4 written: the hot root survives


def test_memory_is_bounded_by_max_blocks_least_recently_sent_first() -> None:
    index = PrefixIndex(max_blocks=100)
    old, new = chain(60, 1), chain(60, 2)
    index.record(A, old, capacity_blocks=10**6)
    index.record(B, new, capacity_blocks=10**6)
    assert len(index) == 100 and index.evictions == 20
    assert index.matched(new) == {B: 60}
    assert index.matched(old) == {A: 40}  # the root stays, the tail went


def test_approx_bytes_is_within_a_third_of_what_python_allocates() -> None:
    index = PrefixIndex(max_blocks=10**6)
    blocks = [chain(100, i) for i in range(200)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i, c in enumerate(blocks):
            index.record(A if i % 2 else B, c, capacity_blocks=10**6)
        for c in blocks[:50]:
            index.record(A, c, capacity_blocks=10**6)
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert used * 0.67 < index.approx_bytes < used * 1.33, (used, index.approx_bytes)


def test_max_blocks_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PrefixIndex(max_blocks=0)
