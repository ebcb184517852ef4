"""The quality-cost frontier of the prompt encoders (issue 15): each encoder under the default
router (``knn-prior``) on the three published protocols, beside what one prompt costs to embed.

Encoders:

  static-256     the default: MiniLM distilled to a 256-component token table (``static.py``)
  static-128     the same recipe with 128 components (distilled here into a temporary cache)
  static-256+dc  static-256 whose table is fine-tuned per router with RouterDC's two
                 contrastive losses (sample-model: top-3 vs bottom-3 models; sample-sample:
                 same task), RouterDC protocol only; epochs and temperature chosen on a
                 validation fifth of the RouterDC train split (``--finetune``, needs torch)
  minilm-int8    all-MiniLM-L6-v2 on ONNX Runtime, int8 (``--minilm``: embeds ~40k prompts,
                 ~25 min on 2 cores the first time, cached after)
  minilm+dc      MiniLM itself fine-tuned with the same two losses: its upper 2 of 6 layers
                 on cached outputs of the lower 4, first 128 tokens, RouterDC protocol only,
                 chosen on the same validation fifth (``--minilm-finetune``, needs torch and
                 the train extra; ~15 min, ``minilm_finetune.py``); it costs what minilm-int8
                 costs to run

Protocols as ``switchyard eval`` runs them: RouterDC (ID / OOD averages), RouteLLM (APGR on
MMLU and GSM8K, 5 subject-disjoint folds), RouterBench (AIQ). Cost: median µs to embed one
~64-token prompt, one thread, after warm-up (``--cost-calls`` calls).
Writes ``bench/results/encoder_frontier.json`` and ``.png``; prints a Markdown table.

    .venv/bin/python bench/encoder_frontier.py [--minilm] [--finetune] [--minilm-finetune]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

from benchkit import RESULTS, source_digest
from routerkit import DATA, LoadProbe, load_questions, machine_info

REPO = Path(__file__).resolve().parents[1]
PRICES = REPO / "switchyard" / "data" / "routerbench-prices.yaml"
TARGETS = {"ID avg": 60.0, "OOD avg": 47.0, "mmlu APGR": 0.65, "gsm8k APGR": 0.65}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Quality on RouterDC, RouteLLM and RouterBench and cost per prompt of "
        "each prompt encoder under the default router.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--minilm", action="store_true", help="add int8 MiniLM (slow first time)")
    p.add_argument("--finetune", action="store_true", help="add static-256+dc (torch)")
    p.add_argument("--minilm-finetune", action="store_true", help="add minilm+dc (torch, ~15 min)")
    p.add_argument("--cost-calls", type=int, default=2000, help="embed calls timed per encoder")
    p.add_argument("--cache-dir", type=Path, default=None, help="embedder cache (default ~)")
    p.add_argument("--out", type=Path, default=RESULTS / "encoder_frontier.json")
    return p.parse_args(argv)


def protocols(embedder: Any, cache: Path | None) -> dict[str, float]:
    """The default router on every protocol with ``embedder``: the headline metrics."""
    from switchyard.routers.datasets.loaders import load_datasets
    from switchyard.routers.eval_runner import protocol_train_rows, run_protocol
    from switchyard.routers.models import make_router
    from switchyard.routers.pipeline import RoutingPipeline

    root = DATA / "routing"
    out: dict[str, float] = {}
    for name, paths, prices in (
        ("routerdc", [root / "routerdc"], None),
        ("routellm", [root / "routellm"], None),
        ("routerbench", [root / "routerbench"], PRICES),
    ):
        data = load_datasets(paths, prices=prices)
        pipe = RoutingPipeline(make_router("default"), embedder, cache=cache)
        if name != "routellm":
            pipe.fit(protocol_train_rows(name, data))
        report = run_protocol(name, pipe, data, progress=False)
        metrics = report.rows[0].metrics
        keys = {"routerdc": ("ID avg", "OOD avg"), "routellm": ("mmlu APGR", "gsm8k APGR"),
                "routerbench": ("AIQ",)}[name]  # fmt: skip
        out |= {k: round(float(metrics[k]), 4) for k in keys}
        print(f"  {embedder.name} {name}: {[out[k] for k in keys]}", file=sys.stderr, flush=True)
    return out


def cost_us(embedder: Any, calls: int) -> float:
    """Median µs of ``embedder.embed([prompt])`` over ``calls`` distinct ~64-token prompts."""
    prompts = [q[:320] for q in load_questions(calls + 50)]
    for text in prompts[:50]:
        embedder.embed([text])
    took = []
    for text in prompts[50:]:
        started = time.perf_counter()
        embedder.embed([text])
        took.append((time.perf_counter() - started) * 1e6)
    return round(statistics.median(took), 1)


def static_128(cache: Path, tmp: Path) -> Any:
    from switchyard.routers.embedding import StaticEmbedder, distill_static, model_dir

    model_dir(tmp).symlink_to(model_dir(cache), target_is_directory=True)
    distill_static(tmp, dim=128)
    return StaticEmbedder(tmp)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from switchyard.routers.embedding import cache_dir, load_embedder

    probe = LoadProbe()
    cache = args.cache_dir or cache_dir()
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="frontier-") as tmp:
        encoders = {"static-256": load_embedder("static", cache=cache),
                    "static-128": static_128(cache, Path(tmp))}  # fmt: skip
        if args.minilm:
            encoders["minilm-int8"] = load_embedder("onnx-int8", cache=cache, threads=1)
        for label, embedder in encoders.items():
            rows[label] = {"us_per_prompt": cost_us(embedder, args.cost_calls)}
            rows[label] |= protocols(embedder, cache)
    if args.finetune:
        from encoder_finetune import finetuned_routerdc

        rows["static-256+dc"] = finetuned_routerdc(load_embedder("static", cache=cache), cache)
        rows["static-256+dc"]["us_per_prompt"] = rows["static-256"]["us_per_prompt"]  # same lookup
    if args.minilm_finetune:
        rows["minilm+dc"] = minilm_dc(rows.get("minilm-int8", {}))
    result = {
        "bench": "encoder_frontier",
        "command": " ".join(["python", *sys.argv]),
        "machine": machine_info(probe, ("onnxruntime", "tokenizers", "numpy")),
        "source": source_digest(),
        "targets": TARGETS,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(rows))
    print(f"\nwrote {args.out} and {plot(rows, args.out.with_suffix('.png'))}")
    return 0


def minilm_dc(minilm: dict[str, float]) -> dict[str, float]:
    """The fine-tuned MiniLM's RouterDC row (``minilm_finetune.py`` with its defaults)."""
    from minilm_finetune import finetuned_minilm
    from minilm_finetune import parse_args as finetune_args

    found = finetuned_minilm(finetune_args([]))
    row = {k: found["fine-tuned"][k] for k in ("ID avg", "OOD avg")}
    row |= {"chosen_epochs": found["chosen_epochs"], "chosen_t": found["chosen_t"]}
    row |= {f"valid {k}": v for k, v in found["valid"].items()}
    if "us_per_prompt" in minilm:  # the same transformer: the same cost once exported
        row["us_per_prompt"] = minilm["us_per_prompt"]
    return row


COLUMNS = ("us_per_prompt", "ID avg", "OOD avg", "mmlu APGR", "gsm8k APGR", "AIQ")


def table(rows: dict[str, dict[str, float]]) -> str:
    head = "| encoder | µs / prompt | RouterDC ID | OOD | RouteLLM MMLU APGR | GSM8K APGR | AIQ |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    for label, row in rows.items():
        cells = [f"{row[c]:g}" if c in row else "-" for c in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    targets = ", ".join(f"{k} >= {v:g}" for k, v in TARGETS.items())
    return "\n".join([*lines, "", f"Targets: {targets}; AIQ above MLP, kNN, best single."])


def plot(rows: dict[str, dict[str, float]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = ("ID avg", "OOD avg", "mmlu APGR", "gsm8k APGR", "AIQ")
    fig, axes = plt.subplots(1, len(metrics), figsize=(4 * len(metrics), 3.4))
    for ax, metric in zip(axes, metrics, strict=True):
        for label, row in rows.items():
            if metric in row and "us_per_prompt" in row:
                ax.scatter(row["us_per_prompt"], row[metric])
                ax.annotate(label, (row["us_per_prompt"], row[metric]), fontsize=8)
        if metric in TARGETS:
            ax.axhline(TARGETS[metric], color="grey", linestyle="--", linewidth=1)
        ax.set_xscale("log")
        ax.set_xlabel("µs to embed one prompt (log)")
        ax.set_title(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


if __name__ == "__main__":
    sys.exit(main())
