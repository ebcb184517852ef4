"""A trained cascade: stages from cheap to strong, when to skip a stage, when to trust its answer.

Saved next to a router trained on the stage models (``router.json``, ``quality/``,
``cost.json``: :class:`~switchyard.routers.pipeline.RoutingPipeline`), in the same directory::

    cascade.json    format, stages (cheap first), embedder name, per stage but the last:
                    skip_below (pre-generation) and accept_at (verifier); metadata
    verifier.npz    per stage but the last: logistic-regression weights over
                    [prompt, answer, prompt * answer] embeddings, and the bias

Pre-generation ("hard prompt"): the router's predicted quality of a stage on the prompt is
P(the stage answers correctly | prompt); its margin over the strongest stage's (negative where
the strongest is expected to succeed and the stage to fail) below ``skip_below`` skips the
stage. (The margin beat the stage's own P(correct) on validation AIQ: 0.834 against 0.828 on
RouterBench, Mixtral -> GPT-4, see docs/BENCHMARKS.md section 25.)
After generation: the verifier's P(the answer is correct | prompt, answer); below
``accept_at`` the request escalates to the next stage. Inference is NumPy only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
FORMAT_VERSION = 1
CASCADE_FILE = "cascade.json"
VERIFIER_FILE = "verifier.npz"


class CascadeFormatError(ValueError):
    """A cascade directory is missing, corrupt or inconsistent."""


def verifier_features(prompts: FloatArray, answers: FloatArray) -> FloatArray:
    """(n, 3d) features of (prompt, answer) embedding pairs: both and their product."""
    p = np.asarray(prompts, dtype=np.float64)
    a = np.asarray(answers, dtype=np.float64)
    if p.shape != a.shape or p.ndim != 2:
        raise ValueError(f"prompt and answer embeddings differ: {p.shape} vs {a.shape}")
    return np.concatenate([p, a, p * a], axis=1)


def _sigmoid(z: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


@dataclass
class CascadeModel:
    """The cascade's learned state; ``weights[i]``/``bias[i]`` verify stage ``i``'s answers."""

    stages: list[str]
    embedder: str
    skip_below: list[float]
    accept_at: list[float]
    weights: FloatArray
    bias: FloatArray
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.stages) - 1
        if k < 1 or len(set(self.stages)) != len(self.stages):
            raise CascadeFormatError("a cascade needs at least two distinct stages")
        if len(self.skip_below) != k or len(self.accept_at) != k:
            raise CascadeFormatError(f"skip_below and accept_at need {k} thresholds each")
        if self.weights.ndim != 2 or self.weights.shape[0] != k or self.bias.shape != (k,):
            raise CascadeFormatError(
                f"verifier arrays have shapes {self.weights.shape}, {self.bias.shape}; "
                f"expected ({k}, 3d) and ({k},)"
            )

    @property
    def dim(self) -> int:
        """The embedding dimension the verifier reads."""
        return int(self.weights.shape[1] // 3)

    def start(self, quality: Mapping[str, float], stages: Sequence[str] | None = None) -> str:
        """The pre-generation decision: the first of ``stages`` (default all, in cascade order)
        whose predicted quality's margin over the strongest stage's reaches its
        ``skip_below``; the last one otherwise."""
        order = list(self.stages if stages is None else stages)
        strongest = quality.get(self.stages[-1], 0.0)
        for name in order[:-1]:
            i = self.stages.index(name)
            margin = quality.get(name, 0.0) - strongest
            if i < len(self.skip_below) and margin >= self.skip_below[i]:
                return name
        return order[-1]

    def verify(self, stage: str, prompt: FloatArray, answer: FloatArray) -> float:
        """P(``stage``'s answer is correct) from one prompt's and one answer's embeddings."""
        i = self.stages.index(stage)
        x = verifier_features(prompt.reshape(1, -1), answer.reshape(1, -1))
        return float(_sigmoid(x @ self.weights[i] + self.bias[i])[0])

    def accepts(self, stage: str, p_correct: float) -> bool:
        """Whether the verifier trusts ``stage``'s answer (the last stage is always trusted)."""
        i = self.stages.index(stage)
        return i >= len(self.accept_at) or p_correct >= self.accept_at[i]

    def scores(self, i: int, prompts: FloatArray, answers: FloatArray) -> FloatArray:
        """Stage ``i``'s verifier over many (prompt, answer) pairs (training, evaluation)."""
        return _sigmoid(verifier_features(prompts, answers) @ self.weights[i] + self.bias[i])

    # -- persistence ---------------------------------------------------------------------

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        manifest = {
            "format": FORMAT_VERSION,
            "stages": self.stages,
            "embedder": self.embedder,
            "skip_below": self.skip_below,
            "accept_at": self.accept_at,
            "metadata": self.metadata,
        }
        (path / CASCADE_FILE).write_text(json.dumps(manifest, indent=1))
        np.savez(path / VERIFIER_FILE, weights=self.weights, bias=self.bias)

    @classmethod
    def load(cls, path: Path) -> CascadeModel:
        manifest = read_cascade_manifest(path)
        try:
            with np.load(path / VERIFIER_FILE, allow_pickle=False) as arrays:
                weights, bias = arrays["weights"].astype(np.float64), arrays["bias"]
            return cls(
                stages=[str(s) for s in manifest["stages"]],
                embedder=str(manifest["embedder"]),
                skip_below=[float(v) for v in manifest["skip_below"]],
                accept_at=[float(v) for v in manifest["accept_at"]],
                weights=weights,
                bias=bias.astype(np.float64),
                metadata=dict(manifest.get("metadata") or {}),
            )
        except (OSError, KeyError, TypeError, ValueError) as err:
            if isinstance(err, CascadeFormatError):
                raise
            raise CascadeFormatError(f"{path}: incomplete or corrupt cascade: {err!r}") from None


def read_cascade_manifest(path: Path) -> dict[str, Any]:
    """``cascade.json`` of a cascade directory (CascadeFormatError when it is not one)."""
    try:
        manifest = json.loads((path / CASCADE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CascadeFormatError(
            f"{path} is not a trained cascade ({CASCADE_FILE}): {err}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        raise CascadeFormatError(f"{path}/{CASCADE_FILE}: unsupported format")
    stages = manifest.get("stages")
    if not (
        isinstance(stages, list) and len(stages) >= 2 and all(isinstance(s, str) for s in stages)
    ):
        raise CascadeFormatError(f"{path}/{CASCADE_FILE}: 'stages' must list two models or more")
    return manifest
