"""Wiring settings to backends: the shared HTTP session and one endpoint pool per model,
built when the app starts (aiohttp needs the running loop), swapped whole on a config
reload, and closed when the app stops."""

from __future__ import annotations

import logging

import aiohttp

from backends.breaker import CircuitBreaker
from backends.client import OpenAICompatBackend, Timeouts
from backends.client import create_session as create_http_session
from backends.pool import Endpoint, EndpointPool, RetryPolicy
from gateway.settings import ModelConfig, Settings

log = logging.getLogger("switchyard.gateway")


class Upstreams:
    """The models the gateway serves right now and their endpoint pools."""

    def __init__(self, settings: Settings) -> None:
        self.pools: dict[str, EndpointPool] = {}
        self._session: aiohttp.ClientSession | None = None
        self._use(settings)

    def _use(self, settings: Settings) -> None:
        # Derived once per config, not per request.
        up = settings.upstream
        self.settings = settings
        self.models: dict[str, ModelConfig] = {m.name: m for m in settings.models}
        self.timeouts = Timeouts(up.connect_timeout_s, up.first_byte_timeout_s, up.read_timeout_s)
        self.retry = RetryPolicy(up.max_attempts, up.retry_budget_s)

    @property
    def started(self) -> bool:
        return self._session is not None

    async def start(self) -> None:
        self._session = create_http_session(self.settings.upstream.pool_size, self.timeouts)
        self.pools = self._build_pools(self.settings, self.timeouts)

    def reload(self, settings: Settings) -> None:
        """Serve ``settings`` from now on; requests already sent finish on the old pools."""
        previous = self.settings
        self._use(settings)
        try:
            self.pools = self._build_pools(settings, self.timeouts)
        except BaseException:
            self._use(previous)
            raise

    def _build_pools(self, settings: Settings, timeouts: Timeouts) -> dict[str, EndpointPool]:
        assert self._session is not None, "start() first"
        up = settings.upstream
        pools = {}
        for model in settings.models:
            endpoints = [
                Endpoint(
                    OpenAICompatBackend(ep.base_url, self._session, timeouts, ep.api_key()),
                    CircuitBreaker(up.breaker_failures, up.breaker_cooldown_s),
                )
                for ep in model.endpoints
            ]
            pools[model.name] = EndpointPool(model.name, endpoints)
            log.info(
                "model %s: %d endpoint(s) %s",
                model.name,
                len(endpoints),
                ", ".join(e.name for e in endpoints),
            )
        return pools

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
