"""Cascade on RouteLLM's GSM8K (issue 18, part 1): the verifier against the one-shot router.

RouteLLM's GSM8K file carries both models' answers (Mixtral-8x7B weak, GPT-4 strong) and their
correctness; its MMLU files carry no answers, so only a pre-generation decision (which is the
one-shot router's) could be scored there, and is not repeated here.

Protocol: the ``switchyard eval --protocol routellm`` folds (5, seeded, decontaminated rows).
Per held-out fold, on the other four: the default router (its score: predicted strong minus
weak quality) and the cascade's verifier (logistic regression on the prompt and the weak
answer's embeddings, C = 1, the value RouterBench's validation chose) are fitted; the
held-out prompts are scored. Curves over the share of prompts that call the strong model:
one-shot (higher router score first) and cascade (lower P(weak answer correct) first; the
weak model is called for every prompt in addition). RouteLLM's APGR and CPT(50 %) (their
10-quantile sweep), as the project's routellm protocol reports them.

    python bench/cascade_routellm.py [--seed 0]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from routerkit import DATA, LoadProbe, machine_info, write_results

from switchyard.routers.cascade.model import verifier_features
from switchyard.routers.cascade.training import fit_verifier
from switchyard.routers.datasets.routellm import read_contaminated, read_routellm_file
from switchyard.routers.embedding import embed_cached, load_embedder
from switchyard.routers.evaluation.metrics import apgr_routellm, cpt_routellm, routellm_sweep
from switchyard.routers.evaluation.routellm import routellm_folds
from switchyard.routers.models import make_router

RESULTS = Path(__file__).resolve().parent / "results" / "cascade"
WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"


def _weak_answers(file: Path) -> dict[str, str]:
    csv.field_size_limit(sys.maxsize)
    with file.open(encoding="utf-8", newline="") as fh:
        return {row["prompt"]: row[WEAK + "_response"] for row in csv.DictReader(fh)}


def _metrics(scores: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> dict[str, float]:
    points = routellm_sweep(scores, weak, strong)
    return {"APGR": apgr_routellm(points), "CPT(50%)": cpt_routellm(points, 50),
            "CPT(80%)": cpt_routellm(points, 80)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    probe, started = LoadProbe(), time.perf_counter()
    folder = DATA / "routing" / "routellm" / "gsm8k"
    data = read_routellm_file(folder / "gsm8k_responses.csv", read_contaminated(folder))
    answers = _weak_answers(folder / "gsm8k_responses.csv")
    embedder = load_embedder(cache=args.cache_dir)
    prompts = np.asarray(embed_cached(embedder, data.prompts, cache=args.cache_dir), np.float64)
    texts = [answers.get(p, "") for p in data.prompts]
    replies = np.asarray(embed_cached(embedder, texts, cache=args.cache_dir), np.float64)
    w, s = data.models.index(WEAK), 1 - data.models.index(WEAK)
    weak, strong = data.quality[:, w], data.quality[:, s]
    router_score, doubt = np.empty(len(data)), np.empty(len(data))
    for held in routellm_folds(data, seed=args.seed):
        rest = np.setdiff1d(np.arange(len(data)), held)
        router = make_router("default").fit(prompts[rest], data.quality[rest],
                                            tasks=[data.tasks[i] for i in rest])  # fmt: skip
        q = router.predict_quality(prompts[held])
        router_score[held] = q[:, s] - q[:, w]
        coef, bias = fit_verifier(prompts[rest], replies[rest], weak[rest], 1.0)
        z = verifier_features(prompts[held], replies[held]) @ coef + bias
        doubt[held] = -z  # a lower P(correct) escalates first
    rows = {"one-shot default router": _metrics(router_score, weak, strong),
            "cascade verifier (weak always called)": _metrics(doubt, weak, strong)}  # fmt: skip
    results: dict[str, Any] = {
        "command": f"python bench/cascade_routellm.py --seed {args.seed}",
        "prompts": len(data), "weak": float(weak.mean()), "strong": float(strong.mean()),
        "rows": rows, "wall_s": round(time.perf_counter() - started, 1),
        "machine": machine_info(probe, ("numpy", "onnxruntime")),
    }  # fmt: skip
    lines = [f"`{results['command']}` — GSM8K, {len(data)} prompts, weak {weak.mean():.1%}, "
             f"strong {strong.mean():.1%}", "", "| curve | APGR | CPT(50%) | CPT(80%) |",
             "|---|---|---|---|"]  # fmt: skip
    for name, m in rows.items():
        lines.append(f"| {name} | {m['APGR']:.3f} | {m['CPT(50%)']:.1%} | {m['CPT(80%)']:.1%} |")
    write_results("\n".join(lines), results, args.out / "cascade_routellm.json")


if __name__ == "__main__":
    main()
