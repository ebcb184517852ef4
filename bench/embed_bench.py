"""Prompt embedder speed: ONNX int8 (per-channel) vs ONNX fp32 vs the sentence-transformers
reference (torch fp32), on CPU.

* latency: one ``embed([prompt])`` call (tokenisation included) with one thread, for a
  64-token and a 512-token prompt (the ONNX embedder keeps 128 head + 126 tail tokens of the
  latter, the reference its first 254), p50/p90 over ``--runs`` calls after ``--warmup``;
* throughput: prompts/s embedding ``--prompts`` real MMLU/GSM8K questions with
  ``embed(texts, batch_size=64)``, with 1 and 2 threads (int8 runs one text per call
  whatever the batch size: see ``OnnxEmbedder.embed``).

Prints a Markdown table and writes ``bench/results/embed_bench.json``. The target for the
whole routing decision (embed + predict + policy) is p50 <= 5 ms at 64 tokens and <= 15 ms at
512 tokens on one core. Exports the embedder into the cache first if needed (train extra)::

    python bench/embed_bench.py [--cache-dir DIR] [--runs 200] [--prompts 512]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from routerkit import cpu_model, load_questions, now_iso, versions, write_results

from switchyard.routers.embedding import (
    Embedder,
    OnnxEmbedder,
    SentenceTransformerEmbedder,
    cache_dir,
    export_onnx,
)

BENCH_DIR = Path(__file__).resolve().parent
RESULTS = BENCH_DIR / "results" / "embed_bench.json"
KINDS = ("onnx-int8", "onnx-fp32", "st-fp32")


def prompt_of(tokens: int, embedder: OnnxEmbedder, source: Sequence[str]) -> str:
    """A real-text prompt of ``tokens`` tokens, [CLS] and [SEP] included (the shortest run of
    whole words reaching it: at most a word's pieces over)."""
    words = " ".join(source).split()

    def count(n: int) -> int:
        return len(embedder.tokenizer.content_ids([" ".join(words[:n])])[0]) + 2

    low, high = 1, len(words)
    while low < high:
        mid = (low + high) // 2
        low, high = (low, mid) if count(mid) >= tokens else (mid + 1, high)
    return " ".join(words[:low])


def make(kind: str, cache: Path, threads: int) -> Embedder:
    if kind == "st-fp32":
        import torch

        torch.set_num_threads(threads)
        return SentenceTransformerEmbedder()
    return OnnxEmbedder(cache, variant="int8" if kind == "onnx-int8" else "fp32", threads=threads)


def latency_ms(call: Callable[[], object], runs: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e3)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p90": times[int(0.9 * (len(times) - 1))],
        "min": times[0],
    }


def single(embedder: Embedder, prompt: str) -> Callable[[], object]:
    """One routing-time call: embed one prompt."""
    return lambda: embedder.embed([prompt])


def throughput(embedder: Embedder, texts: list[str]) -> float:
    embedder.embed(texts[:16], batch_size=64)  # warm-up
    started = time.perf_counter()
    embedder.embed(texts, batch_size=64)
    return len(texts) / (time.perf_counter() - started)


def run(args: argparse.Namespace) -> dict[str, Any]:
    cache = args.cache_dir or cache_dir()
    export_onnx(cache, progress=print)
    probe = OnnxEmbedder(cache, threads=1)
    texts = load_questions(args.prompts)
    prompts = {n: prompt_of(n, probe, texts) for n in (64, 512)}
    lengths = {n: len(probe.tokenizer.content_ids([p])[0]) + 2 for n, p in prompts.items()}
    results: dict[str, Any] = {"latency_ms": {}, "throughput_per_s": {}}
    load_before = os.getloadavg()
    for kind in KINDS:
        embedder = make(kind, cache, threads=1)
        results["latency_ms"][kind] = {
            f"{n}_tokens": latency_ms(single(embedder, p), args.runs, args.warmup)
            for n, p in prompts.items()
        }
        results["throughput_per_s"][kind] = {"threads_1": throughput(embedder, texts)}
        embedder = make(kind, cache, threads=2)
        results["throughput_per_s"][kind]["threads_2"] = throughput(embedder, texts)
        print(f"{kind}: done", flush=True)
    tokenize = latency_ms(lambda: probe.tokenizer.encode([prompts[512]]), args.runs, args.warmup)
    results["tokenize_512_ms"] = tokenize
    results["meta"] = {
        "date": now_iso(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "python": platform.python_version(),
        "versions": versions(("onnxruntime", "torch", "sentence-transformers")),
        "runs": args.runs,
        "warmup": args.warmup,
        "throughput_prompts": len(texts),
        "prompt_tokens": lengths,
        "names": {k: make_name(k) for k in KINDS},
    }
    return results


def make_name(kind: str) -> str:
    from switchyard.routers.embedding.onnx import embedder_name

    return {"onnx-int8": embedder_name("int8"), "onnx-fp32": embedder_name("fp32")}.get(
        kind, "all-MiniLM-L6-v2/st-fp32"
    )


def table(results: dict[str, Any]) -> str:
    rows = [
        "| embedder | 64 tok p50 / p90 ms | 512 tok p50 / p90 ms | batch 64, 1 thread | "
        "batch 64, 2 threads |",
        "|---|---|---|---|---|",
    ]
    for kind in KINDS:
        lat = results["latency_ms"][kind]
        thr = results["throughput_per_s"][kind]
        rows.append(
            f"| {kind} | {lat['64_tokens']['p50']:.2f} / {lat['64_tokens']['p90']:.2f} "
            f"| {lat['512_tokens']['p50']:.2f} / {lat['512_tokens']['p90']:.2f} "
            f"| {thr['threads_1']:.0f} prompts/s | {thr['threads_2']:.0f} prompts/s |"
        )
    meta = results["meta"]
    rows.append("")
    rows.append(
        f"{meta['cpu']}, {meta['cpus']} CPUs; load average {meta['loadavg_before'][0]:.2f} "
        f"before, {meta['loadavg_after'][0]:.2f} after; tokenising the 512-token prompt: "
        f"{results['tokenize_512_ms']['p50']:.2f} ms p50. Latency: one thread, "
        f"{meta['runs']} runs after {meta['warmup']} warm-up; throughput over "
        f"{meta['throughput_prompts']} MMLU/GSM8K questions."
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--prompts", type=int, default=512, help="prompts for throughput")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    results = run(args)
    write_results(table(results), results, args.out)


if __name__ == "__main__":
    main()
