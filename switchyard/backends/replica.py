"""Replica choice: which endpoint of one model takes the next request, and how long that
request is expected to wait there. A pure function of per-endpoint views (engine snapshot,
this gateway's in-flight counts, breaker verdict, weight), so it is tested without a network.

    views = [EndpointView("a", in_flight=3, snapshot=snap_a), EndpointView("b", weight=2.0)]
    choice = choose_replica(views, rng, now=time.monotonic(), affinity=affinity_key(system))
    choice.name, choice.expected_delay_s      # None when no endpoint may take traffic

Expected delay (seconds) of an endpoint, with ``ahead`` the requests before the new one —
``waiting + running`` from a fresh snapshot plus this gateway's ``sent_since_snapshot``, or,
when the snapshot is unknown or older than ``policy.max_snapshot_age_s``, this gateway's own
``in_flight`` count — and ``capacity = max_num_seqs x weight`` (or ``running`` when the
snapshot shows a queue: the engine admits no more, whatever the configuration says)::

    occupancy = max(min(ahead / capacity, 1), kv_cache_usage)
    queued    = max(0, ahead + 1 - capacity)        # must leave before it is admitted
    delay     = service_s x (queued / capacity + batch_slowdown x occupancy)

Queued requests cost a full share of a slot's ``service_s`` each (slots free at a rate of
capacity / service_s); batch occupancy costs less (a fuller batch only slows every decode
step), and a nearly full KV cache counts as a full batch since vLLM then admits nothing new.

Choice: power of d choices (``policy.choices``, 2 by default) among eligible endpoints —
breaker allows traffic and weight > 0 — sampled in proportion to weight with the caller's
seeded ``rng``, then the lower expected delay. Sampling two instead of taking the global
minimum keeps gateways that act on the same scrape from herding onto one replica. With an
``affinity`` key (``affinity_key(system prompt or first N tokens)``), endpoints are ranked
by weighted rendezvous hashing and the first whose load stays within its bounded-load cap,
``ceil(c x (total_load + 1) x weight / total_weight)`` ("consistent hashing with bounded
loads", Mirrokni et al. 2018, c = ``policy.affinity_load_factor``), wins: requests sharing a
prefix stick to one replica (its prefix cache) until it carries more than c times its share.

With ``prefix`` costs (``PrefixCosts``: per endpoint, the seconds this request's prompt would
take to prefill there given what its prefix cache is expected to hold, from
``switchyard.backends.prefix_index``), the endpoints expected to hold part of the prompt join
the sampled ones, and the least ``expected delay + prefill x (1 + w x running)`` wins — the
step that prefills a prompt stalls every sequence running there (vLLM schedules a prefill
into the same step as the batch's decodes), so a prefill costs the batch too; ``w`` is
``policy.prefill_stall_weight`` (0.25: of 0, 0.25 and 1 the best hit rate and tail in
docs/BENCHMARKS.md, "Prefix-aware replicas"). A prompt goes back to the replica that has
its prefix unless that replica's extra wait outweighs the prefill it saves. Without a warm
endpoint the choice is the one above.
"""

from __future__ import annotations

import functools
import hashlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from switchyard.backends.engine_state import EngineSnapshot

__all__ = [
    "DEFAULT_POLICY",
    "EndpointView",
    "PrefixCosts",
    "ReplicaChoice",
    "ReplicaPolicy",
    "affinity_key",
    "choose_replica",
    "expected_delay",
]

_MASK64 = (1 << 64) - 1
_TO_UNIT = 1.0 / (1 << 53)
_TINY = 1e-300


@dataclass(frozen=True, slots=True)
class ReplicaPolicy:
    """Hyperparameters of replica choice."""

    choices: int = 2
    batch_slowdown: float = 0.5
    affinity_load_factor: float = 1.25
    max_snapshot_age_s: float = 3.0
    # vLLM's default --max-num-seqs; used when neither the page nor the config says.
    default_max_num_seqs: int = 256
    # A typical chat completion: ~200 tokens at ~100 tokens/s per sequence.
    default_service_s: float = 2.0
    # Prefill of an 8B model on an A100 (~10k tokens/s), where the config does not say.
    default_prefill_s_per_token: float = 0.0001
    # A replica's prefix cache when its /metrics does not say (vllm:cache_config_info).
    default_cache_tokens: int = 150_000
    # Share of a prefill's time charged for each sequence running there (its step stalls
    # them); 0.25 measured best of 0, 0.25 and 1 (docs/BENCHMARKS.md, "Prefix-aware
    # replicas").
    prefill_stall_weight: float = 0.25

    def __post_init__(self) -> None:
        if self.choices < 1 or self.default_max_num_seqs < 1:
            raise ValueError("choices and default_max_num_seqs must be >= 1")
        if self.affinity_load_factor < 1.0:
            raise ValueError("affinity_load_factor must be >= 1 (1 means perfect balance)")
        for name in (
            "batch_slowdown",
            "max_snapshot_age_s",
            "default_service_s",
            "default_prefill_s_per_token",
            "default_cache_tokens",
            "prefill_stall_weight",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0")


DEFAULT_POLICY = ReplicaPolicy()


@dataclass(slots=True)
class EndpointView:
    """What replica choice knows about one endpoint at the moment of the request.

    Read-only by convention, not frozen: one is built per endpoint per request, and a frozen
    dataclass sets each field through ``object.__setattr__`` (2.5x the cost of ``__init__``)."""

    name: str
    allows: bool = True  # its circuit breaker lets a request through now
    in_flight: int = 0  # this gateway's requests in flight there now
    # This gateway's requests sent there after the snapshot was taken (not yet in it), less
    # those of its requests that finished since (already gone from the engine): negative
    # when more finished than were sent.
    sent_since_snapshot: int = 0
    snapshot: EngineSnapshot | None = None
    weight: float = 1.0  # set by the placement planner; scales capacity; 0 drains it
    max_num_seqs: int | None = None  # configured batch size, used when the page has none
    service_s: float | None = None  # mean seconds a request holds a batch slot here
    starting: int = 0  # this gateway's streams there whose first chunk has not come yet


@dataclass(frozen=True, slots=True)
class ReplicaChoice:
    index: int  # into the views given
    name: str
    expected_delay_s: float
    by_affinity: bool
    by_prefix: bool = False  # chosen with a warm prefix cache in the running


@dataclass(frozen=True, slots=True)
class PrefixCosts:
    """Per view (same order), seconds to prefill this request's uncached prompt there;
    ``warm``: the views expected to hold at least its first block."""

    prefill_s: Sequence[float]
    warm: Sequence[int]


def expected_delay(view: EndpointView, now: float, policy: ReplicaPolicy = DEFAULT_POLICY) -> float:
    """Seconds a new request is expected to lose to load on ``view`` (0 when idle)."""
    snapshot = _usable(view, now, policy)
    capacity = _capacity(view, snapshot, policy)
    ahead = _load(view, snapshot)
    kv = snapshot.kv_cache_usage if snapshot is not None else None
    occupancy = max(min(ahead / capacity, 1.0), kv or 0.0)
    queued = max(0.0, ahead + 1.0 - capacity)
    service_s = view.service_s if view.service_s is not None else policy.default_service_s
    return service_s * (queued / capacity + policy.batch_slowdown * occupancy)


def choose_replica(
    views: Sequence[EndpointView],
    rng: random.Random,
    *,
    now: float,
    policy: ReplicaPolicy = DEFAULT_POLICY,
    affinity: int | None = None,
    prefix: PrefixCosts | None = None,
) -> ReplicaChoice | None:
    """The endpoint for the next request, or ``None`` when no endpoint may take traffic."""
    eligible = [i for i, v in enumerate(views) if v.allows and v.weight > 0]
    if not eligible:
        return None
    if prefix is not None:
        warm = [i for i in prefix.warm if views[i].allows and views[i].weight > 0]
        if warm:
            return _prefix_choice(views, eligible, warm, prefix.prefill_s, rng, now, policy)
    if affinity is not None:
        index = _bounded_affinity(views, eligible, affinity, now, policy)
        if index is not None:
            return _choice(views, index, now, policy, by_affinity=True)
    best_index, best_delay = -1, math.inf
    for i in _weighted_sample(views, eligible, policy.choices, rng):
        delay = expected_delay(views[i], now, policy)
        if delay < best_delay:  # strict: ties go to the earlier (weight-favoured) draw
            best_index, best_delay = i, delay
    view = views[best_index]
    return ReplicaChoice(best_index, view.name, best_delay, by_affinity=False)


def _prefix_choice(
    views: Sequence[EndpointView],
    eligible: list[int],
    warm: list[int],
    prefill_s: Sequence[float],
    rng: random.Random,
    now: float,
    policy: ReplicaPolicy,
) -> ReplicaChoice:
    """The least expected delay + prefill among the sampled and the warm endpoints."""
    sampled = _weighted_sample(views, eligible, policy.choices, rng)
    best_index, best_cost, best_delay = -1, math.inf, math.inf
    for i in (*sampled, *(w for w in warm if w not in sampled)):
        view = views[i]
        delay = expected_delay(view, now, policy)
        snapshot = _usable(view, now, policy)
        # The step that prefills it stalls every running sequence there too.
        running = min(_load(view, snapshot), _capacity(view, snapshot, policy))
        cost = delay + prefill_s[i] * (1.0 + policy.prefill_stall_weight * running)
        if cost < best_cost:
            best_index, best_cost, best_delay = i, cost, delay
    by_prefix = best_index in warm
    return ReplicaChoice(best_index, views[best_index].name, best_delay, False, by_prefix)


def affinity_key(text: str, max_chars: int = 4096) -> int:
    """A 64-bit key for requests that share ``text`` (a system prompt, or a prompt's start)."""
    digest = hashlib.blake2b(text[:max_chars].encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _choice(
    views: Sequence[EndpointView], index: int, now: float, policy: ReplicaPolicy, by_affinity: bool
) -> ReplicaChoice:
    view = views[index]
    return ReplicaChoice(index, view.name, expected_delay(view, now, policy), by_affinity)


def _usable(view: EndpointView, now: float, policy: ReplicaPolicy) -> EngineSnapshot | None:
    snapshot = view.snapshot
    if snapshot is None or snapshot.is_stale(now, policy.max_snapshot_age_s):
        return None
    return snapshot


def _load(view: EndpointView, snapshot: EngineSnapshot | None) -> float:
    if snapshot is None:
        return float(view.in_flight)
    return max(0.0, float(snapshot.waiting + snapshot.running + view.sent_since_snapshot))


def _capacity(view: EndpointView, snapshot: EngineSnapshot | None, policy: ReplicaPolicy) -> float:
    seqs = snapshot.max_num_seqs if snapshot is not None else None
    seqs = seqs or view.max_num_seqs or policy.default_max_num_seqs
    if snapshot is not None and snapshot.waiting > 0 and snapshot.running > 0:
        # A queue means the batch is full, whatever the config says (or KV cache ran out).
        return float(min(seqs, snapshot.running))
    return max(seqs * view.weight, 1e-9)


def _weighted_sample(
    views: Sequence[EndpointView], eligible: list[int], k: int, rng: random.Random
) -> list[int]:
    """Up to ``k`` distinct indices drawn in proportion to weight, in draw order."""
    if len(eligible) == 1:
        return eligible
    if all(views[i].weight == views[eligible[0]].weight for i in eligible):
        return rng.sample(eligible, min(k, len(eligible)))
    # Efraimidis-Spirakis: the k largest u^(1/w) are a weighted sample without replacement.
    keyed = sorted(((rng.random() ** (1.0 / views[i].weight), i) for i in eligible), reverse=True)
    return [i for _, i in keyed[:k]]


def _bounded_affinity(
    views: Sequence[EndpointView],
    eligible: list[int],
    key: int,
    now: float,
    policy: ReplicaPolicy,
) -> int | None:
    """The first endpoint in ``key``'s rendezvous order whose load stays under its cap."""
    loads: dict[int, float] = {}
    scores: dict[int, float] = {}
    for i in eligible:
        view = views[i]
        loads[i] = _load(view, _usable(view, now, policy))
        scores[i] = _rendezvous(key, view.name, view.weight)
    scale = policy.affinity_load_factor * (sum(loads.values()) + 1)
    scale /= sum(views[i].weight for i in eligible)

    def within_cap(i: int) -> bool:
        return loads[i] + 1 <= math.ceil(scale * views[i].weight)

    home = max(eligible, key=scores.__getitem__)
    if within_cap(home):  # the common case: no sort
        return home
    ranked = sorted(eligible, key=scores.__getitem__, reverse=True)
    return next((i for i in ranked[1:] if within_cap(i)), None)


def _rendezvous(key: int, name: str, weight: float) -> float:
    """Weighted rendezvous score: the largest wins; a weight-w endpoint wins w times as often.

    Hashes are blake2b and splitmix64, never Python's ``hash()`` (salted per process), so
    every gateway process gives a key the same home.
    """
    # splitmix64's finaliser, inline (this runs once per endpoint per request).
    x = key ^ _name_hash(name)
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    u = ((x ^ (x >> 31)) >> 11) * _TO_UNIT  # uniform in [0, 1)
    return weight / -math.log(u or _TINY)


@functools.lru_cache(maxsize=4096)
def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")
