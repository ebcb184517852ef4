"""The rule for a missing requirement (skip locally, fail in CI) and the end-of-run summary
that groups the skips by what they need."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.requirements import (
    REDIS_SERVER,
    REFERENCE_DATA,
    Requirement,
    data_root,
    reference_data,
    require,
    skip_summary,
)


def test_a_missing_requirement_skips_naming_it_and_how_to_enable_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs redis-server: apt-get install"):
        require(REDIS_SERVER, False)
    require(REDIS_SERVER, True)  # present: nothing happens


@pytest.mark.parametrize("ci", ["true", "1"])
def test_in_ci_a_missing_requirement_fails(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="needs redis-server"):
        require(REDIS_SERVER, False)


def test_ci_false_is_not_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require(REDIS_SERVER, False)


def test_the_reference_data_is_looked_up_in_switchyard_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CI", raising=False)
    (tmp_path / "routing").mkdir()
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(tmp_path))
    assert data_root() == tmp_path
    assert reference_data("routing") == tmp_path / "routing"
    with pytest.raises(pytest.skip.Exception, match=r"SWITCHYARD_DATA_DIR.*placement not found"):
        reference_data("placement")


def test_the_summary_has_one_line_per_requirement_with_its_count_and_remedy() -> None:
    reasons = [
        f"Skipped: {REFERENCE_DATA.reason('/x/routing not found')}",
        f"Skipped: {REFERENCE_DATA.reason('/x/perf not found')}",
        REFERENCE_DATA.reason(),
        f"Skipped: {REDIS_SERVER.reason()}",
        "Skipped: needs a GPU: run on a machine with one",
        "Skipped: something else",
    ]
    assert skip_summary(reasons) == [
        f"3 skipped, needing the public reference data: {REFERENCE_DATA.enable}",
        "1 skipped, needing redis-server: apt-get install redis-server",
        "1 skipped, needing a GPU: run on a machine with one",
        "1 skipped: something else",
    ]
    assert skip_summary([]) == []


def test_a_reason_names_what_and_how() -> None:
    need = Requirement("wrk", "apt-get install wrk")
    assert need.reason() == "needs wrk: apt-get install wrk"
    assert need.reason("not on PATH") == "needs wrk: apt-get install wrk [not on PATH]"
