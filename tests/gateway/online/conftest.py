"""Routed gateways that learn: helpers to route one request and give feedback on it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import redis

from tests.conftest import Gateway
from tests.gateway.routing.conftest import embedder_cache, onnx_embedder, routed

MESSAGES: Any = [
    {"role": "system", "content": "You are a careful mathematician."},
    {"role": "user", "content": "Prove that there are infinitely many prime numbers."},
]


def route(url: str, **options: Any) -> tuple[str, str]:
    """(chosen model, decision id) of one routed chat completion sent to ``url``."""
    body = {"model": "auto", "messages": MESSAGES, "max_tokens": 2}
    if options:
        body["switchyard"] = options
    resp = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    served = resp.headers.get("x-switchyard-fallback", resp.headers["x-switchyard-model"])
    assert resp.json()["model"] == served  # the router's choice, unless a fallback answered
    return resp.headers["x-switchyard-model"], resp.headers["x-switchyard-decision-id"]


def feedback(url: str, decision: str, score: float) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/feedback", json={"decision_id": decision, "score": score}, timeout=30
    )


def metric(url: str, name: str, **labels: str) -> float:
    """A sample from a gateway's /metrics over HTTP (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    prefix = f"{name}{{{want}}} " if labels else f"{name} "
    for line in httpx.get(f"{url}/metrics", timeout=10).text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return 0.0


def eventually(check: Callable[[], bool], timeout: float = 15.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def stream(redis_url: str, prefix: str = "switchyard") -> list[tuple[str, dict[str, Any]]]:
    """(kind, data) of every entry in the outcome stream."""
    import orjson

    client = redis.Redis.from_url(redis_url)
    try:
        entries: Any = client.xrange("{" + prefix + "}:outcomes")
    finally:
        client.close()
    return [(f[b"kind"].decode(), orjson.loads(f[b"data"])) for _, f in entries]


def decisions_in(redis_url: str) -> set[str]:
    return {d["decision_id"] for kind, d in stream(redis_url) if kind == "outcome"}


__all__ = [
    "Gateway",
    "decisions_in",
    "embedder_cache",
    "eventually",
    "feedback",
    "metric",
    "onnx_embedder",
    "route",
    "routed",
    "stream",
]
