"""One entry point for every supported format: ``load_dataset`` detects it per file.

- ``.json``: a list of ``{"question", "scores"}`` objects → RouterDC (:mod:`.routerdc`)
- ``.csv`` with an ``eval_name`` column → RouterBench (:mod:`.routerbench`)
- ``.csv`` with a ``prompt`` column and True/False model columns → RouteLLM
  (:mod:`.routellm`, decontaminated with the folder's ``contaminated_prompts.jsonl``)
- ``.jsonl`` → the generic format (:mod:`.jsonl`)

A folder loads every supported file under it (recursively, sorted), skipping RouteLLM's
contamination lists and files in no supported format."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from . import routellm
from ._common import CONTAMINATED_FILE, combine, open_csv
from .core import RoutingDataset, concat
from .errors import DatasetFormatError, UnknownFormatError
from .jsonl import read_jsonl_file
from .paths import resolve_data_path
from .prices import Price, load_prices
from .routerbench import is_routerbench_header, read_routerbench_file
from .routerdc import looks_like_routerdc, read_json, routerdc_from_records

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES = (".json", ".csv", ".jsonl")
ROUTERDC, ROUTERBENCH, ROUTELLM, JSONL = "routerdc", "routerbench", "routellm", "jsonl"
_EXPECTED = {
    ".json": 'a JSON list of {"question", "scores"} objects (RouterDC)',
    ".csv": (
        "a RouterBench CSV (with an eval_name column) or a RouteLLM CSV "
        "(a prompt column and True/False model columns)"
    ),
}


def _csv_format(file: Path) -> str | None:
    with open_csv(file) as (header, rows):
        if is_routerbench_header(header):
            return ROUTERBENCH
        first = next(rows, (0, None))[1]
        return ROUTELLM if routellm.is_routellm_csv(header, first) else None


def _unknown(file: Path) -> UnknownFormatError:
    expected = _EXPECTED.get(file.suffix.lower(), "a .json, .csv or .jsonl routing data file")
    return UnknownFormatError(f"{file}: not a supported routing data format; expected {expected}")


def detect_format(path: str | Path) -> str:
    """``"routerdc"``, ``"routerbench"``, ``"routellm"`` or ``"jsonl"`` for one file;
    DatasetFormatError when it is none of them."""
    file = resolve_data_path(path)
    suffix = file.suffix.lower()
    found: str | None = None
    if suffix == ".json":
        found = ROUTERDC if looks_like_routerdc(read_json(file)) else None
    elif suffix == ".csv":
        found = _csv_format(file)
    elif suffix == ".jsonl" and file.name != CONTAMINATED_FILE:
        found = JSONL
    if found is None:
        raise _unknown(file)
    return found


def _load_file(file: Path, prices: Mapping[str, Price] | None) -> RoutingDataset:
    """One file in whichever format it is in (RouterDC's JSON is parsed only once)."""
    suffix = file.suffix.lower()
    if suffix == ".json":
        data = read_json(file)
        if not looks_like_routerdc(data):
            raise _unknown(file)
        return routerdc_from_records(data, file)
    kind = detect_format(file)
    if kind == ROUTERBENCH:
        return read_routerbench_file(file)
    if kind == ROUTELLM:
        return routellm.read_routellm_file(file, routellm.read_contaminated(file.parent))
    return read_jsonl_file(file, prices)


def _folder_files(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES and p.name != CONTAMINATED_FILE
    )


def _progress(files: list[Path], enabled: bool, folder: Path) -> Iterable[Path]:
    if not enabled:
        return files
    tqdm = importlib.import_module("tqdm").tqdm  # imported only when a bar is asked for
    bar: Iterable[Path] = tqdm(files, desc=f"loading {folder.name}", unit="file")
    return bar


def _load_folder(
    folder: Path, prices: Mapping[str, Price] | None, progress: bool
) -> RoutingDataset:
    parts: list[RoutingDataset] = []
    for file in _progress(_folder_files(folder), progress, folder):
        try:
            parts.append(_load_file(file, prices))
        except UnknownFormatError:  # files in a known format but malformed still raise
            logger.info("skipping %s: not a supported routing data format", file)
    if not parts:
        raise DatasetFormatError(
            f"{folder}: no routing data files under it (RouterDC .json, RouterBench or "
            "RouteLLM .csv, generic .jsonl)"
        )
    return combine(parts, folder.name)


def load_dataset(
    path: str | Path, *, prices: str | Path | None = None, progress: bool = False
) -> RoutingDataset:
    """A file or a folder of routing data in any supported format (see the module doc).

    ``path`` is resolved with :func:`resolve_data_path` (as given, else in the data dir);
    ``prices`` names a prices file (:func:`load_prices`), kept in ``meta["prices"]``;
    ``progress`` shows a bar over a folder's files."""
    root = resolve_data_path(path)
    price_table = None if prices is None else load_prices(prices)
    if root.is_dir():
        dataset = _load_folder(root, price_table, progress)
    else:
        dataset = _load_file(root, price_table)
    if price_table is not None:
        dataset = replace(dataset, meta={**dataset.meta, "prices": price_table})
    return dataset


def load_datasets(
    paths: Sequence[str | Path], *, prices: str | Path | None = None, progress: bool = False
) -> RoutingDataset:
    """Several files or folders (see :func:`load_dataset`), concatenated in order."""
    if isinstance(paths, str | Path):
        raise TypeError("load_datasets takes a sequence of paths; use load_dataset for one")
    if not paths:
        raise ValueError("load_datasets needs at least one path")
    return concat([load_dataset(p, prices=prices, progress=progress) for p in paths])
