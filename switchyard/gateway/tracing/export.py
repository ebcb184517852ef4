"""The OpenTelemetry SDK as the gateway uses it: one tracer provider per app, a sampler
that follows the client's decision, and OTLP export on the SDK's background thread.

Export can fail (the collector is down, slow or refuses): that must never fail or slow a
request. Spans queue in memory (``tracing.max_queue``; the SDK drops new ones beyond it)
and a worker thread exports them in batches; ``CountingExporter`` counts each failed batch
and its spans in ``switchyard_trace_export_failures_total`` and
``switchyard_trace_spans_total{result="failed"}``, which the dashboards and the
``SwitchyardTraceExportFailing`` alert watch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from importlib.metadata import version

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from prometheus_client import CollectorRegistry

from switchyard.gateway.tracing.config import OtlpProtocol, TracingConfig
from switchyard.gateway.tracing.metrics import TraceExportMetrics
from switchyard.gateway.tracing.spans import Tracing

log = logging.getLogger("switchyard.tracing")


class CountingExporter(SpanExporter):
    """``inner``, counting what it exported and what it failed to (an error is a failure)."""

    def __init__(self, inner: SpanExporter, registry: CollectorRegistry) -> None:
        self.inner = inner
        self.metrics = TraceExportMetrics(registry)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as err:  # an exporter's bug must not kill the export thread
            log.warning("trace export raised %s: %s", type(err).__name__, err)
            result = SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            self.metrics.exported.inc(len(spans))
        else:
            self.metrics.failures.inc()
            self.metrics.failed.inc(len(spans))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class TracingSetup:
    """What ``create_app`` holds while tracing is on: the proxy's hook and the provider."""

    def __init__(self, provider: TracerProvider, exporter: CountingExporter) -> None:
        self.provider = provider
        self.exporter = exporter
        self.hook = Tracing(provider.get_tracer("switchyard", version("switchyard")))

    def flush(self, timeout_s: float = 5.0) -> bool:
        return self.provider.force_flush(int(timeout_s * 1e3))

    def shutdown(self) -> None:
        """Export what is queued (bounded by the export timeout), then stop the worker."""
        self.provider.shutdown()


def open_tracing(
    config: TracingConfig, registry: CollectorRegistry, exporter: SpanExporter | None = None
) -> TracingSetup:
    """The provider for ``config``; ``exporter`` replaces OTLP (tests: spans are then
    exported as each ends, on the request's thread, instead of in background batches)."""
    resource = Resource.create(
        {"service.name": config.service_name, "service.version": version("switchyard")}
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(config.sample_ratio))
    )
    counting = CountingExporter(exporter or otlp_exporter(config), registry)
    processor: SpanProcessor
    if exporter is not None:
        processor = SimpleSpanProcessor(counting)
    else:
        processor = BatchSpanProcessor(
            counting,
            max_queue_size=config.max_queue,
            export_timeout_millis=config.timeout_s * 1e3,
        )
    provider.add_span_processor(processor)
    return TracingSetup(provider, counting)


def otlp_exporter(config: TracingConfig) -> SpanExporter:
    """The OTLP exporter for ``config.protocol`` (grpc needs the ``otel-grpc`` extra)."""
    headers = dict(config.headers)
    if config.protocol is OtlpProtocol.grpc:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        insecure = not config.endpoint.startswith("https://")
        return GrpcExporter(
            endpoint=config.endpoint, insecure=insecure, headers=headers, timeout=config.timeout_s
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=config.endpoint, headers=headers, timeout=config.timeout_s)
