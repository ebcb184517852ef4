"""The trace exporter's Prometheus counters (no OpenTelemetry import: the dashboards' tests
list every series the gateway can expose without loading the SDK)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class TraceExportMetrics:
    """Export batches that failed, and spans by result; registered only with tracing on."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.failures = Counter(
            "switchyard_trace_export_failures",
            "Trace export batches that failed (their spans are lost; requests are not).",
            registry=registry,
        )
        spans = Counter(
            "switchyard_trace_spans",
            "Spans handed to the trace exporter, by result (exported or failed).",
            ["result"],
            registry=registry,
        )
        self.exported = spans.labels("exported")
        self.failed = spans.labels("failed")
