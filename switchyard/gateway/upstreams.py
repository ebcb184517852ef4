"""Wiring settings to backends: the shared HTTP session, one endpoint pool per model and the
engine-metrics scraper over all endpoints, built when the app starts (aiohttp needs the
running loop), swapped whole on a config reload, and closed when the app stops.

The scraper runs as a background task; requests only read its latest snapshots (a dict
lookup in ``EndpointPool.pick``), so scraping never sits on the request path.

An endpoint configured with ``discover:`` instead of ``url:`` stands for every pod its source
finds (``switchyard.backends.discovery``): one background ``Discovery`` per source, each pod an
``Endpoint`` of its own with the entry's weight and ``max_num_seqs``. On a change the pool's
endpoint set is replaced in one assignment; ``Endpoint`` objects of pods that stay are kept
(in-flight counts, breakers, learned service times), a pod gone drains, and the scraper
scrapes a new pod at once. A reload starts new sources seeded with the pods already known,
so a reload never empties a pool.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import random
from collections.abc import Iterable, Mapping

import aiohttp

from switchyard.backends.adapters import AdapterLoader
from switchyard.backends.breaker import CircuitBreaker
from switchyard.backends.client import OpenAICompatBackend, Timeouts, create_client
from switchyard.backends.client import create_session as create_http_session
from switchyard.backends.discovery import Discovery, DnsSource, Source, Target
from switchyard.backends.endpoint import RetryBudget
from switchyard.backends.engine_state import EngineSnapshot
from switchyard.backends.http1 import Http1Client
from switchyard.backends.pool import Endpoint, EndpointPool, RetryPolicy
from switchyard.backends.prefix_index import PrefixIndex
from switchyard.backends.replica import ReplicaPolicy
from switchyard.backends.scraper import Scraper, metrics_url
from switchyard.gateway.adapter_pools import adapter_loader, adapter_pool, adapter_pools_of
from switchyard.gateway.discovery_config import DiscoveryConfig, DiscoveryKind
from switchyard.gateway.settings import EndpointConfig, ModelConfig, Settings

log = logging.getLogger("switchyard.gateway")

# Scrapes missed in a row before a snapshot counts as unknown (in-flight counts take over).
STALE_AFTER = 3
# Longest wait at start for discovery's first answers (a lookup's own timeout bounds it too).
FIRST_DISCOVERY_S = 5.0

# A discovery source of a model: (model name, the entry's discover section).
SourceKey = tuple[str, DiscoveryConfig]


class Upstreams:
    """The models the gateway serves right now, their endpoint pools and engine metrics."""

    def __init__(self, settings: Settings) -> None:
        self.pools: dict[str, EndpointPool] = {}
        self.scraper: Scraper | None = None
        self._session: aiohttp.ClientSession | None = None  # adapter loading
        self._http: Http1Client | None = None  # the proxied requests
        self._closing: set[asyncio.Task[None]] = set()
        self.discoveries: dict[SourceKey, Discovery] = {}
        # Failed lookups per model since start (a counter: kept across reloads).
        self.discovery_errors: dict[str, int] = {}
        # What the gateway sent where (upstream.prefix_scoring), shared by all pools.
        self.prefix_index: PrefixIndex | None = None
        # On-demand LoRA loading (adapters.on_demand_loading); kept across reloads.
        self.adapter_loader: AdapterLoader | None = None
        self._use(settings)

    def _use(self, settings: Settings) -> None:
        # Derived once per config, not per request.
        up = settings.upstream
        self.settings = settings
        self._delays_at = -1.0  # the loop time of expected_delays()'s remembered values
        self._delays: dict[str, float] = {}
        self.models: dict[str, ModelConfig] = {m.name: m for m in settings.models}
        self.timeouts = Timeouts(up.connect_timeout_s, up.first_byte_timeout_s, up.read_timeout_s)
        self.retry = RetryPolicy(up.max_attempts, up.retry_budget_s)
        age = STALE_AFTER * up.scrape_interval_s if up.scrape_interval_s > 0 else 0.0
        self.replica_policy = ReplicaPolicy(choices=up.replica_choices, max_snapshot_age_s=age)
        self._rng = random.Random(up.seed)
        if not up.prefix_scoring:
            self.prefix_index = None
        elif self.prefix_index is None or self.prefix_index.max_blocks != up.prefix_index_blocks:
            self.prefix_index = PrefixIndex(up.prefix_index_blocks)

    @property
    def http_client(self) -> Http1Client | None:
        """The proxied requests' connections (None before ``start``)."""
        return self._http

    @property
    def started(self) -> bool:
        return self._session is not None

    async def start(self) -> None:
        self._session = create_http_session(self.settings.upstream.pool_size, self.timeouts)
        self._http = create_client(self.settings.upstream.pool_size, self.timeouts)
        self.discoveries = self._start_discovery(self.settings, {})
        self.pools = self._build_pools(self.settings, self.timeouts)
        self.scraper = self._start_scraper(self.settings)
        await self._first_answers()

    def reload(self, settings: Settings) -> None:
        """Serve ``settings`` from now on; requests already sent finish on the old pools.
        Call inside the running loop (the scraper and discovery sources are replaced)."""
        previous, old_pools = self.settings, self.pools
        old_scraper, old_found = self.scraper, self.discoveries
        self._use(settings)
        try:
            self.discoveries = self._start_discovery(settings, old_found)
            # Endpoints carry timeouts, breaker and retry budget of the upstream section.
            keep = old_pools if previous.upstream == settings.upstream else None
            self.pools = self._build_pools(settings, self.timeouts, keep)
            self.scraper = self._start_scraper(settings)
        except BaseException:
            self._use(previous)
            new_scraper, new_found = self.scraper, self.discoveries
            self.pools, self.scraper, self.discoveries = old_pools, old_scraper, old_found
            self._stop_later(new_scraper if new_scraper is not old_scraper else None)
            for d in new_found.values() if new_found is not old_found else ():
                self._stop_later(d)
            raise
        self._stop_later(old_scraper)
        for d in old_found.values():
            self._stop_later(d)

    def expected_delays(self, models: Iterable[str]) -> dict[str, float]:
        """Seconds a new request would wait on each model's best replica now (``inf`` for
        a model without a pool or with no endpoint that may take traffic).

        Remembered for one turn of the event loop (uvloop's clock stands still during a
        turn): the routed requests read in one turn see the same delays, so their decisions
        share one policy call in the router's batch, and the pools are read once."""
        now = asyncio.get_running_loop().time()
        if now != self._delays_at:
            self._delays_at, self._delays = now, {}
        known, pools = self._delays, self.pools
        out = {}
        for m in models:
            delay = known.get(m)
            if delay is None:
                delay = known[m] = pools[m].expected_delay() if m in pools else math.inf
            out[m] = delay
        return out

    def discovered(self) -> dict[str, int]:
        """Pods each model with a discovery source knows now (all its sources together)."""
        found: dict[str, set[str]] = {}
        for (model, _), discovery in self.discoveries.items():
            found.setdefault(model, set()).update(t.url for t in discovery.targets)
        return {model: len(urls) for model, urls in found.items()}

    def _snapshot(self, name: str) -> EngineSnapshot | None:
        scraper = self.scraper
        return scraper.snapshot(name) if scraper is not None else None

    def _scrape_targets(self) -> dict[str, str]:
        names = {ep.name for pool in self.pools.values() for ep in pool.endpoints}
        return {name: metrics_url(name) for name in sorted(names)}

    def _start_scraper(self, settings: Settings) -> Scraper | None:
        interval = settings.upstream.scrape_interval_s
        if interval <= 0:
            return None
        scraper = Scraper(self._scrape_targets(), interval_s=interval, stale_after=STALE_AFTER)
        scraper.start()
        return scraper

    def _stop_later(self, closable: Scraper | Discovery | None) -> None:
        if closable is None:
            return
        task = asyncio.get_running_loop().create_task(closable.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _start_discovery(
        self, settings: Settings, known: dict[SourceKey, Discovery]
    ) -> dict[SourceKey, Discovery]:
        """One background ``Discovery`` per source, seeded with the pods already known."""
        found: dict[SourceKey, Discovery] = {}
        for model in settings.models:
            for ep in model.endpoints:
                if ep.discover is None or (model.name, ep.discover) in found:
                    continue
                key = (model.name, ep.discover)
                before = known.get(key)
                found[key] = Discovery(
                    _source(ep.discover),
                    functools.partial(self._discovered, model.name, found),
                    interval_s=ep.discover.interval_s,
                    model=model.name,
                    initial=before.targets if before is not None else frozenset(),
                    on_error=functools.partial(self._count_error, model.name),
                )
        for discovery in found.values():
            discovery.start()
        return found

    async def _first_answers(self) -> None:
        pending = [d.wait_first(FIRST_DISCOVERY_S) for d in self.discoveries.values()]
        if pending:
            await asyncio.gather(*pending)

    def _count_error(self, model: str) -> None:
        self.discovery_errors[model] = self.discovery_errors.get(model, 0) + 1

    def _discovered(
        self, model_name: str, generation: dict[SourceKey, Discovery], _: frozenset[Target]
    ) -> None:
        """A source of ``model_name`` found a new set of pods: swap the pool's endpoints."""
        model, pool = self.models.get(model_name), self.pools.get(model_name)
        if generation is not self.discoveries or model is None or pool is None:
            return  # a source of a config replaced since; its successor reports instead
        pool.replace(self._endpoints(model, {ep.name: ep for ep in pool.endpoints}))
        for served in adapter_pools_of(self.models, self.pools, model_name):
            served.replace(pool.endpoints)  # adapters are served by their base's pods
        if self.scraper is not None:
            self.scraper.set_targets(self._scrape_targets())

    def _endpoints(self, model: ModelConfig, keep: Mapping[str, Endpoint]) -> list[Endpoint]:
        """The endpoints ``model`` has now: its URLs and every pod discovered, each once;
        an endpoint in ``keep`` (by URL) built from an equal config entry is reused as it is
        (in-flight count, breaker, learned service time)."""
        out: dict[str, Endpoint] = {}
        for cfg in model.endpoints:
            if cfg.discover is None:
                urls = [cfg.base_url]
            else:
                discovery = self.discoveries.get((model.name, cfg.discover))
                found: frozenset[Target] = discovery.targets if discovery else frozenset()
                urls = sorted(t.url for t in found)
            for url in urls:
                kept = keep.get(url)
                if url not in out:
                    out[url] = kept if kept and kept.origin == cfg else self._endpoint(url, cfg)
        return list(out.values())

    def _endpoint(self, url: str, cfg: EndpointConfig) -> Endpoint:
        assert self._http is not None, "start() first"
        up = self.settings.upstream
        return Endpoint(
            OpenAICompatBackend(url, self._http, self.timeouts, cfg.api_key()),
            CircuitBreaker(up.breaker_failures, up.breaker_cooldown_s),
            weight=cfg.weight,
            max_num_seqs=cfg.max_num_seqs,
            prefill_s_per_token=cfg.prefill_s_per_token,
            retry_budget=RetryBudget(up.endpoint_retry_ratio, up.endpoint_retry_reserve),
            origin=cfg,
        )

    def _build_pools(
        self, settings: Settings, timeouts: Timeouts, old: Mapping[str, EndpointPool] | None = None
    ) -> dict[str, EndpointPool]:
        """A pool per model; with ``old`` (a reload that leaves ``upstream`` as it was), the
        endpoints whose entries did not change are kept, counts and all."""
        assert self._session is not None, "start() first"
        up = settings.upstream
        pools = {}
        for model in settings.models:
            if model.adapter is not None:
                continue  # built below, on their base model's endpoints
            before = old.get(model.name) if old is not None else None
            keep = {ep.name: ep for ep in before.endpoints} if before is not None else {}
            endpoints = self._endpoints(model, keep)
            pools[model.name] = EndpointPool(
                model.name,
                endpoints,
                balancer=up.balancer.value,
                snapshots=self._snapshot,
                policy=self.replica_policy,
                rng=self._rng,
                prefix_index=self.prefix_index,
                slo=up.slo.policy(),
            )
            log.info(
                "model %s: %d endpoint(s) %s, %s balancer",
                model.name,
                len(endpoints),
                ", ".join(e.name for e in endpoints),
                up.balancer.value,
            )
        self.adapter_loader = adapter_loader(settings, self._session, self.adapter_loader)
        for model in settings.models:
            if model.adapter is not None:
                pools[model.name] = adapter_pool(
                    model, pools, settings, self.adapter_loader, self._snapshot, self._rng
                )
        return pools

    async def close(self) -> None:
        found, self.discoveries = self.discoveries, {}
        await asyncio.gather(*(d.aclose() for d in found.values()))
        scraper, self.scraper = self.scraper, None
        if scraper is not None:
            await scraper.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._http is not None:
            await self._http.close()
            self._http = None


def _source(cfg: DiscoveryConfig) -> Source:
    if cfg.kind is DiscoveryKind.kubernetes:
        # Imported here: the "kubernetes" extra is optional, DNS needs nothing more.
        from switchyard.backends.discovery_k8s import EndpointSliceSource

        return EndpointSliceSource(
            cfg.name, cfg.port, namespace=cfg.namespace, scheme=cfg.scheme, path=cfg.path
        )
    return DnsSource(
        cfg.name,
        cfg.port,
        scheme=cfg.scheme,
        path=cfg.path,
        interval_s=cfg.interval_s,
        timeout_s=cfg.timeout_s,
        nameserver=cfg.nameserver,
    )
