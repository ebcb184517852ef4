"""A batch of queries against a fixed training matrix: the product behind the kNN routers.

For the gateway's batches (2–256 prompts against 2,225 training prompts of 256 dimensions)
OpenBLAS's sgemm spends most of its time packing the 2.3 MB training matrix again on every
call: 8 queries took ~33 µs each, about as much as one matrix-vector product per query.
ONNX Runtime's MatMul packs a constant weight once, when the session is made, and then
takes ~16 µs a query for 8 and ~50 µs for 2 (against ~105 µs). One query stays on BLAS's
matrix-vector product, which is faster than ONNX Runtime's call for a single row; batches
above ``MAX_ROWS`` (offline evaluation) stay on BLAS, which may use every core.

The one-node graph is written here as ONNX protobuf bytes (the ``onnx`` package is only in
the train extra); ``tests/routers/models/test_cosines.py`` checks it against ``onnx``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import numpy.typing as npt

MIN_ROWS = 2  # fewer rows: BLAS's matrix-vector product
MAX_ROWS = 256  # more rows: BLAS, which may use every core (offline evaluation)
_FLOAT = 1  # TensorProto.FLOAT
_OPSET = 13
_IR_VERSION = 7


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _bytes_field(number: int, payload: bytes | str) -> bytes:
    data = payload.encode() if isinstance(payload, str) else payload
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _value_info(name: str, dims: tuple[int | str, ...]) -> bytes:
    """ValueInfoProto: a float tensor whose dimensions are sizes or symbolic names."""
    shape = b"".join(
        _bytes_field(1, _bytes_field(2, d) if isinstance(d, str) else _int_field(1, d))
        for d in dims
    )
    tensor_type = _int_field(1, _FLOAT) + _bytes_field(2, shape)
    return _bytes_field(1, name) + _bytes_field(2, _bytes_field(1, tensor_type))


def matmul_model(weight: npt.NDArray[np.float32]) -> bytes:
    """A serialised ONNX model computing ``q @ weight`` for ``q`` of shape (rows, dim)."""
    dim, cols = weight.shape
    node = _bytes_field(1, "q") + _bytes_field(1, "w") + _bytes_field(2, "s")
    node += _bytes_field(4, "MatMul")
    tensor = _int_field(1, dim) + _int_field(1, cols) + _int_field(2, _FLOAT)
    tensor += _bytes_field(8, "w") + _bytes_field(9, np.ascontiguousarray(weight, "<f4").tobytes())
    graph = _bytes_field(1, node) + _bytes_field(2, "cosines") + _bytes_field(5, tensor)
    graph += _bytes_field(11, _value_info("q", ("rows", dim)))
    graph += _bytes_field(12, _value_info("s", ("rows", cols)))
    opset = _bytes_field(1, "") + _int_field(2, _OPSET)
    return _int_field(1, _IR_VERSION) + _bytes_field(7, graph) + _bytes_field(8, opset)


class Cosines:
    """``queries @ train_t`` for float32 queries of unit rows; the session is made on the
    first batch that needs it (a router that never sees one never makes it)."""

    def __init__(self, train_t: npt.NDArray[np.float32]) -> None:
        self._train_t = train_t
        self._session: Any = None
        self._lock = threading.Lock()

    def __call__(self, queries: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if not MIN_ROWS <= queries.shape[0] <= MAX_ROWS:
            return np.asarray(queries @ self._train_t)
        session = self._session or self._open()
        rows = np.ascontiguousarray(queries, dtype=np.float32)
        sims: npt.NDArray[np.float32] = session.run(None, {"q": rows})[0]
        return sims

    def _open(self) -> Any:
        import onnxruntime as ort

        with self._lock:  # a router may be called from the loop and a worker thread
            if self._session is None:
                options = ort.SessionOptions()
                options.intra_op_num_threads = 1  # on the caller's thread, as BLAS is
                options.inter_op_num_threads = 1
                options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                model = matmul_model(self._train_t)
                self._session = ort.InferenceSession(model, options, ["CPUExecutionProvider"])
            return self._session
