"""Cascade routers (issue 18, part 1) on RouterBench: cost-quality against the one-shot router.

Protocol
  1. Data: the RouterBench CSVs (ARC-Challenge, MBPP, Winogrande; answers and 0/1 labels).
     Train split: every row. Test split: ``--sample N`` random rows (``--seed``; default all),
     because embedding prompts on 2 shared cores runs at 1-3 prompts/s here.
  2. Cascade ``--stages`` (default Mixtral-8x7B -> GPT-4-1106): ``train_cascade`` fits the
     stage router (its predicted quality is the pre-generation classifier) and the verifier
     on 80 % of the train split, picks the verifier's C and the threshold frontier on the
     other 20 % (validation), then refits on the whole train split. The test split is
     never used for a choice.
  3. Curves on the test split, (total USD, mean quality) points:
     - cascade: every validation-frontier (skip, accept) pair, run by ``simulate``;
     - pre-generation only: the same pairs with no escalation (what a stream gets);
     - one-shot default router (``switchyard/data/default-router``, 11 models): the λ sweep
       of ``switchyard eval --protocol routerbench``; and the one-shot router over the
       cascade's own stages (the cascade's stage router, λ swept).
     AIQ over the same cost range as ``switchyard eval`` (cheapest to dearest single model),
     quality at equal cost (the one-shot hull read at the cascade's cost), and RouteLLM's
     APGR / CPT(50 %) over the share of prompts that call the strong stage.
  4. Pre-generation decision time: the one-shot policy decision on one prompt's predictions
     against the same plus the cascade rule (median of 2,000, in process).

    python bench/cascade_eval.py [--sample 400] [--seed 0] [--cost-weight 19.35]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
from routerkit import DATA, LoadProbe, machine_info, write_results

from switchyard.resources import default_router
from switchyard.routers.cascade.training import Outcome, simulate, stage_arrays, train_cascade
from switchyard.routers.datasets.outputs import ModelOutputs, load_outputs
from switchyard.routers.embedding import load_embedder
from switchyard.routers.evaluation.metrics import (
    ThresholdCurve,
    aiq,
    apgr_routellm,
    breakpoint_lambdas,
    cpt_routellm,
    nondecreasing_convex_hull,
    sweep_points,
    threshold_curve,
)
from switchyard.routers.models import make_router
from switchyard.routers.pipeline import RoutingPipeline
from switchyard.routers.prediction import Prediction

RESULTS = Path(__file__).resolve().parent / "results" / "cascade"
STAGES = ("mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview")
Points = tuple[np.ndarray, np.ndarray]


def _curve(cost: np.ndarray, quality: np.ndarray, c_range: tuple[float, float]) -> dict[str, Any]:
    hc, hq = nondecreasing_convex_hull(cost, quality)
    return {"cost": cost.tolist(), "quality": quality.tolist(), "hull_cost": hc.tolist(),
            "hull_quality": hq.tolist(), "AIQ": aiq(hc, hq, *c_range)}  # fmt: skip


def _at(curve: dict[str, Any], cost: float) -> float:
    """The hull's quality at ``cost`` (0 below its cheapest point)."""
    hc, hq = np.asarray(curve["hull_cost"]), np.asarray(curve["hull_quality"])
    return float(np.interp(cost, hc, hq)) if cost >= hc[0] else 0.0


def _strong_share(out: Outcome, s: int) -> float:
    return float((out.last == s - 1).mean())


def _routellm(
    shares: list[float], quality: list[float], weak: float, strong: float
) -> dict[str, float]:
    order = np.argsort(shares, kind="stable")
    curve = ThresholdCurve(np.asarray(shares)[order], np.asarray(quality)[order], weak, strong)
    return {"APGR": apgr_routellm(curve), "CPT(50%)": cpt_routellm(curve, 50.0)}


def _decision_time(pipe: RoutingPipeline, pred: Prediction, cascade: Any) -> dict[str, float]:
    from switchyard.gateway.cascade_rule import first_stage
    from switchyard.routers.policy import decide

    models, lam = pipe.models, 19.35
    q, c = pred.quality[:1], pred.cost[:1]
    offline = dict(zip(models, map(float, q[0]), strict=True))
    times: dict[str, list[float]] = {"one-shot": [], "cascade": []}
    for _ in range(2000):
        t0 = time.perf_counter()
        d = decide(models, q, c, lam, None, pipe.prices)[0]
        t1 = time.perf_counter()
        first_stage(cascade, decide(models, q, c, lam, None, pipe.prices)[0], offline)
        t2 = time.perf_counter()
        times["one-shot"].append(t1 - t0)
        times["cascade"].append(t2 - t1)
    assert d.model in models
    return {k: float(np.median(v) * 1e3) for k, v in times.items()}


def _sample(outputs: ModelOutputs, count: int | None, seed: int) -> ModelOutputs:
    if count is None or count >= len(outputs):
        return outputs
    rows = np.sort(np.random.default_rng(seed).permutation(len(outputs))[:count])
    return outputs.subset(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sample", type=int, default=None, help="test prompts to keep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cost-weight", type=float, default=19.35)
    parser.add_argument("--stages", nargs="+", default=list(STAGES))
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--embedder", default="onnx-int8", help="embedder kind (the cascade "
                        "figures in docs/BENCHMARKS.md are int8 MiniLM's)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    probe, started = LoadProbe(), time.perf_counter()
    embedder = load_embedder(args.embedder, cache=args.cache_dir)
    everything = load_outputs([DATA / "routing" / "routerbench"])
    train = everything.where(split="train")
    test = _sample(everything.where(split="test"), args.sample, args.seed)
    print(f"{len(train)} train, {len(test)} test prompts")
    trained = train_cascade(train, args.stages, embedder, cost_weight=args.cost_weight,
                            max_escalations=len(args.stages) - 1, cache=args.cache_dir,
                            progress=True, seed=args.seed)  # fmt: skip
    arrays = stage_arrays(test, args.stages, embedder, cache=args.cache_dir, progress=True)
    results = _evaluate(args, trained, test, arrays, _one_shot(embedder, train, args.cache_dir))
    results["pre-generation ms"] = _decision_time(
        trained.pipeline,
        trained.pipeline.predict_features(arrays.prompts, test.data.prompts),
        trained.cascade,
    )
    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["machine"] = machine_info(probe, ("numpy", "onnxruntime"))
    write_results(_markdown(results), results, args.out / "cascade.json")
    _plot(results, args.out / "cascade_routerbench.png")


def _one_shot(embedder: Any, train: ModelOutputs, cache: Any) -> RoutingPipeline:
    """The shipped default router if it was trained on ``embedder``, else its recipe
    (``default`` on the RouterBench train split) trained here on ``embedder``."""
    if RoutingPipeline.recorded_embedder(default_router()) == embedder.name:
        return RoutingPipeline.load(default_router(), embedder)
    pipe = RoutingPipeline(make_router("default"), embedder, cache=cache)
    return pipe.fit(train.data)


def _evaluate(
    args: argparse.Namespace, trained: Any, test: ModelOutputs, arrays: Any, default: Any
) -> dict[str, Any]:
    data, cascade, s = test.data, trained.cascade, len(args.stages)
    assert data.cost is not None
    single = data.cost.sum(axis=0)
    c_range = (float(single.min()), float(single.max()))
    pred = trained.pipeline.predict_features(arrays.prompts, data.prompts)
    verify = np.stack([cascade.scores(i, arrays.prompts, arrays.answers[i])
                       for i in range(s - 1)], axis=1)  # fmt: skip
    curves: dict[str, dict[str, Any]] = {}
    shares: dict[str, list[float]] = {}
    for name, esc in (("cascade", s - 1), ("pre-generation only", 0)):
        outs = [simulate(pred.quality, verify, arrays, sk, ac, esc)
                for sk, ac, _, _ in trained.validation]  # fmt: skip
        curves[name] = _curve(np.array([o.cost.sum() for o in outs]),
                              np.array([o.quality.mean() for o in outs]), c_range)  # fmt: skip
        shares[name] = [_strong_share(o, s) for o in outs]
    chosen = simulate(pred.quality, verify, arrays, cascade.skip_below, cascade.accept_at, s - 1)
    full = default.predict_features(arrays.prompts, data.prompts)
    for name, p, sub in (("one-shot default router (11 models)", full, data),
                         ("one-shot router over the stages", pred,
                          data.select_models(args.stages))):  # fmt: skip
        assert sub.cost is not None
        cost, quality = sweep_points(p, sub.quality, sub.cost, breakpoint_lambdas(p))
        curves[name] = _curve(cost, quality, c_range)
    weak, strong = arrays.quality[:, 0], arrays.quality[:, -1]
    routellm = {name: _routellm(shares[name], curves[name]["quality"], float(weak.mean()),
                                float(strong.mean())) for name in shares}  # fmt: skip
    one_shot = threshold_curve(pred.quality[:, -1] - pred.quality[:, 0], weak, strong)
    routellm["one-shot router over the stages"] = {
        "APGR": apgr_routellm(one_shot), "CPT(50%)": cpt_routellm(one_shot, 50.0)}  # fmt: skip
    point = (float(chosen.cost.sum()), float(chosen.quality.mean()))
    return {
        "command": "python bench/cascade_eval.py"
        + (f" --sample {args.sample}" if args.sample else "") + f" --seed {args.seed}",
        "stages": args.stages, "train_prompts": cascade.metadata.get("train_rows"),
        "test_prompts": len(test), "thresholds": {"skip_below": cascade.skip_below,
                                                  "accept_at": cascade.accept_at},
        "verifier_C": cascade.metadata.get("verifier_C"),
        "chosen point": {"cost": point[0], "quality": point[1],
                         "one-shot default at that cost": _at(curves[
                             "one-shot default router (11 models)"], point[0]),
                         "strong share": _strong_share(chosen, s)},
        "curves": curves, "routellm": routellm,
        "equal cost": _equal_cost(curves),
    }  # fmt: skip


def _equal_cost(curves: dict[str, dict[str, Any]]) -> list[dict[str, float]]:
    """Cascade and one-shot hull quality at the cascade's hull costs."""
    base = curves["one-shot default router (11 models)"]
    rows = []
    for c, q in zip(curves["cascade"]["hull_cost"], curves["cascade"]["hull_quality"], strict=True):
        rows.append({"cost": c, "cascade": q, "one-shot default": _at(base, c)})
    return rows


def _markdown(r: dict[str, Any]) -> str:
    lines = [f"`{r['command']}` — stages {' -> '.join(r['stages'])}, {r['test_prompts']} test "
             f"prompts; thresholds {r['thresholds']}", "",
             "| curve | AIQ | max quality | cost at max (USD) |", "|---|---|---|---|"]  # fmt: skip
    for name, c in r["curves"].items():
        lines.append(f"| {name} | {c['AIQ']:.4f} | {c['hull_quality'][-1]:.1%} "
                     f"| {c['hull_cost'][-1]:.3f} |")  # fmt: skip
    p = r["chosen point"]
    lines += ["", f"Chosen thresholds (validation, λ = cost weight): cost ${p['cost']:.3f}, "
              f"quality {p['quality']:.1%}; one-shot default at that cost "
              f"{p['one-shot default at that cost']:.1%}; strong share {p['strong share']:.1%}",
              "", "| curve | APGR | CPT(50%) |", "|---|---|---|"]  # fmt: skip
    for name, m in r["routellm"].items():
        lines.append(f"| {name} | {m['APGR']:.3f} | {m['CPT(50%)']:.1%} |")
    lines += ["", "| cost (USD) | cascade | one-shot default |", "|---|---|---|"]
    for row in r["equal cost"]:
        lines.append(
            f"| {row['cost']:.3f} | {row['cascade']:.1%} | {row['one-shot default']:.1%} |"
        )
    t = r["pre-generation ms"]
    lines += ["", f"Decision from predictions, median: one-shot {t['one-shot']:.4f} ms, "
              f"one-shot + cascade rule {t['cascade']:.4f} ms"]  # fmt: skip
    return "\n".join(lines)


def _plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in r["curves"].items():
        ax.plot(c["hull_cost"], c["hull_quality"], marker=".", label=f"{name} (AIQ {c['AIQ']:.3f})")
    ax.set_xscale("log")
    ax.set_xlabel("total test cost (USD)")
    ax.set_ylabel("mean quality")
    ax.set_title("RouterBench test: cascade vs one-shot (hulls)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
