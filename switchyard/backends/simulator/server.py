"""Running a simulator as a process: ``serve`` (uvicorn) and ``build_config`` (CLI flags).

``switchyard simulate`` calls ``build_config`` with its flags and hands the result to
``serve``; nothing here runs at import time.
"""

from __future__ import annotations

import uvicorn

from switchyard.backends.simulator.app import create_simulator_app
from switchyard.backends.simulator.config import SimulatorConfig, build_config

__all__ = ["build_config", "serve"]


def serve(
    config: SimulatorConfig, host: str = "127.0.0.1", port: int = 8001, log_level: str = "warning"
) -> None:
    """Serve one simulated vLLM server until interrupted (uvloop + httptools, no access log)."""
    uvicorn.run(
        create_simulator_app(config),
        host=host,
        port=port,
        log_level=log_level,
        loop="uvloop",
        http="httptools",
        access_log=False,
        lifespan="off",
    )
