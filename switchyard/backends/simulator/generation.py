"""Serving ``/v1/chat/completions`` and ``/v1/completions``: validation, faults, engine, output.

Two paths. With a zero-latency ``PerfModel`` and nothing to wait for (no hang, no added
latency), the answer is written at once, without the engine or a disconnect watcher (the
benchmark path: a few microseconds). Otherwise a task watches ``receive()`` for the client
going away while the request waits, hangs or streams, so the engine slot is freed as soon as
nobody listens.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import uuid

from switchyard.backends.prefix_blocks import request_blocks
from switchyard.backends.simulator.asgi import (
    SSE_START,
    Receive,
    Send,
    end_stream,
    send_bytes,
    send_chunk,
    send_error,
    wait_for_disconnect,
)
from switchyard.backends.simulator.choices import make_reply
from switchyard.backends.simulator.config import Faults, SimulatorConfig
from switchyard.backends.simulator.engine import Engine, Sequence
from switchyard.backends.simulator.metrics import SimulatorMetrics
from switchyard.backends.simulator.protocol import (
    ApiError,
    GenerationRequest,
    parse_chat,
    parse_completion,
    parse_json_object,
)
from switchyard.backends.simulator.responses import ChunkWriter, Reply, chat_body, completion_body
from switchyard.backends.simulator.text import ContextLengthError, TextModel, check_context


def injected_error(status: int) -> ApiError:
    """The error the ``error_rate`` fault answers, shaped as OpenAI shapes that status."""
    if status == 429:
        return ApiError(429, "rate limit reached (injected fault)", type="rate_limit_error",
                        code="rate_limit_exceeded", retry_after_s=1)  # fmt: skip
    return ApiError(
        status,
        f"simulated server error {status} (injected fault)",
        type="server_error",
        code="injected_fault",
        retry_after_s=1 if status == 503 else None,
    )


class SimulatedDrop(Exception):
    """Raised mid-stream to make uvicorn close the connection without ending the body."""


class GenerationHandler:
    """Answers generation requests for one simulated server."""

    def __init__(self, config: SimulatorConfig, engine: Engine, metrics: SimulatorMetrics) -> None:
        self._model = config.model
        self._max_model_len = config.perf.max_model_len
        self._faults: Faults = config.faults
        self._engine: Engine | None = None if config.perf.is_zero else engine
        self._adapters = engine.adapters  # LoRA adapters a request may name, if enabled
        self._caches_prefixes = self._engine is not None and engine.prefix_caching
        self._metrics = metrics
        self._text = TextModel(config.seed, config.perf.max_model_len)
        self._fault_rng = random.Random(config.seed)
        self._ids = itertools.count(1)
        self._id_stem = uuid.uuid4().hex[:12]

    async def __call__(self, receive: Receive, send: Send, raw: bytes, chat: bool) -> None:
        started = time.perf_counter()
        request = self._parse(raw, chat)
        answer = self._answer(request)
        if self._engine is None and not self._faults.any_active:
            await self._write_now(send, request, answer, None)
            self._record_instant(request, answer, started)
            return
        await self._serve_watched(receive, send, request, answer, started)

    def _parse(self, raw: bytes, chat: bool) -> GenerationRequest:
        body = parse_json_object(raw)
        request = parse_chat(body) if chat else parse_completion(body)
        if self._caches_prefixes:
            blocks = request_blocks(body, chat, max_blocks=None)
            request.blocks = blocks.hashes if blocks is not None else ()
        if (
            request.model is not None
            and request.model != self._model
            and not (self._adapters is not None and request.model in self._adapters.registered)
        ):
            raise ApiError(
                404,
                f"The model `{request.model}` does not exist.",
                param="model",
                code="model_not_found",
            )
        try:
            check_context(request.prompt_tokens, request.max_tokens, self._max_model_len)
        except ContextLengthError as exc:
            raise ApiError(400, str(exc), param="messages" if chat else "prompt") from None
        return request

    def _adapter_of(self, request: GenerationRequest) -> str | None:
        return None if request.model == self._model else request.model

    def _served(self, request: GenerationRequest) -> str:
        """The model a response names: the adapter when the request named one, as vLLM."""
        return request.model if request.model is not None else self._model

    def _answer(self, request: GenerationRequest) -> Reply:
        return make_reply(self._text, request)

    def _new_id(self, chat: bool) -> str:
        return f"{'chatcmpl' if chat else 'cmpl'}-{self._id_stem}{next(self._ids):08x}"

    async def _serve_watched(
        self,
        receive: Receive,
        send: Send,
        request: GenerationRequest,
        answer: Reply,
        started: float,
    ) -> None:
        """The path with faults or latency: a task notices the client leaving meanwhile."""
        faults, rng = self._faults, self._fault_rng.random
        if faults.error_rate and rng() < faults.error_rate:
            await send_error(send, injected_error(faults.error_status))
            return
        hang = bool(faults.hang_rate) and rng() < faults.hang_rate
        drop = request.stream and bool(faults.drop_rate) and rng() < faults.drop_rate
        drop_after = faults.drop_after_chunks if drop else None
        if self._engine is None and not hang and not faults.added_latency_ms:
            await self._write_now(send, request, answer, drop_after)  # nothing to wait for
            self._record_instant(request, answer, started)
            return
        gone = asyncio.ensure_future(wait_for_disconnect(receive))
        try:
            if hang:
                await gone  # accept and never answer, until the client gives up
                return
            if faults.added_latency_ms:
                await asyncio.wait((gone,), timeout=faults.added_latency_ms / 1000)
                if gone.done():
                    return
            if self._engine is None:
                await self._write_now(send, request, answer, drop_after)
                self._record_instant(request, answer, started)
            else:
                await self._run_in_engine(self._engine, gone, send, request, answer, drop_after)
        finally:
            gone.cancel()

    def _record_instant(self, request: GenerationRequest, answer: Reply, started: float) -> None:
        self._metrics.record_instant(
            request.prompt_tokens,
            answer.completion_tokens,
            answer.finish_reason,
            time.perf_counter() - started,
        )

    async def _run_in_engine(
        self,
        engine: Engine,
        gone: asyncio.Future[None],
        send: Send,
        request: GenerationRequest,
        answer: Reply,
        drop_after: int | None,
    ) -> None:
        seq = engine.submit(
            request.prompt_tokens,
            answer.steps,  # the n choices decode side by side
            answer.finish_reason,
            request.stream,
            request.blocks,
            self._adapter_of(request),
        )
        gone.add_done_callback(lambda _: engine.cancel(seq))
        try:
            if request.stream:
                await self._stream_from(seq, send, request, answer, drop_after)
                return
            await seq.tokens.get()  # not streamed: only the final None arrives
            if not seq.cancelled:
                await self._write_now(send, request, answer, None)
        finally:
            engine.cancel(seq)  # no-op when finished; frees the slot on drop or error

    async def _write_now(
        self, send: Send, request: GenerationRequest, answer: Reply, drop_after: int | None
    ) -> None:
        """The whole answer at once: one JSON body, or every chunk of the stream in a row."""
        rid, created = self._new_id(request.chat), int(time.time())
        if not request.stream:
            build = chat_body if request.chat else completion_body
            await send_bytes(
                send, 200, build(rid, created, self._served(request), answer, request.prompt_tokens)
            )
            return
        writer = ChunkWriter(rid, created, self._served(request), request.chat)
        await send(SSE_START)
        sent = await self._send_first(send, writer, answer)
        for index in range(answer.steps):
            _maybe_drop(sent, drop_after)
            await send_chunk(send, writer.piece(answer, index))
            sent += 1
        _maybe_drop(sent, drop_after, at_end=True)
        await self._send_tail(send, writer, request, answer)

    async def _stream_from(
        self,
        seq: Sequence,
        send: Send,
        request: GenerationRequest,
        answer: Reply,
        drop_after: int | None,
    ) -> None:
        """Stream tokens as the engine produces them (headers first, like vLLM)."""
        writer = ChunkWriter(
            self._new_id(request.chat), int(time.time()), self._served(request), request.chat
        )
        await send(SSE_START)
        sent = -1  # the role chunk goes out with the first token, as vLLM does
        while (index := await seq.tokens.get()) is not None:
            if sent < 0:
                sent = await self._send_first(send, writer, answer)
            _maybe_drop(sent, drop_after)
            await send_chunk(send, writer.piece(answer, index))
            sent += 1
        if seq.cancelled:
            return
        _maybe_drop(sent, drop_after, at_end=True)
        await self._send_tail(send, writer, request, answer)

    @staticmethod
    async def _send_first(send: Send, writer: ChunkWriter, answer: Reply) -> int:
        first = writer.first(answer)
        if first is None:
            return 0
        await send_chunk(send, first)
        return 1

    @staticmethod
    async def _send_tail(
        send: Send, writer: ChunkWriter, request: GenerationRequest, answer: Reply
    ) -> None:
        await send_chunk(send, writer.final(answer))
        if request.include_usage:
            await send_chunk(send, writer.usage(request.prompt_tokens, answer.completion_tokens))
        await end_stream(send)


def _maybe_drop(sent: int, drop_after: int | None, at_end: bool = False) -> None:
    """Drop after ``drop_after`` chunks, or before the end of a shorter stream: a stream
    picked for dropping never ends cleanly."""
    if drop_after is not None and (at_end or sent >= drop_after):
        raise SimulatedDrop(f"dropping the connection after {sent} chunks (injected fault)")
