"""``switchyard train --label-free`` end to end on a tiny outputs file built here: four
models answer 40 questions; nobody scored them; the trained router still learns that the
model agreeing with the others is the good one and the one answering nonsense is not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from switchyard.cli import app
from switchyard.routers.embedding import load_embedder
from switchyard.routers.pipeline import RoutingPipeline
from tests.support.embedders import link_embedders

runner = CliRunner()
CITIES = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Lisbon", "Prague", "Oslo", "Dublin",
          "Athens"]  # fmt: skip
COUNTRIES = ["France", "Germany", "Spain", "Italy", "Austria", "Portugal", "Czechia", "Norway",
             "Ireland", "Greece"]  # fmt: skip
NONSENSE = ["I like turtles.", "Bananas are yellow.", "The weather is nice today.",
            "Error 404.", "Purple monkey dishwasher."]  # fmt: skip


@pytest.fixture(scope="module")
def cache(embedder_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return link_embedders(tmp_path_factory.mktemp("labelfree-cache"), embedder_cache)


def _outputs_file(path: Path) -> Path:
    """40 capital-city questions: ``good`` always right, ``half`` right on even questions,
    ``other`` right on odd ones, ``bad`` answers nonsense. No scores anywhere."""
    lines = []
    for i in range(40):
        country, city = COUNTRIES[i % 10], CITIES[i % 10]
        right = f"The capital of {country} is {city}."
        wrong = f"The capital of {country} is {CITIES[(i + 3) % 10]}."
        outputs = {"good": right, "half": right if i % 2 == 0 else wrong,
                   "other": right if i % 2 else wrong, "bad": NONSENSE[i % 5]}  # fmt: skip
        costs = {"good": 0.01, "half": 0.002, "other": 0.002, "bad": 0.001}
        prompt = f"Question {i}: what is the capital of {country}?"
        lines.append(json.dumps({"prompt": prompt, "outputs": outputs, "costs": costs}))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_label_free_learns_from_outputs_alone(tmp_path: Path, cache: Path) -> None:
    """The prompts differ only in a number and a country, and the answers' parity decides who
    is right; MiniLM's neighbourhoods mix both parities, the static table's follow the number
    tokens, so this router is trained on MiniLM (the answers are compared by MiniLM either
    way)."""
    data = _outputs_file(tmp_path / "outputs.jsonl")
    out = tmp_path / "router"
    result = runner.invoke(app, [
        "train", "--label-free", "--router", "knn", "--param", "k=5", "--data", str(data),
        "--out", str(out), "--cache-dir", str(cache), "--embedder", "onnx-int8",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "label-free from 40 prompts" in result.output
    manifest = json.loads((out / "router.json").read_text())
    assert "--label-free --neighbors 3" in manifest["metadata"]["command"]
    pipe = RoutingPipeline.load(out, load_embedder("onnx-int8", cache=cache), cache=cache)
    quality = pipe.predict_prompts(["Question 99: what is the capital of Spain?"]).quality[0]
    by_model = dict(zip(pipe.models, quality, strict=True))
    assert by_model["good"] > max(by_model["half"], by_model["other"]) > by_model["bad"]


def test_train_label_free_per_task_estimate(tmp_path: Path, cache: Path) -> None:
    data = _outputs_file(tmp_path / "outputs.jsonl")
    result = runner.invoke(app, [
        "train", "--label-free", "--neighbors", "0", "--router", "best-single",
        "--data", str(data), "--out", str(tmp_path / "r"), "--cache-dir", str(cache),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    pipe = RoutingPipeline.load(tmp_path / "r", load_embedder("static", cache=cache), cache=cache)
    quality = pipe.predict_prompts(["anything"]).quality[0]
    assert pipe.models[int(np.argmax(quality))] == "good"


def test_train_label_free_refuses_data_without_outputs(tmp_path: Path, cache: Path) -> None:
    scores = tmp_path / "scores.jsonl"
    scores.write_text(json.dumps({"prompt": "p", "scores": {"a": 1}}) + "\n")
    result = runner.invoke(app, [
        "train", "--label-free", "--router", "knn", "--data", str(scores),
        "--out", str(tmp_path / "r"), "--cache-dir", str(cache),
    ])  # fmt: skip
    assert result.exit_code == 2
    assert 'expected one JSON object per line with "prompt"' in result.output


def test_train_label_free_needs_three_models(tmp_path: Path, cache: Path) -> None:
    two = tmp_path / "two.jsonl"
    two.write_text(json.dumps({"prompt": "p", "outputs": {"a": "x", "b": "y"}}) + "\n")
    result = runner.invoke(app, [
        "train", "--label-free", "--router", "knn", "--data", str(two),
        "--out", str(tmp_path / "r"), "--cache-dir", str(cache),
    ])  # fmt: skip
    assert result.exit_code == 2
    assert "≥ 3 models" in result.output
