"""A continuous-batching scheduler on asyncio, timed by a ``PerfModel``, like vLLM's engine.

Each step admits waiting sequences (FIFO) while fewer than ``max_num_seqs`` run; the newly
admitted pay their prefill inside that step — only for the prompt tokens not found in the
prefix cache (``prefix_cache.PrefixCache``, when the server caches prefixes); the step then
lasts ``decode_base_s + decode_s_per_seq * running`` and ends with one token for every
running sequence. So latency grows with load, and beyond ``max_num_seqs`` requests queue,
which is what the gateway's least-loaded routing has to notice.

The engine only counts tokens; the handler knows their text. Tokens reach a streaming handler
through the sequence's queue (token index, then ``None`` when finished or cancelled); a
non-streaming one only gets the final ``None``. The loop task
exists only while there is work: it is started by ``submit`` and ends when the engine is idle.
"""

from __future__ import annotations

import asyncio
import itertools
import time

from switchyard.backends.simulator.config import PerfModel
from switchyard.backends.simulator.lora import AdapterSlots
from switchyard.backends.simulator.metrics import SimulatorMetrics
from switchyard.backends.simulator.prefix_cache import PrefixCache


class Sequence:
    """One request inside the engine."""

    __slots__ = (
        "adapter",
        "arrival",
        "blocks",
        "cancelled",
        "finish_reason",
        "finished",
        "generated",
        "last_token_at",
        "prompt_tokens",
        "stream",
        "target",
        "tokens",
    )

    def __init__(
        self,
        prompt_tokens: int,
        target: int,
        finish_reason: str,
        stream: bool,
        blocks: tuple[int, ...] = (),
        adapter: str | None = None,
    ) -> None:
        self.adapter = adapter  # the LoRA adapter it names, if any (simulator.lora)
        self.prompt_tokens = prompt_tokens
        self.blocks = blocks  # the prompt's block hashes, for the prefix cache
        self.stream = stream
        self.target = max(target, 1)
        self.finish_reason = finish_reason
        self.generated = 0
        self.arrival = self.last_token_at = time.perf_counter()
        self.finished = False
        self.cancelled = False
        # Index of each new token (streams only: nobody else waits per token), then None once
        # the sequence is done or cancelled.
        self.tokens: asyncio.Queue[int | None] = asyncio.Queue()


class Engine:
    """The running batch and the waiting queue of one simulated server."""

    def __init__(
        self,
        perf: PerfModel,
        metrics: SimulatorMetrics,
        prefix_cache: PrefixCache | None = None,
        adapters: AdapterSlots | None = None,
    ) -> None:
        self._perf = perf
        self.adapters = adapters  # LoRA slots (--enable-lora), else None
        self._metrics = metrics
        self.prefix_cache = prefix_cache
        # dicts as ordered sets: FIFO order for the waiting queue, O(1) removal on cancel.
        self._running: dict[Sequence, None] = {}
        self._waiting: dict[Sequence, None] = {}
        self._kv_tokens = 0  # prompt + generated tokens of the running sequences
        self._task: asyncio.Task[None] | None = None

    @property
    def perf(self) -> PerfModel:
        return self._perf

    @property
    def num_running(self) -> int:
        return len(self._running)

    @property
    def num_waiting(self) -> int:
        return len(self._waiting)

    @property
    def kv_cache_usage(self) -> float:
        return min(self._kv_tokens / self._perf.kv_cache_tokens, 1.0)

    @property
    def prefix_caching(self) -> bool:
        return self.prefix_cache is not None

    @property
    def busy(self) -> bool:
        """Whether the step loop is running (it stops as soon as there is no work)."""
        return self._task is not None

    def submit(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        finish_reason: str,
        stream: bool = True,
        blocks: tuple[int, ...] = (),
        adapter: str | None = None,
    ) -> Sequence:
        """Queue a request that will produce ``completion_tokens`` tokens (``blocks``: its
        prompt's block hashes, see ``prefix_blocks``; ``adapter``: the LoRA adapter it
        names); call from the loop."""
        seq = Sequence(prompt_tokens, completion_tokens, finish_reason, stream, blocks, adapter)
        self._waiting[seq] = None
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return seq

    def cancel(self, seq: Sequence) -> None:
        """Free the sequence's slot (client went away); no-op once it has finished."""
        if seq.finished:
            return
        seq.finished = seq.cancelled = True
        if seq in self._running:
            del self._running[seq]
            self._kv_tokens -= seq.prompt_tokens + seq.generated
        else:
            self._waiting.pop(seq, None)
        seq.tokens.put_nowait(None)

    async def close(self) -> None:
        """Stop the loop and cancel every sequence, waking their handlers."""
        for seq in [*self._running, *self._waiting]:
            self.cancel(seq)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _loop(self) -> None:
        """Steps back to back on the model's clock: a step ends its modelled duration after
        the previous one ended, not after the loop got round to it. In vLLM the engine core
        is a process of its own, so the API server's work (streaming the tokens) does not
        lengthen its steps; here that work shares this loop, and sleeping a step's whole
        duration after a late wake-up (other callbacks holding the loop, or the process
        waiting for a busy CPU) made every such step longer than the model. A loop more
        than a step behind starts the next step from now rather than catching up."""
        try:
            step_end = time.perf_counter()
            while self._running or self._waiting:
                prefill_tokens = self._admit()
                perf = self._perf
                swaps = self.adapters.take_stall() if self.adapters is not None else 0.0
                duration = (
                    swaps
                    + perf.prefill_s_per_token * prefill_tokens
                    + perf.decode_base_s
                    + perf.decode_s_per_seq * len(self._running)
                )
                now = time.perf_counter()
                step_end = (now if now - step_end > duration else step_end) + duration
                await asyncio.sleep(step_end - now)  # <= 0 (zero-latency model): one yield
                self._deliver(time.perf_counter())
        finally:
            self._task = None

    def _admit(self) -> int:
        """Move waiting sequences into the batch while there is room; the prompt tokens
        they need computed (those not in the prefix cache)."""
        room = self._perf.max_num_seqs - len(self._running)
        prompt = cached = 0
        cache, metrics = self.prefix_cache, self._metrics
        admitted = (
            self._waiting if self.adapters is None
            else self.adapters.admissible(self._waiting, self._running, room)
        )  # fmt: skip
        for seq in list(itertools.islice(admitted, max(room, 0))):
            del self._waiting[seq]
            self._running[seq] = None
            prompt += seq.prompt_tokens
            if cache is not None:
                cached += cache.admit(seq.blocks, seq.prompt_tokens)
        self._kv_tokens += prompt
        metrics.prompt_tokens += prompt
        if cache is not None:
            metrics.prefix_cache_queries += prompt
            metrics.prefix_cache_hits += cached
        return prompt - cached

    def adapter_names(self) -> tuple[list[str], list[str]]:
        """The distinct adapters of the running and of the waiting requests (the gauge)."""
        running = {s.adapter: None for s in self._running if s.adapter is not None}
        waiting = {s.adapter: None for s in self._waiting if s.adapter is not None}
        return list(running), list(waiting)

    def _deliver(self, now: float) -> None:
        """The end of a step: one token for every running sequence."""
        metrics = self._metrics
        done: list[Sequence] = []
        for seq in self._running:
            seq.generated += 1
            if seq.generated == 1:
                metrics.ttft.observe(now - seq.arrival)
            else:
                metrics.itl.observe(now - seq.last_token_at)
            seq.last_token_at = now
            if seq.stream:
                seq.tokens.put_nowait(seq.generated - 1)
            if seq.generated >= seq.target:
                done.append(seq)
        self._kv_tokens += len(self._running)
        metrics.generation_tokens += len(self._running)
        for seq in done:
            self._finish(seq, now)

    def _finish(self, seq: Sequence, now: float) -> None:
        del self._running[seq]
        self._kv_tokens -= seq.prompt_tokens + seq.generated
        seq.finished = True
        seq.tokens.put_nowait(None)
        self._metrics.e2e.observe(now - seq.arrival)
        self._metrics.record_success(seq.finish_reason)
