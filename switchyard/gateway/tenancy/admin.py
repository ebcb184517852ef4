"""The tenant side of the admin API: dynamic keys and spend (``/admin/keys``, ``/admin/spend``).

The routes are mounted, behind the admin key, by ``switchyard.gateway.admin``, which assembles
every admin route. A dynamic key is shown in plain text once, in the answer that creates it;
everything else refers to keys by ``id`` and never shows a key or its hash.
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, TypeVar

import orjson
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from switchyard.gateway.errors import (
    ConflictError,
    InvalidRequestError,
    NotFoundError,
    StateStoreUnavailableError,
)
from switchyard.gateway.state import StoreUnavailableError
from switchyard.gateway.tenancy import periods
from switchyard.gateway.tenancy.config import Limits, Period
from switchyard.gateway.tenancy.guard import Guard
from switchyard.gateway.tenancy.keys import KeyRecord, hash_key, new_key, static_records
from switchyard.gateway.upstreams import Upstreams

NAME_PATTERN = r"^[A-Za-z0-9._-]+$"
T = TypeVar("T")


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


class KeyAdmin:
    """What the key and spend routes act on; the routes are closures over one of these."""

    def __init__(self, upstreams: Upstreams, guard: Guard) -> None:
        self.upstreams = upstreams
        self.guard = guard

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


def key_routes(routes: APIRouter, admin: KeyAdmin) -> None:
    """Add the key and spend routes to ``routes`` (the admin API, its key already checked)."""

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

    @routes.get("/spend", summary="Spend in the current period against every budget")
    async def spend() -> Response:
        return _json(await admin.spend())


__all__ = ["CreateKey", "KeyAdmin", "UpdateKey", "key_routes"]
