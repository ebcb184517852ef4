"""SLO-aware replica choice: predict each replica's time to first token (TTFT) for this
request, send it where it is most likely to meet the TTFT target, and shed it early (429)
when no replica is likely to.

Prediction (``predict``), from what ``replica.expected_delay`` reads — the latest fresh engine
snapshot plus this gateway's own sends and finishes since it (in-flight accounting between
scrapes), or the in-flight count alone without a snapshot:

* slots ``C``: the batch size (``max_num_seqs`` from the page or the config) times the weight,
  or the running count when the engine queues (its KV cache is the limit then);
* load ``N``: waiting + running + the net requests this gateway sent since the snapshot;
* starting: this gateway's streams there whose first chunk has not come (sent, not yet
  prefilled: each is a prefill ahead of this request even when a slot is free);
* hold time ``S``: seconds a request holds a batch slot there, learned per endpoint (a slow
  GPU frees its slots slowly; that, not the count, is what a queue there costs).

A request finding ``N >= C`` waits for ``k = N + 1 - C`` slots to free, and slots free at
about ``C / S`` per second: the wait is modelled as Erlang(``k``, ``C / S``), mean
``k * S / C``, plus the mean prefill of a request sent there for each of the
``max(k, starting)`` requests ahead. Its own prefill follows: the uncached part of this
prompt there (prefix index) times the endpoint's prefill rate. The chance of meeting the
target ``T`` is the Erlang distribution function at ``T`` less both prefills.

Inter-token latency: with a target ``SloPolicy.itl_s``, a replica whose mean time between
tokens since its last scrape (vLLM's ``inter_token_latency_seconds`` histogram) is above it
is expected to miss the SLO however soon it starts the request: its chance counts as 0.
A replica whose ITL is unknown (no fresh snapshot, no tokens yet) is not penalised.

Choice (``choose_for_slo``): the least ``(1 - chance) * miss_cost_s + expected TTFT`` (plus a
small tie-break for the replica that decodes fastest) over every replica that may take
traffic: the chance of meeting the target first, the expected TTFT among replicas equally
likely to meet it.

Shedding: when even the best replica's chance of starting in time (of the wait for a slot
and the prefills ahead fitting the target; among the replicas within the ITL target, or all
when none is) is below ``SloPolicy.shed_below`` (and no
replica whose hold time is not measured yet has a free slot, so a cold start never sheds,
while a burst that fills a replica before it ever finished a request still can), the choice
says ``shed``; the pool raises ``SloShedError`` (429 ``model_overloaded`` with
``Retry-After``). A request that would miss its target anyway is better refused at once
than queued: it would only delay the requests behind it (docs/BENCHMARKS.md section 27).
Shedding is about load: the request's own prefill ranks the replicas (a cached prefix wins)
but does not shed it, or a prompt long enough to miss the target on an idle replica would be
refused on every retry. A request's own ``max_ttft_ms`` replaces the configured target for
its choice.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from switchyard.backends.errors import OverloadedError
from switchyard.backends.replica import DEFAULT_POLICY, EndpointView, ReplicaPolicy

__all__ = [
    "DEFAULT_SLO",
    "Prediction",
    "SloChoice",
    "SloPolicy",
    "SloShedError",
    "choose_for_slo",
    "meet_chance",
    "predict",
]

# Beyond this many slots to wait for, the Erlang sum gives way to an approximation.
_EXACT_UP_TO = 24
# Seconds of expected TTFT that one second of a replica's hold time is worth (a tie-break).
_SPEED_WEIGHT = 0.01


@dataclass(frozen=True, slots=True)
class SloPolicy:
    """Targets and knobs of SLO-aware choice."""

    ttft_s: float = 1.0
    shed: bool = True
    # Shed when the best replica's chance of meeting ``ttft_s`` is below this.
    shed_below: float = 0.9
    # What a missed target weighs against a second of expected TTFT.
    miss_cost_s: float = 10.0
    # Mean seconds between tokens a replica must stay under (None: not a target).
    itl_s: float | None = None

    def __post_init__(self) -> None:
        if not self.ttft_s > 0:
            raise ValueError("ttft_s must be > 0")
        if not 0 <= self.shed_below <= 1:
            raise ValueError("shed_below must be in [0, 1]")
        if not self.miss_cost_s >= 0:
            raise ValueError("miss_cost_s must be >= 0")
        if self.itl_s is not None and not self.itl_s > 0:
            raise ValueError("itl_s must be > 0")


DEFAULT_SLO = SloPolicy()


class SloShedError(OverloadedError):
    """No replica is likely to meet the TTFT target: refused before it was sent (429)."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """One replica's outlook for this request."""

    wait_s: float  # expected seconds until a batch slot frees for it
    prefill_s: float  # seconds to prefill its uncached prompt there
    chance: float  # of a TTFT within the target
    hold_s: float  # seconds a request holds a batch slot there
    known: bool  # the hold time was measured (else the policy's prior)
    queued: bool  # it would wait for a batch slot there
    itl_s: float | None = None  # its recent mean time between tokens (None: unknown)
    start_chance: float = 1.0  # of the wait and the prefills ahead within the target

    @property
    def ttft_s(self) -> float:
        return self.wait_s + self.prefill_s


@dataclass(frozen=True, slots=True)
class SloChoice:
    index: int  # into the views given
    name: str
    prediction: Prediction
    shed: bool  # no replica is likely to meet the target: refuse it


def meet_chance(slots_ahead: float, rate: float, budget_s: float) -> float:
    """P(Erlang(``slots_ahead``, ``rate``) <= ``budget_s``): the chance that the slot this
    request waits for frees within ``budget_s`` (1 when it waits for none)."""
    if slots_ahead <= 0:
        return 1.0 if budget_s >= 0 else 0.0
    if budget_s <= 0 or rate <= 0:
        return 0.0
    k, x = math.ceil(slots_ahead), rate * budget_s
    if k > _EXACT_UP_TO:
        # Wilson-Hilferty: the cube root of a gamma variable is close to normal.
        spread = 1.0 / (9.0 * k)
        z = ((x / k) ** (1.0 / 3.0) - (1.0 - spread)) / math.sqrt(spread)
        return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    term = total = math.exp(-x)
    for n in range(1, k):
        term *= x / n
        total += term
    return max(0.0, 1.0 - total)


def predict(
    view: EndpointView,
    now: float,
    prefill_s: float,
    slo: SloPolicy = DEFAULT_SLO,
    policy: ReplicaPolicy = DEFAULT_POLICY,
    queued_prefill_s: float = 0.0,
) -> Prediction:
    """``view``'s wait, prefill and chance of a TTFT within ``slo.ttft_s`` for this request
    (``queued_prefill_s``: the mean prefill of a request sent there, which each request
    admitted ahead of this one adds to the engine step it is admitted in)."""
    snapshot = view.snapshot
    if snapshot is not None and now - snapshot.scraped_at > policy.max_snapshot_age_s:
        snapshot = None
    seqs = (snapshot.max_num_seqs if snapshot is not None else None) or view.max_num_seqs
    seqs = seqs or policy.default_max_num_seqs
    if snapshot is None:
        load = float(view.in_flight)
        slots = max(seqs * view.weight, 1e-9)
    else:
        load = max(0.0, float(snapshot.waiting + snapshot.running + view.sent_since_snapshot))
        if snapshot.waiting > 0 and snapshot.running > 0:
            slots = float(min(seqs, snapshot.running))  # a queue: the batch is as big as it gets
        else:
            slots = max(seqs * view.weight, 1e-9)
    known = view.service_s is not None
    hold_s = view.service_s if view.service_s is not None else policy.default_service_s
    ahead = max(0.0, load + 1.0 - slots)
    rate = slots / hold_s if hold_s > 0 else math.inf
    # The prefills still ahead of this one: the queue's, and this gateway's streams there
    # that have not started (sent a moment ago, admitted with or before this request).
    stalls = max(ahead, float(view.starting)) * queued_prefill_s
    wait_s = (ahead / rate if ahead > 0 else 0.0) + stalls
    chance = meet_chance(ahead, rate, slo.ttft_s - prefill_s - stalls)
    start = chance if prefill_s <= 0 else meet_chance(ahead, rate, slo.ttft_s - stalls)
    itl = snapshot.itl_s if snapshot is not None else None
    return Prediction(wait_s, prefill_s, chance, hold_s, known, ahead > 0, itl, start)


def choose_for_slo(
    views: Sequence[EndpointView],
    *,
    now: float,
    slo: SloPolicy = DEFAULT_SLO,
    policy: ReplicaPolicy = DEFAULT_POLICY,
    prefill_s: Sequence[float] | None = None,
    queued_prefill_s: Sequence[float] | None = None,
) -> SloChoice | None:
    """The replica most likely to meet ``slo.ttft_s`` for this request (``prefill_s``: per
    view, seconds to prefill its uncached prompt there; ``queued_prefill_s``: per view, the
    mean prefill of the requests queued there), or ``None`` when no endpoint may take
    traffic. ``shed`` is set when none is likely enough to."""
    best_index, best_cost = -1, math.inf
    best: Prediction | None = None
    cold_room, top_chance, top_met = False, 0.0, -1.0
    for i, view in enumerate(views):
        if not view.allows or view.weight <= 0:
            continue
        prefill = prefill_s[i] if prefill_s is not None else 0.0
        queued = queued_prefill_s[i] if queued_prefill_s is not None else 0.0
        p = predict(view, now, prefill, slo, policy, queued)
        cold_room = cold_room or not (p.known or p.queued)
        top_chance = max(top_chance, p.start_chance)
        met = 0.0  # the chance of meeting the whole SLO there
        if _itl_ok(p, slo):
            met = p.chance
            top_met = max(top_met, p.start_chance)
        # Among replicas equally sure to start in time, the one that frees its slots
        # fastest also streams fastest (the hold time is the request's decode time).
        cost = (1.0 - met) * slo.miss_cost_s + p.ttft_s + _SPEED_WEIGHT * p.hold_s
        if cost < best_cost:  # strict: ties go to the earlier endpoint
            best_index, best_cost, best = i, cost, p
    if best is None:
        return None
    # With no replica within the ITL target, the TTFT alone decides (shedding cannot bring
    # the ITL down, and nothing would be served to measure it again). The chances here
    # leave the request's own prefill out: shedding answers load, not a long prompt.
    best_chance = top_met if top_met >= 0 else top_chance
    shed = slo.shed and not cold_room and best_chance < slo.shed_below
    return SloChoice(best_index, views[best_index].name, best, shed)


def _itl_ok(p: Prediction, slo: SloPolicy) -> bool:
    """Whether the replica's recent time between tokens is within the target (or either
    is unknown)."""
    return slo.itl_s is None or p.itl_s is None or p.itl_s <= slo.itl_s
