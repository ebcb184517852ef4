"""``switchyard.gateway.redis_client``: the URL forms and what each names, the settings' errors,
redaction, key tags, the one error mapping both stores use, and a Cluster client that reaches
every master from one starting node."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError

from switchyard.gateway.redis_client import (
    KeyTags,
    RedisTarget,
    call,
    connect,
    parse_target,
    redact,
    slot,
)
from switchyard.gateway.state import StateConfig, StoreUnavailableError
from tests.support.redis_topologies import RedisClusterSet


@pytest.mark.parametrize(
    ("url", "mode", "expected"),
    [
        ("redis://127.0.0.1:6379/2", "auto", RedisTarget("single", (("127.0.0.1", 6379),), db=2)),
        ("rediss://u:p%40ss@cache:6380", "auto",
         RedisTarget("single", (("cache", 6380),), True, 0, "u", "p@ss")),
        ("redis://:secret@cache", "auto",
         RedisTarget("single", (("cache", 6379),), password="secret")),
        ("redis+cluster://10.0.0.1:7000,10.0.0.2:7001", "auto",
         RedisTarget("cluster", (("10.0.0.1", 7000), ("10.0.0.2", 7001)))),
        ("redis://10.0.0.1:7000", "cluster", RedisTarget("cluster", (("10.0.0.1", 7000),))),
        ("redis+sentinel://s1:26379,s2:26379,[::1]:26380/mymaster/3", "auto",
         RedisTarget("sentinel", (("s1", 26379), ("s2", 26379), ("::1", 26380)), db=3,
                     master="mymaster")),
        ("rediss+sentinel://u:p@s1:26379/mymaster", "sentinel",
         RedisTarget("sentinel", (("s1", 26379),), True, 0, "u", "p", "mymaster")),
    ],
)  # fmt: skip
def test_each_url_form_names_its_topology(url: str, mode: str, expected: RedisTarget) -> None:
    assert parse_target(url, mode) == expected


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"redis_url": "http://cache:6379"}, "scheme must be one of"),
        ({"redis_url": "redis+sentinel://s1:26379"}, "ends in /master_name"),
        ({"redis_url": "redis://a:1,b:2"}, "several hosts need"),
        ({"redis_url": "redis+cluster://a:1/3"}, "only database 0"),
        ({"redis_url": "redis://a:port"}, "bad port"),
        ({"redis_url": "redis+cluster://a:1", "mode": "sentinel"}, "redis_url says 'cluster'"),
        ({"mode": "cluster"}, "needs state.redis_url"),
    ],
)
def test_a_url_that_names_no_topology_is_refused_when_settings_load(
    state: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        StateConfig.model_validate(state)


def test_redaction_hides_the_credentials_of_every_form() -> None:
    assert redact("redis+sentinel://u:pw@s1:1,s2:2/m", "<r>") == "redis+sentinel://<r>@s1:1,s2:2/m"
    assert redact("redis://cache:6379/0") == "redis://cache:6379/0"


def test_keys_share_the_prefix_tag_on_one_master_and_an_owners_tag_on_a_cluster() -> None:
    one, spread = KeyTags("sy", spread=False), KeyTags("sy", spread=True)
    assert one.tag("key:k1") == one.tag("tenant:t") == one.tag() == "{sy}"
    assert spread.tag("key:k1") == "{sy:key:k1}" and spread.tag() == "{sy}"
    assert slot(spread.tag("key:k1") + ":a") == slot(spread.tag("key:k1") + ":b")


@pytest.mark.anyio
async def test_an_unusable_redis_becomes_one_error_and_a_bug_passes_through(
    anyio_backend: str,
) -> None:
    async def refused(client: Any) -> None:
        raise RedisConnectionError("connection refused")

    async def bug(client: Any) -> None:
        raise KeyError("a bug")

    with pytest.raises(StoreUnavailableError, match="redis unavailable: connection refused") as e:
        await call(object(), refused)
    assert isinstance(e.value.__cause__, RedisConnectionError)
    with pytest.raises(KeyError):
        await call(object(), bug)


@pytest.mark.anyio
async def test_a_write_on_a_connection_uvloop_just_closed_is_an_unusable_redis(
    anyio_backend: str,
) -> None:
    """Seen in a Cluster failover under uvloop: the write raises RuntimeError, not a
    ConnectionError; it must not become a 500. Other RuntimeErrors stay bugs."""

    async def closed(client: Any) -> None:
        raise RuntimeError(
            "unable to perform operation on <TCPTransport closed=True reading=False "
            "0x7fb35cc70c80>; the handler is closed"
        )

    async def bug(client: Any) -> None:
        raise RuntimeError("a bug")

    with pytest.raises(StoreUnavailableError, match="the handler is closed"):
        await call(object(), closed)
    with pytest.raises(RuntimeError, match="a bug"):
        await call(object(), bug)


@pytest.mark.anyio
async def test_a_cluster_client_started_from_one_node_reaches_every_master(
    redis_cluster: RedisClusterSet, anyio_backend: str
) -> None:
    first = next(n for n in redis_cluster.nodes if n.running)
    client = connect(parse_target(f"redis+cluster://127.0.0.1:{first.port}"), 2.0, 8, True)
    keys = [f"{{client-test-{i}}}:k" for i in range(24)]
    try:
        for key in keys:
            await client.set(key, key, ex=60)  # the slot map comes from the starting node
        assert [await client.get(k) for k in keys] == keys
    finally:
        await client.aclose()
    assert len({redis_cluster.master_of(k).port for k in keys}) == 3


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
