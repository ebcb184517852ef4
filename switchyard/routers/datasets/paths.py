"""Where the public reference data lives (outside the repository) and how paths resolve."""

from __future__ import annotations

from pathlib import Path

# switchyard/routers/datasets/paths.py -> the repository root is two folders up from this one.
_REPO_ROOT = Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    """The default shared data folder: ``<repo root>/../shared/data`` when it exists, else
    ``./../shared/data`` relative to the working directory (which may not exist). The CLI's
    ``--data-dir`` / ``$SWITCHYARD_DATA_DIR`` choose another; this package reads no
    environment."""
    beside_repo = _REPO_ROOT.parent / "shared" / "data"
    if beside_repo.exists():
        return beside_repo
    return Path(".") / ".." / "shared" / "data"


def resolve_data_path(path: str | Path, root: Path | None = None) -> Path:
    """``path`` itself when it exists (absolute or relative to the working directory),
    else ``path`` inside ``root`` (default :func:`data_dir`); ``FileNotFoundError`` naming
    both otherwise."""
    given = Path(path).expanduser()
    if given.exists():
        return given
    in_data_dir = (data_dir() if root is None else root) / given
    if in_data_dir.exists():
        return in_data_dir
    raise FileNotFoundError(
        f"data path {str(path)!r} not found: tried {given.absolute()} "
        f"and {in_data_dir.absolute()} (set the data dir with --data-dir or SWITCHYARD_DATA_DIR)"
    )
