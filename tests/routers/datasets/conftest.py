"""Real reference data from the shared folder, loaded once per test session."""

from __future__ import annotations

import pytest

from switchyard.routers.datasets import (
    RoutingDataset,
    data_dir,
    load_routellm,
    load_routerbench,
    load_routerdc,
)

ROUTING = data_dir() / "routing"

requires_data = pytest.mark.skipif(
    not ROUTING.is_dir(), reason=f"shared reference data not found at {ROUTING}"
)


@pytest.fixture(scope="session")
def routerdc() -> RoutingDataset:
    if not ROUTING.is_dir():
        pytest.skip(f"shared reference data not found at {ROUTING}")
    return load_routerdc("routing/routerdc")


@pytest.fixture(scope="session")
def routerbench() -> RoutingDataset:
    if not ROUTING.is_dir():
        pytest.skip(f"shared reference data not found at {ROUTING}")
    return load_routerbench("routing/routerbench")


@pytest.fixture(scope="session")
def routellm() -> RoutingDataset:
    if not ROUTING.is_dir():
        pytest.skip(f"shared reference data not found at {ROUTING}")
    return load_routellm("routing/routellm")
