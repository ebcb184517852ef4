"""Running a published protocol on a trained router, beside routers trained to compare."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.datasets import RoutingDataset
from switchyard.routers.embedding import OnnxEmbedder
from switchyard.routers.eval_runner import comparison_routers, protocol_train_rows, run_protocol
from switchyard.routers.models import make_router
from switchyard.routers.pipeline import RoutingPipeline

TOPICS = ("arithmetic", "poetry")


def _data(splits: list[str] | None = None, tasks: list[str] | None = None) -> RoutingDataset:
    """20 short prompts on two topics; "dear" is right on arithmetic, "cheap" on poetry."""
    n = 20
    topic = [TOPICS[i % 2] for i in range(n)]
    prompts = [
        f"Compute {i} plus {i + 3} times two." if t == "arithmetic" else f"Write a haiku #{i}."
        for i, t in enumerate(topic)
    ]
    quality = np.array([[0.0, 1.0] if t == "arithmetic" else [1.0, 0.0] for t in topic])
    cost = np.tile([0.001, 0.02], (n, 1)) * (1 + np.arange(n)[:, None] / n)
    return RoutingDataset(
        prompts=prompts,
        models=["cheap", "dear"],
        quality=quality,
        tasks=tasks or topic,
        cost=cost,
        splits=splits or ["train"] * 12 + ["test"] * 8,
        name="toy",
    )


def test_routerbench_trains_on_the_train_split() -> None:
    train = protocol_train_rows("routerbench", _data())
    assert len(train) == 12 and set(train.splits or []) == {"train"}


def test_routerdc_trains_on_its_in_distribution_tasks_train_rows() -> None:
    tasks = ["gsm8k", "mbpp"] * 10  # mbpp is out of distribution in RouterDC's protocol
    train = protocol_train_rows("routerdc", _data(tasks=tasks))
    assert len(train) == 6
    assert set(train.tasks) == {"gsm8k"} and set(train.splits or []) == {"train"}


def test_routellm_has_no_fixed_train_split() -> None:
    with pytest.raises(ValueError, match="no fixed train split"):
        protocol_train_rows("routellm", _data())


def test_comparison_routers_are_untrained_and_share_embedder_prices_and_cache(
    onnx_embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    pipe = RoutingPipeline(
        make_router("knn"), onnx_embedder, prices={"cheap": (0.1, 0.2)}, cache=tmp_path
    )
    others = comparison_routers(pipe, ["best-single", "default"])
    assert list(others) == ["best-single", "default"]
    assert others["best-single"].router.kind == "best-single"
    assert others["default"].router.kind == "knn-prior"
    for other in others.values():
        assert other.embedder is onnx_embedder
        assert other.prices == {"cheap": (0.1, 0.2)}
        assert other.cache == tmp_path
        assert not other.router.fitted


def test_routerbench_run_reports_the_router_and_the_compared_ones(
    onnx_embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    data = _data()
    pipe = RoutingPipeline(make_router("knn", k=3), onnx_embedder, cache=tmp_path)
    pipe.fit(data.where(split="train"))
    pipe.metadata["name"] = "mine"
    report = run_protocol(
        "routerbench", pipe, data, compare=["best-single", "mine"], progress=False
    )
    names = [row.name for row in report.rows]
    assert names.count("mine") == 1  # the trained router is not trained again
    assert "best-single" in names and "oracle" in names
    assert report.metadata["test rows"] == 8 and report.metadata["train rows"] == 12
    mine = report.row("mine").metrics
    # the kNN router separates the topics: it reaches the oracle's best quality
    assert mine["max quality"] == pytest.approx(report.row("oracle").metrics["max quality"])
    assert mine["AIQ"] > report.row("best-single").metrics["AIQ"]


def test_comparing_without_training_rows_is_an_error(
    onnx_embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    data = _data()
    pipe = RoutingPipeline(make_router("best-single"), onnx_embedder, cache=tmp_path)
    pipe.fit(data)
    only_test = data.where(split="test")
    with pytest.raises(ValueError, match="no routerbench training rows"):
        run_protocol("routerbench", pipe, only_test, compare=["knn"], progress=False)
