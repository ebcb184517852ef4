"""LoRA adapters on a simulated vLLM server, as vLLM serves them (``--enable-lora``).

What vLLM does and the simulator copies:

- An adapter is *registered* by name (``--lora-modules name=path`` at start, or at run time
  ``POST /v1/load_lora_adapter`` ``{"lora_name", "lora_path"}`` when the server runs with
  ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``; without it both runtime routes do not exist: 404).
  Load answers 200 with the plain text ``Success: LoRA adapter 'x' added successfully.``;
  a missing field 400, a name already registered 400 (unless ``load_inplace``), an adapter
  not found at its path 404. Unload (``{"lora_name"}``) answers 200 in text, or 404 for a
  name not registered. Registered adapters are listed by ``GET /v1/models`` with ``parent``
  (the base model) and ``root`` (the path); a request names one as its ``model``.
- ``--max-loras`` GPU slots: a running batch holds requests of at most ``max_loras``
  distinct adapters (vLLM's scheduler skips a waiting request whose adapter would exceed
  it, so that request waits), and an adapter not resident in a slot is swapped in when its
  first request is admitted — the step that admits it lasts ``load_s`` longer — evicting the
  least recently used resident adapter that no running request uses. A runtime load also
  makes the adapter resident (vLLM's add_lora activates it) and takes ``load_s``.
- ``vllm:lora_requests_info``: a gauge whose value is the time it was set, labelled
  ``max_lora``, ``running_lora_adapters`` and ``waiting_lora_adapters`` (adapter names of
  the running and waiting requests, comma-joined), with no ``model_name`` label.

The simulator's stand-in for an adapter missing on disk: a path whose last part starts
with ``missing`` (``/adapters/missing-x``) fails to load with vLLM's 404.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol, TypeVar

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from switchyard.backends.simulator.protocol import ApiError, parse_json_object

__all__ = ["AdapterSlots", "LoraCollector", "LoraConfig", "LoraRoutes"]

LORA_INFO = "vllm:lora_requests_info"


@dataclass(frozen=True, slots=True)
class LoraConfig:
    """``--enable-lora`` with ``--max-loras``; ``modules``: ``--lora-modules`` (name: path);
    ``runtime_updating``: ``VLLM_ALLOW_RUNTIME_LORA_UPDATING``; ``load_s``: seconds to swap
    an adapter into a GPU slot (or load it at run time)."""

    max_loras: int = 1
    load_s: float = 0.0
    modules: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    runtime_updating: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.max_loras, int) or self.max_loras < 1:
            raise ValueError(f"max_loras must be an integer >= 1, got {self.max_loras!r}")
        if not self.load_s >= 0:
            raise ValueError(f"lora_load_s must be >= 0, got {self.load_s!r}")


class HasAdapter(Protocol):
    """A sequence as adapter admission sees it."""

    @property
    def adapter(self) -> str | None: ...


_Seq = TypeVar("_Seq", bound=HasAdapter)


class AdapterSlots:
    """Registered adapters, the GPU slots holding some of them (LRU), and counts."""

    def __init__(self, config: LoraConfig) -> None:
        self.config = config
        self.registered: dict[str, str] = dict(config.modules)  # name -> path
        self._resident: OrderedDict[str, None] = OrderedDict()  # LRU first
        self._stall_s = 0.0
        self.swaps = 0  # adapters swapped into a slot (runtime loads included)

    @property
    def resident(self) -> list[str]:
        return list(self._resident)

    def admissible(self, waiting: Iterable[_Seq], running: Iterable[_Seq], room: int) -> list[_Seq]:
        """The waiting sequences to admit now, FIFO, skipping those whose adapter would
        exceed ``max_loras`` distinct adapters in the batch; swaps their adapters in."""
        active = {s.adapter for s in running if s.adapter is not None}
        chosen: list[_Seq] = []
        for seq in waiting:
            if len(chosen) >= room:
                break
            name = seq.adapter
            if name is not None and name not in active:
                if len(active) >= self.config.max_loras:
                    continue  # the batch holds max_loras adapters already: it waits
                active.add(name)
                self._stall_s += self._make_resident(name, active)
            chosen.append(seq)
        return chosen

    def take_stall(self) -> float:
        """Seconds of swapping the last admission caused (then 0 until the next swap)."""
        stall, self._stall_s = self._stall_s, 0.0
        return stall

    def _make_resident(self, name: str, active: set[str]) -> float:
        if name in self._resident:
            self._resident.move_to_end(name)
            return 0.0
        if len(self._resident) >= self.config.max_loras:
            victim = next((a for a in self._resident if a not in active), None)
            if victim is None:
                return 0.0  # every slot busy: cannot happen within the per-batch limit
            del self._resident[victim]
        self._resident[name] = None
        self.swaps += 1
        return self.config.load_s

    def register(self, name: str, path: str) -> None:
        self.registered[name] = path
        self._make_resident(name, set())

    def unregister(self, name: str) -> None:
        del self.registered[name]
        self._resident.pop(name, None)


class AdapterNames(Protocol):
    """The engine, as the adapter gauge reads it."""

    def adapter_names(self) -> tuple[list[str], list[str]]: ...


class LoraCollector(Collector):
    """``vllm:lora_requests_info`` as vLLM V1 exports it."""

    def __init__(self, config: LoraConfig, engine: AdapterNames) -> None:
        self._max = str(config.max_loras)
        self._engine = engine

    def describe(self) -> Iterator[Metric]:
        yield self._family()

    def collect(self) -> Iterator[Metric]:
        running, waiting = self._engine.adapter_names()
        family = self._family()
        family.add_metric([self._max, ",".join(waiting), ",".join(running)], time.time())
        yield family

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            LORA_INFO,
            "Running stats on lora requests.",
            labels=["max_lora", "waiting_lora_adapters", "running_lora_adapters"],
        )


class LoraRoutes:
    """``POST /v1/load_lora_adapter`` and ``/v1/unload_lora_adapter``: vLLM's answers."""

    def __init__(self, slots: AdapterSlots) -> None:
        self._slots = slots
        self.loads = 0  # successful runtime loads (tests count them)

    async def load(self, raw: bytes) -> bytes:
        body = parse_json_object(raw)
        name, path = body.get("lora_name"), body.get("lora_path")
        if not isinstance(name, str) or not name or not isinstance(path, str) or not path:
            raise _invalid("Both 'lora_name' and 'lora_path' must be provided.")
        if name in self._slots.registered and not body.get("load_inplace"):
            raise _invalid(
                f"The lora adapter '{name}' has already been loaded. If you want to load "
                "the adapter in place, set 'load_inplace' to True."
            )
        await asyncio.sleep(self._slots.config.load_s)
        if path.rstrip("/").rsplit("/", 1)[-1].startswith("missing"):
            raise ApiError(404, f"Loading lora {name} failed: No adapter found for {path}",
                           type="NotFoundError", code="404")  # fmt: skip
        self._slots.register(name, path)
        self.loads += 1
        return f"Success: LoRA adapter '{name}' added successfully.".encode()

    async def unload(self, raw: bytes) -> bytes:
        body = parse_json_object(raw)
        name = body.get("lora_name")
        if not isinstance(name, str) or not name:
            raise _invalid("'lora_name' needs to be provided to unload a LoRA adapter.")
        if name not in self._slots.registered:
            raise ApiError(404, f"The lora adapter '{name}' cannot be found.",
                           type="NotFoundError", code="404")  # fmt: skip
        self._slots.unregister(name)
        return f"Success: LoRA adapter '{name}' removed successfully.".encode()


def _invalid(message: str) -> ApiError:
    return ApiError(400, message, type="InvalidUserInput", code="400")


def adapter_cards(slots: AdapterSlots, base: str, created: int) -> list[dict[str, object]]:
    """``/v1/models`` entries of the registered adapters, as vLLM lists them."""
    return [
        {
            "id": name,
            "object": "model",
            "created": created,
            "owned_by": "vllm",
            "root": path,
            "parent": base,
            "max_model_len": None,
            "permission": [],
        }
        for name, path in slots.registered.items()
    ]
