"""Model outputs: the input of label-free training (``switchyard train --label-free``).

Several models answered the same prompts; nobody scored the answers. Two sources:

- **RouterBench CSVs** (:mod:`.routerbench`): each ``<model>|model_response`` column holds
  the answer text; the 0/1 model columns are kept as the *true* quality, for reports only.
- **The outputs JSONL format**, one JSON object per line::

      {"prompt": str | [chat messages], "outputs": {model: str | null},
       "costs": {model: usd}?, "output_tokens": {model: n}?, "scores": {model: q}?,
       "task": str?, "split": str?, "id": ...?}

  ``prompt`` may be the chat ``messages`` of the request (the router embeds them as the
  gateway does, :func:`~switchyard.routers.embedding.prompt_text`). ``outputs`` maps each
  model that answered to its answer text (``null`` or absent: it did not answer). ``scores``
  is optional and only used to report how well the estimate tracks a known truth. ``task``
  defaults to the file stem, ``split`` to the file name's suffix (``_train``/``_test``).
  This is the shape ``switchyard outcomes export`` is meant to write for shadowed requests.

A missing or blank answer is ``None`` in :attr:`ModelOutputs.texts`."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._common import (
    dicts_to_matrix,
    files_under,
    literal_text,
    number,
    open_csv,
    ordered_union,
    split_stem,
)
from .core import FloatArray, RoutingDataset
from .errors import DatasetFormatError
from .paths import resolve_data_path
from .routerbench import RESPONSE_SUFFIX, is_routerbench_header, read_routerbench_file

EXPECTED = (
    'one JSON object per line with "prompt" (string or chat messages) and "outputs" '
    "({model: answer text})"
)


@dataclass(frozen=True)
class ModelOutputs:
    """Routing data (prompts, models, costs; quality NaN where unknown) plus each model's
    answer text per prompt: ``texts[i][j]`` is model j's answer to prompt i, or None."""

    data: RoutingDataset
    texts: list[list[str | None]]

    def __post_init__(self) -> None:
        m = len(self.data.models)
        if len(self.texts) != len(self.data) or any(len(row) != m for row in self.texts):
            raise ValueError(f"texts must be {len(self.data)} rows of {m} answers")

    def __len__(self) -> int:
        return len(self.data)

    def subset(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> ModelOutputs:
        """The rows at these integer indices, in this order."""
        idx = [int(i) for i in rows]
        return ModelOutputs(self.data.subset(np.asarray(idx, dtype=np.int64)),
                            [self.texts[i] for i in idx])  # fmt: skip

    def where(self, *, split: str) -> ModelOutputs:
        """The rows of one split."""
        splits = self.data.splits or [""] * len(self)
        return self.subset([i for i, s in enumerate(splits) if s == split])


def _answer(text: str) -> str | None:
    return text if text.strip() else None


def read_routerbench_outputs(file: Path) -> ModelOutputs:
    """One RouterBench CSV: the dataset as :func:`read_routerbench_file` reads it, plus the
    ``<model>|model_response`` texts (None where a model has no response column or cell)."""
    data = read_routerbench_file(file)
    texts: list[list[str | None]] = []
    with open_csv(file) as (header, rows):
        index = {h: i for i, h in enumerate(header)}
        cols = [index.get(m + RESPONSE_SUFFIX) for m in data.models]
        for _, row in rows:
            texts.append([None if j is None else _answer(literal_text(row[j])) for j in cols])
    return ModelOutputs(data, texts)


def _prompt(value: object, where: str) -> str:
    from switchyard.routers.embedding.text import prompt_text  # tokenizers: only when used

    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(m, Mapping) for m in value):
        try:
            return prompt_text(value)
        except TypeError as err:
            raise DatasetFormatError(f"{where}: bad chat messages: {err}") from None
    raise DatasetFormatError(f'{where}: "prompt" must be a string or chat messages')


def _mapping(item: Mapping[str, object], key: str, where: str) -> Mapping[str, object]:
    raw = item.get(key)
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise DatasetFormatError(f'{where}: "{key}" must be an object keyed by model')
    return raw


@dataclass(frozen=True)
class _Line:
    prompt: str
    outputs: dict[str, str | None]
    numbers: dict[str, dict[str, float]]  # scores, costs, output_tokens
    task: str | None
    split: str | None


def _line(text: str, where: str) -> _Line:
    try:
        item = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetFormatError(f"{where}: invalid JSON ({exc.msg}); expected {EXPECTED}") from exc
    if not isinstance(item, dict) or "outputs" not in item or "prompt" not in item:
        raise DatasetFormatError(f"{where}: expected {EXPECTED}")
    outputs = _mapping(item, "outputs", where)
    if not all(v is None or isinstance(v, str) for v in outputs.values()):
        raise DatasetFormatError(f'{where}: "outputs" values must be strings or null')
    labels = {}
    for key in ("task", "split"):
        labels[key] = item.get(key)
        if labels[key] is not None and not isinstance(labels[key], str):
            raise DatasetFormatError(f'{where}: "{key}" must be a string')
    numbers = {
        key: {str(m): number(v, f'{where}: "{key}"[{m!r}]')
              for m, v in _mapping(item, key, where).items()}
        for key in ("scores", "costs", "output_tokens")
    }  # fmt: skip
    return _Line(
        prompt=_prompt(item["prompt"], where),
        outputs={str(m): (None if v is None else _answer(str(v))) for m, v in outputs.items()},
        numbers=numbers,
        task=labels["task"],
        split=labels["split"],
    )


def read_outputs_jsonl(file: Path) -> ModelOutputs:
    """One outputs JSONL file (see the module docstring)."""
    lines: list[_Line] = []
    try:
        with file.open(encoding="utf-8") as fh:
            for lineno, text in enumerate(fh, start=1):
                if text.strip():
                    lines.append(_line(text, f"{file}:{lineno}"))
    except UnicodeDecodeError as exc:
        raise DatasetFormatError(f"{file}: not UTF-8 text; expected {EXPECTED}") from exc
    if not lines:
        raise DatasetFormatError(f"{file}: no lines; expected {EXPECTED}")
    models = ordered_union(
        [*(ln.outputs for ln in lines), *(ln.numbers["scores"] for ln in lines),
         *(ln.numbers["costs"] for ln in lines)]
    )  # fmt: skip

    def matrix(key: str) -> FloatArray | None:
        rows = [ln.numbers[key] for ln in lines]
        return dicts_to_matrix(rows, models) if any(rows) or key == "scores" else None

    task, split = split_stem(file.stem)
    data = RoutingDataset(
        prompts=[ln.prompt for ln in lines],
        models=models,
        quality=dicts_to_matrix([ln.numbers["scores"] for ln in lines], models),
        tasks=[ln.task or task for ln in lines],
        cost=matrix("costs"),
        splits=[ln.split or split or "" for ln in lines],
        output_tokens=matrix("output_tokens"),
        name=file.stem,
        meta={"source_format": "outputs-jsonl", "sources": [str(file)]},
    )
    texts = [[ln.outputs.get(m) for m in models] for ln in lines]
    return ModelOutputs(data, texts)


def _read_file(file: Path) -> ModelOutputs:
    suffix = file.suffix.lower()
    if suffix == ".jsonl":
        return read_outputs_jsonl(file)
    if suffix == ".csv":
        with open_csv(file) as (header, _):
            routerbench = is_routerbench_header(header)
        if routerbench:
            return read_routerbench_outputs(file)
    raise DatasetFormatError(
        f"{file}: no model outputs here; expected a RouterBench CSV or {EXPECTED}"
    )


def concat_outputs(parts: Sequence[ModelOutputs]) -> ModelOutputs:
    """Rows of all parts in order, over the union of their models (None where a part lacks
    one)."""
    from .core import concat

    if len(parts) == 1:
        return parts[0]
    data = concat([p.data for p in parts])
    texts: list[list[str | None]] = []
    for part in parts:
        col = {m: j for j, m in enumerate(part.data.models)}
        for row in part.texts:
            texts.append([row[col[m]] if m in col else None for m in data.models])
    return ModelOutputs(data, texts)


def load_outputs(paths: Sequence[str | Path], root: Path | None = None) -> ModelOutputs:
    """Model outputs from RouterBench CSVs and/or outputs JSONL files (a folder: every
    ``.csv``/``.jsonl`` under it, sorted); relative paths not found resolve under ``root``."""
    files = [
        f
        for p in paths
        for f in files_under(resolve_data_path(p, root), (".csv", ".jsonl"), "model outputs")
    ]
    if not files:
        raise DatasetFormatError("no model outputs given")
    return concat_outputs([_read_file(f) for f in files])
