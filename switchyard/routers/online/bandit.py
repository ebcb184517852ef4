"""A contextual bandit on top of the offline router: linear Thompson sampling on the residual.

The offline router predicts every model's reward ``quality − λ·cost`` for a prompt (the
*prior mean*). Each arm (model) keeps a Bayesian linear regression of the realized reward's
*residual* ``reward − prior_mean`` on a low-dimensional context: the prompt embedding pushed
through a fixed, seeded Gaussian random projection to ``dim`` dimensions, plus a bias term.

Why Thompson sampling (not LinUCB): its exploration is randomized, so several gateway replicas
sharing one posterior do not all make the same exploratory choice, and it needs no confidence
schedule. With no data the residual posterior has mean 0, so the choice is the offline router's
``argmax prior_mean`` up to sampling noise of scale ``noise / sqrt(prior_strength)``.

Per arm ``a`` the state is additive sufficient statistics only::

    A[a] = Σ z zᵀ          (d, d)   the data precision, without the prior
    b[a] = Σ (r − p) z     (d,)

and the posterior is ``Λ = prior_strength·I + A``, ``μ = Λ⁻¹ b``, ``θ ~ N(μ, noise²·Λ⁻¹)``.
Drift is handled by discounting: every update multiplies *all* arms' ``A`` and ``b`` by
``discount`` per observed row, so old evidence fades and an unplayed arm's belief relaxes back
to the offline prior (and gets tried again). A shared store (Redis) can hold ``A``/``b`` per
arm and apply the discount lazily as ``discount ** (step_now − step_of_arm)``.

Persistence is ``bandit.json`` (hyperparameters, arm names, counters) plus ``arrays.npz``
(``A``, ``b``, ``projection``); no pickle."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from .stats import ArmStats, Observation, fold

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

STATE_FILE = "bandit.json"
ARRAYS_FILE = "arrays.npz"
KIND = "linear-thompson"


class LinearThompsonBandit:
    """Linear Thompson sampling on the residual of an offline router's predicted reward.

    Parameters (stored as given, scikit-learn style):

    * ``arms`` — model names, in the column order of ``prior_mean``;
    * ``input_dim`` — size of the prompt embedding (384 for all-MiniLM-L6-v2);
    * ``dim`` — size of the random projection (the context has ``dim + 1`` entries with bias);
    * ``prior_strength`` — ridge precision of the residual weights (higher: trust the offline
      router longer);
    * ``noise`` — reward noise scale; scales the Thompson samples (0 gives a greedy bandit);
    * ``discount`` — per-row forgetting factor in (0, 1] for drift;
    * ``seed`` — seeds the projection and the sampling."""

    def __init__(
        self,
        arms: Sequence[str] = (),
        *,
        input_dim: int = 384,
        dim: int = 48,
        prior_strength: float = 100.0,
        noise: float = 0.05,
        discount: float = 0.995,
        seed: int = 0,
    ) -> None:
        if isinstance(arms, str):
            raise TypeError("arms must be a sequence of names, not one string")
        if input_dim < 1 or dim < 1:
            raise ValueError(f"input_dim and dim must be ≥ 1, got {input_dim}, {dim}")
        if not (math.isfinite(prior_strength) and prior_strength > 0):
            raise ValueError(f"prior_strength must be > 0, got {prior_strength}")
        if not (math.isfinite(noise) and noise >= 0):
            raise ValueError(f"noise must be ≥ 0, got {noise}")
        if not (0 < discount <= 1):
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        if len(set(arms)) != len(arms):
            raise ValueError("arm names must be unique")
        self.arms = list(arms)
        self.input_dim = input_dim
        self.dim = dim
        self.prior_strength = prior_strength
        self.noise = noise
        self.discount = discount
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.projection_: FloatArray = rng.normal(0.0, 1.0 / math.sqrt(dim), (input_dim, dim))
        d = dim + 1
        self.arms_: list[str] = list(arms)
        self.A_: FloatArray = np.zeros((len(arms), d, d))
        self.b_: FloatArray = np.zeros((len(arms), d))
        self.n_updates_ = 0
        self._rng = np.random.default_rng([seed, 1])
        self._cache: tuple[FloatArray, FloatArray] | None = None

    # -- parameters and arms -------------------------------------------------------------------

    def get_params(self) -> dict[str, Any]:
        return {
            "arms": list(self.arms),
            "input_dim": self.input_dim,
            "dim": self.dim,
            "prior_strength": self.prior_strength,
            "noise": self.noise,
            "discount": self.discount,
            "seed": self.seed,
        }

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items() if k != "arms")
        return f"LinearThompsonBandit({args})"

    @property
    def n_arms(self) -> int:
        return len(self.arms_)

    @property
    def context_dim(self) -> int:
        return self.dim + 1

    def arm_index(self, name: str) -> int:
        try:
            return self.arms_.index(name)
        except ValueError:
            raise ValueError(f"unknown arm {name!r}; arms are {self.arms_}") from None

    def add_arm(self, name: str) -> int:
        """A new arm with no data: it starts at the prior (the offline prediction) and is
        explored by sampling like any other. Returns its index (the last column)."""
        if name in self.arms_:
            raise ValueError(f"arm {name!r} already exists")
        d = self.context_dim
        self.arms_.append(name)
        self.A_ = np.concatenate([self.A_, np.zeros((1, d, d))])
        self.b_ = np.concatenate([self.b_, np.zeros((1, d))])
        self._cache = None
        return self.n_arms - 1

    def remove_arm(self, name: str) -> None:
        """Drop an arm and its statistics; later columns shift left."""
        j = self.arm_index(name)
        del self.arms_[j]
        self.A_ = np.delete(self.A_, j, axis=0)
        self.b_ = np.delete(self.b_, j, axis=0)
        self._cache = None

    # -- context and posterior ------------------------------------------------------------------

    def context(self, x: object) -> FloatArray:
        """Projected context with a bias term, (n, dim + 1), from embeddings (n, input_dim)."""
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.input_dim:
            raise ValueError(
                f"x must have shape ({self.input_dim},) or (n, {self.input_dim}), got {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise ValueError("x contains NaN or infinite values")
        z = arr @ self.projection_
        return np.concatenate([z, np.ones((z.shape[0], 1))], axis=1)

    def posterior(self) -> tuple[FloatArray, FloatArray]:
        """Residual posterior per arm: mean (m, d) and covariance Λ⁻¹ (m, d, d) (without noise²)."""
        if self._cache is None:
            eye = np.eye(self.context_dim)
            cov = np.linalg.inv(self.prior_strength * eye[None] + self.A_)
            cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
            mean = np.asarray(np.einsum("mij,mj->mi", cov, self.b_), dtype=np.float64)
            self._cache = (mean, np.asarray(cov, dtype=np.float64))
        return self._cache

    def _check_prior(self, prior_mean: object, n: int) -> FloatArray:
        prior = np.asarray(prior_mean, dtype=np.float64)
        if prior.ndim == 1:
            prior = prior[None, :]
        if prior.shape != (n, self.n_arms):
            raise ValueError(
                f"prior_mean must have shape ({n}, {self.n_arms}) (rows × arms), got {prior.shape}"
            )
        if not np.isfinite(prior).all():
            raise ValueError("prior_mean contains NaN or infinite values")
        return prior

    # -- acting --------------------------------------------------------------------------------

    def scores(
        self,
        x: object,
        prior_mean: object,
        allowed: object = None,
        *,
        sample: bool = True,
    ) -> FloatArray:
        """Per-row, per-arm score (n, m): prior mean + a Thompson sample of the residual
        (its posterior mean when ``sample`` is False); ``-inf`` where ``allowed`` is False."""
        z = self.context(x)
        out = self._check_prior(prior_mean, z.shape[0]) + self.residual(z, sample=sample)
        if allowed is not None:
            mask = np.asarray(allowed, dtype=bool)
            if mask.ndim == 1:
                mask = np.broadcast_to(mask[None, :], out.shape)
            if mask.shape != out.shape:
                raise ValueError(f"allowed must have shape {out.shape} or ({self.n_arms},)")
            if not mask.any(axis=1).all():
                raise ValueError("allowed excludes every arm for some row")
            out = np.where(mask, out, -np.inf)
        return out

    def residual(self, z: FloatArray, *, sample: bool = True) -> FloatArray:
        """Per-row, per-arm residual (n, m) for contexts ``z`` (from :meth:`context`): a
        Thompson sample from the posterior, or its mean when ``sample`` is False."""
        mean, cov = self.posterior()
        out = np.asarray(z @ mean.T, dtype=np.float64)
        if sample and self.noise > 0 and self.n_arms:
            var = ((z[None] @ cov) * z[None]).sum(axis=2).T  # zᵀ Λ⁻¹ z per row and arm, BLAS
            eps = self._rng.standard_normal(out.shape)
            out = out + self.noise * np.sqrt(np.maximum(var, 0.0)) * eps
        return out

    def select(
        self, x: object, prior_mean: object, allowed: object = None, *, sample: bool = True
    ) -> IntArray:
        """Chosen arm index per row, (n,)."""
        if not self.n_arms:
            raise ValueError("the bandit has no arms")
        return np.asarray(
            np.argmax(self.scores(x, prior_mean, allowed, sample=sample), axis=1), dtype=np.int64
        )

    # -- learning ------------------------------------------------------------------------------

    def partial_fit(self, x: object, arm: object, reward: object, prior_mean: object) -> Self:
        """Learn from observed rewards of the chosen arms (one row or a batch).

        ``arm`` are indices or names; ``prior_mean`` the offline predicted reward of each row's
        chosen arm, shape (n,), or of every arm, shape (n, m). The residual is what is learned;
        all arms' statistics are discounted by ``discount ** n`` first."""
        z = self.context(x)
        n = z.shape[0]
        arms = self._arm_indices(arm, n)
        r = np.asarray(reward, dtype=np.float64).reshape(-1)
        if r.shape != (n,) or not np.isfinite(r).all():
            raise ValueError(f"reward must be {n} finite numbers, got shape {r.shape}")
        p = np.asarray(prior_mean, dtype=np.float64)
        if p.ndim == 2:
            p = self._check_prior(p, n)[np.arange(n), arms]
        p = p.reshape(-1)
        if p.shape != (n,) or not np.isfinite(p).all():
            raise ValueError(f"prior_mean must be {n} finite numbers or ({n}, {self.n_arms})")
        if self.discount < 1:
            factor = self.discount**n
            self.A_ *= factor
            self.b_ *= factor
        resid = r - p
        np.add.at(self.A_, arms, np.einsum("ni,nj->nij", z, z))
        np.add.at(self.b_, arms, resid[:, None] * z)
        self.n_updates_ += n
        self._cache = None
        return self

    def learn(self, rows: Sequence[Observation]) -> Self:
        """Learn rows whose context and residual are already known (a replica applying
        feedback given elsewhere); same arithmetic as :meth:`partial_fit`, row by row.
        Rows for arms this bandit does not have are skipped."""
        stats = {a: ArmStats(self.A_[j], self.b_[j], self.n_updates_) for a, j in self._index()}
        step = fold(stats, self.n_updates_, rows, self.discount, self.context_dim)
        return self.set_stats(stats, step)

    def set_stats(self, arms: Mapping[str, ArmStats], step: int) -> Self:
        """Take shared statistics as of global ``step`` (arms missing from ``arms`` get none)."""
        d = self.context_dim
        A, b = np.zeros((self.n_arms, d, d)), np.zeros((self.n_arms, d))
        for name, j in self._index():
            if (stats := arms.get(name)) is not None:
                A[j], b[j] = stats.at(step, self.discount)
        self.A_, self.b_, self.n_updates_ = A, b, step
        self._cache = None
        return self

    def _index(self) -> list[tuple[str, int]]:
        return [(name, j) for j, name in enumerate(self.arms_)]

    def _arm_indices(self, arm: object, n: int) -> IntArray:
        items = [arm] if isinstance(arm, str | int | np.integer) else list(np.asarray(arm).ravel())
        idx = []
        for item in items:
            if isinstance(item, str | np.str_):
                idx.append(self.arm_index(str(item)))
            elif isinstance(item, int | np.integer) and 0 <= int(item) < self.n_arms:
                idx.append(int(item))
            else:
                raise ValueError(f"unknown arm {item!r}; there are {self.n_arms} arms")
        if len(idx) != n:
            raise ValueError(f"{len(idx)} arms given for {n} rows")
        return np.asarray(idx, dtype=np.int64)

    # -- state and persistence -----------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        """Arm names, counters and copies of the arrays (``A``, ``b``, ``projection``)."""
        return {
            "kind": KIND,
            "arms": list(self.arms_),
            "n_updates": self.n_updates_,
            "A": self.A_.copy(),
            "b": self.b_.copy(),
            "projection": self.projection_.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> Self:
        """Restore what :meth:`get_state` returned (shapes are checked)."""
        arms = [str(a) for a in state["arms"]]
        d = self.context_dim
        A = np.asarray(state["A"], dtype=np.float64)
        b = np.asarray(state["b"], dtype=np.float64)
        proj = np.asarray(state["projection"], dtype=np.float64)
        if A.shape != (len(arms), d, d) or b.shape != (len(arms), d):
            raise ValueError(f"state arrays do not fit {len(arms)} arms × context {d}")
        if proj.shape != (self.input_dim, self.dim):
            raise ValueError(f"projection must be {(self.input_dim, self.dim)}, got {proj.shape}")
        self.arms_, self.A_, self.b_, self.projection_ = arms, A.copy(), b.copy(), proj.copy()
        self.n_updates_ = int(state.get("n_updates", 0))
        self._cache = None
        return self

    def save(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        state = self.get_state()
        meta = {
            "kind": KIND,
            "format": 1,
            "params": self.get_params(),
            "arms": state["arms"],
            "n_updates": state["n_updates"],
        }
        (path / STATE_FILE).write_text(json.dumps(meta, indent=1))
        np.savez(path / ARRAYS_FILE, A=state["A"], b=state["b"], projection=state["projection"])

    @classmethod
    def load(cls, path: Path) -> LinearThompsonBandit:
        try:
            meta = json.loads((path / STATE_FILE).read_text())
            if meta.get("kind") != KIND:
                raise ValueError(f"not a {KIND} bandit: {meta.get('kind')!r}")
            bandit = cls(**meta["params"])
            with np.load(path / ARRAYS_FILE, allow_pickle=False) as arrays:
                state = {name: arrays[name] for name in arrays.files}
        except (OSError, KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"{path} is not a saved bandit: {err!r}") from err
        state.update(arms=meta["arms"], n_updates=meta["n_updates"])
        return bandit.set_state(state)
