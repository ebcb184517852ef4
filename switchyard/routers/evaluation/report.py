"""An evaluation report: rows of routers and baselines, their metrics and curves; files."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["Curve", "Report", "ReportRow", "write_report"]

Kind = Literal["router", "baseline"]


@dataclass
class Curve:
    """Points of one curve (x ascending where it matters), e.g. a hull or a share sweep."""

    x: list[float]
    y: list[float]


@dataclass
class ReportRow:
    """One router or baseline: metric values keyed by ``Report.columns`` and its curves."""

    name: str
    kind: Kind
    metrics: dict[str, float]
    curves: dict[str, Curve] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)


@dataclass
class Report:
    """The result of one protocol run.

    ``columns`` orders the metric keys for tables; ``formats`` maps a column to a
    ``str.format`` pattern (default ``{:.4g}``); ``metadata`` holds the data path, row
    counts, seeds; ``notes`` explain choices a reader needs to interpret the numbers."""

    protocol: str
    columns: list[str]
    rows: list[ReportRow] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, object] = field(default_factory=dict)

    def row(self, name: str) -> ReportRow:
        """The row called ``name``; KeyError listing the names otherwise."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(f"no row {name!r}; rows: {', '.join(r.name for r in self.rows)}")

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict (NaN and infinities become null)."""
        clean = _clean(asdict(self))
        assert isinstance(clean, dict)
        return clean

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def to_markdown(self) -> str:
        """A Markdown table of all rows and columns, then the notes and metadata."""
        title = self.protocol if not self.metadata.get("title") else str(self.metadata["title"])
        lines = [f"# {title}", ""]
        header = ["name", "kind", *self.columns]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---", "---"] + ["---:"] * len(self.columns)) + "|")
        for r in self.rows:
            cells = [_md_escape(r.name), r.kind]
            cells += [self._cell(col, r.metrics.get(col)) for col in self.columns]
            lines.append("| " + " | ".join(cells) + " |")
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        if self.metadata:
            lines += ["", "## Metadata", ""]
            lines += [f"- {k}: {_md_escape(str(v))}" for k, v in self.metadata.items()]
        return "\n".join(lines) + "\n"

    def _cell(self, column: str, value: float | None) -> str:
        if value is None or not math.isfinite(value):
            return "—"
        return self.formats.get(column, "{:.4g}").format(value)


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def _clean(value: object) -> object:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _clean(value.item())
    return value


def write_report(report: Report, out_dir: Path) -> list[Path]:
    """Write ``report.json``, ``report.md`` and ``pareto.png`` into ``out_dir``."""
    from switchyard.routers.evaluation.plots import plot_report

    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "report.json"
    json_path.write_text(report.to_json() + "\n", encoding="utf-8")
    md_path = out_dir / "report.md"
    md_path.write_text(report.to_markdown(), encoding="utf-8")
    png_path = plot_report(report, out_dir / "pareto.png")
    return [json_path, md_path, png_path]
