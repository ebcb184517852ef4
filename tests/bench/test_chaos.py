"""A 60-second slice of the chaos run (bench/chaos.py): two gateway replicas on one Redis,
faults injected one at a time. Every error is explained by a fault, no acknowledged outcome
record is lost, and the limited key is never admitted beyond its bound."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.redis import available as redis_available
from tests.support.requirements import REDIS_SERVER, require

BENCH = Path(__file__).resolve().parents[2] / "bench" / "chaos.py"


@pytest.mark.slow
def test_a_chaos_slice_has_no_unexplained_error_no_lost_record_and_no_excess_admission(
    embedder_cache: Path, tmp_path: Path
) -> None:
    require(REDIS_SERVER, redis_available())
    out = tmp_path / "chaos.json"
    argv = [sys.executable, str(BENCH), "--duration", "50", "--concurrency", "4",
            "--embedder-cache", str(embedder_cache), "--out", str(out)]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=150, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["answered_2xx"] > 0.5 * report["requests_sent"]
    assert sum(report["faults_injected"].values()) >= 3
    assert report["errors_unexplained"] == {}, report
    records = report["outcome_records"]
    assert records["expected"] > 0 and records["lost"] == 0, records
    limited = report["limited_key"]
    assert 0 < limited["admitted"] <= limited["allowed_at_most"], limited
    for replica in report["rss_mb"].values():
        assert replica["end"] > 0
