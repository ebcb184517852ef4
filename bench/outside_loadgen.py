"""An outside load generator against the gateway: GuideLLM beside the project's own bench.

What it runs
  For each load level (50 / 80 / 95 % of the fleet's capacity, as in
  ``bench/replica_bench_load.py``), a fresh fleet — three unequal simulated vLLM replicas
  (fast / medium / slow presets, ``--max-num-seqs 32,16,4``) behind one ``switchyard serve``
  with the default ``switchyard`` balancer, reusing that bench's ``Fleet`` — and then GuideLLM
  (``guidellm run``, installed in its own venv) at that rate: Poisson arrivals of streamed
  chat completions, synthetic prompts, 32..96 output tokens (mean 64, stdev 18), SLO goodput
  TTFT <= 1 s and ITL <= 50 ms. Then the project's bench at the same levels and duration
  (``replica_bench_load.py --balancers switchyard --no-fault``), in the same invocation, so
  the two are measured side by side.

Offline
  GuideLLM's synthetic data needs a Hugging Face tokenizer. This script writes a byte-level
  one (256 byte tokens, no merges: one token per byte of UTF-8) as a local folder and sets
  ``HF_HUB_OFFLINE=1``, ``TRANSFORMERS_OFFLINE=1`` and ``HF_DATASETS_OFFLINE=1``: nothing is
  downloaded at run time. Prompts are 32 such tokens (32 characters), which the simulator
  counts as ceil(32 / 4) + 4 = 12 prompt tokens; output lengths come from the simulator's
  ``usage`` (it honours ``max_tokens`` and ``ignore_eos`` as vLLM does).

Each GuideLLM run stops sending after ``rate x duration`` requests (``max_requests``) and
waits for them, at most ``duration + grace`` seconds in all (``max_duration``), like the
project's bench, which sends for ``duration`` and cancels what is open ``grace`` s later.

Writes, under ``bench/results/outside_loadgen/``: ``guidellm-<level>.json`` (GuideLLM's own
report without its per-request lists), ``guidellm-<level>.txt`` (its console tables),
``project_bench.json`` and ``summary.json`` / ``summary.md`` (the side-by-side table).

    python bench/outside_loadgen.py [--loadgen-venv /tmp/loadgen-venv] [--duration 25]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import replica_bench_load as project
from benchkit import log
from routerkit import LoadProbe, machine_info

BENCH_DIR = Path(__file__).resolve().parent
OUT_DIR = BENCH_DIR / "results" / "outside_loadgen"
DEFAULT_VENV = Path(os.environ.get("LOADGEN_VENV", "/tmp/loadgen-venv"))
PROMPT_BYTES = 32
OUTPUT = {"output_tokens": 64, "output_tokens_stdev": 18, "output_tokens_min": 32,
          "output_tokens_max": 96}  # fmt: skip
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}


def byte_to_unicode() -> list[str]:
    """GPT-2's printable stand-in for each of the 256 bytes (the ByteLevel alphabet)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1),
                 *range(ord("®"), ord("ÿ") + 1)]  # fmt: skip
    chars, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def write_tokenizer(folder: Path) -> Path:
    """A byte-level BPE with no merges (one token per byte), loadable offline with
    ``AutoTokenizer.from_pretrained(folder)``."""
    byte_level = {"add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    model = {
        "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
        "ignore_merges": False, "merges": [],
        "vocab": {ch: i for i, ch in enumerate(byte_to_unicode())},
    }  # fmt: skip
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [],
        "normalizer": None, "post_processor": None, "model": model,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "decoder": {"type": "ByteLevel", **byte_level},
    }  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    config = {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 8192}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


def scenario(
    url: str, rate: float, tokenizer: Path, a: argparse.Namespace, report: Path
) -> dict[str, Any]:
    """GuideLLM's scenario file for one level: one Poisson benchmark at ``rate``."""
    target = url.removesuffix("/v1")
    return {
        "metadata": {"name": "switchyard-outside-loadgen"},
        "spec": {
            # The gateway answers /readyz, not vLLM's /health, to GuideLLM's startup check.
            "backend": {"kind": "openai_http", "target": target, "model": project.MODEL,
                        "request_format": "/v1/chat/completions",
                        "api_routes": {"/health": "readyz"}},
            "tokenizer": {"kind": "hf_auto", "model": str(tokenizer)},
            "profile": {"kind": "poisson", "rate": [round(rate, 3)]},
            "data": [{"kind": "synthetic_text", "prompt_tokens": PROMPT_BYTES, **OUTPUT}],
            "constraints": [
                {"kind": "max_requests", "count": round(rate * a.duration)},
                {"kind": "max_duration", "seconds": a.duration + a.grace},
            ],
            "seed": {"kind": "static", "value": a.seed},
            "metrics": {"kind": "generative",
                        "slo": {"ttft_ms": a.slo_ttft * 1e3, "tpot_ms": a.slo_itl * 1e3}},
            "outputs": [{"kind": "json", "path": str(report)}, {"kind": "console"}],
        },
    }  # fmt: skip


def start_fleet(a: argparse.Namespace, tries: int = 3) -> project.Fleet:
    """A started fleet whose three simulators all run on distinct ports (``free_port`` can
    hand out one port twice before it is bound; then one simulator exits at start)."""
    for _ in range(tries):
        fleet = project.Fleet("switchyard", a.logs)
        try:
            fleet.start()
        except BaseException:  # SystemExit from wait_ready too: stop what did start
            fleet.stop()
            raise
        time.sleep(0.5)
        if len(set(fleet.sim_ports)) == len(fleet.sim_ports) and all(
            proc.poll() is None for proc in fleet.sims
        ):
            return fleet
        log(f"a simulator did not start (ports {fleet.sim_ports}); starting the fleet again")
        fleet.stop()
    raise SystemExit(f"could not start the fleet in {tries} tries; logs in {a.logs}")


def run_guidellm(level: str, tokenizer: Path, a: argparse.Namespace) -> dict[str, Any]:
    """One level on a fresh fleet: GuideLLM's trimmed report and our summary of it."""
    rate = project.PHASES[level] * project.capacity_rps()
    work = Path(tempfile.mkdtemp(prefix=f"guidellm-{level.rstrip('%')}-"))
    report, console = work / "report.json", a.out_dir / f"guidellm-{level.rstrip('%')}.txt"
    fleet = start_fleet(a)
    try:
        spec = scenario(fleet.url, rate, tokenizer, a, report)
        (work / "scenario.json").write_text(json.dumps(spec, indent=2))
        env = {**os.environ, **OFFLINE, "GUIDELLM__MAX_WORKER_PROCESSES": str(a.workers),
               "GUIDELLM__LOGGING__LOG_FILE": str(work / "guidellm.log")}  # fmt: skip
        argv = [*guidellm_argv(a), "run", "-c", str(work / "scenario.json"), "--disable-progress"]
        started, cpu = time.monotonic(), children_cpu_s()
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                              timeout=a.duration + a.grace + 120, check=False)  # fmt: skip
        wall, cpu = time.monotonic() - started, children_cpu_s() - cpu
        console.write_text(done.stdout + done.stderr)
        if done.returncode != 0:
            raise SystemExit(f"guidellm failed ({done.returncode}); see {console}")
        shares = fleet.shares()
    finally:
        fleet.stop()
    full = json.loads(report.read_text())
    trimmed = trim(full)
    (a.out_dir / f"guidellm-{level.rstrip('%')}.json").write_text(json.dumps(trimmed))
    summary = summarize(full["benchmarks"][0], rate, shares)
    summary.update({"guidellm_wall_s": round(wall, 1), "loadgen_cpu_s": round(cpu, 1)})
    log(f"guidellm {level}: {summary}")
    return summary


def children_cpu_s() -> float:
    """User + system CPU seconds of this process's finished (waited-for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def guidellm_argv(a: argparse.Namespace) -> list[str]:
    """The released ``guidellm``, or the same with its Poisson start-up race fixed."""
    if a.as_released:
        return [str(a.loadgen_venv / "bin" / "guidellm")]
    return [str(a.loadgen_venv / "bin" / "python"), str(BENCH_DIR / "guidellm_poisson_fix.py")]


def trim(report: dict[str, Any]) -> dict[str, Any]:
    """The report less its per-request lists (MBs at these rates); their counts stay."""
    out = json.loads(json.dumps(report))
    for bench in out["benchmarks"]:
        requests = bench.get("requests") or {}
        bench["requests"] = {k: len(v) if isinstance(v, list) else v for k, v in requests.items()}
        bench["requests"]["trimmed"] = "per-request lists dropped by bench/outside_loadgen.py"
    return out


def _pct(stat: dict[str, Any], key: str, scale: float = 1.0) -> float | None:
    value = stat["percentiles"].get(key) if stat.get("count") else None
    return None if value is None else round(value * scale, 1)


def late_ttft_p99(requests: list[dict[str, Any]], skip_s: float = 2.0) -> float | None:
    """p99 TTFT (ms) of the requests sent after the first ``skip_s`` of the run."""
    if not requests:
        return None
    t0 = min(r["info"]["timings"]["request_start"] for r in requests)
    late = [r["time_to_first_token_ms"] for r in requests
            if r["info"]["timings"]["request_start"] - t0 >= skip_s]  # fmt: skip
    return p99(late)


def send_lateness(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """How late GuideLLM sent its requests (request start - its Poisson target time), ms,
    and the send rate it achieved. Some requests carry a target time of 0 (seen at 80 %;
    its own ``request_dispatch_delay`` then reads as a Unix time): they are counted apart."""
    timings = [r["info"]["timings"] for r in requests]
    late = sorted((t["request_start"] - t["targeted_start"]) * 1e3 for t in timings
                  if t["targeted_start"] and t["targeted_start"] > 1e9)  # fmt: skip
    starts = sorted(t["request_start"] for t in timings)
    span = starts[-1] - starts[0] if len(starts) > 1 else 0.0
    return {
        "send_late_p50_ms": round(late[len(late) // 2], 1) if late else None,
        "send_late_p99_ms": p99(late),
        "no_target_time": len(timings) - len(late),
        "sent_rps": round((len(starts) - 1) / span, 2) if span else None,
    }


def p99(values: list[float]) -> float | None:
    ordered = sorted(values)
    return round(ordered[min(int(0.99 * len(ordered)), len(ordered) - 1)], 1) if values else None


def summarize(bench: dict[str, Any], rate: float, shares: dict[str, float]) -> dict[str, Any]:
    """GuideLLM's figures for one benchmark, named like the project bench's summary."""
    m, totals = bench["metrics"], bench["metrics"]["request_totals"]
    ttft = m["time_to_first_token_ms"]["successful"]
    itl = m["inter_token_latency_ms"]["successful"]
    e2e = m["request_latency"]["successful"]
    goodput = m.get("request_goodput") or {}
    return {
        "target_rps": round(rate, 2),
        "requests": totals["total"],
        "successful": totals["successful"],
        "errored": totals["errored"],
        "incomplete": totals["incomplete"],
        "ttft_p50_ms": _pct(ttft, "p50"), "ttft_p99_ms": _pct(ttft, "p99"),
        "e2e_p50_ms": _pct(e2e, "p50", 1e3), "e2e_p99_ms": _pct(e2e, "p99", 1e3),
        "itl_p50_ms": _pct(itl, "p50"), "itl_mean_ms": round(itl.get("mean") or 0.0, 1),
        "completed_rps": round(m["requests_per_second"]["successful"]["mean"], 2),
        "output_tok_s": round(m["output_tokens_per_second"]["total"]["mean"], 1),
        "slo_attainment": m.get("slo_attainment"),
        "goodput_rps": round(goodput["successful"]["mean"], 2) if goodput else None,
        "ttft_p99_after_2s_ms": late_ttft_p99(bench["requests"]["successful"]),
        **send_lateness(bench["requests"]["successful"]),
        "replica_requests": shares,
        "duration_s": round(bench["duration"], 2),
    }  # fmt: skip


def run_project(level: str, a: argparse.Namespace) -> dict[str, Any]:
    """The project's bench at one level (its ``run_load`` and ``summarize`` on a fresh fleet),
    plus the mean ITL and throughput figures its table leaves out, from the same requests."""
    rate = project.PHASES[level] * project.capacity_rps()
    fleet = start_fleet(a)
    outcomes: list[project.Outcome] = []
    try:
        load = project.run_load(fleet.url, rate, a.duration, False, a.grace, a.seed, outcomes)
        cpu = time.process_time()
        wall = project.asyncio.run(load)
        cpu = time.process_time() - cpu
        shares = fleet.shares()
    finally:
        fleet.stop()
    summary = project.summarize(outcomes, a.duration, a.slo_ttft, a.slo_itl)
    ok = [o for o in outcomes if not o.error and o.first is not None and o.end is not None]
    itl = sorted((o.end - o.first) / max(o.chunks - 1, 1) for o in ok if o.end and o.first)
    start = min((o.sent for o in outcomes), default=0.0)
    late = [((o.first or o.end or o.sent) - o.sent) * 1e3 for o in outcomes if o.sent - start >= 2]
    summary.update({
        "target_rps": round(rate, 2),
        "successful": len(ok),
        "itl_p50_ms": round(itl[len(itl) // 2] * 1e3, 1) if itl else None,
        "itl_mean_ms": round(sum(itl) / len(itl) * 1e3, 1) if itl else None,
        "completed_rps": round(len(ok) / wall, 2),
        # One SSE chunk per token from the simulator, plus the closing finish_reason chunk.
        "output_tok_s": round(sum(o.chunks - 1 for o in ok) / wall, 1),
        "wall_s": round(wall, 2),
        "ttft_p99_after_2s_ms": p99(late),
        "loadgen_cpu_s": round(cpu, 1),
        **project_lateness(rate, outcomes, a.duration, a.seed),
        "replica_requests": shares,
    })  # fmt: skip
    log(f"project bench {level}: {summary}")
    return summary


def project_lateness(
    rate: float, outcomes: list[project.Outcome], duration: float, seed: int
) -> dict[str, Any]:
    """How late the project's bench sent (send time - its Poisson target), ms: its arrival
    plan is regenerated from the seed; the least late request stands for 0."""
    plan = project.arrivals(rate, duration, False, random.Random(seed))
    offsets = [o.sent - t for o, t in zip(outcomes, plan, strict=True)]
    late = sorted((x - min(offsets)) * 1e3 for x in offsets) if offsets else []
    return {"send_late_p50_ms": round(late[len(late) // 2], 1) if late else None,
            "send_late_p99_ms": p99(late)}  # fmt: skip


def row(tool: str, level: str, r: dict[str, Any], goodput: str) -> str:
    kinds = r.get("errors") or {}  # the project bench's; "unfinished" is its own cut-off
    unfinished = r.get("incomplete", kinds.get("unfinished", 0))
    errors = r.get("errored", sum(kinds.values()) - kinds.get("unfinished", 0))
    shares = " / ".join(f"{v:.0f}" for v in r["replica_requests"].values())
    return (
        f"| {level} | {tool} | {r['target_rps']} | {r['ttft_p50_ms']} / {r['ttft_p99_ms']} "
        f"({r['ttft_p99_after_2s_ms']}) | "
        f"{r['itl_p50_ms']} / {r['itl_mean_ms']} | {r['e2e_p50_ms']} / {r['e2e_p99_ms']} | "
        f"{r['completed_rps']} | {r['output_tok_s']} | {goodput} | {errors} ({unfinished}) | "
        f"{shares} |"
    )


def guidellm_goodput(r: dict[str, Any]) -> str:
    """GuideLLM's SLO attainment (share of its determined requests) as a table cell."""
    share = r.get("slo_attainment")
    if isinstance(share, dict):  # a distribution in some versions: take its mean
        share = share.get("mean")
    return "n/a" if share is None else f"{float(share):.0%} of completed"


def markdown(results: dict[str, Any]) -> str:
    head = (
        "| load | tool | req/s target | TTFT p50 / p99 (p99 after the first 2 s) ms | "
        "ITL p50 / mean ms | "
        "e2e p50 / p99 ms | completed req/s | output tok/s | SLO goodput | "
        "errors (unfinished) | finished on fast / medium / slow |"
    )
    lines = [head, "|" + "---|" * 11]
    for level in results["levels"]:
        g, p = results["guidellm"].get(level), results["project"].get(level)
        if g:
            lines.append(row("GuideLLM", level, g, guidellm_goodput(g)))
        if p:
            lines.append(row("project bench", level, p, f"{p['goodput_share']:.0%} of sent"))
    return "\n".join(lines)


def generator_table(results: dict[str, Any]) -> str:
    """What each load generator itself cost and how faithfully it sent."""
    lines = ["| load | tool | sent req/s | send lateness p50 / p99 ms | generator CPU s |",
             "|---|---|---|---|---|"]  # fmt: skip
    for level in results["levels"]:
        g, p = results["guidellm"].get(level), results["project"].get(level)
        if g:
            lines.append(f"| {level} | GuideLLM | {g['sent_rps']} | {g['send_late_p50_ms']} / "
                         f"{g['send_late_p99_ms']} | {g['loadgen_cpu_s']} |")  # fmt: skip
        if p:
            lines.append(f"| {level} | project bench | {p['offered_rps']} | "
                         f"{p['send_late_p50_ms']} / {p['send_late_p99_ms']} | "
                         f"{p['loadgen_cpu_s']} |")  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    venv_help = "venv with guidellm (default $LOADGEN_VENV, else /tmp/loadgen-venv)"
    p.add_argument("--loadgen-venv", type=Path, default=DEFAULT_VENV, help=venv_help)
    p.add_argument("--levels", default="50%,80%,95%", help="loads, as in replica_bench_load")
    p.add_argument("--duration", type=float, default=25.0, help="seconds of arrivals per level")
    p.add_argument("--grace", type=float, default=10.0, help="seconds to let requests finish")
    p.add_argument("--workers", type=int, default=2, help="GuideLLM worker processes")
    p.add_argument("--slo-ttft", type=float, default=1.0, help="goodput SLO: TTFT, seconds")
    p.add_argument("--slo-itl", type=float, default=0.05, help="goodput SLO: ITL, seconds")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-project", action="store_true", help="GuideLLM only")
    released = "run guidellm without the start-up fix of bench/guidellm_poisson_fix.py"
    p.add_argument("--as-released", action="store_true", help=released)
    p.add_argument("--logs", type=Path, default=Path(tempfile.gettempdir()) / "outside-loadgen")
    p.add_argument("--out-dir", type=Path, default=OUT_DIR)
    return p.parse_args(argv)


def guidellm_version(venv: Path) -> str:
    code = "import importlib.metadata as m; print(m.version('guidellm'))"
    done = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True,
                          text=True, check=False)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"no guidellm in {venv}: make bench-outside installs it ({done.stderr})")
    return done.stdout.strip()


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    version = guidellm_version(a.loadgen_venv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    probe = LoadProbe()
    levels = a.levels.split(",")
    tokenizer = write_tokenizer(Path(tempfile.mkdtemp(prefix="byte-tokenizer-")))
    log(f"guidellm {version}; capacity {project.capacity_rps():.1f} req/s; levels {levels}")
    results: dict[str, Any] = {
        "command": " ".join(["python", "bench/outside_loadgen.py", *(argv or sys.argv[1:])]),
        "guidellm_version": version,
        "guidellm_poisson_start_fix": not a.as_released,
        "levels": levels,
        "capacity_rps": round(project.capacity_rps(), 2),
        "duration_s": a.duration,
        "grace_s": a.grace,
        "slo": {"ttft_s": a.slo_ttft, "itl_s": a.slo_itl},
        "guidellm": {level: run_guidellm(level, tokenizer, a) for level in levels},
        "project": {} if a.no_project else {level: run_project(level, a) for level in levels},
    }
    results["machine"] = machine_info(probe, ["aiohttp", "uvicorn"])
    table = markdown(results) + "\n\n" + generator_table(results)
    print(table)
    (a.out_dir / "summary.md").write_text(table + "\n")
    (a.out_dir / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {a.out_dir}")


if __name__ == "__main__":
    main()
