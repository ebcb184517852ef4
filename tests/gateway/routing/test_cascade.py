"""Cascade routers (``kind: cascade``) over real sockets: simulators as the stages, a cascade
artifact built here around the shipped router with thresholds that make the verifier's and
the pre-generation rule's verdicts certain (p_correct is 0.5 with zero weights)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchyard.gateway.settings import SettingsError, build_settings
from tests.support.config_files import ADMIN_KEY, FileGateways, reload, write
from tests.support.gateways import Gateway, Simulator
from tests.support.routed import (
    CANDIDATES,
    MESSAGES,
    constant_cascade,
    feedback,
    outcome,
    routed_settings,
)

ADMIN = "cascade-admin-key-0123456789"
CHEAP, STRONG = "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"
NEVER, ALWAYS = -1e9, 1e9  # thresholds: p_correct and predicted quality lie in [0, 1]
Started = Callable[..., Gateway]


def cascade_artifact(root: Path, skip_below: float, accept_at: float) -> Path:
    """The shipped router plus a two-stage cascade CHEAP -> STRONG with a constant verifier."""
    return constant_cascade(root, [CHEAP, STRONG], skip_below, accept_at)


@pytest.fixture
def cascaded(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Started:
    """``cascaded(skip_below=NEVER, accept_at=NEVER, strong_ms=0, failing=None, **cascade)``:
    a gateway whose default router is that cascade; STRONG answers after ``strong_ms``; the
    model ``failing`` always answers 500."""
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN)

    def start(
        skip_below: float = NEVER, accept_at: float = NEVER, strong_ms: float = 0.0,
        failing: str | None = None, **cascade: Any,
    ) -> Gateway:  # fmt: skip
        urls = {}
        for name, _, _ in CANDIDATES:
            faults: dict[str, Any] = {"added_latency_ms": strong_ms} if name == STRONG else {}
            if name == failing:
                faults["error_rate"] = 1.0
            urls[name] = simulator(name, **faults).base_url
        config = routed_settings(urls, embedder_cache, {"enabled": False})
        router = config["routers"][0]
        router.update(artifact=str(cascade_artifact(tmp_path, skip_below, accept_at)),
                      kind="cascade", cascade=cascade)  # fmt: skip
        return gateway(**config)

    return start


def ask(gw: Gateway, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {"model": "auto", "messages": MESSAGES, "max_tokens": 8, "stream": stream, **extra}
    resp = gw.client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return resp


def record(gw: Gateway, decision: str) -> dict[str, Any]:
    return outcome(gw, decision, ADMIN)


def test_accepted_cheap_answer_is_served_without_escalation(cascaded: Started) -> None:
    gw = cascaded(accept_at=NEVER)
    resp = ask(gw)
    assert resp.headers["x-switchyard-cascade"] == CHEAP
    assert resp.headers["x-switchyard-model"] == CHEAP
    assert resp.json()["model"] == CHEAP
    out = record(gw, resp.headers["x-switchyard-decision-id"])
    assert [s["model"] for s in out["stages"]] == [CHEAP]
    assert out["stages"][0]["p_correct"] == 0.5
    assert gw.metric("switchyard_cascade_escalations_total", router="smart",
                     reason="verifier") == 0  # fmt: skip


def test_rejected_answer_escalates_and_the_cost_is_the_sum(cascaded: Started) -> None:
    gw = cascaded(accept_at=ALWAYS)
    resp = ask(gw)
    assert resp.headers["x-switchyard-cascade"] == f"{CHEAP},{STRONG}"
    assert resp.json()["model"] == STRONG
    out = record(gw, resp.headers["x-switchyard-decision-id"])
    first, second = out["stages"]
    assert (first["model"], first["escalated"], second["model"]) == (CHEAP, "verifier", STRONG)
    assert out["model"] == STRONG
    assert out["cost_usd"] == pytest.approx(first["cost_usd"] + second["cost_usd"])
    assert first["cost_usd"] > 0 and second["cost_usd"] > first["cost_usd"]
    tokens = first["completion_tokens"] + second["completion_tokens"]
    assert out["completion_tokens"] == tokens
    assert gw.metric("switchyard_cascade_escalations_total", router="smart",
                     reason="verifier") == 1  # fmt: skip


def test_a_completions_request_escalates_on_its_logprobs(cascaded: Started) -> None:
    gw = cascaded(verifier=False, min_mean_logprob=-1e-6)
    body = {"model": "auto", "prompt": "Name three prime numbers.", "max_tokens": 8}
    resp = gw.client.post("/v1/completions", json=body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["x-switchyard-cascade"] == f"{CHEAP},{STRONG}"
    assert resp.json()["model"] == STRONG
    first = record(gw, resp.headers["x-switchyard-decision-id"])["stages"][0]
    assert first["escalated"] == "logprobs" and first["mean_logprob"] < 0


def test_feedback_scores_the_final_stage(cascaded: Started) -> None:
    gw = cascaded(accept_at=ALWAYS)
    decision = ask(gw).headers["x-switchyard-decision-id"]
    assert feedback(gw.url, decision, 1.0).status_code == 200
    assert gw.metric("switchyard_feedback_score_count", router="smart", model=STRONG) == 1
    assert gw.metric("switchyard_feedback_score_count", router="smart", model=CHEAP) == 0


def test_max_escalations_zero_serves_the_first_stage(cascaded: Started) -> None:
    gw = cascaded(accept_at=ALWAYS, max_escalations=0)
    resp = ask(gw)
    assert resp.headers["x-switchyard-cascade"] == CHEAP
    assert resp.json()["model"] == CHEAP


def test_hard_prompt_skips_the_cheap_stage_before_generation(cascaded: Started) -> None:
    gw = cascaded(skip_below=ALWAYS, accept_at=ALWAYS)
    resp = ask(gw)
    assert resp.headers["x-switchyard-model"] == STRONG
    assert resp.headers["x-switchyard-cascade"] == STRONG
    out = record(gw, resp.headers["x-switchyard-decision-id"])
    assert [s["model"] for s in out["stages"]] == [STRONG]


def test_latency_budget_abandons_a_slow_stronger_stage(cascaded: Started) -> None:
    gw = cascaded(accept_at=ALWAYS, strong_ms=3000, latency_budget_ms=600)
    resp = ask(gw)
    assert resp.headers["x-switchyard-cascade"] == CHEAP
    assert resp.json()["model"] == CHEAP
    out = record(gw, resp.headers["x-switchyard-decision-id"])
    assert out["latency_s"] < 2.5
    assert [(s["model"], s["status"]) for s in out["stages"]] == [(CHEAP, "200"),
                                                                   (STRONG, "budget")]  # fmt: skip
    assert gw.metric("switchyard_cascade_stops_total", router="smart",
                     reason="latency_budget") == 1  # fmt: skip


def test_a_failing_stronger_stage_leaves_the_first_answer(cascaded: Started) -> None:
    gw = cascaded(accept_at=ALWAYS, failing=STRONG)
    resp = ask(gw)
    assert resp.headers["x-switchyard-cascade"] == CHEAP
    assert resp.json()["model"] == CHEAP
    out = record(gw, resp.headers["x-switchyard-decision-id"])
    assert [s["model"] for s in out["stages"]] == [CHEAP, STRONG]
    assert out["stages"][1]["status"] != "200" and out["model"] == CHEAP
    assert gw.metric("switchyard_cascade_stops_total", router="smart",
                     reason="stage_failed") == 1  # fmt: skip


def test_a_failing_first_stage_is_an_error_with_its_outcome_recorded(cascaded: Started) -> None:
    gw = cascaded(accept_at=ALWAYS, failing=CHEAP)
    body = {"model": "auto", "messages": MESSAGES, "max_tokens": 8}
    resp = gw.client.post("/v1/chat/completions", json=body)
    assert resp.status_code >= 500 and resp.json()["error"]["message"]
    out = record(gw, resp.headers["x-switchyard-decision-id"])
    assert out["status"] == str(resp.status_code)
    assert [s["model"] for s in out["stages"]] == [CHEAP]


def test_streamed_request_gets_only_the_pre_generation_choice(cascaded: Started) -> None:
    gw = cascaded(accept_at=ALWAYS)
    resp = ask(gw, stream=True)
    assert resp.headers["x-switchyard-cascade"] == CHEAP
    assert f'"model":"{CHEAP}"' in resp.text
    assert STRONG not in resp.text
    assert gw.metric("switchyard_cascade_escalations_total", router="smart",
                     reason="verifier") == 0  # fmt: skip


def test_low_logprobs_escalate_without_the_verifier(cascaded: Started) -> None:
    gw = cascaded(accept_at=NEVER, verifier=False, min_mean_logprob=-1e-6)
    resp = ask(gw)
    assert resp.headers["x-switchyard-cascade"] == f"{CHEAP},{STRONG}"
    out = record(gw, resp.headers["x-switchyard-decision-id"])
    assert out["stages"][0]["escalated"] == "logprobs"
    assert out["stages"][0]["mean_logprob"] < -1e-6


def test_logprobs_asked_for_the_cascade_are_removed_from_the_answer(cascaded: Started) -> None:
    gw = cascaded(accept_at=NEVER, min_mean_logprob=-50.0)
    plain = ask(gw)
    assert plain.headers["x-switchyard-cascade"] == CHEAP
    assert plain.json()["choices"][0]["logprobs"] is None
    assert "mean_logprob" in record(gw, plain.headers["x-switchyard-decision-id"])["stages"][0]
    asked = ask(gw, logprobs=True)
    assert asked.json()["choices"][0]["logprobs"]["content"]


def test_bad_cascade_settings_are_refused_with_the_field(tmp_path: Path) -> None:
    urls = {name: "http://127.0.0.1:9/v1" for name, _, _ in CANDIDATES}
    config = routed_settings(urls, tmp_path)
    config["routers"][0]["kind"] = "cascade"  # the shipped router has no cascade.json
    with pytest.raises(SettingsError, match=r"routers\.0: kind cascade needs a directory"):
        build_settings(config)
    config["routers"][0].update(kind="router", cascade={"max_escalations": 1})
    with pytest.raises(SettingsError, match="only a router of kind 'cascade'"):
        build_settings(config)
    config["routers"][0].update(kind="cascade", cascade={"max_escalations": -1},
                                artifact=str(cascade_artifact(tmp_path, NEVER, NEVER)))  # fmt: skip
    with pytest.raises(SettingsError, match="max_escalations"):
        build_settings(config)
    config["routers"][0].update(cascade=None, candidates=[CHEAP, "mistralai/mistral-7b-chat"])
    with pytest.raises(SettingsError, match="at least two of its stages"):
        build_settings(config)


def test_a_reload_that_changes_only_the_kind_starts_and_stops_the_cascade(
    simulator: Callable[..., Simulator], embedder_cache: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN_KEY)
    urls = {name: simulator(name).base_url for name, _, _ in CANDIDATES}
    config = routed_settings(urls, embedder_cache, {"enabled": False})
    router = config["routers"][0]
    router.update(artifact=str(cascade_artifact(tmp_path, NEVER, ALWAYS)),
                  candidates=[CHEAP, STRONG])  # fmt: skip
    path = tmp_path / "switchyard.yaml"
    write(path, config)
    files = FileGateways()
    try:
        gw = files.start(path)
        assert "x-switchyard-cascade" not in ask(gw).headers  # the same artifact, one-shot
        router["kind"] = "cascade"
        write(path, config)
        assert reload(gw).status_code == 200
        assert ask(gw).headers["x-switchyard-cascade"] == f"{CHEAP},{STRONG}"
        router["kind"] = "router"
        write(path, config)
        assert reload(gw).status_code == 200
        assert "x-switchyard-cascade" not in ask(gw).headers
    finally:
        files.stop()
