"""What the ``switchyard`` command groups share: the error exit, the option types of the
offline router commands, and loading routing data, the embedder and a trained router.

Command modules import this module and never each other. Everything heavy (numpy,
onnxruntime, torch, the embedding package) is imported inside the functions, so that
``switchyard --help`` stays fast."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from switchyard.routers.datasets.core import RoutingDataset
    from switchyard.routers.embedding import Embedder
    from switchyard.routers.pipeline import RoutingPipeline

DataOpt = Annotated[
    list[str],
    typer.Option(
        "--data",
        help="Dataset file or folder (RouterDC JSON, RouterBench CSV, RouteLLM CSV, generic "
        "JSONL); a relative path not found here is looked up in --data-dir. Repeatable.",
    ),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="SWITCHYARD_DATA_DIR",
        help="Folder of the public routing data.",
        show_default="../shared/data beside the repository",
    ),
]
CacheOpt = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        envvar="SWITCHYARD_CACHE_DIR",
        help="Embedder and embedding cache.",
        show_default="~/.cache/switchyard",
    ),
]
EmbedderOpt = Annotated[
    str,
    typer.Option(
        "--embedder",
        help="Prompt embedder to train on: static (MiniLM distilled to a token table, ~0.1 ms "
        "a prompt), onnx-int8 or onnx-fp32 (MiniLM itself, ~10 ms), st-fp32 (the reference).",
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` to standard error; return the exit to raise (code 2: a bad
    argument or input, the shell's usage-error convention)."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def load_data(
    paths: list[str], prices: Path | None, root: Path | None, split: str = "all"
) -> RoutingDataset:
    """The datasets, concatenated; only the rows of ``split`` when the data has that split."""
    from switchyard.routers.datasets import load_datasets, resolve_data_path

    try:
        data = load_datasets([resolve_data_path(p, root) for p in paths], prices=prices)
    except (OSError, ValueError) as err:
        raise fail(str(err)) from None
    if split != "all" and data.splits and split in data.splits:
        data = data.where(split=split)
    return data


def load_embedder(cache_dir: Path | None, kind: str = "static") -> Embedder:
    """A prompt embedder from the cache (built there first if missing); exit 2 saying why
    when it cannot load."""
    from switchyard.routers.embedding import load_embedder as load

    try:
        return load(kind, cache=cache_dir)
    except (OSError, ImportError, RuntimeError, ValueError) as err:
        raise fail(f"cannot load the embedder: {err}") from None


def load_pipeline(path: Path, cache_dir: Path | None) -> RoutingPipeline:
    """The trained router saved in ``path``; exit 2 when it is not one or does not match
    the embedder."""
    from switchyard.routers.embedding import EmbedderMismatchError, kind_of
    from switchyard.routers.models import RouterFormatError
    from switchyard.routers.pipeline import RoutingPipeline

    try:
        kind = kind_of(RoutingPipeline.recorded_embedder(path))
        return RoutingPipeline.load(path, load_embedder(cache_dir, kind), cache=cache_dir)
    except (RouterFormatError, EmbedderMismatchError, OSError, KeyError, ValueError) as err:
        raise fail(f"cannot load router {path}: {err}") from None
