"""Wiring LoRA adapter models to pools: an adapter's pool holds its base model's endpoints
(the same ``Endpoint`` objects) and an ``AdapterRoute`` that makes replica choice
adapter-aware (``switchyard.backends.adapters``); one ``AdapterLoader`` per gateway when
``adapters.on_demand_loading`` is on, kept across config reloads (what it loaded stays
loaded)."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping

import aiohttp

from switchyard.backends.adapters import AdapterCosts, AdapterLoader, AdapterRoute
from switchyard.backends.pool import EndpointPool, Snapshots
from switchyard.gateway.settings import ModelConfig, Settings

__all__ = ["adapter_loader", "adapter_pool", "adapter_pools_of"]


def adapter_loader(
    settings: Settings, session: aiohttp.ClientSession | None, current: AdapterLoader | None
) -> AdapterLoader | None:
    """The loader for ``settings`` (``current`` when it still fits), or ``None`` when off."""
    cfg = settings.adapters
    if not cfg.on_demand_loading or session is None:
        return None
    if current is not None:
        current.max_loaded = cfg.max_loaded_per_replica
        return current
    # Protect what was sent since the oldest snapshot replica choice would still trust.
    protect_s = max(3 * settings.upstream.scrape_interval_s, 1.0)
    return AdapterLoader(session, cfg.max_loaded_per_replica, cfg.load_timeout_s, protect_s)


def adapter_pool(
    model: ModelConfig,
    pools: Mapping[str, EndpointPool],
    settings: Settings,
    loader: AdapterLoader | None,
    snapshots: Snapshots,
    rng: random.Random,
) -> EndpointPool:
    """The pool of adapter ``model``: its base model's endpoints, adapter-aware choice."""
    adapter = model.adapter
    assert adapter is not None, "an adapter model"
    base = pools[adapter.base]
    cfg = settings.adapters
    costs = AdapterCosts(swap_s=cfg.swap_s, evict_s=cfg.evict_s, load_s=cfg.load_s)
    route = AdapterRoute(
        adapter.name,
        adapter.source or "",
        costs,
        loader,
        window_s=max(base.policy.max_snapshot_age_s, 1.0),
    )
    return EndpointPool(
        model.name,
        base.endpoints,
        balancer=base.balancer,
        snapshots=snapshots,
        policy=base.policy,
        rng=rng,
        adapter=route,
    )


def adapter_pools_of(
    models: Mapping[str, ModelConfig], pools: Mapping[str, EndpointPool], base: str
) -> Iterator[EndpointPool]:
    """The pools of the adapters of model ``base``."""
    for name, model in models.items():
        if model.adapter is not None and model.adapter.base == base and name in pools:
            yield pools[name]
