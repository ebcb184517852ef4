"""The highest request rate one server sustains for a request size under latency targets.

Steady state of a continuous-batching engine with chunked prefill, for requests of ``I``
prompt and ``O`` output tokens and ``B`` sequences decoding at once: each second the engine
prefills ``lam`` prompts (``lam * t_prefill`` of its time) and spends the rest on decode
steps that each give all ``B`` sequences one token, so

    lam  = B / (O * t_step + B * t_prefill)
    TPOT = t_step + B * t_prefill / O          (prefill chunks stretch every step)
    TTFT = t_prefill + rho * t_prefill / (2 (1 - rho)) + t_step    (M/D/1 wait, rho = lam t_p)

All three grow with ``B``, so the largest ``B`` meeting both targets (and fitting the KV
cache and ``max_num_seqs``) gives the capacity; it never rises when a target tightens.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchyard.deploy.perf.memory import MemoryPlan, memory_plan
from switchyard.deploy.perf.roofline import decode_step_time, prefill_time
from switchyard.deploy.perf.specs import ServingConfig


@dataclass(frozen=True, slots=True)
class LatencyTargets:
    """Targets a plan must meet: time to first token and time per output token, seconds."""

    ttft_s: float
    tpot_s: float

    def __post_init__(self) -> None:
        if not (self.ttft_s > 0 and self.tpot_s > 0):
            raise ValueError(f"latency targets must be > 0, got {self}")


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """One server at batch ``batch`` for one request size: its rate and latencies."""

    rate: float  # requests per second, the whole server (all data-parallel ranks)
    batch: int  # running sequences per data-parallel rank
    ttft_s: float
    tpot_s: float

    @classmethod
    def none(cls) -> OperatingPoint:
        return cls(0.0, 0, float("inf"), float("inf"))


def operating_point(
    cfg: ServingConfig, input_tokens: int, output_tokens: int, batch: int
) -> OperatingPoint:
    """Rate and latencies of one server running ``batch`` sequences of this size per rank."""
    out = max(output_tokens, 1)
    step = decode_step_time(cfg, batch, input_tokens + out / 2)
    prefill = prefill_time(cfg, input_tokens)
    lam = batch / (out * step + batch * prefill)
    tpot = step + batch * prefill / out
    rho = lam * prefill
    ttft = prefill + rho * prefill / (2.0 * (1.0 - rho)) + step
    return OperatingPoint(lam * cfg.dp, batch, ttft, tpot)


def max_batch(cfg: ServingConfig, mem: MemoryPlan, input_tokens: int, output_tokens: int) -> int:
    """Sequences of this size one rank can hold: KV blocks and ``max_num_seqs`` bound it."""
    length = input_tokens + max(output_tokens, 1)
    if length > cfg.max_model_len or not mem.feasible:
        return 0
    return min(cfg.max_num_seqs, mem.kv_tokens // length)


def max_rate(
    cfg: ServingConfig,
    input_tokens: int,
    output_tokens: int,
    targets: LatencyTargets,
    mem: MemoryPlan | None = None,
) -> OperatingPoint:
    """The highest-rate operating point meeting ``targets`` (rate 0 when none does)."""
    mem = mem or memory_plan(cfg)
    hi = max_batch(cfg, mem, input_tokens, output_tokens)

    def meets(batch: int) -> OperatingPoint | None:
        point = operating_point(cfg, input_tokens, output_tokens, batch)
        ok = point.ttft_s <= targets.ttft_s and point.tpot_s <= targets.tpot_s
        return point if ok else None

    best = meets(1) if hi >= 1 else None
    if best is None:
        return OperatingPoint.none()
    lo = 1
    while lo < hi:  # invariant: lo meets the targets; find the largest batch that does
        mid = (lo + hi + 1) // 2
        point = meets(mid)
        if point is None:
            hi = mid - 1
        else:
            lo, best = mid, point
    return best


def point_at_rate(
    cfg: ServingConfig,
    input_tokens: int,
    output_tokens: int,
    rate: float,
    mem: MemoryPlan | None = None,
) -> OperatingPoint:
    """Where one server settles when offered ``rate`` req/s of this size: the smallest batch
    whose steady-state rate reaches it (the latency a plan expects at its planned load).
    Past the largest batch the server cannot keep up; that batch's point is returned."""
    mem = mem or memory_plan(cfg)
    hi = max_batch(cfg, mem, input_tokens, output_tokens)
    if hi < 1:
        return OperatingPoint.none()
    lo = 1
    while lo < hi:  # invariant: the answer lies in [lo, hi]
        mid = (lo + hi) // 2
        if operating_point(cfg, input_tokens, output_tokens, mid).rate >= rate:
            hi = mid
        else:
            lo = mid + 1
    return operating_point(cfg, input_tokens, output_tokens, lo)
