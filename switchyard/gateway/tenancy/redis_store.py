"""``RedisStore``: the tenancy state in Redis, shared by every gateway replica.

This module owns the Redis side of tenancy: the key layout, the two Lua scripts that admit
and settle a request atomically, spend counters, dynamic keys, and what a Redis failure does
to tenancy (the store's health, one log line per outage, idle connections dropped). Its
behaviour is ``MemoryStore``'s (see ``switchyard.gateway.tenancy.store``): the scripts do the
same arithmetic on the same numbers, with the time taken from Redis (``TIME``) so that every
replica reads one clock.

Keys carry a hash tag (``switchyard.gateway.redis_client.KeyTags``): on one master every key has
``{<key_prefix>}``, the layout earlier versions wrote; on a Redis Cluster a bucket or budget has
its owner's tag (``{<key_prefix>:key:<id>}``, ``{...:model:<name>}``, ``{...:tenant:<name>}``), so
owners spread over the masters::

    {switchyard}:tat:<bucket id>     GCRA theoretical arrival time (s, Redis clock)
    {switchyard}:spend:<budget id>   spend in USD this period (INCRBYFLOAT; expires)
    {switchyard}:key:<key hash>      a dynamic key, ``KeyRecord`` as JSON (always ``{prefix}``)
    {switchyard}:keys                the set of dynamic key hashes (always ``{prefix}``)

A script runs on one slot. On one master an admit is one script over every key, as before. On
a Cluster the keys are grouped by slot, one script per group, all at once; if any group refuses
(or fails), the groups that admitted give back what they took. So a limit is never exceeded,
and only a request racing such a give-back can be refused by a unit that is returned a moment
later. A request with only its key's limits and budget touches one slot: exact, one round trip.

The client comes from ``switchyard.gateway.redis_client.connect`` on first use inside the
running event loop (the store may be built before the loop starts), with no retries: a command
either answers within ``timeout_s`` or the caller gets ``StoreUnavailableError`` (mapped by
``redis_client.call``) and fails open or closed.
Pooled connections that broke while Redis was away are replaced on their next use, so the store
works again as soon as Redis (or, after a failover, the new master) does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.commands.core import AsyncScript

from switchyard.gateway.redis_client import (
    KeyTags,
    RedisTarget,
    call,
    connect,
    group_by_slot,
    parse_target,
)
from switchyard.gateway.state import StoreHealth, StoreUnavailableError
from switchyard.gateway.tenancy.keys import KeyRecord
from switchyard.gateway.tenancy.store import (
    Bucket,
    BucketState,
    Budget,
    Verdict,
    bucket_state,
)

log = logging.getLogger("switchyard.tenancy")
T = TypeVar("T")

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
    """``TenancyStore`` in Redis: one client per process, one atomic round trip per admit
    (per slot on a Cluster)."""

    def __init__(
        self,
        url: str,
        key_prefix: str = "switchyard",
        timeout_s: float = 0.25,
        max_connections: int = 128,
        mode: str = "auto",
    ) -> None:
        self._target: RedisTarget = parse_target(url, mode)
        self._timeout_s = timeout_s
        self._max_connections = max_connections
        self._tags = KeyTags(key_prefix, self._target.spread)
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._admit_script: AsyncScript | None = None
        self._settle_script: AsyncScript | None = None
        self.health = StoreHealth("tenancy", probe=self.ping)

    # --- keys ---------------------------------------------------------------------------
    def _owned(self, item_id: str) -> str:
        """A bucket's or budget's tag: its owner, the id less its last part (``key:<id>``)."""
        return self._tags.tag(item_id.rsplit(":", 1)[0])

    def tat_key(self, bucket_id: str) -> str:
        return f"{self._owned(bucket_id)}:tat:{bucket_id}"

    def spend_key(self, budget_id: str) -> str:
        return f"{self._owned(budget_id)}:spend:{budget_id}"

    def record_key(self, key_hash: str) -> str:
        return f"{self._tags.tag()}:key:{key_hash}"

    @property
    def index_key(self) -> str:
        return f"{self._tags.tag()}:keys"

    # --- the client -----------------------------------------------------------------------
    def _redis(self) -> Any:
        """This loop's client, created on first use (the store may outlive a loop in tests)."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = connect(self._target, self._timeout_s, self._max_connections, True)
            self._loop = loop
            self._admit_script = self._client.register_script(ADMIT_LUA)
            self._settle_script = self._client.register_script(SETTLE_LUA)
        return self._client

    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``op`` on the client; a Redis that cannot be used raises StoreUnavailableError
        (mapped by ``redis_client.call``), and the store's health follows each call."""
        try:
            result = await call(self._redis(), op)
        except StoreUnavailableError as err:
            if self.health.mark(False):
                log.warning("tenancy state store: Redis unreachable (%s)", err.__cause__)
                await self._drop_idle()
            raise
        if not self.health.up:
            down_s = self.health.since
            self.health.mark(True)
            log.info("tenancy state store: Redis is back after %.1f s", self.health.since - down_s)
            await self._drop_idle()
        return result

    async def _drop_idle(self) -> None:
        """Close the pooled connections not in use when Redis goes away and when it is back:
        one that sat idle through an outage can be dead without the pool noticing, and
        would fail a request long after Redis is back, when a burst reaches that deep into
        the pool (seen in the chaos run). They reconnect on their next use."""
        pool = getattr(self._client, "connection_pool", None)  # a Cluster client has none
        if pool is not None:
            await pool.disconnect(inuse_connections=False)

    async def ping(self) -> None:
        """One round trip, to learn whether Redis answers (``StoreUnavailableError`` if not)."""
        await self._call(lambda r: r.ping())

    async def _script(self, which: str, keys: list[str], args: list[float]) -> Any:
        async def run(client: Any) -> Any:
            script = self._admit_script if which == "admit" else self._settle_script
            assert script is not None  # registered with the client
            return await script(keys=keys, args=args, client=client)

        return await self._call(run)

    async def close(self) -> None:
        client, self._client, self._loop = self._client, None, None
        if client is not None:
            await client.aclose()

    def _by_slot(
        self, bucket_ids: Sequence[str], budget_ids: Sequence[str]
    ) -> list[tuple[list[int], list[int]]]:
        """Bucket and budget indexes that one script may take together: all of them on one
        master, one group per slot on a Cluster."""
        n = len(bucket_ids)
        if not self._tags.spread:
            return [(list(range(n)), list(range(len(budget_ids))))]
        keys = [self.tat_key(i) for i in bucket_ids] + [self.spend_key(i) for i in budget_ids]
        groups = group_by_slot(keys).values()
        return [([i for i in g if i < n], [i - n for i in g if i >= n]) for g in groups]

    # --- limits and budgets -----------------------------------------------------------------
    async def admit(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> Verdict:
        if not buckets and not budgets:
            return Verdict(True)
        parts = self._by_slot([b.id for b in buckets], [d.id for d in budgets])
        if len(parts) == 1:
            return await self._admit_slot(buckets, budgets)
        taken = [([buckets[i] for i in bs], [budgets[j] for j in ds]) for bs, ds in parts]
        results = await asyncio.gather(
            *(self._admit_slot(bs, ds) for bs, ds in taken), return_exceptions=True
        )
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        refused = [r for r in results if isinstance(r, Verdict) and not r.allowed]
        if failed is not None or refused:
            given = [b for (bs, _), r in zip(taken, results, strict=True)
                     if isinstance(r, Verdict) and r.allowed for b in bs]  # fmt: skip
            await self._give_back(given)
            if failed is not None:
                raise failed
            order = [b.id for b in buckets] + [d.id for d in budgets]
            return min(refused, key=lambda v: _refusal_rank(v, order, len(buckets)))
        states: dict[int, BucketState] = {}
        for (bs, _), verdict in zip(parts, results, strict=True):
            assert isinstance(verdict, Verdict)
            states |= dict(zip(bs, verdict.buckets, strict=True))
        return Verdict(True, buckets=tuple(states[i] for i in range(len(buckets))))

    async def _admit_slot(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> Verdict:
        """One admit script over keys that share a slot."""
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

    async def _give_back(self, buckets: Sequence[Bucket]) -> None:
        """Return what a refused multi-slot admit took; if Redis fails now, the units stay
        taken (the limit errs on the safe side) until their bucket refills."""
        with contextlib.suppress(StoreUnavailableError):  # _call logged the outage
            await self.settle([(b, -b.cost) for b in buckets], [])

    async def settle(
        self, corrections: Sequence[tuple[Bucket, float]], spend: Sequence[tuple[Budget, float]]
    ) -> None:
        if not corrections and not spend:
            return
        parts = self._by_slot([b.id for b, _ in corrections], [d.id for d, _ in spend])
        await asyncio.gather(
            *(self._settle_slot([corrections[i] for i in bs], [spend[j] for j in ds])
              for bs, ds in parts)
        )  # fmt: skip

    async def _settle_slot(
        self, corrections: Sequence[tuple[Bucket, float]], spend: Sequence[tuple[Budget, float]]
    ) -> None:
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
        if self._tags.spread:
            values = await self._call(lambda r: r.mget_nonatomic(keys))
        else:
            values = await self._call(lambda r: r.mget(keys))
        return [float(v) if v is not None else 0.0 for v in values]

    # --- dynamic keys -----------------------------------------------------------------------
    async def save_key(self, record: KeyRecord) -> None:
        async def save(client: Any) -> None:
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


def _refusal_rank(verdict: Verdict, order: list[str], n_buckets: int) -> tuple[int, int]:
    """Which refusal to report, as one script would: budgets first, then buckets in order."""
    index = order.index(verdict.denied_by or "")
    return (1, index) if index < n_buckets else (0, index)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
