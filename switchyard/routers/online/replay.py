"""Replay a routing dataset as an online stream and measure regret against an oracle.

Each seed shuffles the rows into a stream. At every step a strategy picks one model and only
that model's realized reward ``quality − λ·cost`` is revealed. Strategies:

* ``offline`` — the offline router alone: the policy's choice on its predictions (never learns);
* ``bandit`` — :class:`LinearThompsonBandit` warm-started from the offline prediction, its
  sampled residual added to the predicted quality before the policy decides, as the gateway;
* ``oracle`` — the policy's choice on the realized quality and cost (regret 0 by definition);
* ``random`` — a uniformly random model.

A :class:`DriftSpec` (``MODEL:DELTA@AT``) shifts one model's realized quality by ``DELTA``
(clipped to [0, 1]) from the fraction ``AT`` of the stream on; the predictions do not move.
``favourite`` as the model means the offline router's most-chosen model."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.policy import choose

from .bandit import LinearThompsonBandit

if TYPE_CHECKING:
    from switchyard.routers.pipeline import RoutingPipeline

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STRATEGIES = ("offline", "bandit", "oracle", "random")
FAVOURITE = "favourite"


@dataclass(frozen=True)
class DriftSpec:
    """``model``'s quality moves by ``delta`` from the fraction ``at`` of the stream on."""

    model: str
    delta: float
    at: float

    @classmethod
    def parse(cls, text: str) -> DriftSpec:
        """``"gpt-4-1106-preview:-0.3@0.5"`` or ``"favourite:-0.3@0.5"``."""
        head, sep, at_text = text.rpartition("@")
        model, sep2, delta_text = head.rpartition(":")
        if not sep or not sep2 or not model:
            raise ValueError(
                f"drift must look like MODEL:DELTA@AT (e.g. favourite:-0.3@0.5), got {text!r}"
            )
        try:
            delta, at = float(delta_text), float(at_text)
        except ValueError:
            raise ValueError(f"drift {text!r}: DELTA and AT must be numbers") from None
        if not (math.isfinite(delta) and -1 <= delta <= 1):
            raise ValueError(f"drift {text!r}: DELTA must be in [-1, 1]")
        if not (math.isfinite(at) and 0 <= at < 1):
            raise ValueError(f"drift {text!r}: AT must be a fraction of the stream in [0, 1)")
        return cls(model, delta, at)

    def __str__(self) -> str:
        return f"{self.model}:{self.delta:+g}@{self.at:g}"


@dataclass
class ReplayResult:
    """Cumulative regret per strategy, shape (seeds, steps), plus what the run was."""

    models: list[str]
    seeds: list[int]
    lam: float
    regret: dict[str, FloatArray]
    choices: dict[str, IntArray]
    drift: DriftSpec | None = None
    drift_model: str | None = None
    drift_step: int | None = None
    dropped_rows: int = 0
    bandit_params: dict[str, Any] = field(default_factory=dict)

    @property
    def n_steps(self) -> int:
        return int(next(iter(self.regret.values())).shape[1])

    def recovery_steps(self, strategy: str = "bandit", window: int = 50) -> list[int | None]:
        """Per seed: requests after the drift until ``strategy``'s share of the drifted model
        over the last ``window`` requests falls below half its pre-drift share (None: never)."""
        if self.drift_model is None or self.drift_step is None:
            return []
        j = self.models.index(self.drift_model)
        out: list[int | None] = []
        for picks in self.choices[strategy]:
            hit = (picks == j).astype(np.float64)
            before = hit[: self.drift_step].mean() if self.drift_step else 0.0
            after = hit[self.drift_step :]
            found: int | None = None
            for t in range(1, len(after) + 1):
                share = after[max(0, t - window) : t].mean()
                if t >= min(window, len(after)) and share < before / 2:
                    found = t
                    break
            out.append(found)
        return out

    def summary(self) -> dict[str, Any]:
        final = {
            s: {"mean": float(r[:, -1].mean()), "std": float(r[:, -1].std())}
            for s, r in self.regret.items()
        }
        out: dict[str, Any] = {
            "steps": self.n_steps,
            "seeds": self.seeds,
            "cost_weight": self.lam,
            "dropped_rows": self.dropped_rows,
            "bandit_params": self.bandit_params,
            "final_cumulative_regret": final,
        }
        off, ban = final["offline"]["mean"], final["bandit"]["mean"]
        out["bandit_vs_offline_reduction"] = (off - ban) / off if off > 0 else None
        if self.drift is not None:
            rec = self.recovery_steps()
            got = [r for r in rec if r is not None]
            out["drift"] = {
                "spec": str(self.drift),
                "model": self.drift_model,
                "step": self.drift_step,
                "bandit_recovery_steps": rec,
                "bandit_recovery_mean": float(np.mean(got)) if got else None,
            }
        return out


def _predictions(
    data: RoutingDataset,
    predictor: RoutingPipeline | tuple[FloatArray, FloatArray, FloatArray],
    progress: bool,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    if isinstance(predictor, tuple):
        q, c, x = (np.asarray(a, dtype=np.float64) for a in predictor)
    else:
        x = predictor.features(data.prompts, progress=progress)
        q = predictor.router.predict_quality(x)
        c = predictor.cost.predict(data.prompts)
    n, m = len(data), len(data.models)
    if q.shape != (n, m) or c.shape != (n, m) or x.ndim != 2 or x.shape[0] != n:
        raise ValueError(
            f"predictions must be ({n}, {m}) and features ({n}, d); got quality {q.shape}, "
            f"cost {c.shape}, features {x.shape}"
        )
    return q, c, x


def replay(
    data: RoutingDataset,
    predictor: RoutingPipeline | tuple[FloatArray, FloatArray, FloatArray],
    *,
    seeds: Sequence[int] = (0, 1, 2, 3, 4),
    drift: DriftSpec | None = None,
    lam: float | None = None,
    bandit_params: Mapping[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Simulate an online stream over ``data``'s rows for each seed (see the module doc).

    ``predictor`` is a RoutingPipeline (its cost weight is the default ``lam``) or a tuple
    ``(quality_pred, cost_pred, X)``; rows with a missing quality or cost are dropped.
    ``progress`` is called with the number of steps done after each seed's bandit loop chunk."""
    realized = _realized_cost(data, seeds)
    lam = _cost_weight(predictor, lam)
    q_pred, c_pred, X = _predictions(data, predictor, progress is not None)
    keep = _complete_rows(data.quality, realized, q_pred, c_pred)
    quality, cost, X = data.quality[keep], realized[keep], X[keep]
    q_pred, c_pred = q_pred[keep], c_pred[keep]
    n, m = quality.shape
    offline_pick = choose(q_pred, c_pred, lam)
    drift_model, drift_step = _drift_target(drift, data.models, offline_pick, n)
    params = dict(bandit_params or {})
    regret: dict[str, list[FloatArray]] = {s: [] for s in STRATEGIES}
    choices: dict[str, list[IntArray]] = {s: [] for s in STRATEGIES}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        order = rng.permutation(n)
        q = _drifted(quality[order], data.models, drift, drift_model, drift_step)
        reward = q - lam * cost[order]
        picks = {
            "offline": offline_pick[order],
            "oracle": choose(q, cost[order], lam),
            "random": rng.integers(0, m, n),
            "bandit": _run_bandit(
                X[order], q_pred[order], c_pred[order], reward, data.models, lam, seed, params
            ),
        }
        for s in STRATEGIES:
            chosen = np.asarray(picks[s], dtype=np.int64)
            regret[s].append(np.cumsum(reward.max(axis=1) - reward[np.arange(n), chosen]))
            choices[s].append(chosen)
        if progress is not None:
            progress(n)
    return ReplayResult(
        models=list(data.models),
        seeds=list(seeds),
        lam=float(lam),
        regret={s: np.stack(v) for s, v in regret.items()},
        choices={s: np.stack(v) for s, v in choices.items()},
        drift=drift,
        drift_model=drift_model,
        drift_step=drift_step,
        dropped_rows=int((~keep).sum()),
        bandit_params=params,
    )


def _realized_cost(data: RoutingDataset, seeds: Sequence[int]) -> FloatArray:
    """The data's realized cost; a clear error when replay cannot run on these inputs."""
    if data.cost is None:
        raise ValueError("replay needs the realized cost of every model (the data has none)")
    if not seeds:
        raise ValueError("replay needs at least one seed")
    return data.cost


def _drifted(
    quality: FloatArray,
    models: list[str],
    drift: DriftSpec | None,
    model: str | None,
    step: int | None,
) -> FloatArray:
    """``quality`` with the drifted model's scores moved by ``drift.delta`` from ``step`` on."""
    if drift is None or model is None or step is None:
        return quality
    out = quality.copy()
    j = models.index(model)
    out[step:, j] = np.clip(out[step:, j] + drift.delta, 0.0, 1.0)
    return out


def _complete_rows(
    quality: FloatArray, cost: FloatArray, q_pred: FloatArray, c_pred: FloatArray
) -> npt.NDArray[np.bool_]:
    """Rows with every model's realized quality and cost and finite predictions."""
    keep = ~(np.isnan(quality).any(axis=1) | np.isnan(cost).any(axis=1))
    keep &= np.isfinite(q_pred).all(axis=1) & np.isfinite(c_pred).all(axis=1)
    if keep.sum() < 2:
        raise ValueError("fewer than two rows have every model's quality and cost")
    return np.asarray(keep, dtype=np.bool_)


def _cost_weight(
    predictor: RoutingPipeline | tuple[FloatArray, FloatArray, FloatArray], lam: float | None
) -> float:
    """The λ to replay with: the given one, else the pipeline's; finite and ≥ 0."""
    if lam is None:
        if isinstance(predictor, tuple):
            raise ValueError("lam (the cost weight) is required with raw predictions")
        lam = predictor.cost_weight
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"cost weight must be finite and ≥ 0, got {lam}")
    return lam


def _drift_target(
    drift: DriftSpec | None, models: list[str], offline_pick: IntArray, n: int
) -> tuple[str | None, int | None]:
    """The model a drift applies to (``favourite``: the offline router's most chosen) and
    the step it starts at."""
    if drift is None:
        return None, None
    step = math.ceil(drift.at * n)
    if drift.model == FAVOURITE:
        return models[int(np.bincount(offline_pick, minlength=len(models)).argmax())], step
    if drift.model in models:
        return drift.model, step
    raise ValueError(f"drift names unknown model {drift.model!r}; models: {models}")


def _run_bandit(
    X: FloatArray,
    quality: FloatArray,
    cost: FloatArray,
    reward: FloatArray,
    models: list[str],
    lam: float,
    seed: int,
    params: Mapping[str, Any],
) -> IntArray:
    """The bandit's pick per step, made as the gateway makes it: the predicted quality plus
    a Thompson sample of the learned residual, then the policy under ``lam``."""
    bandit = LinearThompsonBandit(models, input_dim=X.shape[1], seed=seed, **params)
    prior = quality - lam * cost
    picks = np.empty(len(X), dtype=np.int64)
    for t in range(len(X)):
        adjusted = quality[t : t + 1] + bandit.residual(bandit.context(X[t]))
        arm = int(choose(adjusted, cost[t : t + 1], lam)[0])
        picks[t] = arm
        bandit.partial_fit(X[t], arm, reward[t, arm], prior[t, arm])
    return picks


def plot_regret(result: ReplayResult, path: Path) -> None:
    """Cumulative regret per strategy: mean over seeds with a ±1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    steps = np.arange(1, result.n_steps + 1)
    for s, r in result.regret.items():
        mean, std = r.mean(axis=0), r.std(axis=0)
        ax.plot(steps, mean, label=s)
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
    if result.drift_step is not None:
        ax.axvline(result.drift_step, color="grey", ls="--", label=f"drift ({result.drift_model})")
    ax.set_xlabel("request")
    ax.set_ylabel("cumulative regret vs oracle (quality − λ·USD)")
    ax.set_title(f"Replay over {len(result.seeds)} seeds, λ = {result.lam:.3g}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_replay_report(
    result: ReplayResult, out: Path, metadata: Mapping[str, Any] | None = None
) -> list[Path]:
    """``replay.json``, ``replay.md`` and ``regret.png`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    summary = {**result.summary(), "metadata": dict(metadata or {})}
    paths = [out / "replay.json", out / "replay.md", out / "regret.png"]
    paths[0].write_text(json.dumps(summary, indent=1))
    lines = [
        "# Online replay: cumulative regret vs the oracle",
        "",
        f"{summary['steps']} requests per stream, seeds {result.seeds}, λ = {result.lam:.4g}, "
        f"{result.dropped_rows} rows dropped (missing quality or cost).",
        f"Bandit parameters: `{json.dumps(result.bandit_params)}` (others default).",
        "",
        "| strategy | final cumulative regret (mean ± std) |",
        "|---|---|",
    ]
    for s, v in summary["final_cumulative_regret"].items():
        lines.append(f"| {s} | {v['mean']:.2f} ± {v['std']:.2f} |")
    red = summary["bandit_vs_offline_reduction"]
    if red is not None:
        lines += ["", f"Bandit vs offline router: {100 * red:+.1f}% less cumulative regret."]
    if "drift" in summary:
        d = summary["drift"]
        lines += [
            "",
            f"Drift `{d['spec']}`: {d['model']} from request {d['step']}. Requests after the "
            f"drift until the bandit's share of it (last 50 requests) fell below half its "
            f"pre-drift share, per seed: {d['bandit_recovery_steps']} "
            f"(mean {d['bandit_recovery_mean']}).",
        ]
    paths[1].write_text("\n".join(lines) + "\n")
    plot_regret(result, paths[2])
    return paths
