"""Feedback belongs to whoever made the routed request: two keys on two tenants (and a second
key of the first tenant). Only the deciding key may score a decision (or, with
``routing.feedback_from: tenant``, its tenant's keys), every score takes one request from the
key's rpm limit, and a tenant-scoped bandit learns each tenant's feedback apart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from switchyard.gateway.tenancy.keys import new_key
from tests.support.gateways import Gateway, Simulator
from tests.support.redis import RedisServer
from tests.support.routed import CANDIDATES, eventually, metric, routed_settings

# name: (tenant, limits)
KEYS = {"alice": ("acme", {}), "carol": ("acme", {}), "bob": ("globex", {}),
        "dora": ("acme", {"rpm": 3})}  # fmt: skip


@pytest.fixture
def tenants(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., tuple[Gateway, dict[str, str]]]:
    """``tenants(bandit=..., **routing)``: a routed gateway with auth on and the KEYS."""
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "feedback-owner-secret")
    keys = {name: new_key() for name in KEYS}
    for name, key in keys.items():
        monkeypatch.setenv(f"OWNER_KEY_{name.upper()}", key)
    entries = [
        {"name": name, "key_env": f"OWNER_KEY_{name.upper()}", "tenant": tenant, "limits": lim}
        for name, (tenant, lim) in KEYS.items()
    ]

    def start(
        bandit: dict[str, Any] | None = None, redis_url: str | None = None, **routing: Any
    ) -> tuple[Gateway, dict[str, str]]:
        urls = {name: simulator(name).base_url for name, _, _ in CANDIDATES}
        config = routed_settings(urls, embedder_cache, bandit, **routing)
        if redis_url is not None:
            config["state"] = {"redis_url": redis_url, "timeout_s": 1.0}
        return gateway(**config, auth={"enabled": True, "keys": entries}), keys

    return start


def route(gw: Gateway, key: str) -> str:
    """The decision id of one routed chat completion made with ``key``."""
    with openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Prove Fermat's little theorem."}],
            max_tokens=2,
        )  # fmt: skip
    return raw.headers["x-switchyard-decision-id"]


def score(gw: Gateway, key: str, decision: str, value: float = 1.0) -> httpx.Response:
    body = {"decision_id": decision, "score": value}
    return gw.client.post("/v1/feedback", json=body, headers={"authorization": f"Bearer {key}"})


def assert_forbidden(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["x-request-id"]
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["code"]) == ("permission_error", "not_decision_owner")


def test_only_the_key_that_made_a_routed_request_may_score_it(
    tenants: Callable[..., tuple[Gateway, dict[str, str]]],
) -> None:
    gw, keys = tenants()
    decision = route(gw, keys["alice"])
    assert_forbidden(score(gw, keys["bob"], decision))  # another tenant
    assert_forbidden(score(gw, keys["carol"], decision))  # another key of the same tenant
    assert gw.metric("switchyard_bandit_observations", router="smart") == 0
    answered = score(gw, keys["alice"], decision)
    assert answered.status_code == 200 and answered.json()["decision_id"] == decision
    assert gw.metric("switchyard_bandit_observations", router="smart") == 1


def test_with_feedback_from_tenant_any_key_of_the_tenant_may_score(
    tenants: Callable[..., tuple[Gateway, dict[str, str]]],
) -> None:
    gw, keys = tenants(feedback_from="tenant")
    decision = route(gw, keys["alice"])
    assert_forbidden(score(gw, keys["bob"], decision))
    assert score(gw, keys["carol"], decision).status_code == 200


def test_feedback_takes_from_the_keys_request_limit(
    tenants: Callable[..., tuple[Gateway, dict[str, str]]],
) -> None:
    gw, keys = tenants()
    decision = route(gw, keys["dora"])  # 1 of 3 requests a minute
    assert score(gw, keys["dora"], decision).status_code == 200  # 2
    assert score(gw, keys["dora"], decision).status_code == 200  # 3 (the first score stays)
    refused = score(gw, keys["dora"], decision)
    assert refused.status_code == 429, refused.text
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert refused.headers["retry-after"]


def test_a_tenant_scoped_bandit_learns_each_tenants_feedback_apart(
    tenants: Callable[..., tuple[Gateway, dict[str, str]]],
) -> None:
    gw, keys = tenants(bandit={"scope": "tenant", "noise": 0.0})
    acme = [route(gw, keys["alice"]) for _ in range(3)]
    globex = route(gw, keys["bob"])
    for decision in acme:
        assert score(gw, keys["alice"], decision, 0.0).status_code == 200
    assert gw.metric("switchyard_bandit_observations", router="smart@acme") == 3
    assert gw.metric("switchyard_bandit_observations", router="smart@globex") == 0
    assert gw.metric("switchyard_bandit_observations", router="smart") == 0
    assert score(gw, keys["bob"], globex, 1.0).status_code == 200
    assert gw.metric("switchyard_bandit_observations", router="smart@globex") == 1
    assert gw.metric("switchyard_bandit_observations", router="smart@acme") == 3


def test_two_replicas_on_redis_check_the_owner_and_keep_each_tenants_statistics_apart(
    tenants: Callable[..., tuple[Gateway, dict[str, str]]], redis_server: RedisServer
) -> None:
    scoped = {"scope": "tenant", "noise": 0.0}
    a, keys = tenants(bandit=scoped, redis_url=redis_server.url, refresh_s=0.1)
    b, _ = tenants(bandit=scoped, redis_url=redis_server.url, refresh_s=0.1)
    decision = route(a, keys["alice"])  # decided on A; B reads it from Redis
    eventually(lambda: score(b, keys["bob"], decision).status_code != 404, what="shared")
    assert_forbidden(score(b, keys["bob"], decision))
    assert score(b, keys["alice"], decision, 0.0).status_code == 200
    eventually(
        lambda: metric(a.url, "switchyard_bandit_observations", router="smart@acme") == 1,
        what="A holds acme's observation, learned on B",
    )
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    try:
        steps = {str(k): int(client.hget(k, "step") or 0)
                 for k in client.keys("{switchyard}:bandit:*")}  # fmt: skip
    finally:
        client.close()
    assert [step for key, step in steps.items() if key.endswith(":tenant:acme")] == [1]
    assert sum(steps.values()) == 1, steps  # no global statistics, no other tenant's
