"""``Guard.authenticate``: a key given through ``key_env`` is found by its token, with no HMAC
per request; a key given by hash, and a dynamic key, are found by hash; a wrong key is not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from unittest import mock

import pytest
from prometheus_client import CollectorRegistry

from switchyard.gateway.errors import AuthenticationError
from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.tenancy.config import AuthConfig
from switchyard.gateway.tenancy.guard import Guard
from switchyard.gateway.tenancy.keys import KeyRecord, hash_key
from switchyard.gateway.tenancy.store import MemoryStore

SECRET = b"guard-test-secret"
BY_ENV = "sk-sy-by-env-0123456789abcdef"
BY_HASH = "sk-sy-by-hash-0123456789abcdef"
DYNAMIC = "sk-sy-dynamic-0123456789abcdef"


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[Guard]:
    monkeypatch.setenv("GUARD_SECRET", SECRET.decode())
    monkeypatch.setenv("GUARD_KEY", BY_ENV)
    auth = AuthConfig(
        enabled=True,
        secret_env="GUARD_SECRET",
        keys=(
            {"name": "env", "key_env": "GUARD_KEY"},
            {"name": "hash", "key_hash": hash_key(SECRET, BY_HASH)},
        ),
    )
    store = MemoryStore()
    guard = Guard(auth, store, GatewayMetrics(CollectorRegistry()))
    record = KeyRecord(name="dyn", key_hash=hash_key(SECRET, DYNAMIC))
    asyncio.run(store.save_key(record))
    yield guard


def authenticate(guard: Guard, token: str) -> KeyRecord | None:
    headers = [(b"authorization", b"Bearer " + token.encode())]
    return asyncio.run(guard.authenticate(headers))


def test_a_key_from_the_environment_is_found_without_hashing(guard: Guard) -> None:
    with mock.patch.object(guard, "_hash", side_effect=AssertionError("hashed")):
        record = authenticate(guard, BY_ENV)
    assert record is not None and record.name == "env"


@pytest.mark.parametrize(("token", "name"), [(BY_HASH, "hash"), (DYNAMIC, "dyn")])
def test_keys_known_only_by_hash_are_found_by_hash(guard: Guard, token: str, name: str) -> None:
    record = authenticate(guard, token)
    assert record is not None and record.name == name


def test_a_wrong_key_is_refused(guard: Guard) -> None:
    with pytest.raises(AuthenticationError, match="invalid API key"):
        authenticate(guard, BY_ENV + "x")
