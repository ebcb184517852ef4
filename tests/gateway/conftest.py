"""Fixtures of the gateway tests: a routed gateway (the routing and online-learning tests)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateways import Gateway, Simulator
from tests.support.routed import CANDIDATES, routed_settings


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
