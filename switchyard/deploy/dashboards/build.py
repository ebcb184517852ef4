"""The boards, their JSON as committed in the chart, and the command that writes them."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from switchyard.deploy.dashboards import backends, overview, routing, state
from switchyard.deploy.dashboards.style import Dashboard

DASHBOARDS_DIR = Path(__file__).parents[3] / "helm" / "switchyard" / "dashboards"

BOARDS: dict[str, Callable[[], Dashboard]] = {
    "overview": overview.board,
    "routing": routing.board,
    "backends": backends.board,
    "state": state.board,
}


@dataclass(frozen=True)
class Query:
    """One panel query, named for error messages."""

    board: str
    panel: str
    ref: str
    expr: str

    def __str__(self) -> str:
        return f"{self.board} / {self.panel} / {self.ref}"


def render(board: Dashboard) -> str:
    """A board's file text: stable key order, two-space indent, final newline."""
    return json.dumps(board, indent=2, ensure_ascii=False) + "\n"


def queries(boards: Sequence[Dashboard]) -> Iterator[Query]:
    """Every PromQL expression of every panel of ``boards``."""
    for board in boards:
        for panel in board["panels"]:
            for t in panel.get("targets", ()):
                yield Query(board["uid"], panel["title"], t["refId"], t["expr"])


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m switchyard.deploy.dashboards",
        description="Write the Grafana dashboards' JSON.",
    )
    parser.add_argument(
        "--out", type=Path, default=DASHBOARDS_DIR, help="Folder to write <board>.json into."
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, build in BOARDS.items():
        path = args.out / f"{name}.json"
        path.write_text(render(build()), encoding="utf-8")
        print(f"wrote {path}")
