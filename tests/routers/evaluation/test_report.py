"""Reports: JSON, the Markdown table and a readable PNG for each protocol."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from switchyard.routers.evaluation import (
    Report,
    ReportRow,
    Router,
    evaluate_routellm,
    evaluate_routerbench,
    evaluate_routerdc,
    write_report,
)
from tests.routers.evaluation.fakes import (
    BestPerTask,
    NoisyOracle,
    routellm_like,
    routerbench_like,
    routerdc_like,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _reports() -> dict[str, Report]:
    routers: dict[str, Router] = {"noisy": NoisyOracle(), "per task": BestPerTask()}
    return {
        "routerdc": evaluate_routerdc(routers, routerdc_like(), refit=True, progress=False),
        "routellm": evaluate_routellm(routers, routellm_like(), progress=False),
        "routerbench": evaluate_routerbench(
            routers, routerbench_like(), refit=True, progress=False
        ),
    }


@pytest.mark.parametrize("protocol", ["routerdc", "routellm", "routerbench"])
def test_write_report_writes_json_markdown_and_png(protocol: str, tmp_path: Path) -> None:
    report = _reports()[protocol]
    paths = write_report(report, tmp_path / protocol)
    assert [p.name for p in paths] == ["report.json", "report.md", "pareto.png"]
    assert paths[2].read_bytes()[:8] == PNG_MAGIC
    assert paths[2].stat().st_size > 10_000
    loaded = json.loads(paths[0].read_text())
    assert loaded["protocol"] == protocol
    assert [r["name"] for r in loaded["rows"]] == [r.name for r in report.rows]
    markdown = paths[1].read_text()
    header = markdown.splitlines()[2]
    assert header == "| " + " | ".join(["name", "kind", *report.columns]) + " |"
    assert "| noisy | router |" in markdown


def test_markdown_formats_columns_and_marks_missing_values() -> None:
    report = Report(
        protocol="demo",
        columns=["AIQ", "cost"],
        formats={"cost": "${:.2f}"},
        rows=[
            ReportRow("a|b", "router", {"AIQ": 0.123456, "cost": 4.8}),
            ReportRow("c", "baseline", {}),
        ],
    )
    lines = report.to_markdown().splitlines()
    assert lines[4] == "| a\\|b | router | 0.1235 | $4.80 |"
    assert lines[5] == "| c | baseline | — | — |"


def test_json_turns_nan_and_infinity_into_null() -> None:
    report = Report(
        protocol="demo",
        columns=["x"],
        rows=[ReportRow("a", "router", {"x": float("nan"), "y": float("inf")})],
    )
    row = json.loads(report.to_json())["rows"][0]
    assert row["metrics"] == {"x": None, "y": None}
    with pytest.raises(KeyError, match="rows: a"):
        report.row("b")


def test_progress_bars_do_not_disturb_the_result(capsys: pytest.CaptureFixture[str]) -> None:
    quiet = evaluate_routerdc({"p": BestPerTask()}, routerdc_like(), refit=True, progress=False)
    shown = evaluate_routerdc({"p": BestPerTask()}, routerdc_like(), refit=True, progress=True)
    assert quiet.to_json() == shown.to_json()
    assert "routerdc" in capsys.readouterr().err
