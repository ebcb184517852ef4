"""Per-model list prices: ``{model: {input_per_mtok: float, output_per_mtok: float}}``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetFormatError
from .paths import resolve_data_path

_FIELDS = ("input_per_mtok", "output_per_mtok")


@dataclass(frozen=True)
class Price:
    """USD per million input (prompt) and output (completion) tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def __post_init__(self) -> None:
        for name in _FIELDS:
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")

    def cost(self, prompt_tokens: float, output_tokens: float) -> float:
        """The USD cost of one call with these token counts."""
        return (prompt_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


def _read(file: Path) -> object:
    text = file.read_text(encoding="utf-8")
    if file.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from exc
    import yaml  # only prices files need it

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DatasetFormatError(f"{file}: invalid YAML ({exc})") from exc


def _price(model: str, entry: object, file: Path) -> Price:
    where = f"{file}: model {model!r}"
    if not isinstance(entry, Mapping):
        raise DatasetFormatError(f"{where}: expected a mapping with {' and '.join(_FIELDS)}")
    values: list[float] = []
    for name in _FIELDS:
        value = entry.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DatasetFormatError(f"{where}: {name} must be a number (USD per million tokens)")
        if not math.isfinite(value) or value < 0:
            raise DatasetFormatError(f"{where}: {name} must be finite and >= 0, got {value!r}")
        values.append(float(value))
    return Price(input_per_mtok=values[0], output_per_mtok=values[1])


def load_prices(path: str | Path) -> dict[str, Price]:
    """Prices from a YAML or JSON file ``{model: {input_per_mtok, output_per_mtok}}``
    (USD per million tokens; other keys in an entry are ignored)."""
    file = resolve_data_path(path)
    data = _read(file)
    if not isinstance(data, Mapping):
        raise DatasetFormatError(
            f"{file}: expected a mapping {{model: {{input_per_mtok, output_per_mtok}}}}"
        )
    return {str(model): _price(str(model), entry, file) for model, entry in data.items()}
