"""Alerts on the failure modes of optional features: requests refused by model constraints,
Responses/Messages requests that cannot be translated, trace export, the response cache."""

from __future__ import annotations

from switchyard.deploy.rule_kit import Group, alert

__all__ = ["api_translation_alerts", "cache_alerts", "constraint_alerts", "tracing_alerts"]


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
        "every repeat reaches an engine. Check Redis; the op label says reads or writes.",
    )  # fmt: skip
    return {"name": "switchyard.alerts.cache", "rules": [rule]}
