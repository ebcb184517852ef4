"""The gateway's guess at every replica's prefix cache: which prompt blocks it sent where.

An approximate index (the Gateway API Inference Extension's "approximate prefix cache"
scorer works the same way): the gateway cannot see a replica's cache, but it knows the
block-hash chains (``switchyard.backends.prefix_blocks``) of the prompts it sent there, and a
replica that computed a prompt keeps its blocks until newer blocks push them out.

    index = PrefixIndex(max_blocks=262_144)
    index.matched(blocks.hashes)            # {"http://a/v1": 12, ...}: leading blocks cached
    index.record("http://a/v1", blocks.hashes, capacity_blocks=9_375)

One entry per block hash, with the endpoints it was sent to and when — in *blocks written
there*: each endpoint has a clock that advances by the blocks a request sent there did not
already have. A block counts as cached at an endpoint while fewer than that endpoint's
``capacity_blocks`` (its KV pool) were written there since the request that last sent it
(that request's own blocks included): LRU aging by the replica's own cache size, without a
per-replica list to maintain. Only this gateway's traffic
ages it (other gateways' and generated tokens are unseen), so the guess errs on the hopeful
side; a wrong guess costs one prefill, not an error.

Memory is bounded by ``max_blocks`` entries over all endpoints (least recently sent evicted
first); ``approx_bytes`` estimates it for the gateway's metrics. A chain is recorded tail
first, root last, so a shared root outlives the tails hanging off it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

__all__ = ["ENTRY_BYTES", "STAMP_BYTES", "PrefixIndex"]

# Measured with tracemalloc on CPython 3.12 (tests/backends/test_prefix_index.py checks it):
# an OrderedDict slot with its int key and a one-endpoint dict, and each further endpoint.
ENTRY_BYTES = 300
STAMP_BYTES = 16


class PrefixIndex:
    """Block hash -> {endpoint name: its clock when the block was last sent there}."""

    def __init__(self, max_blocks: int) -> None:
        if max_blocks < 1:
            raise ValueError("max_blocks must be >= 1")
        self.max_blocks = max_blocks
        self.evictions = 0
        self._entries: OrderedDict[int, dict[str, int]] = OrderedDict()
        self._clock: dict[str, int] = {}  # blocks written at each endpoint so far
        self._capacity: dict[str, int] = {}  # each endpoint's cache size, in blocks
        self._stamps = 0  # (endpoint, block) pairs held, for approx_bytes

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def approx_bytes(self) -> int:
        extra_stamps = max(self._stamps - len(self._entries), 0)
        return len(self._entries) * ENTRY_BYTES + extra_stamps * STAMP_BYTES

    def matched(self, hashes: Sequence[int]) -> dict[str, int]:
        """Per endpoint, how many leading blocks of ``hashes`` it is expected to hold (only
        endpoints holding at least the first one).

        A binary search per endpoint: what an endpoint holds of a chain is a run from the
        root (chains are recorded whole and aged tail first), so ``log2(len(hashes))``
        lookups find its end."""
        root = self._entries.get(hashes[0]) if hashes else None
        if root is None:
            return {}
        return {
            name: self._held(hashes, name)
            for name, stamp in root.items()
            if self._alive(name, stamp)
        }

    def _alive(self, name: str, stamp: int) -> bool:
        return self._clock[name] - stamp < self._capacity[name]

    def _held(self, hashes: Sequence[int], name: str) -> int:
        """Leading blocks of ``hashes`` held at ``name``, which holds the first."""
        entries = self._entries
        low, high = 1, len(hashes)  # held(low) is known true; find the largest
        while low < high:
            mid = (low + high + 1) // 2
            entry = entries.get(hashes[mid - 1])
            stamp = entry.get(name) if entry is not None else None
            if stamp is not None and self._alive(name, stamp):
                low = mid
            else:
                high = mid - 1
        return low

    def record(self, name: str, hashes: Sequence[int], capacity_blocks: int) -> None:
        """``hashes`` (a prompt's chain) were sent to ``name``, whose cache holds
        ``capacity_blocks`` blocks."""
        if not hashes:
            return
        capacity = max(capacity_blocks, 1)
        self._capacity[name] = capacity
        now = self._clock.get(name, 0)  # stamps: the clock when the request was sent
        entries = self._entries
        written = 0
        for block_hash in reversed(hashes):
            entry = entries.get(block_hash)
            if entry is None:
                entries[block_hash] = {name: now}
                self._stamps += 1
                written += 1
                continue
            entries.move_to_end(block_hash)
            stamp = entry.get(name)
            if stamp is None:
                self._stamps += 1
                written += 1
            elif now - stamp >= capacity:
                written += 1
            entry[name] = now
        self._clock[name] = now + written
        self._evict()

    def _evict(self) -> None:
        entries = self._entries
        while len(entries) > self.max_blocks:
            _, entry = entries.popitem(last=False)
            self._stamps -= len(entry)
            self.evictions += 1
