"""``switchyard serve`` (the gateway), ``switchyard demo`` (simulated backends and the gateway)
and ``switchyard simulate`` (one vLLM-compatible simulated server)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from switchyard.cli.common import fail


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
    from switchyard.gateway.settings import SettingsError, build_settings, load_settings

    try:
        settings = load_settings(config)
    except SettingsError as err:
        raise fail(str(err)) from None
    given = {"host": host, "port": port, "workers": workers}
    server = {**settings.server.model_dump(), **{k: v for k, v in given.items() if v is not None}}
    try:
        settings = build_settings({**settings.model_dump(), "server": server})
    except SettingsError as err:
        raise fail(str(err)) from None
    run_gateway(settings, config)


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
    from switchyard.cli.demo import run_demo, run_plan_demo

    if plan is not None:
        run_plan_demo(host, port, plan)
        return
    run_demo(host, port, cache_dir)


MaxLorasOpt = Annotated[
    int | None, typer.Option(min=1, help="Serve LoRA adapters with this many GPU slots.")
]
LoraModulesOpt = Annotated[
    list[str] | None, typer.Option(help="An adapter registered at start: name=path.")
]
LoraLoadOpt = Annotated[float, typer.Option(min=0, help="Seconds to swap an adapter into a slot.")]
ApiKeyOpt = Annotated[
    str | None,
    typer.Option(
        envvar="VLLM_API_KEY",
        help="Require 'Authorization: Bearer KEY' on /v1 paths, as vLLM's --api-key does.",
        show_default=False,
    ),
]


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
    prefix_caching: Annotated[
        bool,
        typer.Option(
            "--enable-prefix-caching/--no-enable-prefix-caching",
            help="Cache prompt prefixes in KV blocks, as vLLM does by default.",
        ),
    ] = True,
    perf_file: Annotated[
        Path | None, typer.Option(help="YAML mapping of PerfModel fields overriding the preset's.")
    ] = None,
    max_loras: MaxLorasOpt = None,
    lora_modules: LoraModulesOpt = None,
    lora_load_s: LoraLoadOpt = 0.0,
    api_key: ApiKeyOpt = None,
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
        "prefix_caching": prefix_caching,
        "api_key": api_key,
    }
    if max_num_seqs is not None:
        overrides["max_num_seqs"] = max_num_seqs
    if max_loras is not None:
        overrides |= _lora_overrides(max_loras, lora_modules or [], lora_load_s)
    try:
        if perf_file is not None:
            overrides = {**_perf_overrides(perf_file), **overrides}
        config = build_config(model, preset, seed, **overrides)
    except ValueError as err:
        raise fail(str(err)) from None
    serve_simulator(config, host=host, port=port)


def _lora_overrides(max_loras: int, modules: list[str], load_s: float) -> dict[str, object]:
    """vLLM's --enable-lora settings; runtime loading follows vLLM's own switch, the
    VLLM_ALLOW_RUNTIME_LORA_UPDATING environment variable."""
    import os

    registered = dict(m.partition("=")[::2] for m in modules)
    runtime = os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() in ("1", "true")
    return {"max_loras": max_loras, "lora_modules": registered, "lora_load_s": load_s,
            "runtime_lora_updating": runtime}  # fmt: skip


def _perf_overrides(path: Path) -> dict[str, object]:
    """The PerfModel fields of a YAML file, to override a simulator preset's."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"cannot read {path}: {err}") from None
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: expected a mapping of PerfModel fields")
    return dict(doc)


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``demo`` and ``simulate`` to the main app."""
    app.command()(serve)
    app.command()(demo)
    app.command()(simulate)
