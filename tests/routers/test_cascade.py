"""The cascade's learned parts: the rule it runs (simulated and per request), the artifact,
and training on RouterBench outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from switchyard.routers.cascade import CascadeFormatError, CascadeModel
from switchyard.routers.cascade.training import StageArrays, frontier, simulate, train_cascade
from switchyard.routers.datasets.outputs import load_outputs
from tests.support.requirements import reference_data

DIM = 4


def model(skip: float = -1.0, accept: float = 0.5, bias: float = 0.0) -> CascadeModel:
    return CascadeModel(["cheap", "strong"], "e", [skip], [accept],
                        np.zeros((1, 3 * DIM)), np.array([bias]))  # fmt: skip


def arrays() -> StageArrays:
    """Three prompts; the cheap stage is right on the first only; costs 1 and 10."""
    quality = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    cost = np.array([[1.0, 10.0]] * 3)
    return StageArrays(np.zeros((3, DIM)), [np.zeros((3, DIM))], quality, cost)


def test_simulate_escalates_only_doubted_answers_and_pays_every_stage_run() -> None:
    pred = np.array([[0.9, 0.9], [0.9, 0.9], [0.1, 0.9]])  # the third looks hard
    verify = np.array([[0.8], [0.2], [0.5]])
    out = simulate(pred, verify, arrays(), skip=[-0.5], accept=[0.5], max_escalations=1)
    assert out.first.tolist() == [0, 0, 1]  # skipped before generation
    assert out.last.tolist() == [0, 1, 1]  # the second's cheap answer was doubted
    assert out.cost.tolist() == [1.0, 11.0, 10.0]
    assert out.quality.tolist() == [1.0, 1.0, 0.0]
    none = simulate(pred, verify, arrays(), skip=[-0.5], accept=[0.5], max_escalations=0)
    assert none.last.tolist() == [0, 0, 1] and none.cost.tolist() == [1.0, 1.0, 10.0]


def test_the_validation_frontier_is_cheapest_first_and_strictly_better() -> None:
    pred = np.array([[0.9, 0.9], [0.6, 0.9], [0.1, 0.9]])
    verify = np.array([[0.8], [0.2], [0.5]])
    points = frontier(pred, verify, arrays(), max_escalations=1)
    costs, qualities = [p[2] for p in points], [p[3] for p in points]
    assert costs == sorted(costs) and qualities == sorted(set(qualities))
    assert qualities[-1] == pytest.approx(2 / 3)  # the most any threshold pair reaches
    assert costs[0] == pytest.approx(1.0)  # all cheap, no escalation


def test_the_start_stage_is_the_first_not_predicted_to_fail_where_the_strongest_succeeds() -> None:
    cascade = model(skip=-0.1)  # skip when the strong stage looks 0.1 better or more
    assert cascade.start({"cheap": 0.85, "strong": 0.9}) == "cheap"
    assert cascade.start({"cheap": 0.3, "strong": 0.9}) == "strong"
    assert cascade.start({"cheap": 0.85, "strong": 0.9}, ["strong"]) == "strong"  # not allowed


def test_the_verifier_accepts_by_threshold_and_trusts_the_last_stage() -> None:
    doubtful, sure = model(bias=-3.0), model(bias=3.0)
    v = np.ones(DIM) / 2
    assert doubtful.verify("cheap", v, v) == pytest.approx(1 / (1 + np.exp(3.0)))
    assert not doubtful.accepts("cheap", doubtful.verify("cheap", v, v))
    assert sure.accepts("cheap", sure.verify("cheap", v, v))
    assert doubtful.accepts("strong", 0.0)


def test_a_saved_cascade_loads_the_same_and_a_broken_one_says_why(tmp_path: Path) -> None:
    cascade = model(skip=0.25, accept=0.75, bias=1.5)
    cascade.save(tmp_path / "c")
    loaded = CascadeModel.load(tmp_path / "c")
    assert (loaded.stages, loaded.skip_below, loaded.accept_at) == (
        ["cheap", "strong"], [0.25], [0.75])  # fmt: skip
    assert loaded.bias.tolist() == [1.5] and loaded.dim == DIM
    (tmp_path / "c" / "verifier.npz").unlink()
    with pytest.raises(CascadeFormatError, match="incomplete or corrupt"):
        CascadeModel.load(tmp_path / "c")
    with pytest.raises(CascadeFormatError, match="not a trained cascade"):
        CascadeModel.load(tmp_path / "missing")
    with pytest.raises(CascadeFormatError, match="two distinct stages"):
        CascadeModel(["a"], "e", [], [], np.zeros((0, 3)), np.zeros(0))


@pytest.mark.slow
@pytest.mark.timeout(400)  # exporting the embedder (once a session) and embedding 80 texts
def test_training_on_a_routerbench_slice_gives_a_servable_cascade(
    onnx_embedder: object, tmp_path: Path
) -> None:
    """40 Winogrande training prompts: Mixtral, then GPT-4. The thresholds come from the
    validation frontier and the verifier separates right from wrong cheap answers on the
    rows it was fitted on."""
    outputs = load_outputs([reference_data("routing", "routerbench", "winograde_train.csv")])
    outputs = outputs.subset(np.arange(40))
    stages = ["mistralai/mixtral-8x7b-chat", "gpt-4-1106-preview"]
    trained = train_cascade(outputs, stages, onnx_embedder, cost_weight=20.0, cache=tmp_path)  # type: ignore[arg-type]
    cascade = trained.cascade
    assert cascade.stages == stages and cascade.dim == 384
    assert all(-1e9 <= v <= 1e9 for v in cascade.skip_below + cascade.accept_at)
    assert cascade.metadata["verifier_C"][0] in (0.1, 1.0, 10.0)
    trained.pipeline.save(tmp_path / "art")
    cascade.save(tmp_path / "art")
    assert CascadeModel.load(tmp_path / "art").stages == stages
    assert trained.pipeline.models == stages
