"""Panel of the ``slo`` balancer (``upstream.balancer: slo``), on the Routing board: the
requests it refused because no replica was likely to start them within the TTFT target
(alert ``SwitchyardSloShedding``)."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["slo_shed"]


def slo_shed() -> Panel:
    shed = "sum by (model) (rate(switchyard_slo_shed_total[5m]))"
    total = "sum by (model) (rate(switchyard_requests_total[5m]))"
    return timeseries(
        "Shed early by the slo balancer",
        "Share of each model's requests refused 429 before they were sent because no replica "
        "was likely to start them within upstream.slo.ttft_s (5m). Empty unless "
        "upstream.balancer is slo.",
        [target(f"{shed}\n/ ({total} > 0)", "{{model}}")],
        "percentunit",
        w=8,
        max_value=1,
    )
