"""Alerts on the failure modes of optional features: requests refused by model constraints,
Responses/Messages requests that cannot be translated, trace export, the response cache,
requests the slo balancer sheds, cascade routers (and routers with a second opinion) serving
answers they doubted or could not check."""

from __future__ import annotations

from switchyard.deploy.rule_kit import Group, alert

__all__ = [
    "api_translation_alerts",
    "cache_alerts",
    "cascade_alerts",
    "constraint_alerts",
    "shadow_alerts",
    "slo_alerts",
    "tracing_alerts",
]


def constraint_alerts() -> Group:
    """Requests no model can serve under their constraints, for a quarter of an hour."""
    rules = [
        alert(
            "SwitchyardConstraintRefusals",
            "sum by (model, constraint) (rate(switchyard_constraint_refusals_total[15m])) > 0.05",
            "15m",
            "warning",
            "Requests for {{ $labels.model }} are refused: no model meets {{ $labels.constraint }}",
            "{{ $value | humanize }} requests/s get a 400 constraints_unsatisfiable. Clients ask "
            "for models the config does not offer, or a model's metadata (capabilities, "
            "params_b, max_context, released, tags) is missing: a model without a field does "
            "not satisfy a constraint on it. The error messages name each model and what it "
            "fails.",
        ),
    ]
    return {"name": "switchyard.alerts.constraints", "rules": rules}


def api_translation_alerts() -> Group:
    """Clients of the Responses or Messages API whose requests the gateway cannot translate."""
    refused = 'sum by (api) (rate(switchyard_api_requests_total{outcome="refused"}[15m]))'
    total = "sum by (api) (rate(switchyard_api_requests_total[15m]))"
    rules = [
        alert(
            "SwitchyardApiTranslationRefusals",
            f"{refused}\n/ ({total} > 0.05)\n> 0.2",
            "15m",
            "warning",
            "A fifth of {{ $labels.api }} API requests cannot be translated to chat completions",
            "{{ $value | humanizePercentage }} of the requests to the {{ $labels.api }} API are "
            "refused 400: they use what chat completions cannot express (previous_response_id, "
            "built-in tools, server tools, input items other than messages and function "
            "calls), which Switchyard does not serve. A client integration relies on it; the "
            "error messages name the field.",
        ),
    ]
    return {"name": "switchyard.alerts.api_translation", "rules": rules}


def tracing_alerts() -> Group:
    """Trace export failing for a while: spans are lost (requests are not)."""
    rules = [
        alert(
            "SwitchyardTraceExportFailing",
            "sum by (job, instance) (rate(switchyard_trace_export_failures_total[10m])) > 0",
            "15m",
            "warning",
            "Gateway {{ $labels.instance }} cannot export its traces",
            "Trace export batches keep failing: the OTLP endpoint in "
            "tracing.endpoint refuses them, times out or cannot be reached, so their spans "
            "are lost. Requests are not affected. Check the collector, the endpoint and "
            "protocol (http/protobuf: the full /v1/traces URL; grpc: port 4317) and "
            "tracing.headers; the gateway log has the exporter's error.",
        ),
    ]
    return {"name": "switchyard.alerts.tracing", "rules": rules}


def cache_alerts() -> Group:
    """The response cache's store failing: opted-in requests go uncached (never fail)."""
    expr = "sum by (job, instance) (rate(switchyard_cache_errors_total[10m])) > 0"
    rule = alert(
        "SwitchyardCacheStoreFailing", expr, "10m", "warning",
        "Gateway {{ $labels.instance }} cannot use its response cache store",
        "Reads or writes of cached answers keep failing (Redis at state.redis_url down, "
        "full or slower than state.timeout_s): opted-in requests are answered uncached, so "
        "every repeat reaches an engine. Check Redis; the op label says which: get/put of "
        "answers, index_get/index_put of the semantic cache's index, embed: its MiniLM "
        "embedder (not exported in routing.embedder_cache: `switchyard embedder export`).",
    )  # fmt: skip
    return {"name": "switchyard.alerts.cache", "rules": [rule]}


def slo_alerts() -> Group:
    """The slo balancer refusing a share of a model's requests for a quarter of an hour."""
    shed = "sum by (model) (rate(switchyard_slo_shed_total[15m]))"
    total = "sum by (model) (rate(switchyard_requests_total[15m]))"
    rule = alert(
        "SwitchyardSloShedding", f"{shed}\n/ ({total} > 0.05)\n> 0.05", "15m", "warning",
        "{{ $labels.model }} sheds requests it cannot start within its TTFT target",
        "{{ $value | humanizePercentage }} of the requests to {{ $labels.model }} are refused "
        "429 model_overloaded by the slo balancer: no replica was likely to start them within "
        "upstream.slo.ttft_s. The model needs more replicas (or a fallback model); a short "
        "burst sheds briefly by design, a quarter of an hour does not.",
    )  # fmt: skip
    return {"name": "switchyard.alerts.slo", "rules": [rule]}


def shadow_alerts() -> Group:
    """Shadow mode: its calls failing, or its budget spent (training data, not requests)."""
    failed = 'sum by (model) (rate(switchyard_shadow_calls_total{status!="200"}[15m]))'
    total = "sum by (model) (rate(switchyard_shadow_calls_total[15m]))"
    failing = alert(
        "SwitchyardShadowCallsFailing", f"{failed}\n/ ({total} > 0)\n> 0.5", "15m", "warning",
        "Most shadow calls to {{ $labels.model }} fail",
        "{{ $value | humanizePercentage }} of the shadow calls to {{ $labels.model }} get an "
        "error or no answer (the status label of switchyard_shadow_calls_total says which): "
        "its outputs are missing from the label-free training data. Users are not affected. "
        "Check the model's endpoints, or leave it out of shadow.candidates.",
    )  # fmt: skip
    budget = 'sum by (job, instance) (rate(switchyard_shadow_dropped_total{reason="budget"}[10m]))'
    exhausted = alert(
        "SwitchyardShadowBudgetExhausted", f"{budget} > 0", "30m", "warning",
        "Gateway {{ $labels.instance }} has spent its shadow budget",
        "Shadow calls are dropped because shadow.budget_usd_per_hour is spent: label-free "
        "training data is gathered more slowly than shadow.sample asks. Raise the budget, "
        "lower shadow.sample or shadow.max_tokens, or shadow to cheaper candidates.",
    )  # fmt: skip
    return {"name": "switchyard.alerts.shadow", "rules": [failing, exhausted]}


def cascade_alerts() -> Group:
    """Cascade routers, and routers with a second opinion, serving doubted or unchecked
    answers: escalations wanted and not made, checks that failed."""
    stopped = "sum by (router) (rate(switchyard_cascade_stops_total[15m]))"
    doubted = (
        "sum by (router) (rate(switchyard_cascade_escalations_total[15m]))\n"
        "+ sum by (router) (rate(switchyard_cascade_stops_total[15m]))"
    )
    rule = alert(
        "SwitchyardCascadeStopsHigh", f"{stopped}\n/ ({doubted} > 0)\n> 0.5", "15m", "warning",
        "Router {{ $labels.router }} serves answers it doubted or could not check",
        "{{ $value | humanizePercentage }} of the escalations or checks router "
        "{{ $labels.router }} wanted were not made (the reason label of "
        "switchyard_cascade_stops_total says why: latency_budget, max_escalations or "
        "stage_failed), so those requests got the cheaper answer, doubted (a cascade) or "
        "unchecked (a second opinion). Raise latency_budget_ms (cascade or second_opinion) or "
        "cascade.max_escalations, or check the endpoints of the stronger stage, the checker "
        "and escalate_to.",
    )  # fmt: skip
    return {"name": "switchyard.alerts.cascade", "rules": [rule]}
