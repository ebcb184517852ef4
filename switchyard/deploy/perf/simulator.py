"""A serving configuration as the simulator's ``PerfModel``, so simulated servers run at the
speed the performance model predicts for that model on that hardware.

The simulator's engine is linear: a step costs ``decode_base_s + decode_s_per_seq * running``
and a prompt ``prefill_s_per_token`` per token. The roofline is not linear (MoE steps read
more experts as the batch grows), so the line is fitted through two points of it: one
sequence, and half of ``max_num_seqs``, at the typical context of the planned traffic.
"""

from __future__ import annotations

from switchyard.backends.simulator.config import PerfModel
from switchyard.deploy.perf.memory import memory_plan
from switchyard.deploy.perf.roofline import decode_step_time, prefill_time
from switchyard.deploy.perf.specs import ServingConfig


def to_perf_model(
    cfg: ServingConfig, input_tokens: int = 1024, output_tokens: int = 256, servers: int = 1
) -> PerfModel:
    """The ``PerfModel`` of ``servers`` identical servers of ``cfg`` behind one simulator
    (all data-parallel ranks of all servers as one engine)."""
    context = input_tokens + output_tokens / 2
    base = decode_step_time(cfg, 1, context)
    ref = max(2, cfg.max_num_seqs // 2)
    per_seq = max(0.0, (decode_step_time(cfg, ref, context) - base) / (ref - 1))
    mem = memory_plan(cfg)
    # The simulator runs one engine; the engines it stands for step in parallel, so each
    # sequence costs a step 1/engines of what it costs one engine, and prompts likewise.
    engines = cfg.dp * max(servers, 1)
    return PerfModel(
        prefill_s_per_token=prefill_time(cfg, input_tokens) / max(input_tokens, 1) / engines,
        decode_base_s=base,
        decode_s_per_seq=per_seq / engines,
        max_num_seqs=cfg.max_num_seqs * engines,
        max_model_len=cfg.max_model_len,
        kv_cache_tokens=max(1, mem.kv_tokens * engines),
    )
