"""The gateway runs the embedder its routers were trained on: the static table (decisions on
the event loop) or MiniLM (decisions on the worker thread), and refuses a mix."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from switchyard.gateway.router_reload import embedder_kind
from switchyard.gateway.settings import RouterConfig
from switchyard.resources import default_router
from switchyard.routers.datasets.core import RoutingDataset
from switchyard.routers.embedding import OnnxEmbedder
from switchyard.routers.models import make_router
from switchyard.routers.pipeline import RoutingPipeline
from tests.support.gateways import Gateway, Simulator
from tests.support.routed import CANDIDATES, routed_settings

NAMES = [name for name, _, _ in CANDIDATES]
MATH = "Solve for x: 3x + 7 = 22. Show each step of the algebra."
CODE = "Write a Python function that merges two sorted lists into one sorted list."
PROMPTS = [MATH, "What is 17 times 23? Work it out.", "Integrate x^2 from 0 to 3.", CODE,
           "Implement binary search in Java.", "Write a SQL query joining two tables."]  # fmt: skip


def minilm_router(root: Path, embedder: OnnxEmbedder) -> Path:
    """A kNN router on int8 MiniLM that sends arithmetic to the cheapest candidate and code
    to the dearest."""
    quality = np.zeros((len(PROMPTS), len(NAMES)))
    quality[:3, 0] = 1.0
    quality[3:, -1] = 1.0
    data = RoutingDataset(prompts=PROMPTS, models=NAMES, quality=quality, tasks=["t"] * 6)
    prices = {name: (p_in, p_out) for name, p_in, p_out in CANDIDATES}
    pipe = RoutingPipeline(make_router("knn", k=1), embedder, prices=prices, cache=root)
    pipe.fit(data)
    pipe.save(root / "minilm-router")
    return root / "minilm-router"


def test_a_router_trained_on_minilm_is_served_with_minilm_on_the_worker_thread(
    simulator: Callable[..., Simulator],
    gateway: Callable[..., Gateway],
    embedder_cache: Path,
    onnx_embedder: OnnxEmbedder,
    tmp_path: Path,
) -> None:
    urls = {name: simulator(name).base_url for name in NAMES}
    config = routed_settings(urls, embedder_cache)
    config["routers"][0]["artifact"] = str(minilm_router(tmp_path, onnx_embedder))
    gw = gateway(**config)
    for prompt, model in ((MATH, NAMES[0]), (CODE, NAMES[-1])):
        body = {"model": "auto", "messages": [{"role": "user", "content": prompt}]}
        resp = httpx.post(f"{gw.base_url}/chat/completions", json=body, timeout=30)
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-switchyard-model"] == model


def test_routers_on_different_embedders_are_refused_naming_both(
    embedder_cache: Path, onnx_embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    static = RouterConfig(name="a", artifact=default_router())
    assert embedder_kind([static]) == "static"
    other = RouterConfig(name="b", artifact=minilm_router(tmp_path, onnx_embedder))
    assert embedder_kind([other]) == "onnx-int8"
    with pytest.raises(RuntimeError, match="different embedders") as err:
        embedder_kind([static, other])
    assert "all-MiniLM-L6-v2-static/pcaz256: a" in str(err.value)
    assert "all-MiniLM-L6-v2/onnx-int8-pc: b" in str(err.value)
    broken = tmp_path / "broken"
    shutil.copytree(default_router(), broken)
    (broken / "router.json").write_text("{")
    with pytest.raises(RuntimeError, match="router c"):
        embedder_kind([RouterConfig(name="c", artifact=broken)])
