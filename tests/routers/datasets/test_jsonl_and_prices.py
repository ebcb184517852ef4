"""The generic JSONL format and prices files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.datasets import (
    DatasetFormatError,
    Price,
    load_dataset,
    load_jsonl,
    load_prices,
)


def _write_jsonl(path: Path, lines: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.fixture
def generic(tmp_path: Path) -> Path:
    return _write_jsonl(
        tmp_path / "mixed_train.jsonl",
        [
            {"prompt": "2+2?", "scores": {"a": 1, "b": 0.5}, "costs": {"a": 0.01}, "id": 7},
            {"prompt": "capital of France?", "scores": {"b": 1.0, "c": None}, "task": "qa"},
            {"prompt": "hi", "scores": {"c": 0}, "split": "test", "group": "greetings"},
        ],
    )


@pytest.fixture
def prices_yaml(tmp_path: Path) -> Path:
    path = tmp_path / "prices.yaml"
    path.write_text(
        "a: {input_per_mtok: 1.0, output_per_mtok: 2.0}\n"
        "b:\n  input_per_mtok: 0.5\n  output_per_mtok: 1.5\n  provider: x\n",
        encoding="utf-8",
    )
    return path


def test_models_are_the_union_in_first_seen_order_with_nan_for_missing(generic: Path) -> None:
    ds = load_jsonl(generic)
    assert ds.models == ["a", "b", "c"]
    expected = np.array([[1.0, 0.5, np.nan], [np.nan, 1.0, np.nan], [np.nan, np.nan, 0.0]])
    np.testing.assert_array_equal(ds.quality, expected)
    assert ds.prompts == ["2+2?", "capital of France?", "hi"]


def test_costs_are_nan_where_a_line_has_none(generic: Path) -> None:
    ds = load_jsonl(generic)
    assert ds.cost is not None
    assert ds.cost[0, 0] == 0.01
    assert np.isnan(ds.cost[0, 1]) and np.isnan(ds.cost[1:]).all()


def test_task_split_and_group_default_from_the_file_name(generic: Path) -> None:
    ds = load_jsonl(generic)
    assert ds.tasks == ["mixed", "qa", "mixed"]
    assert ds.splits == ["train", "train", "test"]
    assert ds.groups == ["mixed", "qa", "greetings"]


def test_no_costs_and_no_prices_means_no_cost_matrix(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "plain.jsonl", [{"prompt": "p", "scores": {"m": 1}}])
    ds = load_jsonl(path)
    assert ds.cost is None
    assert ds.splits == [""]
    assert ds.tasks == ["plain"]


def test_prices_leave_missing_costs_nan_and_go_to_meta(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "plain.jsonl", [{"prompt": "p", "scores": {"m": 1}}])
    prices = {"m": Price(input_per_mtok=1.0, output_per_mtok=3.0)}
    ds = load_jsonl(path, prices)
    assert ds.cost is not None and np.isnan(ds.cost).all()
    assert ds.meta["prices"] == prices


def test_load_dataset_reads_a_prices_file(generic: Path, prices_yaml: Path) -> None:
    ds = load_dataset(generic, prices=prices_yaml)
    assert ds.meta["prices"] == {"a": Price(1.0, 2.0), "b": Price(0.5, 1.5)}
    assert ds.cost is not None and ds.cost[0, 0] == 0.01


def test_prices_load_from_yaml_and_json(prices_yaml: Path, tmp_path: Path) -> None:
    prices = load_prices(prices_yaml)
    assert prices["b"] == Price(input_per_mtok=0.5, output_per_mtok=1.5)
    assert prices["a"].cost(1_000_000, 500_000) == pytest.approx(2.0)
    as_json = tmp_path / "prices.json"
    as_json.write_text(json.dumps({"a": {"input_per_mtok": 1, "output_per_mtok": 2}}))
    assert load_prices(as_json) == {"a": Price(1.0, 2.0)}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a: {input_per_mtok: 1.0}\n", "output_per_mtok must be a number"),
        ("a: {input_per_mtok: '1', output_per_mtok: 2}\n", "input_per_mtok must be a number"),
        ("a: {input_per_mtok: -1, output_per_mtok: 2}\n", "must be finite and >= 0"),
        ("a: 3\n", "expected a mapping"),
        ("- a\n- b\n", "expected a mapping {model"),
        ("a: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_price_entries_are_named(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_prices(path)
    assert str(path) in str(info.value)


def test_price_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match="input_per_mtok"):
        Price(input_per_mtok=-1.0, output_per_mtok=0.0)
    assert math.isclose(Price(0.0, 10.0).cost(0, 100), 0.001)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"scores": {"m": 1}}', 'missing or non-string "prompt"'),
        ('{"prompt": "p"}', 'missing "scores"'),
        ('{"prompt": "p", "scores": {"m": "high"}}', "expected a number"),
        ('{"prompt": "p", "scores": [1]}', '"scores" must be an object'),
        ('{"prompt": "p", "scores": {"m": 1}, "task": 3}', '"task" must be a string'),
        ('{"prompt": "p", "scores": ', "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_a_bad_line_is_reported_with_its_line_number(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt": "ok", "scores": {"m": 1}}\n\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_jsonl(path)
    assert f"{path}:3:" in str(info.value)
