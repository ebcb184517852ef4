"""Routing-decision latency: embed + predict quality + predict cost + policy, for ONE prompt
on ONE core, end to end through ``RoutingPipeline.decide([prompt])`` and part by part.

Targets (docs): p50 <= 5 ms for a 64-token prompt and <= 15 ms for a 512-token prompt, one core.

What is measured
  * The router: ``--router DIR`` (a saved router directory); by default the shipped
    ``switchyard/data/default-router`` if it exists, else the ``default`` router trained here on
    the RouterBench train split (``routing/routerbench`` rows with split == "train"; embedding
    those prompts takes ~2 min the first time and is cached on disk after). Training is not timed.
  * Prompts of exactly 64 and 512 tokens, [CLS] and [SEP] included, counted with the embedder's
    own tokenizer, cut from concatenated real MMLU/GSM8K questions (RouterDC data). The int8
    embedder keeps the first 128 and last 126 tokens of longer prompts (its documented
    head + tail policy), so the 512-token prompt runs the model on 256 tokens: tokenising the
    full text and truncating it is part of what is measured.
  * Latency (one thread, process pinned to CPU 0, OMP/BLAS/ORT thread env = 1): ``--runs``
    timed calls after ``--warmup`` untimed ones, perf_counter_ns; each iteration times
    ``decide([prompt])`` end to end, then its parts in sequence: tokenise (inside embed),
    embed, predict_quality, cost predict + policy. p50/p90/p99 reported; the CPU time of the
    decide() call (thread_time_ns) as well, which shows how much the wall time is inflated by
    other processes competing for the core.
  * Embed-only variants (no router is trained on them; routers would need re-training since
    the embedder name differs): int8 with max_tokens=128, head_tokens=64, and fp32 (t256).
  * Batched throughput: decisions/s of ``decide()`` over ``--prompts`` real questions in
    batches of 64, with 1 thread (pinned to CPU 0) and 2 threads (unpinned), median of
    ``--repeats``.

Prints Markdown tables and writes ``bench/results/router_latency.json`` with machine info
(CPU model, load averages before/after, onnxruntime version, date). ``--quick`` is a smoke run.

    python bench/router_latency.py [--router DIR] [--runs 300] [--warmup 30] [--quick]
"""

from __future__ import annotations

import os

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ORT_NUM_THREADS")
for _var in THREAD_ENV:  # before numpy/onnxruntime are imported: they read these once
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from routerkit import (  # noqa: E402
    LoadProbe,
    exact_prompt,
    load_questions,
    loadavg_text,
    machine_info,
    token_count,
    write_results,
)

from switchyard.routers.datasets import load_dataset  # noqa: E402
from switchyard.routers.embedding import (  # noqa: E402
    Embedder,
    OnnxEmbedder,
    StaticEmbedder,
    cache_dir,
    kind_of,
    load_embedder,
)
from switchyard.routers.models import make_router  # noqa: E402
from switchyard.routers.pipeline import RoutingPipeline  # noqa: E402
from switchyard.routers.policy import decide  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS = BENCH_DIR / "results" / "router_latency.json"
DEFAULT_ROUTER_DIR = REPO / "switchyard" / "data" / "default-router"
LENGTHS = (64, 512)
TARGETS_MS = {64: 5.0, 512: 15.0}
VERSIONS = ("onnxruntime", "numpy", "tokenizers")
PARTS = ("tokenize", "embed", "predict_quality", "cost_policy", "sum_of_parts")


def pin_to(cores: set[int] | None) -> list[int] | None:
    """Pin this thread (and threads it starts later) to ``cores`` (None: all CPUs)."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    target = cores if cores is not None else set(range(os.cpu_count() or 1))
    os.sched_setaffinity(0, target)
    return sorted(os.sched_getaffinity(0))


def stats_ms(samples_ns: Sequence[int]) -> dict[str, float]:
    arr = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p99 = np.percentile(arr, [50, 90, 99])
    return {
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(arr.min()),
        "mean": float(arr.mean()),
    }


# -- the router ----------------------------------------------------------------------------------


def build_pipeline(args: argparse.Namespace, cache: Path) -> tuple[RoutingPipeline, dict[str, Any]]:
    """Load ``--router`` (or the shipped default router), else train ``default`` on RouterBench
    train. Uses an all-cores embedder (training only); the caller swaps in the 1-thread one."""
    path: Path | None = args.router or (DEFAULT_ROUTER_DIR if DEFAULT_ROUTER_DIR.is_dir() else None)
    args.kind = kind_of(RoutingPipeline.recorded_embedder(path)) if path else "static"
    embedder = load_embedder(args.kind, cache=cache)
    if path is not None:
        pipe = RoutingPipeline.load(path, embedder, cache=cache)
        return pipe, {"source": str(path), "kind": pipe.router.kind, "models": len(pipe.models)}
    data = load_dataset("routing/routerbench").where(split="train")
    print(f"no saved router: training `default` on {len(data)} RouterBench train rows", flush=True)
    started = time.perf_counter()
    pipe = RoutingPipeline(make_router("default"), embedder, cache=cache)
    pipe.fit(data, progress=True)
    return pipe, {
        "source": "trained here: default on routing/routerbench split=train",
        "kind": pipe.router.kind,
        "models": len(pipe.models),
        "train_rows": len(data),
        "train_seconds": round(time.perf_counter() - started, 2),
    }


# -- prompts -------------------------------------------------------------------------------------


# -- timing --------------------------------------------------------------------------------------


def time_decide(
    pipe: RoutingPipeline, embedder: Any, prompt: str, runs: int, warmup: int
) -> dict[str, dict[str, float]]:
    """decide([prompt]) end to end, then its parts, in the same iteration (so both see the
    same machine load); warm-up iterations are not recorded."""
    lam = pipe.cost_weight
    models = pipe.models
    samples: dict[str, list[int]] = {p: [] for p in (*PARTS, "decide", "decide_cpu")}
    clock, cpu = time.perf_counter_ns, time.thread_time_ns
    for i in range(warmup + runs):
        c0, t0 = cpu(), clock()
        pipe.decide([prompt])
        t1, c1 = clock(), cpu()
        embedder.tokenizer.encode([prompt])
        t2 = clock()
        x = np.asarray(embedder.embed([prompt]), dtype=np.float64)
        t3 = clock()
        quality = pipe.router.predict_quality(x)
        t4 = clock()
        decide(models, quality, pipe.cost.predict([prompt]), lam, None)
        t5 = clock()
        if i < warmup:
            continue
        for name, value in (
            ("decide", t1 - t0),
            ("decide_cpu", c1 - c0),
            ("tokenize", t2 - t1),
            ("embed", t3 - t2),
            ("predict_quality", t4 - t3),
            ("cost_policy", t5 - t4),
            ("sum_of_parts", t5 - t2),
        ):
            samples[name].append(value)
    return {name: stats_ms(values) for name, values in samples.items()}


def time_call(call: Callable[[], object], runs: int, warmup: int) -> dict[str, dict[str, float]]:
    """Wall and CPU time of ``call`` (one thread)."""
    for _ in range(warmup):
        call()
    wall: list[int] = []
    cpu: list[int] = []
    for _ in range(runs):
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        call()
        t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
        wall.append(t1 - t0)
        cpu.append(c1 - c0)
    return {"wall": stats_ms(wall), "cpu": stats_ms(cpu)}


def throughput(pipe: RoutingPipeline, prompts: list[str], batch: int, repeats: int) -> list[float]:
    """Decisions/s of decide() over ``prompts`` in batches of ``batch``, per repeat."""
    pipe.decide(prompts[:batch])  # warm-up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(prompts), batch):
            pipe.decide(prompts[start : start + batch])
        rates.append(len(prompts) / (time.perf_counter() - started))
    return rates


# -- the run -------------------------------------------------------------------------------------


def embed_variants(
    cache: Path, prompts: dict[int, str], runs: int, warmup: int
) -> dict[str, dict[str, Any]]:
    """Embed-only latency of the static, int8, int8 t128h64 and fp32 embedders (one thread)."""
    variants: dict[str, Embedder] = {
        "static pcaz256 (default)": StaticEmbedder(cache),
        "int8 t256h128": OnnxEmbedder(cache, threads=1),
        "int8 t128h64": OnnxEmbedder(cache, threads=1, max_tokens=128, head_tokens=64),
        "fp32 t256h128": OnnxEmbedder(cache, variant="fp32", threads=1),
    }
    out: dict[str, dict[str, Any]] = {}
    for label, embedder in variants.items():
        out[label] = {"name": embedder.name}
        for n, prompt in prompts.items():
            out[label][f"{n}_tokens"] = time_call(partial(embedder.embed, [prompt]), runs, warmup)
    return out


def batched(
    pipe: RoutingPipeline, cache: Path, texts: list[str], repeats: int, kind: str
) -> dict[str, dict[str, Any]]:
    """decide() throughput in batches of 64: 1 thread pinned to CPU 0, then 2 threads unpinned."""
    out: dict[str, dict[str, Any]] = {}
    for threads, cores in ((1, {0}), (2, None)):
        affinity = pin_to(cores)
        pipe.embedder = load_embedder(kind, cache=cache, threads=threads)
        rates = throughput(pipe, texts, 64, repeats)
        out[f"threads_{threads}"] = {
            "median": float(np.median(rates)),
            "all": rates,
            "affinity": affinity,
        }
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    cache = args.cache_dir or cache_dir()
    probe = LoadProbe()
    pipe, router_info = build_pipeline(args, cache)
    affinity = pin_to({0})
    embedder: Any = load_embedder(args.kind, cache=cache, threads=1)  # either has .tokenizer
    pipe.embedder = embedder
    source = " ".join(load_questions(400))
    prompts = {n: exact_prompt(n, embedder.tokenizer, source) for n in LENGTHS}
    results: dict[str, Any] = {"router": router_info, "embedder": embedder.name, "latency_ms": {}}
    for n, prompt in prompts.items():
        print(f"timing decide() on a {n}-token prompt", flush=True)
        results["latency_ms"][f"{n}_tokens"] = time_decide(
            pipe, embedder, prompt, args.runs, args.warmup
        )
    print("timing embed-only variants", flush=True)
    results["embed_only_ms"] = embed_variants(cache, prompts, args.runs, args.warmup)
    texts = load_questions(args.prompts)
    print(f"timing batched decide() over {len(texts)} prompts", flush=True)
    results["throughput_per_s"] = batched(pipe, cache, texts, args.repeats, args.kind)
    lengths = [token_count(embedder.tokenizer, t) for t in texts]
    results["meta"] = {
        **machine_info(probe, VERSIONS),
        "runs": args.runs,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "latency_affinity": affinity,
        "thread_env": {v: os.environ.get(v) for v in THREAD_ENV},
        "prompt_tokens": {n: token_count(embedder.tokenizer, p) for n, p in prompts.items()},
        "model_tokens": {n: len(embedder.tokenizer.encode([p])[0]) for n, p in prompts.items()},
        "throughput_prompts": len(texts),
        "throughput_prompt_tokens": {
            "median": float(np.median(lengths)),
            "mean": float(np.mean(lengths)),
            "max": int(max(lengths)),
        },
        "embedder": embedder.name,
        "targets_p50_ms": TARGETS_MS,
    }
    return results


# -- report --------------------------------------------------------------------------------------


def _cell(s: dict[str, float]) -> str:
    return f"{s['p50']:.2f} / {s['p90']:.2f} / {s['p99']:.2f}"


def latency_table(results: dict[str, Any]) -> list[str]:
    lat = results["latency_ms"]
    head = " | ".join(f"{n} tok p50 / p90 / p99 ms" for n in LENGTHS)
    rows = [f"| part | {head} |", "|---|" + "---|" * len(LENGTHS)]
    labels = {
        "tokenize": "tokenize (inside embed)",
        "embed": f"embed ({results.get('embedder', 'router embedder')})",
        "predict_quality": "predict_quality",
        "cost_policy": "cost predict + policy",
        "sum_of_parts": "sum of parts",
        "decide": "**decide() end to end**",
        "decide_cpu": "decide() CPU time",
    }
    for key, label in labels.items():
        cells = " | ".join(_cell(lat[f"{n}_tokens"][key]) for n in LENGTHS)
        rows.append(f"| {label} | {cells} |")
    verdicts = []
    for n in LENGTHS:
        p50 = lat[f"{n}_tokens"]["decide"]["p50"]
        verdicts.append(f"{'PASS' if p50 <= TARGETS_MS[n] else 'FAIL'} (≤ {TARGETS_MS[n]:g} ms)")
    rows.append(f"| target, decide() p50 | {' | '.join(verdicts)} |")
    for label, entry in results["embed_only_ms"].items():
        cells = " | ".join(
            f"{_cell(entry[f'{n}_tokens']['wall'])} (cpu p50 "
            f"{entry[f'{n}_tokens']['cpu']['p50']:.2f})"
            for n in LENGTHS
        )
        rows.append(f"| embed only: {label} | {cells} |")
    return rows


def table(results: dict[str, Any]) -> str:
    meta = results["meta"]
    thr = results["throughput_per_s"]
    rows = latency_table(results)
    rows += [
        "",
        "| batched decide() (batches of 64) | decisions/s (median) | runs |",
        "|---|---|---|",
    ]
    for key, entry in thr.items():
        runs = ", ".join(f"{r:.0f}" for r in entry["all"])
        rows.append(f"| {key.replace('_', ' = ')} | {entry['median']:.0f} | {runs} |")
    router = results["router"]
    rows += [
        "",
        f"Router: {router['kind']} over {router['models']} models ({router['source']}). "
        f"{meta['cpu']}, {meta['cpus']} CPUs; load average (1/5/15 min) "
        f"{loadavg_text(meta)}; CPU time used by other "
        f"processes during the run: {meta.get('cpu_share_others', float('nan')):.0%} of the "
        f"machine (steal {meta.get('cpu_steal_share', float('nan')):.1%}). Latency: one thread "
        f"pinned to CPUs {meta['latency_affinity']}, {meta['runs']} runs after "
        f"{meta['warmup']} warm-up; throughput: {meta['throughput_prompts']} MMLU/GSM8K "
        f"questions (median {meta['throughput_prompt_tokens']['median']:.0f} tokens), "
        f"median of {meta['repeats']}; onnxruntime {meta['versions']['onnxruntime']}.",
    ]
    return "\n".join(rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--router",
        type=Path,
        default=None,
        help="saved router directory (default: switchyard/data/default-router if present, "
        "else train `default` on the RouterBench train split)",
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="embedder cache directory")
    parser.add_argument("--runs", type=int, default=300, help="timed calls per latency (300)")
    parser.add_argument("--warmup", type=int, default=30, help="untimed calls first (30)")
    parser.add_argument("--prompts", type=int, default=1024, help="prompts for throughput")
    parser.add_argument("--repeats", type=int, default=3, help="throughput passes (median)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 runs, 256 prompts")
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON results file")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup, args.prompts, args.repeats = 40, 10, 256, 1
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    results = run(args)
    write_results(table(results), results, args.out)


if __name__ == "__main__":
    main()
