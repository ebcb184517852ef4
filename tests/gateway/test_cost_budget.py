"""The pass-through path's cost budget, in Python calls per proxied request.

A proxied request that uses no routing, no fallback and no affinity must cost about what a
bare proxy costs; seconds are too noisy to hold it to that on a shared machine, calls are
not. Each case sends requests in-process to the ASGI app (uvicorn's own per-request work is
the same for every gateway and not counted) against a simulator on a real socket, counts
every call on the event loop's thread, and compares the median with ``cost_budget.json``.
A case more than 20 % over its budget fails. When a change must cost more, update the
budget in the same commit and say why in its ``reason``; ``SWITCHYARD_COST_PRINT=1`` prints
the counts.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvloop
from prometheus_client import CollectorRegistry

from switchyard.gateway.app import create_app
from switchyard.gateway.settings import build_settings
from tests.support.calls import asgi_post, count_calls
from tests.support.gateways import Simulator, model_entry

BUDGET_FILE = Path(__file__).parent / "cost_budget.json"
TOLERANCE = 1.2
KEY = "sk-sy-cost-budget-key-0123456789abcdef"
WARMUP, MEASURED = 30, 15
CASES = ["json", "stream", "json_auth", "stream_auth"]


def _settings(sim: Simulator, auth: bool) -> Any:
    sections: dict[str, Any] = {"upstream": {"scrape_interval_s": 0}}
    if auth:  # a static key with a request limit, on the in-process store
        sections["auth"] = {
            "enabled": True,
            "keys": [{"name": "k", "key_env": "COST_KEY", "limits": {"rpm": 1_000_000}}],
        }
    return build_settings({"models": [model_entry("m", sim.base_url)], **sections})


async def _measure(settings: Any, stream: bool, auth: bool) -> list[int]:
    app = create_app(settings, CollectorRegistry())
    body = orjson.dumps(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8,
         "stream": stream}
    )  # fmt: skip
    headers = [(b"authorization", f"Bearer {KEY}".encode())] if auth else []
    counts = []
    async with app.router.lifespan_context(app):
        for i in range(WARMUP + MEASURED):
            calls, sent = await count_calls(lambda: asgi_post(app, "/v1/chat/completions",
                                                              body, headers))  # fmt: skip
            assert sent[0]["status"] == 200, sent
            if i >= WARMUP:
                counts.append(calls)
    return counts


@pytest.mark.parametrize("case", CASES)
def test_a_proxied_request_stays_within_its_call_budget(
    case: str, simulator: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHYARD_KEY_SECRET", "cost-budget-secret")
    monkeypatch.setenv("COST_KEY", KEY)
    # Tokens 2 ms apart: each SSE event reaches the gateway as a chunk of its own.
    sim = simulator("m", decode_base_s=0.002)
    auth, stream = case.endswith("_auth"), case.startswith("stream")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        counts = runner.run(_measure(_settings(sim, auth), stream, auth))
    median = statistics.median(counts)
    if os.environ.get("SWITCHYARD_COST_PRINT"):
        print(f"\n{case}: median {median} calls, range {min(counts)}-{max(counts)}")
    budget = json.loads(BUDGET_FILE.read_text())["calls"][case]
    assert median <= budget * TOLERANCE, (
        f"{case}: {median} calls per request, over the budget of {budget} by more than "
        f"{TOLERANCE - 1:.0%}; make it cheaper, or raise the budget in "
        "tests/gateway/cost_budget.json with the reason"
    )
