"""Panels of the gateway's prefix index (``upstream.prefix_scoring``), on the Backends board:
how full it is, its memory per gateway process, and the blocks it forgets. A full index that
keeps evicting forgets prefixes the replicas still hold (alert
``SwitchyardPrefixIndexThrashing``); the engines' own hit ratio is the "Prefix-cache hit
ratio" panel beside them."""

from __future__ import annotations

from switchyard.deploy.dashboards.style import Panel, target, timeseries

__all__ = ["prefix_index_evictions", "prefix_index_fill", "prefix_index_memory"]


def prefix_index_fill() -> Panel:
    return timeseries(
        "Prefix index fill (per gateway)",
        "Prompt blocks the prefix index remembers, as a share of upstream.prefix_index_blocks, "
        "per gateway process. Empty when prefix scoring is off.",
        [
            target(
                "switchyard_prefix_index_blocks\n/ (switchyard_prefix_index_capacity_blocks > 0)",
                "{{instance}}",
            )
        ],
        "percentunit",
        w=8,
        max_value=1,
    )


def prefix_index_memory() -> Panel:
    return timeseries(
        "Prefix index memory (per gateway)",
        "Estimated bytes the prefix index holds in each gateway process (bounded by "
        "upstream.prefix_index_blocks, ~300 bytes a block).",
        [target("switchyard_prefix_index_bytes", "{{instance}}")],
        "bytes",
        w=8,
    )


def prefix_index_evictions() -> Panel:
    return timeseries(
        "Prefix index evictions",
        "Blocks per second the prefix index forgets to stay within its bound (5m). Steady "
        "evictions at a full index: it forgets prefixes the replicas still cache.",
        [target("rate(switchyard_prefix_index_evictions_total[5m])", "{{instance}}")],
        "short",
        w=8,
    )
