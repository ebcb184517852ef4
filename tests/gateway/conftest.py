"""Fixtures of the gateway tests: a routed gateway (the routing and online-learning tests) and
the admin API's stack (a gateway started from a YAML file)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.admin import Stack, admin_stack
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


@pytest.fixture
def stack(
    tmp_path: Path, simulator: Callable[..., Simulator], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Stack]:
    """A gateway started from ``tmp_path/switchyard.yaml`` (see ``admin_stack``)."""
    with admin_stack(tmp_path, simulator, monkeypatch) as started:
        yield started
