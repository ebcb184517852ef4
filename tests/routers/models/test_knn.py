"""The kNN routers' batched neighbourhood sums give what summing over the k nearest, one query
at a time, gives."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from switchyard.routers.models.base import FloatArray
from switchyard.routers.models.knn import KNNRouter, TaskPriorKNNRouter

Gathered = list[tuple[npt.NDArray[np.intp], FloatArray, FloatArray, FloatArray]]


def gathered(router: KNNRouter, X: FloatArray) -> Gathered:
    """Per query: the k nearest (argpartition's pick), their weights, Σ w·y and Σ w over the
    scored ones, by indexing the neighbours one query at a time."""
    train = router.X_train_.astype(np.float32)
    Q = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    y = router.Y_train_.astype(np.float64)
    rows: Gathered = []
    for q in Q:
        sims = train @ q
        idx = np.argpartition(-sims, router.k - 1)[: router.k]
        top = sims[idx].astype(np.float64)
        w = np.exp((top - top.max()) / router.temperature)
        scored = ~np.isnan(y[idx])
        rows.append((idx, w, (w[:, None] * np.where(scored, y[idx], 0)).sum(0),
                     (w[:, None] * scored).sum(0)))  # fmt: skip
    return rows


def close(actual: FloatArray, expected: FloatArray) -> None:
    """Equal but for float32 rounding of the cosines (the reference multiplies separately)."""
    assert np.allclose(actual, expected, rtol=1e-5, atol=1e-7), np.abs(actual - expected).max()


def data(seed: int, n: int = 300, dim: int = 16, models: int = 4) -> tuple[FloatArray, ...]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dim))
    Y = rng.uniform(size=(n, models))
    Y[rng.uniform(size=Y.shape) < 0.1] = np.nan  # some cells unscored
    return X, Y, rng.normal(size=(25, dim))


@pytest.mark.parametrize("k", [1, 7, 40, 300])
def test_knn_prediction_is_the_weighted_mean_of_the_k_nearest(k: int) -> None:
    X, Y, queries = data(k)
    router = KNNRouter(k=k, temperature=0.05).fit(X, Y)
    expected = [
        np.where(total > 0, local / np.maximum(total, 1e-12), router.mean_quality_)
        for _, _, local, total in gathered(router, queries)
    ]
    close(router.predict_quality(queries), np.array(expected))


def test_task_prior_knn_votes_and_sums_over_the_k_nearest_only() -> None:
    X, Y, queries = data(3)
    tasks = [f"t{i % 5}" for i in range(len(X))]
    router = TaskPriorKNNRouter(k=20, temperature=0.1, alpha=5.0).fit(X, Y, tasks=tasks)
    expected = []
    for idx, w, local, total in gathered(router, queries):
        votes = np.bincount(router.task_labels_[idx], weights=w, minlength=5)
        prior = (votes / votes.sum()) @ router.task_means_
        expected.append((local + router.alpha * prior) / (total + router.alpha))
    close(router.predict_quality(queries), np.array(expected))


def test_cosines_tied_at_the_kth_place_count_exactly_k_neighbours() -> None:
    X = np.ones((10, 4))  # every training prompt at the same place: all ten tie
    Y = np.arange(10, dtype=np.float64)[:, None] * np.ones((1, 2))
    router = KNNRouter(k=3, temperature=0.05).fit(X, Y)
    idx, weights = router._nearest(np.full((1, 4), 0.5, dtype=np.float32))
    assert idx.shape == weights.shape == (1, 3) and len(set(idx[0])) == 3
    ((expected, _, local, total),) = gathered(router, np.ones((1, 4)))
    close(router.predict_quality(np.ones((1, 4))), (local / total)[None, :])
    assert sorted(idx[0]) == sorted(expected)


def test_a_batch_with_ties_in_one_row_keeps_exactly_k_in_every_row() -> None:
    rng = np.random.default_rng(7)
    X = np.vstack([np.tile([1.0, 0, 0, 0], (5, 1)), rng.normal(size=(20, 4))])  # five tie
    Y = rng.uniform(size=(25, 3))
    router = KNNRouter(k=3, temperature=0.1).fit(X, Y)
    queries = np.array([[1.0, 0, 0, 0], [0.1, 0.9, -0.3, 0.2]])
    idx, _ = router._nearest(_unit(queries))
    assert idx.shape == (2, 3) and all(len(set(row)) == 3 for row in idx)
    reference = gathered(router, queries)
    for row, (expected, _, _, _) in zip(idx, reference, strict=True):
        assert sorted(row) == sorted(expected)
    expected_q = [local / total for _, _, local, total in reference]
    close(router.predict_quality(queries), np.array(expected_q))


def _unit(X: FloatArray) -> npt.NDArray[np.float32]:
    return np.asarray(X / np.linalg.norm(X, axis=1, keepdims=True), dtype=np.float32)
