"""The request path's metrics: per model, and per router for routed requests, plain numbers
bumped on the event loop's thread (``switchyard.backends.metric_values``), exported at scrape
time by the collectors here (``RequestMetrics``, ``RoutingMetrics``, ``SpendMetrics``).

A proxied request updates about six of these; as prometheus_client objects (a lock and
several Python calls per update, and a ``labels()`` lookup) they cost more than any other
part of the gateway's own work per request. Names, types and labels are what they were as
prometheus_client metrics, less the ``_created`` series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from switchyard.backends.metric_values import Histogram

LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
DELAY_BUCKETS = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ModelMetrics:
    """What the request path counts for one model."""

    __slots__ = (
        "completion_tokens", "cost", "duration", "expected_delay", "finished_count",
        "in_flight", "name", "prompt_tokens", "ttft",
    )  # fmt: skip

    def __init__(self, name: str) -> None:
        self.name = name
        self.in_flight = 0
        self.finished_count: dict[tuple[str, str], int] = {}  # (endpoint, status) -> requests
        self.duration = Histogram(LATENCY_BUCKETS)
        self.ttft = Histogram(LATENCY_BUCKETS)
        self.expected_delay = Histogram(DELAY_BUCKETS)
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.cost = 0.0

    def finished(self, endpoint: str, status: str, seconds: float) -> None:
        """A request to this model is done: count it by endpoint and status, and time it."""
        counts = self.finished_count
        counts[endpoint, status] = counts.get((endpoint, status), 0) + 1
        self.duration.observe(seconds)

    def usage(self, prompt: int, completion: int, cost_usd: float) -> None:
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cost += cost_usd


class RequestMetrics(Collector):
    """Every model's ``ModelMetrics``, and requests refused before any model took them."""

    def __init__(self) -> None:
        self._models: dict[str, ModelMetrics] = {}
        self._refused: dict[tuple[str, str], int] = {}  # (model or "-", status) -> requests

    def model(self, name: str) -> ModelMetrics:
        found = self._models.get(name)
        if found is None:
            found = self._models[name] = ModelMetrics(name)
        return found

    def refused(self, model: str, status: str) -> None:
        self._refused[model, status] = self._refused.get((model, status), 0) + 1

    def collect(self) -> Iterable[Metric]:
        models = list(self._models.values())
        requests = CounterMetricFamily(
            "switchyard_requests",
            "Finished requests by model, endpoint and HTTP status (or client_closed).",
            labels=["model", "endpoint", "status"],
        )
        for m in models:
            for (endpoint, status), count in list(m.finished_count.items()):
                requests.add_metric([m.name, endpoint, status], count)
        for (model, status), count in list(self._refused.items()):
            requests.add_metric([model, "-", status], count)
        yield requests
        yield _gauge("switchyard_in_flight_requests", "Requests being served.",
                     [(m.name, m.in_flight) for m in models])  # fmt: skip
        yield _histogram("switchyard_request_duration_seconds",
                         "Time from request received to last byte sent.",
                         [(m.name, m.duration) for m in models])  # fmt: skip
        yield _histogram("switchyard_time_to_first_token_seconds",
                         "Time from request received to the first streamed chunk from the backend.",
                         [(m.name, m.ttft) for m in models])  # fmt: skip
        yield _histogram("switchyard_expected_delay_seconds",
                         "Expected wait on the chosen model's best replica when a request "
                         "was sent.",
                         [(m.name, m.expected_delay) for m in models])  # fmt: skip
        yield _counter("switchyard_prompt_tokens", "Prompt tokens, from backend usage.",
                       [(m.name, m.prompt_tokens) for m in models])  # fmt: skip
        yield _counter("switchyard_completion_tokens", "Completion tokens, from backend usage.",
                       [(m.name, m.completion_tokens) for m in models])  # fmt: skip
        yield _counter("switchyard_cost_usd", "Spend in USD from the configured model prices.",
                       [(m.name, m.cost) for m in models])  # fmt: skip


class RoutingMetrics(Collector):
    """What a routing decision counts: decisions by router and chosen model, the time each
    took, and the decision batches (each one embedding call)."""

    BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

    def __init__(self) -> None:
        self._routed: dict[tuple[str, str], int] = {}
        self._seconds: dict[str, Histogram] = {}
        self.batches = 0

    def decided(self, router: str, model: str, seconds: float) -> None:
        self._routed[router, model] = self._routed.get((router, model), 0) + 1
        histogram = self._seconds.get(router)
        if histogram is None:
            histogram = self._seconds[router] = Histogram(self.BUCKETS)
        histogram.observe(seconds)

    def collect(self) -> Iterable[Metric]:
        yield _by_pair("switchyard_routed_requests", "Routed requests by router and chosen model.",
                       ("router", "model"), self._routed)  # fmt: skip
        yield _histogram("switchyard_routing_decision_seconds",
                         "Time from a routed request's arrival at the router to its decision.",
                         list(self._seconds.items()), label="router")  # fmt: skip
        yield CounterMetricFamily(
            "switchyard_routing_batches",
            "Embedding calls made by the routers (each embeds a batch of prompts).",
            value=self.batches,
        )


class SpendMetrics(Collector):
    """``switchyard_spend_usd{key, tenant}``: spend by API key name and tenant, a plain number
    per pair added on the event loop's thread (one call per request with a key)."""

    def __init__(self) -> None:
        self._usd: dict[tuple[str, str], float] = {}

    def add(self, key: str, tenant: str, usd: float) -> None:
        self._usd[key, tenant] = self._usd.get((key, tenant), 0.0) + usd

    def collect(self) -> Iterable[Metric]:
        yield _by_pair("switchyard_spend_usd", "Spend in USD by API key name and tenant.",
                       ("key", "tenant"), self._usd)  # fmt: skip


def _by_pair(
    name: str, doc: str, labels: tuple[str, str], values: Mapping[tuple[str, str], float]
) -> Metric:
    """A counter family from plain numbers kept by a pair of label values."""
    family = CounterMetricFamily(name, doc, labels=list(labels))
    for pair, value in list(values.items()):
        family.add_metric(list(pair), value)
    return family


def _gauge(name: str, doc: str, values: list[tuple[str, float]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=["model"])
    for model, value in values:
        family.add_metric([model], value)
    return family


def _counter(name: str, doc: str, values: list[tuple[str, float]]) -> Metric:
    family = CounterMetricFamily(name, doc, labels=["model"])
    for model, value in values:
        family.add_metric([model], value)
    return family


def _histogram(
    name: str, doc: str, values: list[tuple[str, Histogram]], label: str = "model"
) -> Metric:
    family = HistogramMetricFamily(name, doc, labels=[label])
    for value, histogram in values:
        family.add_metric([value], histogram.buckets(), histogram.total)
    return family
