"""RouterDC's seven 7B models: tasks, splits, score kinds and the paper-protocol numbers."""

from __future__ import annotations

import time

import numpy as np
import pytest

from switchyard.routers.datasets import RoutingDataset, load_dataset, load_routerdc
from tests.support.requirements import reference_data

BEST = "cognitivecomputations/dolphin-2.9-llama3-8b"
IN_DISTRIBUTION = ["gsm8k", "humaneval", "arc_challenge", "mmlu", "cmmlu"]
OUT_OF_DISTRIBUTION = ["MATH_prealgebra", "mbpp", "ceval"]


def _per_task_means(ds: RoutingDataset, tasks: list[str]) -> tuple[dict[str, float], float]:
    """Each model's mean over tasks of its per-task mean, and the per-query oracle's."""
    test = ds.where(split="test")
    per_task = [test.where(tasks=[t]) for t in tasks]
    model_avg = np.mean([part.quality.mean(axis=0) for part in per_task], axis=0) * 100
    oracle = float(np.mean([part.quality.max(axis=1).mean() for part in per_task])) * 100
    return dict(zip(ds.models, model_avg.tolist(), strict=True)), oracle


def test_folder_has_seven_models_and_all_sixteen_files(routerdc: RoutingDataset) -> None:
    assert len(routerdc) == 20600
    assert len(routerdc.models) == 7
    assert BEST in routerdc.models
    assert not np.isnan(routerdc.quality).any()
    assert len(routerdc.meta["sources"]) == 16  # type: ignore[arg-type]


def test_task_and_split_come_from_the_file_name(routerdc: RoutingDataset) -> None:
    counts: dict[tuple[str, str], int] = {}
    for task, split in zip(routerdc.tasks, routerdc.splits or [], strict=True):
        counts[task, split] = counts.get((task, split), 0) + 1
    assert counts["gsm8k", "test"] == 1319
    assert counts["gsm8k", "train"] == 1000
    assert counts["humaneval", "test"] == 49
    assert counts["arc_challenge", "test"] == 352
    assert counts["mmlu", "test"] == 4213
    assert counts["cmmlu", "test"] == 3475
    # the out-of-distribution sets have no suffix and are test-only
    assert counts["MATH_prealgebra", "test"] == 871
    assert counts["mbpp", "test"] == 500
    assert counts["ceval", "test"] == 1346
    assert counts["javascript", "test"] == 164
    assert ("mbpp", "train") not in counts


def test_score_kinds_are_recorded_per_task(routerdc: RoutingDataset) -> None:
    kinds = routerdc.meta["score_kind"]
    assert kinds == {
        "MATH_prealgebra": "probability",
        "arc_challenge": "probability",
        "arc_easy": "probability",
        "ceval": "probability",
        "cmmlu": "probability",
        "mmlu": "probability",
        "gsm8k": "multi_attempt",
        "humaneval": "multi_attempt",
        "javascript": "multi_attempt",
        "mbpp": "multi_attempt",
    }


def test_probability_scores_are_binarised_and_attempt_fractions_kept(
    routerdc: RoutingDataset,
) -> None:
    mmlu = routerdc.where(tasks=["mmlu"]).quality
    assert set(np.unique(mmlu).tolist()) == {0.0, 1.0}
    gsm8k = routerdc.where(tasks=["gsm8k"]).quality
    assert set(np.round(np.unique(gsm8k) * 10, 6).tolist()) <= {float(k) for k in range(11)}
    assert ((gsm8k > 0) & (gsm8k < 1)).any()


@pytest.mark.parametrize(
    ("tasks", "best", "oracle"),
    [(IN_DISTRIBUTION, 54.56, 77.52), (OUT_OF_DISTRIBUTION, 43.95, 70.34)],
    ids=["in-distribution", "out-of-distribution"],
)
def test_reference_numbers_match_the_paper_protocol(
    routerdc: RoutingDataset, tasks: list[str], best: float, oracle: float
) -> None:
    per_model, oracle_avg = _per_task_means(routerdc, tasks)
    assert max(per_model, key=lambda m: per_model[m]) == BEST
    assert per_model[BEST] == pytest.approx(best, abs=0.005)
    assert oracle_avg == pytest.approx(oracle, abs=0.005)


def test_one_file_loads_with_its_task_and_split() -> None:
    ds = load_routerdc(reference_data("routing/routerdc/gsm8k-test.json"))
    assert len(ds) == 1319
    assert set(ds.tasks) == {"gsm8k"}
    assert set(ds.splits or []) == {"test"}
    assert ds.prompts[0].startswith("Janet")
    assert ds.meta["score_kind"] == {"gsm8k": "multi_attempt"}


def test_score_kind_override_keeps_raw_confidences() -> None:
    ds = load_routerdc(
        reference_data("routing/routerdc/arc_challenge_test.json"),
        score_kinds={"arc_challenge": "raw"},
    )
    assert ((ds.quality > 0) & (ds.quality < 1)).any()
    assert ds.meta["score_kind"] == {"arc_challenge": "raw"}


def test_whole_folder_loads_fast() -> None:
    folder = reference_data("routing/routerdc")
    start = time.perf_counter()
    ds = load_dataset(folder)
    assert len(ds) == 20600
    assert time.perf_counter() - start < 2.0
