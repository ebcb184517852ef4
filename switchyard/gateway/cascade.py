"""Running a cascade router's request (``kind: cascade``) after its first stage is chosen.

The first stage comes from the pre-generation rule (``switchyard.gateway.cascade_rule``)
inside the routing decision. A streamed request, or another API's translated one, is then
served by that stage alone (the proxy's usual path; ``x-switchyard-cascade`` names it). A
non-streamed chat or completions request is run here, stage by stage: each answer is read
whole, checked by the verifier (its P(correct) from the prompt's and the answer's
embeddings, the answer embedded on the router's worker thread) and/or by its mean token
log-probability (requested upstream when ``min_mean_logprob`` is set, removed from the
answer unless the client asked), and escalated to the next stage while one doubts it, at
most ``max_escalations`` times and not once ``latency_budget_ms`` has passed since the
request arrived (a stronger stage still running at the budget is abandoned for the answer
in hand). The client gets the last answer; ``x-switchyard-cascade`` lists the stages that
answered; the cost settled and recorded is the sum; the outcome record keeps every stage.

Metrics: ``switchyard_cascade_escalations_total{router, reason}`` (verifier, logprobs) and
``switchyard_cascade_stops_total{router, reason}``: an escalation wanted and not made
(max_escalations, latency_budget, stage_failed) — the answer served was one the cascade
doubted (alert ``SwitchyardCascadeStopsHigh``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter
from starlette.types import Receive, Send

from switchyard.backends.errors import SwitchyardError
from switchyard.gateway.cascade_config import CascadeConfig
from switchyard.gateway.cascade_rule import stages_after
from switchyard.gateway.disconnect import DisconnectWatch
from switchyard.gateway.load import dispatch_chain
from switchyard.gateway.payload import PROMPT_FIELD, Payload
from switchyard.gateway.settings import Capability, ModelConfig
from switchyard.gateway.shadow_text import choice_text

if TYPE_CHECKING:
    from switchyard.gateway.proxy import Call, Proxy
    from switchyard.routers.cascade import CascadeModel

HEADER = b"x-switchyard-cascade"
_RUN_HERE = (Capability.chat, Capability.completions)


@dataclass(slots=True)
class _Answer:
    """One stage's whole answer."""

    stage: str  # the cascade stage asked (a fallback may have answered for it)
    served: ModelConfig
    endpoint: str
    status: int
    body: bytes
    content_type: str
    data: Any  # the parsed body (None if not JSON)
    record: dict[str, Any] = field(default_factory=dict)


class CascadeMetrics:
    """The cascade counters, on the gateway's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.escalations = Counter(
            "switchyard_cascade_escalations",
            "Cascade answers doubted and sent to the next stage, by reason (verifier, logprobs).",
            ["router", "reason"],
            registry=registry,
        )
        self.stops = Counter(
            "switchyard_cascade_stops",
            "Cascade escalations wanted and not made, by reason (max_escalations, "
            "latency_budget, stage_failed): the answer served was a doubted one.",
            ["router", "reason"],
            registry=registry,
        )


class Cascades:
    """Serves the non-streamed requests of cascade routers for one ``Proxy``."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.metrics = CascadeMetrics(proxy.metrics.registry)

    async def serve(
        self, receive: Receive, send: Send, model: ModelConfig, payload: Payload,
        cap: Capability, call: Call, may_use: Callable[[str], bool],
    ) -> bool:  # fmt: skip
        """Run a cascade router's request here (True), or let the proxy serve its first
        stage alone (False: not a cascade, streamed, or another API's request)."""
        routing, route = self.proxy.routing, call.route
        if routing is None or route is None or (cascade := routing.cascade(route.router)) is None:
            return False
        if payload.stream or cap not in _RUN_HERE or call.translation is not None:
            call.extra.append((HEADER, model.name.encode()))  # pre-generation only
            return False
        router = routing.resolve(route.router)
        config = (router.cascade if router is not None else None) or CascadeConfig()
        models = self.proxy.upstreams.models

        def usable(name: str) -> bool:
            return name in models and cap in models[name].capabilities and may_use(name)

        stages = stages_after(cascade, model.name, usable)
        watch = DisconnectWatch(receive)
        try:
            await _Run(self, cascade, config, stages, payload, cap, call, may_use).serve(send)
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
        finally:
            watch.stop()
        return True


class _Run:
    """One cascaded request: its stages so far and what they cost."""

    def __init__(
        self, owner: Cascades, cascade: CascadeModel, config: CascadeConfig, stages: list[str],
        payload: Payload, cap: Capability, call: Call, may_use: Callable[[str], bool],
    ) -> None:  # fmt: skip
        self.owner, self.proxy, self.cascade, self.config = owner, owner.proxy, cascade, config
        self.stages, self.payload, self.cap, self.call, self.may_use = (
            stages, payload, cap, call, may_use,
        )  # fmt: skip
        assert call.route is not None
        self.route = call.route
        self.ran: list[dict[str, Any]] = []
        self.spent = [0, 0, 0.0]  # prompt tokens, completion tokens, USD
        self.usage_known = False
        self.injected = config.min_mean_logprob is not None and not _asks_logprobs(payload, cap)
        budget = config.latency_budget_ms
        self.deadline = None if budget is None else self.route.started + budget / 1e3

    async def serve(self, send: Send) -> None:
        answer: _Answer | None = None
        escalations = 0
        try:
            for i, stage in enumerate(self.stages):
                last = i == len(self.stages) - 1
                got = await self._stage(stage, last, answer is not None)
                if got is None:  # failed or abandoned at the budget: serve what we have
                    break
                answer = got
                if last or got.status != 200 or self.config.max_escalations == 0:
                    break
                reason = await self._doubt(got)
                if reason is None:
                    break
                if escalations >= self.config.max_escalations:
                    self._stopped("max_escalations")
                    break
                if self.deadline is not None and time.perf_counter() >= self.deadline:
                    self._stopped("latency_budget")
                    break
                got.record["escalated"] = reason
                self.owner.metrics.escalations.labels(self.route.router, reason).inc()
                escalations += 1
        except asyncio.CancelledError:
            self._finish(answer, "client_closed")
            raise
        assert answer is not None  # the first stage raises rather than return None
        self._finish(answer, str(answer.status))
        await self._send(send, answer)

    async def _stage(self, stage: str, last: bool, fallback: bool) -> _Answer | None:
        """Ask ``stage``; None when it fails or outlasts the budget after an earlier answer
        (the first stage's error is raised, recorded)."""
        proxy, call = self.proxy, self.call
        metrics = proxy.metrics.model(stage)
        call.open(metrics)
        started = time.perf_counter()
        payload = _stage_payload(self.payload, stage, self.cap, self.injected and not last)
        left = None if self.deadline is None or not fallback else self.deadline - started
        try:
            async with asyncio.timeout(left):
                served, attempt = await dispatch_chain(
                    proxy.upstreams, proxy.metrics, proxy.upstreams.models[stage], payload,
                    self.cap, call.request_id.decode(), self.may_use, proxy.tracing,
                    call.ttft_s,
                )  # fmt: skip
        except (SwitchyardError, TimeoutError) as err:
            status = "budget" if isinstance(err, TimeoutError) else str(err.status)
            metrics.finished("-", status, time.perf_counter() - started)
            self.ran.append({"model": stage, "status": status})
            if not fallback:
                self._finish(None, status)
                raise
            self._stopped("latency_budget" if status == "budget" else "stage_failed")
            return None
        attempt.finish()
        resp = attempt.response
        if served.name != stage:
            metrics = proxy.metrics.model(served.name)
            call.open(metrics)
        metrics.finished(attempt.endpoint.name, str(resp.status), time.perf_counter() - started)
        answer = _Answer(stage, served, attempt.endpoint.name, resp.status, resp.body,
                         resp.content_type, _json(resp.body))  # fmt: skip
        answer.record = self._account(answer, metrics, time.perf_counter() - started)
        self.ran.append(answer.record)
        return answer

    def _account(self, answer: _Answer, metrics: Any, took: float) -> dict[str, Any]:
        usage = answer.data.get("usage") if isinstance(answer.data, dict) else None
        record: dict[str, Any] = {
            "model": answer.served.name,
            "endpoint": answer.endpoint,
            "status": str(answer.status),
            "latency_s": round(took, 6),
        }
        if isinstance(usage, dict) and answer.status == 200:
            prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
            if isinstance(prompt, int) and isinstance(completion, int):
                cost = answer.served.cost_usd(prompt, completion)
                metrics.usage(prompt, completion, cost)
                self.spent[0] += prompt
                self.spent[1] += completion
                self.spent[2] += cost
                self.usage_known = True
                record.update(prompt_tokens=prompt, completion_tokens=completion, cost_usd=cost)
        return record

    async def _doubt(self, answer: _Answer) -> str | None:
        """Why the answer should be escalated (None: it is trusted)."""
        data = answer.data
        if self.config.min_mean_logprob is not None:
            mean = _mean_logprob(data, self.cap)
            if mean is not None:
                answer.record["mean_logprob"] = round(mean, 4)
                if mean < self.config.min_mean_logprob:
                    return "logprobs"
        if not self.config.verifier:
            return None
        p = await self._p_correct(answer.stage, choice_text(data, self.cap) or "")
        answer.record["p_correct"] = round(p, 4)
        return None if self.cascade.accepts(answer.stage, p) else "verifier"

    async def _p_correct(self, stage: str, text: str) -> float:
        import numpy as np

        routing = self.proxy.routing
        assert routing is not None
        prompt = self.route.embedding
        if prompt is None:
            raw = self.payload.data.get(PROMPT_FIELD[self.cap], "")
            if isinstance(raw, list) and self.cap is Capability.completions:
                raw = raw[0] if raw else ""
            prompt = await routing.embed(routing.prompt_of(raw))
        vector = await routing.embed(text)
        return self.cascade.verify(stage, np.asarray(prompt), np.asarray(vector))

    def _stopped(self, reason: str) -> None:
        self.owner.metrics.stops.labels(self.route.router, reason).inc()
        if self.ran:
            self.ran[-1].setdefault("stopped", reason)

    def _finish(self, answer: _Answer | None, status: str) -> None:
        """Close the call, settle its limits on the summed cost, record the outcome."""
        proxy, call = self.proxy, self.call
        call.close()
        prompt, completion, cost = self.spent
        if call.ticket is not None:
            proxy.guard.settle(call.ticket, int(prompt + completion), float(cost))
        spent = (int(prompt), int(completion), float(cost)) if self.usage_known else None
        served = answer.served.name if answer is not None else self.stages[0]
        endpoint = answer.endpoint if answer is not None else "-"
        record = self.route.record(served, endpoint, status, spent, None)
        record.stages = list(self.ran)
        assert proxy.routing is not None
        proxy.routing.finish(self.route, record)

    async def _send(self, send: Send, answer: _Answer) -> None:
        body = answer.body
        if self.injected and isinstance(answer.data, dict):
            body = _without_logprobs(answer.data)
        self.call.extra.append((HEADER, ",".join(r["model"] for r in self.ran
                                                 if "endpoint" in r).encode()))  # fmt: skip
        head = [(b"content-type", answer.content_type.encode("latin-1")),
                (b"content-length", str(len(body)).encode())]  # fmt: skip
        await send({"type": "http.response.start", "status": answer.status,
                    "headers": self.call.headers(head)})  # fmt: skip
        await send({"type": "http.response.body", "body": body})


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _asks_logprobs(payload: Payload, cap: Capability) -> bool:
    value = payload.data.get("logprobs")
    return value is not None and value is not False


def _stage_payload(payload: Payload, stage: str, cap: Capability, logprobs: bool) -> Payload:
    """The request as sent to ``stage`` (with logprobs asked for the cascade's own use)."""
    if stage == payload.model and not logprobs:
        return payload
    data = dict(payload.data, model=stage)
    if logprobs:
        data["logprobs"] = True if cap is Capability.chat else 1
    return Payload(orjson.dumps(data), data, stage, payload.stream, payload.wants_usage)


def _choice(data: Any) -> dict[str, Any]:
    choices = data.get("choices") if isinstance(data, dict) else None
    first = choices[0] if isinstance(choices, list) and choices else None
    return first if isinstance(first, dict) else {}


def _mean_logprob(data: Any, cap: Capability) -> float | None:
    logprobs = _choice(data).get("logprobs")
    if not isinstance(logprobs, dict):
        return None
    if cap is Capability.completions:
        values = logprobs.get("token_logprobs") or []
    else:
        values = [t.get("logprob") for t in logprobs.get("content") or [] if isinstance(t, dict)]
    numbers = [float(v) for v in values if isinstance(v, int | float)]
    return sum(numbers) / len(numbers) if numbers else None


def _without_logprobs(data: dict[str, Any]) -> bytes:
    """The answer as if logprobs had not been asked for (``"logprobs": null``)."""
    for choice in data.get("choices") or []:
        if isinstance(choice, dict) and "logprobs" in choice:
            choice["logprobs"] = None
    return orjson.dumps(data)


__all__ = ["HEADER", "CascadeMetrics", "Cascades"]
