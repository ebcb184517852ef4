"""RouterBench's 11 models with per-query dollar costs: the test-split reference points."""

from __future__ import annotations

import time

import numpy as np
import pytest

from switchyard.routers.datasets import RoutingDataset, load_dataset, load_routerbench
from tests.support.requirements import reference_data

GPT4 = "gpt-4-1106-preview"
MIXTRAL = "mistralai/mixtral-8x7b-chat"


def _single(ds: RoutingDataset, model: str) -> tuple[float, float]:
    """A model's mean quality (%, over the rows where it was scored) and its total cost."""
    assert ds.cost is not None
    j = ds.models.index(model)
    return float(np.nanmean(ds.quality[:, j])) * 100, float(ds.cost[:, j].sum())


def _cheapest_correct_oracle(ds: RoutingDataset) -> tuple[float, float]:
    """Per row, the cheapest correct model (the cheapest one when none is correct)."""
    assert ds.cost is not None
    correct = ds.quality == 1.0
    cost_if_correct = np.where(correct, ds.cost, np.inf)
    pick = np.where(
        correct.any(axis=1), np.argmin(cost_if_correct, axis=1), np.nanargmin(ds.cost, axis=1)
    )
    rows = np.arange(len(ds))
    return float(correct.any(axis=1).mean()) * 100, float(ds.cost[rows, pick].sum())


def test_models_are_the_quality_columns_as_named_in_the_header(routerbench: RoutingDataset) -> None:
    assert len(routerbench.models) == 11
    assert GPT4 in routerbench.models
    assert MIXTRAL in routerbench.models
    assert all("|" not in m for m in routerbench.models)
    assert "oracle_model_to_route_to" not in routerbench.models


def test_split_comes_from_the_file_name_and_task_from_eval_name(
    routerbench: RoutingDataset,
) -> None:
    test = routerbench.where(split="test")
    assert len(test) == 953
    assert len(routerbench.where(split="train")) == len(routerbench) - 953
    assert set(test.tasks) == {"arc-challenge", "mbpp", "winogrande"}


def test_test_split_reference_points(routerbench: RoutingDataset) -> None:
    test = routerbench.where(split="test")
    gpt4_quality, gpt4_cost = _single(test, GPT4)
    assert round(gpt4_quality, 1) == 88.0
    assert gpt4_cost == pytest.approx(4.80, abs=0.01)
    mixtral_quality, mixtral_cost = _single(test, MIXTRAL)
    assert round(mixtral_quality, 1) == 74.8
    assert mixtral_cost == pytest.approx(0.24, abs=0.01)
    oracle_quality, oracle_cost = _cheapest_correct_oracle(test)
    assert round(oracle_quality, 1) == 97.4
    assert oracle_cost == pytest.approx(0.20, abs=0.01)


def test_prompts_are_unwrapped_from_their_list_literal(routerbench: RoutingDataset) -> None:
    assert not any(p.startswith("['") for p in routerbench.prompts)
    first = load_routerbench(reference_data("routing/routerbench/mbpp_test.csv")).prompts[0]
    assert first == "Write a python function to identify non-prime numbers."


def test_multi_prompt_rows_are_joined_and_unscored_models_are_nan(
    routerbench: RoutingDataset,
) -> None:
    # a few ARC rows hold two prompts; most models were not scored on them
    unscored = np.isnan(routerbench.quality[:, routerbench.models.index(GPT4)])
    assert unscored.sum() == 14
    assert all("\n\n" in routerbench.prompts[i] for i in np.flatnonzero(unscored))


def test_costs_are_complete_and_output_tokens_are_estimated(routerbench: RoutingDataset) -> None:
    assert routerbench.cost is not None
    assert routerbench.output_tokens is not None
    assert not np.isnan(routerbench.cost).any()
    assert (routerbench.cost > 0).all()
    tokens = routerbench.output_tokens
    assert np.array_equal(tokens[~np.isnan(tokens)], np.round(tokens[~np.isnan(tokens)]))
    # MBPP answers are code, far longer than ARC's one-letter answers
    gpt4 = routerbench.models.index(GPT4)
    mbpp = np.nanmean(tokens[np.array(routerbench.tasks) == "mbpp", gpt4])
    arc = np.nanmean(tokens[np.array(routerbench.tasks) == "arc-challenge", gpt4])
    assert mbpp > 10 * arc


def test_whole_folder_loads_fast() -> None:
    folder = reference_data("routing/routerbench")
    start = time.perf_counter()
    ds = load_dataset(folder)
    assert len(ds) == 3178
    assert time.perf_counter() - start < 3.0
