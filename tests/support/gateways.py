"""What a test holds on a running simulated vLLM server and on a running gateway (both started
by the ``simulator`` and ``gateway`` fixtures of tests/conftest.py), and a gateway's model
entry as its config file spells it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from switchyard.backends.engine_state import EngineSnapshot
from tests.support.servers import ServerThread


@dataclass
class Simulator:
    """A simulated vLLM server: its thread and its app."""

    server: ServerThread
    app: Any

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def metric(self, name: str) -> float:
        """A vLLM metric's value summed over its samples, read from the real /metrics."""
        text = httpx.get(f"{self.server.url}/metrics").text
        return sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name
        )


@dataclass
class Gateway:
    """A gateway: its thread, its own metrics registry, its settings and a client to it."""

    server: ServerThread
    registry: CollectorRegistry
    settings: Any
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.server.url, timeout=30)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return f"{self.server.url}/v1"

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def model_entry(name: str, *urls: str, **extra: Any) -> dict[str, Any]:
    """A ``models:`` entry served at ``urls`` (prices ``price_in``/``price_out``, default 1
    and 2 USD per 1M tokens; any other key is copied as given)."""
    return {
        "name": name,
        "price_input_per_mtok": extra.pop("price_in", 1.0),
        "price_output_per_mtok": extra.pop("price_out", 2.0),
        "endpoints": [{"url": u} for u in urls],
        **extra,
    }


def scraped(gw: Gateway, url: str) -> EngineSnapshot | None:
    """The gateway's latest fresh snapshot of the endpoint at ``url``."""
    scraper = gw.server.app.state.upstreams.scraper
    return None if scraper is None else scraper.snapshot(url)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Polls ``condition`` every 20 ms; fails the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {timeout}s"
        time.sleep(0.02)


def queue_of(gw: Gateway, url: str, waiting: int) -> Callable[[], bool]:
    """Whether the gateway has seen at least ``waiting`` requests queued at ``url``."""

    def seen() -> bool:
        snap = scraped(gw, url)
        return snap is not None and snap.waiting >= waiting

    return seen


def served(gw: Gateway, model: str, endpoint: str) -> float:
    """Requests of ``model`` that ``endpoint`` answered with 200, by the gateway's count."""
    return gw.metric("switchyard_requests_total", model=model, endpoint=endpoint, status="200")
