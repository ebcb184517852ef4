"""The admin API under ``/admin``: dynamic keys, spend, the running config, backends.

Guarded by its own key (``Authorization: Bearer <admin key>``, the value of the environment
variable named by ``auth.admin_key_env``); without one configured every route answers 403.
A dynamic key is shown in plain text once, in the answer that creates it; everything else
refers to keys by ``id`` and never shows a key or its hash.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from switchyard.backends.errors import (
    AuthenticationError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    StateStoreUnavailableError,
)
from switchyard.gateway.fleet import Fleet
from switchyard.gateway.redis_client import redact
from switchyard.gateway.reload import ConfigReloader
from switchyard.gateway.routing import RouterService
from switchyard.gateway.settings import Settings, SettingsError
from switchyard.gateway.tenancy import periods
from switchyard.gateway.tenancy.config import Limits, Period
from switchyard.gateway.tenancy.guard import Guard
from switchyard.gateway.tenancy.keys import (
    KeyRecord,
    bearer_token,
    hash_key,
    new_key,
    static_records,
)
from switchyard.gateway.tenancy.store import StoreUnavailableError
from switchyard.gateway.upstreams import Upstreams

REDACTED = "<redacted>"
NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
T = TypeVar("T")
# Read once at start-up; a reload cannot change them (server.max_body_bytes applies at once).
_RESTART_FIELDS = {
    "server": ("host", "port", "workers", "log_level", "access_log"),
    "state": ("redis_url", "mode", "key_prefix", "timeout_s", "replica_acks"),
    "upstream": ("pool_size",),
}


class ConflictError(InvalidRequestError):
    """The request is valid but cannot be applied to the resource as it is (409)."""

    status = 409
    code = "conflict"


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=NAME_PATTERN)
    tenant: str = Field(default="default", min_length=1, max_length=128)
    models: tuple[str, ...] = Field(default=(), description="Allowed models; empty = all.")
    limits: Limits = Limits()


class UpdateKey(BaseModel):
    """Only the fields given change; ``limits`` replaces the key's limits as a whole."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=NAME_PATTERN)
    tenant: str | None = Field(default=None, min_length=1, max_length=128)
    models: tuple[str, ...] | None = None
    limits: Limits | None = None


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


async def _stored(call: Awaitable[T]) -> T:
    """A store call, its outage as a 503 in the error tree."""
    try:
        return await call
    except StoreUnavailableError:
        raise StateStoreUnavailableError("key store unavailable; try again") from None


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
    """What the admin routes act on; the routes themselves are closures over one of these."""

    def __init__(
        self, upstreams: Upstreams, guard: Guard, reloader: ConfigReloader, fleet: Fleet | None
    ) -> None:
        self.upstreams = upstreams
        self.guard = guard
        self.reloader = reloader
        self.fleet = fleet

    # --- access -------------------------------------------------------------------------
    def check_admin(self, request: Request) -> None:
        auth = self.guard.auth
        expected = auth.admin_key()
        if not expected:
            where = auth.admin_key_env or "auth.admin_key_env"
            raise PermissionDeniedError(
                f"admin API disabled: set {where}", code="admin_api_disabled"
            )
        token = bearer_token(request.scope["headers"])
        if token is None:
            raise AuthenticationError(
                "missing admin key: send 'Authorization: Bearer <admin key>'",
                code="missing_admin_key",
            )
        if not hmac.compare_digest(token.encode(), expected.encode()):
            raise AuthenticationError("invalid admin key", code="invalid_admin_key")

    # --- keys ---------------------------------------------------------------------------
    def static_keys(self) -> list[KeyRecord]:
        auth = self.guard.auth
        return list(static_records(auth.keys, auth.secret()).values())

    async def all_keys(self) -> list[KeyRecord]:
        dynamic = await _stored(self.guard.store.list_keys())
        return self.static_keys() + sorted(dynamic, key=lambda r: r.created_at)

    async def dynamic_key(self, key_id: str) -> KeyRecord:
        """The dynamic key ``key_id``; 409 for a static key, 404 for none."""
        static = next((r for r in self.static_keys() if r.id == key_id), None)
        if static is not None:
            raise ConflictError(
                f"key '{static.name}' is static (set in the config file) and cannot be changed "
                "here: edit the config file and POST /admin/config/reload",
                code="static_key",
            )
        dynamic = await _stored(self.guard.store.list_keys())
        record = next((r for r in dynamic if r.id == key_id), None)
        if record is None:
            raise NotFoundError(f"no key with id '{key_id}'", param="id", code="key_not_found")
        return record

    async def check_name(self, name: str, except_id: str | None = None) -> None:
        """Names label metrics and logs, so two keys in use never share one."""
        for record in await self.all_keys():
            if record.name == name and record.id != except_id and not record.revoked:
                raise ConflictError(
                    f"a key named '{name}' already exists", param="name", code="name_taken"
                )

    def check_models(self, models: Sequence[str]) -> None:
        unknown = sorted(set(models) - set(self.upstreams.models))
        if unknown:
            raise InvalidRequestError(
                f"unknown model(s): {', '.join(unknown)}; GET /v1/models lists them",
                param="models",
            )

    async def create(self, body: CreateKey) -> tuple[KeyRecord, str]:
        secret = self.guard.auth.secret()
        if not secret:  # a key hashed without it would stop working once it is set
            raise ConflictError(
                f"set {self.guard.auth.secret_env} (the secret keys are hashed with) first",
                code="no_key_secret",
            )
        self.check_models(body.models)
        await self.check_name(body.name)
        key = new_key()
        record = KeyRecord(
            name=body.name,
            tenant=body.tenant,
            key_hash=hash_key(secret, key),
            models=body.models,
            limits=body.limits,
        )
        await _stored(self.guard.store.save_key(record))
        return record, key

    async def replace(self, record: KeyRecord, changes: dict[str, Any]) -> KeyRecord:
        """Save ``record`` with ``changes``; this replica stops using its cached copy now."""
        updated = KeyRecord.model_validate({**record.model_dump(), **changes})
        await _stored(self.guard.store.save_key(updated))
        self.guard.forget(updated.key_hash)
        return updated

    # --- spend --------------------------------------------------------------------------
    async def spend(self) -> dict[str, list[dict[str, Any]]]:
        """Current-period spend against every budget, read under the ids ``Guard`` uses."""
        keys = await self.all_keys()
        tenants = {t.name: t for t in self.guard.auth.tenants}
        rows = [
            _SpendRow("key", r.id, {"id": r.id, "name": r.name, "tenant": r.tenant,
                                    "revoked": r.revoked},
                      r.limits.budget_usd, r.limits.budget_period)
            for r in keys
        ]  # fmt: skip
        for name in sorted(set(tenants) | {r.tenant for r in keys}):
            t = tenants.get(name)
            budget, period = (t.budget_usd, t.budget_period) if t is not None else (None, "month")
            rows.append(_SpendRow("tenant", name, {"name": name}, budget, period))
        spent = await _stored(self.guard.store.spend([row.budget_id for row in rows]))
        out: dict[str, list[dict[str, Any]]] = {"keys": [], "tenants": []}
        for row, usd in zip(rows, spent, strict=True):
            out[f"{row.kind}s"].append(row.report(usd))
        return out

    # --- config -------------------------------------------------------------------------
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


class _SpendRow:
    """One budget owner; ``budget_id`` is built exactly as ``Guard._budget_limits`` does:
    ``key:<key id>:<period label>`` or ``tenant:<name>:<period label>``."""

    def __init__(
        self, kind: str, owner: str, info: dict[str, Any], budget: float | None, period: Period
    ) -> None:
        self.kind, self.info, self.budget, self.period = kind, info, budget, period
        self.label, self.resets_in_s = periods.current(period)
        self.budget_id = f"{kind}:{owner}:{self.label}"

    def report(self, usd: float) -> dict[str, Any]:
        row = {**self.info, "budget_usd": self.budget, "budget_period": self.period}
        row["period"] = self.label
        if self.budget is None:  # the store counts spend only against a budget
            return row | {"spend_usd": None, "remaining_usd": None, "resets_in_s": None}
        remaining = max(self.budget - usd, 0.0)
        return row | {"spend_usd": usd, "remaining_usd": remaining, "resets_in_s": self.resets_in_s}


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
    admin = Admin(upstreams, guard, reloader, fleet)

    class AdminRoute(APIRoute):
        """Checks the admin key first: before FastAPI reads and validates the body."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def guarded(request: Request) -> Response:
                admin.check_admin(request)
                return await handler(request)

            return guarded

    routes = APIRouter(prefix="/admin", tags=["admin"], route_class=AdminRoute)
    _key_routes(routes, admin)
    _ops_routes(routes, admin)
    if routing is not None:
        _routing_routes(routes, routing)
    return routes


def _key_routes(routes: APIRouter, admin: Admin) -> None:
    @routes.post("/keys", status_code=201, summary="Create a dynamic key (shown once)")
    async def create_key(body: CreateKey) -> Response:
        record, key = await admin.create(body)
        return _json({**record.public(), "key": key}, 201)

    @routes.get("/keys", summary="List static and dynamic keys (no secrets)")
    async def list_keys() -> Response:
        return _json({"object": "list", "data": [r.public() for r in await admin.all_keys()]})

    @routes.patch("/keys/{key_id}", summary="Change a dynamic key's name, tenant, models, limits")
    async def update_key(key_id: str, body: UpdateKey) -> Response:
        record = await admin.dynamic_key(key_id)
        changes = body.model_dump(exclude_unset=True, exclude_none=True)
        if "name" in changes:
            await admin.check_name(changes["name"], except_id=record.id)
        admin.check_models(changes.get("models", ()))
        return _json((await admin.replace(record, changes)).public())

    @routes.delete("/keys/{key_id}", summary="Revoke a dynamic key (kept for audit)")
    async def revoke_key(key_id: str) -> Response:
        record = await admin.dynamic_key(key_id)
        return _json((await admin.replace(record, {"revoked": True})).public())


def _ops_routes(routes: APIRouter, admin: Admin) -> None:
    @routes.get("/spend", summary="Spend in the current period against every budget")
    async def spend() -> Response:
        return _json(await admin.spend())

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


__all__ = ["Admin", "ConflictError", "admin_routes", "redacted_config"]
