"""Helpers shared by the learned-router bench scripts (``router_latency.py``,
``router_train_time.py``, ``embed_bench.py``): real prompts, machine info and load over a
run (load averages and /proc/stat CPU shares), package versions, and writing results.

Imported as ``routerkit`` by scripts run as ``python bench/<script>.py`` (``bench/`` is then
first on ``sys.path``). It imports neither numpy nor onnxruntime, so a script may import it
after setting its thread environment variables.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from switchyard.routers.embedding import PromptTokenizer

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
DATA = Path(os.environ.get("SWITCHYARD_DATA_DIR") or REPO.parent / "shared" / "data")
CPUS = os.cpu_count() or 1


def load_questions(count: int) -> list[str]:
    """Real prompts: MMLU and GSM8K test questions, alternating."""
    folder = DATA / "routing" / "routerdc"
    mmlu = [str(r["question"]) for r in json.loads((folder / "mmlu_test.json").read_text())]
    gsm = [str(r["question"]) for r in json.loads((folder / "gsm8k-test.json").read_text())]
    mixed = [q for pair in zip(mmlu, gsm, strict=False) for q in pair]
    return mixed[:count]


def proc_stat() -> list[int] | None:
    """The aggregate ``cpu`` line of /proc/stat (user nice system idle iowait irq softirq
    steal ...), in clock ticks; None where there is none."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    return [int(x) for x in first[1:]] if first and first[0] == "cpu" else None


class LoadProbe:
    """Machine load over a run: load averages, and from /proc/stat the share of all CPU time
    that was busy, stolen by the hypervisor, and used by other processes than this one.
    Created at the start of a run; ``report()`` at its end."""

    def __init__(self) -> None:
        self.loadavg = os.getloadavg()
        self.jiffies = proc_stat()
        self.wall = time.monotonic()
        self.own = time.process_time()

    def report(self) -> dict[str, Any]:
        """Load averages before and after; CPU shares since the probe was made (where
        /proc/stat can be read)."""
        out: dict[str, Any] = {
            "loadavg_before": list(self.loadavg),
            "loadavg_after": list(os.getloadavg()),
        }
        after = proc_stat()
        if self.jiffies and after:
            delta = [a - b for a, b in zip(after, self.jiffies, strict=False)][:8]
            total = max(sum(delta), 1)
            busy = 1 - (delta[3] + delta[4]) / total
            own = (time.process_time() - self.own) / ((time.monotonic() - self.wall) * CPUS)
            out["cpu_busy_share"] = round(busy, 3)
            out["cpu_steal_share"] = round(delta[7] / total, 3)
            out["cpu_share_this_process"] = round(own, 3)
            out["cpu_share_others"] = round(max(busy - own, 0.0), 3)
        return out


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def version(package: str) -> str | None:
    """The installed version of ``package``; None where it is not installed."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def versions(packages: Iterable[str]) -> dict[str, str | None]:
    """``{package: version}`` for each of ``packages`` (None: not installed)."""
    return {p: version(p) for p in packages}


def machine_info(probe: LoadProbe, packages: Iterable[str]) -> dict[str, Any]:
    """Date, CPU model and count, the probe's load report, Python and package versions."""
    return {
        "date": now_iso(),
        "cpu": cpu_model(),
        "cpus": CPUS,
        **probe.report(),
        "python": platform.python_version(),
        "versions": versions(packages),
    }


def loadavg_text(meta: dict[str, Any]) -> str:
    """``"1.00/0.80/0.50 before, 1.20/0.90/0.60 after"``: the 1/5/15-minute load averages
    of a ``machine_info`` dict, for a table's footnote."""
    before = "/".join(f"{x:.2f}" for x in meta["loadavg_before"])
    after = "/".join(f"{x:.2f}" for x in meta["loadavg_after"])
    return f"{before} before, {after} after"


def write_results(text: str, results: dict[str, Any], out: Path) -> None:
    """Print ``text`` (the Markdown table), write ``results`` as JSON to ``out``, say so."""
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def token_count(tokenizer: PromptTokenizer, text: str) -> int:
    """Tokens of ``text`` before truncation, [CLS] and [SEP] included."""
    return len(tokenizer.content_ids([text])[0]) + 2


def exact_prompt(tokens: int, tokenizer: PromptTokenizer, source: str) -> str:
    """The shortest prefix of ``source`` with exactly ``tokens`` tokens (binary search on the
    character length, then a short walk when a word's pieces overshoot)."""
    low, high = 1, len(source)
    while low < high:
        mid = (low + high) // 2
        low, high = (
            (low, mid) if token_count(tokenizer, source[:mid]) >= tokens else (mid + 1, high)
        )
    for end in range(low, min(low + 64, len(source)) + 1):
        text = source[:end].rstrip()
        if token_count(tokenizer, text) == tokens:
            return text
    raise ValueError(f"could not cut a prompt of exactly {tokens} tokens")
