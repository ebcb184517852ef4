"""Where the ``switchyard`` command sits: in its own package, above the others.

The gateway imports neither the CLI nor ``deploy``; command modules share only
``switchyard.cli.common`` (and the demo's runner) and never import each other; and
``switchyard --help`` stays light: no numpy, torch, onnxruntime or embedding package.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[2] / "switchyard"
HEAVY = ("numpy", "torch", "onnxruntime", "switchyard.routers.embedding")
# What a command module may import from its own package: the shared helpers, and the demo's
# runner (a library the ``demo`` command starts, not a command group).
CLI_SHARED = {"switchyard.cli.common", "switchyard.cli.demo"}


def imported_modules(path: Path) -> Iterator[str]:
    """Every module an ``import`` or ``from ... import`` in the file names, at any depth
    (imports inside functions included), with ``from X import y`` also giving ``X.y``."""
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def names(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize(
    "path", sorted((PACKAGE / "gateway").rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_the_gateway_imports_neither_deploy_nor_the_cli(path: Path) -> None:
    bad = [
        m
        for m in imported_modules(path)
        if names(m, "switchyard.deploy") or names(m, "switchyard.cli")
    ]
    assert not bad, f"{path} imports {sorted(set(bad))}"


@pytest.mark.parametrize(
    "path",
    sorted(p for p in (PACKAGE / "cli").glob("*.py") if p.name != "__init__.py"),
    ids=lambda p: p.name,
)
def test_command_modules_import_only_the_shared_cli_modules(path: Path) -> None:
    own = f"switchyard.cli.{path.stem}"
    bad = {
        m
        for m in imported_modules(path)
        if names(m, "switchyard.cli") and m not in CLI_SHARED and m != own
    }
    # ``from switchyard.cli.common import fail`` also yields ``switchyard.cli.common.fail``.
    bad = {m for m in bad if not any(m.startswith(s + ".") for s in CLI_SHARED)}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_shared_helpers_import_no_command_module() -> None:
    for name in CLI_SHARED:
        path = PACKAGE / "cli" / (name.rsplit(".", 1)[1] + ".py")
        bad = [m for m in imported_modules(path) if names(m, "switchyard.cli")]
        assert not bad, f"{path.name} imports {bad}"


HELP_PROBE = """
import json, sys
from typer.testing import CliRunner
from switchyard.cli import app
result = CliRunner().invoke(app, sys.argv[1:] + ["--help"])
print(json.dumps({"exit_code": result.exit_code, "modules": sorted(sys.modules)}))
"""


HELP_COMMANDS = (
    "", "serve", "demo", "simulate", "keys", "train", "route", "eval", "replay", "embedder",
    "embedder export", "plan", "launch", "outcomes", "outcomes export",
)  # fmt: skip


@pytest.mark.parametrize("command", HELP_COMMANDS, ids=lambda c: c or "switchyard")
def test_help_loads_neither_numpy_torch_onnxruntime_nor_the_embedder(command: str) -> None:
    # A fresh interpreter: this test process has long imported all of them.
    probe = subprocess.run(
        [sys.executable, "-c", HELP_PROBE, *command.split()],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    report = json.loads(probe.stdout.strip().splitlines()[-1])
    assert report["exit_code"] == 0
    heavy = [m for m in report["modules"] if any(names(m, h) for h in HEAVY)]
    assert not heavy, f"switchyard {command} --help imports {heavy}"
