"""Where the shared data is found and how relative paths resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from switchyard.routers.datasets import data_dir, resolve_data_path


def test_a_given_root_is_where_relative_paths_are_looked_up(tmp_path: Path) -> None:
    (tmp_path / "routing").mkdir()
    (tmp_path / "routing" / "x.jsonl").write_text("")
    assert resolve_data_path("routing/x.jsonl", tmp_path) == tmp_path / "routing" / "x.jsonl"


def test_the_package_ignores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", "/nowhere")
    assert data_dir() != Path("/nowhere")


def test_default_data_dir_is_beside_the_repository() -> None:
    repo_root = Path(__file__).resolve().parents[3]
    expected = repo_root.parent / "shared" / "data"
    if expected.exists():
        assert data_dir() == expected
    else:
        assert data_dir() == Path("..") / "shared" / "data"


def test_an_existing_path_is_used_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "f.json").write_text("[]")
    (tmp_path / "f.json").write_text("[]")
    monkeypatch.chdir(tmp_path)
    assert resolve_data_path("f.json", data) == Path("f.json")
    assert resolve_data_path(tmp_path / "f.json", data) == tmp_path / "f.json"


def test_a_missing_path_names_both_places_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        resolve_data_path("nowhere/x.csv", tmp_path / "data")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "x.csv") in message
    assert str(tmp_path / "data" / "nowhere" / "x.csv") in message
