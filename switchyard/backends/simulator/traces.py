"""The W3C trace context the simulator received: the last requests' ``traceparent`` (and
``tracestate``), served at ``GET /sim/traces`` so a test can check that a gateway
propagates its traces to the engine (vLLM continues a received ``traceparent`` in its own
OpenTelemetry spans; the simulator only remembers it)."""

from __future__ import annotations

from collections import deque

import orjson

from switchyard.backends.simulator.asgi import Scope

KEEP = 256


class ReceivedTraces:
    """The trace context headers of the last ``keep`` POST requests that carried one."""

    def __init__(self, keep: int = KEEP) -> None:
        self._seen: deque[dict[str, str]] = deque(maxlen=keep)

    def note(self, scope: Scope) -> None:
        seen = None
        for name, value in scope["headers"]:
            if name == b"traceparent" or name == b"tracestate":
                if seen is None:
                    seen = {"path": scope["path"]}
                seen[name.decode()] = value.decode("latin-1")
        if seen is not None:
            self._seen.append(seen)

    def body(self) -> bytes:
        """``{"received": [{"path", "traceparent", "tracestate"?}, ...]}``, oldest first."""
        return orjson.dumps({"received": list(self._seen)})
