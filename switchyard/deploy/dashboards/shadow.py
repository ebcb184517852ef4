"""Panel of shadow mode (``shadow.enabled``, ``switchyard.gateway.shadow``), on the Routing
board: shadow calls by model and status, calls dropped by the bound that refused them, and
the spend. Failing calls and a spent budget cost training data, never requests (alerts
``SwitchyardShadowCallsFailing``, ``SwitchyardShadowBudgetExhausted``)."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["shadow_calls", "shadow_spend"]


def shadow_calls() -> Panel:
    return timeseries(
        "Shadow calls",
        "Shadow mode: routed requests sampled, the background calls they made to other "
        "candidates per second by model and status (5m; an error code when no answer came), "
        "and calls dropped by the bound that refused them (concurrency, rate, budget). Empty "
        "when shadow mode is off.",
        [
            target(
                "sum by (router) (rate(switchyard_shadow_sampled_total[5m]))", "sampled {{router}}"
            ),
            target(
                "sum by (model, status) (rate(switchyard_shadow_calls_total[5m]))",
                "{{model}} {{status}}",
            ),
            target(
                "sum by (reason) (rate(switchyard_shadow_dropped_total[5m]))", "dropped {{reason}}"
            ),
        ],
        "reqps",
        w=16,
    )


def shadow_spend() -> Panel:
    return timeseries(
        "Shadow spend",
        "USD per hour spent on shadow answers (their usage at the models' prices), by model "
        "(rate over 1h); shadow calls stop at shadow.budget_usd_per_hour.",
        [
            target(
                "sum by (model) (rate(switchyard_shadow_spend_usd_total[1h])) * 3600", "{{model}}"
            )
        ],
        "currencyUSD",
        w=8,
    )
