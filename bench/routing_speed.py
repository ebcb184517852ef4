"""Routing at proxy speed (issue 15): what ``"model": "auto"`` costs next to naming a model,
with distinct ~64-token prompts, for each prompt encoder.

Gateways (one worker each, ``routing.embedder_threads: 1``) all pinned to core 0, only one
loaded at a time; three zero-latency simulators (``--preset zero``, the demo's RouterBench
models) and the load generator (``wrk -t1`` with ``bench/distinct.lua``) on core 1:

  A  ``"model": "mistralai/mistral-7b-chat"`` (pass-through: no routing), on gateway S;
  S  ``"model": "auto"`` on gateway S, whose router is the shipped default
     (``switchyard/data/default-router``: the static embedder distilled from MiniLM);
  M  ``"model": "auto"`` on gateway M, the same router kind and data trained on int8 MiniLM
     (``switchyard train --embedder onnx-int8``, built here into a temporary directory).

Every request carries a different prompt: ``--prompts`` windows of ``--prompt-tokens``
tokens cut from the RouterDC test questions (so no cache anywhere can help), cycled by wrk.
For each repetition and each variant: a c=1 run (p50 latency) and a c=32 run (requests/s),
``--seconds`` each, variants in rotating order. Reported: medians [min-max] over repetitions,
and the targets' ratios: routed p50 at c=1 <= 3x pass-through's, routed req/s at c=32 >= 40 %
of pass-through's. Prints a Markdown table; writes ``bench/results/routing_speed.json``.

    .venv/bin/python bench/routing_speed.py [--reps 3] [--seconds 5] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchkit import (
    RESULTS,
    SWITCHYARD,
    cell,
    free_port,
    log,
    mmm,
    run_wrk_script,
    simulator_argv,
    source_digest,
    start_pinned,
    stop_group,
)
from routed_bench import Client
from routerkit import DATA, LoadProbe, loadavg_text, machine_info, write_results

from switchyard.cli.demo import DEMO_MODELS, demo_settings

HOST = "127.0.0.1"
DIRECT = DEMO_MODELS[0].name
LUA = Path(__file__).resolve().parent / "distinct.lua"
VARIANTS = ("A", "S", "M")
TARGET_P50_RATIO = 3.0
TARGET_RPS_SHARE = 0.40


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Routed vs pass-through requests through one pinned gateway, distinct "
        "prompts, per prompt encoder: p50 at c=1 and req/s at c=32.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--reps", type=int, default=3, help="repetitions of every variant")
    p.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    p.add_argument("--prompts", type=int, default=20000, help="distinct prompts to cycle")
    p.add_argument("--prompt-tokens", type=int, default=62, help="tokens per prompt window")
    p.add_argument("--no-minilm", action="store_true", help="skip variant M (no int8 router)")
    p.add_argument("--router", type=Path, default=None, help="variant S's router artifact "
                   "(default: the shipped switchyard/data/default-router)")  # fmt: skip
    p.add_argument("--cache-dir", type=Path, default=None, help="embedder cache (default ~)")
    p.add_argument("--quick", action="store_true", help="1 rep of 2 s each")
    p.add_argument("--out", type=Path, default=RESULTS / "routing_speed.json")
    args = p.parse_args(argv)
    if args.quick:
        args.reps, args.seconds = 1, 2
    if min(args.reps, args.seconds, args.prompts, args.prompt_tokens) < 1:
        p.error("counts must be at least 1")
    return args


def distinct_prompts(count: int, tokens: int, cache: Path | None) -> list[str]:
    """``count`` different windows of ``tokens`` tokens over the RouterDC test questions."""
    from switchyard.routers.embedding import load_embedder

    tokenizer = load_embedder("static", cache=cache).tokenizer  # type: ignore[attr-defined]
    folder = DATA / "routing" / "routerdc"
    texts = [
        str(row["question"])
        for name in ("mmlu_test.json", "gsm8k-test.json", "cmmlu_test.json", "mbpp.json")
        for row in json.loads((folder / name).read_text())
    ]
    ids = [t for seq in tokenizer.content_ids(texts) for t in seq]
    stride = max(1, (len(ids) - tokens) // count)
    raw = tokenizer._tokenizer  # the tokenizers.Tokenizer: decode ids back to text
    windows = [raw.decode(ids[i * stride : i * stride + tokens]) for i in range(count)]
    if len(set(windows)) < count * 0.99:
        raise SystemExit(f"only {len(set(windows))} distinct prompts of {count}")
    return windows


def write_bodies(path: Path, model: str, prompts: Sequence[str]) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for text in prompts:
            body = {
                "model": model,
                "max_tokens": 1,
                "messages": [{"role": "user", "content": text}],
            }
            f.write(json.dumps(body) + "\n")
    return path


def train_minilm_router(out: Path, cache: Path | None) -> Path:
    """The default router's recipe (Makefile ``default-router``) on int8 MiniLM."""
    cmd = [
        str(SWITCHYARD), "train", "--router", "default", "--data", "routing/routerbench",
        "--prices", "switchyard/data/routerbench-prices.yaml", "--budget-per-1k", "1.0",
        "--embedder", "onnx-int8", "--out", str(out),
    ]  # fmt: skip
    if cache is not None:
        cmd += ["--cache-dir", str(cache)]
    done = subprocess.run(
        cmd, cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"training the MiniLM router failed: {done.stderr[-2000:]}")
    return out


def start_gateway(
    workdir: Path, name: str, sims: dict[str, int], artifact: Path | None, cache: Path | None
) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    config = demo_settings(HOST, port, sims, cache).model_dump(mode="json")
    config["server"].update(workers=1, log_level="warning")
    config["routing"].update(embedder_threads=1)
    if artifact is not None:
        config["routers"][0]["artifact"] = str(artifact)
    path = workdir / f"gateway-{name}.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env |= {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    argv = [str(SWITCHYARD), "serve", "-c", str(path)]
    return start_pinned(argv, 0, workdir / f"gateway-{name}.log", env), port


def run_all(args: argparse.Namespace, workdir: Path, procs: list[Any]) -> dict[str, Any]:
    prompts = distinct_prompts(args.prompts, args.prompt_tokens, args.cache_dir)
    sims = {m.name: free_port() for m in DEMO_MODELS}
    for i, (model, port) in enumerate(sims.items()):
        argv = [*simulator_argv(model, port), "--host", HOST]
        procs.append(start_pinned(argv, 1, workdir / f"sim{i}.log"))
    gateways = {"S": start_gateway(workdir, "S", sims, args.router, args.cache_dir)}
    if not args.no_minilm:
        artifact = train_minilm_router(workdir / "minilm-router", args.cache_dir)
        gateways["M"] = start_gateway(workdir, "M", sims, artifact, args.cache_dir)
    procs.extend(proc for proc, _ in gateways.values())
    ports = {"A": gateways["S"][1], **{k: port for k, (_, port) in gateways.items()}}
    for port in set(ports.values()):
        Client(port, "auto", "hello").wait_ready(time.monotonic() + 180)
    bodies = {
        v: write_bodies(workdir / f"{v}.jsonl", DIRECT if v == "A" else "auto", prompts)
        for v in ports
    }
    runs: list[dict[str, Any]] = []
    for rep in range(args.reps):
        order = [*ports][rep % len(ports) :] + [*ports][: rep % len(ports)]
        for variant in order:
            url = f"http://{HOST}:{ports[variant]}/v1/chat/completions"
            row: dict[str, Any] = {"rep": rep, "variant": variant}
            for c in (1, 32):
                res = run_wrk_script(url, LUA, bodies[variant], c, args.seconds, 1)
                if res.errors:
                    raise SystemExit(f"{variant} c={c}: {res.errors} errors: {res.raw}")
                row[f"c{c}"] = {"rps": res.rps, "p50_ms": res.p50_ms, "p99_ms": res.p99_ms}
            log(json.dumps(row))
            runs.append(row)
    return {"runs": runs, "prompt_example": prompts[0], "variants": list(ports)}


def summarize(runs: list[dict[str, Any]], variants: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v in variants:
        rows = [r for r in runs if r["variant"] == v]
        out[v] = {
            "c1_p50_ms": mmm([r["c1"]["p50_ms"] for r in rows]),
            "c32_rps": mmm([r["c32"]["rps"] for r in rows]),
            "c32_p50_ms": mmm([r["c32"]["p50_ms"] for r in rows]),
        }
    base = out["A"]
    for v in variants[1:]:
        out[v]["p50_ratio"] = out[v]["c1_p50_ms"]["median"] / base["c1_p50_ms"]["median"]
        out[v]["rps_share"] = out[v]["c32_rps"]["median"] / base["c32_rps"]["median"]
        out[v]["meets_p50"] = out[v]["p50_ratio"] <= TARGET_P50_RATIO
        out[v]["meets_rps"] = out[v]["rps_share"] >= TARGET_RPS_SHARE
    return out


LABELS = {
    "A": f"A: {DIRECT} (pass-through)",
    "S": "S: auto, static embedder (default)",
    "M": "M: auto, int8 MiniLM",
}


def table(s: dict[str, Any], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    rows = [
        f"| variant ({args.reps} reps x {args.seconds} s) | c=1 p50 ms | x pass-through "
        "| c=32 req/s | share of pass-through | c=32 p50 ms |",
        "|---|---|---|---|---|---|",
    ]
    for v, label in LABELS.items():
        if v not in s:
            continue
        ratio = f"{s[v]['p50_ratio']:.2f}x" if "p50_ratio" in s[v] else "1"
        share = f"{100 * s[v]['rps_share']:.0f} %" if "rps_share" in s[v] else "100 %"
        rows.append(
            f"| {label} | {cell(s[v]['c1_p50_ms'], 3)} | {ratio} | {cell(s[v]['c32_rps'], 0)} "
            f"| {share} | {cell(s[v]['c32_p50_ms'], 2)} |"
        )
    verdict = "; ".join(
        f"{v}: p50 {'meets' if s[v]['meets_p50'] else 'MISSES'} <= {TARGET_P50_RATIO:g}x, "
        f"req/s {'meets' if s[v]['meets_rps'] else 'MISSES'} >= {100 * TARGET_RPS_SHARE:.0f} %"
        for v in s
        if v != "A"
    )
    return "\n".join([*rows, "", f"Targets: {verdict}. Load average {loadavg_text(meta)}."])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    probe = LoadProbe()
    procs: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="routing-speed-") as tmp:
        try:
            result = run_all(args, Path(tmp), procs)
        except BaseException:
            for name in sorted(os.listdir(tmp)):
                if name.endswith(".log"):
                    tail = (Path(tmp) / name).read_text(errors="replace")[-1500:]
                    print(f"--- {name}\n{tail}", file=sys.stderr)
            raise
        finally:
            for proc in reversed(procs):
                stop_group(proc)
    meta = machine_info(probe, ("onnxruntime", "tokenizers", "uvicorn"))
    summary = summarize(result["runs"], result["variants"])
    out = {
        "bench": "routing_speed",
        "command": " ".join(["python", *sys.argv]),
        "machine": meta,
        "source": source_digest(),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "summary": summary,
        **result,
    }
    write_results(table(summary, args, meta), out, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
