"""The wheel works away from the checkout: built from the working tree, installed (not
editable) into a fresh virtualenv, it holds only the ``switchyard`` import name and its data,
and ``switchyard plan`` and ``switchyard demo`` run from an unrelated directory.

Nothing is downloaded: the wheel is installed with ``--no-deps``, and the fresh environment
sees the dependencies through a ``.pth`` line naming the development environment's
site-packages. Python adds such a line to ``sys.path`` without processing the ``.pth`` files
found there, so the development environment's editable-install hook stays inactive and
``switchyard`` is imported from the wheel."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from tests.support.servers import free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).parents[1]
DATA_FILES = (
    "default-router/router.json",
    "default-router/cost.json",
    "default-router/quality/arrays.npz",
    "gpus.yaml",
    "models.yaml",
    "routerbench-prices.yaml",
    "workloads/chat.yaml",
)


@dataclass(frozen=True)
class Installed:
    """The built wheel, the fresh environment it is installed in, and a working directory
    outside the checkout to run its commands from."""

    wheel: Path
    venv: Path
    workdir: Path

    def bin(self, name: str) -> str:
        return str(self.venv / "bin" / name)

    def env(self) -> dict[str, str]:
        """The environment minus anything that would put the checkout on ``sys.path``."""
        drop = {"PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV"}
        return {k: v for k, v in os.environ.items() if k not in drop}

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=self.workdir, env=self.env(), capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def python(self, code: str) -> str:
        result = self.run(self.bin("python"), "-c", code)
        assert result.returncode == 0, result.stderr
        return result.stdout


def _build_wheel(dest: Path) -> Path:
    """Build from a copy of what the Dockerfiles copy, so that no build/ folder is left in the
    checkout and no stale file from an earlier build reaches the wheel."""
    src = dest / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "switchyard", src / "switchyard", ignore=ignore)
    wheels = dest / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--wheel-dir", str(wheels), str(src)],
        check=True, timeout=120,
    )  # fmt: skip
    [wheel] = wheels.glob("switchyard-*.whl")
    return wheel


def _install(wheel: Path, env_dir: Path) -> None:
    """A fresh environment without pip; this interpreter's pip installs the wheel into it."""
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
         "--no-index", "--quiet", str(wheel)],
        check=True, timeout=120,
    )  # fmt: skip
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    dev = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "switchyard-test-dependencies.pth").write_text("\n".join(dev) + "\n")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(base)
    _install(wheel, base / "venv")
    workdir = base / "elsewhere"
    workdir.mkdir()
    return Installed(wheel, base / "venv", workdir)


def test_wheel_holds_the_data_and_only_the_switchyard_import_name(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        top_level = wheel.read(info).decode().split()
    assert top_level == ["switchyard"]
    assert {n.split("/")[0] for n in names} == {"switchyard", info.split("/")[0]}
    missing = [f for f in DATA_FILES if f"switchyard/data/{f}" not in names]
    assert missing == []
    assert "switchyard/py.typed" in names


def test_the_installed_wheel_is_imported_not_the_checkout(installed: Installed) -> None:
    out = installed.python(
        "import sys, switchyard; from switchyard.resources import data_path, default_router; "
        "print(switchyard.__file__); print(default_router()); "
        "print(any('editable' in name for name in sys.modules))"
    ).splitlines()
    package, router, editable_hook = out
    assert Path(package).is_relative_to(installed.venv)
    assert Path(router).is_relative_to(installed.venv)
    assert (Path(router) / "router.json").is_file()
    assert editable_hook == "False"
    for gone in ("gateway", "routers", "backends", "deploy"):
        assert installed.run(installed.bin("python"), "-c", f"import {gone}").returncode != 0


def test_switchyard_plan_runs_on_the_packaged_workload_from_any_directory(
    installed: Installed,
) -> None:
    workload = installed.python(
        "from switchyard.resources import data_path; print(data_path('workloads', 'chat.yaml'))"
    ).strip()
    assert Path(workload).is_relative_to(installed.venv)
    result = installed.run(installed.bin("switchyard"), "plan", "--workload", workload,
                           "--out", "plan")  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    values = yaml.safe_load((installed.workdir / "plan" / "helm-values.yaml").read_text())
    assert values["vllm"]["pools"]
    assert (installed.workdir / "plan" / "plan.json").is_file()


def test_switchyard_demo_answers_auto_from_any_directory(
    installed: Installed, embedder_cache: Path
) -> None:
    port = free_port()
    log = installed.workdir / "demo.log"
    with log.open("w") as out:
        demo = subprocess.Popen(
            [installed.bin("switchyard"), "demo", "--port", str(port), "--cache-dir",
             str(embedder_cache)],
            cwd=installed.workdir, env=installed.env(), stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        _wait_ready(f"http://127.0.0.1:{port}", demo, log)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="demo")
        reply = client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "Prove that 2 is prime."}]
        )
        assert reply.choices[0].message.content
        models = {m.id for m in client.models.list()}
        assert reply.model in models - {"auto"}
    finally:
        _stop(demo)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    """Until the gateway's /readyz says every model has an endpoint (or the demo exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"switchyard demo exited with {proc.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    pytest.fail(f"switchyard demo not ready on {base} in {timeout:g}s:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as a user stops the demo (it stops its simulators); the process group it was
    started in, simulators included, is killed if that does not end it."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
