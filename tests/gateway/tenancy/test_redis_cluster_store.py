"""``RedisStore`` on a real 3-master Redis Cluster: what only a Cluster has. Owners' keys spread
over the masters while each script's keys stay in one slot; a request whose limits live in
several slots is still all-or-nothing, and exact across replicas.

The contract itself runs on the Cluster too (``test_store.py``'s ``redis-cluster`` store).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from switchyard.gateway.redis_client import slot
from switchyard.gateway.tenancy.redis_store import RedisStore
from switchyard.gateway.tenancy.store import Bucket, Budget
from tests.support.redis_topologies import RedisClusterSet

pytestmark = pytest.mark.anyio
MINUTE = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def replicas(redis_cluster: RedisClusterSet) -> AsyncIterator[tuple[RedisStore, RedisStore]]:
    """Two stores on the shared Cluster under a key prefix of this test's own."""
    prefix = f"t-{uuid.uuid4().hex[:12]}"
    first = RedisStore(redis_cluster.url, key_prefix=prefix, timeout_s=2.0)
    second = RedisStore(redis_cluster.url, key_prefix=prefix, timeout_s=2.0)
    yield first, second
    await first.close()
    await second.close()


async def test_keys_of_different_owners_spread_over_every_master_and_one_owners_share_a_slot(
    redis_cluster: RedisClusterSet, replicas: tuple[RedisStore, RedisStore]
) -> None:
    store, _ = replicas
    owners = [f"key:k{i}" for i in range(30)]
    for owner in owners:
        rpm, tpm = Bucket(f"{owner}:rpm", 60, MINUTE, 1), Bucket(f"{owner}:tpm", 600, MINUTE, 9)
        spend = Budget(f"{owner}:2026-12", 5.0, 0.1, 3600.0)
        keys = [store.tat_key(rpm.id), store.tat_key(tpm.id), store.spend_key(spend.id)]
        assert len({slot(k) for k in keys}) == 1, keys  # one owner: one script, one slot
        assert (await store.admit([rpm, tpm], [spend])).allowed
        await store.settle([(tpm, -4)], [(spend, 0.1)])

    masters = {redis_cluster.master_of(store.tat_key(f"{o}:rpm")).port for o in owners}
    assert len(masters) == 3  # the load spreads over every master
    assert store.record_key("a" * 64).startswith(f"{{{store._tags.prefix}}}:")


def apart(store: RedisStore, taken: list[str], pattern: str) -> str:
    """The first of ``pattern.format(i)`` whose key is in a slot none of ``taken`` is in (the
    random test prefix may put two owners in one slot, once in ~16,000 tries)."""
    slots = {slot(store.tat_key(t)) for t in taken}
    return next(p for i in range(100) if slot(store.tat_key(p := pattern.format(i))) not in slots)


async def test_a_refusal_in_one_slot_gives_back_what_the_other_slots_took(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    store, _ = replicas
    key = Bucket("key:k:rpm", 6, MINUTE, 1)
    model = Bucket(apart(store, [key.id], "model:m{}:rpm"), 2, MINUTE, 1)
    assert slot(store.tat_key(key.id)) != slot(store.tat_key(model.id))
    for _ in range(2):
        assert (await store.admit([key, model], [])).allowed
    refused = await store.admit([key, model], [])
    assert not refused.allowed and refused.denied_by == model.id
    left = [(await store.admit([key], [])).allowed for _ in range(5)]
    assert left == [True] * 4 + [False]  # 6 - 2: the refused request took nothing


async def test_two_replicas_admit_exactly_the_limit_when_a_request_spans_three_slots(
    replicas: tuple[RedisStore, RedisStore],
) -> None:
    store, _ = replicas
    limited = Bucket("key:k:rpm", 20, MINUTE, 1)
    day = 24 * 3600.0  # wide buckets that refill too slowly to blur the count below
    rpd = apart(store, [limited.id], "model:m{}:rpd")
    wide = [Bucket(rpd, 1000, day, 1),
            Bucket(apart(store, [limited.id, rpd], "model:n{}:tpd"), 10_000, day, 5)]  # fmt: skip
    assert len({slot(store.tat_key(b.id)) for b in [limited, *wide]}) == 3
    verdicts = await asyncio.gather(
        *(replicas[i % 2].admit([limited, *wide], []) for i in range(60))
    )
    assert sum(v.allowed for v in verdicts) == 20
    # Every refused request gave back what the wide buckets took: 20 requests' worth is gone.
    assert [round(s.remaining) for s in (await store.admit(wide, [])).buckets] == [979, 9_895]
