"""Fit a GPU's roofline efficiencies on Vidur's measured GEMM timings, and report the error.

Vidur (github.com/microsoft/vidur) profiles the four projection GEMMs of a transformer layer
(QKV, attention output, MLP up/gate, MLP down) over token counts 1..4096 and tensor-parallel
degrees 1..8, one CSV per GPU and model (``<gpu>_<model>_mlp.csv``, times in milliseconds).
The fit chooses ``Efficiency(compute, memory, kernel_overhead_s, sharpness)`` minimising the robust
log error of :func:`switchyard.deploy.perf.roofline.gemm_time` over every row of every model of a
GPU.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from switchyard.deploy.perf.roofline import gemm_time
from switchyard.deploy.perf.specs import Efficiency, GpuSpec

# Vidur's file prefix -> the catalogue's GPU name (Vidur profiled the 80 GB SXM parts).
VIDUR_GPUS = {"a100": "A100-80GB", "h100": "H100-80GB", "a40": "A40"}
_OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")


@dataclass(frozen=True, slots=True)
class Gemm:
    """One measured GEMM: ``tokens x k`` times ``k x n``, bf16, with its median time."""

    op: str
    tokens: int
    k: int
    n: int
    seconds: float

    @property
    def flops(self) -> float:
        return 2.0 * self.tokens * self.k * self.n

    @property
    def nbytes(self) -> float:
        return 2.0 * (self.k * self.n + self.tokens * self.k + self.tokens * self.n)


def _shapes(row: dict[str, str]) -> dict[str, tuple[int, int]]:
    d, heads = int(row["n_embd"]), int(row["n_head"])
    kv, f = int(row["n_kv_head"]), int(row["n_expanded_embd"])
    tp = int(row["num_tensor_parallel_workers"])
    hd = d // heads
    up = 2 * f if row["use_gated_mlp"] == "True" else f
    return {
        "attn_pre_proj": (d, (heads + 2 * kv) * hd // tp),
        "attn_post_proj": (heads * hd // tp, d),
        "mlp_up_proj": (d, up // tp),
        "mlp_down_proj": (f // tp, d),
    }


def read_vidur_csv(path: Path) -> list[Gemm]:
    """Every GEMM of one Vidur MLP profile (median times, converted to seconds)."""
    gemms: list[Gemm] = []
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            tokens = int(row["num_tokens"])
            for op, (k, n) in _shapes(row).items():
                ms = float(row[f"time_stats.{op}.median"])
                gemms.append(Gemm(op, tokens, k, n, ms / 1000.0))
    return gemms


def vidur_files(vidur_dir: Path) -> dict[str, list[Path]]:
    """{catalogue GPU name: its profile files} for the GPUs Vidur measured."""
    found: dict[str, list[Path]] = {}
    for path in sorted(vidur_dir.glob("*_mlp.csv")):
        prefix = path.name.split("_", 1)[0]
        if prefix in VIDUR_GPUS:
            found.setdefault(VIDUR_GPUS[prefix], []).append(path)
    return found


@dataclass(frozen=True, slots=True)
class FitReport:
    """A GPU's fitted efficiency and the relative error of the fit over all measurements."""

    gpu: str
    efficiency: Efficiency
    points: int
    median_error: float
    p90_error: float  # where the worst decile starts
    worst_decile_error: float  # mean error within the worst decile
    max_error: float


def relative_errors(gpu: GpuSpec, gemms: Iterable[Gemm]) -> np.ndarray:
    """|predicted - measured| / measured for each GEMM under ``gpu.efficiency``."""
    return np.array([abs(gemm_time(g.flops, g.nbytes, gpu) - g.seconds) / g.seconds for g in gemms])


def _predict(params: np.ndarray, gpu: GpuSpec, flops: np.ndarray, nbytes: np.ndarray) -> np.ndarray:
    compute = flops / (params[0] * gpu.bf16_tflops * 1e12)
    memory = nbytes / (params[1] * gpu.hbm_gbs * 1e9)
    p = params[3]
    return np.asarray((compute**p + memory**p) ** (1.0 / p) + params[2] * 1e-6)


def fit_efficiency(gpu: GpuSpec, gemms: list[Gemm]) -> FitReport:
    """Least squares on log(predicted / measured), soft-L1 so a few outliers do not steer."""
    from scipy.optimize import least_squares  # offline only: scipy is in the "plan" extra

    flops = np.array([g.flops for g in gemms])
    nbytes = np.array([g.nbytes for g in gemms])
    measured = np.array([g.seconds for g in gemms])

    def residuals(params: np.ndarray) -> np.ndarray:
        return np.asarray(np.log(_predict(params, gpu, flops, nbytes) / measured))

    # Parameters: compute and memory efficiency, kernel overhead (us), smooth-max sharpness.
    lower, upper = [0.05, 0.05, 0.0, 1.0], [1.0, 1.0, 200.0, 20.0]
    fit = least_squares(
        residuals, x0=[0.6, 0.7, 10.0, 3.0], bounds=(lower, upper), loss="soft_l1", f_scale=0.05
    )
    compute, memory, overhead_us, sharpness = (round(float(v), 3) for v in fit.x)
    eff = Efficiency(compute, memory, overhead_us * 1e-6, sharpness)
    errors = relative_errors(replace(gpu, efficiency=eff), gemms)
    p90 = float(np.quantile(errors, 0.9))
    return FitReport(
        gpu.name,
        eff,
        len(gemms),
        float(np.median(errors)),
        p90,
        float(errors[errors >= p90].mean()),
        float(errors.max()),
    )


def calibrate(vidur_dir: Path, gpus: dict[str, GpuSpec]) -> list[FitReport]:
    """Fit every GPU that both Vidur measured and ``gpus`` describes."""
    reports = []
    for name, paths in vidur_files(vidur_dir).items():
        if name in gpus:
            gemms = [g for path in paths for g in read_vidur_csv(path)]
            reports.append(fit_efficiency(gpus[name], gemms))
    return reports
