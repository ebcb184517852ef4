"""``POST /v1/feedback``: a score (or thumbs) for a routed request, by its decision id.

Any replica answers: a decision made elsewhere is looked up in the shared store. The first
score given for a decision wins, on every replica; only that one is learned from. With auth
on, only the key that made the routed request (or, with ``routing.feedback_from: tenant``,
any key of its tenant) may score it, and each call takes one request from the key's rpm.
"""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from switchyard.gateway.errors import (
    MalformedJSONError,
    NotFoundError,
    PermissionDeniedError,
    StateStoreUnavailableError,
)
from switchyard.gateway.outcomes import Decided, Feedback, parse_feedback
from switchyard.gateway.routing import RouterService
from switchyard.gateway.settings import FeedbackFrom
from switchyard.gateway.state import StoreUnavailableError
from switchyard.gateway.tenancy.guard import Guard
from switchyard.gateway.tenancy.keys import KeyRecord

MAX_FEEDBACK_BYTES = 16 * 1024

FEEDBACK_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["decision_id"],
                    "properties": {
                        "decision_id": {"type": "string"},
                        "score": {"type": "number", "minimum": 0, "maximum": 1},
                        "thumbs": {"type": "string", "enum": ["up", "down"]},
                    },
                }
            }
        },
    }
}


def feedback_routes(routing: RouterService | None, guard: Guard) -> APIRouter:
    routes = APIRouter(prefix="/v1", tags=["routing"])

    @routes.post(
        "/feedback",
        summary="Score a routed request (reward = score − cost weight × cost)",
        response_class=Response,
        openapi_extra=FEEDBACK_SCHEMA,
    )
    async def feedback(request: Request) -> Response:
        key = await guard.authenticate(request.scope["headers"])
        await guard.admit_call(key)
        raw = await request.body()
        if len(raw) > MAX_FEEDBACK_BYTES:
            raise MalformedJSONError("feedback body is too large")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise MalformedJSONError(f"request body is not valid JSON: {err}") from None
        if routing is None:
            raise NotFoundError("this gateway has no routers, so no routing decisions")
        answer = await give_feedback(routing, body, key)
        return Response(orjson.dumps(answer.as_json()), media_type="application/json")

    return routes


async def give_feedback(
    routing: RouterService, body: object, key: KeyRecord | None = None
) -> Feedback:
    """Validate ``body``, check that ``key`` may score the decision, turn its score into a
    reward (score − λ·cost, with the decision's λ and cost) and, the first time, learn."""
    decision_id, score = parse_feedback(body)
    decided = await _decided(routing, decision_id)
    if key is not None:
        by_tenant = routing.settings.routing.feedback_from is FeedbackFrom.tenant
        if not decided.owned_by(key.id, key.tenant, by_tenant):
            owner = "tenant" if by_tenant else "API key"
            raise PermissionDeniedError(
                f"routing decision '{decision_id}' was made for another {owner}",
                param="decision_id",
                code="not_decision_owner",
            )
    outcomes = routing.outcomes
    if (given := outcomes.given(decision_id)) is not None:
        return given
    answer = Feedback(decision_id, score, score - decided.cost_weight * decided.cost)
    try:
        answer, first = await routing.shared.claim(answer)
    except StoreUnavailableError:
        first = True  # Redis is away: this replica's memory keeps it idempotent meanwhile
    if (given := outcomes.given(decision_id)) is not None:
        return given  # the same feedback, given twice at once
    outcomes.remember(answer)
    if first:
        await routing.learn(answer, decided)
    return answer


async def _decided(routing: RouterService, decision_id: str) -> Decided:
    """The decision, from this replica's memory or the shared store (404 if unknown)."""
    decided = routing.outcomes.lookup(decision_id)
    if decided is None:
        try:
            decided = await routing.shared.lookup(decision_id)
        except StoreUnavailableError:
            raise StateStoreUnavailableError(
                "the decision is not known to this replica and the state store is unavailable; "
                "try again"
            ) from None
    if decided is None:
        raise NotFoundError(f"no routing decision '{decision_id}' is known")
    return decided
