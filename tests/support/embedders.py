"""A private embedder cache for a test that writes embeddings, sharing the session's exports."""

from __future__ import annotations

from pathlib import Path

from switchyard.routers.embedding import model_dir
from switchyard.routers.embedding.static import static_dir


def link_embedders(root: Path, exported: Path) -> Path:
    """Make ``root`` a cache that holds ``exported``'s MiniLM export and static table (as
    links, so nothing is exported again) and nothing else; return ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    model_dir(root).symlink_to(model_dir(exported), target_is_directory=True)
    static_dir(root).symlink_to(static_dir(exported), target_is_directory=True)
    return root
