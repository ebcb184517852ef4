"""Engine state: what one endpoint's vLLM engine looked like at its last scrape.

``EngineSnapshot`` is the frozen, typed view that replica choice reads. ``next_snapshot``
turns a ``PageReading`` (one ``/metrics`` page, see ``switchyard.backends.vllm_metrics``) and the
endpoint's previous snapshot into the next one: rates that vLLM only exports as counters
(prefix-cache hits, preemptions) come from the deltas between the two scrapes. A counter
that went down means the server restarted; as Prometheus' ``rate()`` does, the new value is
then taken as the whole delta. ``fresh`` is the one staleness rule: a snapshot older than
``max_age_s`` (missed scrapes) is unknown, and callers fall back to their own counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from switchyard.backends.vllm_metrics import LoraReading, PageReading

__all__ = ["EngineSnapshot", "fresh", "next_snapshot"]


@dataclass(frozen=True, slots=True)
class EngineSnapshot:
    """One endpoint's engine at ``scraped_at`` (the scraper's monotonic clock, seconds).

    Counts are summed over data-parallel engines, ``kv_cache_usage`` (0..1) is their mean;
    ``None`` where the server does not export the figure.
    """

    waiting: int
    running: int
    scraped_at: float
    kv_cache_usage: float | None = None
    max_num_seqs: int | None = None
    kv_capacity_tokens: int | None = None
    # Share of queried prompt tokens found in the prefix cache since the previous scrape
    # (vLLM's own lifetime gauge on V0 servers, which have no counters).
    prefix_cache_hit_rate: float | None = None
    preemptions: int | None = None  # cumulative
    new_preemptions: int = 0  # since the previous scrape
    engines: int = 1
    # Mean seconds between two tokens of a request since the previous scrape.
    itl_s: float | None = None
    # The raw counters behind the rates, kept for the next delta.
    prefix_cache_queries: float | None = None
    prefix_cache_hits: float | None = None
    itl_sum_s: float | None = None
    itl_count: float | None = None
    lora: LoraReading | None = None  # vllm:lora_requests_info, on --enable-lora servers

    def age(self, now: float) -> float:
        return now - self.scraped_at

    def is_stale(self, now: float, max_age_s: float) -> bool:
        return now - self.scraped_at > max_age_s


def fresh(snapshot: EngineSnapshot | None, now: float, max_age_s: float) -> EngineSnapshot | None:
    """``snapshot`` if it is at most ``max_age_s`` old, else ``None`` (unknown)."""
    if snapshot is None or snapshot.is_stale(now, max_age_s):
        return None
    return snapshot


def next_snapshot(
    reading: PageReading, scraped_at: float, previous: EngineSnapshot | None = None
) -> EngineSnapshot:
    """The snapshot for ``reading``; ``previous`` (same endpoint) supplies counter deltas.

    Raises ``ValueError`` when the page is not a vLLM page (no scheduler gauges).
    """
    if not reading.is_vllm:
        raise ValueError("the page has no vllm:num_requests_running or _waiting")
    queries, hits = reading.prefix_cache_queries, reading.prefix_cache_hits
    preemptions = None if reading.preemptions is None else int(reading.preemptions)
    return EngineSnapshot(
        waiting=int(reading.waiting or 0),
        running=int(reading.running or 0),
        scraped_at=scraped_at,
        kv_cache_usage=reading.kv_cache_usage,
        max_num_seqs=reading.max_num_seqs,
        kv_capacity_tokens=reading.kv_capacity_tokens,
        prefix_cache_hit_rate=_hit_rate(reading, previous),
        preemptions=preemptions,
        new_preemptions=_new_preemptions(reading.preemptions, previous),
        engines=max(reading.engines, 1),
        itl_s=_since(
            reading.itl_sum_s,
            reading.itl_count,
            (previous.itl_sum_s, previous.itl_count) if previous is not None else None,
            previous.itl_s if previous is not None else None,
        ),
        prefix_cache_queries=queries,
        prefix_cache_hits=hits,
        itl_sum_s=reading.itl_sum_s,
        itl_count=reading.itl_count,
        lora=reading.lora,
    )


def _new_preemptions(current: float | None, previous: EngineSnapshot | None) -> int:
    before = previous.preemptions if previous is not None else None
    if current is None or before is None:
        return 0
    # A counter that went down restarted from zero: all of it is new.
    return int(current - before if current >= before else current)


def _hit_rate(reading: PageReading, previous: EngineSnapshot | None) -> float | None:
    queries, hits = reading.prefix_cache_queries, reading.prefix_cache_hits
    if queries is None or hits is None:
        return reading.prefix_cache_hit_rate
    if previous is None:
        return _since(hits, queries, None, None)
    before = (previous.prefix_cache_hits, previous.prefix_cache_queries)
    return _since(hits, queries, before, previous.prefix_cache_hit_rate)


def _since(
    part: float | None,
    whole: float | None,
    before: tuple[float | None, float | None] | None,
    kept: float | None,
) -> float | None:
    """``Δpart / Δwhole`` of two cumulative counters since ``before`` (their previous
    values): a hit rate, a mean latency. The lifetime ratio on a first scrape or after a
    restart (a counter went down); ``kept`` (the previous ratio) when nothing was counted in
    between, as nothing changed; ``None`` when the page lacks a counter."""
    if part is None or whole is None:
        return None
    part_0, whole_0 = before if before is not None else (None, None)
    if part_0 is None or whole_0 is None or part < part_0 or whole < whole_0:
        return part / whole if whole > 0 else None
    if whole - whole_0 <= 0:
        return kept
    return (part - part_0) / (whole - whole_0)
