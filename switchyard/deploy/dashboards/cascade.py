"""Panel of cascade routers (``kind: cascade``, ``switchyard.gateway.cascade``) and routers with
a second opinion (``switchyard.gateway.second_opinion``), on the Routing board: answers
escalated to a stronger model by reason (verifier, logprobs; disagreement: the checker
disagreed), and escalations or checks wanted but not made (max_escalations, latency_budget,
stage_failed): those requests got an answer the router doubted or could not check (alert
``SwitchyardCascadeStopsHigh``)."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["cascade_escalations"]


def cascade_escalations() -> Panel:
    return timeseries(
        "Cascade escalations",
        "Cascade routers and routers with a second opinion: answers sent on to a stronger "
        "model per second, by router and reason (verifier, logprobs; disagreement: the "
        "checker's answer differed), and escalations or checks wanted but not made, by reason "
        "(5m). Empty without a router of kind cascade or with second_opinion.",
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
