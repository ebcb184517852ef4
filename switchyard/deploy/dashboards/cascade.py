"""Panel of cascade routers (``kind: cascade``, ``switchyard.gateway.cascade``), on the Routing
board: answers escalated to a stronger stage by reason, and escalations wanted but not made
(max_escalations, latency_budget, stage_failed): those requests got an answer the cascade
doubted (alert ``SwitchyardCascadeStopsHigh``)."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["cascade_escalations"]


def cascade_escalations() -> Panel:
    return timeseries(
        "Cascade escalations",
        "Cascade routers: answers sent on to the next stage per second, by router and reason "
        "(verifier, logprobs), and escalations wanted but not made, by reason (5m). Empty "
        "without a router of kind cascade.",
        [
            target(
                "sum by (router, reason) (rate(switchyard_cascade_escalations_total[5m]))",
                "{{router}} escalated: {{reason}}",
            ),
            target(
                "sum by (router, reason) (rate(switchyard_cascade_stops_total[5m]))",
                "{{router}} stopped: {{reason}}",
            ),
        ],
        "reqps",
        w=8,
    )
