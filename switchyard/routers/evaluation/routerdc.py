"""RouterDC's protocol (NeurIPS 2024, Tables 1-2): per-task accuracy of the chosen model."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.evaluation._common import (
    data_metadata,
    fitted,
    predict_aligned,
    progress_bar,
    row_mask,
    row_max,
    row_mean,
)
from switchyard.routers.evaluation.metrics import per_task_means, picked, routerdc_averages
from switchyard.routers.evaluation.report import Kind, Report, ReportRow
from switchyard.routers.evaluation.types import FloatArray, Router
from switchyard.routers.policy import choose

__all__ = ["ROUTERDC_ID_TASKS", "ROUTERDC_OOD_TASKS", "evaluate_routerdc"]

log = logging.getLogger(__name__)

ROUTERDC_ID_TASKS = ("gsm8k", "humaneval", "arc_challenge", "mmlu", "cmmlu")
ROUTERDC_OOD_TASKS = ("MATH_prealgebra", "mbpp", "ceval")


def _row(
    name: str,
    kind: Kind,
    values: FloatArray,
    test: RoutingDataset,
    task_sets: tuple[Sequence[str], Sequence[str]],
) -> ReportRow:
    """A row from per-test-row chosen qualities: per-task scores x100 plus the averages."""
    per_task = per_task_means(values, test.tasks)
    id_tasks, ood_tasks = task_sets
    metrics = {t: per_task[t] for t in (*id_tasks, *ood_tasks) if t in per_task}
    metrics.update(routerdc_averages(per_task, id_tasks, ood_tasks))
    return ReportRow(name=name, kind=kind, metrics=metrics)


def _best_single(train: RoutingDataset, test: RoutingDataset, id_tasks: Sequence[str]) -> str:
    """The model with the best unweighted per-task average on the train rows."""
    source = train if len(train) else test
    scores = []
    for j in range(len(source.models)):
        per_task = per_task_means(source.quality[:, j], source.tasks)
        vals = [per_task[t] for t in id_tasks if t in per_task]
        scores.append(float(np.mean(vals)) if vals else -np.inf)
    return source.models[int(np.argmax(scores))]


def evaluate_routerdc(
    routers: Mapping[str, Router],
    data: RoutingDataset,
    *,
    refit: bool,
    progress: bool = True,
    id_tasks: Sequence[str] = ROUTERDC_ID_TASKS,
    ood_tasks: Sequence[str] = ROUTERDC_OOD_TASKS,
) -> Report:
    """Score each router's lambda = 0 choice per task, x100, and the ID / OOD averages.

    Train rows: ``id_tasks`` with split ``train``; in-distribution test: ``id_tasks`` with
    split ``test``; out-of-distribution test: ``ood_tasks`` rows not in split ``train``.
    With ``refit`` each router is cloned and fitted on the train rows; otherwise it is used
    as given and must predict models present in ``data``. Baselines: random (the expected
    score of a uniformly random model), the best single model (chosen on the train rows'
    unweighted task average) and the per-query oracle."""
    train = data.subset(row_mask(data, id_tasks, split="train"))
    test = data.subset(
        row_mask(data, id_tasks, split="test")
        | row_mask(data, ood_tasks, split=None, not_split="train")
    )
    if len(test) == 0:
        raise ValueError(
            f"no RouterDC test rows in {data.name!r} (tasks {sorted(set(data.tasks))})"
        )
    task_sets = (tuple(id_tasks), tuple(ood_tasks))
    report = _report(data, train, test, task_sets, refit=refit)
    for name, router in progress_bar(routers.items(), desc="routerdc", enabled=progress):
        model = fitted(router, train, refit=refit, name=name)
        pred, sub = predict_aligned(name, model, test)
        values = picked(sub.quality, choose(pred.quality, pred.cost, 0.0))
        report.rows.append(_row(name, "router", values, test, task_sets))
        log.info("routerdc %s: %s", name, report.rows[-1].metrics)
    report.rows.append(_row("random", "baseline", row_mean(test.quality), test, task_sets))
    best = _best_single(train, test, id_tasks)
    single_values = test.quality[:, test.models.index(best)]
    report.rows.append(_row(f"best single ({best})", "baseline", single_values, test, task_sets))
    report.rows[-1].info["model"] = best
    report.rows.append(_row("oracle", "baseline", row_max(test.quality), test, task_sets))
    report.notes.append(
        "best single = best unweighted train-task average"
        + ("" if len(train) else " (no train rows: chosen on the test rows)")
        + f": {best}."
    )
    return report


def _report(
    data: RoutingDataset,
    train: RoutingDataset,
    test: RoutingDataset,
    task_sets: tuple[Sequence[str], Sequence[str]],
    *,
    refit: bool,
) -> Report:
    """The report's frame: columns for the tasks present, metadata and notes."""
    present = set(test.tasks)
    tasks = [t for t in (*task_sets[0], *task_sets[1]) if t in present]
    columns = [*tasks, "ID avg", "OOD avg"]
    report = Report(
        protocol="routerdc",
        columns=columns,
        formats=dict.fromkeys(columns, "{:.2f}"),
        metadata={
            "title": "RouterDC protocol: accuracy (%) of the chosen model per task",
            **data_metadata(data),
            "train rows": len(train),
            "test rows": len(test),
            "refit": refit,
            **{f"n {t}": sum(1 for x in test.tasks if x == t) for t in tasks},
        },
        notes=[
            "Score: mean quality of the model chosen at lambda = 0 (argmax predicted quality),"
            " x100, per task; ID/OOD avg are unweighted means over the tasks present.",
            "random = expected score of a uniformly random model (row mean over models);"
            " oracle = best model per query.",
        ],
    )
    missing = [t for t in (*task_sets[0], *task_sets[1]) if t not in present]
    if missing:
        report.notes.append(f"tasks without test rows (left out): {', '.join(missing)}")
    return report
