"""Outcome records of routed requests and the feedback on them, in process (bounded).

A decision is *pending* from the moment it is made until its response is done; then its
``OutcomeRecord`` goes into a ring buffer. Feedback looks a decision id up in either, and is
kept (first score wins) so that repeating it gives the same answer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, TypeVar

from backends.errors import InvalidRequestError, NotFoundError

K = TypeVar("K")
V = TypeVar("V")


@dataclass(slots=True)
class Route:
    """One routing decision, carried with its request until the response is done."""

    decision_id: str
    router: str
    model: str
    cost_weight: float
    quality: dict[str, float]  # predicted, per candidate
    cost: dict[str, float]  # predicted USD, per candidate
    started: float  # perf_counter() when the request arrived
    decision_s: float


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
    """Pending decisions, the last ``size`` outcome records, and the feedback given."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.records: deque[OutcomeRecord] = deque(maxlen=size)
        self._by_id: dict[str, OutcomeRecord] = {}
        self._pending: dict[str, Route] = {}
        self._feedback: dict[str, Feedback] = {}

    def pending(self, route: Route) -> None:
        _put_bounded(self._pending, route.decision_id, route, self.size)

    def finish(self, record: OutcomeRecord) -> None:
        self._pending.pop(record.decision_id, None)
        if len(self.records) == self.size:
            self._by_id.pop(self.records[0].decision_id, None)
        self.records.append(record)
        self._by_id[record.decision_id] = record

    def record(self, decision_id: str) -> OutcomeRecord | None:
        return self._by_id.get(decision_id)

    def feedback(self, body: Any) -> Feedback:
        """Validate a feedback body and answer it; NotFoundError for an unknown decision."""
        decision_id, score = _parse_feedback(body)
        given = self._feedback.get(decision_id)
        if given is not None:
            return given
        record = self._by_id.get(decision_id)
        if record is not None:
            lam = record.cost_weight
            cost = record.cost_usd
            if cost is None:
                cost = record.candidates.get(record.model, {}).get("cost", 0.0)
        elif (route := self._pending.get(decision_id)) is not None:
            lam, cost = route.cost_weight, route.cost.get(route.model, 0.0)
        else:
            raise NotFoundError(f"no routing decision '{decision_id}' is known here")
        answer = Feedback(decision_id, score, score - lam * cost)
        _put_bounded(self._feedback, decision_id, answer, self.size)
        return answer


def _parse_feedback(body: Any) -> tuple[str, float]:
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
