"""Dashboards and recording rules against a real Prometheus: it scrapes a running gateway
and its simulated vLLM engines every second and evaluates the generated rules file, while a
short load goes through every path the panels watch (routed requests with feedback, streams,
a direct request to the priciest model, a fallback, 5xx, shedding, a rate limit, spend
through Redis). Then every query of every panel, and every recording rule, must return a
finite value through Prometheus' HTTP API: a renamed metric or label breaks this test
instead of silently blanking a panel."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from switchyard.deploy import rules
from switchyard.deploy.dashboards.build import BOARDS, queries
from switchyard.gateway.tenancy.keys import new_key
from tests.support.gateways import Gateway, Simulator, model_entry
from tests.support.hold import held_streams
from tests.support.prometheus import PrometheusServer
from tests.support.redis import RedisServer
from tests.support.routed import CANDIDATES, constant_cascade, routed_settings
from tests.support.servers import free_port

PRICIEST = "gpt-4-1106-preview"
CHEAPEST = "mistralai/mistral-7b-chat"
MESSAGES = [{"role": "user", "content": "Name three prime numbers."}]
DATA_TIMEOUT_S = 30.0
SEMANTIC = "List three prime numbers."
ROUNDS = itertools.count(1)


def _dead() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


def fleet_config(
    urls: dict[str, str], slow: str, twins: list[str], cache: Path, redis_url: str, tmp: Path
) -> dict[str, Any]:
    """The routed candidates (and "careful", a cascade over three of them), plus "m" (one
    slow engine, shed when it queues), "twin" (two engines with prefix caching, chosen by
    prefix-aware scoring) and its LoRA adapter "twin-sql" (loaded on demand), "gone" (two
    dead endpoints: errors, retries, then a fallback) and "broken" (dead, no fallback: 5xx);
    traces go to a dead OTLP endpoint."""
    config = routed_settings(urls, cache, None, refresh_s=0.2)
    # "careful": a cascade over three candidates whose verifier rejects every answer: one
    # escalation, then a stop at max_escalations (the cascade panels' two counters)
    stages = [name for name, _, _ in CANDIDATES[:2]] + [PRICIEST]
    artifact = constant_cascade(tmp, stages, skip_below=-1e9, accept_at=1e9)
    config["routers"].append({"name": "careful", "artifact": str(artifact), "kind": "cascade"})
    config["models"] += [
        model_entry("m", slow),
        model_entry("twin", *twins),
        {
            "name": "twin-sql",
            "price_input_per_mtok": 1.0,
            "price_output_per_mtok": 2.0,
            "adapter": {"base": "twin", "name": "sql-lora", "source": "/adapters/sql"},
        },
        model_entry("gone", _dead(), _dead(), fallbacks=[CHEAPEST]),
        model_entry("broken", _dead()),
    ]
    keys = [
        {"name": "app", "tenant": "acme", "key_env": "E2E_APP_KEY"},
        {"name": "tight", "tenant": "acme", "key_env": "E2E_TIGHT_KEY", "limits": {"rpm": 1}},
    ]
    return config | {
        "auth": {"enabled": True, "keys": keys},
        "state": {"redis_url": redis_url, "timeout_s": 2.0},
        "adapters": {"on_demand_loading": True},
        # Breakers probe again after 0.5 s: dead endpoints keep adding errors and retries.
        "upstream": {
            "scrape_interval_s": 0.1,
            "max_queue_delay_s": 1.0,
            "breaker_cooldown_s": 0.5,
            "prefix_scoring": True,
        },
        # traces to a collector that is not there: the export panel shows the failures
        "tracing": {"enabled": True, "endpoint": f"{_dead()[:-3]}/v1/traces", "timeout_s": 0.5},
        "cache": {"enabled": True},  # one opted-in request repeated: hits from round two
        # every routed request shadowed to the other candidates (calls, spend, drops)
        "shadow": {"enabled": True, "sample": 1.0, "max_rate_per_s": 100},
    }


def _chat(client: httpx.Client, model: str, stream: bool = False, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": MESSAGES, "max_tokens": 4, "stream": stream, **extra}
    return client.post("/v1/chat/completions", json=body)


def one_round(app: httpx.Client, tight: httpx.Client) -> dict[str, int]:
    """Every kind of request once; the status each got."""
    statuses: dict[str, int] = {}
    for stream in (False, True):
        routed = _chat(app, "auto", stream)
        decision = routed.headers.get("x-switchyard-decision-id", "")
        score = app.post("/v1/feedback", json={"decision_id": decision, "score": 0.75})
        statuses[f"routed stream={stream}"] = routed.status_code
        statuses[f"feedback stream={stream}"] = score.status_code
    statuses["priciest"] = _chat(app, PRICIEST).status_code
    statuses["cheapest stream"] = _chat(app, CHEAPEST, stream=True).status_code
    statuses["fallback"] = _chat(app, "gone").status_code
    statuses["broken"] = _chat(app, "broken").status_code // 100 * 100
    statuses["shed"] = _chat(app, "m").status_code
    statuses["twin"] = _chat(app, "twin").status_code
    statuses["adapter"] = _chat(app, "twin-sql").status_code
    require: Any = {"require": {"max_params_b": 1}}  # no model gives its size
    statuses["unsatisfiable"] = _chat(app, "auto", switchyard=require).status_code
    statuses["limited"] = max(_chat(tight, CHEAPEST).status_code for _ in range(2))
    cached: Any = {"cache": True}
    statuses["cached"] = _chat(app, CHEAPEST, temperature=0, switchyard=cached).status_code
    statuses["cascade"] = _chat(app, "careful").status_code
    # A prompt stored once, then each round the same words with new trailing spaces: never an
    # exact hit (another body), always a semantic one (the same embedding).
    near: Any = {"cache": "semantic"}
    for kind, text in (("stored", SEMANTIC), ("near", SEMANTIC + " " * next(ROUNDS))):
        asked = [{"role": "user", "content": text}]
        reply = _chat(app, CHEAPEST, temperature=0, switchyard=near, messages=asked)
        statuses[f"semantic {kind}"] = reply.status_code
    return statuses


EXPECTED = {
    "routed stream=False": 200, "routed stream=True": 200, "feedback stream=False": 200,
    "feedback stream=True": 200, "priciest": 200, "cheapest stream": 200, "fallback": 200,
    "broken": 500, "shed": 429, "limited": 429, "twin": 200, "adapter": 200,
    "unsatisfiable": 400, "cached": 200, "cascade": 200,
    "semantic stored": 200, "semantic near": 200,
}  # fmt: skip


@contextmanager
def steady_load(app: httpx.Client, tight: httpx.Client) -> Iterator[list[dict[str, int]]]:
    """Rounds in a background thread until the block ends (rates need increasing counters
    across scrapes); the statuses of each round, checked by the caller."""
    done = threading.Event()
    rounds: list[dict[str, int]] = []

    def run() -> None:
        while not done.is_set():
            try:
                rounds.append(one_round(app, tight))
            except httpx.HTTPError as err:  # reported through the rounds, not lost
                rounds.append({"error": -1, repr(err): -1})
            done.wait(0.2)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield rounds
    finally:
        done.set()
        thread.join(timeout=30)


def wait_for_data(prom: PrometheusServer, exprs: dict[str, str]) -> dict[str, str]:
    """Polls every expression until each returned a finite value once; those that never did."""
    pending = dict(exprs)
    deadline = time.monotonic() + DATA_TIMEOUT_S
    while pending and time.monotonic() < deadline:
        pending = {name: e for name, e in pending.items() if not prom.has_data(e)}
        time.sleep(0.5)
    return pending


def _keys(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys of "app" and "tight", in the environment variables the config names."""
    keys = [new_key(), new_key()]
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "s" * 32)
    monkeypatch.setenv("E2E_APP_KEY", keys[0])
    monkeypatch.setenv("E2E_TIGHT_KEY", keys[1])
    return keys


def _client(gw: Gateway, key: str) -> httpx.Client:
    return httpx.Client(base_url=gw.url, timeout=30, headers={"authorization": f"Bearer {key}"})


def _wait_for_queue(engine: Simulator, waiting: int) -> None:
    deadline = time.monotonic() + 10
    while engine.metric("vllm:num_requests_waiting") < waiting:
        assert time.monotonic() < deadline, "the held streams never queued"
        time.sleep(0.05)
    time.sleep(0.3)  # and the gateway scraped it (every 0.1 s)


def expressions() -> dict[str, str]:
    """Every panel query of every board, and every recording rule's series, by name."""
    panels = {str(q): q.expr for q in queries([build() for build in BOARDS.values()])}
    recorded = [r["record"] for g in rules.rule_groups() for r in g["rules"] if "record" in r]
    return panels | {f"rule {name}": name for name in recorded}


@pytest.mark.slow
def test_every_panel_query_and_recording_rule_returns_data_from_a_real_prometheus(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    prometheus: Callable[..., PrometheusServer],
    redis_server: RedisServer,
    embedder_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    app_key, tight_key = _keys(monkeypatch)
    sims = {name: simulator(name) for name, _, _ in CANDIDATES}
    slow = simulator("m", preset="slow", max_num_seqs=1)
    twins = [
        simulator("twin", preset="fast", max_loras=2, runtime_lora_updating=True, lora_load_s=0.01)
        for _ in range(2)
    ]
    urls = {name: sim.base_url for name, sim in sims.items()}
    config = fleet_config(
        urls,
        slow.base_url,
        [t.base_url for t in twins],
        embedder_cache,
        redis_server.url,
        tmp_path,
    )
    gw = gateway(**config)
    engines = [urlsplit(s.server.url).netloc for s in (*sims.values(), slow, *twins)]
    prom = prometheus(
        {"switchyard": [urlsplit(gw.url).netloc], "vllm": engines}, [rules.RULES_FILE]
    )
    exprs = expressions()
    with (
        _client(gw, app_key) as app,
        _client(gw, tight_key) as tight,
        held_streams(slow.base_url, "m", 3),  # one running, two waiting: "m" is saturated
    ):
        _wait_for_queue(slow, 2)
        assert one_round(app, tight) == EXPECTED
        with steady_load(app, tight) as rounds:
            missing = wait_for_data(prom, exprs)
    targets = prom.targets_up()
    assert len(targets) == len(engines) + 1 and all(targets.values()), targets
    assert all(r == EXPECTED for r in rounds), [r for r in rounds if r != EXPECTED][:3]
    assert missing == {}, f"{len(missing)} of {len(exprs)} queries returned no data"
