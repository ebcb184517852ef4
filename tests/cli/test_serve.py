"""The ``switchyard`` command: help texts, config errors, and each command serving for real.

Help is checked in process (typer's CliRunner); everything that serves runs the installed
``switchyard`` script in a subprocess and is driven over real sockets with the openai SDK.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from switchyard.cli import app
from switchyard.cli.demo import DEMO_MODELS
from tests.support.gateways import Simulator, model_entry
from tests.support.script import clean_env, script, wait_for_http
from tests.support.servers import free_port

PROMPT: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Hello!"}]


def help_text(*args: str) -> str:
    """``switchyard ARGS --help`` from the installed script, on a wide terminal (at 80 columns
    rich cuts long option names short), with the boxes removed and spaces collapsed so that
    phrases wrapped inside a table cell read as one line."""
    result = subprocess.run(
        [script(), *args, "--help"],
        capture_output=True, text=True, env=clean_env(TERMINAL_WIDTH="200", NO_COLOR="1"),
        timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.stdout).split())


def accepts_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), 0.2):
            return True
    except OSError:
        return False


@pytest.fixture
def run_script(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``run_script(*args)`` starts ``switchyard ARGS`` in its own session, output to files
    under ``tmp_path`` (``.out``/``.err``, named after the process); every process is killed
    with its whole session at teardown if a test left it running."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        n = len(procs)
        with open(tmp_path / f"{n}.out", "wb") as out, open(tmp_path / f"{n}.err", "wb") as err:
            proc = subprocess.Popen(
                [script(), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=clean_env(),
                start_new_session=True,
            )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        else:  # the process is gone, but children it left behind would not be
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)


def output_of(tmp_path: Path, index: int, stream: str = "out") -> str:
    return (tmp_path / f"{index}.{stream}").read_text(encoding="utf-8", errors="replace")


def interrupt(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
    """Ctrl-C for the process alone (not its children); its exit code within ``timeout``."""
    proc.send_signal(signal.SIGINT)
    return proc.wait(timeout=timeout)


def sdk(base_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key="test", max_retries=0, timeout=30)


# --- help --------------------------------------------------------------------------------


def test_top_level_help_lists_the_commands() -> None:
    text = help_text()
    assert "Usage: switchyard [OPTIONS] COMMAND" in text
    assert "OpenAI-compatible LLM gateway" in text
    for command in ("serve", "demo", "simulate", "--version"):
        assert command in text


def test_no_arguments_shows_the_help() -> None:
    result = CliRunner().invoke(app, [], prog_name="switchyard")
    assert "Usage: switchyard" in result.output
    assert "serve" in result.output


def test_version_is_printed() -> None:
    result = CliRunner().invoke(app, ["--version"], prog_name="switchyard")
    assert result.exit_code == 0
    assert re.fullmatch(r"switchyard \d+\.\d+\.\d+\S*\n", result.output)


def test_serve_help_explains_its_options() -> None:
    text = help_text("serve")
    assert "Run the gateway" in text
    assert "SWITCHYARD_SERVER__PORT=9000" in text
    assert "--config -c" in text and "YAML config file (models, endpoints, server)" in text
    assert "required" in text
    for option in ("--host", "--port", "--workers"):
        assert option in text
    for option in ("Bind address.", "Port.", "Worker processes."):
        assert f"{option} [default: (from config)]" in text


def test_demo_help_explains_its_options() -> None:
    text = help_text("demo")
    assert "three simulated vLLM backends" in text
    assert "Ctrl-C stops everything" in text
    assert "--port" in text and "Port of the gateway" in text
    assert "--host" in text and "Bind address of the gateway" in text
    assert "--cache-dir" in text and "SWITCHYARD_CACHE_DIR" in text


def test_simulate_help_explains_its_options() -> None:
    text = help_text("simulate")
    assert "vLLM-compatible simulated server" in text
    assert "POST /sim/faults" in text
    options = (
        "--model", "--port", "--host", "--preset", "--seed", "--max-num-seqs", "--error-rate",
        "--added-latency-ms", "--drop-rate", "--hang-rate", "--embeddings",
    )  # fmt: skip
    for option in options:
        assert option in text, option
    for preset in ("fast", "medium", "slow", "zero"):
        assert preset in text


# --- serve -------------------------------------------------------------------------------

VALID_MODEL = model_entry("m", "http://127.0.0.1:9/v1")


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        pytest.param(
            {"models": [VALID_MODEL], "upstream": {"max_attempts": 0}},
            "upstream.max_attempts: Input should be greater than or equal to 1",
            id="out-of-range",
        ),
        pytest.param(
            {"models": [VALID_MODEL], "server": {"prot": 8080}},
            "server.prot: Extra inputs are not permitted",
            id="misspelt-field",
        ),
        pytest.param(
            {"models": [{**VALID_MODEL, "endpoints": [{"url": "not a url"}]}]},
            "models.0.endpoints.0.url",
            id="bad-url",
        ),
        pytest.param({"server": {"port": 8080}}, "models: Field required", id="no-models"),
    ],
)
def test_serve_with_a_bad_config_exits_2_naming_the_bad_field(
    tmp_path: Path, config: dict[str, object], expected: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    result = subprocess.run(
        [script(), "serve", "--config", str(path)],
        capture_output=True, text=True, env=clean_env(), timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "invalid configuration" in result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(None, "cannot read config file", id="missing"),
        pytest.param("models: [unclosed", "is not valid YAML", id="not-yaml"),
        pytest.param("- a list", "must hold a mapping", id="not-a-mapping"),
    ],
)
def test_serve_with_an_unreadable_config_exits_2_with_a_message(
    tmp_path: Path, content: str | None, expected: str
) -> None:
    path = tmp_path / "config.yaml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    result = subprocess.run(
        [script(), "serve", "--config", str(path)],
        capture_output=True, text=True, env=clean_env(), timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_runs_the_gateway_from_a_config_file(
    tmp_path: Path,
    simulator: Callable[..., Simulator],
    run_script: Callable[..., subprocess.Popen[bytes]],
) -> None:
    sim = simulator("m")
    path = tmp_path / "switchyard.yaml"
    path.write_text(
        yaml.safe_dump({"server": {"port": 1}, "models": [model_entry("m", sim.base_url)]}),
        encoding="utf-8",
    )
    port = free_port()
    proc = run_script("serve", "--config", str(path), "--port", str(port))  # --port wins
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/readyz", proc)

    with sdk(f"{base}/v1") as client:
        reply = client.chat.completions.create(model="m", messages=PROMPT, max_tokens=5)
        assert reply.choices[0].message.content
        assert reply.usage is not None and reply.usage.completion_tokens == 5
        completion = client.completions.create(model="m", prompt="Once upon", max_tokens=3)
        assert completion.choices[0].text
        assert [m.id for m in client.models.list()] == ["m"]

    assert interrupt(proc) == 0
    assert not accepts_connections(port)


def test_serve_with_several_workers_answers_from_each_process(
    tmp_path: Path,
    simulator: Callable[..., Simulator],
    run_script: Callable[..., subprocess.Popen[bytes]],
) -> None:
    sim = simulator("m")
    path = tmp_path / "switchyard.yaml"
    path.write_text(yaml.safe_dump({"models": [model_entry("m", sim.base_url)]}), "utf-8")
    port = free_port()
    proc = run_script("serve", "--config", str(path), "--port", str(port), "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/readyz", proc)
    with sdk(f"{base}/v1") as client:
        for _ in range(6):
            assert client.chat.completions.create(model="m", messages=PROMPT).choices
    assert interrupt(proc, timeout=15) == 0
    log = output_of(tmp_path, 0, "err")
    assert log.count("Application startup complete") == 2  # two worker processes
    assert log.count("model m: 1 endpoint(s)") == 2  # each worker logs its own wiring


# --- demo --------------------------------------------------------------------------------


def endpoint_ports(metrics_text: str) -> dict[str, int]:
    """{model: backend port} from the gateway's breaker gauge, which names every endpoint."""
    ports: dict[str, int] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name == "switchyard_circuit_breaker_state":
                url = httpx.URL(sample.labels["endpoint"])
                assert url.port is not None
                ports[sample.labels["model"]] = url.port
    return ports


def test_demo_serves_three_models_and_stops_everything_on_ctrl_c(
    tmp_path: Path,
    run_script: Callable[..., subprocess.Popen[bytes]],
    embedder_cache: Path,
) -> None:
    port = free_port()
    proc = run_script("demo", "--port", str(port), "--cache-dir", str(embedder_cache))
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/readyz", proc, timeout=30)

    banner = output_of(tmp_path, 0)
    assert f"curl {base}/v1/chat/completions" in banner
    assert f'OpenAI(base_url="{base}/v1"' in banner
    assert f"{base}/metrics" in banner and f"{base}/docs" in banner
    assert "Ctrl-C" in banner
    assert 'model="auto", extra_body={"switchyard": {"cost_weight":' in banner

    names = [m.name for m in DEMO_MODELS]
    with sdk(f"{base}/v1") as client:
        assert sorted(m.id for m in client.models.list()) == sorted([*names, "auto"])
        for name in names:
            reply = client.chat.completions.create(model=name, messages=PROMPT, max_tokens=3)
            assert reply.model == name
            assert reply.choices[0].message.content
        routed = client.chat.completions.with_raw_response.create(
            model="auto", messages=PROMPT, max_tokens=3
        )
        assert routed.parse().model == routed.headers["x-switchyard-model"]
        assert routed.headers["x-switchyard-model"] in names
        assert routed.headers["x-switchyard-router"] == "auto"
    backends = endpoint_ports(httpx.get(f"{base}/metrics").text)
    assert sorted(backends) == sorted(names)
    assert all(accepts_connections(p) for p in backends.values())

    started = time.monotonic()
    assert interrupt(proc) == 0
    assert time.monotonic() - started < 10
    assert not accepts_connections(port)
    for name, backend_port in backends.items():
        assert not accepts_connections(backend_port), f"simulator of {name} still serves"
    assert "Traceback" not in output_of(tmp_path, 0, "err")


# --- simulate ----------------------------------------------------------------------------


def test_simulate_serves_health_and_models(
    run_script: Callable[..., subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    proc = run_script("simulate", "--model", "x", "--port", str(port), "--preset", "zero")
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/health", proc)

    models = httpx.get(f"{base}/v1/models").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == ["x"]
    with sdk(f"{base}/v1") as client:
        reply = client.chat.completions.create(model="x", messages=PROMPT, max_tokens=2)
        assert reply.choices[0].message.content

    assert interrupt(proc) == 0
    assert not accepts_connections(port)


def test_simulate_with_an_unknown_preset_exits_2() -> None:
    result = subprocess.run(
        [script(), "simulate", "--model", "x", "--preset", "warp"],
        capture_output=True, text=True, env=clean_env(), timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "unknown preset 'warp'" in result.stderr
