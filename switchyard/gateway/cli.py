"""The ``switchyard`` command: serve the gateway, run the demo, run a simulated vLLM server."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path
from typing import Annotated

import typer

from switchyard.gateway.cli_outcomes import register as register_outcome_commands
from switchyard.gateway.cli_plan import register as register_plan_commands
from switchyard.gateway.cli_routers import register as register_router_commands
from switchyard.gateway.settings import SettingsError, build_settings, load_settings

app = typer.Typer(
    help="Switchyard: an OpenAI-compatible LLM gateway that routes each request to the best "
    "model per dollar, on the least-loaded replica.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(show: bool) -> None:
    if show:
        typer.echo(f"switchyard {version('switchyard')}")
        raise typer.Exit()


@app.callback()
def main_options(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """Switchyard command line."""


@app.command()
def serve(
    config: Annotated[
        Path, typer.Option("--config", "-c", help="YAML config file (models, endpoints, server).")
    ],
    host: Annotated[
        str | None, typer.Option(help="Bind address.", show_default="from config")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port.", show_default="from config")] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes.", show_default="from config")
    ] = None,
) -> None:
    """Run the gateway. SWITCHYARD_* environment variables override the file
    (e.g. SWITCHYARD_SERVER__PORT=9000)."""
    from switchyard.gateway.serve import run_gateway

    try:
        settings = load_settings(config)
    except SettingsError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    given = {"host": host, "port": port, "workers": workers}
    server = {**settings.server.model_dump(), **{k: v for k, v in given.items() if v is not None}}
    try:
        settings = build_settings({**settings.model_dump(), "server": server})
    except SettingsError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    run_gateway(settings, config)


@app.command()
def demo(
    port: Annotated[int, typer.Option(help="Port of the gateway.")] = 8080,
    host: Annotated[str, typer.Option(help="Bind address of the gateway.")] = "127.0.0.1",
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            envvar="SWITCHYARD_CACHE_DIR",
            help="Cache holding the exported embedder of the router.",
            show_default="~/.cache/switchyard",
        ),
    ] = None,
    plan: Annotated[
        Path | None,
        typer.Option(
            "--plan",
            help="Run the fleet of a folder written by switchyard plan instead: one simulator "
            "per planned configuration, at the performance model's speed.",
        ),
    ] = None,
) -> None:
    """Start three simulated vLLM backends (distinct prices and speeds) and the gateway,
    with the routed model "auto" (the default router) choosing among them.

    No GPU, no Redis. Prints a curl and an OpenAI SDK example; Ctrl-C stops everything."""
    from switchyard.gateway.demo import run_demo, run_plan_demo

    if plan is not None:
        run_plan_demo(host, port, plan)
        return
    run_demo(host, port, cache_dir)


@app.command()
def simulate(
    model: Annotated[str, typer.Option(help="Model name the simulator serves.")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8001,
    host: Annotated[str, typer.Option(help="Bind address.")] = "127.0.0.1",
    preset: Annotated[
        str, typer.Option(help="Performance preset: fast (H100-like), medium, slow, zero.")
    ] = "medium",
    seed: Annotated[int, typer.Option(help="Seed: the same request gives the same text.")] = 0,
    max_num_seqs: Annotated[
        int | None, typer.Option(help="Running sequences before requests queue.")
    ] = None,
    error_rate: Annotated[float, typer.Option(min=0, max=1, help="Share answered 500.")] = 0.0,
    added_latency_ms: Annotated[float, typer.Option(min=0, help="Extra delay per request.")] = 0,
    drop_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of streams cut mid-way.")
    ] = 0.0,
    hang_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of requests never answered.")
    ] = 0.0,
    embeddings: Annotated[bool, typer.Option(help="Also serve /v1/embeddings.")] = False,
    perf_file: Annotated[
        Path | None, typer.Option(help="YAML mapping of PerfModel fields overriding the preset's.")
    ] = None,
) -> None:
    """Run a vLLM-compatible simulated server: OpenAI endpoints, vLLM /metrics, a latency
    model, and fault injection (also at run time: POST /sim/faults)."""
    from switchyard.backends.simulator import build_config
    from switchyard.backends.simulator import serve as serve_simulator

    overrides: dict[str, object] = {
        "error_rate": error_rate,
        "added_latency_ms": added_latency_ms,
        "drop_rate": drop_rate,
        "hang_rate": hang_rate,
        "serves_embeddings": embeddings,
    }
    if max_num_seqs is not None:
        overrides["max_num_seqs"] = max_num_seqs
    try:
        if perf_file is not None:
            overrides = {**_perf_overrides(perf_file), **overrides}
        config = build_config(model, preset, seed, **overrides)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    serve_simulator(config, host=host, port=port)


def _perf_overrides(path: Path) -> dict[str, object]:
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping of PerfModel fields")
    return dict(doc)


keys_app = typer.Typer(
    help="Make API keys for the config file: a fresh key, or the hash of one (so the config "
    "holds key_hash and the key itself is never on the gateway's machine).",
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys")


@keys_app.command("new")
def keys_new() -> None:
    """Print a fresh random API key (sk-sy-...).

    Give it to its user, and put it in the environment variable named by a static key's
    key_env, or its hash (switchyard keys hash) in key_hash. Dynamic keys are made with
    POST /admin/keys instead."""
    from switchyard.gateway.tenancy.keys import new_key

    typer.echo(new_key())


@keys_app.command("hash")
def keys_hash(
    secret_env: Annotated[
        str,
        typer.Option(
            help="Environment variable holding the server secret keys are hashed with "
            "(auth.secret_env; the gateway must run with the same value)."
        ),
    ] = "SWITCHYARD_KEY_SECRET",
) -> None:
    """Read an API key from standard input and print its hash, for a static key's key_hash.

    Example: switchyard keys new | tee alice.key | switchyard keys hash"""
    import os
    import sys

    from switchyard.gateway.tenancy.keys import PREFIX, hash_key

    secret = os.environ.get(secret_env)
    if not secret:
        typer.echo(f"error: environment variable {secret_env} is not set", err=True)
        raise typer.Exit(2)
    key = sys.stdin.readline().strip()
    if not key.startswith(PREFIX):
        typer.echo(f"error: expected a key starting with '{PREFIX}' on standard input", err=True)
        raise typer.Exit(2)
    typer.echo(hash_key(secret.encode(), key))


register_router_commands(app)
register_plan_commands(app)
register_outcome_commands(app)


def main() -> None:
    app()
