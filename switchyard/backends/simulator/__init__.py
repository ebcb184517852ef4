"""A vLLM-compatible server simulator: OpenAI API, continuous batching, vLLM metrics, faults.

Used by the demo, the tests and the benchmarks in place of a GPU running vLLM::

    config = build_config("llama-3-8b", preset="fast", seed=1, error_rate=0.05)
    app = create_simulator_app(config)   # an ASGI app; app.faults can change at run time
    serve(config, port=8001)             # or run it under uvicorn directly

Modules: ``config`` (PerfModel, presets, Faults, SimulatorConfig), ``engine`` (the batching
scheduler), ``prefix_cache`` (vLLM's automatic prefix caching), ``lora`` (LoRA adapters: slots,
runtime load/unload, ``vllm:lora_requests_info``), ``text`` (deterministic
output, token counting), ``tools`` (forced tool calls), ``protocol`` (request validation),
``responses`` (response bodies), ``generation`` (the completion endpoints), ``embeddings``,
``metrics`` (vLLM's Prometheus names), ``app`` (the ASGI app), ``server`` (uvicorn).
"""

from switchyard.backends.simulator.app import SimulatorApp, create_simulator_app
from switchyard.backends.simulator.config import (
    PRESETS,
    Faults,
    PerfModel,
    SimulatorConfig,
    build_config,
    perf_preset,
)
from switchyard.backends.simulator.engine import Engine
from switchyard.backends.simulator.server import serve

__all__ = [
    "PRESETS",
    "Engine",
    "Faults",
    "PerfModel",
    "SimulatorApp",
    "SimulatorConfig",
    "build_config",
    "create_simulator_app",
    "perf_preset",
    "serve",
]
