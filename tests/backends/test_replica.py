"""Replica choice as a pure function of endpoint views: delay model, power of two choices,
stale fallback, weights, breakers and prefix affinity with bounded load."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter

import pytest

from switchyard.backends.engine_state import EngineSnapshot
from switchyard.backends.replica import (
    EndpointView,
    ReplicaPolicy,
    affinity_key,
    choose_replica,
    expected_delay,
)

NOW = 500.0
POLICY = ReplicaPolicy()


def snap(running: int = 0, waiting: int = 0, age: float = 0.0, **extra: float) -> EngineSnapshot:
    return EngineSnapshot(waiting=waiting, running=running, scraped_at=NOW - age, **extra)  # type: ignore[arg-type]


def views(n: int, **fields: object) -> list[EndpointView]:
    return [EndpointView(f"e{i}", **fields) for i in range(n)]  # type: ignore[arg-type]


def run_sequence(
    pool: list[EndpointView], count: int, seed: int = 0, affinity: int | None = None
) -> list[str]:
    """Send ``count`` requests one after another (none finishes): in-flight counts grow."""
    rng = random.Random(seed)
    chosen: list[str] = []
    for _ in range(count):
        choice = choose_replica(pool, rng, now=NOW, affinity=affinity)
        assert choice is not None
        view = pool[choice.index]
        pool[choice.index] = dataclasses.replace(view, in_flight=view.in_flight + 1)
        chosen.append(choice.name)
    return chosen


# ---------------------------------------------------------------- expected delay


def test_idle_endpoint_has_no_expected_delay() -> None:
    assert expected_delay(EndpointView("a"), NOW) == 0.0
    assert expected_delay(EndpointView("a", snapshot=snap()), NOW) == 0.0


def test_delay_grows_gently_with_occupancy_and_steeply_with_queue() -> None:
    half = EndpointView("a", snapshot=snap(running=128), service_s=2.0)
    assert expected_delay(half, NOW) == pytest.approx(2.0 * 0.5 * 0.5)
    full = EndpointView("a", snapshot=snap(running=256), service_s=2.0)
    assert expected_delay(full, NOW) == pytest.approx(2.0 * (1 / 256 + 0.5))
    queued = EndpointView("a", snapshot=snap(running=256, waiting=256), service_s=2.0)
    # 257 requests must leave first: a whole service time for the batch, plus the slowdown.
    assert expected_delay(queued, NOW) == pytest.approx(2.0 * (257 / 256 + 0.5))


def test_max_num_seqs_from_the_page_wins_over_configured_and_default() -> None:
    from_page = EndpointView("a", snapshot=snap(running=16, max_num_seqs=32), max_num_seqs=64)
    configured = EndpointView("a", snapshot=snap(running=16), max_num_seqs=64)
    default = EndpointView("a", snapshot=snap(running=16))
    assert expected_delay(from_page, NOW) == pytest.approx(2.0 * 0.5 * 16 / 32)
    assert expected_delay(configured, NOW) == pytest.approx(2.0 * 0.5 * 16 / 64)
    assert expected_delay(default, NOW) == pytest.approx(2.0 * 0.5 * 16 / 256)


def test_nearly_full_kv_cache_counts_as_a_full_batch() -> None:
    view = EndpointView("a", snapshot=snap(running=4, kv_cache_usage=0.97))
    assert expected_delay(view, NOW) == pytest.approx(2.0 * 0.5 * 0.97)


def test_fresh_snapshot_adds_requests_sent_since_it_was_taken() -> None:
    seen = EndpointView("a", snapshot=snap(running=10), sent_since_snapshot=6, in_flight=99)
    assert expected_delay(seen, NOW) == expected_delay(EndpointView("a", in_flight=16), NOW)


def test_stale_snapshot_falls_back_to_in_flight_count() -> None:
    old = snap(running=256, waiting=500, age=POLICY.max_snapshot_age_s + 0.1)
    stale = EndpointView("a", snapshot=old, in_flight=2)
    assert expected_delay(stale, NOW) == expected_delay(EndpointView("a", in_flight=2), NOW)
    # The stale "overloaded" page no longer scares traffic away from it.
    busy = EndpointView("b", in_flight=40)
    choice = choose_replica([stale, busy], random.Random(0), now=NOW)
    assert choice is not None and choice.name == "a"


def test_weight_scales_capacity() -> None:
    light = EndpointView("a", snapshot=snap(running=64))
    heavy = dataclasses.replace(light, weight=2.0)
    assert expected_delay(heavy, NOW) == pytest.approx(expected_delay(light, NOW) / 2)


# ---------------------------------------------------------------- eligibility


def test_breaker_open_endpoint_is_never_chosen() -> None:
    pool = views(3)
    pool[1] = dataclasses.replace(pool[1], allows=False)
    assert "e1" not in set(run_sequence(pool, 300))


def test_weight_zero_drains_an_endpoint() -> None:
    pool = views(3)
    pool[2] = dataclasses.replace(pool[2], weight=0.0)
    assert "e2" not in set(run_sequence(pool, 300))


def test_no_eligible_endpoint_gives_none() -> None:
    rng = random.Random(0)
    assert choose_replica([], rng, now=NOW) is None
    assert choose_replica(views(3, allows=False), rng, now=NOW) is None
    assert choose_replica(views(2, weight=0.0), rng, now=NOW, affinity=7) is None


def test_single_eligible_endpoint_is_chosen_whatever_its_load() -> None:
    pool = [EndpointView("a", allows=False), EndpointView("b", snapshot=snap(waiting=900))]
    choice = choose_replica(pool, random.Random(0), now=NOW)
    assert choice is not None and (choice.index, choice.name) == (1, "b")
    assert choice.expected_delay_s == expected_delay(pool[1], NOW)
    assert not choice.by_affinity


# ---------------------------------------------------------------- power of two choices


def test_p2c_spreads_sequential_requests_evenly() -> None:
    pool = views(4)
    counts = Counter(run_sequence(pool, 400))
    assert max(counts.values()) - min(counts.values()) <= 2


def test_p2c_never_picks_a_saturated_replica_while_others_are_idle() -> None:
    pool = [
        EndpointView("hot", snapshot=snap(running=256, waiting=50)),
        EndpointView("b", snapshot=snap(running=3)),
        EndpointView("c", snapshot=snap(running=5)),
    ]
    rng = random.Random(1)
    chosen = Counter(choose_replica(pool, rng, now=NOW).name for _ in range(500))  # type: ignore[union-attr]
    assert chosen["hot"] == 0
    assert chosen["b"] > chosen["c"] > 0  # p2c: b wins when both are drawn, c when hot is


def test_p2c_does_not_herd_onto_the_least_loaded_replica() -> None:
    # Many requests decided on the same scrape (no in-flight updates in between), as several
    # gateway replicas do: the global minimum would get them all.
    pool = [EndpointView(f"e{i}", snapshot=snap(running=10 + i)) for i in range(8)]
    rng = random.Random(2)
    chosen = Counter(choose_replica(pool, rng, now=NOW).name for _ in range(4000))  # type: ignore[union-attr]
    assert chosen["e0"] / 4000 == pytest.approx(2 / 8, abs=0.04)  # drawn in 2 of 8 pairs
    assert len(chosen) == 7  # all but the worst one take some


def test_same_seed_gives_the_same_choices() -> None:
    assert run_sequence(views(5), 50, seed=7) == run_sequence(views(5), 50, seed=7)
    assert run_sequence(views(5), 50, seed=7) != run_sequence(views(5), 50, seed=8)


# ---------------------------------------------------------------- weights


def test_weights_bias_choice_in_proportion() -> None:
    pool = [EndpointView("heavy", weight=3.0), EndpointView("light", weight=1.0)]
    counts = Counter(run_sequence(pool, 400, seed=3))
    assert counts["heavy"] / 400 == pytest.approx(0.75, abs=0.05)


def test_weights_bias_ties_between_idle_replicas() -> None:
    pool = [EndpointView("heavy", weight=3.0), EndpointView("light", weight=1.0)]
    rng = random.Random(4)
    chosen = Counter(choose_replica(pool, rng, now=NOW).name for _ in range(2000))  # type: ignore[union-attr]
    assert chosen["heavy"] / 2000 == pytest.approx(0.75, abs=0.04)


# ---------------------------------------------------------------- prefix affinity


def test_affinity_sticks_to_one_replica_until_it_exceeds_its_bounded_load() -> None:
    key = affinity_key("You are a helpful assistant for ACME support.")
    pool = [EndpointView(f"e{i}", in_flight=6) for i in range(4)]
    rng = random.Random(5)
    first = choose_replica(pool, rng, now=NOW, affinity=key)
    assert first is not None and first.by_affinity
    home = first.index
    # Others at 6: home may grow to ceil(1.25 x (total + 1) / 4) while the total grows.
    chosen = run_sequence(pool, 12, affinity=key)
    spill = next(i for i, name in enumerate(chosen) if name != pool[home].name)
    assert spill >= 3  # several in a row on the home replica
    assert all(name == pool[home].name for name in chosen[:spill])
    loads = [v.in_flight for v in pool]
    total = sum(loads)
    assert loads[home] <= math.ceil(1.25 * total / 4)


def test_affinity_load_never_exceeds_the_cap_and_the_home_replica_carries_most() -> None:
    key = affinity_key("shared system prompt")
    pool = views(4)
    chosen = run_sequence(pool, 80, affinity=key)
    counts = Counter(chosen)
    assert counts[chosen[0]] == max(counts.values())
    assert counts[chosen[0]] <= math.ceil(1.25 * 80 / 4)


def test_different_prefixes_spread_over_replicas() -> None:
    pool = views(4)
    homes = {
        choose_replica(pool, random.Random(0), now=NOW, affinity=affinity_key(f"tenant {i}")).name  # type: ignore[union-attr]
        for i in range(40)
    }
    assert homes == {"e0", "e1", "e2", "e3"}


def test_affinity_is_consistent_when_an_endpoint_leaves() -> None:
    pool = views(4)
    keys = [affinity_key(f"prompt {i}") for i in range(200)]

    def homes(p: list[EndpointView]) -> list[str]:
        out = []
        for key in keys:
            choice = choose_replica(p, random.Random(0), now=NOW, affinity=key)
            assert choice is not None
            out.append(choice.name)
        return out

    before = homes(pool)
    pool[3] = dataclasses.replace(pool[3], allows=False)
    after = homes(pool)
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert moved and all(b == "e3" for b, _ in moved)  # only e3's keys found a new home


def test_affinity_gives_heavier_endpoints_more_prefixes() -> None:
    pool = [EndpointView("heavy", weight=3.0), EndpointView("light", weight=1.0)]
    homes = Counter(
        choose_replica(pool, random.Random(0), now=NOW, affinity=affinity_key(str(i))).name  # type: ignore[union-attr]
        for i in range(2000)
    )
    assert homes["heavy"] / 2000 == pytest.approx(0.75, abs=0.04)


def test_affinity_key_depends_only_on_the_first_max_chars() -> None:
    assert affinity_key("a" * 10 + "x", max_chars=10) == affinity_key("a" * 10 + "y", max_chars=10)
    assert affinity_key("system A") != affinity_key("system B")


# ---------------------------------------------------------------- policy


@pytest.mark.parametrize(
    "bad",
    [
        {"choices": 0},
        {"affinity_load_factor": 0.9},
        {"batch_slowdown": -1.0},
        {"default_service_s": float("nan")},
        {"default_max_num_seqs": 0},
    ],
)
def test_invalid_policy_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ReplicaPolicy(**bad)  # type: ignore[arg-type]
