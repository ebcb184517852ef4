"""Where the public reference data lives (outside the repository) and how paths resolve."""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_ENV = "SWITCHYARD_DATA_DIR"

# routers/datasets/paths.py -> the repository root is two folders up from this one.
_REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The shared data folder.

    ``$SWITCHYARD_DATA_DIR`` when set; else ``<repo root>/../shared/data`` when it exists;
    else ``./../shared/data`` relative to the working directory (which may not exist)."""
    env = os.environ.get(DATA_DIR_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    beside_repo = _REPO_ROOT.parent / "shared" / "data"
    if beside_repo.exists():
        return beside_repo
    return Path(".") / ".." / "shared" / "data"


def resolve_data_path(path: str | Path) -> Path:
    """``path`` itself when it exists (absolute or relative to the working directory),
    else ``path`` inside :func:`data_dir`; ``FileNotFoundError`` naming both otherwise."""
    given = Path(path).expanduser()
    if given.exists():
        return given
    in_data_dir = data_dir() / given
    if in_data_dir.exists():
        return in_data_dir
    raise FileNotFoundError(
        f"data path {str(path)!r} not found: tried {given.absolute()} "
        f"and {in_data_dir.absolute()} (data dir from ${DATA_DIR_ENV} or ../shared/data)"
    )
