"""vLLM's Prometheus metrics, under vLLM's own names, on an injected ``CollectorRegistry``.

The gateway scrapes these exactly as it would scrape a real vLLM, so names, types and the
``model_name`` label match vLLM. Values are plain ints and floats bumped from the event loop
and turned into metric families only at scrape time (a custom collector): prometheus_client's
own Counter/Histogram take a lock per call, and the zero-latency benchmark path must stay cheap.
Gauges are read from the engine at scrape time. ``vllm:cache_config_info`` carries the KV
pool as vLLM does (``num_gpu_blocks`` of ``block_size`` tokens, no ``model_name`` label, and
``enable_prefix_caching``), and ``vllm:num_preemptions`` stays 0: the simulated engine never
evicts a running sequence. ``vllm:prefix_cache_queries`` / ``vllm:prefix_cache_hits`` count
prompt tokens looked up in the prefix cache and found there, as vLLM V1's counters do.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from switchyard.backends.metric_values import Histogram
from switchyard.backends.prefix_blocks import BLOCK_TOKENS
from switchyard.backends.simulator.config import PerfModel

# vLLM's bucket boundaries (vllm/engine/metrics.py), so dashboards built for vLLM still fit.
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)  # fmt: skip
ITL_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0,
               7.5, 10.0, 20.0, 40.0, 80.0)  # fmt: skip
E2E_BUCKETS = (0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0,
               60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0)  # fmt: skip
FINISHED_REASONS = ("stop", "length")
_GAUGES = (
    ("vllm:num_requests_running", "Requests in the running batch."),
    ("vllm:num_requests_waiting", "Requests waiting to be admitted."),
    ("vllm:kv_cache_usage_perc", "KV-cache usage; 1 means 100 percent."),
)
BLOCK_SIZE = BLOCK_TOKENS


class LoadSource(Protocol):
    """What the gauges read at scrape time (the engine)."""

    @property
    def num_running(self) -> int: ...

    @property
    def num_waiting(self) -> int: ...

    @property
    def kv_cache_usage(self) -> float: ...

    @property
    def perf(self) -> PerfModel: ...

    @property
    def prefix_caching(self) -> bool: ...


class SimulatorMetrics:
    """The counters and histograms of one simulated server."""

    def __init__(self) -> None:
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.prefix_cache_queries = 0  # prompt tokens looked up in the prefix cache
        self.prefix_cache_hits = 0  # of those, the tokens found there
        self.success = dict.fromkeys(FINISHED_REASONS, 0)
        self.ttft = Histogram(TTFT_BUCKETS)
        self.itl = Histogram(ITL_BUCKETS)
        self.e2e = Histogram(E2E_BUCKETS)

    def record_success(self, finish_reason: str) -> None:
        # vLLM reports tool calls as a plain stop.
        self.success["length" if finish_reason == "length" else "stop"] += 1

    def record_instant(
        self, prompt_tokens: int, completion_tokens: int, finish_reason: str, seconds: float
    ) -> None:
        """A request answered without the engine (zero latency): every token at once."""
        self.prompt_tokens += prompt_tokens
        self.generation_tokens += completion_tokens
        self.ttft.observe(seconds)
        if completion_tokens > 1:
            self.itl.observe(0.0, completion_tokens - 1)
        self.e2e.observe(seconds)
        self.record_success(finish_reason)


class SimulatorCollector(Collector):
    """Turns ``SimulatorMetrics`` and the engine's load into vLLM's metric families."""

    def __init__(self, model_name: str, metrics: SimulatorMetrics, load: LoadSource) -> None:
        self._labels = [model_name]
        self._metrics = metrics
        self._load = load

    def describe(self) -> Iterator[Metric]:
        # Names only: lets the registry detect duplicates without reading the engine.
        yield from self._families(with_values=False)

    def collect(self) -> Iterator[Metric]:
        yield from self._families(with_values=True)

    def _families(self, with_values: bool) -> Iterator[Metric]:
        yield from self._gauges(with_values)
        yield self._cache_config(with_values)
        yield from self._counters(with_values)
        yield from self._histograms(with_values)

    def _gauges(self, with_values: bool) -> Iterator[Metric]:
        load = self._load
        values = (load.num_running, load.num_waiting, load.kv_cache_usage) if with_values else ()
        for i, (name, doc) in enumerate(_GAUGES):
            family = GaugeMetricFamily(name, doc, labels=["model_name"])
            if with_values:
                family.add_metric(self._labels, values[i])
            yield family

    def _cache_config(self, with_values: bool) -> Metric:
        perf = self._load.perf
        labels = {
            "block_size": str(BLOCK_SIZE),
            "cache_dtype": "auto",
            "enable_prefix_caching": str(self._load.prefix_caching),
            "gpu_memory_utilization": "0.9",
            "num_gpu_blocks": str(perf.kv_cache_tokens // BLOCK_SIZE),
        }
        family = GaugeMetricFamily(
            "vllm:cache_config_info", "Information of the LLMEngine CacheConfig", labels=[*labels]
        )
        if with_values:
            family.add_metric([*labels.values()], 1.0)
        return family

    def _counters(self, with_values: bool) -> Iterator[Metric]:
        m = self._metrics
        prompt = CounterMetricFamily(
            "vllm:prompt_tokens", "Prefill tokens processed.", labels=["model_name"]
        )
        generation = CounterMetricFamily(
            "vllm:generation_tokens", "Generation tokens processed.", labels=["model_name"]
        )
        success = CounterMetricFamily(
            "vllm:request_success",
            "Successfully finished requests.",
            labels=["model_name", "finished_reason"],
        )
        preemptions = CounterMetricFamily(
            "vllm:num_preemptions",
            "Cumulative number of preemption from the engine.",
            labels=["model_name"],
        )
        queries = CounterMetricFamily(
            "vllm:prefix_cache_queries",
            "Prefix cache queries, in terms of number of queried tokens.",
            labels=["model_name"],
        )
        hits = CounterMetricFamily(
            "vllm:prefix_cache_hits",
            "Prefix cache hits, in terms of number of cached tokens.",
            labels=["model_name"],
        )
        if with_values:
            queries.add_metric(self._labels, m.prefix_cache_queries)
            hits.add_metric(self._labels, m.prefix_cache_hits)
            preemptions.add_metric(self._labels, 0)
            prompt.add_metric(self._labels, m.prompt_tokens)
            generation.add_metric(self._labels, m.generation_tokens)
            for reason, count in m.success.items():
                success.add_metric([*self._labels, reason], count)
        yield from (prompt, generation, success, preemptions, queries, hits)

    def _histograms(self, with_values: bool) -> Iterator[Metric]:
        m = self._metrics
        for name, doc, histogram in (
            ("vllm:time_to_first_token_seconds", "Time to first token.", m.ttft),
            ("vllm:inter_token_latency_seconds", "Time between tokens.", m.itl),
            ("vllm:e2e_request_latency_seconds", "End-to-end request latency.", m.e2e),
        ):
            family = HistogramMetricFamily(name, doc, labels=["model_name"])
            if with_values:
                family.add_metric(self._labels, histogram.buckets(), histogram.total)
            yield family


def register_metrics(
    registry: CollectorRegistry, model_name: str, metrics: SimulatorMetrics, load: LoadSource
) -> SimulatorCollector:
    collector = SimulatorCollector(model_name, metrics, load)
    registry.register(collector)
    return collector
