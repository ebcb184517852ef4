"""Real reference data from the shared folder, loaded once per test session (skipped, or failed
in CI, when the folder is missing: tests/support/requirements.py)."""

from __future__ import annotations

import pytest

from switchyard.routers.datasets import (
    RoutingDataset,
    load_routellm,
    load_routerbench,
    load_routerdc,
)
from tests.support.requirements import reference_data


@pytest.fixture(scope="session")
def routerdc() -> RoutingDataset:
    return load_routerdc(reference_data("routing", "routerdc"))


@pytest.fixture(scope="session")
def routerbench() -> RoutingDataset:
    return load_routerbench(reference_data("routing", "routerbench"))


@pytest.fixture(scope="session")
def routellm() -> RoutingDataset:
    return load_routellm(reference_data("routing", "routellm"))
