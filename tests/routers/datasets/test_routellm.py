"""RouteLLM's strong/weak evaluation labels, decontaminated as RouteLLM's evals do."""

from __future__ import annotations

import numpy as np
import pytest

from switchyard.routers.datasets import RoutingDataset, load_dataset, load_routellm
from tests.support.requirements import reference_data

WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
STRONG = "gpt-4-1106-preview"


def _percent(ds: RoutingDataset, model: str) -> float:
    return float(ds.quality[:, ds.models.index(model)].mean()) * 100


def test_the_two_models_in_header_order(routellm: RoutingDataset) -> None:
    assert routellm.models == [WEAK, STRONG]
    assert routellm.meta["strong_model"] == STRONG
    assert routellm.meta["weak_model"] == WEAK
    assert not np.isnan(routellm.quality).any()


@pytest.mark.parametrize(
    ("task", "n", "weak", "strong"),
    [("mmlu", 14037, 68.09, 80.59), ("gsm8k", 1307, 63.73, 85.77)],
)
def test_decontaminated_reference_numbers(
    routellm: RoutingDataset, task: str, n: int, weak: float, strong: float
) -> None:
    part = routellm.where(tasks=[task])
    assert len(part) == n
    assert _percent(part, WEAK) == pytest.approx(weak, abs=0.005)
    assert _percent(part, STRONG) == pytest.approx(strong, abs=0.005)


def test_mmlu_groups_are_the_57_subjects(routellm: RoutingDataset) -> None:
    mmlu = routellm.where(tasks=["mmlu"])
    assert mmlu.groups is not None
    assert len(set(mmlu.groups)) == 57
    assert "high_school_physics" in mmlu.groups
    assert set(routellm.where(tasks=["gsm8k"]).groups or []) == {"gsm8k"}
    assert set(routellm.splits or []) == {"test"}


def test_dropped_rows_are_recorded(routellm: RoutingDataset) -> None:
    dropped = routellm.meta["dropped_contaminated"]
    assert isinstance(dropped, dict)
    assert sum(dropped.values()) == 5 + 12


def test_without_decontamination_all_rows_are_kept() -> None:
    assert len(load_routellm(reference_data("routing/routellm/mmlu"), decontaminate=False)) == 14042
    assert len(load_routellm(reference_data("routing/routellm/gsm8k"), decontaminate=False)) == 1319


def test_a_single_file_uses_its_folders_contamination_list() -> None:
    ds = load_routellm(reference_data("routing/routellm/gsm8k/gsm8k_responses.csv"))
    assert len(ds) == 1307
    assert set(ds.tasks) == {"gsm8k"}


def test_load_dataset_detects_and_decontaminates_the_folder() -> None:
    ds = load_dataset(reference_data("routing/routellm"))
    assert len(ds) == 14037 + 1307
    assert ds.models == [WEAK, STRONG]
