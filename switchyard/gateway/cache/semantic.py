"""Semantic matching for the response cache: an opted-in request whose prompt is close
enough to one answered before, by the same model for the same scope with the same other
parameters, gets that answer (``switchyard.gateway.cache.hook`` decides when to look).

What is compared:

* the **prompt embedding**, the routers' own (``switchyard.routers.embedding``: MiniLM,
  L2-normalised, of the system prompt(s) plus the last user turn). A routed request reuses
  the vector its routing decision computed (``Route.embedding``: no second embedding); a
  request for a concrete model is embedded on the router worker thread, and only when it
  asked for semantic caching. Cosine similarity ≥ ``cache.semantic_threshold`` is a match;
  the closest entry wins.
* an **index per (scope, model)**: the scope is the exact key's (tenant and model
  allow-list), the model the one that answered (for a routed request, the chosen one; a
  fallback's answer is indexed under the fallback).
* the **other parameters must be equal** (``params_of``): a hash of the body without
  ``model``, the ``switchyard`` options, ``stream``, ``stream_options``, ``user``,
  ``request_id`` and the embedded text (the last user turn; a completion's prompt).
  Earlier turns, system prompts, tools, ``max_tokens``, ``temperature``… must match exactly.

The answers are not copied: an index entry holds (vector, parameters hash, exact digest,
expiry) and the answer stays in the store under its exact digest. An entry whose answer has
gone (TTL, LRU) is a miss.

Where the index lives:

* ``MemoryIndex``: per (scope, model), a float32 matrix that grows to
  ``cache.semantic_max_entries`` rows, then overwrites its oldest row; an entry expires
  ``cache.ttl_s`` after it was written; whole indexes are dropped least recently used first
  once all of them hold more than ``cache.max_entries`` rows. A lookup is one matrix-vector
  product (1,000 × 384 float32: ~20 µs).
* ``RedisIndex`` (plain ``redis-server`` has no vector search): per (scope, model) a Redis
  list of packed entries, newest first, trimmed to ``semantic_max_entries`` and expiring
  ``ttl_s`` after its last write. Each gateway mirrors a list in a ``MemoryIndex``-like
  matrix and rereads it when its copy is older than ``cache.semantic_refresh_s``: what
  another replica stored is found within that delay; its own writes are found at once.

Limits: the search is exact and linear, fine for thousands of entries per (scope, model),
not for millions; the Redis mirror rereads a whole list (≤ ``semantic_max_entries`` ×
~1.6 kB) per refresh; similar is not equal — two prompts that differ in one number (``2+2``,
``2+3``) can be more similar than two paraphrases, so the threshold is a trade-off the
operator owns (docs/BENCHMARKS.md section 24) and semantic caching is opt-in per request.
"""

from __future__ import annotations

import hashlib
import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from switchyard.gateway.cache.config import CacheConfig

Vector = np.ndarray[Any, np.dtype[np.float32]]
_HEAD = struct.Struct("<dq20s")  # expiry (Unix s), parameters hash, exact digest; vector after
_DROPPED = frozenset({"model", "switchyard", "stream", "stream_options", "user", "request_id"})


@dataclass(slots=True)
class Query:
    """What a semantic lookup (and, on a miss, the index entry) needs; ``model`` and
    ``vector`` are known after routing for a routed request."""

    scope: str  # hash of the caller's scope
    params: int  # hash of the request without its prompt
    text: str  # the embedded text
    model: str | None = None
    vector: Vector | None = None

    @property
    def group(self) -> str:
        assert self.model is not None
        return self.scope + ":" + self.model


def scope_hash(scope: Any) -> str:
    return hashlib.blake2b(orjson.dumps(scope), digest_size=12).hexdigest()


def params_of(data: dict[str, Any], prompt_field: str) -> int:
    """The hash of everything in ``data`` but the model, the options and the embedded text
    (for chat, the last user turn; for completions, the prompt)."""
    body = {k: v for k, v in data.items() if k not in _DROPPED}
    messages = body.get(prompt_field)
    if prompt_field == "messages" and isinstance(messages, list):
        last = max((i for i, m in enumerate(messages) if _is_user(m)), default=None)
        body["messages"] = [m for i, m in enumerate(messages) if i != last]
    else:
        body.pop(prompt_field, None)
    canonical = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=8).digest(), "little", signed=True)


def _is_user(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "user"


class Rows:
    """One (scope, model) index: vectors, parameter hashes, expiries and digests, as a
    ring of at most ``cap`` rows (the arrays grow by doubling up to it)."""

    __slots__ = ("cap", "digests", "expires", "next", "params", "vectors")

    def __init__(self, cap: int, dim: int) -> None:
        self.cap = cap
        size = min(cap, 16)
        self.vectors = np.zeros((size, dim), dtype=np.float32)
        self.params = np.zeros(size, dtype=np.int64)
        self.expires = np.zeros(size, dtype=np.float64)  # 0: an empty row, never live
        self.digests: list[str] = []
        self.next = 0  # the row the next entry overwrites once full

    def __len__(self) -> int:
        return len(self.digests)

    def add(self, vector: Vector, params: int, digest: str, expires: float) -> None:
        n = len(self.digests)
        if n < self.cap:
            if n == len(self.params):
                self._grow(min(self.cap, 2 * n))
            i = n
            self.digests.append(digest)
        else:
            i, self.next = self.next, (self.next + 1) % self.cap
            self.digests[i] = digest
        self.vectors[i], self.params[i], self.expires[i] = vector, params, expires

    def _grow(self, size: int) -> None:
        n = len(self.params)
        self.vectors = np.concatenate([self.vectors, np.zeros_like(self.vectors[: size - n])])
        self.params = np.concatenate([self.params, np.zeros(size - n, dtype=np.int64)])
        self.expires = np.concatenate([self.expires, np.zeros(size - n, dtype=np.float64)])

    def best(self, vector: Vector, params: int, now: float) -> tuple[str, float] | None:
        """The closest live entry with the same parameters: (digest, cosine similarity)."""
        n = len(self.digests)
        if not n:
            return None
        sims = self.vectors[:n] @ vector
        sims[(self.params[:n] != params) | (self.expires[:n] <= now)] = -2.0
        i = int(np.argmax(sims))
        similarity = float(sims[i])
        return None if similarity < -1.0 else (self.digests[i], similarity)


class SemanticIndex(Protocol):
    async def search(self, query: Query) -> tuple[str, float] | None: ...

    async def add(self, query: Query, digest: str) -> None: ...


class MemoryIndex:
    """The in-process index (see the module docstring)."""

    def __init__(self, config: CacheConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock
        self.groups: OrderedDict[str, Rows] = OrderedDict()
        self.rows = 0

    async def search(self, query: Query) -> tuple[str, float] | None:
        rows = self.groups.get(query.group)
        if rows is None or query.vector is None:
            return None
        self.groups.move_to_end(query.group)
        return rows.best(query.vector, query.params, self.clock())

    async def add(self, query: Query, digest: str) -> None:
        assert query.vector is not None
        rows = self.groups.get(query.group)
        if rows is None:
            rows = Rows(self.config.semantic_max_entries, query.vector.size)
            self.groups[query.group] = rows
        before = len(rows)
        rows.add(query.vector, query.params, digest, self.clock() + self.config.ttl_s)
        self.rows += len(rows) - before
        while self.rows > self.config.max_entries and len(self.groups) > 1:
            _, dropped = self.groups.popitem(last=False)
            self.rows -= len(dropped)


class RedisIndex:
    """The index shared through Redis, mirrored in each gateway (see the module docstring)."""

    def __init__(
        self, client: Any, prefix: str, config: CacheConfig, clock: Callable[[], float] = time.time
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.config = config
        self.clock = clock
        self.mirror = MemoryIndex(config, clock)
        self.read: dict[str, float] = {}  # group -> when its list was last read

    def _key(self, group: str) -> str:
        name = hashlib.blake2b(group.encode(), digest_size=12).hexdigest()
        return "{" + self.prefix + ":semcache:" + name + "}"

    async def search(self, query: Query) -> tuple[str, float] | None:
        now = self.clock()
        if now - self.read.get(query.group, -1e18) >= self.config.semantic_refresh_s:
            from switchyard.gateway.redis_client import call

            key = self._key(query.group)
            packed: list[bytes] = await call(self.client, lambda c: c.lrange(key, 0, -1))
            self._load(query, packed)
            self.read[query.group] = now
            if len(self.read) > len(self.mirror.groups) + 1024:  # groups the mirror dropped
                self.read = {g: t for g, t in self.read.items() if g in self.mirror.groups}
        return await self.mirror.search(query)

    def _load(self, query: Query, packed: list[bytes]) -> None:
        """Replace the mirror of ``query``'s group with the list just read (oldest first)."""
        group = query.group
        old = self.mirror.groups.pop(group, None)
        self.mirror.rows -= 0 if old is None else len(old)
        if not packed or query.vector is None:
            return
        dim, cap = query.vector.size, self.config.semantic_max_entries
        entry = np.dtype([("expires", "<f8"), ("params", "<i8"), ("digest", "u1", (20,)),
                          ("vector", "<f4", (dim,))])  # fmt: skip
        items = [p for p in packed[:cap] if len(p) == entry.itemsize][::-1]  # oldest first
        if not items:
            return
        table = np.frombuffer(b"".join(items), dtype=entry)
        rows = Rows(cap, dim)
        rows.vectors, rows.params = table["vector"].copy(), table["params"].copy()
        rows.expires = table["expires"].copy()
        rows.digests = [d.tobytes().hex() for d in table["digest"]]
        self.mirror.groups[group] = rows
        self.mirror.rows += len(rows)

    async def add(self, query: Query, digest: str) -> None:
        from switchyard.gateway.redis_client import call

        assert query.vector is not None
        expires = self.clock() + self.config.ttl_s
        vector = np.asarray(query.vector, dtype=np.float32).tobytes()  # a route's is float64
        item = _HEAD.pack(expires, query.params, bytes.fromhex(digest)) + vector
        key, cap = self._key(query.group), self.config.semantic_max_entries
        ttl_ms = max(1, int(self.config.ttl_s * 1000))

        async def write(client: Any) -> Any:
            async with client.pipeline(transaction=True) as pipe:
                pipe.lpush(key, item).ltrim(key, 0, cap - 1).pexpire(key, ttl_ms)
                return await pipe.execute()

        await call(self.client, write)
        await self.mirror.add(query, digest)
