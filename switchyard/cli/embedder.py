"""``switchyard embedder``: export the ONNX prompt embedder into the cache, show what is there."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from switchyard.cli.common import fail

embedder_app = typer.Typer(
    help="The prompt embedders of the learned routers (all-MiniLM-L6-v2 on ONNX Runtime, and "
    "the static table distilled from it).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

CacheDirOption = Annotated[
    Path | None,
    typer.Option(
        "--cache-dir",
        envvar="SWITCHYARD_CACHE_DIR",
        help="Cache directory.",
        show_default="~/.cache/switchyard",
    ),
]

SAMPLE_PROMPTS = (
    "What is the capital of France?",
    "Write a Python function that returns the n-th Fibonacci number using memoization.",
    "Janet has 3 apples and buys twice as many. How many apples does she have now?",
    "Summarise the causes of the First World War in three bullet points.",
    "Translate into German: the meeting has been moved to Thursday afternoon.",
    "Prove that the square root of 2 is irrational.",
    "hi",
    "Which of the following is a prime number? A. 21 B. 27 C. 29 D. 33",
)


def _mib(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:8.1f} MiB"


@embedder_app.command("export")
def export_command(
    cache: CacheDirOption = None,
    force: Annotated[bool, typer.Option("--force", help="Export again even if present.")] = False,
    static: Annotated[
        bool,
        typer.Option(
            "--static/--no-static",
            help="Also distil the static embedder (the default routers') from the fp32 graph.",
        ),
    ] = True,
) -> None:
    """Export all-MiniLM-L6-v2 to ONNX (fp32, int8) into the cache, once (train extra), and
    distil the static token table from it (about 10 s)."""
    from switchyard.routers.embedding.cache import cache_dir
    from switchyard.routers.embedding.export import export_onnx, model_dir, read_manifest
    from switchyard.routers.embedding.static import distill_static

    root = cache if cache is not None else cache_dir()
    before = read_manifest(model_dir(root))
    try:
        directory = export_onnx(root, force=force, progress=typer.echo)
    except ImportError as err:
        raise fail(str(err)) from None
    manifest = read_manifest(directory) or {}
    if before is not None and before.get("created") == manifest.get("created"):
        typer.echo(f"already exported in {directory} (use --force to export again)")
    for name in sorted(manifest.get("files", {})):
        typer.echo(f"  {name:<18} {_mib(directory / name)}")
    mean, low = _int8_agreement(root)
    typer.echo(
        f"int8 vs fp32 cosine on {len(SAMPLE_PROMPTS)} sample prompts: "
        f"mean {mean:.4f}, min {low:.4f}"
    )
    if static:
        table = distill_static(root, force=force, progress=typer.echo)
        typer.echo(f"static embedder in {table}")


def _int8_agreement(root: Path) -> tuple[float, float]:
    """Mean and minimum cosine between the int8 and fp32 embeddings of the sample prompts."""
    import numpy as np

    from switchyard.routers.embedding.onnx import OnnxEmbedder

    int8 = OnnxEmbedder(root, variant="int8").embed(SAMPLE_PROMPTS)
    fp32 = OnnxEmbedder(root, variant="fp32").embed(SAMPLE_PROMPTS)
    cosines = np.sum(int8 * fp32, axis=1)
    return float(cosines.mean()), float(cosines.min())


@embedder_app.command("info")
def info_command(cache: CacheDirOption = None) -> None:
    """Show the cache directory, the exported embedder and its files, and cached embeddings."""
    from switchyard.routers.embedding.cache import EMBEDDINGS_DIR, cache_dir
    from switchyard.routers.embedding.export import model_dir, read_manifest
    from switchyard.routers.embedding.onnx import embedder_name

    root = cache if cache is not None else cache_dir()
    directory = model_dir(root)
    typer.echo(f"cache dir:  {root}")
    manifest = read_manifest(directory)
    if manifest is None:
        typer.echo(f"embedder:   not exported (run `switchyard embedder export`); {directory}")
        raise typer.Exit(1)
    typer.echo(f"model dir:  {directory}")
    typer.echo(f"names:      {embedder_name('int8')}, {embedder_name('fp32')}")
    typer.echo(
        f"dim:        {manifest.get('dim')}; max tokens {manifest.get('max_tokens')} "
        f"(head {manifest.get('head_tokens')} + tail)"
    )
    typer.echo(f"exported:   {manifest.get('created')} with {manifest.get('versions')}")
    for name, meta in sorted(manifest.get("files", {}).items()):
        path = directory / name
        size = _mib(path) if path.is_file() else "   missing"
        typer.echo(f"  {name:<18} {size}  sha256 {str(meta.get('sha256'))[:16]}")
    _static_info(root)
    shards = list((root / EMBEDDINGS_DIR).glob("*/*.keys.npy"))
    if shards:
        total = sum(p.stat().st_size for p in (root / EMBEDDINGS_DIR).glob("*/*.npy"))
        typer.echo(f"embeddings: {len(shards)} cached shards, {total / 2**20:.1f} MiB")


def _static_info(root: Path) -> None:
    from switchyard.routers.embedding.export import read_manifest
    from switchyard.routers.embedding.static import static_dir, static_is_complete

    directory = static_dir(root)
    if not static_is_complete(directory):
        typer.echo(f"static:     not distilled (run `switchyard embedder export`); {directory}")
        return
    manifest = read_manifest(directory) or {}
    table = manifest.get("files", {}).get("table.npy", {})
    typer.echo(
        f"static:     {manifest.get('name')} in {directory}, "
        f"sha256 {str(table.get('sha256'))[:16]}, {manifest.get('created')}"
    )


def register(app: typer.Typer) -> None:
    """Add the ``switchyard embedder`` group to the main app."""
    app.add_typer(embedder_app, name="embedder")
