"""Prometheus metrics of the gateway, on an injected registry (tests build their own).

Breaker states are read from the pools at scrape time by a custom collector, so the hot
path never touches them. The request path counts through ``ModelMetrics``
(``switchyard.gateway.request_metrics``): plain numbers, exported at scrape time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from switchyard.backends.errors import UpstreamError
from switchyard.backends.pool import EndpointPool
from switchyard.gateway.request_metrics import (
    ModelMetrics,
    RequestMetrics,
    RoutingMetrics,
    SpendMetrics,
)
from switchyard.gateway.state import StoreHealth

if TYPE_CHECKING:
    from switchyard.gateway.connections import ConnectionStats


class GatewayMetrics:
    """Everything the gateway counts. Also the ``DispatchObserver`` of backends.pool."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._requests = RequestMetrics()
        registry.register(self._requests)
        self.upstream_errors = Counter(
            "switchyard_upstream_errors",
            "Failed attempts against an endpoint, by kind of error.",
            ["model", "endpoint", "kind"],
            registry=registry,
        )
        self.retries = Counter(
            "switchyard_retries",
            "Attempts moved to another endpoint before the first byte.",
            ["model", "endpoint"],
            registry=registry,
        )
        self._add_load_metrics(registry)
        self._add_tenancy_metrics(registry)
        self._add_routing_metrics(registry)

    def model(self, name: str) -> ModelMetrics:
        """The request path's metrics of model ``name`` (built on first use, then reused)."""
        return self._requests.model(name)

    def _add_load_metrics(self, registry: CollectorRegistry) -> None:
        self.fallbacks = Counter(
            "switchyard_fallbacks",
            "Requests served by a fallback model because their own model could not serve them.",
            ["model", "fallback"],
            registry=registry,
        )
        self.shed = Counter(
            "switchyard_shed",
            "Requests that skipped a saturated model (to a fallback) or were refused with 429.",
            ["model"],
            registry=registry,
        )
        self.constraint_refusals = Counter(
            "switchyard_constraint_refusals",
            "Requests refused (400) because no model meets their constraints, by the model or "
            "router asked for and the constraint (switchyard.require.*, or tools, "
            "response_format, messages for a feature the request uses).",
            ["model", "constraint"],
            registry=registry,
        )

    def _add_routing_metrics(self, registry: CollectorRegistry) -> None:
        self.routing = RoutingMetrics()  # on the request path: plain numbers
        registry.register(self.routing)
        self.feedback = Histogram(
            "switchyard_feedback_score",
            "Feedback scores in [0, 1] given to routed requests, by router and chosen model.",
            ["router", "model"],
            buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
            registry=registry,
        )
        self.outcomes_buffered = Gauge(
            "switchyard_outcomes_buffered",
            "Outcome records and bandit observations waiting to be written to the state store.",
            registry=registry,
        )
        self.outcomes_dropped = Counter(
            "switchyard_outcomes_dropped",
            "Outcome records or observations dropped because the buffer was full.",
            registry=registry,
        )
        self.config_version = Gauge(
            "switchyard_config_version",
            "Fleet config version this replica serves (0: none published, or no state store).",
            registry=registry,
        )

    def _add_tenancy_metrics(self, registry: CollectorRegistry) -> None:
        self.spend = SpendMetrics()  # on the request path: plain numbers, see request_metrics
        registry.register(self.spend)
        self.limited = Counter(
            "switchyard_rate_limited",
            "Requests refused by a rate limit or budget, by key name and limit.",
            ["key", "limit"],
            registry=registry,
        )
        self.store_errors = Counter(
            "switchyard_state_store_errors",
            "Calls to the state store (Redis) that failed.",
            registry=registry,
        )
        self.admitted_without_limits = Counter(
            "switchyard_admitted_without_limits",
            "Requests admitted unchecked because the state store was down (auth.fail_open).",
            registry=registry,
        )
        self._stores: dict[str, StoreHealth] = {}
        registry.register(_StoreCollector(self._stores))
        # The HTTP server's connections (gateway.connections), registered here with the
        # other collectors of shared state; the stats arrive with the first scrape.
        self._connections: list[ConnectionStats] = []
        registry.register(_ConnectionCollector(self._connections))

    def watch_connections(self, stats: ConnectionStats) -> None:
        """Export the HTTP server's connection counts (``switchyard.gateway.connections``)."""
        if not self._connections or self._connections[0] is not stats:
            self._connections[:] = [stats]

    def watch_store(self, health: StoreHealth) -> None:
        """Export ``health`` as ``switchyard_state_store_up{store}`` (replaces a namesake)."""
        self._stores[health.store] = health

    def watch_breakers(self, pools: Callable[[], Mapping[str, EndpointPool]]) -> None:
        self.registry.register(_BreakerCollector(pools))

    def watch_bandits(self, steps: Callable[[], Mapping[str, int]]) -> None:
        """``steps()``: per router, the observations its bandit statistics hold (a replica
        sharing through Redis counts every replica's)."""
        self.registry.register(_BanditCollector(steps))

    def refused(self, model: str, status: str) -> None:
        """A request answered with an error before it was sent anywhere."""
        self._requests.refused(model, status)

    # DispatchObserver
    def upstream_error(self, model: str, endpoint: str, error: UpstreamError) -> None:
        self.upstream_errors.labels(model, endpoint, error.code or error.type).inc()

    def retry(self, model: str, endpoint: str) -> None:
        self.retries.labels(model, endpoint).inc()


class _BreakerCollector(Collector):
    def __init__(self, pools: Callable[[], Mapping[str, EndpointPool]]) -> None:
        self._pools = pools

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "switchyard_circuit_breaker_state",
            "Circuit breaker per endpoint: 0 closed, 1 half-open, 2 open.",
            labels=["model", "endpoint"],
        )
        for model, pool in self._pools().items():
            for ep in pool.endpoints:
                family.add_metric([model, ep.name], int(ep.breaker.state))
        yield family


class _BanditCollector(Collector):
    def __init__(self, steps: Callable[[], Mapping[str, int]]) -> None:
        self._steps = steps

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "switchyard_bandit_observations",
            "Feedback observations in each router's bandit statistics (all replicas').",
            labels=["router"],
        )
        for router, step in self._steps().items():
            family.add_metric([router], step)
        yield family


class _StoreCollector(Collector):
    def __init__(self, stores: Mapping[str, StoreHealth]) -> None:
        self._stores = stores

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily(
            "switchyard_state_store_up",
            "1 while the state store answers, per store (tenancy: limits, budgets and keys; "
            "routing: outcomes and bandit statistics), as its last call or probe found it.",
            labels=["store"],
        )
        for name, health in list(self._stores.items()):
            health.refresh()  # probes an idle store, for the next scrape
            family.add_metric([name], 1.0 if health.up else 0.0)
        yield family


# Error codes of what the HTTP server answers itself (gateway.connections).
HTTP_REJECTIONS = ("invalid_http_request", "request_timeout", "too_many_connections")


class _ConnectionCollector(Collector):
    def __init__(self, stats: list[ConnectionStats]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        stats = self._stats[0] if self._stats else None
        open_ = GaugeMetricFamily(
            "switchyard_http_connections",
            "Open client connections of this process, and (limit) server.max_connections.",
            labels=["kind"],
        )
        rejected = CounterMetricFamily(
            "switchyard_http_rejected",
            "Connections the HTTP server answered itself and closed: too_many_connections "
            "(over server.max_connections), request_timeout (no whole request head in "
            "server.header_timeout_s), invalid_http_request (refused by the HTTP parser).",
            labels=["reason"],
        )
        if stats is not None:
            open_.add_metric(["open"], len(stats.connections))
            open_.add_metric(["limit"], stats.limit)
        for reason in HTTP_REJECTIONS:
            rejected.add_metric([reason], stats.rejected.get(reason, 0) if stats else 0)
        yield open_
        yield rejected
