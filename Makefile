# Switchyard developer commands. Each target creates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP     := $(VENV)/.dev-installed
DEMO_STAMP    := $(VENV)/.demo-installed
PORT ?= 8080

.PHONY: demo test lint pytest bench bench-more bench-outside eval default-router clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0  # the local CPU wheel, before anything can pull CUDA
	$(BIN)/pip install -q -e '.[dev,train]'
	touch $@ $(RUNTIME_STAMP)

# The demo's routed model "auto" needs the prompt embedder, exported once from torch.
$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q torch==2.13.0  # the local CPU wheel, before anything can pull CUDA
	$(BIN)/pip install -q -e '.[train]'
	$(BIN)/switchyard embedder export
	touch $@ $(RUNTIME_STAMP)

demo: $(DEMO_STAMP)  ## gateway + three simulated vLLM backends + router "auto" on http://127.0.0.1:$(PORT)
	$(BIN)/switchyard demo --port $(PORT)

test: lint pytest  ## everything CI runs

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

pytest: $(DEV_STAMP)
	$(BIN)/pytest

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(DEV_STAMP)
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	command -v redis-server >/dev/null || (apt-get update -qq && apt-get install -y -qq redis-server)
	$(BIN)/pip install -q -e '.[dev,train,bench]'
	touch $@

bench: $(BENCH_STAMP)  ## overhead and throughput vs direct and vs LiteLLM, then a 5-min chaos run (~23 min, needs quiet cores)
	$(BIN)/python bench/sim_bench.py
	bench/shared_harness.sh
	$(BIN)/python bench/chaos.py --duration 300 --out bench/results/chaos.json

eval: $(BENCH_STAMP)  ## RouterDC, RouteLLM and RouterBench protocols -> bench/results/eval (~25 min)
	bench/eval_all.sh

default-router: $(DEV_STAMP)  ## rebuild switchyard/data/default-router from the RouterBench train split
	$(BIN)/switchyard train --router default --data routing/routerbench \
	  --prices switchyard/data/routerbench-prices.yaml --budget-per-1k 1.0 --out switchyard/data/default-router

bench-more: $(BENCH_STAMP)  ## clients, soak, GC, limits, routing, replicas, planner (~50 min)
	$(BIN)/python bench/client_variants.py --compare
	$(BIN)/python bench/soak.py
	$(BIN)/python bench/gc_probe.py
	$(BIN)/python bench/limits_bench.py --reps 8
	$(BIN)/python bench/routed_bench.py --redis
	$(BIN)/python bench/routing_speed.py
	$(BIN)/python bench/routing_instructions.py
	$(BIN)/python bench/knn_product_bench.py
	$(BIN)/python bench/replica_bench_load.py
	$(BIN)/python bench/scrape_bench.py
	$(BIN)/python bench/plan_bench.py all --repeats 3

# An outside load generator (GuideLLM) in its own venv, so the project's venv is untouched;
# the CPU torch wheel first, or pip pulls torch with CUDA (a 6 GB venv).
LOADGEN_VENV ?= /tmp/loadgen-venv
GUIDELLM_VERSION := 0.8.1
LOADGEN_STAMP := $(LOADGEN_VENV)/.guidellm-$(GUIDELLM_VERSION)

$(LOADGEN_STAMP):
	$(PYTHON) -m venv $(LOADGEN_VENV)
	$(LOADGEN_VENV)/bin/pip install -q torch==2.13.0
	$(LOADGEN_VENV)/bin/pip install -q guidellm==$(GUIDELLM_VERSION)
	touch $@

bench-outside: $(DEV_STAMP) $(LOADGEN_STAMP)  ## GuideLLM vs the project's bench, 50/80/95 % load, offline (~4 min)
	LOADGEN_VENV=$(LOADGEN_VENV) $(BIN)/python bench/outside_loadgen.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
