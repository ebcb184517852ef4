"""Routed gateways: the candidates (simulators named after RouterBench models, priced as in
the shipped default router), the config that routes among them, and what a test does with a
routed gateway that learns: route one request, give feedback, read metrics and the outcome
stream."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import redis

from switchyard.resources import default_router
from tests.support.gateways import model_entry

# (name, input, output) USD per 1M tokens, as in switchyard/data/default-router/router.json.
CANDIDATES = (
    ("mistralai/mistral-7b-chat", 0.2, 0.2),
    ("mistralai/mixtral-8x7b-chat", 0.6, 0.6),
    ("gpt-3.5-turbo-1106", 1.0, 2.0),
    ("gpt-4-1106-preview", 10.0, 30.0),
)

MESSAGES: Any = [
    {"role": "system", "content": "You are a careful mathematician."},
    {"role": "user", "content": "Prove that there are infinitely many prime numbers."},
]


def routed_settings(
    urls: dict[str, str], cache: Path, bandit: dict[str, Any] | None = None, **routing: Any
) -> dict[str, Any]:
    """A gateway config whose default router "smart" (the shipped one) picks among the
    CANDIDATES served at ``urls`` (name → base URL), the embedder exported in ``cache``."""
    router = {"name": "smart", "artifact": str(default_router()), "default": True}
    return {
        "models": [
            model_entry(name, urls[name], price_in=p_in, price_out=p_out)
            for name, p_in, p_out in CANDIDATES
        ],
        "routers": [router | ({"bandit": bandit} if bandit is not None else {})],
        "routing": {"embedder_cache": str(cache), **routing},
    }


def constant_cascade(root: Path, stages: list[str], skip_below: float, accept_at: float) -> Path:
    """The shipped router plus a cascade over ``stages`` (cheapest first) whose verifier
    says p_correct = 0.5 for every answer (zero weights): ``skip_below``/``accept_at`` make
    its verdicts certain (-1e9: start with the first stage / accept; 1e9: skip / reject)."""
    from switchyard.routers.cascade import CascadeModel
    from switchyard.routers.embedding import dim_of
    from switchyard.routers.pipeline import read_manifest

    path = root / f"cascade-{len(stages)}-{skip_below:g}-{accept_at:g}"
    if not path.exists():
        shutil.copytree(default_router(), path)
        embedder, k = read_manifest(path)["embedder"], len(stages) - 1
        dim = dim_of(embedder)
        CascadeModel(stages, embedder, [skip_below] * k, [accept_at] * k,
                     np.zeros((k, 3 * dim)), np.zeros(k)).save(path)  # fmt: skip
    return path


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
    """Return once ``check()`` holds; ``AssertionError`` naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


def outcome(gw: Any, decision: str, admin_key: str) -> dict[str, Any]:
    """The outcome record of ``decision``, read from the gateway's ``GET /admin/outcomes``."""
    resp = gw.client.get("/admin/outcomes", headers={"authorization": f"Bearer {admin_key}"})
    assert resp.status_code == 200, resp.text
    lines = [orjson.loads(line) for line in resp.content.splitlines() if line.strip()]
    found: dict[str, Any] = {r["decision_id"]: r for r in lines}[decision]
    return found


def stream(redis_url: str, prefix: str = "switchyard") -> list[tuple[str, dict[str, Any]]]:
    """(kind, data) of every entry in the outcome stream."""
    client = redis.Redis.from_url(redis_url)
    try:
        entries: Any = client.xrange("{" + prefix + "}:outcomes")
    finally:
        client.close()
    return [(f[b"kind"].decode(), orjson.loads(f[b"data"])) for _, f in entries]


def decisions_in(redis_url: str) -> set[str]:
    """The decision ids of the outcome records in the stream."""
    return {d["decision_id"] for kind, d in stream(redis_url) if kind == "outcome"}
