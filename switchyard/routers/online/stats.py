"""Per-arm bandit statistics that several processes can share, with the discount applied lazily.

The bandit (``LinearThompsonBandit``) discounts *every* arm by ``discount`` for each observed
row. A shared store cannot rewrite every arm on every update, so each arm keeps the step at
which it was last written, and the discount it missed since then is applied when it is read
or next written: at global step ``t`` an arm last written at step ``s`` is worth
``discount ** (t − s) · (A, b)``. Replaying the same rows in the same order therefore gives
exactly the in-process bandit's statistics, whoever applies them.

These are pure functions on numpy arrays; where the arrays live (a Redis hash, memory) and
how updates are made atomic is the caller's business.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(slots=True)
class ArmStats:
    """One arm's additive statistics as of step ``step``: ``A = Σ z zᵀ``, ``b = Σ resid·z``."""

    A: FloatArray
    b: FloatArray
    step: int = 0
    n: int = 0

    @classmethod
    def empty(cls, dim: int) -> ArmStats:
        return cls(np.zeros((dim, dim)), np.zeros(dim))

    def at(self, step: int, discount: float) -> tuple[FloatArray, FloatArray]:
        """``(A, b)`` discounted forward to global step ``step``."""
        factor = discount ** max(step - self.step, 0)
        return self.A * factor, self.b * factor

    def to_bytes(self) -> tuple[bytes, bytes]:
        return self.A.astype("<f8").tobytes(), self.b.astype("<f8").tobytes()

    @classmethod
    def from_bytes(cls, A: bytes, b: bytes, step: int, n: int, dim: int) -> ArmStats:
        a_arr = np.frombuffer(A, dtype="<f8").astype(np.float64)
        b_arr = np.frombuffer(b, dtype="<f8").astype(np.float64)
        if a_arr.size != dim * dim or b_arr.size != dim:
            raise ValueError(f"arm statistics do not fit a context of {dim}")
        return cls(a_arr.reshape(dim, dim), b_arr, step, n)


@dataclass(frozen=True, slots=True)
class Observation:
    """One learned row: the arm, its context ``z`` (bias included) and the reward residual."""

    arm: str
    z: tuple[float, ...]
    residual: float


def fold(
    arms: dict[str, ArmStats],
    step: int,
    rows: Iterable[Observation],
    discount: float,
    dim: int,
) -> int:
    """Apply ``rows`` in order to ``arms`` (missing arms start empty), from global ``step``.

    Each row advances the global step by one; only the row's arm is written (with the discount
    it missed). Returns the new global step; ``arms`` is updated in place."""
    for row in rows:
        step += 1
        z = np.asarray(row.z, dtype=np.float64)
        if z.shape != (dim,) or not np.isfinite(z).all() or not np.isfinite(row.residual):
            raise ValueError(f"an observation needs {dim} finite context values and a residual")
        stats = arms.get(row.arm) or ArmStats.empty(dim)
        A, b = stats.at(step, discount)  # as the in-process bandit: discount, then add
        arms[row.arm] = ArmStats(A + np.outer(z, z), b + row.residual * z, step, stats.n + 1)
    return step
