"""What learned routing adds to a request through the gateway: ``"model": "auto"`` (the
shipped ``switchyard/data/default-router`` deciding per prompt) versus naming a model directly.

One ``switchyard serve`` (one worker, ``routing.embedder_threads: 1``) pinned to core 0, in
front of three zero-latency simulators (``--preset zero``) named after RouterBench models
(``mistralai/mistral-7b-chat``, ``mistralai/mixtral-8x7b-chat``, ``gpt-4-1106-preview``); the
simulators and this load generator run on core 1. The same gateway serves both variants:

  A  ``"model": "mistralai/mistral-7b-chat"``: no routing.
  B  ``"model": "auto"``: the router embeds the prompt, predicts quality and cost, picks a
     model (the decision batcher's ``batch_wait_ms`` timer included, as configured).
  C  (``--redis``) ``"model": "auto"`` on a second, identical gateway (also on core 0) whose
     state is shared through a private ``redis-server`` (core 1): outcome records go to the
     Redis stream and the bandit statistics are refreshed from Redis every second. C - B is
     what Redis adds to the request path (target: at most 1 ms at p50).

Both send the same prompt of exactly ``--prompt-tokens`` tokens ([CLS] and [SEP] included,
counted with the embedder's own tokenizer, cut from real MMLU/GSM8K questions as
``router_latency.py`` does), non-streaming, ``max_tokens`` 1, one at a time (c=1) over a
kept-alive ``http.client`` connection, in blocks alternating A,B / B,A per repetition.
Reported: p50/p90/p99 of each and B - A, median [min to max] over repetitions; the target is
at most 8 ms added at p50 (embedding included). Then one row at c=8 (B only: 8 threads, one
connection each) gives throughput, p50 and the mean batch the router embedded (from the
gateway's ``switchyard_routing_batches`` counter), to show micro-batching.

Loopback only; bounded by request counts and a ``--max-seconds`` deadline. Machine load is
recorded (``routerkit.LoadProbe`` plus per-core busy % per block). Prints a Markdown table and
writes ``bench/results/routed_bench.json``.

    .venv/bin/python bench/routed_bench.py [--requests 300] [--reps 6] [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchkit import (
    RESULTS,
    SWITCHYARD,
    busy_pct,
    cell,
    cpu_ticks,
    free_port,
    mmm,
    simulator_argv,
    source_digest,
    start_pinned,
    stop_group,
)
from limits_bench import pct
from routerkit import LoadProbe, exact_prompt, load_questions, loadavg_text, machine_info

from switchyard.cli.demo import DEMO_MODELS

HOST = "127.0.0.1"
MODELS = tuple(m.name for m in DEMO_MODELS)
DIRECT = MODELS[0]
TARGET_ADDED_P50_MS = 8.0
TARGET_REDIS_P50_MS = 1.0
QS = ("p50", "p90", "p99")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Added latency of learned routing through the gateway: model 'auto' (B) "
        "versus a named model (A), c=1, A/B alternating; plus B at c=8.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--requests", type=int, default=300, help="requests per c=1 block")
    p.add_argument("--reps", type=int, default=6, help="repetitions of the A,B / B,A pair")
    p.add_argument("--warmup", type=int, default=100, help="requests per variant before timing")
    p.add_argument("--c8-requests", type=int, default=1600, help="requests per c=8 run")
    p.add_argument("--c8-reps", type=int, default=3, help="c=8 runs (B only)")
    p.add_argument("--prompt-tokens", type=int, default=64, help="prompt length, in tokens")
    p.add_argument("--batch-wait-ms", type=float, default=0.0, help="routing.batch_wait_ms")
    p.add_argument("--max-batch", type=int, default=32, help="routing.max_batch")
    p.add_argument("--max-seconds", type=float, default=300, help="deadline for all the runs")
    p.add_argument("--cache-dir", type=Path, default=None, help="embedder cache (default ~)")
    p.add_argument("--gateway-cpu", type=int, default=0, help="core of the gateway")
    p.add_argument("--other-cpu", type=int, default=1, help="core of simulators and client")
    p.add_argument("--no-pin", action="store_true", help="do not use taskset")
    p.add_argument("--quick", action="store_true", help="short smoke run")
    p.add_argument("--redis", action="store_true", help="add variant C: state in redis-server")
    p.add_argument("--out", type=Path, default=RESULTS / "routed_bench.json")
    args = p.parse_args(argv)
    if args.quick:
        args.requests, args.reps, args.warmup = 60, 2, 20
        args.c8_requests, args.c8_reps = 200, 1
    if min(args.requests, args.reps, args.c8_requests, args.c8_reps) < 1 or args.warmup < 0:
        p.error("request counts and repetitions must be at least 1, --warmup at least 0")
    return args


# --------------------------------------------------------------------------- setup


def routed_prompt(tokens: int, cache: Path | None) -> str:
    """The shortest prefix of real questions with exactly ``tokens`` tokens (embedder's own
    tokenizer, [CLS] and [SEP] included)."""
    from switchyard.routers.embedding import OnnxEmbedder, cache_dir

    tokenizer = OnnxEmbedder(cache or cache_dir(), threads=1).tokenizer
    return exact_prompt(tokens, tokenizer, " ".join(load_questions(400)))


def write_config(
    path: Path,
    port: int,
    sims: dict[str, int],
    args: argparse.Namespace,
    redis_url: str | None = None,
) -> None:
    """The demo's gateway (three RouterBench-named models, router ``auto``), one worker and
    one embedder thread, with this run's batching options (and Redis for variant C)."""
    from switchyard.cli.demo import demo_settings

    config = demo_settings(HOST, port, sims, args.cache_dir).model_dump(mode="json")
    config["server"].update(workers=1, log_level="warning")
    config["state"].update(redis_url=redis_url)
    config["routing"].update(
        embedder_threads=1, batch_wait_ms=args.batch_wait_ms, max_batch=args.max_batch
    )
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML


# --------------------------------------------------------------------------- client


class Client:
    """One kept-alive HTTP/1.1 connection posting one fixed chat body."""

    def __init__(self, port: int, model: str, prompt: str) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection(HOST, port, timeout=30)
        self.body = json.dumps(
            {"model": model, "max_tokens": 1, "messages": [{"role": "user", "content": prompt}]}
        ).encode()
        self.headers = {"content-type": "application/json"}
        self.chosen: Counter[str] = Counter()

    def post(self) -> tuple[int, float]:
        started = time.perf_counter()
        self.conn.request("POST", "/v1/chat/completions", self.body, self.headers)
        resp = self.conn.getresponse()
        resp.read()
        took = time.perf_counter() - started
        self.chosen[resp.headers.get("x-switchyard-model") or "-"] += 1
        return resp.status, took

    def wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            try:
                if self.post()[0] == 200:
                    return
            except (OSError, http.client.HTTPException):
                self.conn.close()
            time.sleep(0.2)
        raise SystemExit(f"gateway on port {self.port} not ready")

    def block(self, n: int, deadline: float | None = None) -> list[float]:
        """``n`` sequential requests (fewer past ``deadline``): latencies in ms. Starts on a
        new connection (the server closes idle ones after a few seconds), opened untimed."""
        self.conn.close()
        self.post()
        out = []
        for _ in range(n):
            status, took = self.post()
            if status != 200:
                raise SystemExit(f"HTTP {status} from port {self.port}")
            out.append(took * 1000)
            if deadline is not None and time.monotonic() > deadline:
                break
        return out


def routing_batches(port: int) -> float:
    """The gateway's ``switchyard_routing_batches`` counter (summed over its labels)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("switchyard_routing_batches_total")
    )


# --------------------------------------------------------------------------- the runs


def lat_stats(lat: Sequence[float]) -> dict[str, float]:
    return {q: round(pct(lat, int(q[1:]) / 100), 4) for q in QS}


def run_c1(
    args: argparse.Namespace, clients: dict[str, Client], deadline: float
) -> list[dict[str, Any]]:
    """Blocks of each variant in turn, the order reversed every other repetition."""
    for client in clients.values():
        client.block(args.warmup)
        client.chosen.clear()
    reps: list[dict[str, Any]] = []
    for rep in range(args.reps):
        names = list(clients) if rep % 2 == 0 else list(reversed(clients))
        row: dict[str, Any] = {"rep": rep, "order": "".join(names), "busy_pct": {}}
        for name in names:
            before = cpu_ticks()
            lat = clients[name].block(args.requests, deadline)
            row["busy_pct"][name] = busy_pct(before, cpu_ticks())
            row[name] = {"requests": len(lat), **lat_stats(lat)}
        row["added"] = {q: round(row["B"][q] - row["A"][q], 4) for q in QS}
        if "C" in clients:
            row["redis_added"] = {q: round(row["C"][q] - row["B"][q], 4) for q in QS}
        reps.append(row)
        print(f"rep {rep} {json.dumps(row)}", file=sys.stderr, flush=True)
        if time.monotonic() > deadline:
            break
    return reps


def run_c8(port: int, prompt: str, n: int) -> dict[str, Any]:
    """``n`` requests of B from 8 threads, one connection each: rps, p50, mean batch."""
    clients = [Client(port, "auto", prompt) for _ in range(8)]
    for c in clients:
        c.block(5)
    batches0, before = routing_batches(port), cpu_ticks()
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        lats = list(pool.map(lambda c: c.block(n // 8), clients))
    elapsed = time.perf_counter() - started
    busy = busy_pct(before, cpu_ticks())
    batches = routing_batches(port) - batches0
    flat = [x for lat in lats for x in lat]
    return {
        "requests": len(flat),
        "rps": round(len(flat) / elapsed, 2),
        **lat_stats(flat),
        "mean_batch": round(len(flat) / batches, 2) if batches else None,
        "busy_pct": busy,
    }


def summarize(reps: list[dict[str, Any]], c8: list[dict[str, Any]]) -> dict[str, Any]:
    keys = [k for k in ("A", "B", "C", "added", "redis_added") if k in reps[0]]
    out: dict[str, Any] = {key: {q: mmm([r[key][q] for r in reps]) for q in QS} for key in keys}
    out["c8_B"] = {k: mmm([r[k] for r in c8]) for k in ("rps", "p50", "p99", "mean_batch")}
    out["target_added_p50_ms"] = TARGET_ADDED_P50_MS
    out["meets_target"] = out["added"]["p50"]["median"] <= TARGET_ADDED_P50_MS
    if "redis_added" in out:
        out["target_redis_p50_ms"] = TARGET_REDIS_P50_MS
        out["redis_meets_target"] = out["redis_added"]["p50"]["median"] <= TARGET_REDIS_P50_MS
    return out


def table(s: dict[str, Any], args: argparse.Namespace, meta: dict[str, Any]) -> str:
    n = len(s["A"]["p50"]["values"])
    rows = [
        f"| c=1, ms (median [min{chr(8211)}max] over {n} reps x {args.requests} req) "
        "| p50 | p90 | p99 |",
        "|---|---|---|---|",
    ]
    for label, key in (
        (f"A: model {DIRECT} (no routing)", "A"),
        ("B: model auto (routed)", "B"),
        ("C: model auto, state in Redis", "C"),
        ("added by routing (B - A)", "added"),
        ("added by Redis (C - B)", "redis_added"),
    ):
        if key in s:
            rows.append(f"| {label} | " + " | ".join(cell(s[key][q], 3) for q in QS) + " |")
    c8 = s["c8_B"]
    verdict = "meets" if s["meets_target"] else "MISSES"
    return "\n".join(
        [
            *rows,
            "",
            f"| c=8, B only ({len(c8['rps']['values'])} runs x {args.c8_requests} req) "
            "| req/s | p50 ms | p99 ms | mean batch |",
            "|---|---|---|---|---|",
            f"| B: model auto | {cell(c8['rps'], 1)} | {cell(c8['p50'], 3)} | "
            f"{cell(c8['p99'], 3)} | {cell(c8['mean_batch'], 2)} |",
            "",
            f"Target: routed request adds at most {TARGET_ADDED_P50_MS:g} ms at p50 "
            f"({args.prompt_tokens}-token prompt): {verdict} it. batch_wait_ms "
            f"{args.batch_wait_ms:g}. "
            + (
                f"Redis adds at most {TARGET_REDIS_P50_MS:g} ms at p50: "
                f"{'meets' if s['redis_meets_target'] else 'MISSES'} it. "
                if "redis_meets_target" in s
                else ""
            )
            + f"Load average {loadavg_text(meta)}; CPU busy share "
            f"{meta.get('cpu_busy_share')}, others {meta.get('cpu_share_others')}.",
        ]
    )


def start_all(
    args: argparse.Namespace, workdir: Path, procs: list[subprocess.Popen[bytes]], pin: bool
) -> tuple[dict[str, int], float]:
    """Simulators, the gateway (and Redis plus a second gateway for variant C); (gateway port
    per variant, seconds until the first answered)."""
    sims = {m: free_port() for m in MODELS}
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHYARD_")}
    env |= {v: "1" for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    gw_cpu, other = (args.gateway_cpu, args.other_cpu) if pin else (None, None)
    for i, (model, sim_port) in enumerate(sims.items()):
        argv = [*simulator_argv(model, sim_port), "--host", HOST]
        procs.append(launch(argv, other, workdir / f"sim{i}.log", env))
    ports = {"B": free_port()}
    redis_url = None
    if args.redis:
        redis_port = free_port()
        argv = ["redis-server", "--port", str(redis_port), "--bind", HOST, "--save", "",
                "--appendonly", "no", "--dir", str(workdir)]  # fmt: skip
        procs.append(launch(argv, other, workdir / "redis.log", env))
        redis_url, ports["C"] = f"redis://{HOST}:{redis_port}/0", free_port()
    t0 = time.monotonic()
    for name, port in ports.items():
        config = workdir / f"gateway-{name}.yaml"
        write_config(config, port, sims, args, redis_url if name == "C" else None)
        argv = [str(SWITCHYARD), "serve", "-c", str(config)]
        procs.append(launch(argv, gw_cpu, workdir / f"gateway-{name}.log", env))
    for port in ports.values():
        Client(port, "auto", "hello").wait_ready(t0 + 120)
    return ports, time.monotonic() - t0


def launch(
    argv: list[str], cpu: int | None, log_path: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    if cpu is not None:
        return start_pinned(argv, cpu, log_path, env)
    with log_path.open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=log, env=env, start_new_session=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    probe = LoadProbe()
    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) > 1
    prompt = routed_prompt(args.prompt_tokens, args.cache_dir)
    if pin:
        os.sched_setaffinity(0, {args.other_cpu})
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="routed-bench-") as tmp:
        try:
            ports, ready_s = start_all(args, Path(tmp), procs, pin)
            port = ports["B"]
            clients = {"A": Client(port, DIRECT, prompt), "B": Client(port, "auto", prompt)}
            if "C" in ports:
                clients["C"] = Client(ports["C"], "auto", prompt)
            reps = run_c1(args, clients, time.monotonic() + args.max_seconds)
            c8 = [run_c8(port, prompt, args.c8_requests) for _ in range(args.c8_reps)]
        except BaseException:
            for name in sorted(os.listdir(tmp)):
                tail = (Path(tmp) / name).read_text(errors="replace")[-1500:]
                print(f"--- {name}\n{tail}", file=sys.stderr)
            raise
        finally:
            for proc in reversed(procs):
                stop_group(proc)
    meta = machine_info(probe, ("onnxruntime", "tokenizers", "uvicorn"))
    summary = summarize(reps, c8)
    result = {
        "bench": "routed_bench",
        "command": " ".join(["python", *sys.argv]),
        "machine": meta,
        "source": source_digest(),
        "pinned": {"gateway": args.gateway_cpu, "others": args.other_cpu} if pin else None,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "prompt": {"tokens": args.prompt_tokens, "chars": len(prompt), "text": prompt},
        "gateway_ready_s": round(ready_s, 2),
        "routed_choices": dict(clients["B"].chosen),
        "summary": summary,
        "reps": reps,
        "c8_runs": c8,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(table(summary, args, meta))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
