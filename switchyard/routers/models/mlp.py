"""Multi-layer perceptron router: one hidden layer, a sigmoid output per model."""

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


class MLPRouter(TorchRouter):
    """Predicts every model's quality at once from the prompt embedding.

    Trained with binary cross-entropy on the observed (prompt, model) scores only; weights are
    kept as NumPy arrays, so prediction needs no torch."""

    kind = "mlp"

    def __init__(
        self,
        hidden: int = 256,
        epochs: int = 40,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        dropout: float = 0.2,
        batch_size: int = 128,
        seed: int = 0,
    ) -> None:
        super().__init__(
            epochs=epochs, lr=lr, weight_decay=weight_decay, batch_size=batch_size, seed=seed
        )
        self.hidden = hidden
        self.dropout = dropout

    def _fit(self, X: FloatArray, Y: FloatArray, tasks: Sequence[str] | None) -> None:
        del tasks
        torch: Any = import_torch()
        torch.manual_seed(self.seed)
        net = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], self.hidden),
            torch.nn.GELU(approximate="tanh"),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, Y.shape[1]),
        )
        x = torch.tensor(X, dtype=torch.float32)
        y, mask = targets(Y)

        def step(idx: np.ndarray) -> Any:
            return masked_bce(net(x[idx]), y[idx], mask[idx])

        net.train()
        self._train(list(net.parameters()), step, X.shape[0])
        self.W1_ = to_numpy(net[0].weight.T)
        self.b1_ = to_numpy(net[0].bias)
        self.W2_ = to_numpy(net[3].weight.T)
        self.b2_ = to_numpy(net[3].bias)

    def _predict(self, X: FloatArray) -> FloatArray:
        h = X @ self.W1_ + self.b1_
        return sigmoid(gelu(h) @ self.W2_ + self.b2_)


def gelu(h: FloatArray) -> FloatArray:
    """GELU, tanh form (what the torch layer uses)."""
    return np.asarray(0.5 * h * (1.0 + np.tanh(0.7978845608028654 * (h + 0.044715 * h**3))))
