"""The pieces of bench/outside_loadgen.py that keep GuideLLM offline and its report small:
the byte-level tokenizer it writes (no download), the scenario it hands GuideLLM, and the
trimming of GuideLLM's per-request lists."""

from __future__ import annotations

import json
from argparse import Namespace
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer

from tests.support.bench import bench_module


@pytest.fixture(scope="module")
def loadgen() -> Any:
    return bench_module("outside_loadgen")


def test_the_written_tokenizer_loads_from_its_folder_and_spends_one_token_per_byte(
    loadgen: Any, tmp_path: Path
) -> None:
    folder = loadgen.write_tokenizer(tmp_path / "tok")
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    text = "Suggest shake effort, naïve café — 32 bytes?"
    ids = tokenizer.encode(text).ids
    assert len(ids) == len(text.encode())
    assert tokenizer.decode(ids) == text
    config = json.loads((folder / "tokenizer_config.json").read_text())
    assert config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_the_scenario_sends_rate_times_duration_requests_and_waits_at_most_the_grace(
    loadgen: Any, tmp_path: Path
) -> None:
    a = Namespace(duration=20.0, grace=10.0, seed=3, slo_ttft=1.0, slo_itl=0.05)
    out = loadgen.scenario("http://127.0.0.1:9/v1", 30.0, tmp_path, a, tmp_path / "r.json")
    spec = out["spec"]
    assert spec["backend"]["target"] == "http://127.0.0.1:9"
    assert spec["backend"]["api_routes"] == {"/health": "readyz"}
    assert spec["profile"] == {"kind": "poisson", "rate": [30.0]}
    assert {"kind": "max_requests", "count": 600} in spec["constraints"]
    assert {"kind": "max_duration", "seconds": 30.0} in spec["constraints"]
    assert spec["metrics"]["slo"] == {"ttft_ms": 1000.0, "tpot_ms": 50.0}


def test_trimming_drops_the_per_request_lists_and_keeps_their_counts(loadgen: Any) -> None:
    report: dict[str, Any] = {"benchmarks": [{"metrics": {"x": 1},
                              "requests": {"successful": [{}, {}], "errored": [],
                                           "incomplete": [{}], "total": None}}]}  # fmt: skip
    trimmed = loadgen.trim(report)
    requests = trimmed["benchmarks"][0]["requests"]
    assert (requests["successful"], requests["errored"], requests["incomplete"]) == (2, 0, 1)
    assert trimmed["benchmarks"][0]["metrics"] == {"x": 1}
    assert len(report["benchmarks"][0]["requests"]["successful"]) == 2  # the input is kept
