"""Training a cascade on model outputs, and the one simulation of what it does on a dataset.

``train_cascade``: a router trained on the stage models (its predicted quality is the
pre-generation classifier), a logistic-regression verifier per stage but the last on the
(prompt, answer) embeddings, and thresholds chosen on a validation fold of the training rows
(the router and verifier refitted on every training row afterwards). ``simulate`` runs the
cascade's rule on arrays: the threshold choice and ``bench/cascade_eval.py`` both use it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from switchyard.routers.cascade.model import CascadeModel, FloatArray, verifier_features
from switchyard.routers.datasets.outputs import ModelOutputs
from switchyard.routers.embedding import Embedder, embed_cached
from switchyard.routers.models import make_router
from switchyard.routers.pipeline import RoutingPipeline

VERIFIER_C = (0.1, 1.0, 10.0)  # inverse L2 strength, chosen on validation log-loss
GRID = 21  # threshold quantiles per stage in the validation search
BOUND = 1e9  # "never" and "always" thresholds, finite so that JSON holds them
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class StageArrays:
    """One dataset as the cascade sees it: prompt embeddings, the answers' embeddings of
    each stage but the last, and every stage's true quality and cost (n rows)."""

    prompts: FloatArray
    answers: list[FloatArray]
    quality: FloatArray
    cost: FloatArray

    def rows(self, idx: Any) -> StageArrays:
        return StageArrays(self.prompts[idx], [a[idx] for a in self.answers],
                           self.quality[idx], self.cost[idx])  # fmt: skip


@dataclass(frozen=True)
class Outcome:
    """Per prompt: the quality and cost of the final answer, the first and the last stage."""

    quality: FloatArray
    cost: FloatArray
    first: IntArray
    last: IntArray


def stage_arrays(
    outputs: ModelOutputs, stages: Sequence[str], embedder: Embedder, *,
    cache: Path | None = None, progress: bool = False,
) -> StageArrays:  # fmt: skip
    """Embed prompts and the non-final stages' answers (cached on disk by text)."""
    data = outputs.data.select_models(list(stages))
    if data.cost is None:
        raise ValueError("a cascade needs each stage's actual cost per prompt")
    cols = [outputs.data.models.index(s) for s in stages]
    prompts = embed_cached(embedder, data.prompts, cache=cache, progress=progress)
    answers = []
    for j in cols[:-1]:
        texts = [row[j] or "" for row in outputs.texts]
        answers.append(np.asarray(embed_cached(embedder, texts, cache=cache, progress=progress),
                                  dtype=np.float64))  # fmt: skip
    return StageArrays(np.asarray(prompts, dtype=np.float64), answers,
                       np.nan_to_num(data.quality), np.nan_to_num(data.cost))  # fmt: skip


def fit_verifier(prompts: FloatArray, answers: FloatArray, correct: FloatArray,
                 c: float) -> tuple[FloatArray, float]:  # fmt: skip
    """Logistic-regression weights and bias of P(answer correct | prompt, answer)."""
    from sklearn.linear_model import LogisticRegression

    y = (np.asarray(correct) > 0.5).astype(int)
    x = verifier_features(prompts, answers)
    if y.min() == y.max():  # one class only: a constant verifier
        p = min(max(float(y.mean()), 1e-3), 1 - 1e-3)
        return np.zeros(x.shape[1]), float(np.log(p / (1 - p)))
    model = LogisticRegression(C=c, max_iter=2000).fit(x, y)
    return model.coef_[0].astype(np.float64), float(model.intercept_[0])


def simulate(
    pred: FloatArray, verify: FloatArray, arrays: StageArrays,
    skip: Sequence[float], accept: Sequence[float], max_escalations: int,
) -> Outcome:  # fmt: skip
    """The cascade's rule on every row: start at the first stage whose predicted quality's
    margin over the last stage's (:func:`margins`) reaches ``skip[i]`` (else the last), then
    escalate while the verifier
    score ``verify[:, i]`` is under ``accept[i]``, at most ``max_escalations`` times. The
    cost is every stage run; the quality the final one's (as ``CascadeModel`` serves)."""
    n, s = arrays.quality.shape
    first = np.full(n, s - 1)
    margin = margins(pred)
    for i in reversed(range(s - 1)):
        first = np.where(margin[:, i] >= skip[i], i, first)
    stage, cost = first.copy(), arrays.cost[np.arange(n), first]
    rows = np.arange(n)
    for _ in range(max_escalations):
        going = stage < s - 1
        going[going] = verify[rows[going], stage[going]] < np.asarray(accept)[stage[going]]
        stage = np.where(going, stage + 1, stage)
        cost = cost + np.where(going, arrays.cost[rows, np.minimum(stage, s - 1)], 0.0)
    return Outcome(arrays.quality[rows, stage], cost, first, stage)


def threshold_grid(pred: FloatArray, verify: FloatArray) -> list[tuple[list[float], list[float]]]:
    """Candidate (skip, accept) threshold lists: the same quantile level for every stage,
    from never skipping / always accepting to always skipping / always escalating."""
    levels = np.linspace(0.0, 1.0, GRID)

    def cuts(values: FloatArray) -> list[list[float]]:
        qs = (
            np.quantile(values, levels, axis=0).T
            if len(values)
            else np.zeros((values.shape[1], GRID))
        )
        cols = [[-np.inf, *map(float, row), np.inf] for row in qs]
        return [[c[k] for c in cols] for k in range(GRID + 2)]

    return [(sk, ac) for sk in cuts(margins(pred)) for ac in cuts(verify)]


def margins(pred: FloatArray) -> FloatArray:
    """Each stage but the last: its predicted quality minus the last stage's (the score the
    pre-generation rule thresholds, as ``CascadeModel.start``)."""
    return np.asarray(pred[:, :-1] - pred[:, -1:], dtype=np.float64)


def frontier(
    pred: FloatArray, verify: FloatArray, arrays: StageArrays, max_escalations: int
) -> list[tuple[list[float], list[float], float, float]]:
    """(skip, accept, mean cost, mean quality) of the grid's Pareto-optimal thresholds on
    ``arrays`` (validation rows), cheapest first."""
    points = []
    for skip, accept in threshold_grid(pred, verify):
        out = simulate(pred, verify, arrays, skip, accept, max_escalations)
        points.append((skip, accept, float(out.cost.mean()), float(out.quality.mean())))
    points.sort(key=lambda p: (p[2], -p[3]))
    best, kept = -np.inf, []
    for p in points:
        if p[3] > best + 1e-12:
            kept.append(p)
            best = p[3]
    return kept


def choose(points: Sequence[tuple[list[float], list[float], float, float]],
           cost_weight: float) -> tuple[list[float], list[float]]:  # fmt: skip
    """The thresholds with the best mean ``quality − cost_weight · cost`` (the policy's rule)."""
    skip, accept, _, _ = max(points, key=lambda p: p[3] - cost_weight * p[2])
    return _finite(skip), _finite(accept)


def _finite(values: Sequence[float]) -> list[float]:
    return [float(np.clip(v, -BOUND, BOUND)) for v in values]


@dataclass
class Trained:
    pipeline: RoutingPipeline
    cascade: CascadeModel
    validation: list[tuple[list[float], list[float], float, float]]  # the frontier


def _fit_parts(
    outputs: ModelOutputs, arrays: StageArrays, stages: Sequence[str], router: str,
    embedder: Embedder, prices: Mapping[str, tuple[float, float]], c: Sequence[float],
    cache: Path | None,
) -> tuple[RoutingPipeline, FloatArray, FloatArray]:  # fmt: skip
    pipe = RoutingPipeline(make_router(router), embedder, prices=prices, cache=cache)
    pipe.fit(outputs.data.select_models(list(stages)))
    fits = [fit_verifier(arrays.prompts, arrays.answers[i], arrays.quality[:, i], c[i])
            for i in range(len(stages) - 1)]  # fmt: skip
    return pipe, np.stack([w for w, _ in fits]), np.array([b for _, b in fits])


def train_cascade(
    outputs: ModelOutputs, stages: Sequence[str], embedder: Embedder, *,
    router: str = "default", prices: Mapping[str, tuple[float, float]] | None = None,
    cost_weight: float = 0.0, max_escalations: int = 1, cache: Path | None = None,
    seed: int = 0, progress: bool = False,
) -> Trained:  # fmt: skip
    """Fit on 80 % of ``outputs`` and choose the verifier's C and the thresholds on the
    other 20 %; then refit the router and the verifiers on every row."""
    arrays = stage_arrays(outputs, stages, embedder, cache=cache, progress=progress)
    order = np.random.default_rng(seed).permutation(len(outputs))
    val, fit = np.sort(order[: len(order) // 5]), np.sort(order[len(order) // 5 :])
    fit_arr, val_arr = arrays.rows(fit), arrays.rows(val)
    c = [_choose_c(fit_arr, val_arr, i) for i in range(len(stages) - 1)]
    prices = dict(prices or {})
    pipe, w, b = _fit_parts(
        outputs.subset(fit), fit_arr, stages, router, embedder, prices, c, cache
    )
    probe = CascadeModel(list(stages), embedder.name, [0.0] * len(c), [0.0] * len(c), w, b)
    pred = pipe.predict_features(val_arr.prompts, [outputs.data.prompts[i] for i in val]).quality
    verify = np.stack([probe.scores(i, val_arr.prompts, val_arr.answers[i])
                       for i in range(len(c))], axis=1)  # fmt: skip
    points = frontier(pred, verify, val_arr, max_escalations)
    skip, accept = choose(points, cost_weight)
    pipe, w, b = _fit_parts(outputs, arrays, stages, router, embedder, prices, c, cache)
    pipe.cost_weight = cost_weight
    meta = {"verifier_C": c, "validation_rows": len(val), "max_escalations": max_escalations,
            "cost_weight": cost_weight, "train_rows": len(outputs)}  # fmt: skip
    cascade = CascadeModel(list(stages), embedder.name, skip, accept, w, b, meta)
    return Trained(pipe, cascade, points)


def _choose_c(fit: StageArrays, val: StageArrays, i: int) -> float:
    """The verifier's regularisation with the lowest validation log-loss."""
    y = (val.quality[:, i] > 0.5).astype(float)
    best, chosen = np.inf, VERIFIER_C[0]
    for c in VERIFIER_C:
        w, b = fit_verifier(fit.prompts, fit.answers[i], fit.quality[:, i], c)
        z = verifier_features(val.prompts, val.answers[i]) @ w + b
        p = np.clip(1 / (1 + np.exp(-np.clip(z, -40, 40))), 1e-6, 1 - 1e-6)
        loss = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        if loss < best:
            best, chosen = loss, c
    return chosen
