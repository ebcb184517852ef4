"""The admin API under ``/admin``, assembled in this one place behind one admin key.

Guarded by its own key (``Authorization: Bearer <admin key>``, the value of the environment
variable named by ``auth.admin_key_env``); without one configured every route answers 403.
The key is checked before FastAPI reads and validates a body.

The routes: dynamic keys and spend (``switchyard.gateway.tenancy.admin``, tenancy's own); the
running config (secrets redacted) and its reload, fleet-wide with a state store; the
backends; and, when the gateway routes, the routers' bandits and recent outcome records.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from switchyard.gateway.errors import (
    AuthenticationError,
    ConflictError,
    InvalidRequestError,
    PermissionDeniedError,
)
from switchyard.gateway.fleet import Fleet
from switchyard.gateway.redis_client import redact
from switchyard.gateway.reload import ConfigReloader
from switchyard.gateway.routing import RouterService
from switchyard.gateway.settings import Settings, SettingsError
from switchyard.gateway.tenancy.admin import KeyAdmin, key_routes
from switchyard.gateway.tenancy.config import AuthConfig
from switchyard.gateway.tenancy.guard import Guard
from switchyard.gateway.tenancy.keys import bearer_token
from switchyard.gateway.upstreams import Upstreams

REDACTED = "<redacted>"
# Read once at start-up; a reload cannot change them (server.max_body_bytes applies at once).
_RESTART_FIELDS = {
    "server": ("host", "port", "workers", "log_level", "access_log"),
    "state": ("redis_url", "mode", "key_prefix", "timeout_s", "replica_acks"),
    "upstream": ("pool_size",),
}


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def check_admin(auth: AuthConfig, request: Request) -> None:
    """Let the request through only with the configured admin key (403 when none is set)."""
    expected = auth.admin_key()
    if not expected:
        where = auth.admin_key_env or "auth.admin_key_env"
        raise PermissionDeniedError(f"admin API disabled: set {where}", code="admin_api_disabled")
    token = bearer_token(request.scope["headers"])
    if token is None:
        raise AuthenticationError(
            "missing admin key: send 'Authorization: Bearer <admin key>'",
            code="missing_admin_key",
        )
    if not hmac.compare_digest(token.encode(), expected.encode()):
        raise AuthenticationError("invalid admin key", code="invalid_admin_key")


def redact_url(url: str) -> str:
    """``scheme://user:password@host`` without the credentials (they may be secrets)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{REDACTED}@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))


def redacted_config(settings: Settings) -> dict[str, Any]:
    """The settings as JSON with no secret: no key hashes, no credentials in URLs.
    Environment variable names stay (they are not secrets); their values are never read."""
    data: dict[str, Any] = settings.model_dump(mode="json")
    for key in data["auth"]["keys"]:
        if key.get("key_hash") is not None:
            key["key_hash"] = REDACTED
    for model in data["models"]:
        for endpoint in model["endpoints"]:
            endpoint["url"] = redact_url(endpoint["url"])
    if data["state"]["redis_url"] is not None:
        data["state"]["redis_url"] = redact(data["state"]["redis_url"], REDACTED)
    return data


class Admin:
    """What the config and backend routes act on; the routes are closures over one of these."""

    def __init__(self, upstreams: Upstreams, reloader: ConfigReloader, fleet: Fleet | None) -> None:
        self.upstreams = upstreams
        self.reloader = reloader
        self.fleet = fleet

    async def reload(self) -> dict[str, Any]:
        """Re-read the config file; serve it if valid, else keep the old one (400). With a
        state store, every other replica then applies it too (``switchyard.gateway.fleet``)."""
        path = self.reloader.path
        if path is None:
            raise ConflictError(
                "the gateway was not started from a config file: nothing to reload",
                code="no_config_file",
            )
        try:
            done = await self.reloader.reload()
        except SettingsError as err:
            raise InvalidRequestError(
                f"{err} (the running config is unchanged)", code="invalid_config"
            ) from None
        assert done is not None  # only a reload with ``only_if`` may do nothing
        answer = _changes(done.old, done.new, path)
        answer["restart_required"] += done.restart
        if self.fleet is None:
            note = "no state.redis_url: applied on this replica only"
            return answer | {"fleet": False, "fleet_note": note}
        return answer | await self.fleet.publish(done.sha256)

    def backends(self) -> list[dict[str, Any]]:
        return [
            {
                "model": name,
                "healthy": pool.healthy(),
                "endpoints": [
                    {
                        "url": redact_url(ep.name),
                        "state": ep.breaker.state.name,
                        "in_flight": ep.in_flight,
                    }
                    for ep in pool.endpoints
                ],
            }
            for name, pool in self.upstreams.pools.items()
        ]


def _changes(old: Settings, new: Settings, path: Path) -> dict[str, Any]:
    old_models = {m.name: m for m in old.models}
    new_models = {m.name: m for m in new.models}
    restart = [
        f"{section}.{field}"
        for section, fields in _RESTART_FIELDS.items()
        for field in fields
        if getattr(getattr(old, section), field) != getattr(getattr(new, section), field)
    ]
    old_routers = {r.name: r for r in old.routers}
    new_routers = {r.name: r for r in new.routers}
    warnings = []
    if old.auth.secret_env != new.auth.secret_env:
        warnings.append("auth.secret_env changed: dynamic keys hashed with the old secret fail")
    return {
        "reloaded": True,
        "config_path": str(path),
        "models": {
            "added": sorted(new_models.keys() - old_models.keys()),
            "removed": sorted(old_models.keys() - new_models.keys()),
            "changed": sorted(
                n for n in new_models.keys() & old_models.keys() if new_models[n] != old_models[n]
            ),
        },
        "routers": {
            "added": sorted(new_routers.keys() - old_routers.keys()),
            "removed": sorted(old_routers.keys() - new_routers.keys()),
            "changed": sorted(
                n
                for n in new_routers.keys() & old_routers.keys()
                if new_routers[n] != old_routers[n]
            ),
        },
        "routing_changed": old.routing != new.routing,
        "auth_changed": old.auth != new.auth,
        "restart_required": restart,
        "note": "models, upstream, auth, routers and routing apply now (endpoint breakers "
        "start closed; a router whose artifact and bandit are unchanged keeps its bandit); "
        "the fields in restart_required differ from the running ones and need a restart",
        "warnings": warnings,
    }


def admin_routes(
    upstreams: Upstreams,
    guard: Guard,
    reloader: ConfigReloader,
    routing: RouterService | None = None,
    fleet: Fleet | None = None,
) -> APIRouter:
    """Every ``/admin`` route, each behind the admin key."""

    class AdminRoute(APIRoute):
        """Checks the admin key first: before FastAPI reads and validates the body."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                check_admin(guard.auth, request)
                return await handler(request)

            return guarded

    routes = APIRouter(prefix="/admin", tags=["admin"], route_class=AdminRoute)
    key_routes(routes, KeyAdmin(upstreams, guard))
    _config_routes(routes, Admin(upstreams, reloader, fleet))
    if routing is not None:
        _routing_routes(routes, routing)
    return routes


def _config_routes(routes: APIRouter, admin: Admin) -> None:
    @routes.get("/config", summary="The running config, secrets redacted")
    async def config() -> Response:
        return _json(redacted_config(admin.upstreams.settings))

    @routes.post("/config/reload", summary="Re-read the config file the gateway started with")
    async def reload() -> Response:
        return _json(await admin.reload())

    @routes.get("/backends", summary="Every model's endpoints, breaker state and load")
    async def backends() -> Response:
        return _json({"object": "list", "data": admin.backends()})


def _routing_routes(routes: APIRouter, routing: RouterService) -> None:
    @routes.get("/routing", summary="The routers' bandits and the shared state store")
    async def bandits() -> Response:
        learner = routing.learner
        view = {} if learner is None else await routing.on_worker(learner.view)
        return _json({"routers": view, "store": routing.shared.view()})

    @routes.get("/outcomes", summary="This replica's recent outcome records, as JSON lines")
    async def outcomes(limit: int = Query(default=1000, ge=1, le=100_000)) -> Response:
        records = list(routing.outcomes.records)[-limit:]
        body = b"".join(orjson.dumps(r.as_json()) + b"\n" for r in records)
        return Response(body, media_type="application/x-ndjson")


__all__ = ["Admin", "admin_routes", "check_admin", "redact_url", "redacted_config"]
