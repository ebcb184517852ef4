"""The performance model of a vLLM server: memory sizing, roofline step times, capacity.

Owned by the placement planner (``deploy``; ``backends`` never imports it). Its
``simulator`` module turns a planned configuration into the simulator's ``PerfModel``, so a
simulated fleet runs at the speed the plan assumed::

    cfg = ServingConfig(model, gpu, tp=2, kv_dtype="fp8", max_model_len=8192)
    memory_plan(cfg).feasible            # vLLM would start, and hold one full sequence
    max_rate(cfg, 1024, 256, LatencyTargets(ttft_s=1.0, tpot_s=0.05)).rate   # req/s

Modules: ``specs`` (GPU, model, configuration), ``memory`` (vLLM's KV sizing), ``roofline``
(step times, MoE expert touching, TP/EP communication), ``capacity`` (rate under latency
targets), ``calibrate`` (efficiency fit on Vidur's measurements), ``simulator`` (to the
simulator's ``PerfModel``).
"""

from switchyard.deploy.perf.capacity import LatencyTargets, OperatingPoint, max_rate
from switchyard.deploy.perf.memory import MemoryPlan, memory_plan
from switchyard.deploy.perf.specs import Efficiency, GpuSpec, ModelSpec, ServingConfig

__all__ = [
    "Efficiency",
    "GpuSpec",
    "LatencyTargets",
    "MemoryPlan",
    "ModelSpec",
    "OperatingPoint",
    "ServingConfig",
    "max_rate",
    "memory_plan",
]
