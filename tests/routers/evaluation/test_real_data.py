"""The protocols on the shared public data reproduce the published reference rows."""

from __future__ import annotations

import pytest

from switchyard.routers.datasets import RoutingDataset, load_dataset
from switchyard.routers.evaluation import evaluate_routellm, evaluate_routerbench, evaluate_routerdc
from tests.routers.evaluation.fakes import BestPerTask, NoisyOracle
from tests.support.requirements import reference_data

pytestmark = pytest.mark.slow


def _load(name: str) -> RoutingDataset:
    return load_dataset(reference_data("routing", name))


def test_routerdc_reference_rows() -> None:
    report = evaluate_routerdc(
        {"best per task": BestPerTask()}, _load("routerdc"), refit=True, progress=False
    )
    best = next(r for r in report.rows if r.name.startswith("best single"))
    assert best.info["model"].endswith("dolphin-2.9-llama3-8b")
    assert round(best.metrics["ID avg"], 2) == 54.56
    assert round(best.metrics["OOD avg"], 2) == 43.95
    oracle = report.row("oracle").metrics
    assert round(oracle["ID avg"], 2) == 77.52
    assert round(oracle["OOD avg"], 2) == 70.34
    assert report.metadata["test rows"] == 1319 + 49 + 352 + 4213 + 3475 + 871 + 500 + 1346
    assert report.row("best per task").metrics["ID avg"] > best.metrics["ID avg"]


def test_routellm_reference_qualities() -> None:
    report = evaluate_routellm({"noisy": NoisyOracle(0.5)}, _load("routellm"), progress=False)
    assert report.metadata["mmlu rows"] == 14037 and report.metadata["gsm8k rows"] == 1307
    weak, strong = report.row("weak only").metrics, report.row("strong only").metrics
    assert round(100 * weak["mmlu quality"], 2) == 68.09
    assert round(100 * strong["mmlu quality"], 2) == 80.59
    assert round(100 * weak["gsm8k quality"], 2) == 63.73
    assert round(100 * strong["gsm8k quality"], 2) == 85.77
    assert abs(report.row("random").metrics["mmlu APGR"] - 0.5) < 0.03
    assert report.row("noisy").metrics["mmlu APGR"] > 0.6


def test_routerbench_reference_points() -> None:
    report = evaluate_routerbench({}, _load("routerbench"), refit=False, progress=False)
    assert report.metadata["test rows"] == 953
    gpt4 = report.row("single: gpt-4-1106-preview").metrics
    assert round(100 * gpt4["max quality"], 1) == 88.0
    assert round(gpt4["cost at max quality"], 2) == 4.80
    mixtral = report.row("single: mistralai/mixtral-8x7b-chat").metrics
    assert round(100 * mixtral["max quality"], 1) == 74.8
    assert round(mixtral["cost at max quality"], 2) == 0.24
    oracle = report.row("oracle").metrics
    assert round(100 * oracle["max quality"], 1) == 97.4
    assert oracle["cost at max quality"] == pytest.approx(0.20, abs=0.01)
    assert 0 < report.row("best single-model hull").metrics["AIQ/oracle"] < 1
