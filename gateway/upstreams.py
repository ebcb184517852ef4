"""Wiring settings to backends: the shared HTTP session, one endpoint pool per model and the
engine-metrics scraper over all endpoints, built when the app starts (aiohttp needs the
running loop), swapped whole on a config reload, and closed when the app stops.

The scraper runs as a background task; requests only read its latest snapshots (a dict
lookup in ``EndpointPool.pick``), so scraping never sits on the request path.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Iterable

import aiohttp

from backends.breaker import CircuitBreaker
from backends.client import OpenAICompatBackend, Timeouts
from backends.client import create_session as create_http_session
from backends.endpoint import RetryBudget
from backends.engine_state import EngineSnapshot
from backends.pool import Endpoint, EndpointPool, RetryPolicy
from backends.replica import ReplicaPolicy
from backends.scraper import Scraper, metrics_url
from gateway.settings import ModelConfig, Settings

log = logging.getLogger("switchyard.gateway")

# Scrapes missed in a row before a snapshot counts as unknown (in-flight counts take over).
STALE_AFTER = 3


class Upstreams:
    """The models the gateway serves right now, their endpoint pools and engine metrics."""

    def __init__(self, settings: Settings) -> None:
        self.pools: dict[str, EndpointPool] = {}
        self.scraper: Scraper | None = None
        self._session: aiohttp.ClientSession | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._use(settings)

    def _use(self, settings: Settings) -> None:
        # Derived once per config, not per request.
        up = settings.upstream
        self.settings = settings
        self.models: dict[str, ModelConfig] = {m.name: m for m in settings.models}
        self.timeouts = Timeouts(up.connect_timeout_s, up.first_byte_timeout_s, up.read_timeout_s)
        self.retry = RetryPolicy(up.max_attempts, up.retry_budget_s)
        age = STALE_AFTER * up.scrape_interval_s if up.scrape_interval_s > 0 else 0.0
        self.replica_policy = ReplicaPolicy(choices=up.replica_choices, max_snapshot_age_s=age)
        self._rng = random.Random(up.seed)

    @property
    def started(self) -> bool:
        return self._session is not None

    async def start(self) -> None:
        self._session = create_http_session(self.settings.upstream.pool_size, self.timeouts)
        self.scraper = self._start_scraper(self.settings)
        self.pools = self._build_pools(self.settings, self.timeouts)

    def reload(self, settings: Settings) -> None:
        """Serve ``settings`` from now on; requests already sent finish on the old pools.
        Call inside the running loop (the scraper is replaced)."""
        previous, old_scraper = self.settings, self.scraper
        self._use(settings)
        try:
            self.scraper = self._start_scraper(settings)
            self.pools = self._build_pools(settings, self.timeouts)
        except BaseException:
            self._use(previous)
            self._stop_later(self.scraper if self.scraper is not old_scraper else None)
            self.scraper = old_scraper
            raise
        self._stop_later(old_scraper)

    def expected_delays(self, models: Iterable[str]) -> dict[str, float]:
        """Seconds a new request would wait on each model's best replica now (``inf`` for
        a model without a pool or with no endpoint that may take traffic)."""
        pools = self.pools
        return {m: pools[m].expected_delay() if m in pools else math.inf for m in models}

    def _snapshot(self, name: str) -> EngineSnapshot | None:
        scraper = self.scraper
        return scraper.snapshot(name) if scraper is not None else None

    def _start_scraper(self, settings: Settings) -> Scraper | None:
        interval = settings.upstream.scrape_interval_s
        if interval <= 0:
            return None
        urls = {ep.base_url for m in settings.models for ep in m.endpoints}
        targets = {url: metrics_url(url) for url in sorted(urls)}
        scraper = Scraper(targets, interval_s=interval, stale_after=STALE_AFTER)
        scraper.start()
        return scraper

    def _stop_later(self, scraper: Scraper | None) -> None:
        if scraper is None:
            return
        task = asyncio.get_running_loop().create_task(scraper.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _build_pools(self, settings: Settings, timeouts: Timeouts) -> dict[str, EndpointPool]:
        assert self._session is not None, "start() first"
        up = settings.upstream
        pools = {}
        for model in settings.models:
            endpoints = [
                Endpoint(
                    OpenAICompatBackend(ep.base_url, self._session, timeouts, ep.api_key()),
                    CircuitBreaker(up.breaker_failures, up.breaker_cooldown_s),
                    weight=ep.weight,
                    max_num_seqs=ep.max_num_seqs,
                    retry_budget=RetryBudget(up.endpoint_retry_ratio, up.endpoint_retry_reserve),
                )
                for ep in model.endpoints
            ]
            pools[model.name] = EndpointPool(
                model.name,
                endpoints,
                balancer=up.balancer.value,
                snapshots=self._snapshot,
                policy=self.replica_policy,
                rng=self._rng,
            )
            log.info(
                "model %s: %d endpoint(s) %s, %s balancer",
                model.name,
                len(endpoints),
                ", ".join(e.name for e in endpoints),
                up.balancer.value,
            )
        return pools

    async def close(self) -> None:
        scraper, self.scraper = self.scraper, None
        if scraper is not None:
            await scraper.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
