"""Small shared pieces for the routers trained with PyTorch (the ``train`` extra).

Training needs torch; prediction runs on the saved NumPy arrays only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from switchyard.routers.models.base import FloatArray, QualityRouter

if TYPE_CHECKING:
    import torch


def import_torch() -> object:
    """torch, or an ImportError that says which extra to install."""
    try:
        import torch
    except ImportError as err:  # pragma: no cover - depends on the install
        raise ImportError(
            "training this router needs PyTorch: pip install 'switchyard[train]' "
            "(pip install torch==2.13.0 first for the CPU build)"
        ) from err
    return torch


def minibatches(n: int, batch_size: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Shuffled index batches covering ``range(n)`` once."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def masked_bce(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on soft targets in [0, 1], averaged over observed entries."""
    import torch.nn.functional as F

    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1.0)


def fit_loop(
    params: list[torch.Tensor],
    step_loss: Callable[[np.ndarray], torch.Tensor],
    *,
    n: int,
    epochs: int,
    batch_size: int,
    lr: float,
    weight_decay: float,
    seed: int,
) -> list[float]:
    """AdamW over ``epochs`` passes of shuffled minibatches; returns the mean loss per epoch."""
    import torch

    # These models are tiny (batches of ~128 × 384): one thread is as fast on a quiet machine
    # and an order of magnitude faster on a busy one (no OpenMP spin-waiting for a core).
    torch.set_num_threads(1)
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    history: list[float] = []
    for _ in range(epochs):
        losses = []
        for idx in minibatches(n, batch_size, rng):
            optimiser.zero_grad()
            loss = step_loss(idx)
            loss.backward()  # type: ignore[no-untyped-call]
            optimiser.step()
            losses.append(float(loss.detach()))
        history.append(float(np.mean(losses)))
    return history


def targets(Y: FloatArray) -> tuple[torch.Tensor, torch.Tensor]:
    """Quality with NaN replaced by 0, and the 0/1 mask of observed entries."""
    import torch

    mask = ~np.isnan(Y)
    return (
        torch.tensor(np.nan_to_num(Y), dtype=torch.float32),
        torch.tensor(mask, dtype=torch.float32),
    )


def to_numpy(t: torch.Tensor) -> FloatArray:
    return np.asarray(t.detach().cpu().numpy(), dtype=np.float64)


def sigmoid(z: FloatArray) -> FloatArray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -60, 60))), dtype=np.float64)


class TorchRouter(QualityRouter):
    """Base of the routers trained by minibatch AdamW: holds the shared optimisation
    hyperparameters and runs the loop; subclasses build the model and the loss."""

    def __init__(
        self, *, epochs: int, lr: float, weight_decay: float, batch_size: int, seed: int
    ) -> None:
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.seed = seed

    def _train(
        self, params: list[torch.Tensor], step: Callable[[np.ndarray], torch.Tensor], n: int
    ) -> None:
        """Run :func:`fit_loop` with this router's hyperparameters; keeps ``loss_history_``."""
        self.loss_history_ = fit_loop(
            params,
            step,
            n=n,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            weight_decay=self.weight_decay,
            seed=self.seed,
        )
