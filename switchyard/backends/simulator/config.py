"""What a simulated server is: its performance model, its injected faults, its identity.

``PerfModel`` is frozen (a server does not change speed); ``Faults`` is mutable because the
demo and the tests switch faults on and off while the server runs (``POST /sim/faults``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any

from switchyard.backends.simulator.lora import LoraConfig


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class PerfModel:
    """Latency and capacity of one vLLM replica, the knobs of the continuous-batching engine.

    A request costs ``prefill_s_per_token`` per prompt token once, when admitted; every engine
    step then costs ``decode_base_s + decode_s_per_seq * running`` and gives every running
    sequence one token. Beyond ``max_num_seqs`` running sequences, requests wait (FIFO).
    """

    prefill_s_per_token: float = 0.0
    decode_base_s: float = 0.0
    decode_s_per_seq: float = 0.0
    max_num_seqs: int = 256
    max_model_len: int = 8192
    kv_cache_tokens: int = 400_000

    def __post_init__(self) -> None:
        for name in ("prefill_s_per_token", "decode_base_s", "decode_s_per_seq"):
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("max_num_seqs", "max_model_len", "kv_cache_tokens"):
            value = getattr(self, name)
            if not _is_number(value) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")

    @classmethod
    def zero(cls, max_model_len: int = 8192) -> PerfModel:
        """No latency at all: answers are generated inline, without the engine (benchmarks)."""
        return cls(max_model_len=max_model_len)

    @property
    def is_zero(self) -> bool:
        return self.prefill_s_per_token == self.decode_base_s == self.decode_s_per_seq == 0.0


# Rough figures for an 8B model in bf16 under vLLM; they only need to be plausible, not exact:
# decode is memory-bound (a step reads all weights once), prefill is compute-bound.
PRESETS: Mapping[str, PerfModel] = MappingProxyType(
    {
        "zero": PerfModel.zero(),
        "fast": PerfModel(  # H100 80GB
            prefill_s_per_token=0.00005,
            decode_base_s=0.008,
            decode_s_per_seq=0.0001,
            max_num_seqs=256,
            kv_cache_tokens=450_000,
        ),
        "medium": PerfModel(  # A100 40GB
            prefill_s_per_token=0.0001,
            decode_base_s=0.014,
            decode_s_per_seq=0.0002,
            max_num_seqs=128,
            kv_cache_tokens=150_000,
        ),
        "slow": PerfModel(  # L4 24GB
            prefill_s_per_token=0.0004,
            decode_base_s=0.035,
            decode_s_per_seq=0.0006,
            max_num_seqs=32,
            kv_cache_tokens=40_000,
        ),
    }
)


def perf_preset(name: str) -> PerfModel:
    """The named ``PerfModel`` ("zero", "fast", "medium", "slow"); ValueError otherwise."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None


_RATES = ("error_rate", "drop_rate", "hang_rate")
ERROR_STATUSES = (429, 500, 502, 503, 504)


@dataclass(slots=True)
class Faults:
    """Misbehaviour injected per request; each rate is a probability in [0, 1].

    ``error_rate``: reply ``error_status`` (500 by default; 429 and 503 come with
    ``Retry-After: 1``) in OpenAI's error shape. ``added_latency_ms``: wait before any work.
    ``drop_rate``: streams only, close the connection abruptly after ``drop_after_chunks``
    chunks. ``hang_rate``: never answer, until the client goes away.
    """

    error_rate: float = 0.0
    error_status: int = 500
    added_latency_ms: float = 0.0
    drop_rate: float = 0.0
    drop_after_chunks: int = 3
    hang_rate: float = 0.0

    def __post_init__(self) -> None:
        _validate_faults(asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply any subset of fields; all are validated before any is set (ValueError)."""
        merged = {**asdict(self), **changes}
        _validate_faults(merged)
        for name in changes:
            setattr(self, name, merged[name])

    @property
    def any_active(self) -> bool:
        return bool(self.error_rate or self.added_latency_ms or self.drop_rate or self.hang_rate)


def _validate_faults(values: Mapping[str, Any]) -> None:
    known = {f.name for f in fields(Faults)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown fault fields: {unknown}; known: {sorted(known)}")
    for name, value in values.items():
        if not _is_number(value):
            raise ValueError(f"{name} must be a number, got {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        if name in _RATES and value > 1:
            raise ValueError(f"{name} is a probability and must be <= 1, got {value!r}")
        if name == "drop_after_chunks" and not isinstance(value, int):
            raise ValueError(f"drop_after_chunks must be an integer, got {value!r}")
        if name == "error_status" and value not in ERROR_STATUSES:
            raise ValueError(f"error_status must be one of {ERROR_STATUSES}, got {value!r}")


@dataclass(slots=True)
class SimulatorConfig:
    """One simulated vLLM server: the model it serves, how fast, how it misbehaves."""

    model: str = "sim-model"
    perf: PerfModel = field(default_factory=PerfModel.zero)
    faults: Faults = field(default_factory=Faults)
    seed: int = 0
    serves_embeddings: bool = False
    embedding_dim: int = 384
    # vLLM V1's automatic prefix caching (on by default there too): --enable-prefix-caching.
    prefix_caching: bool = True
    # --enable-lora with its --max-loras slots (simulator.lora); None: no adapters.
    lora: LoraConfig | None = None
    # vLLM's --api-key: every /v1 path needs "Authorization: Bearer <key>"; None: open.
    api_key: str | None = None

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model name must not be empty")
        if not isinstance(self.embedding_dim, int) or self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be >= 1, got {self.embedding_dim}")


_PERF_FIELDS = frozenset(f.name for f in fields(PerfModel))
_FAULT_FIELDS = frozenset(f.name for f in fields(Faults))
_OWN_FIELDS = frozenset({"serves_embeddings", "embedding_dim", "prefix_caching", "api_key"})
_LORA_FIELDS = frozenset({"max_loras", "lora_load_s", "lora_modules", "runtime_lora_updating"})


def build_config(
    model: str, preset: str = "fast", seed: int = 0, **overrides: Any
) -> SimulatorConfig:
    """The config the CLI (and test fixtures) build: a preset, then overrides on top.

    ``overrides`` may name any ``PerfModel`` field (e.g. ``max_num_seqs``, ``decode_base_s``),
    any ``Faults`` field (e.g. ``error_rate``), ``serves_embeddings``, ``embedding_dim``,
    ``prefix_caching`` or ``api_key``, or the LoRA settings ``max_loras`` (turns adapters on),
    ``lora_load_s``, ``lora_modules`` (name -> path) and ``runtime_lora_updating``;
    ``None`` means "not given". Unknown names or bad values raise ``ValueError``.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    unknown = sorted(set(given) - _PERF_FIELDS - _FAULT_FIELDS - _OWN_FIELDS - _LORA_FIELDS)
    if unknown:
        raise ValueError(f"unknown simulator settings: {unknown}")
    perf = replace(perf_preset(preset), **{k: v for k, v in given.items() if k in _PERF_FIELDS})
    faults = Faults(**{k: v for k, v in given.items() if k in _FAULT_FIELDS})
    return SimulatorConfig(
        model=model,
        perf=perf,
        faults=faults,
        seed=seed,
        serves_embeddings=bool(given.get("serves_embeddings", False)),
        embedding_dim=given.get("embedding_dim", 384),
        prefix_caching=bool(given.get("prefix_caching", True)),
        lora=_lora_config(given),
        api_key=given.get("api_key") or None,
    )


def _lora_config(given: dict[str, Any]) -> LoraConfig | None:
    if "max_loras" not in given:
        if set(given) & _LORA_FIELDS:
            raise ValueError("LoRA settings need max_loras (vLLM's --max-loras)")
        return None
    return LoraConfig(
        max_loras=given["max_loras"],
        load_s=given.get("lora_load_s", 0.0),
        modules=MappingProxyType(dict(given.get("lora_modules", {}))),
        runtime_updating=bool(given.get("runtime_lora_updating", False)),
    )
