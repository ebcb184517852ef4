"""RouterDC's per-query scores (github.com/shuhao02/RouterDC, ``datasets/split2_model7``).

Each file is a JSON list of ``{"question": str, "scores": {model: float}}`` (train files of
the ``_cluster`` variant also carry ``cluster_id``, ignored). The task is the file stem
without its ``_train``/``_test``/``-train``/``-test`` suffix; files without one (the
out-of-distribution sets) are test-only.

Score meaning follows RouterDC's own evaluation code: on "probability" tasks the score is
the model's confidence in its answer when that answer was right and 0 otherwise, so the
quality is 1.0 for a score > 0 and 0.0 else; on "multi_attempt" tasks the score is the
fraction of 10 samples that were correct and is kept as is. Tasks in neither list keep
their raw scores (kind ``"raw"``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._common import combine, dicts_to_matrix, files_under, number, ordered_union, split_stem
from .core import RoutingDataset
from .errors import DatasetFormatError
from .paths import resolve_data_path

logger = logging.getLogger(__name__)

PROBABILITY = "probability"
MULTI_ATTEMPT = "multi_attempt"
RAW = "raw"

PROBABILITY_TASKS = frozenset(
    {"mmlu", "cmmlu", "arc_challenge", "arc_easy", "ceval", "math_prealgebra"}
)
MULTI_ATTEMPT_TASKS = frozenset({"gsm8k", "humaneval", "mbpp", "javascript"})

EXPECTED = 'a JSON list of {"question": str, "scores": {model: number}} objects (RouterDC)'


def score_kind(task: str) -> str:
    """``"probability"``, ``"multi_attempt"`` or ``"raw"`` for a RouterDC task name."""
    key = task.lower()
    if key in PROBABILITY_TASKS:
        return PROBABILITY
    if key in MULTI_ATTEMPT_TASKS:
        return MULTI_ATTEMPT
    return RAW


def read_json(file: Path) -> object:
    """A JSON file's content; DatasetFormatError (with the line) when it is not JSON."""
    try:
        with file.open(encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(
            f"{file}:{exc.lineno}: invalid JSON ({exc.msg}), expected {EXPECTED}"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(f"{file}: not UTF-8 text, expected {EXPECTED}") from exc


def looks_like_routerdc(data: object) -> bool:
    """Whether parsed JSON has RouterDC's shape (judged by its first record)."""
    if not isinstance(data, list):
        return False
    return not data or (isinstance(data[0], dict) and {"question", "scores"} <= data[0].keys())


def _records(data: object, file: Path) -> tuple[list[str], list[dict[str, float]]]:
    """Questions and per-model raw scores, validated record by record."""
    if not isinstance(data, list):
        raise DatasetFormatError(f"{file}: top level is {type(data).__name__}, expected {EXPECTED}")
    questions: list[str] = []
    scores: list[dict[str, float]] = []
    for i, item in enumerate(data):
        where = f"{file}: record {i}"
        if not isinstance(item, dict):
            raise DatasetFormatError(f"{where}: expected an object, got {type(item).__name__}")
        question, raw = item.get("question"), item.get("scores")
        if not isinstance(question, str):
            raise DatasetFormatError(f'{where}: expected a string "question"')
        if not isinstance(raw, dict):
            raise DatasetFormatError(f'{where}: expected a "scores" object {{model: number}}')
        questions.append(question)
        scores.append({str(m): number(v, f"{where}, model {m!r}") for m, v in raw.items()})
    return questions, scores


def routerdc_from_records(
    data: object, file: Path, score_kinds: Mapping[str, str] | None = None
) -> RoutingDataset:
    """A dataset from one RouterDC file's parsed JSON."""
    questions, scores = _records(data, file)
    task, split = split_stem(file.stem)
    kind = (score_kinds or {}).get(task) or score_kind(task)
    if kind not in (PROBABILITY, MULTI_ATTEMPT, RAW):
        raise ValueError(f"unknown score kind {kind!r} for task {task!r}")
    if kind == RAW:
        logger.info("%s: task %r has no known score kind, keeping raw scores", file, task)
    models = ordered_union(scores)
    quality = dicts_to_matrix(scores, models)
    if kind == PROBABILITY:
        quality = np.where(np.isnan(quality), np.nan, (quality > 0).astype(np.float64))
    n = len(questions)
    return RoutingDataset(
        prompts=questions,
        models=models,
        quality=quality,
        tasks=[task] * n,
        splits=[split or "test"] * n,
        name="routerdc",
        meta={"source_format": "routerdc", "sources": [str(file)], "score_kind": {task: kind}},
    )


def load_routerdc(
    path: str | Path, *, score_kinds: Mapping[str, str] | None = None
) -> RoutingDataset:
    """One RouterDC JSON file, or every ``.json`` file under a folder (sorted).

    ``score_kinds`` overrides the kind per task (``"probability"``, ``"multi_attempt"``,
    ``"raw"``); ``meta["score_kind"]`` records the kind used for each task."""
    files = files_under(resolve_data_path(path), (".json",), "RouterDC")
    parts = [routerdc_from_records(read_json(f), f, score_kinds) for f in files]
    return combine(parts, "routerdc")
