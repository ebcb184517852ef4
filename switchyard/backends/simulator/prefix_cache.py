"""The simulated engine's prefix cache, as vLLM's automatic prefix caching behaves.

A prompt's full blocks (``switchyard.backends.prefix_blocks``: hash chains over 16-token
blocks) are looked up when the engine admits it: the longest run of its chain already cached,
from the root, is a hit and needs no prefill. As in vLLM V1, at least the prompt's last
token is always computed (a fully cached prompt hits one block less), queries count every
prompt token and hits the cached ones (``vllm:prefix_cache_queries`` / ``_hits``).

The admitted prompt's blocks then become the most recently used; beyond ``capacity_blocks``
(the KV pool: ``kv_cache_tokens // block_tokens``) the least recently used block is evicted.
A chain is touched tail first, root last, so its tail goes before its root — vLLM frees a
request's blocks in reverse order for the same reason: a root shared by many prompts is
worth more than one prompt's tail. Simplification: the blocks of running sequences and of
generated tokens are not set apart from the cached ones (vLLM cannot evict blocks in use).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from switchyard.backends.prefix_blocks import BLOCK_TOKENS

__all__ = ["PrefixCache"]


class PrefixCache:
    """An LRU of cached block hashes, bounded by the KV pool's blocks."""

    def __init__(self, capacity_blocks: int, block_tokens: int = BLOCK_TOKENS) -> None:
        if capacity_blocks < 1 or block_tokens < 1:
            raise ValueError("capacity_blocks and block_tokens must be >= 1")
        self.capacity_blocks = capacity_blocks
        self.block_tokens = block_tokens
        self.evictions = 0
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def __contains__(self, block_hash: int) -> bool:
        return block_hash in self._blocks

    def admit(self, hashes: Sequence[int], prompt_tokens: int) -> int:
        """Prompt tokens found cached (a multiple of the block size); then caches ``hashes``."""
        limit = min(len(hashes), max(prompt_tokens - 1, 0) // self.block_tokens)
        blocks = self._blocks
        hit = 0
        while hit < limit and hashes[hit] in blocks:
            hit += 1
        for block_hash in reversed(hashes):
            blocks[block_hash] = None
            blocks.move_to_end(block_hash)
        while len(blocks) > self.capacity_blocks:
            blocks.popitem(last=False)
            self.evictions += 1
        return hit * self.block_tokens
