"""The response cache: an opted-in request whose normalised form (and tenant) was answered
before is answered again from the state store, with no upstream call.

Opt-in per request: the header ``x-switchyard-cache: on`` or the body's
``"switchyard": {"cache": true}``; ``"allow-sampled"`` (either place) also caches sampled
requests (temperature > 0 or absent, n > 1, logprobs), which are skipped otherwise;
``"semantic"`` (``"semantic,allow-sampled"`` with both) also looks for a similar prompt
answered by the same model (``switchyard.gateway.cache.semantic``) when no exact match is
found: before the request is routed for a concrete model, right after the routing decision
(``ResponseCache.routed``) for a routed one. Only 200 answers are stored, and only chat
completions, completions and embeddings (embeddings are matched exactly only).

The key (``request_key``) hashes the caller's scope (its tenant and, for a key with a model
allow-list, that list: an answer is shared only among callers with the same permissions, so
a hit never gives a key a model it may not use), the ``x-switchyard-*`` routing headers and
the body as canonical JSON (sorted keys) without ``stream``, ``stream_options``, ``user``,
``request_id`` and the cache option itself: a routed request is keyed by its router's name
and options, since the model is chosen later. Streamed and non-streamed requests share a
key. An entry holds what the client got: a JSON answer (replayed to a streamed request as
chunks built from it, ``replay``) or an SSE stream (replayed byte for byte to a streamed
request; a non-streamed request treats it as a miss and stores its JSON answer over it).

``Proxy`` holds a ``ResponseCache`` only when ``cache.enabled``: otherwise its hook is None
and a request pays one attribute test. A store that fails (Redis down) is counted
(``switchyard_cache_errors_total``) and the request goes on uncached. Hits and misses are
counted by kind: ``exact``, or ``semantic`` for a semantic opt-in that found no exact match.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import Message, Send

from switchyard.gateway.cache.config import CacheConfig
from switchyard.gateway.cache.store import CacheStore, MemoryStore, RedisStore
from switchyard.gateway.errors import InvalidRequestError
from switchyard.gateway.settings import Capability
from switchyard.gateway.state import StateConfig, StoreUnavailableError
from switchyard.gateway.streaming import STREAM_HEADERS

if TYPE_CHECKING:
    from switchyard.gateway.cache.semantic import Query, SemanticIndex
    from switchyard.gateway.payload import Payload
    from switchyard.gateway.proxy import Call
    from switchyard.gateway.routing import RouterService
    from switchyard.gateway.tenancy.keys import KeyRecord

log = logging.getLogger("switchyard.gateway")

HEADER = b"x-switchyard-cache"
FIELD = "cache"
ALLOW_SAMPLED = "allow-sampled"
SEMANTIC = "semantic"
SIMILARITY = b"x-switchyard-cache-similarity"
CACHEABLE = frozenset({Capability.chat, Capability.completions, Capability.embeddings})
IGNORED = frozenset({"stream", "stream_options", "user", "request_id"})
JSON, SSE = b"j", b"s"
DONE = b"data: [DONE]\n\n"
_WORDS = frozenset({"on", "true", "1", ALLOW_SAMPLED, SEMANTIC})
_SIMILARITY_BUCKETS = (0.8, 0.85, 0.9, 0.92, 0.94, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 1.0)


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        self.hits = counter(
            "switchyard_cache_hits_total", "Requests answered from the cache.", "kind"
        )
        self.misses = counter(
            "switchyard_cache_misses_total", "Opted-in requests not found.", "kind"
        )
        self.similarity = Histogram(
            "switchyard_cache_semantic_similarity",
            "Cosine similarity of the prompts of semantic hits.",
            buckets=_SIMILARITY_BUCKETS,
            registry=registry,
        )
        self.stores = counter("switchyard_cache_stores_total", "Answers stored in the cache.")
        self.skipped = counter(
            "switchyard_cache_skipped_total", "Opted-in requests not cached (sampled).", "reason"
        )
        self.errors = counter(
            "switchyard_cache_errors_total", "Cache store failures (answered uncached).", "op"
        )
        for op in ("get", "put", "index_get", "index_put", "embed"):  # rates and alerts read 0
            self.errors.labels(op)
        for kind in ("exact", "semantic"):
            self.hits.labels(kind)
            self.misses.labels(kind)
        for reason in ("temperature", "n", "logprobs"):
            self.skipped.labels(reason)


def opt_in(headers: list[tuple[bytes, bytes]], data: dict[str, Any]) -> str | None:
    """``"on"``, ``"allow-sampled"``, ``"semantic"``, ``"semantic,allow-sampled"`` or None
    (not asked); the body wins over the header. Either takes a comma-separated list."""
    options = data.get("switchyard")
    if isinstance(options, dict) and FIELD in options:
        given = options[FIELD]
        if given is True or given is False:
            return "on" if given else None
        if isinstance(given, str) and (mode := _mode(given)) is not None:
            return mode
        raise InvalidRequestError(
            f"'switchyard.cache' must be true, false, '{SEMANTIC}', '{ALLOW_SAMPLED}' or "
            f"'{SEMANTIC},{ALLOW_SAMPLED}'",
            param="switchyard",
        )
    for name, value in headers:
        if name == HEADER:
            text = value.decode("latin-1").strip().lower()
            if text in ("off", "false", "0"):
                return None
            if (mode := _mode(text)) is None:
                raise InvalidRequestError(
                    f"x-switchyard-cache must be on, off, {SEMANTIC}, {ALLOW_SAMPLED} or "
                    f"{SEMANTIC},{ALLOW_SAMPLED}",
                    param="header",
                )
            return mode
    return None


def _mode(text: str) -> str | None:
    words = {w.strip() for w in text.lower().split(",")}
    if not words <= _WORDS:
        return None
    allow = ALLOW_SAMPLED in words
    if SEMANTIC in words:
        return f"{SEMANTIC},{ALLOW_SAMPLED}" if allow else SEMANTIC
    return ALLOW_SAMPLED if allow else "on"


def sampled(data: dict[str, Any], cap: Capability) -> str | None:
    """Why an answer to ``data`` may differ from call to call (None: it may not)."""
    if cap is Capability.embeddings:
        return None
    temperature = data.get("temperature")
    if temperature is None or not isinstance(temperature, int | float) or temperature > 0:
        return "temperature"  # absent: the engine samples by default
    n = data.get("n")
    if isinstance(n, int) and n > 1:
        return "n"
    if data.get("logprobs") or data.get("top_logprobs"):
        return "logprobs"
    return None


def request_key(data: dict[str, Any], headers: list[tuple[bytes, bytes]], scope: Any) -> str:
    """The hash that identifies a request's answer (see the module docstring)."""
    body = {k: v for k, v in data.items() if k not in IGNORED}
    options = body.get("switchyard")
    if isinstance(options, dict):
        options = {k: v for k, v in options.items() if k != FIELD}
        if options:
            body["switchyard"] = options
        else:
            del body["switchyard"]
    routing = sorted(
        (n.decode("latin-1"), v.decode("latin-1"))
        for n, v in headers
        if n.startswith(b"x-switchyard-") and n != HEADER
    )
    canonical = orjson.dumps([scope, routing, body], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=20).hexdigest()


class ResponseCache:
    """The proxy's hook: ``serve`` answers a hit, or returns the ``send`` that records the
    answer of an opted-in miss."""

    def __init__(
        self, config: CacheConfig, store: CacheStore, metrics: CacheMetrics,
        routing: RouterService | None = None, index: SemanticIndex | None = None,
    ) -> None:  # fmt: skip
        self.config = config
        self.store = store
        self.metrics = metrics
        self.routing = routing  # the embedder; None: semantic opt-ins are refused
        self.index = index  # None without routing
        self._puts: set[asyncio.Task[None]] = set()  # writes after the answer was sent

    async def serve(
        self, headers: list[tuple[bytes, bytes]], payload: Payload, cap: Capability,
        key: KeyRecord | None, call: Call, send: Send,
    ) -> Send | None:  # fmt: skip
        """None when answered from the cache; else the ``send`` to go on with."""
        wanted = opt_in(headers, payload.data)
        if wanted is None or cap not in CACHEABLE:
            return send
        allow = wanted.endswith(ALLOW_SAMPLED)
        if not allow and (reason := sampled(payload.data, cap)) is not None:
            self.metrics.skipped.labels(reason).inc()
            return send
        scope = ["-"] if key is None else [key.tenant, sorted(key.models)]
        query = None
        if wanted.startswith(SEMANTIC) and cap is not Capability.embeddings:
            query = self._query(payload, cap, scope)  # a 400 without an embedder
        digest = request_key(payload.data, headers, scope)
        try:
            entry = await self.store.get(digest)
        except StoreUnavailableError:
            self.metrics.errors.labels("get").inc()
            return send
        if entry is not None and await self._replay(entry, payload, call, send):
            self.metrics.hits.labels("exact").inc()
            return None
        recorder = Recorder(self, digest, send, query)
        if query is not None:
            assert self.routing is not None
            if self.routing.resolve(payload.model) is not None:
                return recorder  # looked up once routed (``routed``), with its embedding
            query.model = payload.model
            query.vector = await self._vector(query.text)
            if query.vector is not None and await self._semantic(query, payload, call, send):
                return None
        self._missed(call, query)
        return recorder

    async def routed(self, send: Send, payload: Payload, call: Call) -> bool:
        """After a routing decision: a semantic opt-in looks for an answer of the chosen
        model to a similar prompt (True: answered; its decision is recorded as ``cached``)."""
        if type(send) is not Recorder or (query := send.query) is None or query.model:
            return False
        route, routing = call.route, self.routing
        assert route is not None and routing is not None
        query.model = route.model
        query.vector = await self._vector(query.text, route.embedding)
        route.embedding = None  # the batch's matrix is not kept alive by a pending decision
        if query.vector is not None and await self._semantic(query, payload, call, send.send):
            routing.finish(route, route.record(route.model, "-", "cached", None, None))
            return True
        self._missed(call, query)
        return False

    def _query(self, payload: Payload, cap: Capability, scope: Any) -> Query:
        from switchyard.gateway.cache.semantic import Query, params_of, scope_hash
        from switchyard.gateway.payload import PROMPT_FIELD

        if self.routing is None:
            raise InvalidRequestError(
                "semantic caching needs the prompt embedder, which only a gateway with "
                "routers loads; ask for 'on' (exact matches) instead",
                param="switchyard",
            )
        field = PROMPT_FIELD[cap]
        prompt = payload.data.get(field)
        if cap is Capability.completions and isinstance(prompt, list):
            prompt = prompt[0] if prompt else ""
        if not isinstance(prompt, str | list):
            raise InvalidRequestError("the prompt cannot be embedded", param=field)
        text = self.routing.prompt_of(prompt)
        return Query(scope_hash(scope), params_of(payload.data, field), text)

    async def _vector(self, text: str, routed: Any = None) -> Any:
        """The prompt's semantic-cache embedding, or None when its embedder cannot run (the
        request goes on uncached; counted under ``op="embed"``)."""
        assert self.routing is not None
        try:
            return await self.routing.semantic_vector(text, routed)
        except (OSError, RuntimeError, ValueError) as err:
            self.metrics.errors.labels("embed").inc()
            log.warning("semantic cache: cannot embed the prompt (%s); answering uncached", err)
            return None

    async def _semantic(self, query: Query, payload: Payload, call: Call, send: Send) -> bool:
        """Answer from the closest prompt at or above the threshold (True: answered)."""
        assert self.index is not None
        try:
            found = await self.index.search(query)
        except StoreUnavailableError:
            self.metrics.errors.labels("index_get").inc()
            return False
        if found is None or found[1] < self.config.semantic_threshold:
            return False
        digest, similarity = found
        try:
            entry = await self.store.get(digest)
        except StoreUnavailableError:
            self.metrics.errors.labels("get").inc()
            return False
        extra = (SIMILARITY, f"{similarity:.4f}".encode())
        if entry is None or not await self._replay(entry, payload, call, send, extra):
            return False
        self.metrics.hits.labels(SEMANTIC).inc()
        self.metrics.similarity.observe(similarity)
        return True

    def _missed(self, call: Call, query: Query | None) -> None:
        self.metrics.misses.labels("exact" if query is None else SEMANTIC).inc()
        call.extra.append((HEADER, b"miss"))

    async def _replay(
        self, entry: bytes, payload: Payload, call: Call, send: Send,
        extra: tuple[bytes, bytes] | None = None,
    ) -> bool:  # fmt: skip
        kind, body = entry[:1], entry[1:]
        if payload.stream:
            if kind == JSON:
                built = chunks(body, payload.wants_usage)
                if built is None:
                    return False
                body = built
            head = list(STREAM_HEADERS)
        elif kind == JSON:
            head = [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())]  # fmt: skip
        else:
            return False
        head.append((HEADER, b"hit"))
        if extra is not None:
            head.append(extra)
        await send({"type": "http.response.start", "status": 200, "headers": call.headers(head)})
        await send({"type": "http.response.body", "body": body})
        return True

    async def put(self, digest: str, entry: bytes, query: Query | None = None) -> None:
        try:
            await self.store.put(digest, entry)
        except StoreUnavailableError:
            self.metrics.errors.labels("put").inc()
            return
        self.metrics.stores.inc()
        if query is None or query.vector is None or not query.model or self.index is None:
            return
        try:  # the answer first: an index entry never points to nothing yet
            await self.index.add(query, digest)
        except StoreUnavailableError:
            self.metrics.errors.labels("index_put").inc()

    def store_later(self, digest: str, entry: bytes, query: Query | None = None) -> None:
        """Store ``entry`` off the request's path: the answer has been sent already, and the
        request finishes without waiting on the store (a Redis round trip)."""
        task = asyncio.get_running_loop().create_task(self.put(digest, entry, query))
        self._puts.add(task)
        task.add_done_callback(self._puts.discard)

    async def close(self) -> None:
        if self._puts:  # writes in flight finish first (each bounded by state.timeout_s)
            await asyncio.gather(*self._puts, return_exceptions=True)
        await self.store.close()


class Recorder:
    """A ``send`` that passes everything on and stores a whole 200 answer at its end (and,
    for a semantic opt-in, its prompt in the index of the model that answered)."""

    __slots__ = ("body", "cache", "digest", "kind", "query", "send", "status")

    def __init__(
        self, cache: ResponseCache, digest: str, send: Send, query: Query | None = None
    ) -> None:
        self.cache, self.digest, self.send, self.query = cache, digest, send, query
        self.status = 0
        self.kind = JSON
        self.body: bytearray | None = bytearray()

    async def __call__(self, message: Message) -> None:
        await self.send(message)
        if message["type"] == "http.response.start":
            self.status = message["status"]
            for name, value in message.get("headers", ()):
                if name == b"content-type" and value.startswith(b"text/event-stream"):
                    self.kind = SSE
                elif name == b"x-switchyard-fallback" and self.query is not None:
                    self.query.model = value.decode("latin-1")  # its answer, not the chosen's
            return
        if message["type"] != "http.response.body" or self.body is None:
            return
        self.body += message.get("body", b"")
        if len(self.body) > self.cache.config.max_body_bytes:
            self.body = None  # too large to keep
        elif not message.get("more_body", False):
            body, self.body = bytes(self.body), None
            if self.status == 200 and (self.kind == JSON or _whole_stream(body)):
                self.cache.store_later(self.digest, self.kind + body, self.query)


def _whole_stream(body: bytes) -> bool:
    """A stream that ended normally: [DONE] last, no error event in it."""
    return body.endswith(DONE) and b'data: {"error"' not in body


def chunks(body: bytes, usage: bool) -> bytes | None:
    """A stored JSON answer as the SSE stream a streamed request would have got (None: an
    answer with no stream form, such as embeddings)."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    kind = doc.get("object") if isinstance(doc, dict) else None
    if kind not in ("chat.completion", "text_completion"):
        return None
    head = {k: doc[k] for k in ("id", "created", "model") if k in doc}
    events: list[dict[str, Any]] = []
    if kind == "chat.completion":
        head["object"] = "chat.completion.chunk"
        for c in doc.get("choices", ()):
            delta = {k: v for k, v in c.get("message", {}).items() if v is not None}
            for i, tool in enumerate(delta.get("tool_calls", ())):
                tool["index"] = i
            index, reason = c.get("index", 0), c.get("finish_reason")
            for part, end in ((delta, None), ({}, reason)):
                choice = {"index": index, "delta": part, "finish_reason": end}
                events.append({**head, "choices": [choice]})
    else:
        head["object"] = "text_completion"
        events += [{**head, "choices": [c]} for c in doc.get("choices", ())]
    if usage and doc.get("usage") is not None:
        events.append({**head, "choices": [], "usage": doc["usage"]})
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + DONE


def open_cache(
    config: CacheConfig,
    state: StateConfig,
    registry: CollectorRegistry,
    routing: RouterService | None = None,
) -> ResponseCache | None:
    """The cache the settings ask for (None when off): Redis when ``state.redis_url`` is set;
    semantic matching when ``routing`` (its embedder) is there."""
    if not config.enabled:
        return None
    store: CacheStore
    index: SemanticIndex | None = None
    if routing is not None:  # numpy: imported only with routers, which load it anyway
        from switchyard.gateway.cache.semantic import MemoryIndex, RedisIndex
    if state.redis_url is None:
        store = MemoryStore(config)
        index = MemoryIndex(config) if routing is not None else None
    else:
        from switchyard.gateway.redis_client import connect, target_of

        client = connect(target_of(state), state.timeout_s, max_connections=32)
        store = RedisStore(client, state.key_prefix, config.ttl_s)
        index = RedisIndex(client, state.key_prefix, config) if routing is not None else None
    return ResponseCache(config, store, CacheMetrics(registry), routing, index)
