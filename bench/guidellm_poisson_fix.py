"""``guidellm`` with one start-up race fixed; run by the load generator's own Python.

GuideLLM 0.8.1's Poisson profile (``AsyncPoissonStrategy.init_processes_start``) releases
its worker processes (``ThroughputStrategy.init_processes_start`` sets the shared start
event) *before* it moves the shared arrival clock from its initial -1.0 to the start time.
A worker that wakes in between schedules requests at -1.0 + exponential gaps, i.e. in 1970:
they all go out at once, and the workers can keep the clock's lock long enough to take the
whole run's request budget that way. Seen here in 2 of 4 runs on the shared 2-core machine
(43 of 1,217 requests in one; all 122 in a short one), as requests whose
``targeted_start`` is below 0. This sets the clock first and then releases the workers;
nothing else changes. ``bench/outside_loadgen.py --as-released`` runs the unpatched tool.

    /tmp/loadgen-venv/bin/python bench/guidellm_poisson_fix.py run -c scenario.json
"""

from __future__ import annotations

import sys
from typing import Any


def patch() -> None:
    from guidellm.scheduler.strategies import AsyncPoissonStrategy, ThroughputStrategy

    def init_processes_start(self: Any, start_time: float) -> None:
        with self._offset.get_lock():  # the arrival clock first ...
            self._offset.value = start_time
        ThroughputStrategy.init_processes_start(self, start_time)  # ... then the workers

    AsyncPoissonStrategy.init_processes_start = init_processes_start


if __name__ == "__main__":
    patch()
    from guidellm.__main__ import cli

    sys.argv[0] = "guidellm"
    sys.exit(cli())
