"""``switchyard plan`` (place models on GPUs for a workload) and ``switchyard launch`` (start
``vllm serve`` with one planned configuration's arguments on a GPU host)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from switchyard.cli.common import fail


def plan(
    workload: Annotated[Path, typer.Option("--workload", "-w", help="Workload YAML file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the plan's files.")],
    melange: Annotated[
        bool,
        typer.Option(
            "--melange",
            help="Mélange-compatible routing: each slice of a bucket's traffic goes wholly "
            "to one configuration (instead of fractional shares).",
        ),
    ] = False,
    slices: Annotated[int, typer.Option(min=1, help="Slices per bucket with --melange.")] = 1,
    time_limit: Annotated[
        float | None, typer.Option(min=0.1, help="Solver time limit, s.", show_default="from file")
    ] = None,
) -> None:
    """Choose GPU types, parallelism, precision and replica counts that serve the workload at
    the lowest $/h within its latency targets; write the report, vLLM command lines, Helm
    values, gateway endpoint weights and a simulator fleet (switchyard demo --plan OUT)."""
    from dataclasses import replace

    try:
        from switchyard.deploy.plan import Catalog, make_plan
    except ImportError as err:  # scipy (HiGHS) is the optional "plan" extra
        raise fail(f"{err}: install the planner with pip install 'switchyard[plan]'") from None
    from switchyard.deploy.catalog import node_selectors
    from switchyard.deploy.render import write_plan
    from switchyard.deploy.workload import WorkloadError, load_workload

    try:
        spec = load_workload(workload)
        if time_limit is not None:
            spec = replace(spec, time_limit_s=time_limit)
        result = make_plan(spec, Catalog.load(), slices=slices if melange else None)
    except (WorkloadError, ValueError) as err:
        raise fail(str(err)) from None
    write_plan(result, out, node_selectors())
    if not result.feasible:
        raise fail(f"no feasible plan: {result.solution.message} (report in {out})", 1)
    sol = result.solution
    gpus = ", ".join(f"{n} x {g}" for g, n in result.gpus_by_type().items())
    typer.echo(
        f"${result.cost_per_hour:.2f}/h: {gpus} ({sol.status}, gap {sol.gap:.2%}, "
        f"{sol.seconds:.2f} s); wrote {out}"
    )


def _planned_config(plan_dir: Path, name: str) -> dict[str, Any]:
    path = plan_dir / "plan.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise fail(f"cannot read {path}: {err}") from None
    configs = {c["name"]: c for c in doc.get("configs", [])}
    if name not in configs:
        raise fail(f"no configuration {name!r} in {path}; planned: {sorted(configs)}")
    return dict(configs[name])


def launch(
    plan_dir: Annotated[Path, typer.Option("--plan", help="Folder written by switchyard plan.")],
    config: Annotated[str, typer.Option("--config", help="Configuration name from the plan.")],
    port: Annotated[int, typer.Option(help="Port vllm serve listens on.")] = 8000,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the command line instead of running it.")
    ] = False,
) -> None:
    """Start vllm serve with the planned arguments of one configuration (on a GPU host)."""
    command = list(_planned_config(plan_dir, config)["vllm_command"])
    if "--port" in command:
        command[command.index("--port") + 1] = str(port)
    if dry_run:
        typer.echo(shlex.join(command))
        return
    executable = shutil.which(command[0])
    if executable is None:
        raise fail("vllm is not installed here: launch runs on a GPU host with vLLM "
                   "(pip install vllm); use --dry-run to print the command", 127)  # fmt: skip
    os.execv(executable, command)


def register(app: typer.Typer) -> None:
    """Add the planning commands to the main ``switchyard`` app."""
    app.command()(plan)
    app.command()(launch)
