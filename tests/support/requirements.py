"""What a test needs that a fresh clone may lack (the public reference data, a server binary)
and the one rule for a missing one: outside CI the test skips with a reason that names what
is missing and how to get it; in CI (``CI`` set, as ``.ci/run``'s machine sets it, which
installs everything) it fails, since there a missing requirement is a broken setup.

Every reason has the form ``needs WHAT: HOW``, so that the end-of-run summary
(:func:`skip_summary`, called from ``tests/conftest.py``) can count the skips per WHAT."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from switchyard.routers.datasets import data_dir


@dataclass(frozen=True)
class Requirement:
    """Something optional a test needs: ``what`` names it, ``enable`` says how to get it."""

    what: str
    enable: str

    def reason(self, detail: str = "") -> str:
        """The skip or failure message: ``needs WHAT: HOW`` (and ``detail`` in brackets)."""
        return f"needs {self.what}: {self.enable}" + (f" [{detail}]" if detail else "")


REFERENCE_DATA = Requirement(
    "the public reference data",
    "put it at ../shared/data beside the repository, or set SWITCHYARD_DATA_DIR to its folder",
)
REDIS_SERVER = Requirement("redis-server", "apt-get install redis-server")
REDIS_CLI = Requirement("redis-cli", "apt-get install redis-tools")
REDIS_SENTINEL = Requirement("redis-sentinel", "apt-get install redis-sentinel")
PROMETHEUS = Requirement("prometheus", "apt-get install prometheus")
PROMTOOL = Requirement("promtool", "apt-get install prometheus")
DNSMASQ = Requirement("dnsmasq", "apt-get install dnsmasq")
WRK = Requirement("wrk", "apt-get install wrk")

KNOWN = {r.what: r for r in (REFERENCE_DATA, REDIS_SERVER, REDIS_CLI, REDIS_SENTINEL,
                             PROMETHEUS, PROMTOOL, DNSMASQ, WRK)}  # fmt: skip


def in_ci() -> bool:
    """Whether this run is CI's (``CI`` set to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in {"", "0", "false"}


def require(need: Requirement, present: bool, detail: str = "") -> None:
    """Return when ``present``; else skip the test (locally) or fail it (in CI)."""
    __tracebackhide__ = True  # report the test or fixture that required it, not this line
    if present:
        return
    if in_ci():
        pytest.fail(need.reason(detail))
    pytest.skip(need.reason(detail))


def require_program(need: Requirement, name: str | None = None) -> str:
    """The path of the program ``name`` (default ``need.what``) on PATH, else skip or fail."""
    __tracebackhide__ = True
    found = shutil.which(name or need.what)
    require(need, found is not None)
    assert found is not None
    return found


def data_root() -> Path:
    """Where the tests look for the public reference data: ``$SWITCHYARD_DATA_DIR`` when set
    (as the CLI reads it), else the package's default (``../shared/data`` beside the
    repository). The folder may not exist: use :func:`reference_data` to require it."""
    configured = os.environ.get("SWITCHYARD_DATA_DIR")
    return Path(configured) if configured else data_dir()


def reference_data(*parts: str) -> Path:
    """The file or folder ``parts`` inside the reference data (e.g. ``"routing/routerbench"``),
    as an absolute path; skips or fails (:func:`require`) when it is not there."""
    __tracebackhide__ = True
    path = data_root().joinpath(*parts).resolve()
    require(REFERENCE_DATA, path.exists(), f"{path} not found")
    return path


_REASON = re.compile(r"^(?:Skipped: )?needs (?P<what>[^:]+): (?P<enable>.*?)(?: \[.*\])?$")


def skip_summary(reasons: Iterable[str]) -> list[str]:
    """One line per group of skipped tests, most skips first: the count, what they need and
    how to enable it. Reasons not of the ``needs WHAT: HOW`` form are grouped as they are."""
    counts: Counter[str] = Counter()
    enable: dict[str, str] = {}
    for reason in reasons:
        match = _REASON.match(reason)
        key = match["what"] if match else reason.removeprefix("Skipped: ")
        counts[key] += 1
        if match:
            enable.setdefault(key, KNOWN[key].enable if key in KNOWN else match["enable"])
    width = len(str(max(counts.values(), default=0)))
    return [
        f"{count:>{width}} skipped, needing {key}: {enable[key]}"
        if key in enable
        else f"{count:>{width}} skipped: {key}"
        for key, count in counts.most_common()
    ]


def skip_reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    """The reason pytest recorded for a skipped test or module."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        return str(longrepr[2])
    return str(longrepr)
