"""A router decides among its candidates' columns only: the shipped router knows eleven
models, a gateway offers a few, and the choice, the predicted quality and cost it reports and
the fast path for a request that limits nothing are those of the full rule with every other
model excluded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import CollectorRegistry

from switchyard.gateway.decisions import Chosen, Job
from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.routing import RouterService
from switchyard.gateway.routing_options import NO_OPTIONS, RoutingOptions
from switchyard.gateway.settings import build_settings
from switchyard.routers.policy import Constraints, decide
from tests.support.routed import CANDIDATES, routed_settings

PROMPTS = [
    "Prove that there are infinitely many prime numbers.",
    "Write a Python function that reverses a linked list.",
    "What is the capital of Australia?",
    "Translate 'good morning' into French.",
    "Summarise the causes of the First World War in three sentences.",
]


def _service(cache: Path) -> RouterService:
    urls = {name: f"http://127.0.0.1:{9000 + i}/v1" for i, (name, _, _) in enumerate(CANDIDATES)}
    settings = build_settings(routed_settings(urls, cache, bandit={"enabled": False}))
    return RouterService(settings, GatewayMetrics(CollectorRegistry()))


def test_deciding_among_the_candidates_columns_is_the_full_rule(embedder_cache: Path) -> None:
    async def run() -> None:
        service = _service(embedder_cache)
        await service.start()
        router = service._routers["smart"]
        models = list(router.pipeline.models)
        names = [name for name, _, _ in CANDIDATES]
        assert len(models) > len(names) and set(router.decides) == set(names)
        assert router.decides == tuple(m for m in models if m in names)  # the artifact's order
        loop = asyncio.get_running_loop()
        for lam in (0.0, 24.4, 1e4):
            allowed = frozenset(names[:3])
            jobs = [Job(router, p, lam, allowed, loop.create_future(), {}, "smart")
                    for p in PROMPTS]  # fmt: skip
            chosen = service._run_batch(jobs)
            pred = router.pipeline.predict_prompts(PROMPTS)
            full = decide(models, pred.quality, pred.cost, lam, Constraints(allowed=allowed))
            for got, want, q in zip(chosen, full, pred.quality, strict=True):
                assert isinstance(got, Chosen)
                assert got.decision.model == want.model
                assert got.decision.cost == {m: want.cost[m] for m in router.decides}
                assert got.quality == {m: q[models.index(m)] for m in router.decides}
        await service.close()

    asyncio.run(run())


def test_a_request_that_limits_nothing_may_use_every_candidate(embedder_cache: Path) -> None:
    service = _service(embedder_cache)  # allowed() reads the config only
    names = frozenset(name for name, _, _ in CANDIDATES)
    assert service.allowed("smart", NO_OPTIONS, None) == names
    assert service.allowed("smart", NO_OPTIONS, None) is service.allowed("smart", NO_OPTIONS, None)
    cheap = RoutingOptions(max_price_per_mtok=1.0)
    assert service.allowed("smart", cheap, None) == {"mistralai/mistral-7b-chat",
                                                     "mistralai/mixtral-8x7b-chat"}  # fmt: skip
    assert service.allowed("smart", NO_OPTIONS, lambda m: "gpt" in m) == {
        "gpt-3.5-turbo-1106", "gpt-4-1106-preview"}  # fmt: skip
