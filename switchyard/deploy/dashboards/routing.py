"""Routing board: what the routers decide and how fast, the quality users report back, what
the bandits learned from it, and the load-aware side of routing (shedding, fallbacks,
expected wait).

The gateway exports realised quality (``switchyard_feedback_score``) but no predicted
quality: the routers' predicted scores stay in the outcome records (Redis stream), not in
Prometheus, so "predicted versus realised" shows the realised side and its gap to a perfect
score. Nor is there an exploration counter: the bandits' learning shows as the observations
their statistics hold and how fast that grows.
"""

from __future__ import annotations

from switchyard.deploy.dashboards.cascade import cascade_escalations
from switchyard.deploy.dashboards.shadow import shadow_calls, shadow_spend
from switchyard.deploy.dashboards.slo import slo_shed
from switchyard.deploy.dashboards.style import (
    Dashboard,
    Panel,
    bargauge,
    dashboard,
    piechart,
    stat,
    target,
    timeseries,
)

ROUTED = "router_model:switchyard_routed_requests:rate5m"
FEEDBACK = "switchyard_feedback_score"
# Feedback is sparse: quality is read over an hour rather than 5 minutes.
MEAN_SCORE = (
    f"sum by (router{{by}}) (rate({FEEDBACK}_sum[1h]))\n"
    f"/ sum by (router{{by}}) (rate({FEEDBACK}_count[1h]))"
)


def decisions_by_model() -> Panel:
    return timeseries(
        "Routed decisions by model",
        "Routed requests per second by router and the model it chose (5m).",
        [target(ROUTED, "{{router}} → {{model}}")],
        "reqps",
        stack=True,
    )


def decision_share() -> Panel:
    return piechart(
        "Decision share",
        "Each chosen model's share of its router's decisions over the last 5 minutes.",
        [
            target(
                f"{ROUTED}\n/ ignoring (model) group_left sum by (router) ({ROUTED})",
                "{{router}} → {{model}}",
            )
        ],
        "percentunit",
        w=6,
    )


def decision_latency() -> Panel:
    buckets = "sum by (router, le) (rate(switchyard_routing_decision_seconds_bucket[5m]))"
    return timeseries(
        "Decision time",
        "Time from a routed request's arrival at the router to its decision (embedding "
        "batch included), p50 and p99 (5m).",
        [
            target(f"histogram_quantile(0.5, {buckets})", "{{router}} p50"),
            target(f"histogram_quantile(0.99, {buckets})", "{{router}} p99"),
        ],
        "s",
        w=6,
    )


def batching() -> Panel:
    return stat(
        "Prompts per embedding call",
        "Routed requests per embedding call (5m): above 1 when concurrent prompts share a batch.",
        [
            target(
                f"sum({ROUTED})\n/ sum(rate(switchyard_routing_batches_total[5m]))",
                "prompts/batch",
            )
        ],
        "short",
        h=8,
    )


def realised_quality() -> Panel:
    return timeseries(
        "Realised quality (mean feedback score)",
        "Mean feedback score in [0, 1] by router and chosen model over the last hour. The "
        "routers' predicted quality is not exported to Prometheus (it is kept in the outcome "
        "records), so only the realised side is shown.",
        [target(MEAN_SCORE.format(by=", model"), "{{router}} → {{model}}")],
        "percentunit",
        max_value=1,
    )


def regret() -> Panel:
    return timeseries(
        "Regret estimate",
        "1 − mean feedback score by router over the last hour: quality given up against a "
        "perfect answer, an upper bound of the regret against the best model.",
        [target(f"1 - (\n{MEAN_SCORE.format(by='')}\n)", "{{router}}")],
        "percentunit",
        w=6,
        max_value=1,
    )


def feedback_coverage() -> Panel:
    return timeseries(
        "Feedback coverage",
        "Feedback scores received per routed request, by router (1h). Low coverage means the "
        "bandit learns slowly and the quality panels are noisy.",
        [
            target(
                f"sum by (router) (rate({FEEDBACK}_count[1h]))\n"
                "/ sum by (router) (rate(switchyard_routed_requests_total[1h]))",
                "{{router}}",
            )
        ],
        "percentunit",
        w=6,
    )


def score_distribution() -> Panel:
    return bargauge(
        "Feedback score distribution",
        "Feedback scores received over the last hour, by score bucket (cumulative: ≤ le).",
        [
            target(
                f'sum by (le) (increase({FEEDBACK}_bucket{{le!="+Inf"}}[1h]))',
                "≤ {{le}}",
                instant=True,
            )
        ],
        "short",
        w=8,
    )


def bandit_observations() -> Panel:
    return timeseries(
        "Bandit observations",
        "Feedback observations held in each router's bandit statistics (shared through Redis: "
        "every replica reports all replicas', hence the max).",
        [target("max by (router) (switchyard_bandit_observations)", "{{router}}")],
        "short",
        w=6,
    )


def bandit_learning() -> Panel:
    return timeseries(
        "Bandit learning rate",
        "Observations added to each bandit per minute (5m): how fast exploration pays back. "
        "The gateway exports no count of exploratory decisions.",
        [target("max by (router) (deriv(switchyard_bandit_observations[5m])) * 60", "{{router}}")],
        "short",
        w=6,
    )


def shed() -> Panel:
    return timeseries(
        "Shed requests",
        "Requests per second that skipped a saturated model (to a fallback) or were refused "
        "with 429 model_overloaded, by model (5m).",
        [target("sum by (model) (rate(switchyard_shed_total[5m]))", "{{model}}")],
        "reqps",
        w=8,
    )


def fallbacks() -> Panel:
    return timeseries(
        "Fallbacks",
        "Requests per second served by a fallback model, by requested and serving model (5m).",
        [
            target(
                "sum by (model, fallback) (rate(switchyard_fallbacks_total[5m]))",
                "{{model}} → {{fallback}}",
            )
        ],
        "reqps",
        w=8,
    )


def constraint_refusals() -> Panel:
    return timeseries(
        "Refused by model constraints",
        "Requests per second refused 400 because no model meets their constraints "
        "(switchyard.require, or tools / response_format / images the request uses), by "
        "requested model or router and constraint (5m).",
        [
            target(
                "sum by (model, constraint) (rate(switchyard_constraint_refusals_total[5m]))",
                "{{model}}: {{constraint}}",
            )
        ],
        "reqps",
        w=24,
    )


def expected_delay() -> Panel:
    buckets = "sum by (model, le) (rate(switchyard_expected_delay_seconds_bucket[5m]))"
    return timeseries(
        "Expected wait when sent",
        "Expected wait on the chosen model's best replica when a request was sent, p50 and "
        "p90 by model (5m), from the engines' scraped load.",
        [
            target(f"histogram_quantile(0.5, {buckets})", "{{model}} p50"),
            target(f"histogram_quantile(0.9, {buckets})", "{{model}} p90"),
        ],
        "s",
        w=8,
    )


def board() -> Dashboard:
    panels = [
        decisions_by_model(), decision_share(), decision_latency(),
        realised_quality(), regret(), feedback_coverage(),
        score_distribution(), bandit_observations(), bandit_learning(), batching(),
        shed(), fallbacks(), expected_delay(), constraint_refusals(), slo_shed(),
        shadow_calls(), shadow_spend(), cascade_escalations(),
    ]  # fmt: skip
    return dashboard(
        "routing",
        "switchyard-routing",
        "Switchyard / Routing",
        "Router decisions, realised quality from feedback, bandit learning and load-aware "
        "routing (shedding, fallbacks) of the Switchyard gateway.",
        panels,
    )
