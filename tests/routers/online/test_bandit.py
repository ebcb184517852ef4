"""Behaviour of the residual linear Thompson sampling bandit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.online import LinearThompsonBandit

ARMS = ["a", "b", "c"]


def _contexts(n: int, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, 16))
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float64)


def _bandit(**kw: float) -> LinearThompsonBandit:
    return LinearThompsonBandit(ARMS, input_dim=16, dim=8, seed=3, **kw)


def test_without_updates_selection_is_argmax_of_prior() -> None:
    x = _contexts(50)
    prior = np.random.default_rng(1).uniform(size=(50, 3))
    bandit = _bandit()
    assert (bandit.select(x, prior, sample=False) == prior.argmax(axis=1)).all()
    gapped = np.zeros((50, 3))
    gapped[np.arange(50), np.arange(50) % 3] = 0.5
    assert (bandit.select(x, gapped) == np.arange(50) % 3).all()


def test_rewards_favouring_an_arm_move_selection_towards_it() -> None:
    x = _contexts(200)
    prior = np.tile([0.6, 0.5, 0.4], (200, 1))
    bandit = _bandit(prior_strength=1.0, discount=1.0)
    bandit.partial_fit(x, ["b"] * 200, np.full(200, 0.9), prior)
    bandit.partial_fit(x, ["a"] * 200, np.full(200, 0.3), prior)
    picks = bandit.select(_contexts(100, seed=7), prior[:100])
    assert (picks == 1).mean() > 0.9


def test_discount_lets_the_bandit_recover_after_a_reversal() -> None:
    prior = np.tile([0.5, 0.5, 0.0], (1, 1))
    bandit = _bandit(prior_strength=1.0, noise=0.02, discount=0.95)
    rng = np.random.default_rng(0)
    for t in range(400):
        x = _contexts(1, seed=t)
        arm = int(bandit.select(x, prior)[0])
        good = 0 if t < 200 else 1
        reward = (0.8 if arm == good else 0.2) + 0.01 * rng.standard_normal()
        bandit.partial_fit(x, arm, reward, prior[0, arm])
        if t == 199:
            assert int(bandit.select(x, prior, sample=False)[0]) == 0
    assert int(bandit.select(_contexts(1, seed=999), prior, sample=False)[0]) == 1


def test_arms_can_be_added_and_removed() -> None:
    bandit = _bandit()
    x = _contexts(5)
    bandit.partial_fit(x, [0, 1, 2, 1, 0], np.ones(5), np.zeros(5))
    before_c = bandit.b_[2].copy()
    assert bandit.add_arm("d") == 3
    assert bandit.A_.shape[0] == 4 and not bandit.A_[3].any()
    prior = np.tile([0.0, 0.0, 0.0, 1.0], (5, 1))
    assert (bandit.select(x, prior) == 3).all()
    bandit.remove_arm("b")
    assert bandit.arms_ == ["a", "c", "d"]
    np.testing.assert_array_equal(bandit.b_[1], before_c)
    with pytest.raises(ValueError):
        bandit.add_arm("a")
    with pytest.raises(ValueError):
        bandit.remove_arm("b")


def test_save_load_round_trip_keeps_state_and_selections(tmp_path: Path) -> None:
    bandit = _bandit()
    x = _contexts(30)
    prior = np.random.default_rng(2).uniform(size=(30, 3))
    bandit.partial_fit(x, np.arange(30) % 3, np.linspace(0, 1, 30), prior)
    bandit.save(tmp_path / "bandit")
    loaded = LinearThompsonBandit.load(tmp_path / "bandit")
    for key in ("A", "b", "projection"):
        np.testing.assert_array_equal(bandit.get_state()[key], loaded.get_state()[key])
    assert loaded.arms_ == bandit.arms_ and loaded.get_params() == bandit.get_params()
    np.testing.assert_array_equal(
        bandit.select(x, prior, sample=False), loaded.select(x, prior, sample=False)
    )
    copy = _bandit().set_state(bandit.get_state())
    np.testing.assert_array_equal(
        copy.scores(x, prior, sample=False), bandit.scores(x, prior, sample=False)
    )


def test_bad_input_raises_value_error(tmp_path: Path) -> None:
    bandit = _bandit()
    with pytest.raises(ValueError, match="shape"):
        bandit.select(np.ones(5), np.zeros(3))
    with pytest.raises(ValueError, match="prior_mean"):
        bandit.select(_contexts(2), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="unknown arm"):
        bandit.partial_fit(_contexts(1), "zzz", [1.0], [0.0])
    with pytest.raises(ValueError, match="unknown arm"):
        bandit.partial_fit(_contexts(1), 7, [1.0], [0.0])
    with pytest.raises(ValueError):
        bandit.select(_contexts(1), np.zeros(3), allowed=[False, False, False])
    with pytest.raises(ValueError):
        LinearThompsonBandit(ARMS, discount=1.5)
    with pytest.raises(ValueError):
        LinearThompsonBandit.load(tmp_path / "missing")


def test_allowed_mask_excludes_arms() -> None:
    prior = np.array([[1.0, 0.0, 0.5]])
    assert _bandit().select(_contexts(1), prior, allowed=[False, True, True])[0] == 2
