"""Load on the request path: prefix-affinity keys, load shedding, latency targets and
fallback chains across models.

* ``affinity_for``: with ``upstream.prefix_affinity``, requests sharing a system prompt (or,
  without one, the first ``upstream.affinity_prefix_chars`` characters of the prompt) get
  the same key, so replica choice sends them to the same replica and its prefix cache.
* ``prompt_blocks``: with ``upstream.prefix_scoring`` and more than one replica, the prompt's
  block-hash chain, which replica choice scores against each replica's expected wait.
* ``within_targets``: the routed candidates whose best replica is expected to start in time
  — under the request's ``max_ttft_ms`` and under ``upstream.max_queue_delay_s``. When none
  is left it sheds: 429 ``model_overloaded`` with ``Retry-After`` (load is the reason, so
  coming back later helps; a malformed option is a 400 raised earlier by ``parse_options``).
* ``dispatch_chain``: a concrete model, then its ``fallbacks`` in order, each tried only
  before the first byte reaches the client; a model whose best replica would make the
  request wait longer than ``upstream.max_queue_delay_s`` is skipped (shed when it is last).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from switchyard.backends.client import UpstreamRequest
from switchyard.backends.errors import OverloadedError, UpstreamError
from switchyard.backends.pool import Attempt, AttemptTracer, dispatch
from switchyard.backends.prefix_blocks import PromptBlocks, request_blocks
from switchyard.backends.replica import affinity_key
from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.payload import UPSTREAM_PATH, Payload, upstream_body
from switchyard.gateway.settings import Capability, ModelConfig
from switchyard.gateway.upstreams import Upstreams

__all__ = ["affinity_for", "dispatch_chain", "prompt_blocks", "within_targets"]


def affinity_for(data: Mapping[str, Any], capability: Capability, chars: int) -> int | None:
    """The prefix-affinity key of a request body (``None`` when it has no usable prompt)."""
    if capability is Capability.chat:
        messages = data.get("messages")
        if not isinstance(messages, list) or not messages:
            return None
        roles = (m for m in messages if isinstance(m, dict))
        system = next((m.get("content") for m in roles if m.get("role") == "system"), None)
        text = str(system) if system else str(messages)[:chars]
    elif capability is Capability.completions:
        prompt = data.get("prompt")
        text = (prompt if isinstance(prompt, str) else str(prompt))[:chars]
    else:
        return None
    return affinity_key(text, chars)


def prompt_blocks(
    data: Mapping[str, Any], capability: Capability, block_tokens: int, max_tokens: int
) -> PromptBlocks | None:
    """The prompt's block-hash chain for prefix scoring (``None``: no full block, or not a
    generation request)."""
    if capability not in (Capability.chat, Capability.completions):
        return None
    chat = capability is Capability.chat
    return request_blocks(data, chat, block_tokens, max(max_tokens // block_tokens, 1))


def within_targets(
    delays: Mapping[str, float], max_ttft_s: float | None, max_queue_s: float
) -> frozenset[str]:
    """The models whose expected wait meets both limits; ``OverloadedError`` if none does.

    A model with no endpoint that may take traffic (``inf``) is left out, unless no model
    has one (then all stay, and sending reports the outage)."""
    limit = max_queue_s if max_ttft_s is None else min(max_ttft_s, max_queue_s)
    ok = frozenset(m for m, delay in delays.items() if delay <= limit)
    if ok:
        return ok
    finite = [d for d in delays.values() if math.isfinite(d)]
    if not finite:  # not load but health: dispatch answers 503 no_healthy_endpoint
        return frozenset(delays)
    wait = min(finite) - limit
    if max_ttft_s is not None and max_ttft_s < max_queue_s:
        reason = f"can start within max_ttft_ms={max_ttft_s * 1e3:g}"
    else:
        reason = f"is below upstream.max_queue_delay_s={max_queue_s:g}s of expected wait"
    raise OverloadedError(
        f"every candidate model is saturated: none {reason}; retry later", max(wait, 1.0)
    )


async def dispatch_chain(
    upstreams: Upstreams,
    metrics: GatewayMetrics,
    model: ModelConfig,
    payload: Payload,
    capability: Capability,
    request_id: str,
    may_use: Callable[[str], bool],
    tracer: AttemptTracer | None = None,
    ttft_s: float | None = None,
) -> tuple[ModelConfig, Attempt]:
    """Send to ``model``, else to its fallbacks in order; the model that answered, and how
    (``ttft_s``: the request's own TTFT target, ``max_ttft_ms``, for the slo balancer).

    Raises the last error (``OverloadedError`` when saturation skipped the last model)."""
    up = upstreams.settings.upstream
    affinity = (
        affinity_for(payload.data, capability, up.affinity_prefix_chars)
        if up.prefix_affinity
        else None
    )
    last: Exception | None = None
    chain = _chain(upstreams, model, capability, may_use) if model.fallbacks else (model,)
    blocks: PromptBlocks | None = None
    for config in chain:
        pool = upstreams.pools[config.name]
        # an attribute test first: with prefix scoring off this costs the request no call
        if blocks is None and pool.prefix_index is not None and pool.scores_prefixes:
            blocks = prompt_blocks(
                payload.data, capability, up.prefix_block_tokens, up.prefix_max_tokens
            )
        delay = pool.expected_delay()
        if math.isfinite(delay) and delay > up.max_queue_delay_s:
            metrics.shed.labels(config.name).inc()
            last = _saturated(config.name, delay, up.max_queue_delay_s)
            continue
        request = UpstreamRequest(
            UPSTREAM_PATH[capability],
            upstream_body(payload, config.upstream_model or config.name),
            payload.stream,
            request_id,
            headers=() if payload.form is None else payload.form.headers,
        )
        try:
            attempt = await dispatch(
                pool, request, upstreams.retry, metrics, affinity, blocks, tracer, ttft_s
            )
        except (UpstreamError, OverloadedError) as err:
            last = err
            continue
        if math.isfinite(delay):
            metrics.model(config.name).expected_delay.observe(delay)
        if config is not model:
            metrics.fallbacks.labels(model.name, config.name).inc()
        return config, attempt
    assert last is not None, "the chain holds at least the model itself"
    raise last


def _chain(
    upstreams: Upstreams,
    model: ModelConfig,
    capability: Capability,
    may_use: Callable[[str], bool],
) -> list[ModelConfig]:
    chain = [model]
    for name in model.fallbacks:
        config = upstreams.models.get(name)
        if config is None or name not in upstreams.pools or config in chain:
            continue
        if capability in config.capabilities and may_use(name):
            chain.append(config)
    return chain


def _saturated(model: str, delay: float, max_queue_s: float) -> OverloadedError:
    return OverloadedError(
        f"model '{model}' is saturated: expected wait {delay:.1f}s is over "
        f"upstream.max_queue_delay_s={max_queue_s:g}s; retry later",
        delay - max_queue_s,
    )
