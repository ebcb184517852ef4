"""The state replicas share, as both stores see it: where it lives (``StateConfig``), whether
it answers (``StoreHealth``), and what a store raises when it does not
(``StoreUnavailableError``).

The tenancy store (``switchyard.gateway.tenancy``) and the routing state
(``switchyard.gateway.online``) both use these and neither owns them; the Redis side (URL forms,
the client factory, the error mapping) is ``switchyard.gateway.redis_client``. Nothing here
imports Redis, so settings load without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StoreUnavailableError(Exception):
    """The shared store cannot be reached (Redis down); the caller fails open or closed."""


class StateConfig(BaseModel):
    """Where replicas share state. The URL forms (one server, Redis Cluster, Sentinel) are
    described in ``switchyard.gateway.redis_client``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redis_url: str | None = Field(
        default=None,
        description="redis://host:port/db, redis+cluster://host:port,host:port or "
        "redis+sentinel://host:port,host:port/master_name; unset: in-process.",
    )
    mode: Literal["auto", "single", "cluster", "sentinel"] = Field(
        default="auto", description="The Redis topology; auto: from the URL's scheme."
    )
    key_prefix: str = Field(default="switchyard", pattern=r"^[A-Za-z0-9_.:-]+$")
    timeout_s: float = Field(default=0.25, gt=0, description="Per Redis command.")
    replica_acks: int | None = Field(
        default=None,
        ge=0,
        description="Replicas that must hold an outcome record before it counts as written "
        "(WAIT after XADD); unset: 1 on a Cluster or Sentinel, 0 on one server.",
    )

    @model_validator(mode="after")
    def _check_url(self) -> StateConfig:
        if self.redis_url is not None:
            from switchyard.gateway.redis_client import parse_target

            parse_target(self.redis_url, self.mode)  # ValueError names the accepted forms
        elif self.mode != "auto":
            raise ValueError(f"state.mode {self.mode!r} needs state.redis_url")
        return self


class StoreHealth:
    """Whether one state store ("tenancy", "routing") answers, as its last call found it.

    Each store reports its own, so ``switchyard_state_store_up{store}`` is true for every store
    a replica has. ``mark`` says whether the state changed, so owners log changes, not calls.
    ``probe`` (a cheap call such as PING) is started by a scrape, so an idle store's health
    is still read at least once per scrape interval; the scrape reports the last state known.
    """

    def __init__(self, store: str, probe: Callable[[], Awaitable[object]] | None = None) -> None:
        self.store = store
        self.up = True
        self.since = time.monotonic()
        self._probe = probe
        self._probing: asyncio.Task[None] | None = None

    def mark(self, up: bool) -> bool:
        """Record a call's outcome; True when it changes the state."""
        if up == self.up:
            return False
        self.up, self.since = up, time.monotonic()
        return True

    def refresh(self) -> None:
        """Start a probe in the running loop, if any and none is in flight (never blocks)."""
        if self._probe is None or (self._probing is not None and not self._probing.done()):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # scraped from another thread: report what is known
            return
        self._probing = loop.create_task(self._run_probe(self._probe))

    async def _run_probe(self, probe: Callable[[], Awaitable[object]]) -> None:
        with contextlib.suppress(StoreUnavailableError):  # the store marked itself down
            await probe()
