"""The ``TenancyStore`` contract, run on both stores: ``MemoryStore`` (the reference),
``RedisStore`` on a private ``redis-server`` and on a real 3-master Redis Cluster. Then what
only Redis has: state shared by several replicas, Redis going away and coming back, and a
single-node client's keys in one Redis Cluster slot.

Bucket limits are chosen so that one unit takes a whole number of seconds (``period/limit``):
the GCRA arithmetic is then exact and "exactly N units" holds without rounding slack.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from switchyard.gateway.state import StoreUnavailableError
from switchyard.gateway.tenancy.config import Limits
from switchyard.gateway.tenancy.keys import KeyRecord
from switchyard.gateway.tenancy.redis_store import RedisStore
from switchyard.gateway.tenancy.store import (
    Bucket,
    Budget,
    MemoryStore,
    TenancyStore,
    Verdict,
)
from tests.support.redis import RedisServer, command, redis_running
from tests.support.redis_topologies import RedisClusterSet

pytestmark = pytest.mark.anyio

MINUTE = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[TenancyStore]:
    """Each contract test runs once per store; a Redis store gets a fresh server, a Redis
    Cluster store a fresh key prefix on the shared 3-master cluster."""
    made: TenancyStore
    if request.param == "memory":
        made = MemoryStore()
    elif request.param == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisStore(server.url)
    else:
        cluster: RedisClusterSet = request.getfixturevalue("redis_cluster")
        made = RedisStore(cluster.url, key_prefix=f"contract-{uuid.uuid4().hex[:12]}")
    yield made
    await made.close()


@pytest.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    """Two stores on one Redis, as two gateway replicas have. Their timeout is generous: a
    burst of concurrent admissions opens dozens of connections at once, which can take longer
    than the default 0.25 s on a loaded CI machine; these tests are about exactness."""
    first, second = (RedisStore(redis_server.url, timeout_s=2.0) for _ in "ab")
    yield first, second
    await first.close()
    await second.close()


def bucket(limit: int, cost: float = 1, name: str = "key:k:rpm", period: float = MINUTE) -> Bucket:
    return Bucket(name, limit, period, cost)


def budget(limit: float, estimate: float, name: str = "key:k:2026-11") -> Budget:
    return Budget(name, limit, estimate, resets_in_s=3600.0)


async def admitted(store: TenancyStore, buckets: list[Bucket], times: int) -> int:
    """How many of ``times`` admissions in a row were allowed."""
    return sum([(await store.admit(buckets, [])).allowed for _ in range(times)])


def record(name: str, key_hash: str, **fields: object) -> KeyRecord:
    return KeyRecord.model_validate({"name": name, "key_hash": key_hash, **fields})


# --- rate limits (GCRA buckets) -----------------------------------------------------------


async def test_a_bucket_admits_exactly_its_limit_at_once_then_refuses_until_one_unit_refills(
    store: TenancyStore,
) -> None:
    rpm = bucket(6)  # one request per 10 s
    verdicts = [await store.admit([rpm], []) for _ in range(6)]
    assert all(v.allowed for v in verdicts)
    assert [round(v.buckets[0].remaining) for v in verdicts] == [5, 4, 3, 2, 1, 0]

    refused = await store.admit([rpm], [])
    assert not refused.allowed
    assert refused.denied_by == "key:k:rpm"
    assert 9.0 < refused.retry_after_s <= 10.0  # until one request has refilled
    assert refused.buckets == ()


async def test_the_verdict_reports_what_is_left_and_when_the_bucket_is_full_again(
    store: TenancyStore,
) -> None:
    verdict = await store.admit([bucket(6, cost=2), bucket(60, cost=15, name="key:k:tpm")], [])
    assert verdict.allowed
    rpm, tpm = verdict.buckets
    assert rpm.remaining == pytest.approx(4) and rpm.reset_s == pytest.approx(20)
    assert tpm.remaining == pytest.approx(45) and tpm.reset_s == pytest.approx(15)


async def test_a_bucket_refills_evenly_after_a_refusal(store: TenancyStore) -> None:
    fast = bucket(2, period=1.0)  # one unit per 0.5 s
    assert await admitted(store, [fast], 3) == 2
    refused = await store.admit([fast], [])
    assert not refused.allowed and 0 < refused.retry_after_s <= 0.5
    await asyncio.sleep(refused.retry_after_s + 0.05)
    assert (await store.admit([fast], [])).allowed
    assert not (await store.admit([fast], [])).allowed


async def test_a_request_costing_more_than_is_left_is_refused_but_a_smaller_one_fits(
    store: TenancyStore,
) -> None:
    assert (await store.admit([bucket(60, cost=50, name="t")], [])).allowed
    too_big = await store.admit([bucket(60, cost=20, name="t")], [])
    assert not too_big.allowed
    assert 9.0 < too_big.retry_after_s <= 10.0  # 10 units short, one unit a second
    assert (await store.admit([bucket(60, cost=10, name="t")], [])).allowed


async def test_a_refusal_by_the_second_bucket_takes_nothing_from_the_first(
    store: TenancyStore,
) -> None:
    wide, narrow = bucket(6, name="key:k:rpm"), bucket(2, name="model:m:rpm")
    assert await admitted(store, [wide, narrow], 2) == 2
    refused = await store.admit([wide, narrow], [])
    assert not refused.allowed and refused.denied_by == "model:m:rpm"
    assert await admitted(store, [wide], 5) == 4  # 6 - 2: the refusal took nothing


async def test_concurrent_admissions_take_exactly_the_limit(store: TenancyStore) -> None:
    rpm = bucket(20)
    verdicts = await asyncio.gather(*(store.admit([rpm], []) for _ in range(50)))
    assert sum(v.allowed for v in verdicts) == 20


async def test_buckets_are_separate_by_id(store: TenancyStore) -> None:
    assert await admitted(store, [bucket(2, name="key:a:rpm")], 3) == 2
    assert await admitted(store, [bucket(2, name="key:b:rpm")], 3) == 2


# --- budgets ---------------------------------------------------------------------------


async def test_a_budget_refuses_when_spend_plus_the_estimate_exceeds_its_limit(
    store: TenancyStore,
) -> None:
    assert (await store.admit([], [budget(1.0, 0.5)])).allowed  # admitting spends nothing
    await store.settle([], [(budget(1.0, 0.5), 0.7)])
    assert await store.spend(["key:k:2026-11"]) == [pytest.approx(0.7)]

    assert (await store.admit([], [budget(1.0, 0.2)])).allowed  # 0.9 <= 1.0
    refused = await store.admit([], [budget(1.0, 0.4)])  # 1.1 > 1.0
    assert not refused.allowed
    assert refused.denied_by == "key:k:2026-11"
    assert refused.retry_after_s == 3600.0  # when the period ends


async def test_settle_adds_spend_to_every_budget_of_the_request(store: TenancyStore) -> None:
    key, tenant = budget(5.0, 0.0), budget(5.0, 0.0, name="tenant:acme:2026-11")
    await store.settle([], [(key, 0.25), (tenant, 0.25)])
    await store.settle([], [(key, 1.5), (tenant, 1.5)])
    assert await store.spend([key.id, tenant.id, "tenant:other:2026-11"]) == [
        pytest.approx(1.75),
        pytest.approx(1.75),
        0.0,
    ]
    assert await store.spend([]) == []


async def test_the_second_budget_can_refuse_and_then_no_budget_or_bucket_is_touched(
    store: TenancyStore,
) -> None:
    key, tenant = budget(10.0, 0.5), budget(1.0, 0.5, name="tenant:acme:2026-11")
    await store.settle([], [(tenant, 0.9)])
    rpm = bucket(2)
    refused = await store.admit([rpm], [key, tenant])
    assert not refused.allowed and refused.denied_by == "tenant:acme:2026-11"
    assert await admitted(store, [rpm], 3) == 2  # the bucket is still full
    assert await store.spend([key.id]) == [0.0]


# --- settlement: correcting buckets to real usage ----------------------------------------


async def test_settle_gives_units_back_when_a_request_used_fewer(store: TenancyStore) -> None:
    tpm = bucket(60, cost=50, name="key:k:tpm")  # one token a second
    assert (await store.admit([tpm], [])).allowed
    await store.settle([(tpm, -40)], [])  # it used 10, not 50
    assert (await store.admit([bucket(60, cost=50, name="key:k:tpm")], [])).allowed
    assert not (await store.admit([bucket(60, cost=1, name="key:k:tpm")], [])).allowed


async def test_settle_takes_more_when_a_request_used_more(store: TenancyStore) -> None:
    tpm = bucket(60, cost=10, name="key:k:tpm")
    assert (await store.admit([tpm], [])).allowed
    await store.settle([(tpm, 45)], [])  # it used 55, not 10
    assert not (await store.admit([bucket(60, cost=6, name="key:k:tpm")], [])).allowed
    assert (await store.admit([bucket(60, cost=5, name="key:k:tpm")], [])).allowed


async def test_a_refund_never_moves_the_bucket_below_now(store: TenancyStore) -> None:
    rpm = bucket(6)
    assert (await store.admit([rpm], [])).allowed
    await store.settle([(rpm, -100)], [])  # far more back than was taken: the bucket is full
    await store.settle([(rpm, 3)], [])  # and 3 taken now count in full
    assert await admitted(store, [rpm], 6) == 3


async def test_settling_an_unknown_bucket_starts_from_a_full_one(store: TenancyStore) -> None:
    await store.settle([(bucket(6, name="new"), 2)], [])
    assert await admitted(store, [bucket(6, name="new")], 6) == 4


# --- dynamic keys ---------------------------------------------------------------------------


async def test_keys_round_trip_through_save_load_and_list(store: TenancyStore) -> None:
    first = record("first", "a" * 64, tenant="acme", models=("m",), limits=Limits(rpm=10))
    second = record("second", "b" * 64, created_at=first.created_at + 1)
    await store.save_key(first)
    await store.save_key(second)

    assert await store.load_key("a" * 64) == first
    assert await store.load_key("c" * 64) is None
    assert await store.list_keys() == [first, second]

    revoked = first.model_copy(update={"revoked": True})
    await store.save_key(revoked)
    loaded = await store.load_key("a" * 64)
    assert loaded is not None and loaded.revoked
    assert [k.name for k in await store.list_keys()] == ["first", "second"]


# --- Redis only: several replicas ------------------------------------------------------------


async def test_two_replicas_share_buckets_budgets_and_keys(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    one, two = replicas
    rpm = bucket(6)
    taken = [(await (one if i % 2 else two).admit([rpm], [])).allowed for i in range(8)]
    assert taken == [True] * 6 + [False] * 2

    await one.settle([], [(budget(1.0, 0.0), 0.95)])
    assert await two.spend(["key:k:2026-11"]) == [pytest.approx(0.95)]
    assert not (await two.admit([], [budget(1.0, 0.1)])).allowed

    key = record("shared", "d" * 64)
    await one.save_key(key)
    assert await two.load_key("d" * 64) == key
    assert await two.list_keys() == [key]


async def test_concurrent_admissions_on_two_replicas_take_exactly_the_limit(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    rpm = bucket(25)
    verdicts = await asyncio.gather(*(replicas[i % 2].admit([rpm], []) for i in range(80)))
    assert sum(v.allowed for v in verdicts) == 25


async def test_the_key_prefix_separates_deployments_on_one_redis(
    redis_server: RedisServer,
) -> None:
    blue, green = RedisStore(redis_server.url, "blue"), RedisStore(redis_server.url, "green")
    try:
        assert await admitted(blue, [bucket(2)], 3) == 2
        assert await admitted(green, [bucket(2)], 3) == 2
    finally:
        await blue.close()
        await green.close()


def test_a_store_built_before_the_event_loop_starts_works_in_each_loop_it_is_used_in(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url)  # as create_app builds it, before uvicorn's loop

    async def take() -> Verdict:
        try:
            return await store.admit([bucket(6)], [])
        finally:
            await store.close()

    assert asyncio.run(take()).buckets[0].remaining == pytest.approx(5, abs=0.1)
    assert asyncio.run(take()).buckets[0].remaining == pytest.approx(4, abs=0.1)


# --- Redis only: Redis goes away and comes back ------------------------------------------------

Operation = Callable[[RedisStore], Awaitable[object]]
OPERATIONS: dict[str, Operation] = {
    "admit": lambda s: s.admit([bucket(6)], [budget(1.0, 0.1)]),
    "settle": lambda s: s.settle([(bucket(6), 1)], [(budget(1.0, 0.1), 0.1)]),
    "spend": lambda s: s.spend(["key:k:2026-11"]),
    "save_key": lambda s: s.save_key(record("k", "e" * 64)),
    "load_key": lambda s: s.load_key("e" * 64),
    "list_keys": lambda s: s.list_keys(),
}


async def unavailable(call: Awaitable[object]) -> bool:
    try:
        await call
    except StoreUnavailableError:
        return True
    return False


async def test_with_redis_down_every_operation_raises_store_unavailable_then_works_again(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url)
    try:
        assert (await store.admit([bucket(6)], [])).allowed  # pooled connections exist
        redis_server.stop()
        assert [name for name, op in OPERATIONS.items() if not await unavailable(op(store))] == []

        redis_server.start()  # same port, empty, no restart of the store
        for operation in OPERATIONS.values():
            await operation(store)
        assert await store.load_key("e" * 64) is not None
        assert await admitted(store, [bucket(6, name="fresh")], 7) == 6
    finally:
        await store.close()


async def test_a_frozen_redis_fails_within_the_timeout_and_is_used_again_once_it_answers(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url, timeout_s=0.2)
    try:
        assert (await store.admit([bucket(6)], [])).allowed
        redis_server.pause()
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await store.admit([bucket(6)], [])
        assert time.monotonic() - started < 1.0
        redis_server.resume()
        assert (await store.admit([bucket(6)], [])).allowed
    finally:
        redis_server.resume()
        await store.close()


async def test_a_full_redis_refuses_writes_as_unavailable_and_nothing_is_half_written(
    redis_server: RedisServer,
) -> None:
    store = RedisStore(redis_server.url)
    try:
        command(redis_server.port, "CONFIG", "SET", "maxmemory", "1")  # every write: OOM
        with pytest.raises(StoreUnavailableError, match="maxmemory"):
            await store.admit([bucket(6)], [])
        with pytest.raises(StoreUnavailableError):
            await store.settle([(bucket(6), 1)], [(budget(1.0, 0.0), 0.5)])
        assert await store.spend(["key:k:2026-11"]) == [0.0]  # reads still work

        command(redis_server.port, "CONFIG", "SET", "maxmemory", "0")
        assert await admitted(store, [bucket(6)], 7) == 6  # the refused admit took nothing
    finally:
        await store.close()


# --- Redis only: on one master every key keeps the layout earlier versions wrote --------------


async def test_on_one_master_every_key_keeps_the_prefix_tag_so_upgrades_keep_their_counters(
    tmp_path: Path,
) -> None:
    with redis_running(tmp_path, cluster=True) as cluster:
        raw = Redis.from_url(cluster.url, decode_responses=True)
        store = RedisStore(cluster.url)
        try:
            with pytest.raises(
                ResponseError, match="don't hash to the same slot"
            ):  # the check is real
                await raw.mget("{a}:x", "{b}:x")

            buckets = [bucket(6, name="key:k:rpm"), bucket(60, 5, name="model:m:tpm")]
            budgets = [budget(1.0, 0.1), budget(2.0, 0.1, name="tenant:acme:2026-11")]
            assert (await store.admit(buckets, budgets)).allowed
            await store.settle([(buckets[1], -2)], [(budgets[0], 0.1), (budgets[1], 0.1)])
            assert await store.spend([b.id for b in budgets]) == [pytest.approx(0.1)] * 2
            await store.save_key(record("k", "f" * 64))
            assert [k.name for k in await store.list_keys()] == ["k"]

            keys = [str(k) for k in await raw.keys("*")]
            assert len(keys) == 6 and all(k.startswith("{switchyard}:") for k in keys), keys
            assert {"{switchyard}:tat:key:k:rpm", "{switchyard}:spend:tenant:acme:2026-11"} <= set(
                keys
            )  # the names earlier versions wrote
        finally:
            await store.close()
            await raw.aclose()
