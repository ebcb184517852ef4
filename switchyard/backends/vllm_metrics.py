"""Reading one vLLM ``/metrics`` page into the few numbers that replica choice needs.

Owns vLLM's metric names across versions and how data-parallel engines are combined. With
``--data-parallel-size`` > 1 (V1 engine) every family carries an ``engine="0"``, ``"1"``, ...
sample per engine; older pages carry one unlabelled-by-engine sample.

- waiting, running: ``vllm:num_requests_waiting``, ``vllm:num_requests_running``; summed.
- KV-cache usage (0..1): ``vllm:kv_cache_usage_perc`` (V1), ``vllm:gpu_cache_usage_perc``
  (V0 and early V1); averaged.
- prefix cache: the token counters ``vllm:prefix_cache_queries_total`` and
  ``vllm:prefix_cache_hits_total`` (0.10; ``vllm:gpu_prefix_cache_*_total`` in 0.8-0.9),
  summed; V0 has only its own ``vllm:gpu_prefix_cache_hit_rate`` gauge, averaged.
- preemptions: ``vllm:num_preemptions_total``; summed.
- inter-token latency: the ``_sum`` (seconds) and ``_count`` (gaps) of the histogram
  ``vllm:inter_token_latency_seconds`` (0.10; ``vllm:time_per_output_token_seconds`` before
  and during its deprecation), summed; cumulative, so a mean over an interval is a delta.
- KV capacity in tokens: ``num_gpu_blocks`` x ``block_size`` labels of
  ``vllm:cache_config_info``; summed.
- LoRA adapters: the labels ``running_lora_adapters``, ``waiting_lora_adapters`` (names,
  comma-joined) and ``max_lora`` of ``vllm:lora_requests_info``, whose value is the time it
  was set; a page may keep older label sets, so the latest sample wins.
- max_num_seqs: a ``max_num_seqs`` label of ``vllm:scheduler_config_info`` (or of the cache
  info), summed. vLLM itself does not export it today; where nothing does, the caller's
  configured value is the one to use.

Where a page carries both an old and a new name (the deprecation window), the new one wins.
Usage fractions are averaged over engines, not maxed: the engines of one server have caches of
the same size, so the mean is exactly the share of the server's whole KV pool in use, and
vLLM's data-parallel front end sends the next request to a less-loaded engine, so the fullest
engine would overstate the pressure that request meets.

Two parsers give the same ``PageReading``: ``read_page``, a line scanner that only looks at
the families above (what the scraper uses), and ``read_page_prometheus`` on
prometheus_client's text parser (the reference the tests compare against). Measured by
``bench/replica_bench.py`` on a 75 kB two-engine v0.10 page: ~0.13 ms against ~9 ms.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["LoraReading", "PageReading", "read_page", "read_page_prometheus"]

# Sample name -> the tally it feeds; summed over engines.
_SUMMED = {
    "vllm:num_requests_waiting": "waiting",
    "vllm:num_requests_running": "running",
    "vllm:num_preemptions_total": "preemptions",
    "vllm:prefix_cache_queries_total": "prefix_queries",
    "vllm:prefix_cache_hits_total": "prefix_hits",
    "vllm:gpu_prefix_cache_queries_total": "old_prefix_queries",
    "vllm:gpu_prefix_cache_hits_total": "old_prefix_hits",
    "vllm:inter_token_latency_seconds_sum": "itl_sum",
    "vllm:inter_token_latency_seconds_count": "itl_count",
    "vllm:time_per_output_token_seconds_sum": "old_itl_sum",
    "vllm:time_per_output_token_seconds_count": "old_itl_count",
}
# Fractions: averaged over engines.
_AVERAGED = {
    "vllm:kv_cache_usage_perc": "kv_usage",
    "vllm:gpu_cache_usage_perc": "old_kv_usage",
    "vllm:gpu_prefix_cache_hit_rate": "prefix_hit_rate",
}
# Info families (value 1, facts in labels), named as vLLM's ``log_metrics_info`` names them.
_INFO = ("vllm:cache_config_info", "vllm:scheduler_config_info")
_LORA = "vllm:lora_requests_info"
_PREFIXES = (*_SUMMED, *_AVERAGED, *_INFO, _LORA)
_WANTED = frozenset(_PREFIXES)
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True, slots=True)
class LoraReading:
    """vLLM's adapter gauge: adapters of running and of waiting requests, and the slots."""

    running: frozenset[str] = frozenset()
    waiting: frozenset[str] = frozenset()
    max_loras: int | None = None

    @property
    def active(self) -> frozenset[str]:
        return self.running | self.waiting


@dataclass(frozen=True, slots=True)
class PageReading:
    """What one page says, summed or averaged over engines; ``None`` where it says nothing."""

    waiting: float | None = None
    running: float | None = None
    kv_cache_usage: float | None = None
    prefix_cache_queries: float | None = None  # cumulative, in tokens
    prefix_cache_hits: float | None = None
    prefix_cache_hit_rate: float | None = None  # V0's own gauge, where no counters exist
    preemptions: float | None = None  # cumulative
    itl_sum_s: float | None = None  # cumulative seconds between tokens
    itl_count: float | None = None  # cumulative gaps between tokens
    kv_capacity_tokens: int | None = None
    max_num_seqs: int | None = None
    engines: int = 0  # samples of num_requests_running: one per data-parallel engine
    lora: LoraReading | None = None  # only on servers started with --enable-lora

    @property
    def is_vllm(self) -> bool:
        """Whether the page carries vLLM's scheduler gauges at all."""
        return self.waiting is not None or self.running is not None


@dataclass(slots=True)
class _Tally:
    sums: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    kv_capacity: int | None = None
    max_num_seqs: int | None = None
    lora: LoraReading | None = None
    lora_set_at: float = -math.inf

    def add(self, key: str, value: float) -> None:
        if math.isfinite(value):
            self.sums[key] = self.sums.get(key, 0.0) + value
            self.counts[key] = self.counts.get(key, 0) + 1

    def add_info(self, labels: Mapping[str, str], value: float = 1.0) -> None:
        if "running_lora_adapters" in labels:
            if value >= self.lora_set_at:  # the latest label set is the current one
                self.lora_set_at = value
                self.lora = LoraReading(_names(labels["running_lora_adapters"]),
                                        _names(labels.get("waiting_lora_adapters", "")),
                                        _int(labels.get("max_lora")))  # fmt: skip
            return
        blocks, size = _int(labels.get("num_gpu_blocks")), _int(labels.get("block_size"))
        if blocks is not None and size is not None:
            self.kv_capacity = (self.kv_capacity or 0) + blocks * size
        seqs = _int(labels.get("max_num_seqs"))
        if seqs is not None:
            self.max_num_seqs = (self.max_num_seqs or 0) + seqs

    def feed(self, name: str, value: float) -> bool:
        """Tally one sample; ``True`` for an info sample, whose facts are in its labels."""
        key = _SUMMED.get(name) or _AVERAGED.get(name)
        if key is not None:
            self.add(key, value)
            return False
        return name in _INFO or name == _LORA

    def reading(self) -> PageReading:
        s = self.sums.get
        return PageReading(
            waiting=s("waiting"),
            running=s("running"),
            kv_cache_usage=self._mean("kv_usage", "old_kv_usage"),
            prefix_cache_queries=_first(s("prefix_queries"), s("old_prefix_queries")),
            prefix_cache_hits=_first(s("prefix_hits"), s("old_prefix_hits")),
            prefix_cache_hit_rate=self._mean("prefix_hit_rate"),
            preemptions=s("preemptions"),
            itl_sum_s=_first(s("itl_sum"), s("old_itl_sum")),
            itl_count=_first(s("itl_count"), s("old_itl_count")),
            kv_capacity_tokens=self.kv_capacity,
            max_num_seqs=self.max_num_seqs,
            engines=self.counts.get("running", 0),
            lora=self.lora,
        )

    def _mean(self, *keys: str) -> float | None:
        for key in keys:
            if key in self.sums:
                return self.sums[key] / self.counts[key]
        return None


def _first(new: float | None, old: float | None) -> float | None:
    return new if new is not None else old


def _int(text: str | None) -> int | None:
    # Info labels hold strings such as "29127", "None" or "0.9".
    return int(text) if text is not None and text.isdigit() else None


def _names(text: str) -> frozenset[str]:
    return frozenset(n.strip() for n in text.split(",") if n.strip())


def _labels(text: str) -> dict[str, str]:
    return dict(_LABEL.findall(text)) if text else {}


def read_page(text: str) -> PageReading:
    """Read a Prometheus text page, looking only at the vLLM families above.

    Raises ``ValueError`` when a sample of those families is not ``name[{labels}] value``.
    """
    tally = _Tally()
    # startswith(tuple) runs in C and throws away ~98% of a real page (histogram buckets,
    # process and python metrics) before any Python-level work.
    for line in text.split("\n"):
        if line.startswith(_PREFIXES):
            name, labels, value = _split(line)
            if name in _WANTED:
                number = _number(value, line)
                if tally.feed(name, number):
                    tally.add_info(_labels(labels), number)
    return tally.reading()


def _split(line: str) -> tuple[str, str, str]:
    """``name{labels} value [timestamp]`` -> name, the text between the braces, value."""
    brace = line.find("{")
    if brace == -1:
        name, _, rest = line.partition(" ")
        labels = ""
    else:
        # The last brace: label values may hold "}" but the value and timestamp cannot.
        close = line.rfind("}")
        if close < brace:
            raise ValueError(f"unterminated labels in metrics line {line[:120]!r}")
        name, labels, rest = line[:brace], line[brace + 1 : close], line[close + 1 :]
    fields = rest.split()
    if not fields:
        raise ValueError(f"no value in metrics line {line[:120]!r}")
    return name.rstrip(), labels, fields[0]


def _number(value: str, line: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"not a number in metrics line {line[:120]!r}") from None


def read_page_prometheus(text: str) -> PageReading:
    """The same reading through prometheus_client's full text parser (slower, stricter)."""
    tally = _Tally()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if tally.feed(sample.name, sample.value):
                tally.add_info(sample.labels, sample.value)
    return tally.reading()
