"""Where cached answers live: an in-process LRU with a TTL, or Redis (``SET … PX``).

An entry is one byte of kind (``j``: a JSON answer, ``s``: the SSE stream as the client got
it) followed by the body. A Redis failure raises ``StoreUnavailableError`` (mapped by
``switchyard.gateway.redis_client.call``); the caller counts it and goes on uncached."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any, Protocol

from switchyard.gateway.cache.config import CacheConfig


class CacheStore(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, entry: bytes) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """An LRU bounded by entries and bytes; expired entries are dropped when read."""

    def __init__(self, config: CacheConfig, clock: Any = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[float, bytes]] = OrderedDict()

    async def get(self, key: str) -> bytes | None:
        found = self._entries.get(key)
        if found is None:
            return None
        expires, entry = found
        if expires <= self.clock():
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def put(self, key: str, entry: bytes) -> None:
        if key in self._entries:
            self._drop(key)
        self._entries[key] = (self.clock() + self.config.ttl_s, entry)
        self.bytes += len(entry)
        while self._entries and (
            len(self._entries) > self.config.max_entries or self.bytes > self.config.max_bytes
        ):
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        _, entry = self._entries.pop(key)
        self.bytes -= len(entry)

    def __len__(self) -> int:
        return len(self._entries)

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0


class RedisStore:
    """Entries under ``{prefix:cache:<hash>}`` (each its own Cluster slot), expiring in Redis
    after ``ttl_s``."""

    def __init__(self, client: Any, prefix: str, ttl_s: float) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))

    def _key(self, key: str) -> str:
        return "{" + self.prefix + ":cache:" + key + "}"

    async def get(self, key: str) -> bytes | None:
        from switchyard.gateway.redis_client import call

        found: bytes | None = await call(self.client, lambda c: c.get(self._key(key)))
        return found

    async def put(self, key: str, entry: bytes) -> None:
        from switchyard.gateway.redis_client import call

        await call(self.client, lambda c: c.set(self._key(key), entry, px=self.ttl_ms))

    async def close(self) -> None:
        await self.client.aclose()
