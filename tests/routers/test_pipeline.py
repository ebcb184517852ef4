"""The shipped router: embedder + quality router + cost predictor, trained on real RouterBench
rows, deciding, saved and loaded."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.datasets import RoutingDataset, concat, load_dataset
from switchyard.routers.embedding import EmbedderMismatchError, Embeddings, OnnxEmbedder
from switchyard.routers.models import NotFittedError, RouterFormatError, make_router
from switchyard.routers.pipeline import RoutingPipeline, read_manifest
from switchyard.routers.policy import Constraints, NoModelAllowedError
from switchyard.routers.prediction import Prediction
from tests.support.requirements import reference_data

CHEAP, EXPENSIVE = "mistralai/mistral-7b-chat", "gpt-4-1106-preview"


class StandIn:
    """An embedder under another name (the name check is what is tested, not the vectors)."""

    def __init__(self, name: str, dim: int = 384) -> None:
        self._name, self._dim = name, dim

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def embed(
        self, texts: Sequence[str], *, batch_size: int = 64, progress: bool = False
    ) -> Embeddings:
        return np.zeros((len(texts), self._dim), dtype=np.float32)


def _rows(file: str, start: int, count: int) -> RoutingDataset:
    data = load_dataset(reference_data("routing", "routerbench", file))
    return data.subset(np.arange(start, start + count))


@pytest.fixture(scope="module")
def train_data() -> RoutingDataset:
    """150 real RouterBench rows: 75 Winogrande and 75 MBPP prompts, 11 models, with costs."""
    return concat([_rows("winograde_train.csv", 0, 75), _rows("mbpp_train.csv", 0, 75)])


@pytest.fixture(scope="module")
def new_prompts(train_data: RoutingDataset) -> list[str]:
    """Twelve prompts the router was not trained on (six of each task)."""
    held_out = concat([_rows("winograde_train.csv", 100, 6), _rows("mbpp_train.csv", 100, 6)])
    return held_out.prompts


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The embedding cache of this module's pipelines (never the user's cache)."""
    return tmp_path_factory.mktemp("pipeline-cache")


@pytest.fixture(scope="module")
def pipe(train_data: RoutingDataset, onnx_embedder: OnnxEmbedder, cache: Path) -> RoutingPipeline:
    pipeline = RoutingPipeline(make_router("knn", k=10), onnx_embedder, cache=cache)
    assert pipeline.fit(train_data) is pipeline
    return pipeline


def test_fit_learns_the_datas_models(pipe: RoutingPipeline, train_data: RoutingDataset) -> None:
    assert pipe.models == train_data.models
    assert len(pipe.models) == 11
    assert pipe.metadata["train_rows"] == 150
    assert pipe.embedder_name == "all-MiniLM-L6-v2/onnx-int8-pc"


def test_predict_gives_quality_and_cost_per_prompt_and_model(
    pipe: RoutingPipeline, new_prompts: list[str]
) -> None:
    pred = pipe.predict_prompts(new_prompts)
    assert isinstance(pred, Prediction)
    assert pred.quality.shape == pred.cost.shape == (12, 11)
    assert np.isfinite(pred.quality).all() and np.isfinite(pred.cost).all()
    assert ((pred.quality >= 0) & (pred.quality <= 1)).all()
    assert (pred.cost > 0).all()


def test_predict_on_a_dataset_matches_predict_on_its_prompts(
    pipe: RoutingPipeline, train_data: RoutingDataset
) -> None:
    sub = train_data.subset(np.arange(0, 150, 15))
    a, b = pipe.predict(sub), pipe.predict_prompts(sub.prompts)
    np.testing.assert_array_equal(a.quality, b.quality)
    np.testing.assert_array_equal(a.cost, b.cost)


def test_training_fills_the_embedding_cache(pipe: RoutingPipeline, cache: Path) -> None:
    assert list((cache / "embeddings").glob("*/*.emb.npy"))


def test_decide_returns_one_decision_per_prompt(
    pipe: RoutingPipeline, new_prompts: list[str]
) -> None:
    decisions = pipe.decide(new_prompts, cost_weight=0.0)
    assert len(decisions) == len(new_prompts)
    pred = pipe.predict_prompts(new_prompts)
    for i, d in enumerate(decisions):
        assert d.model == d.ranking[0]
        assert sorted(d.ranking) == sorted(pipe.models)
        assert list(d.quality) == list(d.cost) == pipe.models
        np.testing.assert_allclose([d.quality[m] for m in pipe.models], pred.quality[i])
        np.testing.assert_allclose([d.cost[m] for m in pipe.models], pred.cost[i])
        assert d.quality[d.model] == pytest.approx(pred.quality[i].max())
    assert pipe.decide([]) == []


def test_a_large_cost_weight_picks_the_cheapest_model(
    pipe: RoutingPipeline, new_prompts: list[str]
) -> None:
    decisions = pipe.decide(new_prompts, cost_weight=1e9)
    assert all(d.model == min(d.cost, key=d.cost.__getitem__) for d in decisions)
    assert {d.model for d in decisions} == {CHEAP}


def test_the_stored_cost_weight_is_the_default(
    train_data: RoutingDataset, onnx_embedder: OnnxEmbedder, cache: Path, new_prompts: list[str]
) -> None:
    thrifty = RoutingPipeline(make_router("knn", k=10), onnx_embedder, cost_weight=1e9, cache=cache)
    thrifty.fit(train_data)  # embeddings come from the cache
    assert {d.model for d in thrifty.decide(new_prompts[:3])} == {CHEAP}
    assert {d.model for d in thrifty.decide(new_prompts[:3], cost_weight=0.0)} != {CHEAP}


def test_decide_respects_constraints(pipe: RoutingPipeline, new_prompts: list[str]) -> None:
    allowed = frozenset({"claude-v1", "gpt-3.5-turbo-1106"})
    decisions = pipe.decide(new_prompts, constraints=Constraints(allowed=allowed))
    assert all(d.model in allowed for d in decisions)
    assert all(set(d.ranking[:2]) == allowed for d in decisions)
    ceiling = 5e-4
    capped = pipe.decide(new_prompts, constraints=Constraints(max_cost=ceiling))
    assert all(d.cost[d.model] <= ceiling for d in capped)
    with pytest.raises(NoModelAllowedError):
        pipe.decide(new_prompts, constraints=Constraints(allowed=frozenset({"not-a-model"})))


def test_save_and_load_round_trip_gives_identical_decisions(
    pipe: RoutingPipeline, onnx_embedder: OnnxEmbedder, tmp_path: Path, new_prompts: list[str]
) -> None:
    pipe.save(tmp_path / "router", {"command": "test", "data": ["x.csv"]})
    assert (tmp_path / "router" / "quality" / "state.json").is_file()
    assert (tmp_path / "router" / "cost.json").is_file()
    manifest = read_manifest(tmp_path / "router")
    assert manifest["router"] == "knn"
    assert manifest["embedder"] == onnx_embedder.name
    assert manifest["models"] == pipe.models
    assert manifest["metadata"]["command"] == "test"
    assert manifest["metadata"]["train_rows"] == 150
    loaded = RoutingPipeline.load(tmp_path / "router", onnx_embedder)
    assert loaded.models == pipe.models
    assert loaded.cost_weight == pipe.cost_weight
    assert loaded.metadata["data"] == ["x.csv"]
    for lam in (0.0, 2.0):
        assert loaded.decide(new_prompts, cost_weight=lam) == pipe.decide(
            new_prompts, cost_weight=lam
        )


def test_loading_with_another_embedder_fails_with_a_clear_message(
    pipe: RoutingPipeline, tmp_path: Path
) -> None:
    pipe.save(tmp_path)
    with pytest.raises(EmbedderMismatchError) as info:
        RoutingPipeline.load(tmp_path, StandIn("some-other-embedder/fp16", dim=768))
    message = str(info.value)
    assert "all-MiniLM-L6-v2/onnx-int8-pc" in message
    assert "some-other-embedder/fp16" in message
    assert "re-train" in message
    assert info.value.expected == "all-MiniLM-L6-v2/onnx-int8-pc"


def test_loading_a_directory_that_is_not_a_router_fails(
    tmp_path: Path, onnx_embedder: OnnxEmbedder
) -> None:
    with pytest.raises(RouterFormatError, match="not a saved router directory"):
        RoutingPipeline.load(tmp_path, onnx_embedder)
    (tmp_path / "router.json").write_text("not json {")
    with pytest.raises(RouterFormatError, match="not a saved router directory"):
        RoutingPipeline.load(tmp_path, onnx_embedder)
    (tmp_path / "router.json").write_text('{"format": 99}')
    with pytest.raises(RouterFormatError, match="unsupported format 99"):
        RoutingPipeline.load(tmp_path, onnx_embedder)


def test_a_router_whose_quality_part_is_missing_fails_clearly(
    pipe: RoutingPipeline, onnx_embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    pipe.save(tmp_path)
    for part in (tmp_path / "quality").iterdir():
        part.unlink()
    with pytest.raises(RouterFormatError, match="not a saved router"):
        RoutingPipeline.load(tmp_path, onnx_embedder)


@pytest.mark.parametrize(
    "manifest",
    ['{"format": 1}', "[]", '{"format": 1, "embedder": "all-MiniLM-L6-v2/onnx-int8-pc"}'],
)
def test_an_incomplete_manifest_is_a_format_error(
    manifest: str, tmp_path: Path, onnx_embedder: OnnxEmbedder
) -> None:
    (tmp_path / "router.json").write_text(manifest)
    with pytest.raises(RouterFormatError):
        RoutingPipeline.load(tmp_path, onnx_embedder)


def test_routerbench_costs_come_from_the_data(
    pipe: RoutingPipeline, train_data: RoutingDataset
) -> None:
    assert train_data.cost is not None
    assert pipe.cost.source_ == ["data"] * 11
    pred = pipe.predict(train_data).cost
    actual = train_data.cost
    # the least-squares line goes through the mean: same mean cost per model
    np.testing.assert_allclose(pred.mean(axis=0), actual.mean(axis=0), rtol=1e-6)
    models = train_data.models
    assert models[int(pred.mean(axis=0).argmax())] == EXPENSIVE
    assert models[int(pred.mean(axis=0).argmin())] == CHEAP
    # per-model mean costs span two orders of magnitude, as in the data
    assert pred.mean(axis=0).max() > 20 * pred.mean(axis=0).min()


def test_without_data_costs_prices_give_the_cost(
    train_data: RoutingDataset, onnx_embedder: OnnxEmbedder, cache: Path
) -> None:
    models = [CHEAP, EXPENSIVE]
    data = replace(train_data.select_models(models), cost=None, output_tokens=None)
    prices = {CHEAP: (0.2, 0.2), EXPENSIVE: (10.0, 30.0)}
    pipeline = RoutingPipeline(
        make_router("best-single"), onnx_embedder, prices=prices, cache=cache
    )
    pipeline.fit(data)
    assert pipeline.cost.source_ == ["prices", "prices"]
    prompt = "x" * 400  # 100 prompt tokens, 256 default output tokens
    expected = [(100 * p_in + 256 * p_out) / 1e6 for p_in, p_out in prices.values()]
    np.testing.assert_allclose(pipeline.cost.predict([prompt])[0], expected)


def test_an_untrained_pipeline_refuses_to_work(onnx_embedder: OnnxEmbedder, tmp_path: Path) -> None:
    pipeline = RoutingPipeline(make_router("knn"), onnx_embedder, cache=tmp_path)
    with pytest.raises(NotFittedError, match="not trained"):
        _ = pipeline.models
    with pytest.raises(NotFittedError):
        pipeline.decide(["hello"])
    with pytest.raises(NotFittedError):
        pipeline.save(tmp_path / "out")


def test_clone_is_untrained_with_the_same_setup(pipe: RoutingPipeline) -> None:
    twin = pipe.clone()
    assert twin.router.get_params() == pipe.router.get_params()
    assert not twin.router.fitted
    assert twin.embedder is pipe.embedder and twin.cache == pipe.cache
    with pytest.raises(NotFittedError):
        _ = twin.models


def test_manifest_is_plain_json(pipe: RoutingPipeline, tmp_path: Path) -> None:
    pipe.save(tmp_path)
    manifest = json.loads((tmp_path / "router.json").read_text())
    assert manifest["format"] == 1
    assert manifest["cost_weight"] == 0.0


def test_warm_makes_the_knn_session_before_any_request(
    pipe: RoutingPipeline, onnx_embedder: OnnxEmbedder, tmp_path: Path
) -> None:
    pipe.save(tmp_path / "router")
    loaded = RoutingPipeline.load(tmp_path / "router", onnx_embedder)
    assert getattr(loaded.router, "_cosines", None) is None  # made on first use ...
    loaded.warm()
    assert loaded.router._cosines._session is not None  # type: ignore[attr-defined]  # ... or now
