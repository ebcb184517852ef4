"""One way to reach Redis for both state stores: the URL forms, the three topologies, the key
tags, the client factory (``connect``), and the one boundary where a Redis failure becomes
``StoreUnavailableError`` (``UNAVAILABLE``, ``call``).

The tenancy store (``switchyard.gateway.tenancy.redis_store``) and the routing state
(``switchyard.gateway.online.redis_state``) each hold their own client, built here from the
same ``StateConfig`` (``switchyard.gateway.state``), and both map a failure through ``call``.
They fail differently on purpose: the tenancy store answers on the request path (the caller
fails open or closed), the routing state flushes in the background (its loop catches
``UNAVAILABLE``, keeps its buffers and retries with backoff)::

    redis://[user:password@]host:port[/db]             one server (also rediss:// for TLS)
    redis+cluster://[user:password@]host:port[,host:port...]
                                                        Redis Cluster: any masters or replicas
                                                        to start from; MOVED/ASK are followed
    redis+sentinel://[user:password@]host:port[,host:port...]/master_name[/db]
                                                        Sentinel: the sentinels, then the name
                                                        of the master they watch

``rediss+cluster://`` and ``rediss+sentinel://`` connect to the data nodes over TLS. The
credentials are the data nodes' (sentinels are asked without them). ``state.mode`` may name
the topology instead of the scheme (``cluster`` with a ``redis://`` URL takes its host as a
starting node; ``sentinel`` reads the path as the master's name).

Key tags: on one master (single node, Sentinel) every key keeps the tag ``{prefix}`` (the layout
earlier versions wrote, so an upgrade keeps spend counters and bandit statistics). On a Cluster
the keys of one owner share a tag of their own (``{prefix:key:<id>}``, ``{prefix:bandit:...}``),
so owners spread over the masters while each script's keys stay in one slot.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MasterDownError,
    MovedError,
    OutOfMemoryError,
    ReadOnlyError,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchyard.gateway.state import StateConfig, StoreUnavailableError

log = logging.getLogger("switchyard.state")
Mode = Literal["single", "cluster", "sentinel"]
T = TypeVar("T")

# Failures that mean "Redis cannot be used right now": unreachable, too slow, loading, full
# (OOM), a replica or a moving slot mid-failover, a slot no master serves yet. Anything else
# (a bug) is not hidden.
UNAVAILABLE = (
    RedisConnectionError, RedisTimeoutError, OSError, ReadOnlyError, OutOfMemoryError,
    MasterDownError, ClusterDownError, TryAgainError, MovedError, AskError, SlotNotCoveredError,
)  # fmt: skip

SCHEMES: dict[str, tuple[Mode | None, bool]] = {
    "redis": (None, False),
    "rediss": (None, True),
    "redis+cluster": ("cluster", False),
    "rediss+cluster": ("cluster", True),
    "redis+sentinel": ("sentinel", False),
    "rediss+sentinel": ("sentinel", True),
}


def unavailable(err: BaseException) -> StoreUnavailableError:
    """The error both stores raise for a Redis that cannot be used now."""
    return StoreUnavailableError(f"redis unavailable: {err}")


@dataclass(frozen=True)
class RedisTarget:
    """Where the state lives, parsed from ``state.redis_url`` and ``state.mode``."""

    mode: Mode
    nodes: tuple[tuple[str, int], ...]  # the server, the starting nodes, or the sentinels
    ssl: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = None
    master: str | None = None  # Sentinel: the watched master's name

    @property
    def spread(self) -> bool:
        """Whether keys of different owners may live on different masters."""
        return self.mode == "cluster"


def parse_target(url: str, mode: str = "auto") -> RedisTarget:
    """The topology a URL names (``ValueError`` with the accepted forms if it names none)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in SCHEMES:
        raise ValueError(f"redis_url: scheme must be one of {', '.join(SCHEMES)}; got {url!r}")
    from_scheme, ssl = SCHEMES[scheme]
    chosen: Mode = from_scheme or "single"
    if mode != "auto":
        if from_scheme is not None and from_scheme != mode:
            raise ValueError(f"state.mode is {mode!r} but redis_url says {from_scheme!r}")
        chosen = mode  # type: ignore[assignment]  # validated by StateConfig
    userinfo, _, hostpart = rest.rpartition("@")
    location, _, path = hostpart.partition("/")
    path = path.split("?", 1)[0]
    nodes = tuple(_host_port(item, url) for item in location.split(",") if item)
    if not nodes:
        raise ValueError(f"redis_url: no host in {url!r}")
    username, password = _credentials(userinfo)
    parts = [p for p in path.split("/") if p]
    master = None
    if chosen == "sentinel":
        if not parts:
            raise ValueError("redis_url: a Sentinel URL ends in /master_name, e.g. "
                             "redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster")  # fmt: skip
        master, parts = parts[0], parts[1:]
    elif len(nodes) > 1 and chosen == "single":
        raise ValueError("redis_url: several hosts need redis+cluster:// or redis+sentinel://")
    db = _db(parts, url)
    if chosen == "cluster" and db != 0:
        raise ValueError("redis_url: a Redis Cluster has only database 0")
    return RedisTarget(chosen, nodes, ssl, db, username, password, master)


def _host_port(item: str, url: str) -> tuple[str, int]:
    if item.startswith("["):  # [::1]:6379
        host, _, port = item[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = item.partition(":")
    try:
        return host, int(port) if port else 6379
    except ValueError:
        raise ValueError(f"redis_url: bad port in {item!r} ({url!r})") from None


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, sep, password = userinfo.partition(":")
    if not sep:
        return None, unquote(user)  # redis://secret@host: a password alone
    return unquote(user) or None, unquote(password)


def _db(parts: list[str], url: str) -> int:
    if not parts:
        return 0
    if len(parts) > 1 or not parts[0].isdigit():
        raise ValueError(f"redis_url: the path must be a database number in {url!r}")
    return int(parts[0])


def redact(url: str, mask: str = "***") -> str:
    """The URL with ``mask`` for its credentials (they may be secrets); any form above."""
    scheme, sep, rest = url.partition("://")
    _, at, hostpart = rest.rpartition("@")
    if not sep or not at:
        return url
    return f"{scheme}://{mask}@{hostpart}"


class KeyTags:
    """Hash tags for the keys of one owner (see the module docstring)."""

    def __init__(self, prefix: str, spread: bool) -> None:
        self.prefix = prefix
        self.spread = spread

    def tag(self, owner: str | None = None) -> str:
        """``{prefix}`` on one master or for shared keys; ``{prefix:owner}`` on a Cluster."""
        if owner is None or not self.spread:
            return "{" + self.prefix + "}"
        return "{" + self.prefix + ":" + owner + "}"


def slot(key: str) -> int:
    """The Cluster slot of ``key`` (what groups a script's keys)."""
    from redis.crc import key_slot

    return key_slot(key.encode())


def group_by_slot(keys: Iterable[str]) -> dict[int, list[int]]:
    """Indexes of ``keys`` grouped by Cluster slot, in order of first appearance."""
    groups: dict[int, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(slot(key), []).append(index)
    return groups


def connect(
    target: RedisTarget, timeout_s: float, max_connections: int, decode: bool = False
) -> Any:
    """A new client for ``target`` (the caller owns and closes it), with no retries: a script
    is not idempotent, and both stores decide themselves what a failure means.

    Single node: ``Redis`` on a blocking pool (waits ``timeout_s`` for a free connection).
    Cluster: ``RedisCluster`` (per-node pools; partial slot coverage still serves the covered
    slots during a failover). Sentinel: ``Sentinel.master_for``, which asks the sentinels for
    the master on every new connection and drops connections to a demoted one."""
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    common: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "retry": Retry(NoBackoff(), 0),
        "decode_responses": decode,
        "username": target.username,
        "password": target.password,
    }
    if target.mode == "cluster":
        return _cluster(target, max_connections, common)
    if target.mode == "sentinel":
        return _sentinel(target, timeout_s, max_connections, common)
    from redis.asyncio import BlockingConnectionPool, Redis
    from redis.asyncio.connection import Connection, SSLConnection

    host, port = target.nodes[0]
    pool = BlockingConnectionPool(
        connection_class=SSLConnection if target.ssl else Connection,
        max_connections=max_connections,
        timeout=timeout_s,  # waiting for a free pooled connection
        host=host,
        port=port,
        db=target.db,
        **common,
    )
    return Redis.from_pool(pool)


def connect_sync(target: RedisTarget, timeout_s: float) -> Any:
    """A blocking client for ``target``, for command-line tools (``switchyard outcomes``)."""
    import redis
    from redis.cluster import ClusterNode, RedisCluster
    from redis.sentinel import Sentinel

    common: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "username": target.username,
        "password": target.password,
        "ssl": target.ssl,
    }
    if target.mode == "cluster":
        nodes = [ClusterNode(host, port) for host, port in target.nodes]  # type: ignore[no-untyped-call, unused-ignore]
        return RedisCluster(startup_nodes=nodes, require_full_coverage=False, **common)
    if target.mode == "sentinel":
        assert target.master is not None
        kwargs = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
        sentinels = Sentinel(list(target.nodes), sentinel_kwargs=kwargs)  # type: ignore[no-untyped-call, unused-ignore]
        return sentinels.master_for(target.master, db=target.db, **common)  # type: ignore[no-untyped-call, unused-ignore]
    host, port = target.nodes[0]
    return redis.Redis(host=host, port=port, db=target.db, **common)


def _cluster(target: RedisTarget, max_connections: int, common: dict[str, Any]) -> Any:
    from redis.asyncio.cluster import ClusterNode, RedisCluster

    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        require_full_coverage=False,
        max_connections=max_connections,
        ssl=target.ssl,
        **common,
    )


def _sentinel(
    target: RedisTarget, timeout_s: float, max_connections: int, common: dict[str, Any]
) -> Any:
    from redis.asyncio.sentinel import Sentinel

    assert target.master is not None
    sentinels = Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
        list(target.nodes),
        sentinel_kwargs={"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s},
    )
    client = sentinels.master_for(
        target.master,
        redis_class=SentinelMaster,
        max_connections=max_connections,
        db=target.db,
        ssl=target.ssl,
        **common,
    )
    # A copy: redis-py reorders its list in place, and concurrent lookups can leave a client
    # twice in it and another not at all, which would then never be closed.
    client.sentinels = list(sentinels.sentinels)
    return client


class SentinelMaster(Redis):
    """A Sentinel-managed master's client; closing it closes the sentinel connections too."""

    sentinels: list[Redis] = []  # noqa: RUF012 (set per instance by _sentinel)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            for sentinel in self.sentinels:
                await sentinel.aclose()


async def ready(client: Any) -> Any:
    """``client``, with a Cluster client's slot map loaded before it is used: redis-py's
    cluster client breaks connections when commands race its (re)initialization, which it
    starts on first use and after a node failed. Callers wait here on its lock instead."""
    if getattr(client, "_initialize", False):
        await client.initialize()
    return client


async def failed(client: Any) -> None:
    """After a failure, a Cluster client reads the slot map again before its next command
    (``ready``): a failover moves slots, and redis-py refreshes the map on some paths only
    (not pipelines). Flagged the way redis-py flags it itself; connections to nodes that left
    are closed by its refresh, the others stay."""
    if client is not None and hasattr(client, "nodes_manager"):
        client._initialize = True


async def call(client: Any, op: Callable[[Any], Awaitable[T]]) -> T:
    """``op(client)``, the client ready first; a Redis that cannot be used now (``UNAVAILABLE``)
    raises ``StoreUnavailableError`` (its cause the Redis error) after flagging the client to
    reread a Cluster's slot map. Any other error (a bug) passes through unchanged."""
    try:
        return await op(await ready(client))
    except UNAVAILABLE as err:
        await failed(client)
        raise unavailable(err) from err
    except RuntimeError as err:
        if not closed_transport(err):
            raise
        await failed(client)
        raise unavailable(err) from err


def closed_transport(err: RuntimeError) -> bool:
    """uvloop's error for a write on a connection that closed a moment ago (a node killed
    mid-failover): "unable to perform operation on <TCPTransport closed=True ...>; the handler
    is closed". redis-py passes it on as it came, where asyncio's own transports fail with a
    ConnectionError; any other RuntimeError is a bug."""
    return "the handler is closed" in str(err)


def target_of(state: StateConfig) -> RedisTarget:
    """Where ``state`` says the shared state lives (only called with a ``redis_url``)."""
    assert state.redis_url is not None
    return parse_target(state.redis_url, state.mode)
