"""The kNN routers' product: the hand-written ONNX graph and the batch sizes it serves."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from switchyard.routers.models import cosines
from switchyard.routers.models.cosines import Cosines, matmul_model


def _weight(dim: int = 16, cols: int = 37) -> np.ndarray:
    return np.random.default_rng(3).normal(size=(dim, cols)).astype(np.float32)


def test_the_hand_written_graph_is_a_valid_onnx_matmul_with_its_weight() -> None:
    weight = _weight()
    model = onnx.load_from_string(matmul_model(weight))
    onnx.checker.check_model(model, full_check=True)
    (node,) = model.graph.node
    assert (node.op_type, list(node.input), list(node.output)) == ("MatMul", ["q", "w"], ["s"])
    (init,) = model.graph.initializer
    np.testing.assert_array_equal(numpy_helper.to_array(init), weight)
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*model.graph.input, *model.graph.output)]  # fmt: skip
    assert dims == [["rows", 16], ["rows", 37]]


@pytest.mark.parametrize("rows", [1, 2, 9, cosines.MAX_ROWS, cosines.MAX_ROWS + 1])
def test_every_batch_size_gets_the_product(rows: int) -> None:
    weight = _weight()
    queries = np.random.default_rng(rows).normal(size=(rows, 16)).astype(np.float32)
    product = Cosines(weight)
    sims = product(queries)
    assert sims.shape == (rows, 37) and sims.dtype == np.float32
    np.testing.assert_allclose(sims, queries.astype(np.float64) @ weight, rtol=1e-5, atol=1e-5)
    opened = cosines.MIN_ROWS <= rows <= cosines.MAX_ROWS
    assert (product._session is not None) == opened  # one row and huge batches stay on BLAS


def test_a_strided_batch_is_multiplied_as_its_rows() -> None:
    weight = _weight()
    queries = np.random.default_rng(5).normal(size=(6, 32)).astype(np.float32)[:, ::2]
    np.testing.assert_allclose(Cosines(weight)(queries), queries @ weight, rtol=1e-5, atol=1e-5)
