"""The cost predictor: a line in prompt tokens from per-query costs, else list prices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.models import CostPredictor, NotFittedError
from switchyard.routers.models.cost import prompt_tokens


def _prompts(lengths: list[int]) -> list[str]:
    return ["x" * n for n in lengths]


def test_prompt_tokens_are_characters_over_four_and_at_least_one() -> None:
    np.testing.assert_allclose(prompt_tokens(["", "ab", "x" * 40, "y" * 401]), [1, 1, 10, 100.25])
    np.testing.assert_allclose(prompt_tokens(["x" * 30], chars_per_token=3.0), [10.0])


def test_learns_intercept_and_slope_from_per_query_costs() -> None:
    rng = np.random.default_rng(0)
    prompts = _prompts(rng.integers(40, 4000, size=60).tolist())
    tokens = prompt_tokens(prompts)
    cost = np.stack([2e-4 + 3e-6 * tokens, 1e-5 + 5e-7 * tokens], axis=1)
    predictor = CostPredictor().fit(prompts, ["a", "b"], cost)
    assert predictor.source_ == ["data", "data"]
    np.testing.assert_allclose(predictor.coef_, [[2e-4, 3e-6], [1e-5, 5e-7]], rtol=1e-6)
    new = _prompts([100, 8000])
    np.testing.assert_allclose(
        predictor.predict(new), [[2e-4 + 3e-6 * 25, 1e-5 + 5e-7 * 25], [2e-4 + 6e-3, 1e-5 + 1e-3]]
    )


def test_noisy_costs_give_the_least_squares_line() -> None:
    rng = np.random.default_rng(1)
    prompts = _prompts(rng.integers(40, 4000, size=400).tolist())
    tokens = prompt_tokens(prompts)
    cost = (1e-3 + 2e-6 * tokens + rng.normal(scale=1e-5, size=400))[:, None]
    coef = CostPredictor().fit(prompts, ["m"], cost).coef_[0]
    assert coef[0] == pytest.approx(1e-3, rel=0.02)
    assert coef[1] == pytest.approx(2e-6, rel=0.02)


def test_unknown_costs_are_skipped_when_fitting_the_line() -> None:
    prompts = _prompts([40, 80, 120, 160])
    tokens = prompt_tokens(prompts)
    cost = (1e-4 + 1e-6 * tokens)[:, None].copy()
    cost[1, 0] = np.nan
    predictor = CostPredictor().fit(prompts, ["m"], cost)
    np.testing.assert_allclose(predictor.coef_[0], [1e-4, 1e-6], rtol=1e-6)


def test_costs_falling_with_length_give_a_flat_line_at_the_mean() -> None:
    prompts = _prompts([40, 400, 4000])
    cost = np.array([[3e-3], [2e-3], [1e-3]])
    predictor = CostPredictor().fit(prompts, ["m"], cost)
    np.testing.assert_allclose(predictor.coef_[0], [2e-3, 0.0])
    np.testing.assert_allclose(predictor.predict(_prompts([10, 10_000])), [[2e-3], [2e-3]])


def test_uses_prices_and_mean_output_tokens_without_per_query_costs() -> None:
    prices = {"a": (1.0, 2.0), "b": (10.0, 30.0)}  # USD per million input / output tokens
    prompts = _prompts([400, 800, 1200])  # 100, 200, 300 prompt tokens
    output = np.array([[100.0, 10.0], [300.0, np.nan], [200.0, 30.0]])
    predictor = CostPredictor(prices).fit(prompts, ["a", "b"], None, output)
    assert predictor.source_ == ["prices", "prices"]
    pred = predictor.predict(prompts)
    tokens = np.array([100.0, 200.0, 300.0])
    np.testing.assert_allclose(pred[:, 0], (tokens * 1.0 + 200.0 * 2.0) / 1e6)
    np.testing.assert_allclose(pred[:, 1], (tokens * 10.0 + 20.0 * 30.0) / 1e6)


def test_prices_without_output_tokens_use_the_default_output_length() -> None:
    predictor = CostPredictor({"a": (1.0, 2.0)}, default_output_tokens=100.0)
    predictor.fit(_prompts([400]), ["a"])
    np.testing.assert_allclose(predictor.predict(_prompts([400])), [[(100 + 100 * 2.0) / 1e6]])


def test_prices_fill_in_for_models_without_enough_cost_data() -> None:
    prompts = _prompts([400, 800])
    cost = np.array([[1e-3, np.nan], [2e-3, 5e-3]])  # "b" has a single observed cost
    predictor = CostPredictor({"b": (4.0, 0.0)}).fit(prompts, ["a", "b"], cost)
    assert predictor.source_ == ["data", "prices"]
    np.testing.assert_allclose(predictor.predict(prompts)[:, 1], [4e-4, 8e-4])


def test_models_with_neither_costs_nor_prices_cost_nothing() -> None:
    prompts = _prompts([400, 4000])
    cost = np.array([[1e-3, np.nan, np.nan], [2e-3, np.nan, np.nan]])
    predictor = CostPredictor({"priced": (1.0, 1.0)}).fit(
        prompts, ["observed", "unknown", "priced"], cost
    )
    assert predictor.source_ == ["data", "none", "prices"]
    pred = predictor.predict(prompts)
    assert pred.shape == (2, 3)
    np.testing.assert_array_equal(pred[:, 1], [0.0, 0.0])
    assert (pred[:, [0, 2]] > 0).all()


def test_predictions_are_never_negative() -> None:
    prompts = _prompts([400, 800, 1200])
    cost = np.array([[0.0], [1e-3], [2e-3]])  # the line crosses zero below 100 tokens
    predictor = CostPredictor().fit(prompts, ["m"], cost)
    assert predictor.coef_[0, 0] < 0
    assert predictor.predict(_prompts([4]))[0, 0] == 0.0


def test_json_round_trip_gives_identical_predictions() -> None:
    rng = np.random.default_rng(2)
    prompts = _prompts(rng.integers(40, 2000, size=20).tolist())
    cost = np.abs(rng.normal(1e-3, 2e-4, size=(20, 2)))
    cost[:, 1] = np.nan
    predictor = CostPredictor({"b": (3.0, 15.0)}, default_output_tokens=64.0, chars_per_token=3.5)
    predictor.fit(prompts, ["a", "b", "c"], np.column_stack([cost, np.full(20, np.nan)]))
    data = json.loads(json.dumps(predictor.to_json()))
    loaded = CostPredictor.from_json(data)
    assert loaded.models_ == ["a", "b", "c"]
    assert loaded.source_ == predictor.source_ == ["data", "prices", "none"]
    assert loaded.prices == {"b": (3.0, 15.0)}
    assert (loaded.default_output_tokens, loaded.chars_per_token) == (64.0, 3.5)
    new = _prompts([10, 500, 5000])
    np.testing.assert_array_equal(loaded.predict(new), predictor.predict(new))


def test_save_writes_the_json_form(tmp_path: Path) -> None:
    path = tmp_path / "cost.json"
    predictor = CostPredictor({"a": (1.0, 2.0)}).fit(_prompts([40]), ["a"])
    predictor.save(path)
    loaded = CostPredictor.from_json(json.loads(path.read_text()))
    np.testing.assert_array_equal(loaded.predict(["hello"]), predictor.predict(["hello"]))


def test_predict_and_to_json_before_fit_raise_not_fitted() -> None:
    predictor = CostPredictor({"a": (1.0, 2.0)})
    with pytest.raises(NotFittedError, match="not fitted"):
        predictor.predict(["hello"])
    with pytest.raises(NotFittedError, match="not fitted"):
        predictor.to_json()
