"""The deploy tests' fixtures: a real Prometheus server (tests/support/prometheus.py) and the
``promtool`` binary, skipped locally when missing (CI installs them, so there they fail)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import pytest

from tests.support.prometheus import PrometheusServer
from tests.support.requirements import PROMETHEUS, PROMTOOL, require_program


@pytest.fixture
def prometheus(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., PrometheusServer]]:
    """``prometheus(jobs, rule_files)`` starts a real server."""
    binary = require_program(PROMETHEUS)
    started: list[PrometheusServer] = []

    def start(jobs: Mapping[str, Sequence[str]], rule_files: Sequence[Path]) -> PrometheusServer:
        server = PrometheusServer(binary, tmp_path_factory.mktemp("prometheus"))
        started.append(server)
        server.start(jobs, rule_files)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def promtool() -> str:
    """The ``promtool`` binary (Debian package ``prometheus``; CI installs it)."""
    return require_program(PROMTOOL)
