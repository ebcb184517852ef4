"""Where the shared data is found and how relative paths resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from routers.datasets import data_dir, resolve_data_path


def test_env_variable_sets_the_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    (tmp_path / "routing").mkdir()
    (tmp_path / "routing" / "x.jsonl").write_text("")
    assert resolve_data_path("routing/x.jsonl") == tmp_path / "routing" / "x.jsonl"


def test_default_data_dir_is_beside_the_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SWITCHYARD_DATA_DIR", raising=False)
    repo_root = Path(__file__).resolve().parents[3]
    expected = repo_root.parent / "shared" / "data"
    if expected.exists():
        assert data_dir() == expected
    else:
        assert data_dir() == Path("..") / "shared" / "data"


def test_an_existing_path_is_used_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(data))
    (data / "f.json").write_text("[]")
    (tmp_path / "f.json").write_text("[]")
    monkeypatch.chdir(tmp_path)
    assert resolve_data_path("f.json") == Path("f.json")
    assert resolve_data_path(tmp_path / "f.json") == tmp_path / "f.json"


def test_a_missing_path_names_both_places_tried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHYARD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError) as info:
        resolve_data_path("nowhere/x.csv")
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "x.csv") in message
    assert str(tmp_path / "data" / "nowhere" / "x.csv") in message
