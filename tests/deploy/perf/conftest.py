"""The project's catalogs, loaded once: the performance model is tested on real specs."""

from __future__ import annotations

import pytest

from switchyard.deploy.catalog import load_gpus, load_models
from switchyard.deploy.perf.specs import GpuSpec, ModelSpec


@pytest.fixture(scope="session")
def gpus() -> dict[str, GpuSpec]:
    return load_gpus()


@pytest.fixture(scope="session")
def models() -> dict[str, ModelSpec]:
    return load_models()
