"""The ``switchyard`` command: one typer app assembled here from one module per command group.

- :mod:`~switchyard.cli.serve`: ``serve``, ``demo``, ``simulate`` (the demo's runner is
  :mod:`~switchyard.cli.demo`)
- :mod:`~switchyard.cli.keys`: ``keys new | hash``
- :mod:`~switchyard.cli.routers`: ``train``, ``route``, ``eval``
- :mod:`~switchyard.cli.replay`: ``replay``
- :mod:`~switchyard.cli.embedder`: ``embedder export | info``
- :mod:`~switchyard.cli.plan`: ``plan``, ``launch``
- :mod:`~switchyard.cli.outcomes`: ``outcomes export``

What they share (the error exit, option types, loading data and routers) is public in
:mod:`~switchyard.cli.common`; command modules never import each other. Every heavy import
(numpy, onnxruntime, torch, the gateway's app) happens inside a command, so ``--help`` is fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from switchyard.cli import embedder, keys, outcomes, plan, replay, routers, serve

__all__ = ["app", "main"]

app = typer.Typer(
    help="Switchyard: an OpenAI-compatible LLM gateway that routes each request to the best "
    "model per dollar, on the least-loaded replica.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(show: bool) -> None:
    from importlib.metadata import version

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


# ``switchyard --help`` lists the commands in the order they are registered.
serve.register(app)
keys.register(app)
routers.register(app)
replay.register(app)
embedder.register(app)
plan.register(app)
outcomes.register(app)


def main() -> None:
    """Run the ``switchyard`` command (the console script and ``python -m switchyard``)."""
    app()
