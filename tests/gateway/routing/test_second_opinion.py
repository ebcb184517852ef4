"""A second opinion on a one-shot router's pick (``second_opinion:``) over real sockets: the
shipped router chooses between two simulators, a third checks its answer and a fourth answers
when they disagree. A simulator's words are a function of its seed and the prompt, so
simulators with the same seed agree on every prompt and one with another seed does not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from switchyard.gateway.settings import SettingsError, build_settings
from tests.support.gateways import Gateway, Simulator
from tests.support.routed import CANDIDATES, MESSAGES, eventually, outcome, routed_settings

ADMIN = "second-opinion-admin-key-0123"
PICKS = ("mistralai/mistral-7b-chat", "gpt-3.5-turbo-1106")  # the router chooses between these
CHECKER, STRONG = "mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"
OTHER_SEED = 7  # the checker's words under this seed open differently on MESSAGES
Started = Callable[..., tuple[Gateway, dict[str, Simulator]]]


@pytest.fixture
def checked(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Started:
    """``checked(checker_seed=0, candidates=PICKS, sims={name: options}, **second_opinion)``:
    a gateway whose default router picks among ``candidates`` and asks CHECKER (its simulator
    seeded ``checker_seed``) for a second opinion, escalating to STRONG; and its simulators."""
    monkeypatch.setenv("SWITCHYARD_ADMIN_KEY", ADMIN)

    def start(
        checker_seed: int = 0, candidates: tuple[str, ...] = PICKS,
        sims: dict[str, dict[str, Any]] | None = None, **opinion: Any,
    ) -> tuple[Gateway, dict[str, Simulator]]:  # fmt: skip
        options = sims or {}
        started = {
            name: simulator(name, seed=checker_seed if name == CHECKER else 0,
                            **options.get(name, {}))
            for name, _, _ in CANDIDATES
        }  # fmt: skip
        urls = {name: sim.base_url for name, sim in started.items()}
        config = routed_settings(urls, embedder_cache, {"enabled": False})
        config["routers"][0].update(
            candidates=list(candidates),
            second_opinion={"checker": CHECKER, "escalate_to": STRONG, **opinion},
        )
        return gateway(**config), started

    return start


def sdk(gw: Gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key="unused", max_retries=0, timeout=30)


def ask(gw: Gateway, **extra: Any) -> Any:
    """One routed chat completion through the official client: the raw response."""
    return sdk(gw).chat.completions.with_raw_response.create(
        model="auto", messages=MESSAGES, max_tokens=8, **extra
    )


def served(sim: Simulator) -> float:
    return sim.metric("vllm:request_success_total")


def test_agreeing_answers_serve_the_picks_answer_at_the_cost_of_both(checked: Started) -> None:
    gw, sims = checked()
    raw = ask(gw)
    pick = raw.headers["x-switchyard-model"]
    assert pick in PICKS
    assert raw.headers["x-switchyard-cascade"] == f"{pick},{CHECKER}"
    assert raw.parse().model == pick
    out = outcome(gw, raw.headers["x-switchyard-decision-id"], ADMIN)
    first, second = out["stages"]
    assert (first["model"], second["model"], second["agrees"]) == (pick, CHECKER, True)
    assert "escalated" not in first
    assert out["model"] == pick
    assert out["cost_usd"] == pytest.approx(first["cost_usd"] + second["cost_usd"])
    assert served(sims[STRONG]) == 0
    assert gw.metric("switchyard_cascade_escalations_total", router="smart",
                     reason="disagreement") == 0  # fmt: skip


def test_a_disagreement_is_answered_by_escalate_to_and_all_three_are_paid(
    checked: Started,
) -> None:
    gw, sims = checked(checker_seed=OTHER_SEED)
    raw = ask(gw)
    pick = raw.headers["x-switchyard-model"]
    assert raw.headers["x-switchyard-cascade"] == f"{pick},{CHECKER},{STRONG}"
    answer = raw.parse()
    assert answer.model == STRONG
    out = outcome(gw, raw.headers["x-switchyard-decision-id"], ADMIN)
    first, second, third = out["stages"]
    assert [s["model"] for s in out["stages"]] == [pick, CHECKER, STRONG]
    assert (first["escalated"], second["agrees"]) == ("disagreement", False)
    assert out["model"] == STRONG
    assert out["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in out["stages"]))
    assert out["completion_tokens"] == sum(s["completion_tokens"] for s in out["stages"])
    assert third["cost_usd"] > first["cost_usd"]
    assert gw.metric("switchyard_cascade_escalations_total", router="smart",
                     reason="disagreement") == 1  # fmt: skip
    assert served(sims[CHECKER]) == 1 and served(sims[STRONG]) == 1


def test_a_pick_that_is_the_checker_is_served_unchecked(checked: Started) -> None:
    gw, sims = checked(checker_seed=OTHER_SEED, candidates=(CHECKER,))
    raw = ask(gw)
    assert raw.headers["x-switchyard-model"] == CHECKER
    assert raw.headers["x-switchyard-cascade"] == CHECKER
    assert raw.parse().model == CHECKER
    assert outcome(gw, raw.headers["x-switchyard-decision-id"], ADMIN)["stages"] == []
    assert served(sims[CHECKER]) == 1 and served(sims[STRONG]) == 0


def test_a_streamed_request_is_served_by_the_pick_alone(checked: Started) -> None:
    gw, sims = checked(checker_seed=OTHER_SEED)
    with sdk(gw).chat.completions.with_streaming_response.create(
        model="auto", messages=MESSAGES, max_tokens=8, stream=True
    ) as resp:
        pick = resp.headers["x-switchyard-model"]
        assert resp.headers["x-switchyard-cascade"] == pick
        models = {chunk.model for chunk in resp.parse()}
    assert models == {pick}
    assert served(sims[CHECKER]) == 0 and served(sims[STRONG]) == 0


def test_a_failing_checker_leaves_the_picks_answer_unchecked(checked: Started) -> None:
    gw, sims = checked(sims={CHECKER: {"error_rate": 1.0}})
    raw = ask(gw)
    pick = raw.headers["x-switchyard-model"]
    assert raw.headers["x-switchyard-cascade"] == pick
    assert raw.parse().model == pick
    out = outcome(gw, raw.headers["x-switchyard-decision-id"], ADMIN)
    assert [s["model"] for s in out["stages"]] == [pick, CHECKER]
    assert out["stages"][1]["status"] != "200" and out["stages"][1]["stopped"] == "stage_failed"
    assert served(sims[STRONG]) == 0
    assert gw.metric("switchyard_cascade_stops_total", router="smart",
                     reason="stage_failed") == 1  # fmt: skip


def test_a_failing_escalate_to_leaves_the_picks_answer(checked: Started) -> None:
    gw, _ = checked(checker_seed=OTHER_SEED, sims={STRONG: {"error_rate": 1.0}})
    raw = ask(gw)
    pick = raw.headers["x-switchyard-model"]
    assert raw.headers["x-switchyard-cascade"] == f"{pick},{CHECKER}"
    assert raw.parse().model == pick
    out = outcome(gw, raw.headers["x-switchyard-decision-id"], ADMIN)
    assert [s["model"] for s in out["stages"]] == [pick, CHECKER, STRONG]
    assert out["stages"][0]["escalated"] == "disagreement"
    assert out["stages"][2]["status"] != "200" and out["model"] == pick
    assert gw.metric("switchyard_cascade_stops_total", router="smart",
                     reason="stage_failed") == 1  # fmt: skip


def test_a_checker_slower_than_the_latency_budget_is_abandoned(checked: Started) -> None:
    slow = {"added_latency_ms": 3000}
    gw, _ = checked(checker_seed=OTHER_SEED, sims={CHECKER: slow}, latency_budget_ms=600)
    raw = ask(gw)
    pick = raw.headers["x-switchyard-model"]
    assert raw.headers["x-switchyard-cascade"] == pick
    out = outcome(gw, raw.headers["x-switchyard-decision-id"], ADMIN)
    assert out["latency_s"] < 2.5
    assert [(s["model"], s["status"]) for s in out["stages"]] == [(pick, "200"),
                                                                   (CHECKER, "budget")]  # fmt: skip
    assert gw.metric("switchyard_cascade_stops_total", router="smart",
                     reason="latency_budget") == 1  # fmt: skip


def test_a_client_disconnect_cancels_the_pick_and_the_checker(checked: Started) -> None:
    slow = {"preset": "slow"}  # ~35 ms a token: 2000 tokens would take over a minute
    gw, sims = checked(sims={name: slow for name in (*PICKS, CHECKER)})
    body = {"model": "auto", "messages": MESSAGES, "max_tokens": 2000}
    with pytest.raises(httpx.ReadTimeout):  # httpx closes the connection on the way out
        httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=1.0)

    def running() -> float:
        return sum(sims[name].metric("vllm:num_requests_running") for name in (*PICKS, CHECKER))

    eventually(lambda: running() == 0, timeout=3, what="the pick and the checker cancelled")
    resp = gw.client.get("/admin/outcomes", headers={"authorization": f"Bearer {ADMIN}"})
    (out,) = [orjson.loads(line) for line in resp.content.splitlines() if line.strip()]
    assert out["status"] == "client_closed"
    assert [s["status"] for s in out["stages"]] == ["cancelled", "cancelled"]
    assert out["stages"][1]["model"] == CHECKER


def test_bad_second_opinion_settings_are_refused_with_the_field(tmp_path: Path) -> None:
    urls = {name: "http://127.0.0.1:9/v1" for name, _, _ in CANDIDATES}
    config = routed_settings(urls, tmp_path)
    router = config["routers"][0]
    router["second_opinion"] = {"checker": "gpt-5", "escalate_to": STRONG}
    with pytest.raises(SettingsError, match=r"routers\.0: second_opinion\.checker: 'gpt-5'"):
        build_settings(config)
    router["second_opinion"] = {"checker": CHECKER, "escalate_to": "nope"}
    with pytest.raises(SettingsError, match=r"second_opinion\.escalate_to: 'nope' is not a"):
        build_settings(config)
    router["second_opinion"] = {"checker": STRONG, "escalate_to": STRONG}
    with pytest.raises(SettingsError, match="checker and escalate_to must be different"):
        build_settings(config)
    router["second_opinion"] = {"checker": CHECKER, "escalate_to": STRONG, "judge": "x"}
    with pytest.raises(SettingsError, match=r"second_opinion\.judge"):
        build_settings(config)
    router["second_opinion"] = {"checker": CHECKER, "escalate_to": STRONG}
    router["kind"] = "cascade"
    with pytest.raises(SettingsError, match="only a router of kind 'router'"):
        build_settings(config)
    router["kind"] = "router"
    assert build_settings(config).routers[0].second_opinion is not None
