"""``pareto.png`` for a report: the protocol's cost/quality picture (matplotlib, Agg)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from switchyard.routers.evaluation.report import Report

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_report"]


def plot_report(report: Report, path: Path) -> Path:
    """Draw the report's figure into ``path`` (PNG) and return it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if report.protocol == "routellm":
        tasks = _routellm_tasks(report)
        fig, axes = plt.subplots(
            1, max(len(tasks), 1), figsize=(6.5 * max(len(tasks), 1), 5), squeeze=False
        )
        for ax, task in zip(axes[0], tasks, strict=False):
            _routellm_axes(ax, report, task)
    else:
        fig, ax = plt.subplots(figsize=(11, 6) if report.protocol == "routerbench" else (9, 6))
        if report.protocol == "routerbench":
            _routerbench_axes(ax, report)
        else:
            _routerdc_axes(ax, report)
    fig.suptitle(str(report.metadata.get("title", report.protocol)))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _routellm_tasks(report: Report) -> list[str]:
    return list(dict.fromkeys(t for r in report.rows for t in r.curves))


def _routellm_axes(ax: Axes, report: Report, task: str) -> None:
    for row in report.rows:
        curve = row.curves.get(task)
        if curve is not None:
            apgr = row.metrics.get(f"{task} APGR", float("nan"))
            style = "-" if row.kind == "router" else ":"
            ax.plot(curve.x, curve.y, style, label=f"{row.name} (APGR {apgr:.3f})")
    for name, color in (("weak only", "grey"), ("strong only", "red")):
        q = _metric(report, name, f"{task} quality")
        if q is not None:
            ax.axhline(q, color=color, linestyle="--", label=f"{name} ({q:.1%})")
    ax.set_xlabel("strong-model calls (share)")
    ax.set_ylabel("mean quality")
    ax.set_title(task)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")


def _routerbench_axes(ax: Axes, report: Report) -> None:
    singles = [r for r in report.rows if r.name.startswith("single: ")]
    for row in report.rows:
        hull = row.curves.get("hull")
        if hull is None or row in singles or row.name == "random":
            continue
        aiq = row.metrics.get("AIQ", float("nan"))
        style = "-o" if row.kind == "router" else "--"
        (line,) = ax.plot(hull.x, hull.y, style, markersize=3, label=f"{row.name} (AIQ {aiq:.3f})")
        c_max = report.metadata.get("c_max")
        if isinstance(c_max, float) and hull.x and hull.x[-1] < c_max:
            tail_x, tail_y = [hull.x[-1], c_max], [hull.y[-1], hull.y[-1]]
            ax.plot(tail_x, tail_y, ":", color=line.get_color(), alpha=0.6)  # AIQ's flat tail
        points = row.curves.get("points")
        if row.kind == "router" and points is not None:
            ax.scatter(points.x, points.y, s=6, alpha=0.3, color=line.get_color())
    for row in [*singles, *(r for r in report.rows if r.name == "random")]:
        pt = row.curves["points"]
        marker = "x" if row.name == "random" else "s"
        ax.scatter(pt.x, pt.y, marker=marker, color="black", s=18, zorder=3)
        ax.annotate(
            _short(row.info.get("model", row.name)),
            (pt.x[0], pt.y[0]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    xs = [x for r in report.rows for c in r.curves.values() for x in c.x]
    if xs and min(xs) > 0:
        ax.set_xscale("log")
    ax.set_xlabel("total cost on the test split (USD)")
    ax.set_ylabel("mean quality")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def _routerdc_axes(ax: Axes, report: Report) -> None:
    names = [_short(r.name) for r in report.rows]
    ids = [r.metrics.get("ID avg", float("nan")) for r in report.rows]
    oods = [r.metrics.get("OOD avg", float("nan")) for r in report.rows]
    pos = list(range(len(names)))
    ax.bar([p - 0.2 for p in pos], ids, width=0.4, label="in-distribution avg")
    ax.bar([p + 0.2 for p in pos], oods, width=0.4, label="out-of-distribution avg")
    for p, a, b in zip(pos, ids, oods, strict=True):
        ax.annotate(f"{a:.1f}", (p - 0.2, a), ha="center", va="bottom", fontsize=7)
        ax.annotate(f"{b:.1f}", (p + 0.2, b), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(pos)
    ax.set_xticklabels(names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("accuracy of the chosen model (%)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)


def _short(label: str) -> str:
    """``org/model`` names without the organisation, to keep labels readable."""
    return re.sub(r"[\w.-]+/([\w.-]+)", r"\1", label)


def _metric(report: Report, name: str, key: str) -> float | None:
    for row in report.rows:
        if row.name == name:
            return row.metrics.get(key)
    return None
