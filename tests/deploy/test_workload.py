"""Workload files: parsing, defaults and the errors that name the bad field."""

from __future__ import annotations

import pytest

from switchyard.deploy.workload import WorkloadError, load_workload, parse_workload
from switchyard.resources import data_path

CHAT = data_path("workloads", "chat.yaml")


def test_the_example_chat_workload_loads() -> None:
    workload = load_workload(CHAT)
    assert [d.model for d in workload.models] == ["Llama-3.1-8B", "Qwen3-30B-A3B"]
    llama = workload.models[0]
    assert sum(llama.bucket_rates()) == pytest.approx(llama.rate)
    assert llama.model_len(131072) == 8192  # longest bucket 6656 tokens
    assert workload.gpus["H200"] == 8


def test_per_model_targets_override_the_default() -> None:
    doc = {
        "targets": {"ttft_s": 2, "tpot_s": 0.05},
        "models": [
            {"name": "a", "rate": 1, "buckets": [{"input": 10, "output": 10}]},
            {"name": "b", "rate": 1, "buckets": [{"input": 10, "output": 10}],
             "targets": {"ttft_s": 1, "tpot_s": 0.02}},
        ],
    }  # fmt: skip
    a, b = parse_workload(doc).models
    assert (a.targets.tpot_s, b.targets.tpot_s) == (0.05, 0.02)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ({"models": []}, "non-empty 'models'"),
        ({"models": [{"name": "a", "rate": 1, "buckets": [{"input": 1, "output": 1}]}]},
         "latency targets"),
        ({"targets": {"ttft_s": 1, "tpot_s": 1},
          "models": [{"name": "a", "rate": 1, "buckets": [{"input": 0, "output": 1}]}]},
         r"buckets\[0\]"),
        ({"targets": {"ttft_s": 1, "tpot_s": 1},
          "models": [{"name": "a", "rate": 1, "buckets": [{"input": 1, "output": 1}]},
                     {"name": "a", "rate": 2, "buckets": [{"input": 1, "output": 1}]}]},
         "appear once"),
        ({"targets": {"ttft_s": 1, "tpot_s": 1}, "headroom": 1,
          "models": [{"name": "a", "rate": 1, "buckets": [{"input": 1, "output": 1}]}]},
         "headroom"),
    ],
)  # fmt: skip
def test_invalid_workloads_name_the_problem(doc: dict[str, object], match: str) -> None:
    with pytest.raises(WorkloadError, match=match):
        parse_workload(doc)
