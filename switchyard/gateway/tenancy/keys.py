"""Virtual API keys: ``sk-sy-`` plus 32 random bytes, stored only as HMAC-SHA256 hashes.

A key is never logged, counted or echoed: everything after authentication refers to it by
its ``id`` (a short, non-secret handle) or its name.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from switchyard.gateway.tenancy.config import KeyConfig, Limits

try:  # CPython's OpenSSL binding, which hmac.HMAC wraps; hmac.new where it is missing
    from _hashlib import hmac_new as _openssl_hmac
except ImportError:  # pragma: no cover - CPython without OpenSSL
    _openssl_hmac = None  # type: ignore[assignment]

PREFIX = "sk-sy-"


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def hash_key(secret: bytes, key: str) -> str:
    """The stored form of ``key``: hex HMAC-SHA256 under ``secret``."""
    return KeyHasher(secret)(key)


class KeyHasher:
    """``hash_key`` under one secret, its HMAC state set up once (the gateway hashes the key
    of every request). A key then costs a copy of that state, not OpenSSL's digest fetch and
    the secret's padding: 1.2 µs instead of 1.7 µs per key here, the same digest."""

    __slots__ = ("_state",)

    def __init__(self, secret: bytes) -> None:
        if _openssl_hmac is not None:  # OpenSSL's HMAC object itself, not hmac.HMAC around it
            self._state: Any = _openssl_hmac(secret, digestmod="sha256")
        else:
            self._state = hmac.new(secret, digestmod=hashlib.sha256)

    def __call__(self, key: str) -> str:
        state = self._state.copy()
        state.update(key.encode())
        return str(state.hexdigest())


def same_hash(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header (what the OpenAI SDK sends)."""
    for name, value in headers:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


class KeyRecord(BaseModel):
    """What the gateway knows about a key; ``key_hash`` is its only link to the secret."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: "key_" + secrets.token_hex(6))
    name: str
    tenant: str = "default"
    key_hash: str
    models: tuple[str, ...] = ()
    limits: Limits = Limits()
    revoked: bool = False
    static: bool = False
    created_at: float = Field(default_factory=time.time)

    def allows(self, model: str) -> bool:
        return not self.models or model in self.models

    def public(self) -> dict[str, Any]:
        """The record as the admin API shows it: no hash."""
        return self.model_dump(mode="json", exclude={"key_hash"})


def static_records(keys: tuple[KeyConfig, ...], secret: bytes) -> dict[str, KeyRecord]:
    """Static keys from the config, by hash."""
    records = {}
    for k in keys:
        digest = k.key_hash or hash_key(secret, os.environ[k.key_env or ""])
        records[digest] = KeyRecord(
            id=f"static_{k.name}", name=k.name, tenant=k.tenant, key_hash=digest,
            models=k.models, limits=k.limits, static=True, created_at=0.0,
        )  # fmt: skip
    return records
