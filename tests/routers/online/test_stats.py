"""Shared bandit statistics: folding observations with a lazy discount gives exactly what the
in-process bandit learns, whoever folds them and in how many pieces."""

from __future__ import annotations

import numpy as np
import pytest

from switchyard.routers.online.bandit import LinearThompsonBandit
from switchyard.routers.online.stats import ArmStats, Observation, fold

ARMS = ["a", "b", "c"]


def _rows(bandit: LinearThompsonBandit, n: int, seed: int = 0) -> list[Observation]:
    rng = np.random.default_rng(seed)
    z = bandit.context(rng.normal(size=(n, bandit.input_dim)))
    arms = rng.integers(0, len(ARMS), n)
    resid = rng.normal(size=n)
    return [Observation(ARMS[arms[i]], tuple(z[i]), float(resid[i])) for i in range(n)]


def test_folded_statistics_equal_partial_fit_row_by_row() -> None:
    online = LinearThompsonBandit(ARMS, input_dim=16, dim=8, discount=0.97)
    rows = _rows(online, 40)
    for row in rows:  # the in-process bandit, one row at a time
        z = np.asarray(row.z)
        online.A_ *= online.discount
        online.b_ *= online.discount
        j = online.arm_index(row.arm)
        online.A_[j] += np.outer(z, z)
        online.b_[j] += row.residual * z
    shared: dict[str, ArmStats] = {}
    step = fold(shared, 0, rows[:15], 0.97, online.context_dim)
    step = fold(shared, step, rows[15:], 0.97, online.context_dim)  # another replica's turn
    copy = LinearThompsonBandit(ARMS, input_dim=16, dim=8, discount=0.97).set_stats(shared, step)
    assert step == 40 and copy.n_updates_ == 40
    np.testing.assert_allclose(copy.A_, online.A_, atol=1e-12)
    np.testing.assert_allclose(copy.b_, online.b_, atol=1e-12)


def test_learn_matches_partial_fit_and_skips_unknown_arms() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(30, 16))
    arms, reward, prior = rng.integers(0, 3, 30), rng.random(30), rng.random(30)
    fitted = LinearThompsonBandit(ARMS, input_dim=16, dim=8, discount=0.99)
    for i in range(30):
        fitted.partial_fit(x[i], int(arms[i]), reward[i], prior[i])
    learned = LinearThompsonBandit(ARMS, input_dim=16, dim=8, discount=0.99)
    z = learned.context(x)
    rows = [Observation(ARMS[arms[i]], tuple(z[i]), reward[i] - prior[i]) for i in range(30)]
    learned.learn(rows[:10]).learn([*rows[10:], Observation("gone", tuple(z[0]), 1.0)])
    np.testing.assert_allclose(learned.A_, fitted.A_ * 0.99, atol=1e-12)  # one more step
    assert learned.n_updates_ == 31


def test_an_arm_left_alone_decays_by_the_steps_it_missed() -> None:
    stats = {"a": ArmStats(np.eye(2), np.ones(2), step=3, n=1)}
    A, b = stats["a"].at(5, 0.5)
    np.testing.assert_allclose(A, 0.25 * np.eye(2))
    np.testing.assert_allclose(b, [0.25, 0.25])


def test_statistics_survive_their_byte_encoding() -> None:
    stats = ArmStats(np.arange(9.0).reshape(3, 3), np.arange(3.0), step=7, n=2)
    A, b = stats.to_bytes()
    back = ArmStats.from_bytes(A, b, 7, 2, 3)
    np.testing.assert_array_equal(back.A, stats.A)
    with pytest.raises(ValueError, match="context of 4"):
        ArmStats.from_bytes(A, b, 7, 2, 4)


def test_a_malformed_observation_is_refused() -> None:
    with pytest.raises(ValueError, match="finite"):
        fold({}, 0, [Observation("a", (1.0, float("nan")), 0.0)], 0.9, 2)
    with pytest.raises(ValueError, match="2 finite"):
        fold({}, 0, [Observation("a", (1.0,), 0.0)], 0.9, 2)
