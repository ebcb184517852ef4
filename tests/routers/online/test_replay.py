"""The replay simulator on a small synthetic dataset (no embedder needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.datasets import RoutingDataset
from switchyard.routers.online import DriftSpec, replay, write_replay_report


def _synthetic(n: int = 300) -> tuple[RoutingDataset, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    models = ["strong", "mid", "weak"]
    p = np.array([0.9, 0.7, 0.5])
    quality = (rng.uniform(size=(n, 3)) < p).astype(np.float64)
    cost = np.tile([0.002, 0.001, 0.0005], (n, 1))
    data = RoutingDataset(
        prompts=[f"p{i}" for i in range(n)], models=models, quality=quality,
        tasks=["t"] * n, cost=cost,
    )  # fmt: skip
    x = rng.normal(size=(n, 16))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return data, (np.tile(p, (n, 1)), cost.copy(), x)


PARAMS = {"dim": 8, "prior_strength": 5.0, "noise": 0.05, "discount": 0.99}


def test_oracle_has_zero_regret_and_random_the_most() -> None:
    data, pred = _synthetic()
    result = replay(data, pred, seeds=[0, 1], lam=10.0, bandit_params=PARAMS)
    assert result.regret["oracle"].shape == (2, 300)
    assert not result.regret["oracle"].any()
    final = {s: r[:, -1].mean() for s, r in result.regret.items()}
    assert final["random"] > final["offline"] > 0


def test_bandit_beats_offline_under_drift(tmp_path: Path) -> None:
    data, pred = _synthetic()
    drift = DriftSpec.parse("favourite:-0.6@0.3")
    result = replay(data, pred, seeds=[0, 1, 2], lam=10.0, drift=drift, bandit_params=PARAMS)
    assert result.drift_model == "strong" and result.drift_step == 90
    final = {s: r[:, -1].mean() for s, r in result.regret.items()}
    assert final["bandit"] < 0.75 * final["offline"]
    assert all(r is not None for r in result.recovery_steps())
    paths = write_replay_report(result, tmp_path)
    assert all(p.exists() for p in paths)
    assert "drift" in (tmp_path / "replay.md").read_text()


@pytest.mark.parametrize(
    "text", ["gpt-4", "gpt-4:-0.3", "gpt-4:x@0.5", ":-0.3@0.5", "m:-2@0.5", "m:-0.3@1.5"]
)
def test_drift_spec_rejects_malformed_text(text: str) -> None:
    with pytest.raises(ValueError):
        DriftSpec.parse(text)


def test_drift_spec_parses_model_names_with_colons() -> None:
    spec = DriftSpec.parse("org/model:v2:-0.25@0.4")
    assert (spec.model, spec.delta, spec.at) == ("org/model:v2", -0.25, 0.4)


def test_replay_rejects_unknown_drift_model_and_bad_shapes() -> None:
    data, pred = _synthetic(20)
    with pytest.raises(ValueError, match="unknown model"):
        replay(data, pred, seeds=[0], lam=1.0, drift=DriftSpec.parse("nope:-0.3@0.5"))
    with pytest.raises(ValueError, match="predictions"):
        replay(data, (pred[0][:5], pred[1], pred[2]), seeds=[0], lam=1.0)
    with pytest.raises(ValueError, match="lam"):
        replay(data, pred, seeds=[0])
