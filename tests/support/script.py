"""The installed ``switchyard`` script, for tests that run it in a subprocess: where it is, a
clean environment to run it in, and waiting until what it started answers over HTTP."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

SCRIPT = shutil.which("switchyard", path=str(Path(sys.executable).parent))


def script() -> str:
    """The path of the ``switchyard`` script next to this interpreter."""
    assert SCRIPT is not None, f"no switchyard script next to {sys.executable}"
    return SCRIPT


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without SWITCHYARD_* overrides that would change what is tested."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    return env | extra


def wait_for_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Until ``url`` answers 200; fails early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before serving {url}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s")
