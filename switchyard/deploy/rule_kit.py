"""The shape of Prometheus rules as this package writes them: a recording rule, an alert, a
group; shared by ``rules`` and the feature modules beside it."""

from __future__ import annotations

from typing import Any

Rule = dict[str, Any]
Group = dict[str, Any]


def record(name: str, expr: str, **labels: str) -> Rule:
    rule: Rule = {"record": name, "expr": expr}
    if labels:
        rule["labels"] = labels
    return rule


def alert(name: str, expr: str, for_: str, severity: str, summary: str, text: str) -> Rule:
    return {
        "alert": name,
        "expr": expr,
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {"summary": summary, "description": text},
    }
