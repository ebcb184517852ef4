"""Matrix factorisation router, RouteLLM's MF generalised from a pair to many models.

RouteLLM scores a (prompt, model) pair as ``w2 · (v_m ⊙ (W1 x))`` and trains on pairwise
preferences between two models. Here every model has a learned embedding ``v_m`` and a bias,
the same bilinear form gives one logit per model, and training uses the observed quality of
every model (binary cross-entropy) plus, optionally, RouteLLM's pairwise loss on pairs whose
quality differs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from switchyard.routers.models.base import FloatArray
from switchyard.routers.models.training import (
    TorchRouter,
    import_torch,
    masked_bce,
    sigmoid,
    targets,
    to_numpy,
)


class MFRouter(TorchRouter):
    kind = "mf"

    def __init__(
        self,
        rank: int = 64,
        epochs: int = 60,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        pairwise_weight: float = 0.5,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__(
            epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed
        )
        self.rank = rank
        self.pairwise_weight = pairwise_weight

    def _fit(self, X: FloatArray, Y: FloatArray, tasks: Sequence[str] | None) -> None:
        del tasks
        torch: Any = import_torch()
        gen = torch.Generator().manual_seed(self.seed)
        d, m = X.shape[1], Y.shape[1]
        proj = (torch.randn(d, self.rank, generator=gen) / np.sqrt(d)).requires_grad_()
        models = (torch.randn(m, self.rank, generator=gen) * 0.1).requires_grad_()
        w2 = torch.ones(self.rank).requires_grad_()
        bias = torch.zeros(m).requires_grad_()
        x = torch.tensor(X, dtype=torch.float32)
        y, mask = targets(Y)

        def logits(idx: np.ndarray) -> Any:
            return ((x[idx] @ proj)[:, None, :] * models[None, :, :]) @ w2 + bias

        def step(idx: np.ndarray) -> Any:
            z = logits(idx)
            loss = masked_bce(z, y[idx], mask[idx])
            if self.pairwise_weight > 0:
                loss = loss + self.pairwise_weight * _pairwise(torch, z, y[idx], mask[idx])
            return loss

        self._train([proj, models, w2, bias], step, X.shape[0])
        self.proj_ = to_numpy(proj)
        self.model_embeddings_ = to_numpy(models)
        self.w2_ = to_numpy(w2)
        self.bias_ = to_numpy(bias)

    def _predict(self, X: FloatArray) -> FloatArray:
        z = ((X @ self.proj_)[:, None, :] * self.model_embeddings_[None, :, :]) @ self.w2_
        return sigmoid(z + self.bias_)


def _pairwise(torch: Any, z: Any, y: Any, mask: Any) -> Any:
    """Bradley-Terry loss on every pair (a, b) where model a scored higher than b."""
    better = (y[:, :, None] > y[:, None, :]) & (mask[:, :, None] > 0) & (mask[:, None, :] > 0)
    margin = z[:, :, None] - z[:, None, :]
    loss = torch.nn.functional.softplus(-margin)
    count = better.sum().clamp(min=1)
    return (loss * better).sum() / count
