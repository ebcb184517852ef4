"""Wiring settings to backends: the shared HTTP session and one endpoint pool per model,
built when the app starts (aiohttp needs the running loop) and closed when it stops."""

from __future__ import annotations

import logging

import aiohttp

from backends.breaker import CircuitBreaker
from backends.client import OpenAICompatBackend, Timeouts, create_session
from backends.pool import Endpoint, EndpointPool, RetryPolicy
from gateway.settings import Settings

log = logging.getLogger("switchyard.gateway")


class Upstreams:
    def __init__(self, settings: Settings) -> None:
        up = settings.upstream
        self.settings = settings
        self.timeouts = Timeouts(up.connect_timeout_s, up.first_byte_timeout_s, up.read_timeout_s)
        self.retry = RetryPolicy(up.max_attempts, up.retry_budget_s)
        self.pools: dict[str, EndpointPool] = {}
        self._session: aiohttp.ClientSession | None = None

    @property
    def started(self) -> bool:
        return self._session is not None

    async def start(self) -> None:
        up = self.settings.upstream
        self._session = create_session(up.pool_size, self.timeouts)
        for model in self.settings.models:
            endpoints = [
                Endpoint(
                    OpenAICompatBackend(ep.base_url, self._session, self.timeouts, ep.api_key()),
                    CircuitBreaker(up.breaker_failures, up.breaker_cooldown_s),
                )
                for ep in model.endpoints
            ]
            self.pools[model.name] = EndpointPool(model.name, endpoints)
            log.info(
                "model %s: %d endpoint(s) %s",
                model.name,
                len(endpoints),
                ", ".join(e.name for e in endpoints),
            )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
