#!/usr/bin/env bash
# Runs the shared gateway harness (../shared/bench/run_bench.py) against `switchyard serve`
# with one worker, then renders its table beside the harness's LiteLLM and baseline results.
#
# The harness starts its fake backend on BACKEND_PORT; this script writes a temporary config
# whose one model `fake-model` points there, and the harness starts the gateway (pinned to
# core 0) with it. Writes bench/results/switchyard.json and bench/results/shared_harness.md
# (the harness's tables, then the foreign load on the gateway's core per run).
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: bench/shared_harness.sh [--report-only] [RUN_BENCH_ARGS...]

Benchmarks `switchyard serve` (one worker) with the shared harness at ../shared/bench and
renders the comparison with LiteLLM and the two lean baseline proxies.

  --report-only      skip the run; only render bench/results/shared_harness.md
  RUN_BENCH_ARGS     passed on to run_bench.py (e.g. --repeats 2 --duration 5)

Environment:
  AUTH           1: every request carries an API key that the gateway checks against a
                 static key with a request limit (in-process store); name "switchyard-auth"
  SHARED_BENCH   harness directory        (default: <repo>/../shared/bench)
  PYTHON         interpreter              (default: <repo>/.venv/bin/python)
  GATEWAY_PORT   gateway port             (default: 4610)
  BACKEND_PORT   fake backend port        (default: 18610)
  OUT            result JSON              (default: bench/results/switchyard.json)
Takes about 8 minutes with the harness defaults (3 repetitions x 10 s per run).
USAGE
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED_BENCH:-$ROOT/../shared/bench}
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
GATEWAY_PORT=${GATEWAY_PORT:-4610}
BACKEND_PORT=${BACKEND_PORT:-18610}
AUTH=${AUTH:-0}
NAME=switchyard
[ "$AUTH" = 1 ] && NAME=switchyard-auth
OUT=${OUT:-$ROOT/bench/results/$NAME.json}
REPORT=$ROOT/bench/results/shared_harness.md

REPORT_ONLY=0
ARGS=()
for arg in "$@"; do
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --report-only) REPORT_ONLY=1 ;;
    *) ARGS+=("$arg") ;;
  esac
done

[ -f "$SHARED/run_bench.py" ] || { echo "shared harness not found at $SHARED" >&2; exit 2; }
mkdir -p "$(dirname "$OUT")"

if [ "$REPORT_ONLY" = 0 ]; then
  CONFIG=$(mktemp --suffix=.yaml /tmp/switchyard-bench-XXXXXX)
  trap 'rm -f "$CONFIG"' EXIT
  cat >"$CONFIG" <<YAML
server: {host: 127.0.0.1, port: $GATEWAY_PORT, workers: 1, log_level: warning}
models:
  - name: fake-model
    price_input_per_mtok: 1
    price_output_per_mtok: 2
    endpoints: [{url: "http://127.0.0.1:$BACKEND_PORT/v1"}]
YAML
  KEY=sk-sy-bench-0123456789abcdef0123456789abcdef
  AUTH_ARGS=()
  if [ "$AUTH" = 1 ]; then
    cat >>"$CONFIG" <<YAML
auth:
  enabled: true
  keys: [{name: bench, key_env: BENCH_KEY, limits: {rpm: 100000000}}]
YAML
    AUTH_ARGS=(--gateway-header "Authorization: Bearer $KEY"
               --gateway-env "BENCH_KEY=$KEY" --gateway-env "SWITCHYARD_KEY_SECRET=bench-secret")
  fi
  VERSION_CMD="cd $ROOT/bench && $PYTHON -c 'import importlib.metadata as m, benchkit; print(\"switchyard\", m.version(\"switchyard\"), \"src\", benchkit.source_digest()[\"sha256_12\"], \"aiohttp\", m.version(\"aiohttp\"), \"uvicorn\", m.version(\"uvicorn\"))'"
  "$PYTHON" "$SHARED/run_bench.py" \
    --gateway-name "$NAME" --gateway-port "$GATEWAY_PORT" --backend-port "$BACKEND_PORT" \
    --gateway-cmd "$ROOT/.venv/bin/switchyard serve --config $CONFIG --port {port} --workers 1" \
    --gateway-version-cmd "$VERSION_CMD" \
    --python "$PYTHON" --out "$OUT" "${AUTH_ARGS[@]}" "${ARGS[@]}"
fi

"$PYTHON" "$SHARED/report.py" "$SHARED/results/litellm.json" "$SHARED/results/baseline-httpx.json" \
  "$SHARED/results/baseline-aiohttp.json" "$OUT" >"$REPORT"
"$PYTHON" "$ROOT/bench/harness_noise.py" "$OUT" >>"$REPORT"
echo "wrote $REPORT"
