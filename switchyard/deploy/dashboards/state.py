"""Redis / state board: the shared state store as each gateway replica sees it (reachable,
failing calls, outcome records waiting or dropped), and what the store enforces and counts
(rate limits and budgets, spend by key and tenant, shared bandit statistics)."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import (
    Dashboard,
    Panel,
    bargauge,
    dashboard,
    stat,
    target,
    timeseries,
)

UP_THRESHOLDS = ((None, "red"), (1, "green"))


def replicas_connected() -> Panel:
    return stat(
        "Replicas reaching their state stores",
        "Gateway replicas whose every state store (tenancy; routing when routers are "
        "configured) answered its last call, of all replicas scraped.",
        [
            target("sum(min by (instance) (switchyard_state_store_up))", "reaching"),
            target("count(min by (instance) (switchyard_state_store_up))", "replicas"),
        ],
        "short",
        w=6,
        h=8,
    )


def store_up() -> Panel:
    return timeseries(
        "State store reachable",
        "1 while the store answers a replica, 0 when it does not; per replica and store "
        "(tenancy: limits, budgets, keys; routing: outcomes and bandit statistics).",
        [target("min by (instance, store) (switchyard_state_store_up)", "{{instance}} {{store}}")],
        "short",
        w=9,
        max_value=1,
    )


def store_errors() -> Panel:
    return timeseries(
        "State store errors",
        "Calls to Redis that failed per second, by gateway replica (5m). Limits then fail open "
        "or closed as auth.fail_open says.",
        [
            target(
                "sum by (instance) (rate(switchyard_state_store_errors_total[5m]))", "{{instance}}"
            )
        ],
        "short",
        w=9,
    )


def admitted_without_limits() -> Panel:
    return timeseries(
        "Admitted without limits",
        "Requests per second admitted unchecked because the state store was down and "
        "auth.fail_open admits them (5m), by replica: rate limits and budgets are not enforced.",
        [
            target(
                "sum by (instance) (rate(switchyard_admitted_without_limits_total[5m]))",
                "{{instance}}",
            )
        ],
        "reqps",
    )


def outcomes_buffered() -> Panel:
    return timeseries(
        "Outcomes waiting to be written",
        "Outcome records and bandit observations buffered in each replica while Redis is "
        "slow or away.",
        [target("sum by (instance) (switchyard_outcomes_buffered)", "{{instance}}")],
        "short",
    )


def outcomes_dropped() -> Panel:
    return timeseries(
        "Outcomes dropped",
        "Outcome records or observations dropped per second because the buffer was full (5m): "
        "lost feedback for the bandits.",
        [target("sum by (instance) (rate(switchyard_outcomes_dropped_total[5m]))", "{{instance}}")],
        "short",
    )


def rate_limited() -> Panel:
    return timeseries(
        "Requests refused by limits",
        "Requests refused per second by a rate limit (rpm, tpm) or budget, by key (5m).",
        [
            target(
                "sum by (key, limit) (rate(switchyard_rate_limited_total[5m]))",
                "{{key}} {{limit}}",
            )
        ],
        "reqps",
    )


def spend_by_tenant() -> Panel:
    return timeseries(
        "Spend per hour by tenant",
        "USD per hour charged to each tenant's keys (5m pace).",
        [target("sum by (tenant) (rate(switchyard_spend_usd_total[5m])) * 3600", "{{tenant}}")],
        "currencyUSD",
        stack=True,
    )


def spend_by_key() -> Panel:
    return bargauge(
        "Spend by key, last 24 hours",
        "USD charged to each key over the last day.",
        [
            target(
                "sum by (tenant, key) (increase(switchyard_spend_usd_total[1d]))",
                "{{tenant}} / {{key}}",
                instant=True,
            )
        ],
        "currencyUSD",
    )


def bandit_sharing() -> Panel:
    return timeseries(
        "Bandit statistics spread across replicas",
        "Largest minus smallest observation count a replica holds, by router: replicas read "
        "the shared statistics every routing.refresh_s, so this stays near 0 while Redis works.",
        [
            target(
                "max by (router) (switchyard_bandit_observations)\n"
                "- min by (router) (switchyard_bandit_observations)",
                "{{router}}",
            )
        ],
        "short",
    )


def config_versions() -> Panel:
    return timeseries(
        "Config version per replica",
        "The fleet config version each gateway replica serves (POST /admin/config/reload "
        "publishes a new one in Redis; replicas apply it within routing.refresh_s). Lines "
        "apart for long: a replica did not follow (SwitchyardConfigVersionSkew).",
        [target("max by (instance) (switchyard_config_version)", "{{instance}}")],
        "short",
        w=12,
    )


def board() -> Dashboard:
    panels = [
        replicas_connected(), store_up(), store_errors(), admitted_without_limits(),
        outcomes_buffered(), outcomes_dropped(), rate_limited(), spend_by_tenant(),
        spend_by_key(), bandit_sharing(), config_versions(),
    ]  # fmt: skip
    return dashboard(
        "state",
        "switchyard-state",
        "Switchyard / Redis and state",
        "The shared state store (Redis) as the gateway replicas see it, and the limits, "
        "spend and bandit statistics it holds.",
        panels,
    )
