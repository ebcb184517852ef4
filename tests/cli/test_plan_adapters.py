"""``switchyard plan`` on a workload with LoRA adapters, and ``switchyard demo --plan`` serving
them: the planned simulators register the adapters and the gateway routes to them (the
installed script in a subprocess, real sockets)."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from switchyard.cli import app
from tests.support.gateways import wait_for
from tests.support.servers import free_port

ADAPTERS = Path(__file__).parents[2] / "switchyard" / "data" / "workloads" / "adapters.yaml"
SCRIPT = shutil.which("switchyard", path=str(Path(sys.executable).parent))


def _plan(workload: Path, out: Path) -> Path:
    result = CliRunner().invoke(app, ["plan", "--workload", str(workload), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _plan(ADAPTERS, tmp_path_factory.mktemp("plan"))


@pytest.fixture(scope="module")
def on_demand_plan_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("on-demand")
    doc = yaml.safe_load(ADAPTERS.read_text())
    doc["lora"]["on_demand_loading"] = True
    (folder / "workload.yaml").write_text(yaml.safe_dump(doc))
    return _plan(folder / "workload.yaml", folder / "plan")


def test_planned_simulators_carry_the_pools_adapter_slots(plan_dir: Path) -> None:
    fleet = yaml.safe_load((plan_dir / "simulators.yaml").read_text())
    for sim in fleet["simulators"]:
        assert sim["lora"]["max_loras"] == 6 * sim["replicas"]  # slots of all its replicas
        assert sim["lora"]["lora_modules"]["sql-lora"] == "/adapters/sql-lora"
    assert {m["name"] for m in fleet["gateway"]["models"]} >= {"sql-expert", "tenant-acme"}


def _ready(url: str, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "demo exited early"
    try:
        return httpx.get(url, timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.parametrize("loading", ["static", "on_demand"])
def test_demo_of_the_plan_serves_an_adapter_on_its_base_models_simulators(
    loading: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Static: the simulators register the adapters at start (--lora-modules); on demand:
    the gateway loads the adapter on the chosen simulator at the first request."""
    plan_dir = request.getfixturevalue("plan_dir" if loading == "static" else "on_demand_plan_dir")
    assert SCRIPT is not None
    fleet = yaml.safe_load((plan_dir / "simulators.yaml").read_text())
    registered = fleet["simulators"][0]["lora"]["lora_modules"]
    assert bool(registered) == (loading == "static")
    port = free_port()
    log = (tmp_path / "out.log").open("wb")
    proc = subprocess.Popen(
        [SCRIPT, "demo", "--plan", str(plan_dir), "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _ready(f"{base}/readyz", proc), timeout=30)
        models = {m["id"] for m in httpx.get(f"{base}/v1/models").json()["data"]}
        assert {"Llama-3.1-8B", "sql-expert", "translator-fr"} <= models
        body = {"model": "sql-expert", "max_tokens": 4,
                "messages": [{"role": "user", "content": "SELECT?"}]}  # fmt: skip
        reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=30)
        assert reply.status_code == 200, reply.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        log.close()
    assert "Traceback" not in (tmp_path / "out.log").read_text()
