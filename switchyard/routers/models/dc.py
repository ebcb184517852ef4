"""RouterDC-style dual contrastive router (Chen et al., NeurIPS 2024), on a frozen embedder.

RouterDC fine-tunes a small encoder E and learns one embedding k_m per model; a prompt goes
to the model whose embedding is most similar. Two contrastive losses train it:

* sample-to-model: for each prompt the ``top_k`` best-scoring models are positives and the
  ``bottom_k`` worst are negatives; each positive is contrasted with all negatives;
* sample-to-sample: prompts are clustered (k-means on the input features); a prompt from the
  same cluster is a positive, prompts from other clusters in the batch are negatives.

Here E is a two-layer head on the frozen sentence embedding (the run-time embedder is a fixed
ONNX model). To use the similarity as a quality estimate in the cost-aware policy, each
model's similarity is mapped to quality by a per-model least-squares line fitted on the
training data (the ranking, and so RouterDC's own decisions, are unchanged when all slopes
are positive)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from switchyard.routers.models.base import FloatArray
from switchyard.routers.models.training import TorchRouter, import_torch, to_numpy


class DualContrastiveRouter(TorchRouter):
    kind = "routerdc"

    def __init__(
        self,
        dim: int = 256,
        top_k: int = 3,
        bottom_k: int = 3,
        n_clusters: int = 5,
        sample_weight: float = 1.0,
        temperature: float = 0.2,
        epochs: int = 60,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 64,
        seed: int = 0,
    ) -> None:
        super().__init__(
            epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed
        )
        self.dim = dim
        self.top_k = top_k
        self.bottom_k = bottom_k
        self.n_clusters = n_clusters
        self.sample_weight = sample_weight
        self.temperature = temperature

    def _fit(self, X: FloatArray, Y: FloatArray, tasks: Sequence[str] | None) -> None:
        del tasks
        torch: Any = import_torch()
        torch.manual_seed(self.seed)
        head = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], self.dim),
            torch.nn.GELU(approximate="tanh"),
            torch.nn.Linear(self.dim, self.dim),
        )
        keys = torch.nn.Parameter(torch.randn(Y.shape[1], self.dim) * 0.1)
        x = torch.tensor(X, dtype=torch.float32)
        pos, neg = _positive_negative(Y, self.top_k, self.bottom_k, self.seed)
        pos_t, neg_t = torch.tensor(pos), torch.tensor(neg)
        clusters = torch.tensor(_kmeans(X, self.n_clusters, self.seed))
        tau = self.temperature

        def step(idx: np.ndarray) -> Any:
            z = torch.nn.functional.normalize(head(x[idx]), dim=1)
            k = torch.nn.functional.normalize(keys, dim=1)
            loss = _sample_model_loss(torch, z @ k.T / tau, pos_t[idx], neg_t[idx])
            if self.sample_weight > 0:
                loss = loss + self.sample_weight * _sample_sample_loss(torch, z, clusters[idx], tau)
            return loss

        self._train([*head.parameters(), keys], step, X.shape[0])
        self.W1_, self.b1_ = to_numpy(head[0].weight.T), to_numpy(head[0].bias)
        self.W2_, self.b2_ = to_numpy(head[2].weight.T), to_numpy(head[2].bias)
        self.keys_ = to_numpy(torch.nn.functional.normalize(keys, dim=1))
        self.slope_, self.intercept_ = _calibrate(self.similarity(X), Y)

    def similarity(self, X: FloatArray) -> FloatArray:
        """Cosine similarity of each prompt to each model's learned embedding."""
        from switchyard.routers.models.mlp import gelu

        z = gelu(X @ self.W1_ + self.b1_) @ self.W2_ + self.b2_
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return np.asarray(z @ self.keys_.T)

    def _predict(self, X: FloatArray) -> FloatArray:
        return self.similarity(X) * self.slope_ + self.intercept_


def _positive_negative(
    Y: FloatArray, top_k: int, bottom_k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: boolean masks of the top-k and bottom-k models (random tie-break; an
    unscored model is neither). A model is never both: rows where all scores tie get none."""
    rng = np.random.default_rng(seed)
    jitter = rng.random(Y.shape) * 1e-6
    filled = np.where(np.isnan(Y), np.nan, Y + jitter)
    order = np.argsort(-np.nan_to_num(filled, nan=-np.inf), axis=1)
    n, m = Y.shape
    pos = np.zeros((n, m), dtype=bool)
    neg = np.zeros((n, m), dtype=bool)
    rows = np.arange(n)[:, None]
    pos[rows, order[:, :top_k]] = True
    scored = (~np.isnan(Y)).sum(axis=1)
    for i in range(n):
        last = order[i, : scored[i]][-bottom_k:]
        neg[i, last] = True
    spread = np.nanmax(Y, axis=1) > np.nanmin(Y, axis=1)
    pos &= spread[:, None] & ~np.isnan(Y)
    neg &= spread[:, None] & ~pos
    return pos, neg


def _sample_model_loss(torch: Any, logits: Any, pos: Any, neg: Any) -> Any:
    """-log( e^{s+} / (e^{s+} + sum_neg e^{s-}) ), averaged over (prompt, positive) pairs."""
    neg_logits = logits.masked_fill(~neg, float("-inf"))
    neg_lse = torch.logsumexp(neg_logits, dim=1, keepdim=True)  # (b, 1)
    denom = torch.logaddexp(logits, neg_lse.expand_as(logits))
    per_pair = denom - logits
    has_neg = neg.any(dim=1, keepdim=True)
    use = pos & has_neg
    return (per_pair * use).sum() / use.sum().clamp(min=1)


def _sample_sample_loss(torch: Any, z: Any, clusters: Any, tau: float) -> Any:
    """InfoNCE over the batch: a same-cluster prompt is the positive, other clusters negatives."""
    sims = z @ z.T / tau
    same = clusters[:, None] == clusters[None, :]
    eye = torch.eye(len(clusters), dtype=torch.bool)
    pos_mask = same & ~eye
    # one positive per anchor: the first same-cluster prompt after it in the (shuffled) batch
    pos_idx = torch.argmax(pos_mask.int(), dim=1)
    has_pos = pos_mask.any(dim=1) & (~same).any(dim=1)
    pos_s = sims.gather(1, pos_idx[:, None])
    neg_lse = torch.logsumexp(sims.masked_fill(same, float("-inf")), dim=1, keepdim=True)
    per_anchor = (torch.logaddexp(pos_s, neg_lse) - pos_s).squeeze(1)
    return (per_anchor * has_pos).sum() / has_pos.sum().clamp(min=1)


def _kmeans(X: FloatArray, k: int, seed: int, iters: int = 25) -> np.ndarray:
    """Plain Lloyd's k-means with k-means++ seeding; cluster id per row."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, X.shape[0]))
    centres = [X[rng.integers(X.shape[0])]]
    for _ in range(1, k):
        d2 = np.min([((X - c) ** 2).sum(axis=1) for c in centres], axis=0)
        centres.append(X[rng.choice(X.shape[0], p=d2 / max(d2.sum(), 1e-12))])
    C = np.array(centres)
    labels = np.zeros(X.shape[0], dtype=np.int64)
    for _ in range(iters):
        labels = np.argmin(((X[:, None, :] - C[None]) ** 2).sum(axis=2), axis=1)
        for j in range(k):
            if (labels == j).any():
                C[j] = X[labels == j].mean(axis=0)
    return labels


def _calibrate(S: FloatArray, Y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per model, the least-squares line from similarity to observed quality."""
    m = Y.shape[1]
    slope, intercept = np.zeros(m), np.zeros(m)
    for j in range(m):
        ok = ~np.isnan(Y[:, j])
        s, y = S[ok, j], Y[ok, j]
        var = s.var()
        slope[j] = ((s - s.mean()) * (y - y.mean())).mean() / var if var > 1e-12 else 0.0
        intercept[j] = y.mean() - slope[j] * s.mean()
    return slope, intercept
