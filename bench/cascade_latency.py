"""What the cascade's pre-generation decision adds to a routing decision (issue 18, part 1).

Two routers in one ``RouterService``: ``one-shot`` (the shipped default router) and
``cascade`` (the same artifact plus a two-stage cascade Mixtral -> GPT-4, the thresholds of
``build/routers/cascade-rb`` when it exists, else neutral ones): the embedding and the quality
prediction are the same, the cascade adds its rule. Decisions alternate between the two
routers, one at a time (no batching), on RouterBench-like questions; the time of each is
``Route.decision_s`` (queueing, embedding on the worker thread, prediction, policy, rule).

    python bench/cascade_latency.py [--decisions 400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry
from routerkit import LoadProbe, load_questions, machine_info, write_results

from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.routing import RouterService
from switchyard.gateway.routing_options import RoutingOptions
from switchyard.gateway.settings import build_settings
from switchyard.resources import default_router
from switchyard.routers.cascade import CascadeModel
from switchyard.routers.embedding import dim_of
from switchyard.routers.pipeline import read_manifest

RESULTS = Path(__file__).resolve().parent / "results" / "cascade"
TRAINED = Path(__file__).resolve().parents[1] / "build" / "routers" / "cascade-rb"
STAGES = ["mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"]


def _artifact(root: Path) -> tuple[Path, str]:
    path = root / "cascade"
    shutil.copytree(default_router(), path)
    shipped = read_manifest(path)["embedder"]
    if (TRAINED / "cascade.json").exists() and CascadeModel.load(TRAINED).embedder == shipped:
        trained = CascadeModel.load(TRAINED)
        trained.save(path)
        return path, f"thresholds of {TRAINED.name}"
    embedder = read_manifest(path)["embedder"]
    dim = dim_of(embedder)
    CascadeModel(STAGES, embedder, [-0.1], [0.5], np.zeros((1, 3 * dim)), np.zeros(1)).save(path)
    return path, "neutral thresholds"


def _settings(artifact: Path) -> Any:
    names = read_manifest(default_router())["models"]
    models = [{"name": m, "price_input_per_mtok": 1, "price_output_per_mtok": 1,
               "endpoints": [{"url": "http://127.0.0.1:9/v1"}]} for m in names]  # fmt: skip
    routers = [
        {"name": "one-shot", "artifact": str(default_router()), "bandit": {"enabled": False}},
        {"name": "cascade", "artifact": str(artifact), "kind": "cascade",
         "bandit": {"enabled": False}},
    ]  # fmt: skip
    return build_settings({"models": models, "routers": routers})


async def _measure(settings: Any, questions: list[str], count: int) -> dict[str, list[float]]:
    service = RouterService(settings, GatewayMetrics(CollectorRegistry()))
    await service.start()
    took: dict[str, list[float]] = {"one-shot": [], "cascade": []}
    try:
        for i in range(count + 20):
            for name in ("one-shot", "cascade") if i % 2 else ("cascade", "one-shot"):
                allowed = frozenset(service.candidates[name])
                text = questions[i % len(questions)]
                route = await service.decide(name, text, RoutingOptions(), allowed)
                if i >= 20:  # warm-up
                    took[name].append(route.decision_s * 1e3)
    finally:
        await service.close()
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--decisions", type=int, default=400)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    probe = LoadProbe()
    with tempfile.TemporaryDirectory() as tmp:
        artifact, thresholds = _artifact(Path(tmp))
        took = asyncio.run(_measure(_settings(artifact), load_questions(200), args.decisions))
    rows = {name: {"p50": float(np.median(v)), "p90": float(np.percentile(v, 90))}
            for name, v in took.items()}  # fmt: skip
    delta = rows["cascade"]["p50"] - rows["one-shot"]["p50"]
    results = {"command": f"python bench/cascade_latency.py --decisions {args.decisions}",
               "thresholds": thresholds, "rows": rows, "delta_p50_ms": delta,
               "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "machine": machine_info(probe, ("numpy", "onnxruntime"))}  # fmt: skip
    lines = [f"`{results['command']}` ({thresholds})", "", "| router | p50 ms | p90 ms |",
             "|---|---:|---:|"]  # fmt: skip
    for name, r in rows.items():
        lines.append(f"| {name} | {r['p50']:.3f} | {r['p90']:.3f} |")
    lines.append(f"\nΔ p50 cascade − one-shot: {delta:+.3f} ms")
    write_results("\n".join(lines), results, args.out / "cascade_latency.json")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
