"""bench/slo_bench.py in simulated time: the replicas' prefix caches are used (an empty
cache once read as false, so the shared-prefix workload ran with no cache at all), hit rates
stay under the oracle's, and prefix scoring finds more of the cache than least-in-flight."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.support.bench import bench_module


@pytest.fixture(scope="module")
def slo_bench() -> Any:
    return bench_module("slo_bench")


def _run(slo_bench: Any, balancer: str, *extra: str) -> dict[str, Any]:
    a = slo_bench.parse_args(["--duration", "6", "--grace", "6", *extra])
    out: dict[str, Any] = slo_bench.run(balancer, "80%", "prefix", 1, a)
    return out


def test_the_shared_prefix_workload_hits_the_replicas_caches_below_the_oracle(
    slo_bench: Any,
) -> None:
    lif = _run(slo_bench, "least_in_flight")
    assert 0.3 < lif["hit_rate"] < lif["oracle_hit_rate"]


def test_prefix_scoring_finds_more_of_the_cache_than_least_in_flight(slo_bench: Any) -> None:
    lif = _run(slo_bench, "least_in_flight", "--systems", "0")
    scored = _run(slo_bench, "slo_prefix", "--systems", "0")
    assert scored["hit_rate"] > 1.2 * lif["hit_rate"]
    assert scored["hit_rate"] <= scored["oracle_hit_rate"]


def test_a_session_of_its_own_system_prompt_shares_nothing_with_another(slo_bench: Any) -> None:
    prompts = slo_bench.session_prompts(40, random.Random(3), systems=0, doc_tokens=100)
    starts = {p[:300] for p in prompts}
    opened = sum(1 for p in prompts if len(p) == 300 + 120)
    assert len(starts) == opened  # one system prompt per session opened


def test_sessions_retrieving_from_a_shared_corpus_share_its_most_read_documents(
    slo_bench: Any,
) -> None:
    prompts = slo_bench.session_prompts(200, random.Random(4), systems=1, doc_tokens=50, docs=20)
    opened = [p for p in prompts if len(p) == 300 + 50 + 20]
    docs = [p[300:350] for p in opened]
    assert 1 < len(set(docs)) < len(opened)  # documents recur across sessions
    top = max(set(docs), key=docs.count)
    assert docs.count(top) > len(opened) / 10  # the most read one is read often


def test_a_session_closes_after_its_turns(slo_bench: Any) -> None:
    prompts = slo_bench.session_prompts(
        300, random.Random(5), systems=0, doc_tokens=10, turns_per_session=2
    )
    first = 300 + 10 + 20
    assert {len(p) for p in prompts} == {first, first + 74}  # opened, then one more turn
