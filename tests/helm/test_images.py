"""The Dockerfiles run only commands the tests exercise elsewhere (no Docker engine here): every
``switchyard`` command line they hold exists with its options, what they COPY exists and
passes .dockerignore, and the final stages run as a non-root user with a HEALTHCHECK."""

from __future__ import annotations

import json
import re
import shlex
import tomllib

import pytest
from typer.testing import CliRunner

from switchyard.cli import app
from tests.helm.chart import ROOT

DOCKERFILES = ("Dockerfile", "Dockerfile.simulator")


def _instructions(name: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = (ROOT / name).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _words(arguments: str) -> list[str]:
    return list(json.loads(arguments)) if arguments.startswith("[") else shlex.split(arguments)


def _switchyard_commands(name: str) -> list[list[str]]:
    """Every switchyard command line: in RUN steps, and ENTRYPOINT + CMD together."""
    commands = []
    entry: list[str] = []
    cmd: list[str] = []
    for instruction, arguments in _instructions(name):
        if instruction == "RUN":
            for part in arguments.split("&&"):
                words = shlex.split(part)
                if words and words[0].endswith("switchyard"):
                    commands.append(words[1:])
        elif instruction == "ENTRYPOINT":
            entry = _words(arguments)
        elif instruction == "CMD":
            cmd = _words(arguments)
    final = entry + cmd
    if final and final[0] == "switchyard":
        commands.append(final[1:])
    return commands


@pytest.mark.parametrize("name", DOCKERFILES)
def test_switchyard_commands_in_the_dockerfile_exist_with_their_options(name: str) -> None:
    commands = _switchyard_commands(name)
    assert commands, f"{name} runs no switchyard command"
    for words in commands:
        first_option = next((i for i, w in enumerate(words) if w.startswith("-")), len(words))
        path = words[:first_option]
        result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
        assert result.exit_code == 0, f"switchyard {' '.join(path)}: {result.output}"
        for option in (w for w in words if w.startswith("--")):
            assert option in result.output, f"switchyard {' '.join(path)} has no {option}"


def test_gateway_image_exports_the_embedder_and_serves_the_mounted_config() -> None:
    commands = _switchyard_commands("Dockerfile")
    assert ["embedder", "export", "--cache-dir", "/opt/switchyard/cache"] in commands
    assert commands[-1][:3] == ["serve", "--config", "/etc/switchyard/gateway.yaml"]


@pytest.mark.parametrize("name", DOCKERFILES)
def test_final_stage_runs_non_root_with_a_healthcheck(name: str) -> None:
    steps = _instructions(name)
    last_from = max(i for i, (ins, _) in enumerate(steps) if ins == "FROM")
    final = dict(steps[last_from:])
    assert final["USER"].split(":")[0] not in ("", "0", "root")
    check = final["HEALTHCHECK"]
    snippet = json.loads(check[check.index("[") :])[-1]
    compile(snippet, "HEALTHCHECK", "exec")
    assert "/healthz" in snippet or "/health" in snippet


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copied_paths_exist_and_pass_the_dockerignore(name: str) -> None:
    allowed = [
        line[1:].rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.startswith("!")
    ]
    for instruction, arguments in _instructions(name):
        if instruction != "COPY" or arguments.startswith("--from"):
            continue
        *sources, _ = arguments.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            path = source.rstrip("/")
            # A "!dir/" line lets in everything under dir (switchyard/data/default-router).
            passes = any(path == a or path.startswith(f"{a}/") for a in allowed)
            assert passes, f"{source} is excluded by .dockerignore"


def test_torch_pin_in_the_image_is_the_train_extras() -> None:
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pin = next(d for d in extra["train"] if d.startswith("torch=="))
    assert pin in (ROOT / "Dockerfile").read_text(encoding="utf-8")
