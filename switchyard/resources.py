"""The data shipped inside the package (``switchyard/data``), found through importlib.resources
so that an installed wheel finds it from any working directory, as a source checkout does."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_path(*parts: str) -> Path:
    """A file or folder under the package's ``data/``. The package is installed as plain files
    (a wheel or a checkout, never a zip), so the resource is a real path that subprocesses and
    ``open()`` can use."""
    return Path(str(files("switchyard").joinpath("data", *parts)))


def default_router() -> Path:
    """The shipped default router (knn-prior over the RouterBench models)."""
    return data_path("default-router")
