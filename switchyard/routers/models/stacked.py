"""Residual stacking: an MLP that learns to correct the ``knn-prior`` router in logit space."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from switchyard.routers.models.base import FloatArray, QualityRouter
from switchyard.routers.models.knn import TaskPriorKNNRouter
from switchyard.routers.models.mlp import gelu
from switchyard.routers.models.training import (
    import_torch,
    masked_bce,
    minibatches,
    sigmoid,
    targets,
)


def logit(p: FloatArray, eps: float = 1e-3) -> FloatArray:
    """log(p / (1 - p)) with p clipped to [eps, 1 - eps]."""
    q = np.clip(p, eps, 1.0 - eps)
    return np.asarray(np.log(q / (1.0 - q)), dtype=np.float64)


class KNNResidualRouter(QualityRouter):
    """``knn-prior`` plus a small MLP trained on what the kNN estimate gets wrong.

    The task-prior kNN router is a strong, stable estimate; an MLP sees patterns in the
    embedding that neighbour averaging smooths away. This router stacks them:

        q(x) = sigmoid(logit(knn_prior(x)) + mlp(x))

    The MLP is trained with masked binary cross-entropy where the kNN logit is a fixed offset.
    So that the MLP learns the kNN's errors on *unseen* prompts (not its in-sample fit, which
    includes the prompt itself), the training offsets are out-of-fold: the training rows are
    split into ``folds`` parts and each part's offset comes from a kNN fit on the others. The
    MLP's output layer starts at zero (the stack starts as plain kNN); the number of epochs is
    chosen by early stopping (validation BCE) on a ``val_frac`` hold-out of the training rows,
    after which the MLP is refit on all rows for that many epochs. ``n_bags`` such MLPs, each
    with its own seed and hold-out, are averaged in logit space to cut seed noise. No
    hyperparameter is tuned on evaluation data. Prediction uses NumPy only."""

    kind = "knn-residual"

    def __init__(
        self,
        k: int = 200,
        temperature: float = 0.1,
        alpha: float = 20.0,
        folds: int = 5,
        hidden: int = 128,
        max_epochs: int = 30,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        dropout: float = 0.2,
        batch_size: int = 128,
        val_frac: float = 0.15,
        n_bags: int = 3,
        seed: int = 0,
    ) -> None:
        self.k = k
        self.temperature = temperature
        self.alpha = alpha
        self.folds = folds
        self.hidden = hidden
        self.max_epochs = max_epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.batch_size = batch_size
        self.val_frac = val_frac
        self.n_bags = n_bags
        self.seed = seed

    def _knn(self) -> TaskPriorKNNRouter:
        return TaskPriorKNNRouter(
            k=self.k, temperature=self.temperature, alpha=self.alpha, seed=self.seed
        )

    def _out_of_fold(self, X: FloatArray, Y: FloatArray, tasks: Sequence[str] | None) -> FloatArray:
        """kNN logits for every training row from a kNN that did not see that row."""
        n = X.shape[0]
        fold = np.random.default_rng(self.seed).permutation(n) % max(self.folds, 2)
        out = np.zeros(Y.shape)
        for f in np.unique(fold):
            train = fold != f
            labels = (
                None if tasks is None else [t for t, keep in zip(tasks, train, strict=True) if keep]
            )
            knn = self._knn().fit(X[train], Y[train], tasks=labels)
            out[~train] = knn.predict_quality(X[~train])
        return logit(out)

    def _fit(self, X: FloatArray, Y: FloatArray, tasks: Sequence[str] | None) -> None:
        if self.max_epochs < 1 or self.n_bags < 1 or not 0.0 < self.val_frac < 1.0:
            raise ValueError("max_epochs and n_bags must be >= 1 and val_frac in (0, 1)")
        offset = self._out_of_fold(X, Y, tasks)
        bags = [self._fit_bag(X, Y, offset, self.seed + b) for b in range(self.n_bags)]
        self.epochs_ = np.array([epochs for epochs, _ in bags], dtype=np.int64)
        self.W1_, self.b1_, self.W2_, self.b2_ = (
            np.stack([params[i] for _, params in bags]) for i in range(4)
        )
        self._knn_router = self._knn().fit(X, Y, tasks=tasks)

    def _fit_bag(
        self, X: FloatArray, Y: FloatArray, offset: FloatArray, seed: int
    ) -> tuple[int, list[FloatArray]]:
        """One residual MLP: epochs chosen on a random hold-out, then refit on all rows."""
        draws = np.random.default_rng(seed + 1).random(X.shape[0])
        held: npt.NDArray[np.bool_] = np.asarray(draws < self.val_frac)
        if held.all() or not held.any():
            held = np.asarray(np.arange(X.shape[0]) % 2 == 0)
        valid = (X[held], Y[held], offset[held])
        curve = self._train(X[~held], Y[~held], offset[~held], self.max_epochs, seed, valid)[1]
        epochs = int(np.argmin(curve)) + 1
        return epochs, self._train(X, Y, offset, epochs, seed)[0]

    def _train(
        self,
        X: FloatArray,
        Y: FloatArray,
        offset: FloatArray,
        epochs: int,
        seed: int,
        valid: tuple[FloatArray, FloatArray, FloatArray] | None = None,
    ) -> tuple[list[FloatArray], list[float]]:
        """Train the residual MLP; returns its weights and the validation loss per epoch."""
        torch: Any = import_torch()
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        nn = torch.nn
        net = nn.Sequential(
            nn.Linear(X.shape[1], self.hidden),
            nn.GELU(approximate="tanh"),
            nn.Dropout(self.dropout),
            nn.Linear(self.hidden, Y.shape[1]),
        )
        with torch.no_grad():
            net[3].weight.zero_()
            net[3].bias.zero_()
        x, off = (torch.tensor(a, dtype=torch.float32) for a in (X, offset))
        y, mask = targets(Y)
        opt = torch.optim.AdamW(net.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        rng = np.random.default_rng(seed)
        curve: list[float] = []
        for _ in range(epochs):
            net.train()
            for idx in minibatches(X.shape[0], self.batch_size, rng):
                opt.zero_grad()
                masked_bce(net(x[idx]) + off[idx], y[idx], mask[idx]).backward()  # type: ignore[no-untyped-call]
                opt.step()
            if valid is not None:
                net.eval()
                with torch.no_grad():
                    z = net(torch.tensor(valid[0], dtype=torch.float32))
                    yv, mv = targets(valid[1])
                    off_v = torch.tensor(valid[2], dtype=torch.float32)
                    curve.append(float(masked_bce(z + off_v, yv, mv)))
        weights = [net[0].weight.T, net[0].bias, net[3].weight.T, net[3].bias]
        return [np.asarray(w.detach().numpy(), dtype=np.float64) for w in weights], curve

    def _predict(self, X: FloatArray) -> FloatArray:
        base = logit(self._knn_router.predict_quality(X))
        residual = np.zeros_like(base)
        for W1, b1, W2, b2 in zip(self.W1_, self.b1_, self.W2_, self.b2_, strict=True):
            residual += gelu(X @ W1 + b1) @ W2 + b2
        return sigmoid(base + residual / len(self.W1_))

    def _save_parts(self, path: Path) -> None:
        self._knn_router.save(path / "knn")

    def _load_parts(self, path: Path) -> None:
        loaded = QualityRouter.load(path / "knn")
        if not isinstance(loaded, TaskPriorKNNRouter):
            raise TypeError(f"{path / 'knn'} does not hold a knn-prior router")
        self._knn_router = loaded
