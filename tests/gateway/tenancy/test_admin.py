"""The tenant side of the admin API (``switchyard.gateway.tenancy.admin``): dynamic keys from
creation to revocation, static keys read-only, and spend against every budget.

The gateway is started from a YAML file (as ``switchyard serve`` does) so that a reload
re-reads it; every call travels over a real socket, API calls through the openai SDK.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest

from tests.support.admin import ADMIN_KEY, PROMPT, Stack, error_of
from tests.support.gateways import Gateway, Simulator, model_entry

# --- keys --------------------------------------------------------------------------------


def test_a_dynamic_key_from_creation_to_revocation(stack: Stack) -> None:
    with stack.admin() as admin:
        created = admin.post("/keys", json={"name": "team-a", "tenant": "acme"})
        assert created.status_code == 201, created.text
        record = created.json()
        key = record.pop("key")
        assert key.startswith("sk-sy-")
        assert record["name"] == "team-a" and record["tenant"] == "acme"
        assert record["id"].startswith("key_") and record["revoked"] is False
        assert "key_hash" not in record

        assert stack.chat(key)  # the new key works at once

        listing = admin.get("/keys")
        assert listing.status_code == 200
        rows = {r["name"]: r for r in listing.json()["data"]}
        assert set(rows) == {"ops", "team-a"}
        assert rows["ops"]["static"] is True and rows["team-a"]["static"] is False
        assert rows["team-a"] == record
        assert all("key" not in r and "key_hash" not in r for r in rows.values())
        assert key not in listing.text and stack.static_key not in listing.text

        stack.config["models"].append(model_entry("n", stack.sim.base_url, upstream_model="m"))
        stack.write(stack.config)
        assert admin.post("/config/reload").status_code == 200
        patched = admin.patch(f"/keys/{record['id']}", json={"models": ["n"], "name": "team-b"})
        assert patched.status_code == 200, patched.text
        assert patched.json()["models"] == ["n"] and patched.json()["name"] == "team-b"
        assert patched.json()["tenant"] == "acme"  # unchanged
        with pytest.raises(openai.PermissionDeniedError):
            stack.chat(key, "m")  # the new allow-list applies at once
        assert stack.chat(key, "n")
        assert stack.models(key) == ["n"]

        revoked = admin.delete(f"/keys/{record['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked"] is True
        with pytest.raises(openai.AuthenticationError) as caught:
            stack.chat(key, "n")  # at once, on the same gateway
        assert caught.value.code == "revoked_api_key"
        kept = {r["id"]: r for r in admin.get("/keys").json()["data"]}
        assert kept[record["id"]]["revoked"] is True  # kept for audit


def test_limits_of_a_dynamic_key_can_be_changed(stack: Stack) -> None:
    with stack.admin() as admin:
        created = admin.post("/keys", json={"name": "limited", "limits": {"rpm": 100}}).json()
        assert created["limits"]["rpm"] == 100
        with stack.sdk(created["key"]) as client:
            raw = client.chat.completions.with_raw_response.create(model="m", messages=PROMPT)
        assert raw.headers["x-ratelimit-limit-requests"] == "100"
        patched = admin.patch(f"/keys/{created['id']}", json={"limits": {"rpm": 1}})
        assert patched.json()["limits"]["rpm"] == 1
    with pytest.raises(openai.RateLimitError):  # one per minute, and one was sent
        stack.chat(created["key"])


def test_static_keys_are_read_only(stack: Stack) -> None:
    with stack.admin() as admin:
        for response in (
            admin.patch("/keys/static_ops", json={"models": ["m"]}),
            admin.delete("/keys/static_ops"),
        ):
            error = error_of(response, 409)
            assert error["code"] == "static_key"
            assert "static (set in the config file)" in error["message"]
    assert stack.chat(stack.static_key)  # untouched


def test_keys_cannot_be_created_before_the_hashing_secret_is_set(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    monkeypatch.delenv("SWITCHYARD_KEY_SECRET", raising=False)
    gw = gateway([model_entry("m", simulator("m").base_url)])  # auth off: no secret needed
    response = gw.client.post(
        "/admin/keys", json={"name": "k"}, headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert error_of(response, 409)["message"] == (
        "set SWITCHYARD_KEY_SECRET (the secret keys are hashed with) first"
    )


def test_unknown_keys_are_404(stack: Stack) -> None:
    with stack.admin() as admin:
        for response in (admin.patch("/keys/key_nope", json={}), admin.delete("/keys/key_nope")):
            assert error_of(response, 404)["message"] == "no key with id 'key_nope'"


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"name": "x", "models": ["gpt-9"]}, 400, "unknown model(s): gpt-9"),
        ({"name": "ops"}, 409, "a key named 'ops' already exists"),
        ({"name": "has space"}, 400, "invalid request"),
        ({"name": "x", "secret": "y"}, 400, "invalid request"),
        ({"name": "x", "limits": {"rpm": 0}}, 400, "invalid request"),
        ({}, 400, "invalid request"),
    ],
    ids=["unknown-model", "name-taken", "bad-name", "extra-field", "bad-limit", "no-name"],
)
def test_creating_a_key_validates_the_body(
    stack: Stack, body: dict[str, Any], status: int, says: str
) -> None:
    with stack.admin() as admin:
        assert says in error_of(admin.post("/keys", json=body), status)["message"]
        assert [r["name"] for r in admin.get("/keys").json()["data"]] == ["ops"]


# --- spend -------------------------------------------------------------------------------


def test_spend_lists_every_key_and_tenant_with_budgets(stack: Stack) -> None:
    with stack.admin() as admin:
        created = admin.post(
            "/keys", json={"name": "b", "tenant": "acme", "limits": {"budget_usd": 1}}
        ).json()
        stack.chat(created["key"])
        body = admin.get("/spend").json()
    keys = {r["name"]: r for r in body["keys"]}
    assert keys["ops"]["budget_usd"] is None and keys["ops"]["spend_usd"] is None
    assert keys["b"]["budget_usd"] == 1 and keys["b"]["spend_usd"] > 0
    assert keys["b"]["remaining_usd"] == pytest.approx(1 - keys["b"]["spend_usd"])
    tenants = {r["name"]: r for r in body["tenants"]}
    assert set(tenants) == {"acme", "default"}
    assert tenants["acme"]["spend_usd"] == pytest.approx(keys["b"]["spend_usd"])
    assert tenants["default"]["spend_usd"] is None
