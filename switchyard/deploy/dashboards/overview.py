"""Overview board: traffic, errors, latency and time to first token, spend, and where the
traffic goes. Reads the recording rules of switchyard/deploy/rules.py wherever one exists."""

from __future__ import annotations

from switchyard.deploy.dashboards.apis import api_requests
from switchyard.deploy.dashboards.cache import response_cache, semantic_similarity
from switchyard.deploy.dashboards.style import (
    Dashboard,
    Panel,
    dashboard,
    piechart,
    stat,
    target,
    timeseries,
)
from switchyard.deploy.dashboards.tracing import trace_export

PERCENTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))
RED_ABOVE_1PCT = ((None, "green"), (0.01, "orange"), (0.05, "red"))

# The price of a model is not a metric: the most expensive model is the one whose blended
# spend per token over the last day is highest (only models that served traffic are known).
PRICIEST_MODEL = (
    "topk(1, sum by (model) (increase(switchyard_cost_usd_total[1d]))\n"
    "  / sum by (model) (increase(switchyard_prompt_tokens_total[1d])\n"
    "    + increase(switchyard_completion_tokens_total[1d])))"
)


def request_rate() -> Panel:
    return stat(
        "Requests / s",
        "Finished requests per second, all models (5m rate).",
        [target(":switchyard_requests:rate5m", "requests/s")],
        "reqps",
    )


def error_ratio() -> Panel:
    return stat(
        "5xx ratio",
        "Share of requests answered with a 5xx over 5 minutes (alert above 5%).",
        [target(":switchyard_request_errors:ratio_rate5m", "5xx")],
        "percentunit",
        thresholds=RED_ABOVE_1PCT,
    )


def cost_per_hour() -> Panel:
    return stat(
        "Spend / hour",
        "USD per hour at the pace of the last 5 minutes, from the configured model prices.",
        [target(":switchyard_cost_usd:per_hour", "USD/h")],
        "currencyUSD",
    )


def cost_per_1k() -> Panel:
    return stat(
        "Spend / 1k requests",
        "USD per thousand requests over the last 5 minutes.",
        [target(":switchyard_cost_usd:per_1k_requests", "USD/1k")],
        "currencyUSD",
    )


def priciest_share() -> Panel:
    return stat(
        "Share to the most expensive model",
        "Share of the last 5 minutes' requests sent to the model with the highest spend per "
        "token over the last day (prices are not exported: a model that served nothing today "
        "cannot be known as the most expensive). 0 when that model had no request lately.",
        [
            target(
                f"sum(model:switchyard_requests:share5m and on (model) {PRICIEST_MODEL})\n"
                "or on () vector(0)",
                "share",
            )
        ],
        "percentunit",
        thresholds=((None, "green"), (0.5, "orange"), (0.8, "red")),
    )


def in_flight() -> Panel:
    return stat(
        "In flight",
        "Requests being served right now, all gateway replicas.",
        [target("sum(switchyard_in_flight_requests)", "in flight")],
        "short",
    )


def connections() -> Panel:
    return timeseries(
        "Client connections",
        "Open client connections per gateway replica against server.max_connections (summed "
        "over its worker processes); past it, new connections get 503 and are closed.",
        [
            target('sum by (instance) (switchyard_http_connections{kind="open"})', "{{instance}}"),
            target('max(switchyard_http_connections{kind="limit"})', "limit per process"),
        ],
        "short",
    )


UPSTREAM = "switchyard_upstream_connections"
UPSTREAM_WAITS = "switchyard_upstream_connection_waits_total"


def upstream_connections() -> Panel:
    return timeseries(
        "Upstream connections",
        "Connections to the engines per gateway replica (open, idle among them) against "
        "upstream.pool_size per process, and requests waiting for one: past the limit a "
        "request waits until a connection is free.",
        [
            target(f'sum by (instance) ({UPSTREAM}{{kind="open"}})', "{{instance}} open"),
            target(f'sum by (instance) ({UPSTREAM}{{kind="idle"}})', "{{instance}} idle"),
            target(f'max({UPSTREAM}{{kind="limit"}})', "limit per process"),
            target(f"sum by (instance) (rate({UPSTREAM_WAITS}[5m]))", "{{instance}} waits/s"),
        ],
        "short",
    )


def connections_rejected() -> Panel:
    return timeseries(
        "Connections rejected by the HTTP server",
        "Per second, by reason (5m): too_many_connections (over server.max_connections), "
        "request_timeout (no whole request head in server.header_timeout_s: slow or stalled "
        "clients), invalid_http_request (refused by the HTTP parser).",
        [target("sum by (reason) (rate(switchyard_http_rejected_total[5m]))", "{{reason}}")],
        "reqps",
        stack=True,
    )


def requests_by_model() -> Panel:
    return timeseries(
        "Requests by model",
        "Finished requests per second by model (5m rate).",
        [target("model:switchyard_requests:rate5m", "{{model}}")],
        "reqps",
    )


def requests_by_status() -> Panel:
    return timeseries(
        "Requests by status",
        "Finished requests per second by HTTP status (client_closed: the client went away).",
        [target("sum by (status) (model_status:switchyard_requests:rate5m)", "{{status}}")],
        "reqps",
        stack=True,
    )


def errors_by_model() -> Panel:
    return timeseries(
        "5xx ratio by model",
        "Share of each model's requests answered with a 5xx, over 5 minutes and 1 hour.",
        [
            target("model:switchyard_request_errors:ratio_rate5m", "{{model}} 5m"),
            target("model:switchyard_request_errors:ratio_rate1h", "{{model}} 1h"),
        ],
        "percentunit",
    )


def _percentiles(metric: str) -> list[dict[str, object]]:
    return [
        target(f'model:{metric}:quantile_rate5m{{quantile="{q}"}}', f"{{{{model}}}} {name}")
        for q, name in PERCENTILES
    ]


def latency() -> Panel:
    return timeseries(
        "Request duration percentiles",
        "Time from request received to last byte sent, p50/p95/p99 by model (5m).",
        _percentiles("switchyard_request_duration_seconds"),
        "s",
    )


def ttft() -> Panel:
    return timeseries(
        "Time to first token percentiles",
        "Time from request received to the first streamed chunk, p50/p95/p99 by model (5m).",
        _percentiles("switchyard_time_to_first_token_seconds"),
        "s",
    )


def ttft_slo_misses() -> Panel:
    return timeseries(
        "Streams missing the TTFT SLO",
        "Share of streams whose first token came later than the SLO (the burn-rate alerts "
        "compare it with the error budget), over 5 minutes and 1 hour.",
        [
            target("model:switchyard_ttft_slo_miss:ratio_rate5m", "{{model}} 5m"),
            target("model:switchyard_ttft_slo_miss:ratio_rate1h", "{{model}} 1h"),
        ],
        "percentunit",
    )


def spend_by_model() -> Panel:
    return timeseries(
        "Spend per hour by model",
        "USD per hour by model (stacked), and the monthly budget's hourly pace.",
        [
            target("model:switchyard_cost_usd:per_hour", "{{model}}"),
            target(":switchyard_cost_budget_usd:per_hour", "budget pace"),
        ],
        "currencyUSD",
    )


def spend_per_1k_by_model() -> Panel:
    return timeseries(
        "Spend per 1k requests by model",
        "USD per thousand requests of each model, and of all traffic (5m).",
        [
            target(
                "model:switchyard_cost_usd:per_hour / 3600\n"
                "/ model:switchyard_requests:rate5m * 1000",
                "{{model}}",
            ),
            target(":switchyard_cost_usd:per_1k_requests", "all models"),
        ],
        "currencyUSD",
    )


def traffic_share() -> Panel:
    return piechart(
        "Traffic share by model",
        "Each model's share of requests over the last 5 minutes.",
        [target("model:switchyard_requests:share5m", "{{model}}")],
        "percentunit",
    )


def priciest_share_over_time() -> Panel:
    return timeseries(
        "Share to the most expensive model over time",
        "As the stat above, over time; the model is named in the legend.",
        [target(f"model:switchyard_requests:share5m and on (model) {PRICIEST_MODEL}", "{{model}}")],
        "percentunit",
        w=8,
        max_value=1,
    )


def tokens() -> Panel:
    return timeseries(
        "Tokens / s by model",
        "Prompt and completion tokens per second, from backend usage (5m).",
        [
            target("model:switchyard_prompt_tokens:rate5m", "{{model}} prompt"),
            target("model:switchyard_completion_tokens:rate5m", "{{model}} completion"),
        ],
        "short",
        w=8,
    )


def board() -> Dashboard:
    panels = [
        request_rate(), error_ratio(), cost_per_hour(), cost_per_1k(), priciest_share(),
        in_flight(), requests_by_model(), requests_by_status(), errors_by_model(),
        ttft_slo_misses(), latency(), ttft(), spend_by_model(), spend_per_1k_by_model(),
        traffic_share(), priciest_share_over_time(), tokens(), connections(),
        upstream_connections(), connections_rejected(), api_requests(), trace_export(),
        response_cache(), semantic_similarity(),
    ]  # fmt: skip
    return dashboard(
        "overview",
        "switchyard-overview",
        "Switchyard / Overview",
        "Requests, errors, latency, spend and traffic share of the Switchyard gateway.",
        panels,
    )
