"""The generic format: one JSON object per line,

``{"prompt": str, "scores": {model: q}, "costs": {model: usd}?, "output_tokens":
{model: n}?, "task": str?, "group": str?, "split": str?, "id": ...?}``.

Models are the union over lines (scores first, then costs, output tokens) in first-seen
order; quality, cost and output tokens are NaN where a line lacks a model. ``task``
defaults to the file stem (without a split suffix), ``split`` to the file name's suffix
or ``""``; ``id`` is accepted and not kept. Cost is None when no line has costs and no
prices are given; with prices, missing costs stay NaN (to be estimated from
``meta["prices"]``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._common import combine, dicts_to_matrix, files_under, number, ordered_union, split_stem
from .core import RoutingDataset
from .errors import DatasetFormatError
from .paths import resolve_data_path
from .prices import Price

EXPECTED = 'one JSON object per line with "prompt" (string) and "scores" ({model: number})'


@dataclass(frozen=True)
class _Line:
    prompt: str
    scores: dict[str, float]
    costs: dict[str, float] | None
    output_tokens: dict[str, float] | None
    task: str | None
    group: str | None
    split: str | None


def _numbers(item: dict[str, object], key: str, where: str) -> dict[str, float] | None:
    raw = item.get(key)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise DatasetFormatError(f'{where}: "{key}" must be an object {{model: number}}')
    return {str(m): number(v, f'{where}: "{key}"[{m!r}]') for m, v in raw.items()}


def _text(item: dict[str, object], key: str, where: str) -> str | None:
    value = item.get(key)
    if value is not None and not isinstance(value, str):
        raise DatasetFormatError(f'{where}: "{key}" must be a string')
    return value


def _parse_line(text: str, where: str) -> _Line:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{where}: invalid JSON ({exc.msg}); expected {EXPECTED}") from exc
    if not isinstance(item, dict):
        raise DatasetFormatError(f"{where}: expected a JSON object; expected {EXPECTED}")
    prompt = item.get("prompt")
    if not isinstance(prompt, str):
        raise DatasetFormatError(f'{where}: missing or non-string "prompt"; expected {EXPECTED}')
    scores = _numbers(item, "scores", where)
    if scores is None:
        raise DatasetFormatError(f'{where}: missing "scores"; expected {EXPECTED}')
    return _Line(
        prompt=prompt,
        scores=scores,
        costs=_numbers(item, "costs", where),
        output_tokens=_numbers(item, "output_tokens", where),
        task=_text(item, "task", where),
        group=_text(item, "group", where),
        split=_text(item, "split", where),
    )


def _read_lines(file: Path) -> list[_Line]:
    lines: list[_Line] = []
    try:
        with file.open(encoding="utf-8") as fh:
            for lineno, text in enumerate(fh, start=1):
                if text.strip():
                    lines.append(_parse_line(text, f"{file}:{lineno}"))
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(f"{file}: not UTF-8 text; expected {EXPECTED}") from exc
    return lines


def read_jsonl_file(file: Path, prices: Mapping[str, Price] | None = None) -> RoutingDataset:
    """One generic JSONL file."""
    lines = _read_lines(file)
    default_task, default_split = split_stem(file.stem)
    models = ordered_union(
        [
            *(ln.scores for ln in lines),
            *(ln.costs or {} for ln in lines),
            *(ln.output_tokens or {} for ln in lines),
        ]
    )
    has_costs = prices is not None or any(ln.costs is not None for ln in lines)
    has_tokens = any(ln.output_tokens is not None for ln in lines)
    has_groups = any(ln.group is not None for ln in lines)
    tasks = [ln.task or default_task for ln in lines]
    meta: dict[str, object] = {"source_format": "jsonl", "sources": [str(file)]}
    if prices is not None:
        meta["prices"] = dict(prices)
    return RoutingDataset(
        prompts=[ln.prompt for ln in lines],
        models=models,
        quality=dicts_to_matrix([ln.scores for ln in lines], models),
        tasks=tasks,
        cost=dicts_to_matrix([ln.costs or {} for ln in lines], models) if has_costs else None,
        groups=[ln.group or t for ln, t in zip(lines, tasks, strict=True)] if has_groups else None,
        splits=[ln.split or default_split or "" for ln in lines],
        output_tokens=(
            dicts_to_matrix([ln.output_tokens or {} for ln in lines], models)
            if has_tokens
            else None
        ),
        name=file.stem,
        meta=meta,
    )


def load_jsonl(path: str | Path, prices: Mapping[str, Price] | None = None) -> RoutingDataset:
    """One generic JSONL file, or every ``.jsonl`` under a folder (sorted).

    With ``prices``, costs a line lacks stay NaN and the prices go to ``meta["prices"]``."""
    files = files_under(resolve_data_path(path), (".jsonl",), "JSONL")
    return combine([read_jsonl_file(f, prices) for f in files], "jsonl")
