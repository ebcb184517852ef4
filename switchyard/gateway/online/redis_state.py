"""``RedisState``: outcome records, feedback and bandit statistics shared through Redis.

Key layout. On one master (single node, Sentinel) every key has the tag ``{prefix}``; on a
Redis Cluster the tag in brackets below, so decisions and routers spread over the masters::

    {prefix}:outcomes                     stream of records and feedback (XADD MAXLEN ~ n); one
                                          key, so readers get every replica's records in order
    {prefix[:<id>]}:decision:<id>         what feedback needs (JSON), expires after decision_ttl_s
    {prefix[:<id>]}:feedback:<id>         the first feedback given (SET NX GET), same expiry
    {prefix[:bandit:<k>]}:bandit:<k>      k = <router>:<shape>; hash: ``step``; per arm ``A:``,
                                          ``b:``, ``s:``, ``n:``

The request path never waits on Redis. ``publish``, ``observe`` and ``feedback_given`` append
to bounded buffers. One background task flushes them, then refreshes every router's
statistics each ``refresh_s``:
- records go out in pipelines of up to 256;
- observations are folded into the arm statistics per router: read, fold here (the discount
  applied lazily, ``switchyard.routers.online.stats``), then write with a compare-and-set
  script on the ``step`` field, redone if another replica wrote first (one key: works on a
  Cluster too).

Outcome records survive a failover: with ``state.replica_acks`` = n (1 on a Cluster or Sentinel
by default), each flushed batch ends in ``WAIT n`` on the connection (on a Cluster: on each
master) that wrote it, and leaves the buffer only after that answers. A batch that fails on the
way stays buffered and is written again (a record may then appear twice; the decision id tells).
If fewer than n replicas confirm within ``timeout_s`` (no replica left after a failover), the
batch still counts as written and the task logs it once: those records survive the next
failover only if a replica caught up first.

When Redis is unreachable the task logs it once, counts the failure and retries with backoff.
The buffers are kept meanwhile; when one is full, its oldest entry is dropped and counted.
When Redis is back, the task logs how much it flushed. If Redis came back empty (a restart
without persistence), the first replica to notice seeds each router's statistics with the last
ones it read, then folds what it buffered; observations flushed after that read are lost.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import orjson

from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.online.store import Bandits
from switchyard.gateway.outcomes import Decided, Feedback, OutcomeRecord
from switchyard.gateway.redis_client import (
    UNAVAILABLE,
    KeyTags,
    call,
    connect,
    failed,
    ready,
    target_of,
)
from switchyard.gateway.settings import RoutingConfig
from switchyard.gateway.state import StateConfig, StoreHealth, StoreUnavailableError
from switchyard.routers.online.stats import ArmStats, Observation, fold

log = logging.getLogger("switchyard.state")

T = TypeVar("T")
FLUSH_BATCH = 256
FLUSH_DELAY_S = 0.005
MAX_BACKOFF_S = 2.0
STATS_FIELDS = ("A", "b", "s", "n")

# KEYS: the statistics hash. ARGV: the ``step`` read ('' when absent), then field, value pairs.
# Writes only if nobody wrote since the read (every fold moves ``step``); returns 1 if written.
CAS_LUA = """
local step = redis.call('HGET', KEYS[1], 'step') or ''
if step ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
return 1
"""


class _Buffer(deque[tuple[int, T]]):
    """A bounded FIFO whose entries carry a sequence number, so a flush can remove exactly
    what it wrote even if older entries were dropped meanwhile."""

    def __init__(self, limit: int, dropped: Callable[[], None]) -> None:
        super().__init__()
        self.limit = limit
        self._seq = itertools.count()
        self._on_drop = dropped
        self.dropped = 0

    def put(self, item: T) -> None:
        if len(self) >= self.limit:
            self.popleft()
            self.dropped += 1
            self._on_drop()
        self.append((next(self._seq), item))

    def done(self, upto: int) -> int:
        """Forget entries up to sequence ``upto``; returns how many."""
        n = 0
        while self and self[0][0] <= upto:
            self.popleft()
            n += 1
        return n


class RedisState:
    """``SharedState`` in Redis (see the module docstring)."""

    def __init__(self, state: StateConfig, routing: RoutingConfig, metrics: GatewayMetrics) -> None:
        self._target = target_of(state)
        self._timeout_s = state.timeout_s
        self._tags = KeyTags(state.key_prefix, self._target.spread)
        single = self._target.mode == "single"
        acks = state.replica_acks
        self._acks = acks if acks is not None else (0 if single else 1)
        self._acked = True  # the last batch got its replica acknowledgements
        self._routing = routing
        self._metrics = metrics
        drop = metrics.outcomes_dropped.inc
        self._records: _Buffer[tuple[str, bytes, str | None, bytes | None]] = _Buffer(
            routing.buffer, drop
        )
        self._rows: _Buffer[tuple[str, Observation]] = _Buffer(routing.buffer, drop)
        self._client: Any = None
        self._cas: Any = None
        self._bandits: Bandits | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._down_since: float | None = None
        self.health = StoreHealth("routing")
        metrics.watch_store(self.health)
        self._flushed_while_down = 0
        # Per router, the last statistics read from Redis: what a Redis that lost them gets.
        self._last: dict[str, tuple[dict[str, ArmStats], int]] = {}

    # --- keys -----------------------------------------------------------------------------
    @property
    def stream_key(self) -> str:
        return f"{self._tags.tag()}:outcomes"

    def decision_key(self, decision_id: str) -> str:
        return f"{self._tags.tag(decision_id)}:decision:{decision_id}"

    def feedback_key(self, decision_id: str) -> str:
        return f"{self._tags.tag(decision_id)}:feedback:{decision_id}"

    def bandit_key(self, key: str) -> str:
        return f"{self._tags.tag('bandit:' + key)}:bandit:{key}"

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self, bandits: Bandits) -> None:
        # No retries in the client: the loop below retries, with backoff.
        self._client = connect(self._target, self._timeout_s, max_connections=8)
        self._cas = self._client.register_script(CAS_LUA)
        self._bandits = bandits
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="switchyard-state")

    async def close(self) -> None:
        """Stop the task after one last, bounded attempt to flush the buffers."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            try:
                await asyncio.wait_for(self._flush(), timeout=self._timeout_s * 4)
            except (TimeoutError, *UNAVAILABLE) as err:
                log.warning("state store: %d records not flushed at shutdown (%s)",
                            len(self._records), err)  # fmt: skip
        if self._client is not None:
            await self._client.aclose()

    # --- hand-overs (never block) ------------------------------------------------------------
    def publish(self, record: OutcomeRecord, decided: Decided) -> None:
        data = orjson.dumps(record.as_json())
        self._records.put(("outcome", data, record.decision_id, orjson.dumps(decided.as_json())))
        self._handed()

    def feedback_given(self, answer: Feedback, decided: Decided) -> None:
        data = {"decision_id": answer.decision_id, "score": answer.score,
                "reward": answer.reward, "router": decided.router, "model": decided.model,
                "time": time.time()}  # fmt: skip
        self._records.put(("feedback", orjson.dumps(data), None, None))
        self._handed()

    def append(self, kind: str, data: bytes) -> None:
        self._records.put((kind, data, None, None))
        self._handed()

    def observe(self, router: str, row: Observation) -> None:
        self._rows.put((router, row))
        self._handed()

    def _handed(self) -> None:
        self._metrics.outcomes_buffered.set(len(self._records) + len(self._rows))
        self._wake.set()

    # --- feedback given to another replica ---------------------------------------------------
    async def _call(self, op: Callable[[Any], Awaitable[T]]) -> T:
        """A feedback lookup on the request path: a failure is counted and raised as
        ``StoreUnavailableError`` (mapped by ``redis_client.call``), never retried here."""
        assert self._client is not None, "start() first"
        try:
            return await call(self._client, op)
        except StoreUnavailableError:
            self._metrics.store_errors.inc()
            raise

    async def lookup(self, decision_id: str) -> Decided | None:
        raw = await self._call(lambda r: r.get(self.decision_key(decision_id)))
        return None if raw is None else Decided.from_json(orjson.loads(raw))

    async def claim(self, answer: Feedback) -> tuple[Feedback, bool]:
        key = self.feedback_key(answer.decision_id)
        data = orjson.dumps({"score": answer.score, "reward": answer.reward})

        # SET NX GET: one command on one key (Redis >= 7.0), so it is atomic on a Cluster too.
        ttl = self._routing.decision_ttl_s
        old = await self._call(lambda r: r.set(key, data, nx=True, ex=ttl, get=True))
        stored = orjson.loads(data if old is None else old)
        return Feedback(answer.decision_id, stored["score"], stored["reward"]), old is None

    # --- the background task -------------------------------------------------------------------
    async def _run(self) -> None:
        backoff = 0.0
        next_refresh = 0.0
        while True:
            wait = max(next_refresh - time.monotonic(), 0.0)
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass
            else:
                await asyncio.sleep(FLUSH_DELAY_S)  # let a burst share one round trip
            self._wake.clear()
            try:
                await self._flush()
                if time.monotonic() >= next_refresh:
                    await self._refresh()
                    next_refresh = time.monotonic() + self._routing.refresh_s
            except UNAVAILABLE as err:
                await failed(self._client)
                self._failed(err)
                backoff = min(max(backoff * 2, 0.1), MAX_BACKOFF_S)
                await asyncio.sleep(backoff)  # records keep arriving: do not spin on them
                continue
            except Exception:  # a bug must not stop sharing for good; say so, go on
                log.exception("state store: unexpected error in the background task")
                await asyncio.sleep(MAX_BACKOFF_S)
                continue
            backoff = 0.0
            self._recovered()

    def _failed(self, err: BaseException) -> None:
        self._metrics.store_errors.inc()
        self.health.mark(False)
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._flushed_while_down = len(self._records)
            log.warning(
                "state store: Redis unreachable (%s); routing goes on with the last bandit "
                "statistics, outcome records are buffered (%d now, at most %d)",
                err, len(self._records), self._routing.buffer,
            )  # fmt: skip

    def _recovered(self) -> None:
        self.health.mark(True)
        if self._down_since is not None:
            log.info(
                "state store: Redis is back after %.1f s; flushed the buffered outcome records "
                "(%d when it went away, %d dropped so far)",
                time.monotonic() - self._down_since, self._flushed_while_down,
                self._records.dropped + self._rows.dropped,
            )  # fmt: skip
            self._down_since = None

    async def _flush(self) -> None:
        assert self._client is not None
        client = await ready(self._client)
        while self._records:
            batch = list(itertools.islice(self._records, FLUSH_BATCH))
            written = [self.stream_key]
            async with client.pipeline(transaction=False) as pipe:
                for _, (kind, data, decision_id, decided) in batch:
                    pipe.xadd(self.stream_key, {"kind": kind, "data": data},
                              maxlen=self._routing.stream_maxlen, approximate=True)  # fmt: skip
                    if decision_id is not None and decided is not None:
                        written.append(self.decision_key(decision_id))
                        pipe.set(written[-1], decided, ex=self._routing.decision_ttl_s)
                waits = await self._wait_for_replicas(pipe, written)
                replies = await pipe.execute()
            self._replicated(replies[len(replies) - waits :])
            self._records.done(batch[-1][0])
        while self._rows:
            batch_rows = list(itertools.islice(self._rows, FLUSH_BATCH))
            by_router: dict[str, list[Observation]] = {}
            for _, (router, row) in batch_rows:
                by_router.setdefault(router, []).append(row)
            for router, rows in by_router.items():
                await self._fold(router, rows)
            self._rows.done(batch_rows[-1][0])
        self._metrics.outcomes_buffered.set(len(self._records) + len(self._rows))

    async def _wait_for_replicas(self, pipe: Any, keys: list[str]) -> int:
        """End the pipeline with ``WAIT`` on every connection that writes ``keys`` (one on a
        single master, one per master on a Cluster); returns how many were added."""
        if self._acks == 0:
            return 0
        # Half the socket timeout, so the answer comes before the read times out; 1 ms while
        # replicas are known to be missing, so a master left alone is not waited on each time.
        wait_ms = max(int(self._timeout_s * 500), 1) if self._acked else 1
        wait = ("WAIT", self._acks, wait_ms)
        if not self._target.spread:
            pipe.execute_command(*wait)
            return 1
        nodes = {node.name: node for node in map(self._client.get_node_from_key, keys)}
        for node in nodes.values():
            pipe.execute_command(*wait, target_nodes=node)
        return len(nodes)

    def _replicated(self, acks: list[Any]) -> None:
        """Log once when batches start or stop being written without their replicas."""
        acked = all(int(n) >= self._acks for n in acks)
        if acked != self._acked:
            self._acked = acked
            if acked:
                log.info("state store: outcome records are replicated again")
            else:
                log.warning("state store: outcome records are written without %d replica "
                            "acknowledgement(s) (replicas down?); a failover now may lose "
                            "the latest", self._acks)  # fmt: skip

    async def _fold(self, router: str, rows: list[Observation]) -> None:
        """Fold ``rows`` into the router's shared statistics: read, fold, compare-and-set on
        ``step``, again if another replica wrote first.

        If the statistics are gone (Redis restarted empty), they are first seeded, in the same
        write, with the last ones this replica read from Redis."""
        bandits = self._bandits
        if bandits is None or router not in bandits.names():
            return
        key = self.bandit_key(bandits.key(router))
        dim, discount = bandits.shape(router)
        arms = sorted({row.arm for row in rows} | set(self._last.get(router, ({}, 0))[0]))
        fields = ["step"] + [f"{f}:{arm}" for arm in arms for f in STATS_FIELDS]
        while True:
            values = await self._client.hmget(key, fields)
            seeded = values[0] is None and router in self._last
            if seeded:
                last, step = self._last[router]
                stats = dict(last)  # fold replaces entries, never edits arrays
            else:
                step = int(values[0] or 0)
                stats = _decode(dict(zip(fields[1:], values[1:], strict=True)), dim)
            step = fold(stats, step, rows, discount, dim)
            pairs = [x for item in _encode(stats, step).items() for x in item]
            if await self._cas(keys=[key], args=[values[0] or b"", *pairs]):
                break  # else another replica wrote first: read again and redo
        if seeded:
            log.info("state store: router %s had no shared bandit statistics (Redis restarted "
                     "empty?); seeded them with the last ones read here", router)  # fmt: skip

    async def _refresh(self) -> None:
        bandits = self._bandits
        assert self._client is not None and bandits is not None
        client = await ready(self._client)
        for router in bandits.names():
            key = self.bandit_key(bandits.key(router))
            raw = await client.hgetall(key)
            if not raw:
                if router in self._last:
                    await self._fold(router, [])
                continue
            fields = {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}
            step = int(fields.pop("step", b"0"))
            stats = _decode(fields, bandits.shape(router)[0])
            self._last[router] = (stats, step)
            await bandits.apply(router, stats, step)

    def view(self) -> dict[str, Any]:
        return {
            "kind": "redis",
            "mode": self._target.mode,
            "replicated": self._acked,  # the last batch had its replica acknowledgements
            "connected": self._down_since is None,
            "buffered_records": len(self._records),
            "buffered_observations": len(self._rows),
            "last_read_step": {router: step for router, (_, step) in self._last.items()},
        }


def _decode(fields: dict[str, Any], dim: int) -> dict[str, ArmStats]:
    """Arm statistics from hash fields ``A:<arm>``, ``b:<arm>``, ``s:<arm>``, ``n:<arm>``."""
    out: dict[str, ArmStats] = {}
    for name, value in fields.items():
        kind, _, arm = name.partition(":")
        if kind != "A" or value is None:
            continue
        b, s, n = (fields.get(f"{f}:{arm}") for f in STATS_FIELDS[1:])
        if b is None:
            continue
        out[arm] = ArmStats.from_bytes(value, b, int(s or 0), int(n or 0), dim)
    return out


def _encode(stats: dict[str, ArmStats], step: int) -> dict[Any, Any]:
    mapping: dict[Any, Any] = {"step": step}
    for arm, arm_stats in stats.items():
        A, b = arm_stats.to_bytes()
        mapping |= {f"A:{arm}": A, f"b:{arm}": b}
        mapping |= {f"s:{arm}": arm_stats.step, f"n:{arm}": arm_stats.n}
    return mapping
