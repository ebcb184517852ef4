"""Label-free quality estimates from the models' own outputs (Smoothie).

Smoothie (Guha et al., "Smoothie: Label Free Language Model Routing", NeurIPS 2024) treats
the embedding ``λ_j`` of model j's answer as a noisy view of the embedding ``λ*`` of an
unknown true answer, in a Gaussian graphical model::

    P(λ*, λ_1..λ_m) ∝ exp(−Σ_j θ_j/2 · ‖λ_j − λ*‖²)

where the canonical parameter ``θ_j`` is model j's quality (its inverse noise variance).
With the models' errors independent given ``λ*``, for any three models i, j, k::

    E‖λ_i − λ_j‖² = δ_i + δ_j        (δ_j = E‖λ_j − λ*‖², the error to estimate)
    δ_i = ½ (E‖λ_i − λ_j‖² + E‖λ_i − λ_k‖² − E‖λ_j − λ_k‖²)

so every model's error follows from observable distances between outputs, averaged over
all pairs (j, k) of other models (the *triplet* method), and ``θ_i = d / (2 δ_i)``.

The expectations are means over prompts. Over the whole dataset they give one score per
model (*sample-independent* Smoothie); over each prompt's ``n_neighbors`` nearest prompts
(itself included, by cosine similarity of the prompt embeddings) they give one score per
(prompt, model) (*sample-dependent* Smoothie, ``Smoothie-local`` in the paper), which is
what a router needs as a training target.

Everything is vectorised numpy: distances come from one batched Gram product, the triplet
average from index arrays over all (i, j, k), neighbourhoods from chunked top-k searches.
Missing outputs (a model that did not answer) are NaN and left out of every mean."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Self

import numpy as np
import numpy.typing as npt

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.datasets.outputs import ModelOutputs
from switchyard.routers.embedding import Embedder, embed_cached
from switchyard.routers.models.base import NotFittedError

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

log = logging.getLogger(__name__)

MIN_ERROR = 1e-3
"""Floor on an estimated error δ (squared distance to the latent true answer): the triplet
estimate can reach 0 or go negative where several models answer identically."""
DEFAULT_NEIGHBORS = 3
DEFAULT_SCALE = "log"
"""Chosen on a validation fold of RouterBench's train split (docs/BENCHMARKS.md)."""
SCALES = ("linear", "log")
"""How :class:`Smoothie` maps an error δ to a quality in [0, 1] (see its docstring)."""
NEIGHBOUR_CHUNK = 1024
"""Prompts per block of the nearest-neighbour search (bounds memory at chunk × n floats)."""


def pairwise_sq_distances(emb: FloatArray, present: BoolArray | None = None) -> FloatArray:
    """``‖λ_j − λ_k‖²`` for every prompt and pair of models: (n, m, d) → (n, m, m).

    Entries involving a missing output (``present[i, j]`` false) are NaN."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 3:
        raise ValueError(f"output embeddings must be (n, m, d), got shape {emb.shape}")
    gram = np.einsum("nmd,nkd->nmk", emb, emb)
    sq = np.einsum("nmm->nm", gram)
    dist: FloatArray = np.maximum(sq[:, :, None] + sq[:, None, :] - 2.0 * gram, 0.0)
    if present is not None:
        mask = np.asarray(present, dtype=bool)
        if mask.shape != emb.shape[:2]:
            raise ValueError(f"present must be {emb.shape[:2]}, got {mask.shape}")
        dist[~(mask[:, :, None] & mask[:, None, :])] = np.nan
    return dist


def _triplets(m: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Index arrays (i, j, k), j < k, both ≠ i, ordered by i: m·(m−1)(m−2)/2 triplets."""
    rows = [(i, j, k) for i in range(m) for j, k in itertools.combinations(range(m), 2)
            if i not in (j, k)]  # fmt: skip
    arr = np.array(rows, dtype=np.intp).reshape(-1, 3)
    return arr[:, 0], arr[:, 1], arr[:, 2]


def triplet_errors(dist: FloatArray) -> FloatArray:
    """Each model's error δ from mean squared distances: (..., m, m) → (..., m).

    δ_i is the mean over the pairs (j, k) of other models of
    ½ (D_ij + D_ik − D_jk); pairs with a NaN distance are left out."""
    dist = np.asarray(dist, dtype=np.float64)
    m = dist.shape[-1]
    if m < 3 or dist.shape[-2] != m:
        raise ValueError(f"the triplet method needs ≥ 3 models and (..., m, m), got {dist.shape}")
    i, j, k = _triplets(m)
    terms = 0.5 * (dist[..., i, j] + dist[..., i, k] - dist[..., j, k])
    grouped = terms.reshape(*dist.shape[:-2], m, -1)
    counts = np.isfinite(grouped).sum(axis=-1)
    total = np.where(np.isfinite(grouped), grouped, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def nearest_neighbours(X: FloatArray, k: int) -> npt.NDArray[np.intp]:
    """The ``k`` rows most cosine-similar to each row of ``X`` (itself first): (n, k)."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    unit = X / np.where(norms > 0, norms, 1.0)
    k = min(k, len(unit))
    out = np.empty((len(unit), k), dtype=np.intp)
    for start in range(0, len(unit), NEIGHBOUR_CHUNK):
        sim = unit[start : start + NEIGHBOUR_CHUNK] @ unit.T
        rows = np.arange(sim.shape[0])
        sim[rows, start + rows] = np.inf  # a prompt is its own nearest neighbour, ties or not
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, top, axis=1), axis=1)
        out[start : start + len(rows)] = np.take_along_axis(top, order, axis=1)
    return out


def _nanmean(values: FloatArray, axis: int) -> FloatArray:
    """Mean over ``axis`` ignoring NaN; NaN where all are NaN (and no warning)."""
    finite = np.isfinite(values)
    counts = finite.sum(axis=axis)
    total = np.where(finite, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


class Smoothie:
    """Smoothie's latent-variable model fitted on one set of prompts (transductive).

    ``n_neighbors=None`` fits the sample-independent model: one θ per model and group of
    prompts (``groups`` given to :meth:`fit`, e.g. the task; else all prompts), repeated on
    the group's rows. An integer fits the sample-dependent model over each prompt's
    neighbourhood (``1``: the prompt alone). After :meth:`fit`:

    - ``error_`` (n, m): δ, the estimated mean squared distance to the true answer;
    - ``theta_`` (n, m): Smoothie's weights, ``d / (2 δ)`` normalised to sum 1 per row;
    - ``quality_`` (n, m): the router's training target in [0, 1], monotone in δ and with
      one scale for all prompts (θ's per-row normalisation has none). ``scale="linear"``:
      ``1 − δ / 2`` (δ = 2: an answer orthogonal to the truth, for unit-norm embeddings);
      ``scale="log"``: ``log(4 / δ) / log(4 / min_error)``, i.e. log θ mapped onto [0, 1],
      which spreads the small errors of the strong models apart.

    NaN where a model has no output in the prompt's neighbourhood."""

    def __init__(
        self, n_neighbors: int | None = None, scale: str = "linear", min_error: float = MIN_ERROR
    ) -> None:
        self.n_neighbors = n_neighbors
        self.scale = scale
        self.min_error = min_error

    def fit(
        self,
        emb: FloatArray,
        present: BoolArray | None = None,
        X: FloatArray | None = None,
        groups: Sequence[str] | None = None,
    ) -> Self:
        """Fit on output embeddings ``emb`` (n, m, d), ``present`` (n, m) saying which
        outputs exist, prompt embeddings ``X`` (n, d') for the neighbourhoods (needed when
        ``n_neighbors > 1``) and ``groups`` for the sample-independent model."""
        if self.n_neighbors is not None and self.n_neighbors < 1:
            raise ValueError(f"n_neighbors must be ≥ 1 or None, got {self.n_neighbors}")
        if self.scale not in SCALES:
            raise ValueError(f"scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        dist = pairwise_sq_distances(emb, present)
        if self.n_neighbors is None:
            local = _group_means(dist, groups)
        elif self.n_neighbors == 1:
            local = dist  # the prompt alone: no neighbour search, no X needed
        else:
            if X is None or len(X) != len(dist):
                raise ValueError("the sample-dependent model needs prompt embeddings X (n, d)")
            local = _neighbourhood_means(dist, nearest_neighbours(X, self.n_neighbors))
        error = np.maximum(triplet_errors(local), self.min_error)
        theta = emb.shape[-1] / (2.0 * error)
        self.error_ = error
        self.theta_ = theta / np.nansum(theta, axis=1, keepdims=True)
        if self.scale == "log":
            self.quality_ = np.clip(np.log(4.0 / error) / np.log(4.0 / self.min_error), 0.0, 1.0)
        else:
            self.quality_ = np.clip(1.0 - error / 2.0, 0.0, 1.0)
        return self

    def check_fitted(self) -> FloatArray:
        """``quality_``, or NotFittedError before :meth:`fit`."""
        if not hasattr(self, "quality_"):
            raise NotFittedError("Smoothie is not fitted; call fit() first")
        quality: FloatArray = self.quality_
        return quality


def _group_means(dist: FloatArray, groups: Sequence[str] | None) -> FloatArray:
    """Each row's mean distance matrix over its group (all rows without groups)."""
    if groups is None:
        return np.asarray(np.broadcast_to(_nanmean(dist, axis=0), dist.shape), dtype=np.float64)
    if len(groups) != len(dist):
        raise ValueError(f"groups has {len(groups)} entries for {len(dist)} prompts")
    labels, inverse = np.unique(np.asarray(groups), return_inverse=True)
    means = np.stack([_nanmean(dist[inverse == g], axis=0) for g in range(len(labels))])
    return np.asarray(means[inverse], dtype=np.float64)


def _neighbourhood_means(dist: FloatArray, neighbours: npt.NDArray[np.intp]) -> FloatArray:
    """Mean distance matrices over each prompt's neighbours: (n, m, m), NaN-aware."""
    out = np.empty_like(dist)
    for start in range(0, len(dist), NEIGHBOUR_CHUNK):
        block = dist[neighbours[start : start + NEIGHBOUR_CHUNK]]  # (b, k, m, m)
        out[start : start + len(block)] = _nanmean(block, axis=1)
    return out


def embed_outputs(
    embedder: Embedder,
    texts: Sequence[Sequence[str | None]],
    *,
    cache: Path | None = None,
    progress: bool = False,
) -> tuple[FloatArray, BoolArray]:
    """Embed every present answer once (duplicates and cached texts are free): the
    (n, m, d) embeddings, zero where missing, and the (n, m) mask of present answers."""
    n, m = len(texts), len(texts[0]) if texts else 0
    present = np.array([[t is not None for t in row] for row in texts], dtype=bool).reshape(n, m)
    flat = [t for row in texts for t in row if t is not None]
    emb = np.zeros((n, m, embedder.dim), dtype=np.float64)
    if flat:
        vectors = embed_cached(embedder, flat, cache=cache, progress=progress)
        emb[present] = np.asarray(vectors, dtype=np.float64)
    return emb, present


def estimate_quality(
    outputs: ModelOutputs,
    embedder: Embedder,
    *,
    n_neighbors: int | None = DEFAULT_NEIGHBORS,
    scale: str = DEFAULT_SCALE,
    cache: Path | None = None,
    progress: bool = False,
) -> tuple[RoutingDataset, Smoothie]:
    """``outputs``' routing data with the quality replaced by Smoothie's estimate (the
    prompts' own embeddings pick the neighbourhoods), and the fitted model."""
    data = outputs.data
    emb, present = embed_outputs(embedder, outputs.texts, cache=cache, progress=progress)
    X = None
    if n_neighbors is not None and n_neighbors > 1:
        prompts = embed_cached(embedder, data.prompts, cache=cache, progress=progress)
        X = np.asarray(prompts, dtype=np.float64)
    model = Smoothie(n_neighbors=n_neighbors, scale=scale).fit(emb, present, X, data.tasks)
    log.info("smoothie: %d prompts × %d models, n_neighbors=%s", *emb.shape[:2], n_neighbors)
    estimated = RoutingDataset(
        prompts=list(data.prompts),
        models=list(data.models),
        quality=model.quality_,
        tasks=list(data.tasks),
        cost=data.cost,
        groups=data.groups,
        splits=data.splits,
        output_tokens=data.output_tokens,
        name=data.name,
        meta={**data.meta, "quality": f"Smoothie (n_neighbors={n_neighbors}, scale={scale})"},
    )
    return estimated, model


def _ranks(values: FloatArray) -> FloatArray:
    """1-based ranks, ties sharing their average rank (as Spearman's correlation wants)."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return np.asarray((ends - (counts - 1) / 2.0)[inverse], dtype=np.float64)


def spearman(estimate: FloatArray, truth: FloatArray) -> float:
    """Spearman's rank correlation over the cells where both are finite (NaN when either
    side is constant or fewer than 3 cells remain)."""
    a, b = np.ravel(estimate), np.ravel(truth)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return float("nan")
    ra, rb = _ranks(a[keep]), _ranks(b[keep])
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra**2).sum() * (rb**2).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")
