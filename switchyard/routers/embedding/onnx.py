"""The run-time embedder: the exported all-MiniLM-L6-v2 graph on ONNX Runtime.

Needs only onnxruntime, tokenizers and numpy (imported when an embedder is built, not when this
module is imported). Embeddings match sentence-transformers' (mean pooling over the attention
mask, L2 normalisation) for prompts of up to 254 tokens; longer prompts keep their head and tail
(see :mod:`switchyard.routers.embedding.text`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from switchyard.routers.embedding.base import Embeddings
from switchyard.routers.embedding.export import (
    EMBEDDER_NAME,
    EMBEDDING_DIM,
    FP32_FILE,
    INT8_FILE,
    MANIFEST_FILE,
    OUTPUT_NAME,
    TOKENIZER_FILE,
    is_complete,
    model_dir,
)
from switchyard.routers.embedding.text import HEAD_TOKENS, MAX_TOKENS, PromptTokenizer

logger = logging.getLogger(__name__)

Variant = Literal["int8", "fp32"]
Device = Literal["auto", "cpu", "cuda"]
MAX_POSITIONS = 512
"""BERT's position embeddings: no input may be longer."""
_FILES: dict[str, str] = {"int8": INT8_FILE, "fp32": FP32_FILE}
_TAGS: dict[str, str] = {"int8": "onnx-int8-pc", "fp32": "onnx-fp32"}


def resolve_model_dir(path: Path) -> Path:
    """Accept either a cache directory or the exported embedder directory inside it."""
    path = Path(path)
    return path if (path / MANIFEST_FILE).is_file() else model_dir(path)


def embedder_name(
    variant: Variant = "int8", *, max_tokens: int = MAX_TOKENS, head_tokens: int = HEAD_TOKENS
) -> str:
    """The :attr:`OnnxEmbedder.name` for a variant and truncation policy, without loading it."""
    name = f"{EMBEDDER_NAME}/{_TAGS[variant]}"
    if (max_tokens, head_tokens) != (MAX_TOKENS, HEAD_TOKENS):
        name += f"/t{max_tokens}h{head_tokens}"
    return name


def gpu_present() -> bool:
    """True if an NVIDIA GPU device node exists (cheap; no CUDA library is loaded)."""
    return Path("/dev/nvidiactl").exists() and any(Path("/dev").glob("nvidia[0-9]*"))


class OnnxEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime, int8 (per-channel weights) by default.

    ``cache_dir`` is the embedder cache (or the exported model directory inside it);
    ``threads`` caps intra-op threads (1 for the single-core latency target; None: one per
    core); ``device="auto"`` uses CUDA when onnxruntime-gpu and a GPU are both present.
    ``max_tokens``/``head_tokens`` set the truncation policy; non-default values change
    :attr:`name`, since they change the embeddings. int8 embeds one text per session call, so
    a text's embedding never depends on what it is batched with (see :meth:`embed`)."""

    def __init__(
        self,
        cache_dir: Path,
        *,
        variant: Variant = "int8",
        threads: int | None = None,
        device: Device = "auto",
        max_tokens: int = MAX_TOKENS,
        head_tokens: int = HEAD_TOKENS,
    ) -> None:
        if variant not in _FILES:
            raise ValueError(f"variant must be one of {sorted(_FILES)}, got {variant!r}")
        if not 2 < max_tokens <= MAX_POSITIONS:
            raise ValueError(f"max_tokens must be in 3..{MAX_POSITIONS}, got {max_tokens}")
        directory = resolve_model_dir(cache_dir)
        if not is_complete(directory):
            raise FileNotFoundError(
                f"no exported embedder in {directory}; run `switchyard embedder export`"
            )
        self._directory = directory
        self._variant = variant
        self._tokenizer = PromptTokenizer(
            directory / TOKENIZER_FILE, max_tokens=max_tokens, head=head_tokens
        )
        self._name = embedder_name(variant, max_tokens=max_tokens, head_tokens=head_tokens)
        self._session = _session(directory / _FILES[variant], threads, device)
        self._needs_type_ids = any(i.name == "token_type_ids" for i in self._session.get_inputs())

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return EMBEDDING_DIM

    @property
    def directory(self) -> Path:
        """The exported model directory in use."""
        return self._directory

    @property
    def providers(self) -> list[str]:
        """ONNX Runtime execution providers the session actually uses, in priority order."""
        return list(self._session.get_providers())

    @property
    def tokenizer(self) -> PromptTokenizer:
        return self._tokenizer

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> Embeddings:
        """L2-normalised float32 embeddings, shape (len(texts), 384), in the input order.

        int8 runs one text per call: dynamic quantization scales activations over the whole
        input tensor, so in a batch a text's embedding would depend on its batch-mates and
        padding (cosine to itself alone down to 0.986); alone, it is a pure function of the
        text, as when serving, and on CPU no slower. fp32 runs ``batch_size`` texts per call,
        grouped by token length (longest first) so padding stays small."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        out = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        ids = self._tokenizer.encode(texts)
        step = batch_size if self._variant == "fp32" else 1
        order = np.argsort([-len(seq) for seq in ids], kind="stable")
        bar = _progress_bar(len(texts), self._name) if progress else None
        try:
            for start in range(0, len(ids), step):
                rows = order[start : start + step]
                out[rows] = self._run([ids[i] for i in rows])
                if bar is not None:
                    bar.update(len(rows))
        finally:
            if bar is not None:
                bar.close()
        return out

    def _run(self, batch: list[list[int]]) -> Embeddings:
        """One session call on a right-padded batch."""
        length = max(len(seq) for seq in batch)
        input_ids = np.full((len(batch), length), self._tokenizer.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), length), dtype=np.int64)
        for row, seq in enumerate(batch):
            input_ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feed = {"input_ids": input_ids, "attention_mask": mask}
        if self._needs_type_ids:
            feed["token_type_ids"] = np.zeros_like(input_ids)
        (result,) = self._session.run([OUTPUT_NAME], feed)
        return np.asarray(result, dtype=np.float32)

    def __repr__(self) -> str:
        return f"OnnxEmbedder(name={self._name!r}, providers={self.providers})"


def _session(path: Path, threads: int | None, device: Device) -> Any:
    """An ONNX Runtime session with all graph optimisations on the chosen device."""
    import onnxruntime as ort

    if threads is not None and threads < 1:
        raise ValueError(f"threads must be at least 1 (or None), got {threads}")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = threads or 0
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: on a busy 2-core host spinning halved throughput.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise RuntimeError("device='cuda' needs onnxruntime-gpu (no CUDAExecutionProvider)")
    providers = ["CPUExecutionProvider"]
    if device == "cuda" or (device == "auto" and has_cuda and gpu_present()):
        providers.insert(0, "CUDAExecutionProvider")
    session = ort.InferenceSession(str(path), options, providers=providers)
    logger.info("loaded %s on %s", path.name, ", ".join(session.get_providers()))
    return session


def _progress_bar(total: int, name: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=f"embedding ({name})", unit="text", smoothing=0.1)
