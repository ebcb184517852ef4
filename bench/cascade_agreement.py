"""A second opinion against the learned verifier: the offline evaluation on RouterBench.

The cascade of §25 escalates Mixtral to GPT-4 when a verifier on MiniLM embeddings of the
(prompt, answer) pair expects a wrong answer; it misses its target (AIQ 0.799 against the
one-shot default router's 0.854). This script measures the answer-aware signal the gateway
serves as ``second_opinion:`` (``switchyard.gateway.second_opinion``): the one-shot router
answers as it does today, a *checker* model answers the same prompt, and when the two answers
disagree (their first word, lower-cased: the choice letter of ARC and Winogrande, the first
token of MBPP code; the gateway's own rule, ``switchyard.routers.agreement``) GPT-4-1106
answers instead.
Cost: the routed model + the checker (when it is another model) + GPT-4 on a disagreement.

Protocol (no test-split choice):
  1. Validation: 5-fold out-of-fold predictions of the default router recipe on the
     RouterBench train split; each checker (Yi-34B, Mixtral, GPT-3.5, or the router's own
     runner-up at the same λ) scored by the AIQ its points add to the one-shot λ sweep, and
     the largest gain in quality at equal cost over the one-shot hull.
  2. The checker best on validation, then every checker, on the test split with the shipped
     default router (953 prompts).
  3. What one deployed configuration gets on the test split: the points at the shipped
     router's cost weight, and at the one where the chosen checker gained most on validation.

The curve of a verifying router is the one-shot sweep's points plus the verified ones (a
router that verifies only where it pays): its AIQ cannot fall below the one-shot router's.

    python bench/cascade_agreement.py [--folds 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from routerkit import DATA, LoadProbe, machine_info, write_results

from switchyard.resources import default_router
from switchyard.routers.agreement import agree
from switchyard.routers.datasets.outputs import ModelOutputs, load_outputs
from switchyard.routers.embedding import load_embedder
from switchyard.routers.evaluation.metrics import (
    aiq,
    breakpoint_lambdas,
    nondecreasing_convex_hull,
    sweep_points,
)
from switchyard.routers.models import make_router
from switchyard.routers.pipeline import RoutingPipeline
from switchyard.routers.policy import choose
from switchyard.routers.prediction import Prediction

OUT = Path(__file__).resolve().parent / "results" / "cascade" / "agreement.json"
STRONG = "gpt-4-1106-preview"
CHECKERS = ("zero-one-ai/Yi-34B-Chat", "mistralai/mixtral-8x7b-chat", "gpt-3.5-turbo-1106",
            "runner-up")  # fmt: skip


def checker_picks(pred: Prediction, pick: np.ndarray, lam: float, checker: str,
                  models: list[str]) -> np.ndarray:  # fmt: skip
    """Per prompt, the checker's model index (the runner-up: the router's second choice)."""
    if checker != "runner-up":
        return np.full(len(pick), models.index(checker))
    score = pred.quality - (lam * pred.cost if np.isfinite(lam) else 1e9 * pred.cost)
    score = np.where(np.isnan(score), -np.inf, score)
    score[np.arange(len(pick)), pick] = -np.inf
    return np.asarray(score.argmax(axis=1))


def verified_point(out: ModelOutputs, pick: np.ndarray,
                   check: np.ndarray) -> tuple[float, float, int, int]:  # fmt: skip
    """(total USD, mean quality, prompts checked, prompts escalated) when disagreements go to
    the strong model."""
    d = out.data
    assert d.cost is not None
    strong = list(d.models).index(STRONG)
    rows = np.arange(len(pick))
    cost, quality = d.cost[rows, pick].copy(), d.quality[rows, pick].copy()
    checked = np.flatnonzero((pick != strong) & (check != pick))
    escalated = 0
    for i in checked:
        cost[i] += d.cost[i, check[i]]
        if not agree(out.texts[i][pick[i]], out.texts[i][check[i]]):
            cost[i] += d.cost[i, strong]
            quality[i] = d.quality[i, strong]
            escalated += 1
    return float(np.nansum(cost)), float(np.nanmean(quality)), len(checked), escalated


def score(pred: Prediction, out: ModelOutputs) -> dict[str, Any]:
    """The one-shot AIQ, and per checker the AIQ with its points and the best gain."""
    d = out.data
    assert d.cost is not None
    single = d.cost.sum(axis=0)
    c_range = (float(single.min()), float(single.max()))
    lams = breakpoint_lambdas(pred)
    oc, oq = sweep_points(pred, d.quality, d.cost, lams)
    hc, hq = nondecreasing_convex_hull(oc, oq)
    result: dict[str, Any] = {"one-shot AIQ": round(aiq(hc, hq, *c_range), 4), "checkers": {}}
    for checker in CHECKERS:
        points = [
            verified_point(out, pick, checker_picks(pred, pick, float(lam), checker,
                                                    list(d.models)))
            for lam in lams
            for pick in [choose(pred.quality, pred.cost, float(lam))]
        ]  # fmt: skip
        cost = np.concatenate([oc, [p[0] for p in points]])
        quality = np.concatenate([oq, [p[1] for p in points]])
        gains = [q - float(np.interp(c, hc, hq)) if hc[0] <= c <= hc[-1] else -np.inf
                 for c, q, _, _ in points]  # fmt: skip
        best = int(np.argmax(gains))
        result["checkers"][checker] = {
            "AIQ": round(aiq(*nondecreasing_convex_hull(cost, quality), *c_range), 4),
            "best gain at equal cost (points)": round(100 * max(gains[best], 0.0), 2),
            "cost_weight at the best gain": float(lams[best]),
        }
    return result


def at_cost_weight(pred: Prediction, out: ModelOutputs, lam: float) -> dict[str, Any]:
    """What a deployment at one cost weight gets: the one-shot router's (USD, quality), and
    per checker the second opinion's, with the one-shot hull's quality at its cost."""
    d = out.data
    assert d.cost is not None
    hc, hq = nondecreasing_convex_hull(*sweep_points(pred, d.quality, d.cost,
                                                     breakpoint_lambdas(pred)))  # fmt: skip
    pick = choose(pred.quality, pred.cost, lam)
    cost, quality, _, _ = verified_point(out, pick, pick)  # the checker is the pick: no check
    result: dict[str, Any] = {"cost_weight": round(lam, 2), "one-shot": {
        "USD": round(cost, 3), "quality %": round(100 * quality, 2)}}  # fmt: skip
    for checker in CHECKERS:
        check = checker_picks(pred, pick, lam, checker, list(d.models))
        cost, quality, checked, escalated = verified_point(out, pick, check)
        result[checker] = {
            "USD": round(cost, 3), "quality %": round(100 * quality, 2),
            "one-shot hull quality % at that cost": round(100 * float(np.interp(cost, hc, hq)), 2),
            "checked %": round(100 * checked / len(pick), 1),
            "escalated %": round(100 * escalated / len(pick), 1),
        }  # fmt: skip
    return result


def out_of_fold(train: ModelOutputs, embedder: Any, folds: int, seed: int) -> Prediction:
    """The default recipe's predictions for each train prompt from a model not trained on it."""
    order = np.random.default_rng(seed).permutation(len(train))
    quality = np.full(train.data.quality.shape, np.nan)
    cost = np.full(train.data.quality.shape, np.nan)
    for k, held in enumerate(np.array_split(order, folds)):
        print(f"fold {k + 1}/{folds}", flush=True)
        pipe = RoutingPipeline(make_router("default"), embedder)
        pipe.fit(train.data.subset(np.setdiff1d(order, held)))
        got = pipe.predict(train.data.subset(held))
        quality[held], cost[held] = got.quality, got.cost
    return Prediction(quality=quality, cost=cost)


def markdown(r: dict[str, Any]) -> str:
    lines = ["| split | checker | AIQ (one-shot) | best gain at equal cost, points |",
             "|---|---|---:|---:|"]  # fmt: skip
    for split in ("validation", "test"):
        base = r[split]["one-shot AIQ"]
        for name, c in r[split]["checkers"].items():
            mark = " (chosen)" if name == r["chosen"] else ""
            lines.append(f"| {split} | {name}{mark} | {c['AIQ']} ({base}) | "
                         f"{c['best gain at equal cost (points)']} |")  # fmt: skip
    lines += ["", "Test split at one cost_weight: the shipped router's, and the one where the "
              "chosen checker gained most on validation:", "",
              "| cost_weight | router | USD | quality % | one-shot hull at that USD | checked % "
              "| escalated % |", "|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    for key in ("at the shipped cost_weight", "at the validation's cost_weight"):
        point = r["test"][key]
        lam, one = point["cost_weight"], point["one-shot"]
        lines.append(f"| {lam} | one-shot | {one['USD']} | {one['quality %']} | "
                     f"{one['quality %']} | 0 | 0 |")  # fmt: skip
        for name in CHECKERS:
            c = point[name]
            lines.append(f"| {lam} | second opinion: {name} | {c['USD']} | {c['quality %']} | "
                         f"{c['one-shot hull quality % at that cost']} | {c['checked %']} | "
                         f"{c['escalated %']} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--folds", type=int, default=5, help="validation folds of the train split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    probe, started = LoadProbe(), time.perf_counter()
    embedder = load_embedder("static")
    everything = load_outputs([DATA / "routing" / "routerbench"])
    train, test = everything.where(split="train"), everything.where(split="test")
    validation = score(out_of_fold(train, embedder, args.folds, args.seed), train)
    checkers = validation["checkers"]
    chosen = max(checkers, key=lambda name: checkers[name]["AIQ"])
    shipped = RoutingPipeline.load(default_router(), embedder)
    predicted = shipped.predict(test.data)
    tested = score(predicted, test)
    tested["at the shipped cost_weight"] = at_cost_weight(predicted, test, shipped.cost_weight)
    tuned = checkers[chosen]["cost_weight at the best gain"]
    tested["at the validation's cost_weight"] = at_cost_weight(predicted, test, tuned)
    results = {
        "command": f"python bench/cascade_agreement.py --folds {args.folds} --seed {args.seed}",
        "validation": validation, "chosen": chosen, "test": tested,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine_info(probe, ("numpy",)),
    }  # fmt: skip
    write_results(markdown(results), results, args.out)


if __name__ == "__main__":
    main()
