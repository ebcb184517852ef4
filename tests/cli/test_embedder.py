"""``switchyard embedder info | export`` on the session's exported embedder."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from switchyard.cli.embedder import embedder_app


def test_cli_info_and_export(embedder_cache: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    info = runner.invoke(embedder_app, ["info", "--cache-dir", str(embedder_cache)])
    assert info.exit_code == 0, info.output
    assert "all-MiniLM-L6-v2/onnx-int8-pc" in info.output and "model.int8.onnx" in info.output
    export = runner.invoke(embedder_app, ["export", "--cache-dir", str(embedder_cache)])
    assert export.exit_code == 0, export.output
    assert "already exported" in export.output and "int8 vs fp32 cosine" in export.output
    missing = runner.invoke(embedder_app, ["info", "--cache-dir", str(tmp_path)])
    assert missing.exit_code == 1 and "not exported" in missing.output
