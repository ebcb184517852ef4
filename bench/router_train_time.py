"""Router training time on the full RouterDC training set, embeddings cached.

Target: training ANY router of the zoo takes under 5 minutes (300 s) on this 2-core machine
once the prompt embeddings are cached.

Protocol (as in ``switchyard.routers.evaluation.routerdc``): train rows are the RouterDC
in-distribution tasks (gsm8k, humaneval, arc_challenge, mmlu, cmmlu) with split "train" (~5,935
prompts x 7 models); test rows are those tasks' "test" rows plus the out-of-distribution tasks
(MATH_prealgebra, mbpp, ceval; ~12k prompts).

Steps
  1. load the data (``load_dataset("routing/routerdc")``) and embed train and test prompts with
     ``embed_cached`` (ONNX int8, all cores). The first call fills the on-disk cache: that is
     a one-off cost, reported separately (``cached_before`` says whether the cache already held
     them; ``--cold-cache`` embeds into a temporary cache to measure the fill anyway). A second
     ``embed_cached`` call is timed too: the cost of reading the cache in a training run.
  2. for each router (``make_router(name)``, default hyperparameters): wall-clock and CPU time
     of ``fit(X, Y, tasks=tasks)`` (one run each), of ``predict_quality`` on the test rows, and as a
     sanity check the mean test quality of the model each router picks (lambda = 0). torch is
     imported once before the first fit (its import time is reported apart).

Prints a Markdown table (router, fit s, predict s, pass/fail vs 300 s) and writes
``bench/results/router_train_time.json`` with machine info and load.

    python bench/router_train_time.py [--routers knn,mlp] [--cold-cache]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from routerkit import LoadProbe, loadavg_text, machine_info, write_results
from tqdm import tqdm

from switchyard.routers.datasets import RoutingDataset, load_dataset
from switchyard.routers.embedding import (
    Embedder,
    embed_cached,
    embeddings_dir,
    load_embedder,
    text_digests,
)
from switchyard.routers.evaluation.routerdc import ROUTERDC_ID_TASKS, ROUTERDC_OOD_TASKS
from switchyard.routers.models import make_router, router_names
from switchyard.routers.policy import choose

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "router_train_time.json"
ZOO = ("random", "best-single", "knn", "knn-prior", "mlp", "mf", "routerdc", "ensemble", "default")
LIMIT_S = 300.0
VERSIONS = ("torch", "numpy", "onnxruntime")
QUICK_ROWS = (600, 1200)


def protocol_split(data: RoutingDataset) -> tuple[RoutingDataset, RoutingDataset]:
    """RouterDC's train rows and its ID + OOD test rows."""
    splits = data.splits or [""] * len(data)
    train = [
        t in ROUTERDC_ID_TASKS and s == "train" for t, s in zip(data.tasks, splits, strict=True)
    ]
    test = [
        (t in ROUTERDC_ID_TASKS and s == "test") or (t in ROUTERDC_OOD_TASKS and s != "train")
        for t, s in zip(data.tasks, splits, strict=True)
    ]
    return data.subset(np.array(train)), data.subset(np.array(test))


def fully_cached(embedder: Embedder, texts: Sequence[str], cache: Path | None) -> bool:
    """Whether ``embed_cached`` will find a shard of exactly these texts (its key scheme)."""
    digests = text_digests(texts)
    key = hashlib.sha256(digests.tobytes()).hexdigest()[:32]
    return (embeddings_dir(embedder.name, cache) / f"{key}.keys.npy").is_file()


def embed_timed(
    embedder: Embedder, texts: list[str], cache: Path | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Embed through the cache twice: the first call may fill it, the second reads it."""
    cached_before = fully_cached(embedder, texts, cache)
    started = time.perf_counter()
    embed_cached(embedder, texts, cache=cache, progress=True)
    first = time.perf_counter() - started
    started = time.perf_counter()
    X = np.asarray(embed_cached(embedder, texts, cache=cache, progress=False), dtype=np.float64)
    second = time.perf_counter() - started
    info = {
        "rows": len(texts),
        "cached_before": cached_before,
        "first_call_s": round(first, 3),
        "cached_call_s": round(second, 4),
    }
    return X, info


def import_torch() -> float | None:
    """Import torch before any fit is timed (mlp, mf, routerdc and the ensemble train with it),
    so its one-off import is not charged to the first of them; seconds, or None without it."""
    started = time.perf_counter()
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    return round(time.perf_counter() - started, 3)


def picked_quality(pred: np.ndarray, Y: np.ndarray) -> float:
    """Mean observed quality of the model the policy picks at λ = 0 (NaN scores skipped)."""
    chosen = Y[np.arange(len(Y)), choose(pred, np.zeros_like(pred), 0.0)]
    return float(np.nanmean(chosen))


def time_router(
    name: str, train: RoutingDataset, X: np.ndarray, test: RoutingDataset, X_test: np.ndarray
) -> dict[str, Any]:
    """Fit once and predict the test rows once, wall clock and CPU time."""
    router = make_router(name)
    c0, t0 = time.process_time(), time.perf_counter()
    router.fit(X, train.quality, tasks=train.tasks)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    pred = router.predict_quality(X_test)
    predict_s = time.perf_counter() - t0
    return {
        "router": repr(router),
        "fit_s": round(fit_s, 3),
        "fit_cpu_s": round(fit_cpu, 3),
        "predict_s": round(predict_s, 4),
        "predict_rows": len(X_test),
        "test_quality": round(picked_quality(pred, test.quality), 4),
        "pass": fit_s < LIMIT_S,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    probe = LoadProbe()
    t0 = time.perf_counter()
    train, test = protocol_split(load_dataset("routing/routerdc"))
    if args.quick:
        rng = np.random.default_rng(0)
        train = train.subset(np.sort(rng.choice(len(train), QUICK_ROWS[0], replace=False)))
        test = test.subset(np.sort(rng.choice(len(test), QUICK_ROWS[1], replace=False)))
    load_s = time.perf_counter() - t0
    print(
        f"RouterDC protocol: {len(train)} train rows, {len(test)} test rows, "
        f"{len(train.models)} models (loaded in {load_s:.2f} s)",
        flush=True,
    )
    embedder = load_embedder("onnx-int8", threads=None)
    with tempfile.TemporaryDirectory(prefix="sy-emb-") as tmp:
        cache = Path(tmp) if args.cold_cache else args.cache_dir
        X, train_info = embed_timed(embedder, train.prompts, cache)
        X_test, test_info = embed_timed(embedder, test.prompts, cache)
    torch_import_s = import_torch()
    torch = sys.modules.get("torch")
    threads_at_start = torch.get_num_threads() if torch is not None else None
    rows: dict[str, Any] = {}
    bar = tqdm(args.routers, desc="fitting routers", unit="router")
    for name in bar:
        bar.set_postfix_str(name)
        rows[name] = time_router(name, train, X, test, X_test)
    bar.close()
    return {
        "routers": rows,
        "data": {
            "train_rows": len(train),
            "test_rows": len(test),
            "models": train.models,
            "load_s": round(load_s, 3),
        },
        "embedding": {
            "embedder": embedder.name,
            "train": train_info,
            "test": test_info,
            "cold_cache": args.cold_cache,
            "quick": args.quick,
        },
        "meta": {
            **machine_info(probe, VERSIONS),
            "torch_threads_at_start": threads_at_start,
            "torch_threads": torch.get_num_threads() if torch is not None else None,
            "torch_import_s": torch_import_s,
            "limit_s": LIMIT_S,
        },
    }


def table(results: dict[str, Any]) -> str:
    rows = [
        "| router | fit s (wall) | fit s (CPU) | predict s (test rows) | test quality | < 300 s |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results["routers"].items():
        rows.append(
            f"| {name} | {r['fit_s']:.2f} | {r['fit_cpu_s']:.2f} | {r['predict_s']:.3f} "
            f"({r['predict_rows']}) | {r['test_quality']:.3f} | {'PASS' if r['pass'] else 'FAIL'} |"
        )
    emb, data, meta = results["embedding"], results["data"], results["meta"]
    fill = ", ".join(
        f"{part} {emb[part]['rows']} rows {emb[part]['first_call_s']:.1f} s "
        f"({'already cached' if emb[part]['cached_before'] else 'filled the cache'}; "
        f"cached read {emb[part]['cached_call_s']:.2f} s)"
        for part in ("train", "test")
    )
    rows += [
        "",
        f"Data: {data['train_rows']} train / {data['test_rows']} test rows x "
        f"{len(data['models'])} models (load {data['load_s']:.2f} s). Embedding "
        f"({emb['embedder']}, one-off): {fill}.",
        f"{meta['cpu']}, {meta['cpus']} CPUs, torch threads "
        f"{meta['torch_threads_at_start']} at start, {meta['torch_threads']} after the fits "
        f"(import {meta['torch_import_s']} s, not in the fit times); load "
        f"average {loadavg_text(meta)}; CPU time of other "
        f"processes during the run: {meta.get('cpu_share_others', float('nan')):.0%} of the "
        f"machine.",
    ]
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--routers",
        default=",".join(ZOO),
        help=f"comma-separated routers to time (default: all of {', '.join(ZOO)})",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="embeddings cache directory")
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="embed into a fresh temporary cache, to measure the one-off cache fill",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run on {QUICK_ROWS[0]} train / {QUICK_ROWS[1]} test rows (random subset)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    args.routers = [r.strip() for r in args.routers.split(",") if r.strip()]
    unknown = [r for r in args.routers if r not in router_names()]
    if unknown or not args.routers:
        parser.error(f"unknown routers {unknown}; choose from {', '.join(router_names())}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    write_results(table(results), results, args.out)


if __name__ == "__main__":
    main()
