"""The ensemble router: a weighted average of its members' predicted quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from switchyard.routers.models import EnsembleRouter, QualityRouter, make_router

MEMBERS: list[list[Any]] = [
    ["knn", {"k": 5}],
    ["best-single", {}],
    ["knn-prior", {"k": 10, "alpha": 5.0}],
]


def _data(n: int = 90, d: int = 8, m: int = 3, seed: int = 0) -> tuple[Any, Any, list[str]]:
    """Three prompt clusters, model j right on cluster j; model 2 unscored on some prompts."""
    rng = np.random.default_rng(seed)
    cluster = rng.integers(0, 3, n)
    centres = rng.normal(size=(3, d)) * 3
    X = centres[cluster] + rng.normal(size=(n, d)) * 0.3
    Y = (cluster[:, None] == np.arange(m)[None, :]).astype(np.float64)
    Y[::5, 2] = np.nan
    return X, Y, [f"task{c}" for c in cluster]


def _member_predictions(X: Any, Y: Any, tasks: list[str], query: Any) -> list[Any]:
    """Each member fitted on its own, as the ensemble fits it."""
    return [
        make_router(kind, **params).fit(X, Y, tasks=tasks).predict_quality(query)
        for kind, params in MEMBERS
    ]


@pytest.mark.parametrize(
    ("weights", "normalised"),
    [(None, [1 / 3, 1 / 3, 1 / 3]), ([2.0, 1.0, 1.0], [0.5, 0.25, 0.25]), ([0, 0, 3], [0, 0, 1])],
    ids=["equal", "weighted", "one-member"],
)
def test_prediction_is_the_weighted_mean_of_the_members(
    weights: list[float] | None, normalised: list[float]
) -> None:
    X, Y, tasks = _data()
    query = X[:25] + 0.05
    ensemble = EnsembleRouter(MEMBERS, weights).fit(X, Y, tasks=tasks)
    preds = _member_predictions(X, Y, tasks, query)
    expected = sum(w * p for w, p in zip(normalised, preds, strict=True))
    np.testing.assert_allclose(ensemble.predict_quality(query), expected, atol=1e-12)
    assert ensemble.predict_quality(query).shape == (25, 3)


def test_members_disagree_so_the_average_is_not_trivial() -> None:
    X, Y, tasks = _data()
    knn, best, _ = _member_predictions(X, Y, tasks, X[:25])
    assert np.abs(knn - best).max() > 0.3


def test_ensemble_is_registered_and_built_by_name() -> None:
    router = make_router("ensemble", members=MEMBERS[:2], weights=[1.0, 3.0])
    assert isinstance(router, EnsembleRouter)
    assert router.get_params() == {"members": MEMBERS[:2], "weights": [1.0, 3.0]}
    assert router.clone().get_params() == router.get_params()


def test_members_are_json_describable_pairs() -> None:
    router = EnsembleRouter((("knn", {"k": 3}), ("mlp", {"epochs": 2})))
    assert router.members == [["knn", {"k": 3}], ["mlp", {"epochs": 2}]]
    assert json.loads(json.dumps(router.get_params())) == router.get_params()


def test_save_and_load_round_trip_keeps_members_in_subdirectories(tmp_path: Path) -> None:
    X, Y, tasks = _data()
    members = [*MEMBERS, ["mlp", {"epochs": 3, "hidden": 8}]]
    ensemble = EnsembleRouter(members, [1.0, 0.5, 2.0, 1.0]).fit(X, Y, tasks=tasks)
    ensemble.save(tmp_path / "ens")
    subdirs = sorted(p.name for p in (tmp_path / "ens").iterdir() if p.is_dir())
    assert subdirs == ["member-0", "member-1", "member-2", "member-3"]
    for i, (kind, _) in enumerate(members):
        state = json.loads((tmp_path / "ens" / f"member-{i}" / "state.json").read_text())
        assert state["kind"] == kind
    loaded = QualityRouter.load(tmp_path / "ens")
    assert isinstance(loaded, EnsembleRouter)
    assert loaded.get_params() == ensemble.get_params()
    np.testing.assert_array_equal(loaded.predict_quality(X), ensemble.predict_quality(X))


def test_nested_ensembles_round_trip(tmp_path: Path) -> None:
    X, Y, tasks = _data()
    inner = ["ensemble", {"members": MEMBERS[:2], "weights": [1.0, 1.0]}]
    outer = EnsembleRouter([inner, MEMBERS[2]], [1.0, 1.0]).fit(X, Y, tasks=tasks)
    outer.save(tmp_path)
    assert (tmp_path / "member-0" / "member-1" / "state.json").is_file()
    loaded = QualityRouter.load(tmp_path)
    np.testing.assert_array_equal(loaded.predict_quality(X), outer.predict_quality(X))


@pytest.mark.parametrize(
    "weights",
    [[1.0, -1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 1.0], [1.0, 1.0, 1.0, 1.0]],
    ids=["negative", "all-zero", "too-few", "too-many"],
)
def test_bad_weights_are_rejected(weights: list[float]) -> None:
    X, Y, tasks = _data(n=30)
    with pytest.raises(ValueError, match="weights must be non-negative, one per member"):
        EnsembleRouter(MEMBERS, weights).fit(X, Y, tasks=tasks)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_weights_are_rejected(bad: float) -> None:
    X, Y, tasks = _data(n=30)
    with pytest.raises(ValueError, match="weights"):
        EnsembleRouter(MEMBERS, [bad, 1.0, 1.0]).fit(X, Y, tasks=tasks)


@pytest.mark.parametrize(
    "members",
    [[["knn", {}], ["alien", {}]], [["default", {}]]],
    ids=["unknown-kind", "default-is-not-a-kind"],
)
def test_unknown_member_kinds_are_rejected(members: list[list[Any]]) -> None:
    X, Y, tasks = _data(n=30)
    with pytest.raises(ValueError, match="ensemble members must be known router kinds"):
        EnsembleRouter(members).fit(X, Y, tasks=tasks)


def test_an_ensemble_without_members_is_rejected() -> None:
    X, Y, tasks = _data(n=30)
    with pytest.raises(ValueError, match="member"):
        EnsembleRouter([]).fit(X, Y, tasks=tasks)


def test_bad_member_hyperparameters_surface_as_an_error() -> None:
    X, Y, tasks = _data(n=30)
    with pytest.raises(TypeError):
        EnsembleRouter([["knn", {"no_such_param": 1}]]).fit(X, Y, tasks=tasks)
