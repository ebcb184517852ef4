"""Shadow mode over real sockets: a routed gateway in front of four simulators (the
RouterBench candidates), the user's model forced with ``switchyard.models`` so the shadow
candidates are known. A sampled request's other candidates answer in the background, their
outputs land beside the outcome record (admin API, Redis stream, ``outcomes export``), the
user's answer never waits for them, the bounds drop and count, a failing shadow backend
costs the user nothing, and with the section absent nothing is shadowed at all."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from switchyard.cli import app as cli
from switchyard.gateway.settings import Capability
from switchyard.gateway.shadow import Bounds
from switchyard.gateway.shadow_config import ShadowConfig
from switchyard.gateway.shadow_text import answer_text
from switchyard.routers.datasets.outputs import read_outputs_jsonl
from tests.support.embedders import link_embedders
from tests.support.gateways import Gateway, Simulator, wait_for
from tests.support.redis import RedisServer
from tests.support.routed import CANDIDATES, MESSAGES, routed_settings, stream

ADMIN = "shadow-admin-key-0123456789"
USER = "mistralai/mistral-7b-chat"  # the model every test's requests are routed to
SHADOWS = [name for name, _, _ in CANDIDATES if name != USER]
Started = Callable[..., Gateway]
sims: dict[str, Simulator] = {}  # the last ``shadowed`` gateway's simulators, by model


@pytest.fixture
def shadowed(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Started:
    """``shadowed(shadow={...}, slow_ms=0, failing=None, **sections)``: the routed gateway;
    the shadow candidates answer after ``slow_ms``, the model ``failing`` always with 500."""
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN)
    sims.clear()

    def start(
        shadow: dict[str, Any] | None = None,
        slow_ms: float = 0.0,
        failing: str | None = None,
        **sections: Any,
    ) -> Gateway:
        urls = {}
        for name, _, _ in CANDIDATES:
            faults: dict[str, Any] = {"added_latency_ms": slow_ms} if name != USER else {}
            if name == failing:
                faults["error_rate"] = 1.0
            sims[name] = simulator(name, **faults)
            urls[name] = sims[name].base_url
        config = routed_settings(urls, embedder_cache)
        if shadow is not None:
            config["shadow"] = {"seed": 0, "max_rate_per_s": 100, **shadow}
        return gateway(**config, **sections)

    return start


def ask(gw: Gateway, prompt: str = "", stream: bool = False) -> httpx.Response:
    messages = MESSAGES if not prompt else [{"role": "user", "content": prompt}]
    body = {"model": "auto", "messages": messages, "max_tokens": 8, "stream": stream,
            "switchyard": {"models": [USER]}}  # fmt: skip
    resp = gw.client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-switchyard-model"] == USER
    return resp


def records(gw: Gateway) -> dict[str, dict[str, Any]]:
    """The admin API's outcome records, by decision id."""
    resp = gw.client.get("/admin/outcomes", headers={"authorization": f"Bearer {ADMIN}"})
    assert resp.status_code == 200, resp.text
    lines = [orjson.loads(line) for line in resp.content.splitlines() if line.strip()]
    return {r["decision_id"]: r for r in lines}


def shadowed_record(gw: Gateway, decision: str, timeout: float = 15.0) -> dict[str, Any]:
    wait_for(lambda: bool(records(gw).get(decision, {}).get("outputs")), timeout)
    return records(gw)[decision]


def calls(gw: Gateway, status: str = "200") -> float:
    return sum(gw.metric("switchyard_shadow_calls_total", model=m, status=status) for m in SHADOWS)


def test_a_sampled_request_gets_every_other_candidates_answer_beside_its_record(
    shadowed: Started,
) -> None:
    gw = shadowed({"enabled": True, "sample": 1.0})
    resp = ask(gw)
    record = shadowed_record(gw, resp.headers["x-switchyard-decision-id"])
    assert record["prompt"] == MESSAGES
    outputs = record["outputs"]
    assert set(outputs) == {name for name, _, _ in CANDIDATES}
    own = outputs[USER]
    assert own["shadow"] is False
    assert own["text"] == resp.json()["choices"][0]["message"]["content"]
    assert own["cost_usd"] == record["cost_usd"] and own["usage"]["completion_tokens"] > 0
    for name in SHADOWS:
        out = outputs[name]
        assert out["shadow"] is True and out["status"] == "200"
        assert out["text"] and out["usage"]["completion_tokens"] <= 8
        assert out["cost_usd"] > 0
        assert gw.metric("switchyard_shadow_calls_total", model=name, status="200") == 1
        assert gw.metric("switchyard_shadow_spend_usd_total", model=name) == out["cost_usd"]
    assert gw.metric("switchyard_shadow_sampled_total", router="smart") == 1


def test_a_streamed_answer_is_assembled_from_the_relayed_chunks(shadowed: Started) -> None:
    gw = shadowed({"enabled": True, "sample": 1.0})
    resp = ask(gw, stream=True)
    text = ""
    for line in resp.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            for choice in orjson.loads(line[6:])["choices"]:
                text += choice["delta"].get("content") or ""
    record = shadowed_record(gw, resp.headers["x-switchyard-decision-id"])
    assert text and record["outputs"][USER]["text"] == text
    assert all(record["outputs"][name]["status"] == "200" for name in SHADOWS)


def test_the_users_answer_does_not_wait_for_slow_shadow_calls(shadowed: Started) -> None:
    gw = shadowed({"enabled": True, "sample": 1.0}, slow_ms=2000)
    ask(gw)  # warm: connections, the embedder's first batch
    wait_for(lambda: calls(gw) == 3, timeout=15)
    started = time.perf_counter()
    resp = ask(gw)
    took = time.perf_counter() - started
    assert took < 1.0, f"the user waited {took:.2f} s"
    assert calls(gw) == 3, "a shadow call of the second request finished before its answer"
    record = shadowed_record(gw, resp.headers["x-switchyard-decision-id"])
    assert all(record["outputs"][name]["status"] == "200" for name in SHADOWS)


@pytest.mark.parametrize(
    ("bounds", "reason", "dropped"),
    [
        ({"max_concurrent": 1}, "concurrency", 2),  # one slot for three calls
        ({"max_rate_per_s": 0.001}, "rate", 2),  # a bucket of one token, refilled slowly
    ],
)
def test_shadow_calls_over_a_bound_are_dropped_and_counted(
    shadowed: Started, bounds: dict[str, Any], reason: str, dropped: int
) -> None:
    gw = shadowed({"enabled": True, "sample": 1.0, **bounds}, slow_ms=300)
    resp = ask(gw)
    record = shadowed_record(gw, resp.headers["x-switchyard-decision-id"])
    assert gw.metric("switchyard_shadow_dropped_total", reason=reason) == dropped
    assert calls(gw) == 3 - dropped
    assert len(record["outputs"]) == 1 + 3 - dropped  # the user's and the calls made
    others = {"concurrency", "rate", "budget"} - {reason}
    assert all(gw.metric("switchyard_shadow_dropped_total", reason=r) == 0 for r in others)


def test_shadow_calls_stop_once_the_hourly_budget_is_spent(shadowed: Started) -> None:
    gw = shadowed({"enabled": True, "sample": 1.0, "budget_usd_per_hour": 1e-9})
    first = ask(gw)
    shadowed_record(gw, first.headers["x-switchyard-decision-id"])  # spent: over the budget
    assert gw.metric("switchyard_shadow_dropped_total", reason="budget") == 0
    second = ask(gw)
    wait_for(lambda: gw.metric("switchyard_shadow_dropped_total", reason="budget") == 3)
    assert calls(gw) == 3
    time.sleep(0.2)
    assert not records(gw)[second.headers["x-switchyard-decision-id"]]["outputs"]


def test_a_failing_shadow_backend_does_not_touch_the_users_request(shadowed: Started) -> None:
    broken = SHADOWS[0]
    gw = shadowed({"enabled": True, "sample": 1.0}, failing=broken)
    resp = ask(gw)
    assert resp.json()["choices"][0]["message"]["content"]
    record = shadowed_record(gw, resp.headers["x-switchyard-decision-id"])
    assert record["status"] == "200"
    assert record["outputs"][broken] == {"text": None, "status": "500", "usage": None,
                                         "cost_usd": None, "shadow": True}  # fmt: skip
    assert gw.metric("switchyard_shadow_calls_total", model=broken, status="500") == 1
    assert calls(gw) == 2


def test_shadow_mode_is_off_by_default_and_calls_no_other_model(shadowed: Started) -> None:
    gw = shadowed()
    assert gw.settings.shadow.enabled is False and gw.server.app.proxy.shadow is None
    resp = ask(gw)
    time.sleep(0.3)  # time enough for shadow calls, were there any
    record = records(gw)[resp.headers["x-switchyard-decision-id"]]
    assert record["outputs"] is None and record["prompt"] is None
    assert sims[USER].metric("vllm:request_success_total") == 1
    assert all(sims[name].metric("vllm:request_success_total") == 0 for name in SHADOWS)


@pytest.fixture(scope="module")
def label_free_cache(embedder_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return link_embedders(tmp_path_factory.mktemp("shadow-labelfree-cache"), embedder_cache)


def test_exported_shadow_outputs_train_a_label_free_router(
    shadowed: Started, tmp_path: Path, label_free_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 36 shadow calls in well under a second: past the default bounds some would be dropped
    gw = shadowed({"enabled": True, "sample": 1.0, "max_rate_per_s": 10_000, "max_concurrent": 64})
    decisions = [
        ask(gw, f"Question {i}: name a prime number above {i * 7}.").headers[
            "x-switchyard-decision-id"
        ]
        for i in range(12)
    ]
    for decision in decisions:
        shadowed_record(gw, decision)
    out = tmp_path / "shadow.jsonl"
    runner = CliRunner()
    done = runner.invoke(cli, ["outcomes", "export", "--gateway", gw.url, "--format", "outputs",
                               "--out", str(out)])  # fmt: skip
    assert done.exit_code == 0, done.output
    outputs = read_outputs_jsonl(out)  # label-free training's own loader
    assert len(outputs) == 12 and set(outputs.data.models) == {n for n, _, _ in CANDIDATES}
    assert all(text is not None for row in outputs.texts for text in row)
    assert outputs.data.cost is not None and (outputs.data.cost > 0).all()
    trained = tmp_path / "router"
    done = runner.invoke(cli, ["train", "--label-free", "--router", "knn", "--param", "k=3",
                               "--data", str(out), "--out", str(trained),
                               "--cache-dir", str(label_free_cache)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "label-free from 12 prompts" in done.output
    assert (trained / "router.json").exists()


def test_with_redis_the_outputs_follow_the_record_in_the_stream_and_export_merges_them(
    shadowed: Started, redis_server: RedisServer, tmp_path: Path
) -> None:
    redis_url = redis_server.url
    gw = shadowed({"enabled": True, "sample": 1.0}, state={"redis_url": redis_url})
    decision = ask(gw).headers["x-switchyard-decision-id"]

    def kinds() -> list[str]:
        return [kind for kind, data in stream(redis_url) if data.get("decision_id") == decision]

    wait_for(lambda: kinds() == ["outcome", "shadow"])
    shadow = next(d for k, d in stream(redis_url) if k == "shadow")
    assert shadow["router"] == "smart" and shadow["prompt"] == MESSAGES
    assert set(shadow["outputs"]) == {name for name, _, _ in CANDIDATES}
    out = tmp_path / "outputs.jsonl"
    done = CliRunner().invoke(cli, ["outcomes", "export", "--redis-url", redis_url,
                                    "--format", "outputs", "--out", str(out)])  # fmt: skip
    assert done.exit_code == 0, done.output
    [line] = [orjson.loads(x) for x in out.read_bytes().splitlines()]
    assert line["id"] == decision and line["task"] == "smart"
    assert line["outputs"] == {m: o["text"] for m, o in shadow["outputs"].items()}


def test_the_budget_frees_an_hour_after_it_was_spent_and_the_rate_refills() -> None:
    now = [0.0]
    bounds = Bounds(clock=lambda: now[0])
    config = ShadowConfig(enabled=True, max_rate_per_s=0.5, budget_usd_per_hour=1.0)
    assert bounds.admit(config) is None  # a bucket of one token: one call, then none
    assert bounds.admit(config) == "rate"
    bounds.done(2.0)  # over the hourly budget
    now[0] = 2.0  # the token is back, the budget is not
    assert bounds.admit(config) == "budget"
    now[0] = 3600.5
    assert bounds.admit(config) is None and bounds.in_flight == 1


def test_a_streamed_answer_text_is_the_first_choices_deltas_and_none_when_it_broke() -> None:
    events = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
        {"choices": [{"index": 1, "delta": {"content": "other choice"}}]},
        {"choices": [{"index": 0, "delta": {"content": "lo"}}], "usage": None},
    ]
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    assert answer_text(body + b"data: [DONE]\n\n", Capability.chat, stream=True) == "Hello"
    broken = body + b'data: {"error": {"message": "upstream broke"}}\n\n'
    assert answer_text(broken, Capability.chat, stream=True) is None
    assert answer_text(b'{"choices": [{"text": "hi"}]}', Capability.completions, False) == "hi"
