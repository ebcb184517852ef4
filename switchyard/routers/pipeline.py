"""A trained router as shipped: embedder name + quality router + cost predictor + metadata.

Saved as a directory::

    router.json      kind, models, embedder name, cost weight default, metadata (command, data)
    quality/         the quality router (state.json + arrays.npz)
    cost.json        the cost predictor

Loading checks the embedder: a router trained on one embedder refuses another."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.embedding import Embedder, check_embedder, embed_cached
from switchyard.routers.models.base import (
    FloatArray,
    NotFittedError,
    QualityRouter,
    RouterFormatError,
)
from switchyard.routers.models.cost import CostPredictor
from switchyard.routers.policy import Constraints, Decision, decide
from switchyard.routers.prediction import Prediction

FORMAT_VERSION = 1
logger = logging.getLogger(__name__)


class RoutingPipeline:
    """Embeds prompts, predicts quality and cost per model, and decides."""

    def __init__(
        self,
        router: QualityRouter,
        embedder: Embedder,
        *,
        prices: Mapping[str, tuple[float, float]] | None = None,
        cost_weight: float = 0.0,
        cache: Path | None = None,
    ) -> None:
        self.router = router
        self.embedder = embedder
        self.prices = dict(prices or {})
        self.cost_weight = cost_weight
        self.cache = cache
        self.cost = CostPredictor(self.prices)
        self._models: list[str] = []
        self.metadata: dict[str, Any] = {}

    @property
    def models(self) -> list[str]:
        if not self._models:
            raise NotFittedError("the router is not trained; call fit() or load it")
        return list(self._models)

    @property
    def embedder_name(self) -> str:
        return str(self.embedder.name)

    def clone(self) -> RoutingPipeline:
        return RoutingPipeline(
            self.router.clone(),
            self.embedder,
            prices=self.prices,
            cost_weight=self.cost_weight,
            cache=self.cache,
        )

    def features(self, prompts: Sequence[str], *, progress: bool = False) -> FloatArray:
        emb = embed_cached(self.embedder, list(prompts), cache=self.cache, progress=progress)
        return np.asarray(emb, dtype=np.float64)

    def fit(self, data: RoutingDataset, *, progress: bool = False) -> Self:
        """Train the quality router and the cost predictor on ``data``."""
        started = time.perf_counter()
        X = self.features(data.prompts, progress=progress)
        self.router.fit(X, data.quality, data.cost, tasks=data.tasks)
        self.cost.fit(data.prompts, data.models, data.cost, data.output_tokens)
        self._models = list(data.models)
        self.metadata["train_rows"] = len(data)
        self.metadata["train_seconds"] = round(time.perf_counter() - started, 2)
        return self

    def predict(self, data: RoutingDataset) -> Prediction:
        return self.predict_prompts(data.prompts)

    def predict_prompts(self, prompts: Sequence[str], *, progress: bool = False) -> Prediction:
        return self.predict_features(self.features(prompts, progress=progress), prompts)

    def decide(
        self,
        prompts: Sequence[str],
        *,
        cost_weight: float | None = None,
        constraints: Constraints | None = None,
    ) -> list[Decision]:
        """One Decision per prompt (text as the embedder should see it)."""
        if not prompts:
            return []
        X = np.asarray(self.embedder.embed(list(prompts)), dtype=np.float64)
        pred = self.predict_features(X, prompts)
        lam = self.cost_weight if cost_weight is None else cost_weight
        return decide(self.models, pred.quality, pred.cost, lam, constraints, self.prices)

    def predict_features(self, X: FloatArray, prompts: Sequence[str]) -> Prediction:
        """Quality and cost from already computed embeddings ``X`` of ``prompts``."""
        return Prediction(quality=self.router.predict_quality(X), cost=self.cost.predict(prompts))

    def warm(self) -> None:
        """Make now what the quality router makes on first use (the kNN routers' ONNX Runtime
        session takes ~40 ms), so that no request waits for it: one prediction for a batch
        of two prompts."""
        self.router.predict_quality(np.zeros((2, self.router.n_features_in_)))

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: Path, metadata: Mapping[str, Any] | None = None) -> None:
        path.mkdir(parents=True, exist_ok=True)
        self.router.save(path / "quality")
        self.cost.save(path / "cost.json")
        manifest = {
            "format": FORMAT_VERSION,
            "router": self.router.kind,
            "models": self.models,
            "embedder": self.embedder.name,
            "embedder_checksum": getattr(self.embedder, "checksum", None),
            "embedder_probe": _probe(self.embedder),
            "prices": {m: list(p) for m, p in self.prices.items()},
            "cost_weight": self.cost_weight,
            "metadata": {**self.metadata, **(metadata or {})},
        }
        (path / "router.json").write_text(json.dumps(manifest, indent=1))

    @staticmethod
    def recorded_embedder(path: Path) -> str:
        """The name of the embedder the router saved in ``path`` was trained with."""
        return str(_manifest(path)["embedder"])

    @classmethod
    def load(cls, path: Path, embedder: Embedder, *, cache: Path | None = None) -> RoutingPipeline:
        """Load a saved router; EmbedderMismatchError if ``embedder`` is not the trained one."""
        manifest = _manifest(path)
        check_embedder(manifest["embedder"], embedder)
        _check_checksum(path, manifest, embedder)
        try:
            prices = {m: (float(p[0]), float(p[1])) for m, p in manifest["prices"].items()}
            pipe = cls(
                QualityRouter.load(path / "quality"),
                embedder,
                prices=prices,
                cost_weight=float(manifest["cost_weight"]),
                cache=cache,
            )
            pipe.cost = CostPredictor.from_json(json.loads((path / "cost.json").read_text()))
            pipe._models = list(manifest["models"])
            pipe.metadata = dict(manifest["metadata"])
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as err:
            raise RouterFormatError(f"{path}: incomplete or corrupt router: {err!r}") from err
        return pipe


def _manifest(path: Path) -> dict[str, Any]:
    """router.json, checked for the format and an embedder name; RouterFormatError if not."""
    try:
        manifest = json.loads((path / "router.json").read_text())
    except (OSError, ValueError) as err:
        raise RouterFormatError(f"{path} is not a saved router directory: {err}") from err
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        found = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise RouterFormatError(f"{path}: unsupported format {found!r}")
    if not isinstance(manifest.get("embedder"), str):
        raise RouterFormatError(f"{path}: router.json names no embedder")
    return manifest


# Texts whose embeddings a router records beside its table checksum: a table distilled on
# another CPU embeds them the same to within float noise, a different one does not.
PROBE_TEXTS = (
    "What is the capital of France?",
    "Write a Python function that reverses a linked list.",
    "Solve for x: 3x + 7 = 22.",
)
# Least cosine between recorded and loaded probe embeddings that counts as the same table.
PROBE_MIN_COSINE = 0.999


def _probe(embedder: Embedder) -> list[str] | None:
    """The probe texts' embeddings (a line of numbers each), for an embedder with a table
    checksum (static ones)."""
    if getattr(embedder, "checksum", None) is None:
        return None
    vectors = np.asarray(embedder.embed(list(PROBE_TEXTS)), dtype=np.float64)
    return [" ".join(f"{v:.6g}" for v in row) for row in vectors]


def _check_checksum(path: Path, manifest: Mapping[str, Any], embedder: Embedder) -> None:
    """Warn when the embedder's table is not the one the router was trained on. A table
    distilled on another CPU differs in the last bits: its checksum differs but the probe
    texts embed the same (cosine >= PROBE_MIN_COSINE), which is only logged; a different
    table (another source model) differs more: then re-train."""
    recorded, loaded = manifest.get("embedder_checksum"), getattr(embedder, "checksum", None)
    if not isinstance(recorded, str) or loaded is None or loaded == recorded:
        return
    similarity = _probe_similarity(manifest.get("embedder_probe"), embedder)
    if similarity is not None and similarity >= PROBE_MIN_COSINE:
        logger.info(
            "router %s: the %s table differs from the trained one in its last bits only "
            "(probe cosine %.6f)", path, embedder.name, similarity,
        )  # fmt: skip
        return
    logger.warning(
        "router %s was trained on %s with table sha256 %s…, the loaded one is %s…%s; "
        "routing uses the loaded table (re-train the router if its decisions look off)",
        path, embedder.name, recorded[:12], str(loaded)[:12],
        "" if similarity is None else f" (probe cosine {similarity:.4f})",
    )  # fmt: skip


def _probe_similarity(recorded: object, embedder: Embedder) -> float | None:
    """The least cosine between the recorded probe embeddings and the loaded embedder's;
    None when none were recorded (routers saved before probes) or they do not fit."""
    if not isinstance(recorded, list) or len(recorded) != len(PROBE_TEXTS):
        return None
    try:
        before = np.array([str(row).split() for row in recorded], dtype=np.float64)
    except ValueError:
        return None
    now = np.asarray(embedder.embed(list(PROBE_TEXTS)), dtype=np.float64)
    if before.shape != now.shape:
        return None
    norms = np.linalg.norm(before, axis=1) * np.linalg.norm(now, axis=1)
    cosines = np.einsum("ij,ij->i", before, now) / np.maximum(norms, 1e-12)
    return float(cosines.min())


def read_manifest(path: Path) -> dict[str, Any]:
    """router.json of a saved router (for listing and reports)."""
    data: dict[str, Any] = json.loads((path / "router.json").read_text())
    return data
