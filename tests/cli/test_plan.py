"""``switchyard plan``, ``switchyard launch`` and ``switchyard demo --plan``.

plan and launch run in process (typer's CliRunner); the demo runs the installed script in
a subprocess and is driven over real sockets, like the other demo test.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from switchyard.cli import app
from tests.support.servers import free_port

CHAT = Path(__file__).parents[2] / "switchyard" / "data" / "workloads" / "chat.yaml"
SCRIPT = shutil.which("switchyard", path=str(Path(sys.executable).parent))
runner = CliRunner()


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("plan")
    result = runner.invoke(app, ["plan", "--workload", str(CHAT), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_plan_writes_its_files_and_prints_cost_and_gap(plan_dir: Path) -> None:
    report = json.loads((plan_dir / "plan.json").read_text())
    assert report["status"] == "optimal" and report["mode"] == "fractional"
    assert (plan_dir / "helm-values.yaml").exists() and (plan_dir / "simulators.yaml").exists()
    result = runner.invoke(app, ["plan", "-w", str(CHAT), "-o", str(plan_dir / "again")])
    assert f"${report['cost_per_hour']:.2f}/h" in result.output
    assert "gap" in result.output


def test_melange_mode_costs_at_least_the_fractional_plan(plan_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["plan", "-w", str(CHAT), "-o", str(tmp_path), "--melange"])
    assert result.exit_code == 0, result.output
    sliced = json.loads((tmp_path / "plan.json").read_text())
    fractional = json.loads((plan_dir / "plan.json").read_text())
    assert sliced["mode"] == "slices"
    assert sliced["cost_per_hour"] >= fractional["cost_per_hour"] - 1e-6


def test_a_bad_workload_fails_with_the_field_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [{name: Llama-3.1-8B, rate: 1, buckets: []}]\n")
    result = runner.invoke(app, ["plan", "-w", str(bad), "-o", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "error:" in result.output and "buckets" in result.output


def test_launch_dry_run_prints_the_planned_vllm_command(plan_dir: Path) -> None:
    config = json.loads((plan_dir / "plan.json").read_text())["configs"][0]
    result = runner.invoke(
        app, ["launch", "--plan", str(plan_dir), "--config", config["name"], "--dry-run",
              "--port", "9001"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    line = result.output.strip()
    assert line.startswith(f"vllm serve {config['hf_repo']} ")
    assert f"--tensor-parallel-size {config['tensor_parallel']}" in line
    assert f"--max-model-len {config['max_model_len']}" in line
    assert "--gpu-memory-utilization 0.9" in line and "--port 9001" in line


def test_launch_fails_clearly_without_vllm(
    plan_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no vllm executable
    name = json.loads((plan_dir / "plan.json").read_text())["configs"][0]["name"]
    result = runner.invoke(app, ["launch", "--plan", str(plan_dir), "--config", name])
    assert result.exit_code == 127
    assert "vllm is not installed" in result.output


def test_launch_of_an_unknown_configuration_lists_the_planned_ones(plan_dir: Path) -> None:
    result = runner.invoke(app, ["launch", "--plan", str(plan_dir), "--config", "nope"])
    assert result.exit_code == 2
    assert "no configuration 'nope'" in result.output


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "demo exited early"
        try:
            if httpx.get(url, timeout=0.5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} not ready in {timeout}s")


def test_demo_runs_the_planned_fleet_on_simulators(plan_dir: Path, tmp_path: Path) -> None:
    assert SCRIPT is not None
    port = free_port()
    log = (tmp_path / "out.log").open("wb")
    proc = subprocess.Popen(
        [SCRIPT, "demo", "--plan", str(plan_dir), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(f"{base}/readyz", proc)
        models = {m["id"] for m in httpx.get(f"{base}/v1/models").json()["data"]}
        assert models == {"Llama-3.1-8B", "Qwen3-30B-A3B"}
        body = {"model": "Qwen3-30B-A3B", "max_tokens": 4,
                "messages": [{"role": "user", "content": "Hello!"}]}  # fmt: skip
        reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)
        assert reply.status_code == 200 and reply.json()["model"] == "Qwen3-30B-A3B"
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        log.close()
    assert "Traceback" not in (tmp_path / "out.log").read_text()


def test_plan_launch_and_demo_help_name_their_options() -> None:
    plan_help = runner.invoke(app, ["plan", "--help"]).output
    for option in ("--workload", "--out", "--melange", "--slices", "--time-limit"):
        assert option in plan_help, option
    launch_help = runner.invoke(app, ["launch", "--help"]).output
    assert "--dry-run" in launch_help and "--config" in launch_help
    assert "--plan" in runner.invoke(app, ["demo", "--help"]).output
    assert "--perf-file" in runner.invoke(app, ["simulate", "--help"]).output


def test_simulate_with_an_unknown_perf_field_exits_2(tmp_path: Path) -> None:
    perf = tmp_path / "perf.yaml"
    perf.write_text("decode_base_s: 0.01\nwarp_speed: 9\n")
    result = runner.invoke(app, ["simulate", "--model", "m", "--perf-file", str(perf)])
    assert result.exit_code == 2
    assert "warp_speed" in result.output


def test_an_infeasible_workload_exits_1_and_still_writes_the_report(tmp_path: Path) -> None:
    poor = tmp_path / "poor.yaml"
    poor.write_text(CHAT.read_text() + "budget_per_hour: 1.0\n")
    result = runner.invoke(app, ["plan", "-w", str(poor), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no feasible plan" in result.output
    report = json.loads((tmp_path / "out" / "plan.json").read_text())
    assert report["feasible"] is False and report["status"] == "infeasible"
    assert not (tmp_path / "out" / "helm-values.yaml").exists()
