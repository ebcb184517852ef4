"""Small helpers shared by the format loaders (file discovery, splits, number parsing)."""

from __future__ import annotations

import ast
import contextlib
import csv
import math
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np

from .core import FloatArray, RoutingDataset, concat
from .errors import DatasetFormatError

CONTAMINATED_FILE = "contaminated_prompts.jsonl"

_SPLIT_SUFFIXES = (("_train", "train"), ("-train", "train"), ("_test", "test"), ("-test", "test"))


def split_stem(stem: str) -> tuple[str, str | None]:
    """``("gsm8k", "test")`` for ``gsm8k-test``; ``(stem, None)`` without a split suffix."""
    for suffix, split in _SPLIT_SUFFIXES:
        if stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)], split
    return stem, None


def files_under(root: Path, suffixes: Sequence[str], what: str) -> list[Path]:
    """``root`` itself when it is a file; else every file under it (recursively, sorted)
    whose suffix is one of ``suffixes``, without RouteLLM's contamination lists."""
    if not root.is_dir():
        return [root]
    found = sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and p.suffix.lower() in suffixes and p.name != CONTAMINATED_FILE
    )
    if not found:
        raise DatasetFormatError(f"{root}: no {what} files ({', '.join(suffixes)}) under it")
    return found


def combine(parts: Sequence[RoutingDataset], name: str) -> RoutingDataset:
    """One part as is, several concatenated under ``name``."""
    return parts[0] if len(parts) == 1 else concat(parts, name=name)


def ordered_union(groups: Iterable[Iterable[str]]) -> list[str]:
    """Every name once, in the order first seen."""
    seen: dict[str, None] = {}
    for group in groups:
        for name in group:
            seen.setdefault(name, None)
    return list(seen)


def dicts_to_matrix(rows: Sequence[Mapping[str, float]], models: Sequence[str]) -> FloatArray:
    """An (rows x models) float matrix from per-row ``{model: value}``; NaN where absent."""
    col = {m: j for j, m in enumerate(models)}
    out = np.full((len(rows), len(models)), np.nan, dtype=np.float64)
    for i, row in enumerate(rows):
        for model, value in row.items():
            out[i, col[model]] = value
    return out


def number(value: object, where: str) -> float:
    """A JSON number (or bool, or null → NaN) as float; DatasetFormatError otherwise."""
    if value is None:
        return math.nan
    if isinstance(value, bool | int | float):
        return float(value)
    raise DatasetFormatError(f"{where}: expected a number or null, got {value!r}")


def csv_float(text: str) -> float:
    """A CSV cell as float: empty → NaN, ``True``/``False`` → 1/0; ValueError otherwise."""
    stripped = text.strip()
    if not stripped:
        return math.nan
    lowered = stripped.lower()
    if lowered == "true":
        return 1.0
    if lowered == "false":
        return 0.0
    return float(stripped)


@contextlib.contextmanager
def open_csv(file: Path) -> Iterator[tuple[list[str], Iterator[tuple[int, list[str]]]]]:
    """The header of a UTF-8 CSV file and its remaining rows, each with the (physical)
    line number where the record ends, for error messages."""
    limit = sys.maxsize
    while True:  # the largest field size limit this platform's C long accepts
        try:
            csv.field_size_limit(limit)
            break
        except OverflowError:
            limit //= 2
    with file.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise DatasetFormatError(f"{file}: unreadable CSV header: {exc}") from exc
        if header is None:
            raise DatasetFormatError(f"{file}: empty CSV file, expected a header row")

        def rows() -> Iterator[tuple[int, list[str]]]:
            try:
                for row in reader:
                    yield reader.line_num, row
            except (csv.Error, UnicodeDecodeError) as exc:
                raise DatasetFormatError(f"{file}:{reader.line_num}: bad CSV: {exc}") from exc

        yield header, rows()


def literal_text(raw: str) -> str:
    """The text of a cell holding a Python literal: a string, or a list of strings joined by
    a blank line (RouterBench stores prompts and responses as ``['...']``); the raw cell
    when it is not such a literal."""
    stripped = raw.strip()
    if not stripped or stripped[0] not in "[('\"":
        return raw
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in the text warn on 3.12+
            value = ast.literal_eval(stripped)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return raw
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return "\n\n".join(value)
    return raw
