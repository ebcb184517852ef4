"""Every router in the zoo honours the same scikit-learn-style contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from switchyard.routers.models import NotFittedError, QualityRouter, RouterFormatError, make_router

FAST: dict[str, dict[str, Any]] = {
    "random": {},
    "best-single": {},
    "knn": {"k": 5},
    "mlp": {"epochs": 5, "hidden": 16},
    "mf": {"epochs": 5, "rank": 8},
    "routerdc": {"epochs": 5, "dim": 16, "top_k": 1, "bottom_k": 1, "n_clusters": 2},
    "default": {},
}


def _data(n: int = 120, d: int = 12, m: int = 3, seed: int = 0) -> tuple[Any, Any]:
    """Two prompt clusters; model 0 is right on cluster A, model 1 on cluster B."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 2, n)
    centres = rng.normal(size=(2, d)) * 3
    X = centres[cluster] + rng.normal(size=(n, d)) * 0.3
    Y = np.zeros((n, m))
    Y[cluster == 0, 0] = 1.0
    Y[cluster == 1, 1] = 1.0
    Y[:, 2] = 0.5
    Y[::7, 2] = np.nan  # model 2 unscored on some prompts
    return X, Y


@pytest.fixture(params=sorted(FAST))
def router(request: pytest.FixtureRequest) -> QualityRouter:
    return make_router(request.param, **FAST[request.param])


def test_fit_returns_self_and_predicts_one_column_per_model(router: QualityRouter) -> None:
    X, Y = _data()
    assert router.fit(X, Y) is router
    pred = router.predict_quality(X[:10])
    assert pred.shape == (10, 3)
    assert np.isfinite(pred).all()


def test_predicting_before_fit_raises_not_fitted(router: QualityRouter) -> None:
    with pytest.raises(NotFittedError, match="not fitted"):
        router.predict_quality(np.zeros((1, 12)))


def test_save_and_load_round_trip_gives_identical_predictions(
    router: QualityRouter, tmp_path: Path
) -> None:
    X, Y = _data()
    router.fit(X, Y)
    router.save(tmp_path / "r")
    loaded = QualityRouter.load(tmp_path / "r")
    assert type(loaded) is type(router)
    assert loaded.get_params() == router.get_params()
    np.testing.assert_allclose(loaded.predict_quality(X), router.predict_quality(X), atol=1e-9)


def test_saved_router_contains_no_pickle(router: QualityRouter, tmp_path: Path) -> None:
    X, Y = _data()
    router.fit(X, Y).save(tmp_path)
    with np.load(tmp_path / "arrays.npz", allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)


def test_clone_is_unfitted_with_same_params(router: QualityRouter) -> None:
    X, Y = _data()
    router.fit(X, Y)
    twin = router.clone()
    assert twin.get_params() == router.get_params()
    assert not twin.fitted


@pytest.mark.parametrize(
    ("X", "Y", "message"),
    [
        (np.zeros(5), np.zeros((5, 3)), "2-D"),
        (np.full((5, 4), np.nan), np.zeros((5, 3)), "NaN"),
        (np.zeros((5, 4)), np.zeros((4, 3)), "shape"),
        (np.zeros((5, 4)), np.full((5, 3), np.nan), "no scores"),
        (np.zeros((5, 4)), np.full((5, 3), np.inf), "infinite"),
    ],
)
def test_bad_training_input_is_rejected_with_a_reason(
    router: QualityRouter, X: Any, Y: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        router.fit(X, Y)


def test_wrong_feature_count_at_predict_time_is_rejected(router: QualityRouter) -> None:
    X, Y = _data()
    router.fit(X, Y)
    with pytest.raises(ValueError, match="features"):
        router.predict_quality(np.zeros((2, 5)))


@pytest.mark.parametrize("name", ["knn", "mlp", "mf", "routerdc"])
def test_learned_routers_pick_the_right_model_per_cluster(name: str) -> None:
    X, Y = _data(n=400)
    params = {**FAST[name], "epochs": 30} if "epochs" in FAST[name] else FAST[name]
    router = make_router(name, **params).fit(X[:300], Y[:300])
    picks = router.predict_quality(X[300:]).argmax(axis=1)
    best = Y[300:, :2].argmax(axis=1)
    assert (picks == best).mean() > 0.9


def test_unknown_router_name_lists_the_choices() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        make_router("nope")


def test_loading_a_directory_that_is_not_a_router_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(RouterFormatError, match="not a saved router"):
        QualityRouter.load(tmp_path)
    (tmp_path / "state.json").write_text('{"kind": "alien", "params": {}, "state": {}}')
    with pytest.raises(RouterFormatError, match="unknown router kind"):
        QualityRouter.load(tmp_path)
