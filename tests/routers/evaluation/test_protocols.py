"""The three protocols on synthetic data with stand-in routers."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.evaluation import (
    Router,
    evaluate_routellm,
    evaluate_routerbench,
    evaluate_routerdc,
    routellm_folds,
)
from tests.routers.evaluation.fakes import (
    STRONG,
    WEAK,
    BestPerTask,
    ConstantRouter,
    GroupSpy,
    NoisyOracle,
    routellm_like,
    routerbench_like,
    routerdc_like,
)


def _dc(routers: Mapping[str, Router], *, refit: bool = True) -> dict[str, dict[str, float]]:
    report = evaluate_routerdc(routers, routerdc_like(), refit=refit, progress=False)
    return {row.name: row.metrics for row in report.rows}


def test_routerdc_reports_tasks_averages_and_baselines() -> None:
    report = evaluate_routerdc(
        {"noisy": NoisyOracle(), "per task": BestPerTask()},
        routerdc_like(),
        refit=True,
        progress=False,
    )
    tasks = ["gsm8k", "humaneval", "arc_challenge", "mmlu", "cmmlu"]
    assert report.columns == [*tasks, "MATH_prealgebra", "mbpp", "ceval", "ID avg", "OOD avg"]
    assert report.metadata["train rows"] == 5 * 60 and report.metadata["test rows"] == 8 * 40
    names = [r.name for r in report.rows]
    best = next(r for r in report.rows if r.name.startswith("best single"))
    assert names[:3] == ["noisy", "per task", "random"] and names[-1] == "oracle"
    oracle, noisy = report.row("oracle").metrics, report.row("noisy").metrics
    for key in ("ID avg", "OOD avg"):
        assert noisy[key] > best.metrics[key]
        assert oracle[key] >= noisy[key]
    assert report.row("per task").metrics["ID avg"] > best.metrics["ID avg"]
    assert noisy["ID avg"] == pytest.approx(np.mean([noisy[t] for t in tasks]))


def test_routerdc_constant_router_equals_its_single_model() -> None:
    report = evaluate_routerdc(
        {m: ConstantRouter(m) for m in ("A", "B", "C")}, routerdc_like(), refit=True, progress=False
    )
    best = next(r for r in report.rows if r.name.startswith("best single"))
    assert report.row(best.info["model"]).metrics == best.metrics


def test_routerdc_random_baseline_is_the_mean_over_models() -> None:
    data = routerdc_like()
    metrics = _dc({m: ConstantRouter(m) for m in data.models})
    for key in metrics["random"]:
        mean = np.mean([metrics[m][key] for m in data.models])
        assert metrics["random"][key] == pytest.approx(mean)


def test_routerdc_without_refit_uses_the_router_as_given() -> None:
    router = ConstantRouter("B", models=["C", "B"])  # a subset, in another order
    metrics = _dc({"given": router, "B": ConstantRouter("B", models=["A", "B", "C"])}, refit=False)
    assert metrics["given"] == metrics["B"]


def test_routerdc_without_refit_rejects_an_unfitted_router() -> None:
    with pytest.raises(ValueError, match="no models"):
        evaluate_routerdc(
            {"raw": ConstantRouter("B")}, routerdc_like(), refit=False, progress=False
        )


def test_routerdc_rejects_routers_with_models_missing_from_the_data() -> None:
    router = ConstantRouter("A", models=["A", "B", "Z"])
    with pytest.raises(ValueError, match=r"router 'odd' predicts models .*'Z'"):
        evaluate_routerdc({"odd": router}, routerdc_like(), refit=False, progress=False)


def test_routellm_folds_keep_subjects_disjoint_and_balanced() -> None:
    mmlu = routellm_like().where(tasks=["mmlu"])
    folds = routellm_folds(mmlu, folds=5, seed=3)
    assert sorted(np.concatenate(folds).tolist()) == list(range(len(mmlu)))
    groups = np.asarray(mmlu.groups, dtype=object)
    subject_sets = [set(groups[f]) for f in folds]
    for i, a in enumerate(subject_sets):
        for b in subject_sets[i + 1 :]:
            assert not a & b
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 80  # greedy: within one subject's size
    again = routellm_folds(mmlu, folds=5, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))


def test_routellm_ungrouped_task_uses_random_row_folds() -> None:
    gsm = routellm_like().where(tasks=["gsm8k"])
    folds = routellm_folds(gsm, folds=5, seed=0)
    assert [len(f) for f in folds] == [30] * 5
    assert not np.array_equal(np.sort(folds[0]), np.arange(30))


def test_routellm_never_trains_on_the_subjects_it_scores() -> None:
    log: list[set[str]] = []
    report = evaluate_routellm({"spy": GroupSpy(log)}, routellm_like(), progress=False)
    assert len(log) == 10  # 5 folds x 2 tasks
    assert all(not overlap for overlap in log[:5])  # mmlu: grouped by subject
    assert report.metadata["mmlu folds"] == "by group (subject)"
    assert report.metadata["gsm8k folds"] == "random rows"


def test_routellm_metrics_order_routers_as_expected() -> None:
    data = routellm_like()
    routers: dict[str, Router] = {"noisy": NoisyOracle(0.3), "weak": ConstantRouter(WEAK)}
    report = evaluate_routellm(routers, data, progress=False)
    for task in ("mmlu", "gsm8k"):
        noisy, oracle = report.row("noisy").metrics, report.row("oracle").metrics
        random = report.row("random").metrics
        assert oracle[f"{task} APGR"] >= noisy[f"{task} APGR"] > random[f"{task} APGR"]
        assert noisy[f"{task} CPT(50%)"] < random[f"{task} CPT(50%)"]
        # a constant score ties every prompt: exactly the random-routing diagonal
        const = report.row("weak").metrics
        assert const[f"{task} APGR"] == pytest.approx(0.5)
        assert const[f"{task} CPT(80%)"] == pytest.approx(0.8)
        sub = data.where(tasks=[task])
        weak_q = report.row("weak only").metrics[f"{task} quality"]
        assert weak_q == pytest.approx(sub.quality[:, 0].mean())
        assert len(report.row("noisy").curves[task].x) == min(len(sub) + 1, 201)


def test_routellm_needs_the_weak_and_strong_models() -> None:
    data = routellm_like()
    with pytest.raises(ValueError, match="RouteLLM needs models"):
        evaluate_routellm({}, data, strong="gpt-5", progress=False)
    with pytest.raises(ValueError, match=f"must predict both.*{STRONG}"):
        evaluate_routellm({"one": _OnlyWeak()}, data, progress=False)


class _OnlyWeak(ConstantRouter):
    def __init__(self) -> None:
        super().__init__(WEAK)

    def fit(self, data: RoutingDataset) -> _OnlyWeak:
        self._models = [WEAK]
        return self

    def clone(self) -> _OnlyWeak:
        return _OnlyWeak()


def test_routerbench_oracle_like_router_beats_the_best_single_hull() -> None:
    data = routerbench_like()
    report = evaluate_routerbench(
        {"noisy": NoisyOracle(0.2), "mid": ConstantRouter("mid")}, data, refit=True, progress=False
    )
    noisy, oracle = report.row("noisy").metrics, report.row("oracle").metrics
    hull = report.row("best single-model hull").metrics
    assert oracle["AIQ/oracle"] == pytest.approx(1.0)
    assert oracle["AIQ"] >= noisy["AIQ"] > hull["AIQ"]
    assert noisy["AIQ/oracle"] <= 1.0 + 1e-9
    test = data.where(split="test")
    assert oracle["max quality"] == pytest.approx(np.nanmax(test.quality, axis=1).mean())
    # the best single-model hull passes through every undominated single model
    assert report.row("single: strong").metrics["max quality"] == hull["max quality"]


def test_routerbench_constant_router_is_its_single_model_point() -> None:
    report = evaluate_routerbench(
        {"mid": ConstantRouter("mid")}, routerbench_like(), refit=True, progress=False
    )
    routed, single = report.row("mid"), report.row("single: mid")
    assert routed.metrics == pytest.approx(single.metrics)
    assert routed.curves["hull"].x == pytest.approx(single.curves["hull"].x)
    test = routerbench_like().where(split="test")
    assert test.cost is not None
    assert single.metrics["cost at max quality"] == pytest.approx(test.cost[:, 1].sum())
    assert report.metadata["c_min"] == pytest.approx(test.cost[:, 0].sum())
    assert report.metadata["c_max"] == pytest.approx(test.cost[:, 2].sum())


def test_routerbench_needs_costs_and_known_models() -> None:
    data = routerbench_like()
    unpriced = RoutingDataset(
        prompts=data.prompts, models=data.models, quality=data.quality, tasks=data.tasks,
        splits=data.splits,
    )  # fmt: skip
    with pytest.raises(ValueError, match="cost"):
        evaluate_routerbench({}, unpriced, refit=False, progress=False)
    with pytest.raises(ValueError, match="'Z'"):
        evaluate_routerbench(
            {"odd": ConstantRouter("Z", models=["Z"])}, data, refit=False, progress=False
        )
