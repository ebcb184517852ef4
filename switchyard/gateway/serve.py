"""Running the gateway under uvicorn (uvloop + httptools), one or several worker processes."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import uvicorn

from switchyard.gateway.app import CONFIG_ENV, create_app
from switchyard.gateway.connections import protocol
from switchyard.gateway.logs import configure_logging
from switchyard.gateway.settings import ServerConfig, Settings


def uvicorn_options(server: ServerConfig) -> dict[str, Any]:
    """How the gateway runs under uvicorn (the benchmarks reuse it as is)."""
    return {
        "host": server.host,
        "port": server.port,
        "loop": "uvloop",
        "http": protocol(server),  # httptools, with head timeouts and a connection cap
        "timeout_keep_alive": server.keep_alive_s,
        "log_level": server.log_level,
        "access_log": server.access_log,
        "backlog": 2048,
        "timeout_graceful_shutdown": 5,
        # No "server: uvicorn" on every response: it names the software to whoever asks,
        # and uvicorn checks each header of every response against two regexes.
        "server_header": False,
    }


# numpy's BLAS starts a thread per core, which spins after each product; a routing decision
# multiplies a few prompts by a few thousand training rows on the event loop, where those
# threads only take the CPU from it (and every worker process would start its own set).
BLAS_THREADS = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread() -> None:
    """BLAS on one thread in this process and its workers, unless the environment sets it
    (numpy reads these variables when it is first imported, which has not happened yet)."""
    for name in BLAS_THREADS:
        os.environ.setdefault(name, "1")


def run_gateway(settings: Settings, config_path: Path | None = None) -> None:
    """Serve until interrupted. Several workers need the config as a file to re-read."""
    server = settings.server
    one_blas_thread()
    configure_logging(server.log_level)
    logging.getLogger("switchyard.gateway").info(
        "Switchyard on http://%s:%d with %d worker(s), models: %s",
        server.host,
        server.port,
        server.workers,
        ", ".join(m.name for m in settings.models),
    )
    common = uvicorn_options(server)
    if server.workers == 1:
        app = create_app(settings, config_path=config_path)
        uvicorn.run(app, **common)
        return
    if config_path is None:
        raise ValueError("several workers need the configuration as a file")
    os.environ[CONFIG_ENV] = str(config_path.resolve())
    uvicorn.run(
        "switchyard.gateway.app:app_from_env",
        factory=True,
        workers=server.workers,
        **common,
    )
