"""Backends board: the vLLM engines (queue depth, running batch, KV-cache, prefix cache,
preemptions, throughput, engine latency) and the gateway's view of them (circuit breakers,
upstream errors, retries, the pods discovery finds, its prefix index).

Engine series carry vLLM's ``model_name`` label and the scrape's ``instance``. The chart's
PodMonitor adds no pool (GPU type) label, and each pool of the chart serves one model on one
GPU product, so throughput "per GPU type" is shown per served model and replica.
"""

from __future__ import annotations

from switchyard.deploy.dashboards.adapters import adapter_loads
from switchyard.deploy.dashboards.prefix import (
    prefix_index_evictions,
    prefix_index_fill,
    prefix_index_memory,
)
from switchyard.deploy.dashboards.style import (
    Dashboard,
    Panel,
    breaker_timeline,
    dashboard,
    stat,
    target,
    timeseries,
)

ENGINE_JOB = 'job=~".*vllm.*"'  # as switchyard/deploy/rules.py's engine alerts select it


def waiting() -> Panel:
    return timeseries(
        "Queue depth (waiting)",
        "Requests waiting to be admitted to each model's running batch, all replicas.",
        [target("model_name:vllm_num_requests_waiting:sum", "{{model_name}}")],
        "short",
        w=8,
    )


def running() -> Panel:
    return timeseries(
        "Running requests",
        "Requests in each model's running batch, all replicas.",
        [target("model_name:vllm_num_requests_running:sum", "{{model_name}}")],
        "short",
        w=8,
    )


def kv_cache() -> Panel:
    return timeseries(
        "KV-cache usage (fullest replica)",
        "KV-cache blocks in use on each model's fullest replica; near 100% the engine queues "
        "or preempts.",
        [target("model_name:vllm_kv_cache_usage_perc:max", "{{model_name}}")],
        "percentunit",
        w=8,
        max_value=1,
    )


def prefix_cache() -> Panel:
    hits = "sum by (model_name, instance) (rate(vllm:prefix_cache_hits_total[5m]))"
    queries = "sum by (model_name, instance) (rate(vllm:prefix_cache_queries_total[5m]))"
    return timeseries(
        "Prefix-cache hit ratio",
        "Share of prompt tokens found in the prefix cache (vLLM V1 counters, 5m). A replica "
        "started without prefix caching (vllm:cache_config_info) shows 0.",
        [
            target(
                f"{hits}\n/ {queries}\nor\n0 * max by (instance) "
                '(vllm:cache_config_info{enable_prefix_caching="False"})',
                "{{model_name}} {{instance}}",
            )
        ],
        "percentunit",
        w=8,
        max_value=1,
    )


def preemptions() -> Panel:
    return timeseries(
        "Preemptions",
        "Running sequences evicted per second to free KV-cache (5m).",
        [target("sum by (model_name) (rate(vllm:num_preemptions_total[5m]))", "{{model_name}}")],
        "short",
        w=8,
    )


def engines_up() -> Panel:
    return stat(
        "Engines scraped",
        "vLLM replicas Prometheus scrapes successfully, of those it knows.",
        [
            target(f"sum(up{{{ENGINE_JOB}}})", "up"),
            target(f"count(up{{{ENGINE_JOB}}})", "known"),
        ],
        "short",
        w=8,
        h=8,
    )


def throughput() -> Panel:
    return timeseries(
        "Throughput by model and replica",
        "Generated and prefill tokens per second on each replica (5m): one pool is one model "
        "on one GPU type, so this compares GPU types.",
        [
            target(
                "sum by (model_name, instance) (rate(vllm:generation_tokens_total[5m]))",
                "{{model_name}} {{instance}} generated",
            ),
            target(
                "sum by (model_name, instance) (rate(vllm:prompt_tokens_total[5m]))",
                "{{model_name}} {{instance}} prefill",
            ),
        ],
        "short",
        w=8,
    )


def finished() -> Panel:
    return timeseries(
        "Engine requests finished",
        "Requests each model's engines finished per second, by finish reason (5m).",
        [
            target(
                "sum by (model_name, finished_reason) (rate(vllm:request_success_total[5m]))",
                "{{model_name}} {{finished_reason}}",
            )
        ],
        "reqps",
        w=8,
    )


def engine_latency() -> Panel:
    def p95(metric: str) -> str:
        return f"histogram_quantile(0.95, sum by (model_name, le) (rate({metric}_bucket[5m])))"

    return timeseries(
        "Engine latency p95",
        "Inside the engine: time to first token, inter-token latency and end-to-end latency, "
        "p95 by model (5m).",
        [
            target(p95("vllm:time_to_first_token_seconds"), "{{model_name}} TTFT"),
            target(p95("vllm:inter_token_latency_seconds"), "{{model_name}} ITL"),
            target(p95("vllm:e2e_request_latency_seconds"), "{{model_name}} end to end"),
        ],
        "s",
        w=8,
    )


def breakers() -> Panel:
    return breaker_timeline(
        "Circuit breakers",
        "Each endpoint's breaker as the gateway sees it: closed, half-open (probing) or open "
        "(no traffic). The worst state across gateway replicas.",
        [
            target(
                "max by (model, endpoint) (switchyard_circuit_breaker_state)",
                "{{model}} {{endpoint}}",
            )
        ],
    )


def unhealthy_endpoints() -> Panel:
    return timeseries(
        "Endpoints not closed",
        "Endpoints per model whose breaker is half-open or open on some gateway replica.",
        [
            target(
                "sum by (model) (max by (model, endpoint) (switchyard_circuit_breaker_state) "
                ">= bool 1)",
                "{{model}}",
            )
        ],
        "short",
        w=8,
    )


def upstream_errors() -> Panel:
    return timeseries(
        "Upstream errors",
        "Failed attempts against endpoints per second, by model and kind of error (5m).",
        [
            target(
                "sum by (model, kind) (rate(switchyard_upstream_errors_total[5m]))",
                "{{model}} {{kind}}",
            )
        ],
        "reqps",
        w=8,
    )


def retries() -> Panel:
    return timeseries(
        "Retries",
        "Attempts moved to another endpoint before the first byte, by model and the endpoint "
        "that failed (5m).",
        [
            target(
                "sum by (model, endpoint) (rate(switchyard_retries_total[5m]))",
                "{{model}} {{endpoint}}",
            )
        ],
        "reqps",
        w=8,
    )


# Endpoints each model's pool balances over now, per the breakers the gateway exports.
_POOL_ENDPOINTS = "count by (model) (max by (model, endpoint) (switchyard_circuit_breaker_state))"


def discovered_endpoints() -> Panel:
    return timeseries(
        "Endpoints per model (discovered pods)",
        "Pods discovery (DNS or EndpointSlices) knows for each model, fewest across gateway "
        "replicas; a model with listed URLs shows the endpoints its pool holds.",
        [
            target(
                f"min by (model) (switchyard_discovered_endpoints)\nor\n{_POOL_ENDPOINTS}",
                "{{model}}",
            )
        ],
        "short",
        w=8,
    )


def discovery_errors() -> Panel:
    return timeseries(
        "Discovery lookup errors",
        "Failed lookups of each model's pods per second, all gateway replicas (5m); while "
        "they fail the gateway serves the last pods it found. 0 for models without discovery.",
        [
            target(
                "sum by (model) (rate(switchyard_discovery_errors_total[5m]))\n"
                f"or\n0 * {_POOL_ENDPOINTS}",
                "{{model}}",
            )
        ],
        "short",
        w=8,
    )


def board() -> Dashboard:
    panels = [
        waiting(), running(), kv_cache(), prefix_cache(), preemptions(), throughput(),
        finished(), engine_latency(), unhealthy_endpoints(), upstream_errors(), retries(),
        discovered_endpoints(), discovery_errors(), engines_up(), breakers(),
        prefix_index_fill(), prefix_index_memory(), prefix_index_evictions(),
        adapter_loads(),
    ]  # fmt: skip
    return dashboard(
        "backends",
        "switchyard-backends",
        "Switchyard / Backends",
        "vLLM engines behind the Switchyard gateway and the gateway's circuit breakers, "
        "upstream errors and retries.",
        panels,
    )
