"""``POST /v1/feedback``: a score (or thumbs) for a routed request, by its decision id."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from backends.errors import MalformedJSONError, NotFoundError
from gateway.routing import RouterService
from gateway.tenancy.guard import Guard

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
        await guard.authenticate(request.scope["headers"])
        raw = await request.body()
        if len(raw) > MAX_FEEDBACK_BYTES:
            raise MalformedJSONError("feedback body is too large")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as err:
            raise MalformedJSONError(f"request body is not valid JSON: {err}") from None
        if routing is None:
            raise NotFoundError("this gateway has no routers, so no routing decisions")
        answer = routing.outcomes.feedback(body)
        return Response(orjson.dumps(answer.as_json()), media_type="application/json")

    return routes
