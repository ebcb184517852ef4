"""The knn-residual router: knn-prior plus an MLP trained on its out-of-fold errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from switchyard.routers.models import KNNResidualRouter, QualityRouter, make_router

FAST: dict[str, Any] = {"k": 20, "folds": 3, "hidden": 16, "max_epochs": 8, "n_bags": 2}


def _data(n: int = 240, d: int = 12, seed: int = 0) -> tuple[Any, Any, list[str]]:
    """Four prompt clusters in two tasks; model j is right on cluster j, model 2 on half of
    cluster 2, so the best single model is right on ~1/4 of prompts and routing on ~7/8."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 4, n)
    centres = rng.normal(size=(4, d)) * 3
    X = centres[cluster] + rng.normal(size=(n, d)) * 0.3
    Y = (cluster[:, None] == np.arange(4)[None, :]).astype(np.float64)
    Y[(cluster == 2) & (np.arange(n) % 2 == 0), 2] = 0.0
    Y[::9, 3] = np.nan  # model 3 unscored on some prompts
    return X, Y, [f"task{c // 2}" for c in cluster]


def test_registered_and_predicts_one_column_per_model() -> None:
    X, Y, tasks = _data()
    router = make_router("knn-residual", **FAST)
    assert isinstance(router, KNNResidualRouter)
    assert router.fit(X, Y, tasks=tasks) is router
    pred = router.predict_quality(X[:10])
    assert pred.shape == (10, 4)
    assert np.isfinite(pred).all() and (pred >= 0).all() and (pred <= 1).all()
    assert router.epochs_.shape == (2,) and (router.epochs_ >= 1).all()


def test_save_and_load_round_trip_gives_identical_predictions(tmp_path: Path) -> None:
    X, Y, tasks = _data()
    router = KNNResidualRouter(**FAST).fit(X, Y, tasks=tasks)
    router.save(tmp_path / "r")
    loaded = QualityRouter.load(tmp_path / "r")
    assert isinstance(loaded, KNNResidualRouter)
    assert loaded.get_params() == router.get_params()
    np.testing.assert_allclose(loaded.predict_quality(X), router.predict_quality(X), atol=1e-12)
    with np.load(tmp_path / "r" / "arrays.npz", allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)


def test_fits_without_task_labels() -> None:
    X, Y, _ = _data()
    pred = KNNResidualRouter(**FAST).fit(X, Y).predict_quality(X[:5])
    assert pred.shape == (5, 4)


def test_routes_better_than_the_best_single_model_on_held_out_prompts() -> None:
    X, Y, tasks = _data(n=400)
    train, test = slice(0, 300), slice(300, None)
    router = KNNResidualRouter(**FAST).fit(X[train], Y[train], tasks=tasks[train])
    chosen = router.predict_quality(X[test]).argmax(axis=1)
    routed = np.nanmean(np.nan_to_num(Y[test])[np.arange(100), chosen])
    best_single = np.nanmax(np.nanmean(Y[train], axis=0))
    assert routed > best_single + 0.4


@pytest.mark.parametrize("bad", [{"max_epochs": 0}, {"n_bags": 0}, {"val_frac": 1.0}])
def test_rejects_bad_hyperparameters(bad: dict[str, Any]) -> None:
    X, Y, _ = _data()
    with pytest.raises(ValueError, match="max_epochs"):
        KNNResidualRouter(**{**FAST, **bad}).fit(X, Y)
