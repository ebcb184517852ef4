"""Choosing ``cache.semantic_threshold``: how often a paraphrase matches, and how often a
*different* question would match, at each cosine-similarity threshold, with the gateway's
own prompt embedder (``--embedder``: the static table the default router uses, or MiniLM).

No paraphrase corpus is in ../shared/data, so positives are built: hand-written paraphrase
pairs (``PAIRS``) and surface rewrites of real questions (a polite prefix, lower case, the
question mark dropped, a "Please answer:" lead-in). Negatives are real: for each question of
the RouterDC *train* splits (gsm8k-train, mmlu_train, arc_challenge_train), its nearest
other question in the same split, i.e. the closest prompt a semantic cache would wrongly
answer it with. A threshold must keep that false-hit rate near zero.

    .venv/bin/python bench/semantic_threshold.py [--per-split 600] [--embedder onnx-int8]
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

DATA = Path(
    os.environ.get("SWITCHYARD_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data")
)
SPLITS = ("gsm8k-train", "mmlu_train", "arc_challenge_train")
THRESHOLDS = (0.85, 0.88, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99)
PAIRS = [
    ("What is the capital of France?", "Which city is the capital of France?"),
    ("How do I reverse a list in Python?", "What's the way to reverse a Python list?"),
    ("Explain how photosynthesis works.", "Can you explain how photosynthesis works?"),
    ("What causes the seasons on Earth?", "Why does Earth have seasons?"),
    ("Translate 'good morning' into Spanish.", "How do you say 'good morning' in Spanish?"),
    ("Prove that there are infinitely many prime numbers.",
     "Show that the number of primes is infinite."),
    ("What is the boiling point of water at sea level?",
     "At sea level, what temperature does water boil at?"),
    ("Summarize the plot of Hamlet.", "Give me a summary of the plot of Hamlet."),
    ("How many legs does a spider have?", "How many legs do spiders have?"),
    ("What is a switchyard?", "What is a switchyard exactly?"),
    ("Write a haiku about autumn.", "Compose a haiku about autumn."),
    ("What is the difference between TCP and UDP?", "How does TCP differ from UDP?"),
]  # fmt: skip
REWRITES = (
    lambda q: "Could you help me with this? " + q,
    lambda q: q.lower(),
    lambda q: q.rstrip("?. "),
    lambda q: "Please answer: " + q,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-split", type=int, default=600)
    parser.add_argument("--embedder", default="static", help="static, onnx-int8, onnx-fp32")
    args = parser.parse_args()
    from switchyard.routers.embedding import load_embedder

    embedder = load_embedder(args.embedder, export_if_missing=False)
    a, b = embedder.embed([p for p, _ in PAIRS]), embedder.embed([q for _, q in PAIRS])
    pairs = np.sum(a * b, axis=1)
    rewrites, nearest = [], []
    for split in SPLITS:
        rows = json.loads((DATA / "routing/routerdc" / f"{split}.json").read_text())
        questions = list(dict.fromkeys(r["question"] for r in rows))[: args.per_split]
        X = embedder.embed(questions)
        sims = X @ X.T
        np.fill_diagonal(sims, -1.0)
        nearest.append(sims.max(axis=1))
        for rewrite in REWRITES:
            Y = embedder.embed([rewrite(q) for q in questions[:200]])
            rewrites.append(np.sum(X[:200] * Y, axis=1))
    near, rew = np.concatenate(nearest), np.concatenate(rewrites)
    print(f"hand-written paraphrase pairs: n={len(pairs)}, similarity min {pairs.min():.3f} "
          f"median {np.median(pairs):.3f}")  # fmt: skip
    print(f"surface rewrites: n={len(rew)}, median {np.median(rew):.3f}")
    print(f"nearest different question: n={len(near)}, median {np.median(near):.3f}, "
          f"p99 {np.quantile(near, 0.99):.3f}, max {near.max():.3f}")  # fmt: skip
    print(f"{'threshold':>9} {'pairs hit':>10} {'rewrites hit':>13} {'false hits':>11}")
    for t in THRESHOLDS:
        print(f"{t:9.2f} {np.mean(pairs >= t):10.1%} {np.mean(rew >= t):13.1%} "
              f"{np.mean(near >= t):11.2%}")  # fmt: skip


if __name__ == "__main__":
    main()
