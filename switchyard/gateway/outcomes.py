"""Outcome records of routed requests and what feedback needs to learn from them, in process.

A decision is *pending* from the moment it is made until its response is done; then its
``OutcomeRecord`` goes into a ring buffer. ``lookup`` finds either as a ``Decided``: what a
feedback score needs to become a reward and a bandit observation. Feedback given here is
remembered (first score wins) so that repeating it gives the same answer.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar

from switchyard.gateway.errors import InvalidRequestError

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a routed request was made for: its API key's id and tenant. Only they may give
    feedback on it, and a tenant-scoped bandit learns it in the tenant's statistics."""

    key_id: str
    tenant: str


@dataclass(slots=True)
class Route:
    """One routing decision, carried with its request until the response is done."""

    decision_id: str
    router: str
    model: str
    cost_weight: float
    quality: dict[str, float]  # predicted by the offline router, per candidate
    cost: dict[str, float]  # predicted USD, per candidate
    started: float  # perf_counter() when the request arrived
    decision_s: float
    context: tuple[float, ...] | None = None  # the bandit's context, when the router has one
    owner: Owner | None = None  # None when auth is off
    arms: str | None = None  # the bandit statistics the decision used (per tenant or not)
    embedding: Any = None  # the prompt's, for a semantic cache lookup (gateway.cache.hook)

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The response headers that tell the client what was decided."""
        return [
            (b"x-switchyard-model", self.model.encode()),
            (b"x-switchyard-router", self.router.encode()),
            (b"x-switchyard-decision-id", self.decision_id.encode()),
        ]

    def record(
        self,
        served: str,
        endpoint: str,
        status: str,
        spent: tuple[int, int, float] | None,
        ttft: float | None,
    ) -> OutcomeRecord:
        """The outcome of this decision once its response is done; ``served`` is the model
        that answered, ``spent`` (prompt tokens, completion tokens, USD) when usage is known."""
        prompt, completion, cost = spent if spent is not None else (0, 0, None)
        return OutcomeRecord(
            decision_id=self.decision_id,
            router=self.router,
            candidates={m: {"quality": q, "cost": self.cost[m]} for m, q in self.quality.items()},
            model=served,
            endpoint=endpoint,
            status=status,
            prompt_tokens=prompt,
            completion_tokens=completion,
            cost_usd=cost,
            latency_s=time.perf_counter() - self.started,
            ttft_s=ttft,
            cost_weight=self.cost_weight,
            time=time.time(),
        )


@dataclass(slots=True)
class OutcomeRecord:
    decision_id: str
    router: str
    candidates: dict[str, dict[str, float]]  # model -> {"quality", "cost"} predicted
    model: str
    endpoint: str
    status: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float | None
    latency_s: float
    ttft_s: float | None
    cost_weight: float
    time: float = 0.0  # Unix time when the response was done
    # Shadowed decisions only (switchyard.gateway.shadow): the prompt, and each model's answer
    # to it ({"text", "status", "usage", "cost_usd", "shadow"}), attached once shadow calls end.
    prompt: Any = None
    outputs: dict[str, dict[str, Any]] | None = None
    # Cascade routers and second opinions only (switchyard.gateway.stages): every stage run,
    # in the order started (cheapest first; a second opinion: pick, checker, escalate_to).
    stages: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Decided:
    """A decision as feedback sees it; ``prior`` is the offline predicted reward of the
    chosen model (quality − λ·predicted cost), ``cost`` the realized cost when known."""

    router: str
    model: str
    cost_weight: float
    cost: float
    prior: float
    context: tuple[float, ...] | None
    key_id: str | None = None  # the owner, None when auth was off
    tenant: str | None = None
    arms: str | None = None  # the bandit statistics to learn in (None: the router's own)

    @classmethod
    def of(cls, route: Route, cost_usd: float | None = None, served: str | None = None) -> Decided:
        """``served``: the model that answered, when a fallback stood in for the chosen one;
        feedback is then about it (and teaches the bandit only if it was a candidate)."""
        model = route.model if served is None else served
        predicted = route.cost.get(model, 0.0)
        prior = route.quality.get(model, 0.0) - route.cost_weight * predicted
        cost = predicted if cost_usd is None else cost_usd
        context = route.context if model in route.quality else None
        owner = route.owner
        return cls(
            route.router, model, route.cost_weight, cost, prior, context,
            owner.key_id if owner else None, owner.tenant if owner else None, route.arms,
        )  # fmt: skip

    def owned_by(self, key_id: str, tenant: str, by_tenant: bool) -> bool:
        """Whether the caller may give feedback: the decision's key (or, ``by_tenant``, any
        key of its tenant). A decision made without auth belongs to everyone."""
        if self.key_id is None:
            return True
        return self.tenant == tenant if by_tenant else self.key_id == key_id

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decided:
        context = data.get("context")
        return cls(
            router=str(data["router"]),
            model=str(data["model"]),
            cost_weight=float(data["cost_weight"]),
            cost=float(data["cost"]),
            prior=float(data["prior"]),
            context=None if context is None else tuple(float(v) for v in context),
            key_id=_optional(data.get("key_id")),
            tenant=_optional(data.get("tenant")),
            arms=_optional(data.get("arms")),
        )


def _optional(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True)
class Feedback:
    decision_id: str
    score: float
    reward: float

    def as_json(self) -> dict[str, Any]:
        return {"decision_id": self.decision_id, "reward": self.reward}


def _put_bounded(mapping: dict[K, V], key: K, value: V, limit: int) -> None:
    if len(mapping) >= limit:
        mapping.pop(next(iter(mapping)))
    mapping[key] = value


class OutcomeLog:
    """Pending decisions, the last ``size`` outcome records, and the feedback given here."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.records: deque[OutcomeRecord] = deque(maxlen=size)
        self._decided: dict[str, Decided] = {}
        self._by_id: dict[str, OutcomeRecord] = {}
        self._pending: dict[str, Route] = {}
        self._feedback: dict[str, Feedback] = {}

    def pending(self, route: Route) -> None:
        _put_bounded(self._pending, route.decision_id, route, self.size)

    def finish(self, route: Route, record: OutcomeRecord) -> Decided:
        self._pending.pop(record.decision_id, None)
        if len(self.records) == self.size:
            gone = self.records[0].decision_id
            self._by_id.pop(gone, None)
            self._decided.pop(gone, None)
        self.records.append(record)
        self._by_id[record.decision_id] = record
        decided = Decided.of(route, record.cost_usd, record.model)
        self._decided[record.decision_id] = decided
        return decided

    def record(self, decision_id: str) -> OutcomeRecord | None:
        return self._by_id.get(decision_id)

    def lookup(self, decision_id: str) -> Decided | None:
        if (decided := self._decided.get(decision_id)) is not None:
            return decided
        route = self._pending.get(decision_id)
        return None if route is None else Decided.of(route)

    def given(self, decision_id: str) -> Feedback | None:
        return self._feedback.get(decision_id)

    def remember(self, answer: Feedback) -> None:
        _put_bounded(self._feedback, answer.decision_id, answer, self.size)


def parse_feedback(body: Any) -> tuple[str, float]:
    """The decision id and the score in [0, 1] of a feedback body (400 when malformed)."""
    if not isinstance(body, dict):
        raise InvalidRequestError("feedback must be a JSON object")
    decision_id = body.get("decision_id")
    if not isinstance(decision_id, str) or not decision_id:
        raise InvalidRequestError("'decision_id' must be a string", param="decision_id")
    unknown = set(body) - {"decision_id", "score", "thumbs"}
    if unknown:
        raise InvalidRequestError(f"unknown field(s): {', '.join(sorted(unknown))}")
    if ("score" in body) == ("thumbs" in body):
        raise InvalidRequestError("give exactly one of 'score' or 'thumbs'", param="score")
    if "thumbs" in body:
        thumbs = body["thumbs"]
        if thumbs not in ("up", "down"):
            raise InvalidRequestError("'thumbs' must be 'up' or 'down'", param="thumbs")
        return decision_id, 1.0 if thumbs == "up" else 0.0
    score = body["score"]
    if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
        raise InvalidRequestError("'score' must be a number in [0, 1]", param="score")
    return decision_id, float(score)
