"""Serving a routed request loads the decision rule and the pipeline, never the evaluation
protocols (``Prediction`` lives in ``switchyard.routers.prediction`` for that reason)."""

from __future__ import annotations

import json
import subprocess
import sys

# What RouterService.start and a decision import (the learner only with a bandit configured).
SERVING = (
    "switchyard.gateway.app",
    "switchyard.gateway.routing",
    "switchyard.gateway.online.learner",
    "switchyard.routers.pipeline",
    "switchyard.routers.policy",
)


def test_the_routed_request_path_does_not_import_the_evaluation_package() -> None:
    script = (
        "import importlib, json, sys\n"
        f"for name in {SERVING!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    loaded = json.loads(out.stdout)
    assert "switchyard.routers.prediction" in loaded
    assert not [m for m in loaded if m.startswith("switchyard.routers.evaluation")]
