"""The kNN product bench (bench/knn_product_bench.py): both products timed on the shipped
router's matrix, and the same result from each."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.support.bench import bench_module

product_bench = bench_module("knn_product_bench")


def test_a_tiny_run_times_both_products_and_writes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "product.json"
    argv = ["knn_product_bench.py", "--sizes", "1,3", "--calls", "2", "--blocks", "1"]
    monkeypatch.setattr(sys, "argv", [*argv, "--out", str(out)])
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")  # main() sets it when unset
    product_bench.main()
    result = json.loads(out.read_text())
    assert result["matrix"][0] == 256 and [r["rows"] for r in result["rows"]] == [1, 3]
    for row in result["rows"]:
        assert row["blas_us_per_row"] > 0 and row["onnxruntime_us_per_row"] > 0
