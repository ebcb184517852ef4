"""Label-free routing (Smoothie) on RouterBench: estimate quality, train, evaluate.

Protocol
  1. Data: the RouterBench CSVs (ARC-Challenge, MBPP, Winogrande; 11 models with answer
     texts). ``--sample N`` keeps N random train and N·(test/train) test prompts (``--seed``);
     the default keeps all (the short multiple-choice answers repeat, so only ~4.7k distinct
     answer texts need embedding).
  2. Hyperparameter: ``n_neighbors`` of the sample-dependent Smoothie is chosen on a
     validation fold of the train split (a random 20 %, ``--seed``): for each candidate the
     estimate is fitted on the other 80 %'s outputs only, the router trained on it, and the
     RouterBench AIQ measured on the fold with its true labels. The test split is never used.
  3. Label-free router: Smoothie fitted on the whole train split's outputs (no labels) with
     the chosen ``n_neighbors``; the router (``--router``, the project's default) trained on
     the estimate. Supervised router: the same kind trained on the true 0/1 labels.
  4. Test: both routers in one ``evaluate_routerbench`` run (the ``switchyard eval``
     protocol: λ sweep, hull, AIQ; baselines incl. every single model). Accuracy = the test
     quality of the router's pick at λ = 0 (quality only) and the hull's max quality.
  5. Correlation: Spearman's correlation of the estimate with the true 0/1 quality, per
     task, over every (prompt, model) cell ("per prompt") and over per-model means
     ("per model"), on the train split (where the estimate is the training target) and on the
     test split (estimated from the test outputs alone).

    python bench/labelfree_eval.py [--sample 600] [--seed 0] [--router default]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
from routerkit import DATA, LoadProbe, machine_info, write_results

from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.datasets.outputs import ModelOutputs, load_outputs
from switchyard.routers.embedding import load_embedder
from switchyard.routers.evaluation import Report, evaluate_routerbench, write_report
from switchyard.routers.labelfree import estimate_quality, spearman
from switchyard.routers.models import make_router
from switchyard.routers.pipeline import RoutingPipeline

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "labelfree"
NEIGHBOURS: tuple[int | None, ...] = (1, 3, 10, 30, None)
SCALES = ("linear", "log")
Choice = tuple[int | None, str]


def _sample(outputs: ModelOutputs, count: int | None, rng: np.random.Generator) -> ModelOutputs:
    if count is None or count >= len(outputs):
        return outputs
    return outputs.subset(np.sort(rng.permutation(len(outputs))[:count]))


def _as_protocol(train: RoutingDataset, test: RoutingDataset) -> RoutingDataset:
    """``train`` and ``test`` rows in one dataset with those split labels (the protocol's)."""
    from switchyard.routers.datasets import concat

    return concat([dataclasses.replace(train, splits=["train"] * len(train)),
                   dataclasses.replace(test, splits=["test"] * len(test))])  # fmt: skip


def _pipeline(router: str, embedder: Any, cache: Path | None) -> RoutingPipeline:
    return RoutingPipeline(make_router(router), embedder, cache=cache)


def _correlations(outputs: ModelOutputs, estimate: RoutingDataset) -> dict[str, dict[str, float]]:
    truth, est = outputs.data.quality, estimate.quality
    tasks = np.array(outputs.data.tasks)
    out: dict[str, dict[str, float]] = {}
    for task in sorted(set(outputs.data.tasks)):
        rows = tasks == task
        out[task] = {
            "per prompt": spearman(est[rows], truth[rows]),
            "per model": spearman(np.nanmean(est[rows], 0), np.nanmean(truth[rows], 0)),
            "prompts": int(rows.sum()),
        }
    return out


def _aiq(report: Report, name: str) -> float:
    return float(report.row(name).metrics["AIQ"])


def choose(
    train: ModelOutputs, args: argparse.Namespace, embedder: Any
) -> tuple[Choice, dict[str, float]]:
    """The (n_neighbors, scale) with the best validation AIQ (ties: the first)."""
    rng = np.random.default_rng(args.seed + 1)
    order = rng.permutation(len(train))
    cut = len(train) // 5
    fold, rest = train.subset(np.sort(order[:cut])), train.subset(np.sort(order[cut:]))
    data = _as_protocol(rest.data, fold.data)
    scores: dict[str, float] = {}
    for k in NEIGHBOURS:
        for scale in SCALES:
            estimate, _ = estimate_quality(
                rest, embedder, n_neighbors=k, scale=scale, cache=args.cache_dir
            )
            pipe = _pipeline(args.router, embedder, args.cache_dir).fit(estimate)
            report = evaluate_routerbench({"lf": pipe}, data, refit=False, progress=False)
            scores[f"{k}/{scale}"] = _aiq(report, "lf")
            print(f"  validation n_neighbors={k} scale={scale}: AIQ {scores[f'{k}/{scale}']:.4f}")
    best = max(((k, s) for k in NEIGHBOURS for s in SCALES), key=lambda c: scores[f"{c[0]}/{c[1]}"])
    return best, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sample", type=int, default=None, help="train prompts to keep")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--router", default="default")
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    probe, started = LoadProbe(), time.perf_counter()
    rng = np.random.default_rng(args.seed)
    embedder = load_embedder(cache=args.cache_dir)
    everything = load_outputs([DATA / "routing" / "routerbench"])
    train, test = everything.where(split="train"), everything.where(split="test")
    test_count = None if args.sample is None else round(args.sample * len(test) / len(train))
    train, test = _sample(train, args.sample, rng), _sample(test, test_count, rng)
    print(f"{len(train)} train, {len(test)} test prompts × {len(train.data.models)} models")

    (k, scale), validation = choose(train, args, embedder)
    print(f"chosen n_neighbors = {k}, scale = {scale}")
    estimate, _ = estimate_quality(
        train, embedder, n_neighbors=k, scale=scale, cache=args.cache_dir
    )
    test_estimate, _ = estimate_quality(
        test, embedder, n_neighbors=k, scale=scale, cache=args.cache_dir
    )
    label_free = _pipeline(args.router, embedder, args.cache_dir).fit(estimate)
    supervised = _pipeline(args.router, embedder, args.cache_dir).fit(train.data)
    data = _as_protocol(train.data, test.data)
    routers = {"label-free (Smoothie)": label_free, "supervised": supervised}
    report = evaluate_routerbench(routers, data, refit=False, progress=False)
    report.metadata["smoothie"] = f"n_neighbors={k}, scale={scale}"
    write_report(report, args.out)
    results = _results(
        args,
        f"n_neighbors={k}, scale={scale}",
        validation,
        report,
        train,
        estimate,
        test,
        test_estimate,
    )
    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["machine"] = machine_info(probe, ("numpy", "onnxruntime"))
    write_results(_markdown(results), results, args.out / "labelfree.json")


def _results(
    args: argparse.Namespace,
    choice: str,
    validation: dict[str, float],
    report: Report,
    train: ModelOutputs,
    estimate: RoutingDataset,
    test: ModelOutputs,
    test_estimate: RoutingDataset,
) -> dict[str, Any]:
    singles = [r for r in report.rows if r.name.startswith("single: ")]
    best_single = max(singles, key=lambda r: r.metrics["AIQ"])
    rows = {}
    for name in ("label-free (Smoothie)", "supervised", "best single-model hull", "oracle"):
        row = report.row(name)
        rows[name] = {
            "AIQ": row.metrics["AIQ"],
            "max quality": row.metrics.get("max quality"),
            "quality at lambda=0": row.curves["points"].y[0],
        }
    rows[best_single.name] = {
        "AIQ": best_single.metrics["AIQ"], "max quality": best_single.metrics["max quality"],
        "quality at lambda=0": best_single.curves["points"].y[0],
    }  # fmt: skip
    return {
        "command": "python bench/labelfree_eval.py"
        + (f" --sample {args.sample}" if args.sample else "")
        + f" --seed {args.seed} --router {args.router}",
        "train_prompts": len(train),
        "test_prompts": len(test),
        "smoothie": choice,
        "validation_aiq": validation,
        "rows": rows,
        "best_single": best_single.name,
        "spearman_train": _correlations(train, estimate),
        "spearman_test": _correlations(test, test_estimate),
    }


def _markdown(results: dict[str, Any]) -> str:
    lines = [f"`{results['command']}` — chosen: {results['smoothie']}", "",
             "| router | AIQ | quality at λ=0 | max quality |", "|---|---|---|---|"]  # fmt: skip
    for name, row in results["rows"].items():
        lines.append(f"| {name} | {row['AIQ']:.4f} | {row['quality at lambda=0']:.1%} "
                     f"| {row['max quality']:.1%} |")  # fmt: skip
    lines += ["", "| task | split | Spearman per prompt | Spearman per model | prompts |",
              "|---|---|---|---|---|"]  # fmt: skip
    for split in ("train", "test"):
        for task, c in results[f"spearman_{split}"].items():
            lines.append(f"| {task} | {split} | {c['per prompt']:.3f} | {c['per model']:.3f} "
                         f"| {c['prompts']} |")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    main()
