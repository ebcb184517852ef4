"""LoRA adapters as routable models: which replica of the base model serves an adapter's
request, and loading the adapter there on demand.

A model configured as an adapter of a base model is served by the base model's endpoints
(the same ``Endpoint`` objects, so in-flight counts are shared); its pool carries an
``AdapterRoute``. Replica choice then adds to each replica's expected wait
(``switchyard.backends.replica.expected_delay``) the cost of serving the adapter there, as
the Gateway API Inference Extension's LoRA affinity ranks replicas::

    active there (its requests run or wait there, or this gateway sent it one lately)  0
    a free adapter slot (fewer than max_lora adapters active there)                    swap_s
    every slot taken (a slot must be given up; the request may wait for one)   swap_s + evict_s
    not registered there yet (only with on-demand loading)                       + load_s

"Active" comes from vLLM's ``vllm:lora_requests_info`` (running and waiting adapters, slot
count), read into the engine snapshot, plus this gateway's own sends since
``policy.max_snapshot_age_s`` (the page is at most that old). The least total wins among
every eligible replica (a handful per model: no sampling needed).

On-demand loading (``AdapterLoader``, off unless configured): before the first request for
an adapter reaches a replica where this gateway does not know it to be registered, the
gateway registers it with ``POST /v1/load_lora_adapter`` ``{"lora_name", "lora_path"}`` —
one call per replica and adapter however many requests arrive meanwhile (single flight:
they all await the same task, shielded from any one caller going away). vLLM's 400 "has
already been loaded" counts as success (another gateway, or ``--lora-modules``). When the
gateway already registered ``max_loaded`` adapters there, it first unregisters its least
recently used one that is not active there (``POST /v1/unload_lora_adapter``). A failed load
is an ``AdapterLoadError`` (502 ``adapter_load_failed``) in OpenAI's error shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aiohttp

from switchyard.backends.endpoint import Endpoint
from switchyard.backends.engine_state import EngineSnapshot
from switchyard.backends.errors import UpstreamError
from switchyard.backends.replica import (
    DEFAULT_POLICY,
    EndpointView,
    ReplicaChoice,
    ReplicaPolicy,
    expected_delay,
)

__all__ = [
    "AdapterCosts",
    "AdapterLoadError",
    "AdapterLoader",
    "AdapterRoute",
    "choose_adapter_replica",
]

log = logging.getLogger("switchyard.backends")


class AdapterLoadError(UpstreamError):
    """The replica chosen for an adapter's request could not load the adapter."""

    code = "adapter_load_failed"


@dataclass(frozen=True, slots=True)
class AdapterCosts:
    """Seconds charged for serving an adapter on a replica where it is not active."""

    swap_s: float = 0.1  # into a GPU slot (vLLM's CPU cache to GPU)
    evict_s: float = 1.0  # every slot taken: one is given up, the request may wait for it
    load_s: float = 1.0  # a runtime load from its source (on-demand loading only)
    default_slots: int = 8  # max_lora where the page does not say


class AdapterLoader:
    """Registers adapters on replicas on demand, once per replica and adapter; unregisters
    the least recently used one it registered when ``max_loaded`` (0: the replica's
    max_lora) are registered there. Counts outcomes per model for the gateway's metrics."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        max_loaded: int = 0,
        timeout_s: float = 60.0,
        protect_s: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._session = session
        self.max_loaded = max_loaded
        # An adapter this gateway sent a request for within protect_s is never unloaded: the
        # request may not show in the replica's metrics yet (or not be there at all yet).
        self.protect_s = protect_s
        self._clock = clock
        self._used: dict[tuple[str, str], float] = {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._known: dict[str, OrderedDict[str, None]] = {}  # endpoint -> adapters, LRU first
        self._flights: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.outcomes: dict[tuple[str, str], int] = {}  # (model, "loaded"|"failed"|"unloaded")

    def known(self, endpoint: str, adapter: str) -> bool:
        return adapter in self._known.get(endpoint, ())

    async def ensure(
        self, model: str, endpoint: Endpoint, route: AdapterRoute, snapshot: EngineSnapshot | None
    ) -> None:
        """Return once ``route``'s adapter is registered on ``endpoint`` (load it if needed)."""
        known = self._known.setdefault(endpoint.name, OrderedDict())
        name = route.adapter
        self._used[(endpoint.name, name)] = self._clock()
        if name in known:
            known.move_to_end(name)
            return
        if snapshot is not None and snapshot.lora is not None and name in snapshot.lora.active:
            known[name] = None  # it runs there: registered by someone else
            return
        key = (endpoint.name, name)
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.get_running_loop().create_task(
                self._load(model, endpoint, route, snapshot)
            )
            self._flights[key] = flight
            flight.add_done_callback(_forget_when_done(self._flights, key))
        await asyncio.shield(flight)

    async def _load(
        self, model: str, replica: Endpoint, route: AdapterRoute, snapshot: EngineSnapshot | None
    ) -> None:
        endpoint = replica.name
        known = self._known.setdefault(endpoint, OrderedDict())
        slots = self.max_loaded or _slots(snapshot, route.costs.default_slots)
        active = snapshot.lora.active if snapshot is not None and snapshot.lora else frozenset()
        while len(known) >= slots:
            victim = next((a for a in known if a not in active and not self._busy(endpoint, a)),
                          None)  # fmt: skip
            if victim is None:
                break  # all busy: vLLM keeps registering beyond its slots (its CPU cache)
            del known[victim]
            self._used.pop((endpoint, victim), None)
            await self._post(replica, "unload_lora_adapter", {"lora_name": victim})
            self._count(model, "unloaded")
        body = {"lora_name": route.adapter, "lora_path": route.source}
        try:
            status, text = await self._post(replica, "load_lora_adapter", body)
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            status, text = 0, f"{type(err).__name__}: {err}"
        if status != 200 and not (status == 400 and "already been loaded" in text):
            self._count(model, "failed")
            log.warning("adapter %s: loading on %s failed: HTTP %s %s",
                        route.adapter, endpoint, status, text[:200])  # fmt: skip
            raise AdapterLoadError(
                f"adapter '{route.adapter}' could not be loaded on a replica of its base "
                f"model (HTTP {status}): {text[:200]}"
            )
        known[route.adapter] = None
        self._count(model, "loaded")

    def _busy(self, endpoint: str, adapter: str) -> bool:
        used = self._used.get((endpoint, adapter))
        return used is not None and self._clock() - used <= self.protect_s

    async def _post(self, replica: Endpoint, path: str, body: dict[str, str]) -> tuple[int, str]:
        """POST to the replica's /v1 ``path`` with its API key, as its requests carry."""
        url = f"{replica.name}/{path}"
        headers = replica.backend.auth
        async with self._session.post(url, json=body, headers=headers,
                                      timeout=self._timeout) as resp:  # fmt: skip
            return resp.status, await resp.text()

    def _count(self, model: str, outcome: str) -> None:
        self.outcomes[(model, outcome)] = self.outcomes.get((model, outcome), 0) + 1


def _forget_when_done(
    flights: dict[tuple[str, str], asyncio.Task[None]], key: tuple[str, str]
) -> Callable[[asyncio.Task[None]], None]:
    """Forget a finished flight (and mark its error seen: its waiters may all be gone)."""

    def done(task: asyncio.Task[None]) -> None:
        if flights.get(key) is task:
            del flights[key]
        if not task.cancelled():
            with contextlib.suppress(BaseException):
                task.exception()

    return done


class AdapterRoute:
    """The adapter a pool's requests name: its vLLM name, its source, and where this gateway
    sent it lately (between two scrapes that is the only sign of it being active)."""

    def __init__(
        self,
        adapter: str,
        source: str,
        costs: AdapterCosts,
        loader: AdapterLoader | None = None,
        clock: Callable[[], float] = time.monotonic,
        window_s: float = DEFAULT_POLICY.max_snapshot_age_s,
    ) -> None:
        self.adapter = adapter
        self.source = source
        self.costs = costs
        self.loader = loader
        self._clock = clock
        self._window_s = window_s
        self._sent: dict[str, float] = {}  # endpoint -> when this gateway last sent it there

    def sent(self, endpoint: str) -> None:
        self._sent[endpoint] = self._clock()

    def recent(self, endpoint: str, adapter: str | None = None) -> bool:
        if adapter is not None and adapter != self.adapter:
            return False
        at = self._sent.get(endpoint)
        return at is not None and self._clock() - at <= self._window_s

    def cost(self, view: EndpointView, now: float, policy: ReplicaPolicy) -> float:
        """Seconds serving this adapter on ``view``'s replica adds (0 where it is active)."""
        snapshot = view.snapshot
        if snapshot is not None and snapshot.is_stale(now, policy.max_snapshot_age_s):
            snapshot = None
        lora = snapshot.lora if snapshot is not None else None
        if self.recent(view.name) or (lora is not None and self.adapter in lora.active):
            return 0.0
        costs = self.costs
        cost = costs.swap_s
        if lora is not None and len(lora.active) >= (lora.max_loras or costs.default_slots):
            cost += costs.evict_s
        if self.loader is not None and not self.loader.known(view.name, self.adapter):
            cost += costs.load_s
        return cost


def _tie(adapter: str, endpoint: str) -> int:
    digest = hashlib.blake2b(f"{adapter}\0{endpoint}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _slots(snapshot: EngineSnapshot | None, default: int) -> int:
    lora = snapshot.lora if snapshot is not None else None
    return lora.max_loras if lora is not None and lora.max_loras else default


def choose_adapter_replica(
    views: Sequence[EndpointView],
    route: AdapterRoute,
    *,
    now: float,
    policy: ReplicaPolicy = DEFAULT_POLICY,
) -> ReplicaChoice | None:
    """The eligible replica with the least expected wait + adapter cost; ties go by a hash
    of adapter and replica, so idle replicas share new adapters rather than the first
    taking them all."""
    best_index, best_key, best_delay = -1, (math.inf, 0), math.inf
    for i, view in enumerate(views):
        if not view.allows or view.weight <= 0:
            continue
        delay = expected_delay(view, now, policy)
        key = (delay + route.cost(view, now, policy), _tie(route.adapter, view.name))
        if key < best_key:
            best_index, best_key, best_delay = i, key, delay
    if best_index < 0:
        return None
    return ReplicaChoice(best_index, views[best_index].name, best_delay, by_affinity=False)
