"""Configuration of keys, tenants and limits (part of ``Settings``; where the state lives is
``switchyard.gateway.state.StateConfig``)."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Period = Literal["day", "month"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Strict):
    """Per-minute rate limits and a spend budget; ``None`` means unlimited."""

    rpm: int | None = Field(default=None, gt=0, description="Requests per minute.")
    tpm: int | None = Field(default=None, gt=0, description="Tokens (prompt + output) per minute.")
    budget_usd: float | None = Field(default=None, ge=0, description="Spend allowed per period.")
    budget_period: Period = "month"


class KeyConfig(_Strict):
    """A static key. Give the key itself through an environment variable, or its hash as
    printed by ``switchyard keys hash`` (the key is then never on this machine)."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9._-]+$")
    tenant: str = Field(default="default", min_length=1)
    key_env: str | None = None
    key_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    models: tuple[str, ...] = Field(default=(), description="Allowed models; empty = all.")
    limits: Limits = Limits()

    @model_validator(mode="after")
    def _one_source(self) -> KeyConfig:
        if (self.key_env is None) == (self.key_hash is None):
            raise ValueError("give exactly one of key_env and key_hash")
        if self.key_env is not None and self.key_env not in os.environ:
            raise ValueError(f"key_env: environment variable {self.key_env!r} is not set")
        return self


class TenantConfig(_Strict):
    name: str = Field(min_length=1)
    budget_usd: float | None = Field(default=None, ge=0)
    budget_period: Period = "month"


class AuthConfig(_Strict):
    enabled: bool = Field(default=False, description="Require a key on every /v1 request.")
    secret_env: str = Field(
        default="SWITCHYARD_KEY_SECRET",
        description="Environment variable with the server secret keys are hashed with.",
    )
    admin_key_env: str | None = Field(
        default="SWITCHYARD_ADMIN_KEY",
        description="Environment variable with the admin key; unset: no admin API.",
    )
    keys: tuple[KeyConfig, ...] = ()
    tenants: tuple[TenantConfig, ...] = ()
    model_limits: dict[str, Limits] = Field(
        default_factory=dict, description="Limits per model, summed over every key."
    )
    fail_open: bool = Field(
        default=True,
        description="When the state store (Redis) is down: admit (true) or refuse with 503.",
    )
    key_cache_s: float = Field(
        default=2.0, ge=0, description="How long a replica trusts a dynamic key it looked up."
    )

    @model_validator(mode="after")
    def _check(self) -> AuthConfig:
        if self.enabled and self.secret_env not in os.environ:
            raise ValueError(f"secret_env: environment variable {self.secret_env!r} is not set")
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("keys: names must be unique")
        return self

    def secret(self) -> bytes:
        return os.environ.get(self.secret_env, "").encode()

    def admin_key(self) -> str | None:
        return os.environ.get(self.admin_key_env) if self.admin_key_env else None
