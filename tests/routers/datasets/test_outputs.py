"""Model outputs for label-free training: the outputs JSONL format and RouterBench's
``<model>|model_response`` columns."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from switchyard.routers.datasets import DatasetFormatError
from switchyard.routers.datasets.outputs import load_outputs, read_outputs_jsonl
from tests.support.requirements import reference_data


def _write(path: Path, items: list[Any]) -> Path:
    path.write_text("".join((json.dumps(i) if not isinstance(i, str) else i) + "\n" for i in items))
    return path


def test_outputs_jsonl_gives_texts_costs_and_optional_scores(tmp_path: Path) -> None:
    file = _write(tmp_path / "chat_train.jsonl", [
        {"prompt": "2+2?", "outputs": {"a": "4", "b": "four", "c": None},
         "costs": {"a": 0.1, "b": 0.2}, "scores": {"a": 1}},
        {"prompt": [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Capital of France?"}],
         "outputs": {"a": "Paris", "c": "  "}, "task": "geo", "split": "test"},
    ])  # fmt: skip
    out = read_outputs_jsonl(file)
    assert out.data.models == ["a", "b", "c"]
    assert out.texts == [["4", "four", None], ["Paris", None, None]]
    assert out.data.prompts == ["2+2?", "Be brief.\n\nCapital of France?"]
    assert out.data.tasks == ["chat", "geo"] and out.data.splits == ["train", "test"]
    assert out.data.cost is not None and out.data.cost[0, 1] == 0.2
    assert np.isnan(out.data.cost[1]).all()
    assert out.data.quality[0, 0] == 1 and np.isnan(out.data.quality[1]).all()
    assert out.data.output_tokens is None
    assert out.where(split="test").texts == [["Paris", None, None]]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        ({"prompt": "p"}, '"outputs"'),
        ({"prompt": 3, "outputs": {}}, '"prompt" must be'),
        ({"prompt": "p", "outputs": {"a": 1}}, "strings or null"),
        ({"prompt": "p", "outputs": {}, "costs": {"a": "x"}}, "expected a number"),
        ({"prompt": "p", "outputs": {}, "task": 5}, '"task" must be a string'),
    ],
)
def test_a_malformed_outputs_line_names_the_file_line_and_problem(
    tmp_path: Path, line: Any, message: str
) -> None:
    file = _write(tmp_path / "o.jsonl", [{"prompt": "ok", "outputs": {"a": "x"}}, line])
    with pytest.raises(DatasetFormatError, match=f"o.jsonl:2: .*{message}"):
        read_outputs_jsonl(file)


def test_a_file_without_outputs_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "x.csv"
    csv.write_text("prompt,a\nhi,1\n")
    with pytest.raises(DatasetFormatError, match="no model outputs"):
        load_outputs([csv])


def test_routerbench_outputs_keep_rows_aligned_with_the_dataset() -> None:
    out = load_outputs([reference_data("routing", "routerbench", "mbpp_test.csv")])
    assert len(out) == 128 and len(out.data.models) == 11
    gpt4 = out.data.models.index("gpt-4-1106-preview")
    assert all(row[gpt4] for row in out.texts)
    assert "def " in str(out.texts[0][gpt4])
    assert out.data.splits == ["test"] * 128 and out.data.cost is not None
