"""A key's stored form: HMAC-SHA256 under the server secret, however it is computed."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from switchyard.gateway.tenancy import keys
from switchyard.gateway.tenancy.keys import KeyHasher, hash_key, new_key

SECRET = b"server-secret-0123456789abcdef"


def reference(secret: bytes, key: str) -> str:
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def test_a_key_hashes_to_its_hmac_sha256_under_the_secret() -> None:
    key = new_key()
    assert hash_key(SECRET, key) == reference(SECRET, key)


def test_one_hasher_gives_each_key_its_own_digest_every_time() -> None:
    hasher = KeyHasher(SECRET)
    first, second = new_key(), new_key()
    # the hasher's state is copied per key: nothing of one key carries into the next
    assert [hasher(first), hasher(second), hasher(first)] == [
        reference(SECRET, first),
        reference(SECRET, second),
        reference(SECRET, first),
    ]


def test_without_openssls_hmac_object_the_digest_is_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keys, "_openssl_hmac", None)
    key = new_key()
    assert KeyHasher(SECRET)(key) == reference(SECRET, key)
    assert KeyHasher(b"another secret")(key) != reference(SECRET, key)
