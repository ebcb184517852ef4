"""Panel of the gateway's OpenTelemetry trace export (``tracing.enabled``), on the Overview
board: spans exported and lost. A collector that refuses or cannot be reached loses spans,
never requests (alert ``SwitchyardTraceExportFailing``)."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["trace_export"]


def trace_export() -> Panel:
    return timeseries(
        "Trace export",
        "Spans per second handed to the OTLP exporter, by result (5m): exported, or failed "
        "(the collector refused them, timed out or could not be reached: the spans are lost, "
        "the requests are not). Empty when tracing is off.",
        [
            target(
                "sum by (result) (rate(switchyard_trace_spans_total[5m]))",
                "spans {{result}}",
            ),
            target(
                "sum(rate(switchyard_trace_export_failures_total[5m]))",
                "failed batches",
            ),
        ],
        "ops",
        w=24,
    )
