"""The kNN routers' product, queries x training prompts, by batch size: BLAS (numpy) against
ONNX Runtime's MatMul with the training matrix packed once (``switchyard.routers.models.
cosines``), on one thread, the shipped default router's matrix (256 x 2,225, float32).

Why: the gateway decides in micro-batches of a few prompts, and OpenBLAS's sgemm packs the
2.3 MB matrix again on every call; ONNX Runtime packs a constant weight when the session is
made. ``Cosines`` uses ONNX Runtime for MIN_ROWS..MAX_ROWS rows; this bench is where those
thresholds come from. Both give the same float32 product (checked each batch size).

    OPENBLAS_NUM_THREADS=1 taskset -c 0 .venv/bin/python bench/knn_product_bench.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

OUT = Path(__file__).resolve().parent / "results" / "knn_product_bench.json"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--sizes", default="1,2,3,4,6,8,11,16,32,64", help="batch sizes (rows)")
    p.add_argument("--calls", type=int, default=400, help="calls per timing block")
    p.add_argument("--blocks", type=int, default=7, help="alternating blocks per size")
    p.add_argument("--out", type=Path, default=OUT)
    return p.parse_args()


def per_row_us(fn: Callable[[], Any], calls: int, rows: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - started) / calls / rows * 1e6


def measure(
    product: Any, train_t: np.ndarray, rows: int, args: argparse.Namespace
) -> dict[str, Any]:
    """Median µs per row of both products for a batch of ``rows`` unit queries."""
    queries = np.random.default_rng(rows).normal(size=(rows, train_t.shape[0]))
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    session = product._session

    def blas() -> Any:
        return queries @ train_t

    def ort() -> Any:
        return session.run(None, {"q": queries})[0]

    times: dict[str, list[float]] = {"blas": [], "onnxruntime": []}
    for _ in range(args.blocks):  # alternate, so that drift hits both
        times["blas"].append(per_row_us(blas, args.calls, rows))
        times["onnxruntime"].append(per_row_us(ort, args.calls, rows))
    row: dict[str, Any] = {"rows": rows, "bit_identical": bool(np.array_equal(blas(), ort()))}
    row |= {f"{k}_us_per_row": round(statistics.median(v), 2) for k, v in times.items()}
    return row


def main() -> None:
    args = parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from switchyard.resources import default_router
    from switchyard.routers.models.base import QualityRouter
    from switchyard.routers.models.cosines import Cosines

    router: Any = QualityRouter.load(default_router() / "quality")
    train_t = np.ascontiguousarray(router.X_train_.T, dtype=np.float32)
    product = Cosines(train_t)
    product._open()
    rows_out = []
    for rows in (int(s) for s in args.sizes.split(",")):
        row = measure(product, train_t, rows, args)
        rows_out.append(row)
        blas, ort = row["blas_us_per_row"], row["onnxruntime_us_per_row"]
        same = row["bit_identical"]
        print(f"{rows:4d} rows: BLAS {blas:7.2f} µs/row, ONNX Runtime {ort:7.2f} µs/row, "
              f"identical: {same}", flush=True)  # fmt: skip
    result = {
        "matrix": list(train_t.shape),
        "calls": args.calls,
        "blocks": args.blocks,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "rows": rows_out,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
