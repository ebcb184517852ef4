"""Spend budgets in USD, per key and per tenant, against real usage times model prices.

A request is admitted while the period's spend plus its prompt estimate fits the budget; its
real cost (the simulator's usage times the configured prices) is added after the response. Once
the budget is used up the gateway answers 429 ``insufficient_quota``/``budget_exceeded``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from switchyard.gateway.tenancy.keys import new_key
from switchyard.gateway.tenancy.tokens import estimate_prompt_tokens
from tests.support.gateways import Gateway, Simulator, model_entry

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "What is a switchyard?"}]
PRICE_IN, PRICE_OUT = 1000.0, 2000.0  # USD per 1M tokens: cents per request, for short tests
MAX_TOKENS = 10
ADMIN_KEY = "admin-" + "b" * 24
KEY_NAMES = ("alice", "bob", "carol", "dave")


def cost(prompt_tokens: int, completion_tokens: int) -> float:
    """As the gateway prices a request (``ModelConfig.cost_usd``)."""
    return (prompt_tokens * PRICE_IN + completion_tokens * PRICE_OUT) / 1e6


ESTIMATE_USD = cost(estimate_prompt_tokens({"messages": PROMPT}), 0)


@pytest.fixture
def gw(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[Gateway, dict[str, str]]:
    """alice: own budget $0.10; bob and carol: tenant "acme", $0.15 together; dave: tenant
    "other", no budget. Returns the gateway and the keys by name."""
    keys = {name: new_key() for name in KEY_NAMES}
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "budget-secret")
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    for name, key in keys.items():
        monkeypatch.setenv(f"TEST_KEY_{name.upper()}", key)
    tenants = {"bob": "acme", "carol": "acme", "dave": "other"}
    entries: list[dict[str, Any]] = [
        {"name": name, "key_env": f"TEST_KEY_{name.upper()}", "tenant": tenants.get(name, "solo")}
        for name in KEY_NAMES
    ]
    entries[0]["limits"] = {"budget_usd": 0.10}
    auth = {
        "enabled": True,
        "keys": entries,
        "tenants": [{"name": "acme", "budget_usd": 0.15, "budget_period": "day"}],
    }
    sim = simulator("m")
    model = model_entry("m", sim.base_url, price_in=PRICE_IN, price_out=PRICE_OUT)
    return gateway([model], auth=auth), keys


def chat(gateway: Gateway, key: str) -> float:
    """One request; its cost from the usage the backend reported."""
    with openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0) as client:
        reply = client.chat.completions.create(model="m", messages=PROMPT, max_tokens=MAX_TOKENS)
    assert reply.usage is not None and reply.usage.completion_tokens == MAX_TOKENS
    return cost(reply.usage.prompt_tokens, reply.usage.completion_tokens)


def spend_until_refused(
    gateway: Gateway, keys: list[str], budget: float, limit: int = 30
) -> tuple[float, openai.RateLimitError]:
    """Send requests (round robin over ``keys``) while they succeed. Each must succeed exactly
    when the spend so far plus its estimate fits ``budget``. Returns the spend and the 429."""
    spent = 0.0
    for i in range(limit):
        fits = spent + ESTIMATE_USD <= budget
        try:
            spent += chat(gateway, keys[i % len(keys)])
        except openai.RateLimitError as err:
            assert not fits, f"refused at ${spent:.4f} of ${budget}, estimate ${ESTIMATE_USD}"
            assert i >= 2, "the budget should allow a few requests"
            return spent, err
        assert fits, f"admitted at ${spent:.4f} of ${budget}"
    raise AssertionError(f"{limit} requests and no 429")


def spend_metric(gateway: Gateway) -> dict[tuple[str, str], float]:
    """``switchyard_spend_usd_total`` by (key, tenant), read from the live /metrics text."""
    text = gateway.client.get("/metrics").text
    return {
        (s.labels["key"], s.labels["tenant"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "switchyard_spend_usd_total"
    }


def admin_spend(gateway: Gateway) -> dict[str, dict[str, Any]]:
    """``GET /admin/spend`` by key name and tenant name (rows are ``key:``/``tenant:``)."""
    response = httpx.get(
        f"{gateway.url}/admin/spend", headers={"authorization": f"Bearer {ADMIN_KEY}"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    rows = {f"key:{r['name']}": r for r in body["keys"]}
    return rows | {f"tenant:{r['name']}": r for r in body["tenants"]}


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    """Spend is settled off the request path: wait (briefly) until ``check`` holds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def assert_budget_error(err: openai.RateLimitError, owner: str) -> None:
    assert err.status_code == 429
    assert err.type == "insufficient_quota"
    assert err.code == "budget_exceeded"
    assert err.response.json()["error"]["message"] == (
        f"the {owner}'s spend budget is used up for this period"
    )
    retry_after = int(err.response.headers["retry-after"])
    assert 0 < retry_after <= 31 * 86400  # until the period ends


def test_a_key_budget_admits_requests_until_it_is_spent(
    gw: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, keys = gw
    spent, err = spend_until_refused(gateway, [keys["alice"]], 0.10)
    assert_budget_error(err, "key")
    assert 0.10 - ESTIMATE_USD < spent <= 0.10 + cost(0, MAX_TOKENS)
    with pytest.raises(openai.RateLimitError):  # still refused: nothing was spent meanwhile
        chat(gateway, keys["alice"])
    assert chat(gateway, keys["dave"]) > 0  # other keys are not affected
    assert gateway.metric("switchyard_rate_limited_total", key="alice", limit="budget") == 2


def test_a_tenant_budget_is_shared_by_its_keys(gw: tuple[Gateway, dict[str, str]]) -> None:
    gateway, keys = gw
    spent, err = spend_until_refused(gateway, [keys["bob"], keys["carol"]], 0.15)
    assert_budget_error(err, "tenant")
    for name in ("bob", "carol"):
        with pytest.raises(openai.RateLimitError):
            chat(gateway, keys[name])
    assert chat(gateway, keys["dave"]) > 0  # another tenant
    assert chat(gateway, keys["alice"]) > 0
    eventually(lambda: admin_spend(gateway)["tenant:acme"]["spend_usd"] == pytest.approx(spent))


def test_spend_is_visible_in_metrics_and_the_admin_api(
    gw: tuple[Gateway, dict[str, str]],
) -> None:
    gateway, keys = gw
    expected = {name: 0.0 for name in KEY_NAMES}
    for name in ("alice", "alice", "bob", "carol", "carol", "carol", "dave"):
        expected[name] += chat(gateway, keys[name])

    metric = spend_metric(gateway)
    assert metric[("alice", "solo")] == pytest.approx(expected["alice"])
    assert metric[("bob", "acme")] == pytest.approx(expected["bob"])
    assert metric[("carol", "acme")] == pytest.approx(expected["carol"])
    assert metric[("dave", "other")] == pytest.approx(expected["dave"])

    acme = expected["bob"] + expected["carol"]
    eventually(lambda: admin_spend(gateway)["tenant:acme"]["spend_usd"] == pytest.approx(acme))
    rows = admin_spend(gateway)
    alice = rows["key:alice"]
    assert alice["spend_usd"] == pytest.approx(expected["alice"])
    assert alice["budget_usd"] == 0.10 and alice["budget_period"] == "month"
    assert alice["remaining_usd"] == pytest.approx(0.10 - expected["alice"])
    assert alice["period"] == time.strftime("%Y-%m", time.gmtime())
    tenant = rows["tenant:acme"]
    assert tenant["budget_usd"] == 0.15 and tenant["budget_period"] == "day"
    assert tenant["period"] == time.strftime("%Y-%m-%d", time.gmtime())
    assert 0 < tenant["resets_in_s"] <= 86400
    # Without a budget nothing is counted in the store: shown as unknown, not as zero.
    assert rows["key:dave"]["budget_usd"] is None and rows["key:dave"]["spend_usd"] is None
    assert rows["tenant:other"]["spend_usd"] is None
