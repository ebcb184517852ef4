"""Routed gateways: simulators named after RouterBench models behind the shipped router."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from switchyard.resources import default_router
from tests.conftest import Gateway, Simulator, model_entry
from tests.routers.conftest import embedder_cache, onnx_embedder

__all__ = ["CANDIDATES", "embedder_cache", "onnx_embedder"]

# (name, input, output) USD per 1M tokens, as in switchyard/data/default-router/router.json.
CANDIDATES = (
    ("mistralai/mistral-7b-chat", 0.2, 0.2),
    ("mistralai/mixtral-8x7b-chat", 0.6, 0.6),
    ("gpt-3.5-turbo-1106", 1.0, 2.0),
    ("gpt-4-1106-preview", 10.0, 30.0),
)


def routed_settings(
    urls: dict[str, str], cache: Path, bandit: dict[str, Any] | None = None, **routing: Any
) -> dict[str, Any]:
    router = {"name": "smart", "artifact": str(default_router()), "default": True}
    return {
        "models": [
            model_entry(name, urls[name], price_in=p_in, price_out=p_out)
            for name, p_in, p_out in CANDIDATES
        ],
        "routers": [router | ({"bandit": bandit} if bandit is not None else {})],
        "routing": {"embedder_cache": str(cache), **routing},
    }


@pytest.fixture
def routed(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
) -> Callable[..., Gateway]:
    """``routed(bandit=..., **routing)``: a gateway whose router "smart" (alias "auto") picks
    among CANDIDATES, each a zero-latency simulator."""

    def start(
        preset: str = "zero", bandit: dict[str, Any] | None = None, **routing: Any
    ) -> Gateway:
        urls = {name: simulator(name, preset).base_url for name, _, _ in CANDIDATES}
        return gateway(**routed_settings(urls, embedder_cache, bandit, **routing))

    return start
