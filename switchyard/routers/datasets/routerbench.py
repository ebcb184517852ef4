"""RouterBench zero-shot CSVs (as redistributed in RouterDC's ``datasets/routerbench_zs``).

Columns: an unnamed index, ``sample_id``, ``prompt`` (a Python-list literal of the prompt
text), ``eval_name`` (the task), one column per model with its 0/1 correctness,
``<model>|model_response``, ``<model>|total_cost`` (USD) and ``oracle_model_to_route_to``.
The split comes from the file name (``_train``/``_test``; ``""`` without a suffix).

``output_tokens`` is an estimate: the response text's length in characters divided by 4,
rounded (about 4 characters per token for English BPE vocabularies); NaN where there is
no response."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._common import combine, csv_float, files_under, literal_text, open_csv, split_stem
from .core import RoutingDataset
from .errors import DatasetFormatError
from .paths import resolve_data_path

CHARS_PER_TOKEN = 4.0
RESPONSE_SUFFIX = "|model_response"
COST_SUFFIX = "|total_cost"
NON_MODEL_COLUMNS = frozenset({"", "sample_id", "prompt", "eval_name", "oracle_model_to_route_to"})
EXPECTED = (
    "a RouterBench CSV (columns prompt, eval_name, one 0/1 column per model, "
    "<model>|total_cost, <model>|model_response)"
)


@dataclass(frozen=True)
class _Columns:
    prompt: int
    task: int
    models: list[str]
    quality: list[int]
    cost: list[int | None]
    response: list[int | None]


def is_routerbench_header(header: list[str]) -> bool:
    return "eval_name" in header


def _columns(header: list[str], file: Path) -> _Columns:
    missing = [c for c in ("prompt", "eval_name") if c not in header]
    if missing:
        raise DatasetFormatError(
            f"{file}: missing column(s) {', '.join(missing)}; expected {EXPECTED}"
        )
    models = [h for h in header if h not in NON_MODEL_COLUMNS and "|" not in h]
    if not models:
        raise DatasetFormatError(f"{file}: no model columns; expected {EXPECTED}")
    index = {h: i for i, h in enumerate(header)}
    return _Columns(
        prompt=index["prompt"],
        task=index["eval_name"],
        models=models,
        quality=[index[m] for m in models],
        cost=[index.get(m + COST_SUFFIX) for m in models],
        response=[index.get(m + RESPONSE_SUFFIX) for m in models],
    )


def _estimate_tokens(cell: str) -> float:
    if not cell.strip():
        return math.nan
    return float(round(len(literal_text(cell)) / CHARS_PER_TOKEN))


def read_routerbench_file(file: Path) -> RoutingDataset:
    """One RouterBench CSV file."""
    task_default, split = split_stem(file.stem)
    prompts: list[str] = []
    tasks: list[str] = []
    quality: list[list[float]] = []
    cost: list[list[float]] = []
    tokens: list[list[float]] = []
    with open_csv(file) as (header, rows):
        cols = _columns(header, file)
        for line, row in rows:
            if len(row) != len(header):
                raise DatasetFormatError(
                    f"{file}:{line}: {len(row)} fields, the header has {len(header)}"
                )
            try:
                quality.append([csv_float(row[j]) for j in cols.quality])
                cost.append([math.nan if j is None else csv_float(row[j]) for j in cols.cost])
            except ValueError as exc:
                raise DatasetFormatError(f"{file}:{line}: not a number ({exc})") from exc
            tokens.append(
                [math.nan if j is None else _estimate_tokens(row[j]) for j in cols.response]
            )
            prompts.append(literal_text(row[cols.prompt]))
            tasks.append(row[cols.task] or task_default)
    n, m = len(prompts), len(cols.models)
    return RoutingDataset(
        prompts=prompts,
        models=cols.models,
        quality=np.array(quality, dtype=np.float64).reshape(n, m),
        tasks=tasks,
        cost=np.array(cost, dtype=np.float64).reshape(n, m),
        splits=[split or ""] * n,
        output_tokens=np.array(tokens, dtype=np.float64).reshape(n, m),
        name="routerbench",
        meta={
            "source_format": "routerbench",
            "sources": [str(file)],
            "output_tokens": f"estimated as round(len(response) / {CHARS_PER_TOKEN:g})",
        },
    )


def load_routerbench(path: str | Path) -> RoutingDataset:
    """One RouterBench CSV file, or every ``.csv`` file under a folder (sorted)."""
    files = files_under(resolve_data_path(path), (".csv",), "RouterBench")
    return combine([read_routerbench_file(f) for f in files], "routerbench")
