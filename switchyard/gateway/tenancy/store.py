"""The tenancy state store: rate-limit buckets (GCRA), spend counters and dynamic keys.

One interface, two implementations: ``MemoryStore`` here (one process; the default) and
``RedisStore`` (shared by every replica, atomic through Lua scripts). ``admit`` checks every
bucket and budget of a request and takes from all of them, or from none.

GCRA (generic cell rate algorithm): a bucket of ``limit`` units per ``period_s`` stores one
number, the theoretical arrival time (TAT). A request of ``cost`` units moves it to
``max(TAT, now) + cost * period/limit``, and is admitted when that is at most one period
ahead of now — so a full bucket admits exactly ``limit`` units at once, then refills evenly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from switchyard.gateway.state import StoreHealth
from switchyard.gateway.tenancy.keys import KeyRecord


@dataclass(frozen=True, slots=True)
class Bucket:
    id: str  # e.g. "key:key_ab12:rpm"
    limit: int  # units per period
    period_s: float
    cost: float  # units this request takes


# Budget, BucketState and Verdict are built per admitted request: plain slotted classes, as a
# frozen dataclass's __init__ costs about 1.3 µs more per instance (object.__setattr__).
@dataclass(slots=True)
class Budget:
    id: str  # e.g. "tenant:acme:2026-11"
    limit_usd: float
    estimate_usd: float  # what this request is expected to cost
    resets_in_s: float  # until the period ends and the counter starts again

    @property
    def ttl_s(self) -> int:
        return int(self.resets_in_s) + 60  # the counter outlives its period a little


@dataclass(slots=True)
class BucketState:
    remaining: float  # units left after this request
    reset_s: float  # until the bucket is full again


@dataclass(slots=True)
class Verdict:
    allowed: bool
    denied_by: str | None = None  # the bucket or budget id that refused
    retry_after_s: float = 0.0
    buckets: tuple[BucketState, ...] = ()


def gcra(tat: float, now: float, bucket: Bucket) -> tuple[float, float]:
    """(new TAT, seconds until admissible; 0 means admit now)."""
    interval = bucket.period_s / bucket.limit
    new_tat = (tat if tat > now else now) + bucket.cost * interval
    wait = new_tat - bucket.period_s - now
    return new_tat, wait if wait > 0.0 else 0.0  # conditionals, not max(): the request path


def bucket_state(new_tat: float, now: float, bucket: Bucket) -> BucketState:
    interval = bucket.period_s / bucket.limit
    ahead = new_tat - now if new_tat > now else 0.0
    left = (bucket.period_s - ahead) / interval
    return BucketState(left if left > 0.0 else 0.0, ahead)


class TenancyStore(Protocol):
    health: StoreHealth

    async def admit(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> Verdict: ...

    async def settle(
        self, corrections: Sequence[tuple[Bucket, float]], spend: Sequence[tuple[Budget, float]]
    ) -> None:
        """Give back or take more units (``cost`` difference) and add real spend."""

    async def spend(self, budget_ids: Sequence[str]) -> list[float]: ...

    async def save_key(self, record: KeyRecord) -> None: ...

    async def load_key(self, key_hash: str) -> KeyRecord | None: ...

    async def list_keys(self) -> list[KeyRecord]: ...

    async def close(self) -> None: ...


class MemoryStore:
    """In-process store: exact for one process (no await inside a decision)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._tat: dict[str, float] = {}
        self._spend: dict[str, tuple[float, float]] = {}  # id -> (usd, expires at)
        self._keys: dict[str, KeyRecord] = {}
        self._clock = clock
        self.health = StoreHealth("tenancy")  # in process: always up

    async def admit(self, buckets: Sequence[Bucket], budgets: Sequence[Budget]) -> Verdict:
        now = self._clock()
        for budget in budgets:
            if self._spent(budget.id, now) + budget.estimate_usd > budget.limit_usd:
                return Verdict(False, budget.id, budget.resets_in_s)
        tats, new = self._tat, []
        for bucket in buckets:
            tat, wait = gcra(tats.get(bucket.id, 0.0), now, bucket)
            if wait > 0:
                return Verdict(False, bucket.id, wait)
            new.append(tat)
        states = []
        for bucket, tat in zip(buckets, new, strict=True):
            tats[bucket.id] = tat
            states.append(bucket_state(tat, now, bucket))
        return Verdict(True, None, 0.0, tuple(states))

    async def settle(
        self, corrections: Sequence[tuple[Bucket, float]], spend: Sequence[tuple[Budget, float]]
    ) -> None:
        now = self._clock()
        for bucket, delta in corrections:
            interval = bucket.period_s / bucket.limit
            tat = self._tat.get(bucket.id, now) + delta * interval
            self._tat[bucket.id] = max(tat, now) if delta < 0 else tat
        for budget, usd in spend:
            self._spend[budget.id] = (self._spent(budget.id, now) + usd, now + budget.ttl_s)

    async def spend(self, budget_ids: Sequence[str]) -> list[float]:
        now = self._clock()
        return [self._spent(i, now) for i in budget_ids]

    def _spent(self, budget_id: str, now: float) -> float:
        usd, expires = self._spend.get(budget_id, (0.0, 0.0))
        return usd if expires > now else 0.0

    async def save_key(self, record: KeyRecord) -> None:
        self._keys[record.key_hash] = record

    async def load_key(self, key_hash: str) -> KeyRecord | None:
        return self._keys.get(key_hash)

    async def list_keys(self) -> list[KeyRecord]:
        return list(self._keys.values())

    async def close(self) -> None:
        return None


def open_store(
    redis_url: str | None, key_prefix: str, timeout_s: float, mode: str = "auto"
) -> TenancyStore:
    """Redis when a URL is configured (shared by every replica), else in-process."""
    if redis_url is None:
        return MemoryStore()
    from switchyard.gateway.tenancy.redis_store import RedisStore

    store: TenancyStore = RedisStore(redis_url, key_prefix, timeout_s, mode=mode)
    return store
