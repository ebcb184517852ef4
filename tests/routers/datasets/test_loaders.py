"""Format detection, folders, malformed files and concatenating several paths."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.datasets import (
    DatasetFormatError,
    data_dir,
    load_dataset,
    load_datasets,
    load_routellm,
    load_routerbench,
    load_routerdc,
)
from switchyard.routers.datasets.loaders import detect_format
from tests.support.requirements import REFERENCE_DATA, reference_data, require

ROUTERBENCH_HEADER = "sample_id,prompt,eval_name,m1,m2,m1|total_cost,m2|total_cost\n"


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("routing/routerdc/mbpp.json", "routerdc"),
        ("routing/routerbench/mbpp_test.csv", "routerbench"),
        ("routing/routellm/mmlu/mmlu_anatomy.csv", "routellm"),
        ("routing/routellm/gsm8k/gsm8k_responses.csv", "routellm"),
    ],
)
def test_formats_are_detected_from_content(path: str, kind: str) -> None:
    absolute = reference_data(path)
    default = data_dir() / path  # where a relative path resolves
    require(REFERENCE_DATA, default.exists(), f"{default.absolute()} not found")
    assert detect_format(path) == kind
    assert detect_format(absolute) == kind


def test_jsonl_files_are_the_generic_format(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt": "p", "scores": {"m": 1}}\n')
    assert detect_format(path) == "jsonl"


def test_unknown_files_raise_naming_the_file_and_what_was_expected() -> None:
    melange = reference_data("placement/melange_example.json")
    with pytest.raises(DatasetFormatError, match="RouterDC") as info:
        load_dataset(melange)
    assert str(melange) in str(info.value)
    vidur = next(reference_data("perf/vidur").glob("*.csv"))
    with pytest.raises(DatasetFormatError, match="eval_name"):
        load_dataset(vidur)


def test_an_unsupported_extension_is_a_format_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(DatasetFormatError, match=r"\.json, \.csv or \.jsonl"):
        load_dataset(path)


def test_bad_json_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "gsm8k-test.json"
    path.write_text('[{"question": "q", "scores": {"m": 1}},\n  {"question": }]\n')
    with pytest.raises(DatasetFormatError, match=rf"{path}:2: invalid JSON"):
        load_dataset(path)


def test_a_routerdc_record_without_scores_is_named(tmp_path: Path) -> None:
    path = tmp_path / "mmlu_test.json"
    path.write_text(json.dumps([{"question": "q", "scores": {"m": 1}}, {"question": "q2"}]))
    with pytest.raises(DatasetFormatError, match="record 1"):
        load_routerdc(path)


def test_a_routerbench_csv_without_eval_name_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "x_test.csv"
    path.write_text("sample_id,prompt,m1\n1,['p'],1.0\n")
    with pytest.raises(DatasetFormatError, match="missing column"):
        load_routerbench(path)


def test_a_bad_routerbench_cell_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x_test.csv"
    path.write_text(ROUTERBENCH_HEADER + "1,['p'],t,1.0,0.0,0.1,0.2\n2,['q'],t,yes,0.0,0.1,0.2\n")
    with pytest.raises(DatasetFormatError, match=rf"{path}:3: not a number"):
        load_dataset(path)


def test_a_short_csv_row_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "x_test.csv"
    path.write_text(ROUTERBENCH_HEADER + "1,['p'],t,1.0\n")
    with pytest.raises(DatasetFormatError, match=rf"{path}:2: 4 fields"):
        load_routerbench(path)


def test_a_small_routerbench_file_parses_costs_and_split(tmp_path: Path) -> None:
    path = tmp_path / "toy_train.csv"
    path.write_text(ROUTERBENCH_HEADER + "1,\"['p', 'q']\",toy,1.0,,0.1,0.2\n")
    ds = load_dataset(path)
    assert ds.models == ["m1", "m2"]
    assert ds.prompts == ["p\n\nq"]
    assert ds.splits == ["train"]
    assert ds.cost is not None and ds.cost.tolist() == [[0.1, 0.2]]
    assert ds.output_tokens is not None and ds.output_tokens.shape == (1, 2)


def test_a_routellm_csv_with_a_bad_cell_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "mmlu_law.csv"
    path.write_text("prompt,weak,strong\nq1,True,False\nq2,True,maybe\n")
    assert detect_format(path) == "routellm"
    with pytest.raises(DatasetFormatError, match=rf"{path}:3: not True/False"):
        load_routellm(path)


def test_a_folder_skips_unknown_files_but_not_malformed_ones(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jsonl").write_text('{"prompt": "p", "scores": {"m": 1}}\n')
    (tmp_path / "other.json").write_text('{"not": "routing"}')
    (tmp_path / "readme.md").write_text("# notes")
    (tmp_path / "contaminated_prompts.jsonl").write_text('{"eval_prompt": "x"}\n')
    ds = load_dataset(tmp_path)
    assert ds.prompts == ["p"]
    (tmp_path / "broken.jsonl").write_text("{oops\n")
    with pytest.raises(DatasetFormatError, match=r"broken\.jsonl:1"):
        load_dataset(tmp_path)


def test_an_empty_folder_is_a_format_error(tmp_path: Path) -> None:
    with pytest.raises(DatasetFormatError, match="no routing data files"):
        load_dataset(tmp_path)


def test_a_copied_folder_loads_the_same_as_the_shared_one(tmp_path: Path) -> None:
    shutil.copytree(reference_data("routing/routellm/gsm8k"), tmp_path / "gsm8k")
    assert len(load_dataset(tmp_path, progress=True)) == 1307


def test_several_paths_concatenate_over_the_union_of_models() -> None:
    paths = [
        reference_data("routing/routellm/gsm8k"),
        reference_data("routing/routerbench/mbpp_test.csv"),
    ]
    ds = load_datasets(paths)
    assert len(ds) == 1307 + 128
    assert len(ds.models) == 2 + 11 - 1  # gpt-4-1106-preview is in both
    gpt4 = ds.models.index("gpt-4-1106-preview")
    assert not np.isnan(ds.quality[:, gpt4]).any()
    assert np.isnan(ds.quality[1307:, 0]).all()  # RouteLLM's Mixtral is not RouterBench's
    assert ds.tasks[0] == "gsm8k" and ds.tasks[-1] == "mbpp"
    assert ds.cost is not None
    assert np.isnan(ds.cost[:1307]).all()  # RouteLLM has no costs
    assert not np.isnan(ds.cost[1307:, 1:]).any()


def test_load_datasets_wants_a_sequence() -> None:
    with pytest.raises(TypeError):
        load_datasets("routing/routerdc")
    with pytest.raises(ValueError, match="at least one"):
        load_datasets([])
