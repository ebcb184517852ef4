"""RoutingDataset's row/column selection and concatenating datasets with different models."""

from __future__ import annotations

import numpy as np
import pytest

from switchyard.routers.datasets import RoutingDataset, concat


def _ds(
    models: list[str],
    quality: list[list[float]],
    *,
    tasks: list[str] | None = None,
    cost: list[list[float]] | None = None,
    groups: list[str] | None = None,
    splits: list[str] | None = None,
    name: str = "",
    meta: dict[str, object] | None = None,
) -> RoutingDataset:
    n = len(quality)
    return RoutingDataset(
        prompts=[f"{name}{i}" for i in range(n)],
        models=models,
        quality=np.array(quality, dtype=np.float64).reshape(n, len(models)),
        tasks=tasks or ["t"] * n,
        cost=None if cost is None else np.array(cost, dtype=np.float64),
        groups=groups,
        splits=splits,
        name=name,
        meta=meta or {},
    )


@pytest.fixture
def three_rows() -> RoutingDataset:
    return _ds(
        ["a", "b"],
        [[1, 0], [0, 1], [1, 1]],
        tasks=["x", "y", "x"],
        cost=[[1, 2], [3, 4], [5, 6]],
        groups=["g1", "g2", "g3"],
        splits=["train", "test", "test"],
        name="toy",
        meta={"k": 1},
    )


def test_subset_by_indices_keeps_their_order(three_rows: RoutingDataset) -> None:
    sub = three_rows.subset([2, 0])
    assert sub.prompts == ["toy2", "toy0"]
    assert sub.tasks == ["x", "x"]
    assert sub.groups == ["g3", "g1"]
    assert sub.splits == ["test", "train"]
    assert sub.cost is not None and sub.cost.tolist() == [[5, 6], [1, 2]]
    assert sub.name == "toy" and sub.meta == {"k": 1}
    assert sub.meta is not three_rows.meta


def test_subset_by_mask_and_by_nothing(three_rows: RoutingDataset) -> None:
    assert three_rows.subset(np.array([False, True, False])).prompts == ["toy1"]
    empty = three_rows.subset([])
    assert len(empty) == 0 and empty.quality.shape == (0, 2)


def test_where_filters_by_task_and_split(three_rows: RoutingDataset) -> None:
    assert three_rows.where(tasks=["x"]).prompts == ["toy0", "toy2"]
    assert three_rows.where(split="test").prompts == ["toy1", "toy2"]
    assert three_rows.where(tasks=["x"], split="test").prompts == ["toy2"]
    assert len(three_rows.where(tasks=[])) == 0
    assert len(three_rows.where()) == 3


def test_where_split_on_a_dataset_without_splits_matches_the_empty_split() -> None:
    ds = _ds(["a"], [[1], [0]])
    assert len(ds.where(split="")) == 2
    assert len(ds.where(split="test")) == 0


def test_select_models_reorders_columns_and_rejects_unknown(three_rows: RoutingDataset) -> None:
    sel = three_rows.select_models(["b", "a"])
    assert sel.models == ["b", "a"]
    assert sel.quality.tolist() == [[0, 1], [1, 0], [1, 1]]
    assert sel.cost is not None and sel.cost[:, 0].tolist() == [2, 4, 6]
    with pytest.raises(KeyError, match="zzz"):
        three_rows.select_models(["a", "zzz"])


def test_concat_unions_models_and_fills_nan(three_rows: RoutingDataset) -> None:
    other = _ds(["c", "a"], [[0.5, 0.25]], tasks=["z"], name="other", meta={"k": 2})
    both = concat([three_rows, other])
    assert both.models == ["a", "b", "c"]
    np.testing.assert_array_equal(both.quality[3], [0.25, np.nan, 0.5])
    assert np.isnan(both.quality[:3, 2]).all()
    assert both.cost is not None
    assert np.isnan(both.cost[3]).all() and both.cost[0].tolist()[:2] == [1, 2]
    assert both.tasks == ["x", "y", "x", "z"]
    assert both.groups == ["g1", "g2", "g3", "z"]  # the task where a part has no groups
    assert both.splits == ["train", "test", "test", ""]
    assert both.name == "toy+other"
    assert both.meta == {"k": 2}


def test_concat_merges_dict_and_list_meta() -> None:
    first = _ds(["a"], [[1]], meta={"score_kind": {"x": "raw"}, "sources": ["f1"]})
    second = _ds(["a"], [[0]], meta={"score_kind": {"y": "probability"}, "sources": ["f2"]})
    merged = concat([first, second], name="n")
    assert merged.meta == {"score_kind": {"x": "raw", "y": "probability"}, "sources": ["f1", "f2"]}
    assert first.meta["sources"] == ["f1"]  # the parts are not modified
    assert merged.name == "n"


def test_concat_keeps_optional_fields_absent_when_no_part_has_them() -> None:
    merged = concat([_ds(["a"], [[1]]), _ds(["b"], [[0]])])
    assert merged.cost is None and merged.output_tokens is None
    assert merged.groups is None and merged.splits is None
    with pytest.raises(ValueError, match="at least one"):
        concat([])


def test_dataset_validates_shapes() -> None:
    with pytest.raises(ValueError, match="expected"):
        RoutingDataset(prompts=["p"], models=["a"], quality=np.zeros((2, 1)), tasks=["t"])
    with pytest.raises(ValueError, match="unique"):
        RoutingDataset(prompts=["p"], models=["a", "a"], quality=np.zeros((1, 2)), tasks=["t"])
