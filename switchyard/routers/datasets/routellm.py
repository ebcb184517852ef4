"""RouteLLM's evaluation labels (github.com/lm-sys/RouteLLM, ``routellm/evals``).

``mmlu/mmlu_<subject>.csv`` and ``gsm8k/gsm8k_responses.csv``: a ``prompt`` column and one
True/False correctness column per model (``mistralai/Mixtral-8x7B-Instruct-v0.1``,
``gpt-4-1106-preview``); ``*_response`` columns are ignored. The task is the file stem's
first ``_``-separated word; the group is the MMLU subject (the task for other files).
All rows are evaluation data: split ``"test"``.

Decontamination follows RouteLLM's ``evals/benchmarks.py``: each folder's
``contaminated_prompts.jsonl`` holds ``{"train_prompt", "eval_prompt", "train_idx",
"eval_idx"}`` pairs found by its contamination check, and rows whose ``prompt`` equals
one of the ``eval_prompt`` values are dropped."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from ._common import CONTAMINATED_FILE, combine, csv_float, files_under, open_csv
from .core import RoutingDataset
from .errors import DatasetFormatError
from .paths import resolve_data_path

logger = logging.getLogger(__name__)

CONTAMINATION_KEY = "eval_prompt"
STRONG_MODEL = "gpt-4-1106-preview"
WEAK_MODEL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
EXPECTED = "a RouteLLM CSV (a prompt column and True/False model columns)"
_BOOLEAN_CELLS = frozenset({"true", "false"})


def routellm_models(header: list[str]) -> list[str]:
    """The model columns of a RouteLLM CSV header: all but ``prompt`` and ``*_response``."""
    return [h for h in header if h != "prompt" and not h.endswith("_response") and h]


def is_routellm_csv(header: list[str], first_row: list[str] | None) -> bool:
    """A ``prompt`` column plus model columns whose first cells read True/False."""
    if "prompt" not in header or first_row is None or len(first_row) != len(header):
        return False
    cells = [first_row[header.index(m)].strip().lower() for m in routellm_models(header)]
    return bool(cells) and all(c in _BOOLEAN_CELLS for c in cells)


def read_contaminated(folder: Path) -> frozenset[str]:
    """The ``eval_prompt`` values in ``folder/contaminated_prompts.jsonl`` (none if absent)."""
    file = folder / CONTAMINATED_FILE
    if not file.exists():
        logger.info("%s: no %s, nothing to decontaminate", folder, CONTAMINATED_FILE)
        return frozenset()
    prompts: set[str] = set()
    with file.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetFormatError(f"{file}:{lineno}: invalid JSON ({exc.msg})") from exc
            if not isinstance(item, dict) or not isinstance(item.get(CONTAMINATION_KEY), str):
                raise DatasetFormatError(
                    f'{file}:{lineno}: expected a string "{CONTAMINATION_KEY}"'
                )
            prompts.add(item[CONTAMINATION_KEY])
    return frozenset(prompts)


def _task_and_group(file: Path) -> tuple[str, str]:
    task, _, rest = file.stem.partition("_")
    return task, (rest if task == "mmlu" and rest else task)


def read_routellm_file(file: Path, contaminated: frozenset[str] = frozenset()) -> RoutingDataset:
    """One RouteLLM CSV file, without rows whose prompt is in ``contaminated``."""
    prompts: list[str] = []
    quality: list[list[float]] = []
    dropped = 0
    with open_csv(file) as (header, rows):
        if "prompt" not in header:
            raise DatasetFormatError(f"{file}: missing column prompt; expected {EXPECTED}")
        models = routellm_models(header)
        if not models:
            raise DatasetFormatError(f"{file}: no model columns; expected {EXPECTED}")
        p_col, m_cols = header.index("prompt"), [header.index(m) for m in models]
        for line, row in rows:
            if len(row) != len(header):
                raise DatasetFormatError(
                    f"{file}:{line}: {len(row)} fields, the header has {len(header)}"
                )
            if row[p_col] in contaminated:
                dropped += 1
                continue
            try:
                quality.append([csv_float(row[j]) for j in m_cols])
            except ValueError as exc:
                raise DatasetFormatError(f"{file}:{line}: not True/False ({exc})") from exc
            prompts.append(row[p_col])
    return _dataset(file, prompts, models, quality, dropped)


def _dataset(
    file: Path, prompts: list[str], models: list[str], quality: list[list[float]], dropped: int
) -> RoutingDataset:
    task, group = _task_and_group(file)
    n = len(prompts)
    meta: dict[str, object] = {
        "source_format": "routellm",
        "sources": [str(file)],
        "dropped_contaminated": {str(file): dropped} if dropped else {},
    }
    if STRONG_MODEL in models and WEAK_MODEL in models:
        meta.update(strong_model=STRONG_MODEL, weak_model=WEAK_MODEL)
    return RoutingDataset(
        prompts=prompts,
        models=models,
        quality=np.array(quality, dtype=np.float64).reshape(n, len(models)),
        tasks=[task] * n,
        groups=[group] * n,
        splits=["test"] * n,
        name="routellm",
        meta=meta,
    )


def load_routellm(path: str | Path, *, decontaminate: bool = True) -> RoutingDataset:
    """One RouteLLM CSV file, or every ``.csv`` under a folder (``routing/routellm`` loads
    MMLU and GSM8K); with ``decontaminate``, each file's folder's contamination list applies.
    ``meta["dropped_contaminated"]`` maps each file to the rows dropped from it."""
    files = files_under(resolve_data_path(path), (".csv",), "RouteLLM")
    lists: dict[Path, frozenset[str]] = {}
    parts = []
    for file in files:
        if decontaminate and file.parent not in lists:
            lists[file.parent] = read_contaminated(file.parent)
        parts.append(read_routellm_file(file, lists.get(file.parent, frozenset())))
    return combine(parts, "routellm")
