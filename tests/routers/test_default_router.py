"""The shipped default router (package data: data/default-router) loads, matches the demo and
routes sanely."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from switchyard.cli.demo import DEMO_MODELS
from switchyard.routers.datasets import load_dataset
from switchyard.routers.embedding import StaticEmbedder
from switchyard.routers.pipeline import RoutingPipeline, read_manifest
from tests.support.requirements import reference_data

REPO = Path(__file__).resolve().parents[2]
ROUTER = REPO / "switchyard" / "data" / "default-router"
PRICES = REPO / "switchyard" / "data" / "routerbench-prices.yaml"


@pytest.fixture(scope="module")
def default_router(static_embedder: StaticEmbedder) -> RoutingPipeline:
    return RoutingPipeline.load(ROUTER, static_embedder)


def test_metadata_records_the_command_that_built_it() -> None:
    meta = read_manifest(ROUTER)["metadata"]
    assert meta["command"].startswith("switchyard train --router default")
    assert "routing/routerbench" in meta["command"]
    assert meta["switchyard_version"] and meta["created"]


def test_it_covers_the_eleven_routerbench_models_at_their_prices(
    default_router: RoutingPipeline,
) -> None:
    prices = yaml.safe_load(PRICES.read_text())
    assert sorted(default_router.models) == sorted(prices)
    assert len(default_router.models) == 11
    for model, price in prices.items():
        assert default_router.prices[model] == (price["input_per_mtok"], price["output_per_mtok"])


def test_demo_models_are_routerbench_models_priced_the_same() -> None:
    prices = yaml.safe_load(PRICES.read_text())
    for m in DEMO_MODELS:
        assert (m.price_in, m.price_out) == (
            prices[m.name]["input_per_mtok"],
            prices[m.name]["output_per_mtok"],
        )


def test_routing_beats_the_cheap_model_and_saves_on_the_dear_one(
    default_router: RoutingPipeline,
) -> None:
    """On 120 held-out RouterBench prompts: at λ = 0 quality is near GPT-4's; at the stored λ
    (calibrated to $1 per 1k requests) it costs far less than GPT-4 and beats Mixtral."""
    test = load_dataset(reference_data("routing", "routerbench")).where(split="test")
    rows = np.random.default_rng(1).permutation(len(test))[:120]
    sample = test.subset(rows)
    scored = ~np.isnan(sample.quality).any(axis=1)
    sample = sample.subset(np.flatnonzero(scored))
    assert sample.cost is not None
    cost = np.nan_to_num(sample.cost)
    col = {m: j for j, m in enumerate(sample.models)}
    gpt4, mixtral = col["gpt-4-1106-preview"], col["mistralai/mixtral-8x7b-chat"]

    def outcome(weight: float) -> tuple[float, float]:
        picks = [col[d.model] for d in default_router.decide(sample.prompts, cost_weight=weight)]
        idx = np.arange(len(sample))
        return float(sample.quality[idx, picks].mean()), float(cost[idx, picks].sum())

    q0, _ = outcome(0.0)
    q, spent = outcome(default_router.cost_weight)
    assert q0 >= sample.quality[:, gpt4].mean() - 0.05
    assert q > sample.quality[:, mixtral].mean()
    assert spent < 0.5 * cost[:, gpt4].sum()
