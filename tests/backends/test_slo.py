"""SLO-aware replica choice (``switchyard.backends.slo``) without a network: the predicted
chance of starting in time ranks a slow or loaded replica below a fast idle one, a pool of
replicas all over budget sheds a first attempt (never a retry, never while a replica whose
speed is not known yet has room), streams not started yet count as prefills ahead, a
request's own target replaces the pool's, and bad targets are refused."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from switchyard.backends.breaker import CircuitBreaker
from switchyard.backends.client import OpenAICompatBackend, Timeouts
from switchyard.backends.engine_state import EngineSnapshot
from switchyard.backends.pool import SLO_SAMPLE, Endpoint, EndpointPool
from switchyard.backends.replica import EndpointView
from switchyard.backends.slo import (
    SloPolicy,
    SloShedError,
    choose_for_slo,
    meet_chance,
    predict,
)

NOW = 1000.0


def snap(waiting: int = 0, running: int = 0, seqs: int = 8) -> EngineSnapshot:
    return EngineSnapshot(waiting=waiting, running=running, scraped_at=NOW, max_num_seqs=seqs)


def test_the_chance_of_starting_in_time_falls_with_the_slots_to_wait_for() -> None:
    chances = [meet_chance(k, rate=10.0, budget_s=1.0) for k in range(0, 40)]
    assert chances[0] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(chances))
    assert chances[5] > 0.9 and chances[10] == pytest.approx(0.54, abs=0.01)
    assert chances[-1] < 1e-6
    # The exact Erlang sum and its approximation agree where one hands over to the other.
    assert meet_chance(24, 10.0, 2.4) == pytest.approx(meet_chance(25, 10.0, 2.5), abs=0.01)
    assert meet_chance(1, 10.0, 0.0) == 0.0
    assert meet_chance(1, 1.0, 1.0) == pytest.approx(1 - math.exp(-1))


def test_a_slow_replica_ranks_below_a_fast_idle_one_even_with_fewer_requests() -> None:
    fast = EndpointView("fast", snapshot=snap(0, 6, seqs=32), service_s=0.7)
    slow = EndpointView("slow", snapshot=snap(1, 4, seqs=4), service_s=2.4)
    assert predict(fast, NOW, 0.0).chance == 1.0
    assert predict(slow, NOW, 0.0).wait_s == pytest.approx(2 * 2.4 / 4)
    choice = choose_for_slo([slow, fast], now=NOW)
    assert choice is not None and choice.name == "fast" and not choice.shed


def test_a_loaded_replica_ranks_below_an_idle_one_and_a_long_prefill_counts() -> None:
    loaded = EndpointView("loaded", snapshot=snap(20, 8), service_s=2.0)
    idle = EndpointView("idle", snapshot=snap(0, 0), service_s=2.0)
    choice = choose_for_slo([loaded, idle], now=NOW)
    assert choice is not None and choice.name == "idle"
    # The same idle replica without the prompt cached: 3 s of prefill misses a 1 s target,
    # so the loaded one (prompt cached) ranks first, and neither is likely to meet it.
    choice = choose_for_slo([loaded, idle], now=NOW, prefill_s=[0.0, 3.0])
    assert choice is not None and choice.prediction.chance < 0.8
    # But the idle replica can start it at once: a long prompt is not shed for its length.
    assert not choice.shed


def test_a_prompt_too_long_for_the_target_is_served_on_an_idle_fleet_and_shed_under_load() -> None:
    idle = [EndpointView(f"r{i}", snapshot=snap(0, 1), service_s=2.0) for i in range(3)]
    choice = choose_for_slo(idle, now=NOW, prefill_s=[2.5, 2.5, 1.5])
    assert choice is not None and choice.name == "r2" and not choice.shed
    assert choice.prediction.chance == 0.0 and choice.prediction.start_chance == 1.0
    busy = [EndpointView(f"r{i}", snapshot=snap(30, 8), service_s=2.0) for i in range(3)]
    choice = choose_for_slo(busy, now=NOW, prefill_s=[2.5, 2.5, 1.5])
    assert choice is not None and choice.shed  # the queues, not the prompt, refuse it


def test_gateway_sends_since_the_scrape_count_as_load() -> None:
    before = EndpointView("r", snapshot=snap(0, 8), service_s=2.0)
    after = EndpointView("r", snapshot=snap(0, 8), service_s=2.0, sent_since_snapshot=16)
    assert predict(before, NOW, 0.0).chance > 0.5 > predict(after, NOW, 0.0).chance


def test_every_replica_over_budget_is_shed_unless_a_cold_one_has_room() -> None:
    busy = [EndpointView(f"r{i}", snapshot=snap(30, 8), service_s=2.0) for i in range(3)]
    choice = choose_for_slo(busy, now=NOW)
    assert choice is not None and choice.shed
    # No request finished on "new" yet: with a free slot there, nothing is shed.
    cold = [*busy[:2], EndpointView("new", snapshot=snap(0, 7))]
    choice = choose_for_slo(cold, now=NOW)
    assert choice is not None and not choice.shed and choice.name == "new"
    # A cold replica with a queue of its own does not stop the shedding (a burst that
    # arrives before the slowest replica ever finished a request is shed all the same).
    queued = [*busy[:2], EndpointView("new", snapshot=snap(30, 8))]
    choice = choose_for_slo(queued, now=NOW)
    assert choice is not None and choice.shed
    choice = choose_for_slo(busy, now=NOW, slo=SloPolicy(shed=False))
    assert choice is not None and not choice.shed


def test_streams_sent_but_not_started_are_prefills_ahead_even_with_free_slots() -> None:
    idle = EndpointView("r", snapshot=snap(0, 2), service_s=2.0)
    starting = EndpointView("r", snapshot=snap(0, 2), service_s=2.0, starting=6)
    assert predict(idle, NOW, 0.05, queued_prefill_s=0.2).ttft_s == pytest.approx(0.05)
    late = predict(starting, NOW, 0.05, queued_prefill_s=0.2)
    assert late.ttft_s == pytest.approx(0.05 + 6 * 0.2) and not late.queued
    assert late.chance == 0.0  # 1.25 s of prefills ahead: a 1 s target is out of reach
    # The queue's own count counts when it is the larger (another gateway's requests).
    queued = EndpointView("r", snapshot=snap(4, 8), service_s=2.0, starting=1)
    assert predict(queued, NOW, 0.0, queued_prefill_s=0.1).wait_s == pytest.approx(
        5 * 2.0 / 8 + 5 * 0.1
    )


def test_no_replica_that_may_take_traffic_means_no_choice() -> None:
    views = [EndpointView("r", allows=False), EndpointView("w", weight=0)]
    assert choose_for_slo(views, now=NOW) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("ttft_s", 0.0), ("shed_below", 1.5), ("miss_cost_s", -1.0), ("itl_s", 0.0)],
)
def test_bad_targets_are_refused_naming_the_field(field: str, value: float) -> None:
    settings: dict[str, Any] = {field: value}
    with pytest.raises(ValueError, match=field):
        SloPolicy(**settings)


def itl_snap(running: int, seqs: int, itl_s: float | None) -> EngineSnapshot:
    return EngineSnapshot(0, running, NOW, max_num_seqs=seqs, itl_s=itl_s)


def test_a_replica_decoding_slower_than_the_itl_target_loses_to_one_that_starts_later() -> None:
    # "full" must free a slot first (a likely miss of the TTFT target only with an ITL
    # target in play); "crawl" has room but decodes at 80 ms a token.
    full = EndpointView("full", snapshot=itl_snap(8, 8, 0.02), service_s=2.0)
    crawl = EndpointView("crawl", snapshot=itl_snap(1, 8, 0.08), service_s=6.0)
    plain = choose_for_slo([full, crawl], now=NOW)
    assert plain is not None and plain.name == "crawl"  # no ITL target: the sooner start
    itl = SloPolicy(itl_s=0.05)
    choice = choose_for_slo([full, crawl], now=NOW, slo=itl)
    assert choice is not None and choice.name == "full"
    assert choice.prediction.itl_s == 0.02 and not choice.shed  # chance 1 - e^-4 = 0.98


def test_with_an_itl_target_the_replicas_within_it_decide_the_shedding() -> None:
    # The one replica within the ITL target is unlikely to start in time (1 - e^-2 = 0.86):
    # a request the slow decoder could start at once is shed all the same.
    full = EndpointView("full", snapshot=itl_snap(8, 8, 0.02), service_s=4.0)
    crawl = EndpointView("crawl", snapshot=itl_snap(1, 8, 0.08), service_s=6.0)
    choice = choose_for_slo([full, crawl], now=NOW, slo=SloPolicy(itl_s=0.05))
    assert choice is not None and choice.shed
    untargeted = choose_for_slo([full, crawl], now=NOW)
    assert untargeted is not None and not untargeted.shed


def test_an_unknown_itl_is_not_a_miss_and_a_fleet_all_over_the_itl_target_is_not_shed() -> None:
    itl = SloPolicy(itl_s=0.05)
    unknown = EndpointView("unknown", snapshot=itl_snap(1, 8, None), service_s=6.0)
    crawl = EndpointView("crawl", snapshot=itl_snap(0, 8, 0.08), service_s=6.0)
    choice = choose_for_slo([crawl, unknown], now=NOW, slo=itl)
    assert choice is not None and choice.name == "unknown"
    # None within the target: the TTFT alone decides, so it is served, not shed.
    only = choose_for_slo([crawl], now=NOW, slo=itl)
    assert only is not None and only.name == "crawl" and not only.shed
    # A snapshot too old to trust says nothing about the ITL either.
    stale = EndpointView("stale", snapshot=EngineSnapshot(0, 1, NOW - 60, itl_s=0.08))
    assert predict(stale, NOW, 0.0, itl).itl_s is None


def endpoint(name: str, **extra: Any) -> Endpoint:
    session: Any = None  # pick() never sends
    backend = OpenAICompatBackend(f"http://{name}/v1", session, Timeouts())
    ep = Endpoint(backend, CircuitBreaker(1, 60), **extra)
    ep.service_s = 2.0
    return ep


def slo_pool(load: dict[str, EngineSnapshot]) -> EndpointPool:
    names = ("a", "b")
    known = {f"http://{n}/v1": load[n] for n in names}
    return EndpointPool(
        "m", [endpoint(n) for n in names], balancer="slo", snapshots=known.get,
        clock=lambda: NOW, slo=SloPolicy(ttft_s=1.0),
    )  # fmt: skip


def test_the_pool_sheds_a_first_attempt_with_retry_after_and_counts_it() -> None:
    pool = slo_pool({"a": snap(40, 8), "b": snap(50, 8)})
    with pytest.raises(SloShedError) as err:
        pool.pick()
    assert err.value.status == 429 and err.value.code == "model_overloaded"
    assert int(err.value.headers["retry-after"]) >= 1
    assert pool.slo_shed == 1
    # A retry (the request failed elsewhere first) is not shed: it is sent.
    assert pool.pick(retry=True) is pool.endpoints[0]
    assert pool.slo_shed == 1


def test_a_request_s_own_ttft_target_decides_its_shedding() -> None:
    pool = slo_pool({"a": snap(1, 8), "b": snap(2, 8)})  # 2 slots to wait for at a: ~0.5 s
    assert pool.pick() is pool.endpoints[0]  # the pool's 1 s target: in time
    with pytest.raises(SloShedError, match=r"within 0\.05s"):
        pool.pick(ttft_s=0.05)
    assert pool.pick(ttft_s=5.0) is pool.endpoints[0]
    with pytest.raises(SloShedError):
        pool.pick(ttft_s=0.0)  # a target of 0 cannot be met: shed, not an error
    assert pool.slo_shed == 2 and pool.slo.ttft_s == 1.0


def test_the_pool_sends_to_the_replica_with_room_and_sheds_nothing() -> None:
    pool = slo_pool({"a": snap(40, 8), "b": snap(0, 3)})
    assert pool.pick() is pool.endpoints[1]
    assert pool.slo_shed == 0


def big_pool(load: dict[str, EngineSnapshot], seed: int) -> EndpointPool:
    known = {f"http://{n}/v1": s for n, s in load.items()}
    return EndpointPool(
        "m", [endpoint(n) for n in load], balancer="slo", snapshots=known.get,
        clock=lambda: NOW, slo=SloPolicy(ttft_s=1.0), rng=random.Random(seed),
    )  # fmt: skip


def test_a_large_pool_scores_a_sample_but_scans_all_before_shedding() -> None:
    """Beyond SLO_SAMPLE replicas a pick scores a random sample; a sample with no replica
    likely to start in time is not enough to shed: the one idle replica of 32 is found."""
    load = {f"r{i}": snap(40, 8) for i in range(32)}
    load["r17"] = snap(0, 0)
    picked = {big_pool(load, seed).pick().name for seed in range(20)}  # type: ignore[union-attr]
    assert picked == {"http://r17/v1"}
    # With every replica over budget, it sheds.
    load["r17"] = snap(40, 8)
    with pytest.raises(SloShedError):
        big_pool(load, 0).pick()


def test_a_large_pool_spreads_picks_over_its_idle_replicas() -> None:
    assert SLO_SAMPLE < 32
    pool = big_pool({f"r{i}": snap(0, 0) for i in range(32)}, seed=1)
    picked = {pool.pick().name for _ in range(200)}  # type: ignore[union-attr]
    assert len(picked) > SLO_SAMPLE  # not always the same sample's first replica
