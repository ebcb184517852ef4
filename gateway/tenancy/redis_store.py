"""``RedisStore``: the tenancy state in Redis, shared by every gateway replica.

This module owns the Redis side of tenancy: the key layout, the two Lua scripts that admit
and settle a request atomically, spend counters, dynamic keys, and the boundary where a Redis
failure becomes ``StoreUnavailableError``. Its behaviour is ``MemoryStore``'s (see
``gateway.tenancy.store``): the scripts do the same arithmetic on the same numbers, with the
time taken from Redis (``TIME``) so that every replica reads one clock.

Every key carries one hash tag, ``{<key_prefix>}``, so all of them map to one Redis Cluster
slot and the multi-key scripts run there too::

    {switchyard}:tat:<bucket id>     GCRA theoretical arrival time (s, Redis clock)
    {switchyard}:spend:<budget id>   spend in USD this period (INCRBYFLOAT; expires)
    {switchyard}:key:<key hash>      a dynamic key, ``KeyRecord`` as JSON
    {switchyard}:keys                the set of dynamic key hashes

The client is created on first use inside the running event loop (the store may be built
before the loop starts) with a bounded, blocking connection pool and no retries: a command
either answers within ``timeout_s`` or the caller gets ``StoreUnavailableError`` and fails
open or closed. Pooled connections that broke while Redis was away are replaced on their next
use, so the store works again as soon as Redis does.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MasterDownError,
    MovedError,
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.tenancy.keys import KeyRecord
from gateway.tenancy.store import (
    Bucket,
    Budget,
    StoreHealth,
    StoreUnavailableError,
    Verdict,
    bucket_state,
)

log = logging.getLogger("switchyard.tenancy")
T = TypeVar("T")

# Failures that mean "Redis cannot be used right now": unreachable, too slow, loading, full
# (OOM), a replica or a moving slot mid-failover. Anything else (a bug) is not hidden.
UNAVAILABLE = (
    RedisConnectionError, RedisTimeoutError, OSError, ReadOnlyError, OutOfMemoryError,
    MasterDownError, ClusterDownError, TryAgainError, MovedError, AskError,
)  # fmt: skip

# Lua numbers are doubles; "%.17g" writes one so that it reads back as the same double.
_LUA_PRELUDE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = tonumber(ARGV[1])
local function num(x) return string.format('%.17g', x) end
local function save_tat(key, tat, period)
  local ms = math.max(math.ceil((tat - now + period) * 1000), 1) + 1000
  redis.call('SET', key, num(tat), 'PX', string.format('%.0f', ms))
end
"""

# KEYS: n bucket TAT keys, then the budgets' spend keys.
# ARGV: n; limit, period_s, cost per bucket; limit_usd, estimate_usd, resets_in_s per budget.
# Returns {1, 0, now, new TAT per bucket} or {0, index of the refusing key, retry-after}.
ADMIT_LUA = (
    _LUA_PRELUDE
    + """
for j = n + 1, #KEYS do
  local a = 2 + 3 * n + 3 * (j - n - 1)
  local spent = tonumber(redis.call('GET', KEYS[j]) or '0')
  if spent + tonumber(ARGV[a + 1]) > tonumber(ARGV[a]) then
    return {0, j, ARGV[a + 2]}
  end
end
local tats = {}
for i = 1, n do
  local a = 2 + 3 * (i - 1)
  local period = tonumber(ARGV[a + 1])
  local interval = period / tonumber(ARGV[a])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  tats[i] = math.max(tat, now) + tonumber(ARGV[a + 2]) * interval
  local wait = tats[i] - period - now
  if wait > 0 then return {0, i, num(wait)} end
end
local out = {1, 0, num(now)}
for i = 1, n do
  save_tat(KEYS[i], tats[i], tonumber(ARGV[2 + 3 * (i - 1) + 1]))
  out[#out + 1] = num(tats[i])
end
return out
"""
)

# KEYS: n bucket TAT keys, then the budgets' spend keys.
# ARGV: n; shift_s (units * interval; < 0 gives back), period_s per bucket; usd, ttl_s per budget.
SETTLE_LUA = (
    _LUA_PRELUDE
    + """
for i = 1, n do
  local shift = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now) + shift
  if shift < 0 then tat = math.max(tat, now) end
  save_tat(KEYS[i], tat, tonumber(ARGV[2 * i + 1]))
end
for j = n + 1, #KEYS do
  local a = 2 + 2 * n + 2 * (j - n - 1)
  redis.call('INCRBYFLOAT', KEYS[j], ARGV[a])
  redis.call('EXPIRE', KEYS[j], ARGV[a + 1])
end
return #KEYS
"""
)


class RedisStore:
    """``TenancyStore`` in Redis: one client per process, one atomic round trip per admit."""

    def __init__(
        self,
        url: str,
        key_prefix: str = "switchyard",
        timeout_s: float = 0.25,
        max_connections: int = 128,
    ) -> None:
        self._url = url
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._tag = "{" + key_prefix + "}"
        self._client: Redis | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admit_script: AsyncScript | None = None
        self._settle_script: AsyncScript | None = None
        self.health = StoreHealth("tenancy", probe=self.ping)

    # --- keys ---------------------------------------------------------------------------
    def tat_key(self, bucket_id: str) -> str:
        return f"{self._tag}:tat:{bucket_id}"

    def spend_key(self, budget_id: str) -> str:
        return f"{self._tag}:spend:{budget_id}"

    def record_key(self, key_hash: str) -> str:
        return f"{self._tag}:key:{key_hash}"

    @property
    def index_key(self) -> str:
        return f"{self._tag}:keys"

    # --- the client -----------------------------------------------------------------------
    def _redis(self) -> Redis:
        """This loop's client, created on first use (the store may outlive a loop in tests)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            pool = BlockingConnectionPool.from_url(
                self._url,
                max_connections=self._max_connections,
                timeout=self._timeout_s,  # waiting for a free pooled connection
                socket_timeout=self._timeout_s,
                socket_connect_timeout=self._timeout_s,
                retry=Retry(NoBackoff(), 0),  # a script is not idempotent: never resend it
                decode_responses=True,
            )
            self._client = Redis.from_pool(pool)
            self._loop = loop
            self._admit_script = self._client.register_script(ADMIT_LUA)
            self._settle_script = self._client.register_script(SETTLE_LUA)
        return self._client

    async def _call(self, op: Callable[[Redis], Awaitable[T]]) -> T:
        """Run ``op`` on the client; a Redis that cannot be used raises StoreUnavailableError."""
        try:
            result = await op(self._redis())
        except UNAVAILABLE as err:
            if self.health.mark(False):
                log.warning("tenancy state store: Redis unreachable (%s)", err)
            raise StoreUnavailableError(f"redis unavailable: {err}") from err
        if not self.health.up:
            down_s = self.health.since
            self.health.mark(True)
            log.info("tenancy state store: Redis is back after %.1f s", self.health.since - down_s)
        return result

    async def ping(self) -> None:
        """One round trip, to learn whether Redis answers (``StoreUnavailableError`` if not)."""
        await self._call(lambda r: r.ping())

    async def _script(self, which: str, keys: list[str], args: list[float]) -> Any:
        async def run(client: Redis) -> Any:
            script = self._admit_script if which == "admit" else self._settle_script
            assert script is not None  # registered with the client
            return await script(keys=keys, args=args, client=client)

        return await self._call(run)

    async def close(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.aclose()

    # --- limits and budgets -----------------------------------------------------------------
    async def admit(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> Verdict:
        if not buckets and not budgets:
            return Verdict(True)
        keys = [self.tat_key(b.id) for b in buckets] + [self.spend_key(d.id) for d in budgets]
        args: list[float] = [len(buckets)]
        for b in buckets:
            args += [b.limit, b.period_s, b.cost]
        for d in budgets:
            args += [d.limit_usd, d.estimate_usd, d.resets_in_s]
        allowed, index, value, *tats = await self._script("admit", keys, args)
        if not allowed:
            ids = [b.id for b in buckets] + [d.id for d in budgets]
            return Verdict(False, ids[int(index) - 1], float(value))
        now = float(value)
        states = tuple(bucket_state(float(t), now, b) for b, t in zip(buckets, tats, strict=True))
        return Verdict(True, buckets=states)

    async def settle(
        self, corrections: Sequence[tuple[Bucket, float]], spend: Sequence[tuple[Budget, float]]
    ) -> None:
        if not corrections and not spend:
            return
        keys = [self.tat_key(b.id) for b, _ in corrections]
        keys += [self.spend_key(d.id) for d, _ in spend]
        args: list[float] = [len(corrections)]
        for bucket, delta in corrections:
            args += [delta * (bucket.period_s / bucket.limit), bucket.period_s]
        for budget, usd in spend:
            args += [usd, budget.ttl_s]
        await self._script("settle", keys, args)

    async def spend(self, budget_ids: Sequence[str]) -> list[float]:
        if not budget_ids:
            return []
        keys = [self.spend_key(i) for i in budget_ids]
        values = await self._call(lambda r: r.mget(keys))
        return [float(v) if v is not None else 0.0 for v in values]

    # --- dynamic keys -----------------------------------------------------------------------
    async def save_key(self, record: KeyRecord) -> None:
        async def save(client: Redis) -> None:
            async with client.pipeline(transaction=True) as tx:
                tx.set(self.record_key(record.key_hash), record.model_dump_json())
                tx.sadd(self.index_key, record.key_hash)
                await tx.execute()

        await self._call(save)

    async def load_key(self, key_hash: str) -> KeyRecord | None:
        raw = await self._call(lambda r: r.get(self.record_key(key_hash)))
        return KeyRecord.model_validate_json(raw) if raw is not None else None

    async def list_keys(self) -> list[KeyRecord]:
        """Every dynamic key, oldest first."""
        hashes = await self._call(lambda r: r.smembers(self.index_key))
        if not hashes:
            return []
        keys = sorted(self.record_key(_text(h)) for h in hashes)
        raws = await self._call(lambda r: r.mget(keys))
        records = [KeyRecord.model_validate_json(raw) for raw in raws if raw is not None]
        return sorted(records, key=lambda r: (r.created_at, r.id))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
