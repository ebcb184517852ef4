"""``Guard``: authentication, allow-lists, rate limits and budgets on the request path."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from switchyard.backends.errors import RateLimitError
from switchyard.gateway.errors import (
    AuthenticationError,
    BudgetExceededError,
    PermissionDeniedError,
    StateStoreUnavailableError,
)
from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.settings import ModelConfig
from switchyard.gateway.state import StoreUnavailableError
from switchyard.gateway.tenancy import periods
from switchyard.gateway.tenancy.config import AuthConfig, Limits, Period
from switchyard.gateway.tenancy.keys import (
    PREFIX,
    KeyHasher,
    KeyRecord,
    bearer_token,
    static_records,
)
from switchyard.gateway.tenancy.store import (
    Bucket,
    Budget,
    TenancyStore,
    Verdict,
)
from switchyard.gateway.tenancy.tokens import estimate_prompt_tokens

log = logging.getLogger("switchyard.tenancy")
MINUTE = 60.0


@dataclass(slots=True)
class Ticket:
    """What one admitted request took, to settle once its real usage is known."""

    key: KeyRecord | None
    token_buckets: tuple[Bucket, ...]
    budgets: tuple[Budget, ...]
    headers: list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class _Plan:
    """What admission takes for one (key, model), built once and reused until the key's
    record or the config changes: the limits and budgets that apply, and the buckets as
    they are when no tokens are counted."""

    key: KeyRecord | None
    limits: tuple[tuple[str, Limits], ...]
    budgets: tuple[tuple[str, float, Period], ...]  # (scope, USD, period)
    counts_tokens: bool  # a tpm limit applies
    buckets: tuple[Bucket, ...]
    headers: tuple[_HeaderSlot, ...]  # where each x-ratelimit-* kind reads its bucket


class Guard:
    def __init__(self, auth: AuthConfig, store: TenancyStore, metrics: GatewayMetrics) -> None:
        self.store = store
        self.metrics = metrics
        self._settling: set[asyncio.Task[None]] = set()
        self._outage: set[str] = set()  # what was logged during the current store outage
        metrics.watch_store(store.health)
        self.reconfigure(auth)

    def reconfigure(self, auth: AuthConfig) -> None:
        """Use new keys, tenants and limits (config reload); dynamic keys stay in the store."""
        self.auth = auth
        self._secret = auth.secret()
        self._hash = KeyHasher(self._secret)
        self._static = static_records(auth.keys, self._secret)
        # A key given through key_env is in this process's environment already: it is found
        # by the token itself, with no HMAC per request (1.2 µs); its hash stays the only
        # form that is stored or shown. Dynamic keys and key_hash ones are looked up by hash.
        self._by_token = {
            token: self._static[self._hash(token)]
            for token in (os.environ[k.key_env] for k in auth.keys if k.key_env)
        }
        self._tenants = {t.name: t for t in auth.tenants}
        self._cache: dict[str, tuple[KeyRecord | None, float]] = {}
        self._plans: dict[tuple[str, str], _Plan] = {}

    # --- who is calling -------------------------------------------------------------
    async def authenticate(self, headers: list[tuple[bytes, bytes]]) -> KeyRecord | None:
        """The caller's key record; None when auth is off. Raises 401, never echoing the key."""
        if not self.auth.enabled:
            return None
        token = bearer_token(headers)
        if token is None:
            raise AuthenticationError(
                "missing API key: send 'Authorization: Bearer sk-sy-...'", code="missing_api_key"
            )
        if not token.startswith(PREFIX):
            raise AuthenticationError(f"malformed API key: keys start with '{PREFIX}'")
        record = self._by_token.get(token)
        if record is None:
            digest = self._hash(token)
            record = self._static.get(digest) or await self._dynamic(digest)
        if record is None:
            raise AuthenticationError("invalid API key")
        if record.revoked:
            raise AuthenticationError("this API key has been revoked", code="revoked_api_key")
        return record

    async def _dynamic(self, digest: str) -> KeyRecord | None:
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            record = await self.store.load_key(digest)
        except StoreUnavailableError:
            self.metrics.store_errors.inc()
            raise StateStoreUnavailableError("key store unavailable; try again") from None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (record, now + self.auth.key_cache_s)
        return record

    def forget(self, digest: str) -> None:
        """Drop a cached key (this replica changed it)."""
        self._cache.pop(digest, None)

    def check_model(self, key: KeyRecord | None, model: str) -> None:
        if key is not None and not key.allows(model):
            raise PermissionDeniedError(
                f"this key may not use model '{model}'", param="model", code="model_not_allowed"
            )

    # --- admission ----------------------------------------------------------------
    async def admit(
        self, key: KeyRecord | None, model: ModelConfig, data: dict[str, Any]
    ) -> Ticket | None:
        """Take from every limit and budget that applies, or raise 429/503."""
        if key is None and not self.auth.model_limits:  # auth off: nothing can apply
            return None
        plan = self._plan(key, model.name)
        if not plan.limits and not plan.budgets:  # a key's spend is still counted in metrics
            return Ticket(key, (), (), []) if key is not None else None
        tokens = estimate_prompt_tokens(data) if plan.counts_tokens or plan.budgets else 0
        buckets = _buckets(plan.limits, tokens) if plan.counts_tokens else plan.buckets
        budgets = _budgets(plan.budgets, model.cost_usd(tokens, 0)) if plan.budgets else ()
        verdict = await self._take(key, buckets, budgets)
        if verdict is None:
            return None
        token_buckets: tuple[Bucket, ...] = ()
        if plan.counts_tokens:
            token_buckets = tuple(b for b in buckets if b.id.endswith(":tpm"))
        return Ticket(key, token_buckets, budgets, _headers(plan.headers, verdict))

    def _plan(self, key: KeyRecord | None, model: str) -> _Plan:
        """The cached plan of (key, model); rebuilt when the key's record is a new one."""
        slot = (key.id if key is not None else "", model)
        plan = self._plans.get(slot)
        if plan is None or plan.key is not key:
            limits = tuple(self._limits(key, model))
            buckets = _buckets(limits, 0)
            plan = _Plan(
                key,
                limits,
                tuple(self._budget_limits(key)),
                any(lim.tpm for _, lim in limits),
                buckets,
                _header_slots(buckets),
            )
            if len(self._plans) > 10_000:  # bounded, as the key cache is
                self._plans.clear()
            self._plans[slot] = plan
        return plan

    async def admit_call(self, key: KeyRecord | None) -> None:
        """Take one request from the key's rpm limit for a call that is not a completion
        (feedback), or raise 429/503 as ``admit`` does."""
        if key is None or not key.limits.rpm:
            return
        await self._take(key, (Bucket(f"key:{key.id}:rpm", key.limits.rpm, MINUTE, 1),), ())

    async def _take(
        self, key: KeyRecord | None, buckets: tuple[Bucket, ...], budgets: tuple[Budget, ...]
    ) -> Verdict | None:
        """The store's verdict (raises 429 when it refuses); None when the store is down
        and ``auth.fail_open`` admits unchecked (503 otherwise)."""
        try:
            verdict = await self.store.admit(buckets, budgets)
        except StoreUnavailableError:
            self.metrics.store_errors.inc()
            if not self.auth.fail_open:
                raise StateStoreUnavailableError(
                    "rate limits cannot be checked (state store down); try again"
                ) from None
            self.metrics.admitted_without_limits.inc()
            self._degraded("admitting without limits (auth.fail_open)")
            return None
        if self._outage:
            self._recovered()
        if not verdict.allowed:
            self._refuse(key, verdict, buckets)
        return verdict

    def _limits(self, key: KeyRecord | None, model: str) -> list[tuple[str, Limits]]:
        found = []
        if key is not None:
            found.append((f"key:{key.id}", key.limits))
        if model in self.auth.model_limits:
            found.append((f"model:{model}", self.auth.model_limits[model]))
        return [(scope, lim) for scope, lim in found if lim.rpm or lim.tpm]

    def _budget_limits(self, key: KeyRecord | None) -> list[tuple[str, float, Period]]:
        if key is None:
            return []
        found: list[tuple[str, float, Period]] = []
        if key.limits.budget_usd is not None:
            found.append((f"key:{key.id}", key.limits.budget_usd, key.limits.budget_period))
        tenant = self._tenants.get(key.tenant)
        if tenant is not None and tenant.budget_usd is not None:
            found.append((f"tenant:{tenant.name}", tenant.budget_usd, tenant.budget_period))
        return found

    def _refuse(self, key: KeyRecord | None, verdict: Verdict, buckets: Sequence[Bucket]) -> None:
        who = key.name if key is not None else "-"
        denied = verdict.denied_by or ""
        retry = str(max(1, math.ceil(verdict.retry_after_s)))
        is_budget = not denied.endswith((":rpm", ":tpm"))  # a budget: "key:ID:2026-11"
        self.metrics.limited.labels(who, "budget" if is_budget else denied[-3:]).inc()
        if is_budget:
            owner = "tenant" if denied.startswith("tenant:") else "key"
            raise BudgetExceededError(
                f"the {owner}'s spend budget is used up for this period",
                headers={"retry-after": retry},
            )
        kind = "requests" if denied.endswith("rpm") else "tokens"
        limit = next((b.limit for b in buckets if b.id == denied), 0)
        raise RateLimitError(
            f"rate limit reached ({kind} per minute, {denied.split(':')[0]}); retry after {retry}s",
            headers={
                "retry-after": retry,
                f"x-ratelimit-limit-{kind}": str(limit),
                f"x-ratelimit-remaining-{kind}": "0",
                f"x-ratelimit-reset-{kind}": _duration(verdict.retry_after_s),
            },
        )

    # --- settlement ------------------------------------------------------------------
    def settle(self, ticket: Ticket | None, tokens: int, cost_usd: float) -> None:
        """Correct token buckets to real usage and add real spend, in the background."""
        if ticket is None:
            return
        if ticket.key is not None and cost_usd:
            self.metrics.spend.add(ticket.key.name, ticket.key.tenant, cost_usd)
        if not ticket.token_buckets and not ticket.budgets:  # rpm only: nothing to settle
            return
        corrections = [(b, tokens - b.cost) for b in ticket.token_buckets if tokens != b.cost]
        spend = [(b, cost_usd) for b in ticket.budgets] if cost_usd else []
        if corrections or spend:
            task = asyncio.get_running_loop().create_task(self._settle(corrections, spend))
            self._settling.add(task)
            task.add_done_callback(self._settling.discard)

    async def _settle(
        self, corrections: Sequence[tuple[Bucket, float]], spend: Sequence[tuple[Budget, float]]
    ) -> None:
        try:
            await self.store.settle(corrections, spend)
        except StoreUnavailableError:
            self.metrics.store_errors.inc()
            self._degraded("usage of requests is not settled")

    def _degraded(self, what: str) -> None:
        """Say ``what`` once per state store outage, not once per request."""
        if what not in self._outage:
            self._outage.add(what)
            log.warning("state store down: %s until it is back", what)

    def _recovered(self) -> None:
        self._outage.clear()
        log.info("state store back: limits and budgets are enforced again")

    async def drain(self) -> None:
        """Wait for pending settlements (shutdown, tests)."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)


def _budgets(wanted: Sequence[tuple[str, float, Period]], estimate: float) -> tuple[Budget, ...]:
    """The budgets of this period, each expecting ``estimate`` USD from the request."""
    out = []
    for scope, usd, period in wanted:
        label, resets_in = periods.current(period)
        out.append(Budget(f"{scope}:{label}", usd, estimate, resets_in))
    return tuple(out)


def _buckets(limits: Sequence[tuple[str, Limits]], tokens: int) -> tuple[Bucket, ...]:
    buckets = []
    for scope, lim in limits:
        if lim.rpm:
            buckets.append(Bucket(f"{scope}:rpm", lim.rpm, MINUTE, 1))
        if lim.tpm:
            buckets.append(Bucket(f"{scope}:tpm", lim.tpm, MINUTE, tokens))
    return tuple(buckets)


_HeaderSlot = tuple[int, tuple[bytes, bytes], bytes, bytes]


def _header_slots(buckets: Sequence[Bucket]) -> tuple[_HeaderSlot, ...]:
    """For OpenAI's x-ratelimit-* headers, per kind (requests, tokens) of limit: the index of
    its first (the key's) bucket, the limit header as sent, and the other two names."""
    slots: dict[str, _HeaderSlot] = {}
    for index, bucket in enumerate(buckets):
        kind = "requests" if bucket.id.endswith("rpm") else "tokens"
        if kind not in slots:
            limit, remaining, reset = (
                f"x-ratelimit-{part}-{kind}".encode() for part in ("limit", "remaining", "reset")
            )
            slots[kind] = (index, (limit, str(bucket.limit).encode()), remaining, reset)
    return tuple(slots.values())


def _headers(slots: Sequence[_HeaderSlot], verdict: Verdict) -> list[tuple[bytes, bytes]]:
    """The x-ratelimit-* headers of an admitted request, from its buckets' states."""
    out: list[tuple[bytes, bytes]] = []
    states = verdict.buckets
    for index, limit, remaining, reset in slots:
        state = states[index]
        out += [
            limit,
            (remaining, b"%d" % int(state.remaining + 1e-9)),
            (reset, _duration(state.reset_s).encode()),
        ]
    return out


def _duration(seconds: float) -> str:
    """OpenAI's reset format: "20ms", "1s", "6m0s"."""
    if seconds < 1:
        return f"{int(seconds * 1000)}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.0f}s"
