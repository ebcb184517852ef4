"""The contract every quality router follows (scikit-learn style).

* The constructor only stores hyperparameters (keyword arguments with defaults).
* ``fit(X, Y, C=None, *, tasks=None)`` learns from prompt features ``X`` (n, d) and observed
  quality ``Y`` (n, m), NaN where a model was not scored, and returns ``self``.
* Learned state lives in attributes whose names end with ``_``.
* ``predict_quality(X)`` returns the predicted quality of every model, shape (n, m).
* ``save(dir)``/``load(dir)`` write JSON plus one ``.npz`` of arrays; no pickle anywhere.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

STATE_FILE = "state.json"
ARRAYS_FILE = "arrays.npz"


class NotFittedError(ValueError, AttributeError):
    """A router was used before ``fit`` (or ``load``)."""


class RouterFormatError(ValueError):
    """A saved router directory is missing, corrupt or of another kind."""


REGISTRY: dict[str, type[QualityRouter]] = {}


def check_features(X: object, n_features: int | None = None) -> FloatArray:
    """``X`` as a finite float64 (n, d) array, or a ValueError saying what is wrong."""
    arr = np.asarray(X, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"X must be 2-D (n_prompts, n_features), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("X contains NaN or infinite values")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"X has {arr.shape[1]} features, the router was fit on {n_features}")
    return arr


def check_targets(Y: object, n_rows: int) -> FloatArray:
    """``Y`` as float64 (n, m): finite or NaN, each model scored at least once."""
    arr = np.asarray(Y, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n_rows:
        raise ValueError(f"Y must have shape ({n_rows}, n_models), got {arr.shape}")
    if np.isinf(arr).any():
        raise ValueError("Y contains infinite values")
    unscored = np.isnan(arr).all(axis=0)
    if unscored.any():
        raise ValueError(f"models at columns {np.flatnonzero(unscored).tolist()} have no scores")
    return arr


class QualityRouter(ABC):
    """Predicts each model's quality on each prompt from prompt features."""

    kind: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            REGISTRY[cls.kind] = cls

    def get_params(self) -> dict[str, Any]:
        """Hyperparameters, read back from the constructor's signature."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def clone(self) -> Self:
        """An unfitted copy with the same hyperparameters."""
        return type(self)(**self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def fitted(self) -> bool:
        return hasattr(self, "n_features_in_")

    def _check_fitted(self) -> None:
        if not self.fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() or load()")

    def fit(
        self, X: object, Y: object, C: object = None, *, tasks: Sequence[str] | None = None
    ) -> Self:
        """Learn from features ``X`` (n, d) and quality ``Y`` (n, m); returns self.

        ``C`` (n, m), the observed USD cost, is accepted for the shared contract and checked;
        quality routers do not use it (cost is the CostPredictor's job). ``tasks`` optionally
        labels each row with its task (used by ``knn-prior``)."""
        x = check_features(X)
        y = check_targets(Y, x.shape[0])
        if C is not None and np.asarray(C).shape != y.shape:
            raise ValueError(f"C must have the shape of Y {y.shape}, got {np.asarray(C).shape}")
        if tasks is not None and len(tasks) != x.shape[0]:
            raise ValueError(f"tasks has {len(tasks)} labels for {x.shape[0]} rows")
        self._fit(x, y, tasks)
        self.n_features_in_ = x.shape[1]
        self.n_models_ = y.shape[1]
        return self

    def predict_quality(self, X: object) -> FloatArray:
        """Predicted quality of each model on each prompt, shape (n, m)."""
        self._check_fitted()
        x = check_features(X, self.n_features_in_)
        return self._predict(x)

    @abstractmethod
    def _fit(self, X: FloatArray, Y: FloatArray, tasks: Sequence[str] | None) -> None: ...

    @abstractmethod
    def _predict(self, X: FloatArray) -> FloatArray: ...

    # -- persistence ---------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write ``state.json`` (kind, hyperparameters, scalars) and ``arrays.npz``."""
        self._check_fitted()
        path.mkdir(parents=True, exist_ok=True)
        scalars: dict[str, Any] = {}
        arrays: dict[str, npt.NDArray[Any]] = {}
        for name, value in vars(self).items():
            if not name.endswith("_") or name.startswith("_"):
                continue
            if isinstance(value, np.ndarray):
                arrays[name] = value
            else:
                scalars[name] = value
        state = {"kind": self.kind, "params": self.get_params(), "state": scalars}
        (path / STATE_FILE).write_text(json.dumps(state, indent=1, sort_keys=True))
        np.savez(path / ARRAYS_FILE, **arrays)  # type: ignore[arg-type]
        self._save_parts(path)

    def _save_parts(self, path: Path) -> None:
        """Hook: routers made of other routers save them in sub-directories."""
        del path

    def _load_parts(self, path: Path) -> None:
        """Hook: the counterpart of ``_save_parts``."""
        del path

    @staticmethod
    def load(path: Path) -> QualityRouter:
        """Rebuild a saved router of any registered kind."""
        try:
            state = json.loads((path / STATE_FILE).read_text())
            kind = state["kind"]
        except (OSError, ValueError, KeyError) as err:
            raise RouterFormatError(f"{path} is not a saved router: {err}") from err
        if kind not in REGISTRY:
            raise RouterFormatError(f"{path}: unknown router kind {kind!r}")
        router = REGISTRY[kind](**state["params"])
        for name, value in state["state"].items():
            setattr(router, name, value)
        with np.load(path / ARRAYS_FILE, allow_pickle=False) as arrays:
            for name in arrays.files:
                setattr(router, name, arrays[name])
        router._load_parts(path)
        return router


def nan_column_means(Y: FloatArray) -> FloatArray:
    """Per-model mean quality over the rows where it was scored."""
    counts = (~np.isnan(Y)).sum(axis=0)
    return np.asarray(np.nansum(Y, axis=0) / np.maximum(counts, 1), dtype=np.float64)
