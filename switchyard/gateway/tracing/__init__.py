"""OpenTelemetry tracing of proxied requests, off by default.

``config`` holds the ``tracing:`` settings section and imports nothing of OpenTelemetry;
``spans`` (the hook the proxy calls) and ``export`` (the SDK's provider and the OTLP
exporter) import the SDK, and ``create_app`` imports them only when tracing is enabled, so
a gateway without tracing neither loads the SDK nor runs any of its code on a request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from switchyard.gateway.tracing.config import TracingConfig

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

    from switchyard.gateway.tracing.export import TracingSetup

__all__ = ["TracingConfig", "open_tracing"]


def open_tracing(
    config: TracingConfig, registry: CollectorRegistry, exporter: SpanExporter | None = None
) -> TracingSetup | None:
    """The tracing of an app, or ``None`` when it is off (then the SDK is not even loaded).
    ``exporter`` replaces OTLP export (tests)."""
    if not config.enabled:
        return None
    from switchyard.gateway.tracing import export  # the SDK: needs the "otel" extra

    return export.open_tracing(config, registry, exporter)
