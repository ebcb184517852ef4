"""Prefix-aware replica choice without a network: a repeated prefix goes back to the replica
expected to hold it unless that replica is much busier; without a warm replica the choice is
the load-aware one; a pool of one replica never hashes or records anything."""

from __future__ import annotations

import random
from typing import Any

from switchyard.backends.breaker import CircuitBreaker
from switchyard.backends.client import OpenAICompatBackend, Timeouts
from switchyard.backends.engine_state import EngineSnapshot
from switchyard.backends.pool import Endpoint, EndpointPool
from switchyard.backends.prefix_blocks import request_blocks
from switchyard.backends.prefix_index import PrefixIndex
from switchyard.backends.replica import EndpointView, PrefixCosts, ReplicaPolicy, choose_replica

NOW = 1000.0
POLICY = ReplicaPolicy(choices=2)
DOC = "A retrieved document about replica scheduling and prefix caches. " * 40  # ~650 tokens


def snap(waiting: int = 0, running: int = 0) -> EngineSnapshot:
    return EngineSnapshot(waiting=waiting, running=running, scraped_at=NOW, max_num_seqs=8)


def views(*loads: tuple[int, int]) -> list[EndpointView]:
    return [EndpointView(f"r{i}", snapshot=snap(w, r), service_s=2.0) for i, (w, r) in
            enumerate(loads)]  # fmt: skip


def test_the_warm_replica_wins_over_an_equally_loaded_cold_one() -> None:
    vs = views((0, 2), (0, 2), (0, 2))
    costs = PrefixCosts(prefill_s=[0.3, 0.3, 0.01], warm=[2])
    for seed in range(20):
        choice = choose_replica(vs, random.Random(seed), now=NOW, policy=POLICY, prefix=costs)
        assert choice is not None and choice.index == 2 and choice.by_prefix


def test_a_much_busier_warm_replica_loses_to_an_idle_cold_one() -> None:
    vs = views((0, 0), (6, 8))  # r1 holds the prefix but queues 6 behind a full batch
    costs = PrefixCosts(prefill_s=[0.3, 0.01], warm=[1])
    choice = choose_replica(vs, random.Random(1), now=NOW, policy=POLICY, prefix=costs)
    assert choice is not None and choice.index == 0 and not choice.by_prefix


def test_a_warm_replica_that_may_not_take_traffic_is_ignored() -> None:
    vs = views((0, 0), (0, 0))
    vs[1] = EndpointView("r1", allows=False, snapshot=snap())
    costs = PrefixCosts(prefill_s=[0.3, 0.0], warm=[1])
    choice = choose_replica(vs, random.Random(1), now=NOW, policy=POLICY, prefix=costs)
    assert choice is not None and choice.index == 0


def endpoint(name: str, **extra: Any) -> Endpoint:
    session: Any = None  # pick() never sends
    backend = OpenAICompatBackend(f"http://{name}/v1", session, Timeouts())
    return Endpoint(backend, CircuitBreaker(1, 60), **extra)


def pool_of(*names: str, index: PrefixIndex | None = None) -> EndpointPool:
    known = {f"http://{n}/v1": snap(0, 1) for n in names}
    return EndpointPool(
        "m", [endpoint(n) for n in names], balancer="switchyard", snapshots=known.get,
        policy=ReplicaPolicy(choices=2), rng=random.Random(5), clock=lambda: NOW,
        prefix_index=index,
    )  # fmt: skip


def chat(system: str, question: str) -> dict[str, Any]:
    return {"messages": [{"role": "system", "content": system},
                         {"role": "user", "content": question}]}  # fmt: skip


def test_requests_sharing_a_document_go_back_to_the_replica_it_was_sent_to() -> None:
    index = PrefixIndex(max_blocks=10_000)
    pool = pool_of("a", "b", "c", "d", index=index)
    homes = set()
    for i in range(12):
        blocks = request_blocks(chat(DOC, f"Question {i}?"), chat=True)
        chosen = pool.pick(prefix=blocks)
        assert chosen is not None
        homes.add(chosen.name)
    assert len(homes) == 1
    first = request_blocks(chat(DOC, "Question 0?"), chat=True)
    assert first is not None and index.matched(first.hashes) == {homes.pop(): len(first.hashes)}


def test_without_an_index_or_with_one_replica_prompts_are_not_scored() -> None:
    assert not pool_of("a", "b").scores_prefixes
    index = PrefixIndex(max_blocks=100)
    single = pool_of("a", index=index)
    assert not single.scores_prefixes
    assert pool_of("a", "b", index=index).scores_prefixes
    other = EndpointPool("m", [endpoint("a"), endpoint("b")], balancer="least_in_flight",
                         prefix_index=index)  # fmt: skip
    assert not other.scores_prefixes  # only the switchyard balancer scores prefixes


def test_the_configured_prefill_rate_weighs_the_cache_against_the_wait() -> None:
    # Same load; "a" holds the prefix but prefills 10x slower than "b" would from scratch.
    index = PrefixIndex(max_blocks=10_000)
    pool = EndpointPool(
        "m", [endpoint("a", prefill_s_per_token=0.01), endpoint("b", prefill_s_per_token=1e-6)],
        balancer="switchyard", snapshots=lambda _: snap(0, 1), rng=random.Random(1),
        clock=lambda: NOW, prefix_index=index,
    )  # fmt: skip
    blocks = request_blocks(chat(DOC, "Q?"), chat=True)
    assert blocks is not None
    index.record("http://a/v1", blocks.hashes[:5], capacity_blocks=1000)  # a third of it
    chosen = pool.pick(prefix=blocks)
    assert chosen is not None and chosen.name == "http://b/v1"
