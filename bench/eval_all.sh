#!/usr/bin/env bash
# Every published protocol on the project's routers, with the comparison routers beside them.
# Reports (JSON, Markdown, Pareto PNG) land in bench/results/eval/<protocol>/.
# Then the bandit replays. About 25 minutes on 2 cores the first time (embedding ~40k prompts); cached after.
set -euo pipefail
cd "$(dirname "$0")/.."
SY=${SWITCHYARD:-.venv/bin/switchyard}
OUT=bench/results/eval
ROUTER=${ROUTER:-default}
mkdir -p build/routers "$OUT"

rdc=routing/routerdc
"$SY" train --router "$ROUTER" --out build/routers/routerdc \
  --data $rdc/gsm8k-train.json --data $rdc/humaneval_train.json \
  --data $rdc/arc_challenge_train.json --data $rdc/mmlu_train.json --data $rdc/cmmlu_train.json
"$SY" eval --router build/routers/routerdc --protocol routerdc --data $rdc \
  --out $OUT/routerdc --compare routerdc --compare knn --compare mlp --compare mf --compare knn-residual

"$SY" train --router "$ROUTER" --data routing/routellm --out build/routers/routellm
"$SY" eval --router build/routers/routellm --protocol routellm --data routing/routellm \
  --out $OUT/routellm --compare knn --compare mlp --compare mf --compare knn-residual

"$SY" eval --router switchyard/data/default-router --protocol routerbench --data routing/routerbench \
  --out $OUT/routerbench --compare knn --compare mlp --compare mf --compare routerdc --compare knn-residual

# knn-prior's hyperparameters re-checked on validation folds of the train splits (issue 15).
"${PYTHON:-.venv/bin/python}" bench/knn_prior_tuning.py --no-progress

# The prompt encoders' quality-cost frontier (issue 15): static tables, MiniLM, both fine-tunes.
"${PYTHON:-.venv/bin/python}" bench/encoder_frontier.py --minilm --finetune --minilm-finetune

# Label-free routers (issue 18): Smoothie's estimate instead of labels -> bench/results/labelfree.
"${PYTHON:-.venv/bin/python}" bench/labelfree_eval.py --seed 0

# Online learning (issue 4): replay the RouterBench test split as a stream, 5 seeds.
"$SY" replay --data routing/routerbench --router switchyard/data/default-router --seeds 5 \
  --out bench/results/replay/nodrift
"$SY" replay --data routing/routerbench --router switchyard/data/default-router --seeds 5 \
  --drift favourite:-0.3@0.5 --out bench/results/replay/drift
