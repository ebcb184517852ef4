"""One request answered by several models in turn (or side by side): what a cascade router
(``switchyard.gateway.cascade``) and a router with a second opinion
(``switchyard.gateway.second_opinion``) share.

A ``StageRun`` asks each stage through the proxy's dispatch (fallbacks, retries, breakers),
records every stage it started (model, status, tokens, cost; "budget" when abandoned at the
latency budget, "cancelled" when the request ended first), sums what the answers cost, and
finally settles the request's limits on the sum, records one outcome with every stage, and
sends the chosen answer with ``x-switchyard-cascade`` listing the models that answered. The
subclass's ``_run`` decides which stages run and which answer is served.

Metrics: ``switchyard_cascade_escalations_total{router, reason}`` (verifier, logprobs,
disagreement) and ``switchyard_cascade_stops_total{router, reason}``: an escalation wanted and
not made, or a check that could not be made (max_escalations, latency_budget, stage_failed) —
the answer served was one the router doubted or could not check (alert
``SwitchyardCascadeStopsHigh``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client import CollectorRegistry, Counter
from starlette.types import Send

from switchyard.backends.errors import SwitchyardError
from switchyard.gateway.load import dispatch_chain
from switchyard.gateway.payload import Payload
from switchyard.gateway.settings import Capability, ModelConfig

if TYPE_CHECKING:
    from switchyard.gateway.proxy import Call, Proxy

HEADER = b"x-switchyard-cascade"


class CascadeMetrics:
    """The cascade counters, on the gateway's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.escalations = Counter(
            "switchyard_cascade_escalations",
            "Answers doubted and sent to a stronger model, by reason (verifier, logprobs: a "
            "cascade's stage; disagreement: a second opinion's checker disagreed).",
            ["router", "reason"],
            registry=registry,
        )
        self.stops = Counter(
            "switchyard_cascade_stops",
            "Escalations wanted and not made, or second opinions not had, by reason "
            "(max_escalations, latency_budget, stage_failed): the answer served was a doubted "
            "or unchecked one.",
            ["router", "reason"],
            registry=registry,
        )


@dataclass(frozen=True, slots=True)
class StagedRequest:
    """The client's request as every stage is sent it, and what serves it."""

    proxy: Proxy
    metrics: CascadeMetrics
    payload: Payload
    cap: Capability
    call: Call
    may_use: Callable[[str], bool]


@dataclass(slots=True)
class Answer:
    """One stage's whole answer."""

    stage: str  # the model asked (a fallback may have answered for it)
    served: ModelConfig
    endpoint: str
    status: int
    body: bytes
    content_type: str
    data: Any  # the parsed body (None if not JSON)
    record: dict[str, Any] = field(default_factory=dict)


class StageRun:
    """One request answered in stages: the stages so far and what they cost."""

    def __init__(
        self, request: StagedRequest, stages: list[str], budget_ms: float | None,
        injected: bool = False,
    ) -> None:  # fmt: skip
        self.request, self.proxy, self.stages = request, request.proxy, stages
        self.payload, self.cap, self.call = request.payload, request.cap, request.call
        assert self.call.route is not None
        self.route = self.call.route
        self.injected = injected  # logprobs asked upstream for the run's own use
        self.ran: list[dict[str, Any]] = []  # every stage started, in the order started
        self.answer: Answer | None = None  # what would be served if the run ended now
        self.spent = [0, 0, 0.0]  # prompt tokens, completion tokens, USD
        self.usage_known = False
        self.deadline = None if budget_ms is None else self.route.started + budget_ms / 1e3

    async def _run(self) -> Answer:
        """Ask the stages; the answer to serve (the first stage's failure is raised)."""
        raise NotImplementedError

    async def serve(self, send: Send) -> None:
        try:
            answer = await self._run()
        except asyncio.CancelledError:
            self._finish(self.answer, "client_closed")
            raise
        except SwitchyardError as err:
            self._finish(None, str(err.status))
            raise
        self._finish(answer, str(answer.status))
        await self._send(send, answer)

    async def _stage(
        self, stage: str, last: bool, fallback: bool, side: bool = False
    ) -> Answer | None:
        """Ask ``stage``; None when it fails or outlasts the budget (``fallback``: an earlier
        answer can stand in; otherwise its error is raised). ``side``: it runs beside another
        stage, so it is counted in flight on a call of its own."""
        call = type(self.call)(self.call.request_id) if side else self.call
        try:
            return await self._ask(stage, call, last, fallback)
        finally:
            if side:
                call.close()

    async def _ask(self, stage: str, call: Call, last: bool, fallback: bool) -> Answer | None:
        proxy = self.proxy
        record: dict[str, Any] = {"model": stage}
        self.ran.append(record)
        metrics = proxy.metrics.model(stage)
        call.open(metrics)
        started = time.perf_counter()
        payload = stage_payload(self.payload, stage, self.cap, self.injected and not last)
        left = None if self.deadline is None or not fallback else self.deadline - started
        try:
            async with asyncio.timeout(left):
                served, attempt = await dispatch_chain(
                    proxy.upstreams, proxy.metrics, proxy.upstreams.models[stage], payload,
                    self.cap, call.request_id.decode(), self.request.may_use, proxy.tracing,
                    self.call.ttft_s,
                )  # fmt: skip
        except (SwitchyardError, TimeoutError) as err:
            status = "budget" if isinstance(err, TimeoutError) else str(err.status)
            metrics.finished("-", status, time.perf_counter() - started)
            record["status"] = status
            if not fallback:
                raise
            self._stopped("latency_budget" if status == "budget" else "stage_failed", record)
            return None
        except asyncio.CancelledError:
            record["status"] = "cancelled"
            raise
        attempt.finish()
        resp = attempt.response
        if served.name != stage:
            metrics = proxy.metrics.model(served.name)
            call.open(metrics)
        metrics.finished(attempt.endpoint.name, str(resp.status), time.perf_counter() - started)
        answer = Answer(stage, served, attempt.endpoint.name, resp.status, resp.body,
                        resp.content_type, _json(resp.body), record)  # fmt: skip
        record.update(self._account(answer, metrics, time.perf_counter() - started))
        return answer

    def _account(self, answer: Answer, metrics: Any, took: float) -> dict[str, Any]:
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

    def _escalate(self, answer: Answer, reason: str) -> None:
        answer.record["escalated"] = reason
        self.request.metrics.escalations.labels(self.route.router, reason).inc()

    def _past_budget(self, record: dict[str, Any] | None = None) -> bool:
        """The latency budget has passed: no escalation (counted as a stop)."""
        if self.deadline is None or time.perf_counter() < self.deadline:
            return False
        self._stopped("latency_budget", record)
        return True

    def _stopped(self, reason: str, record: dict[str, Any] | None = None) -> None:
        """An escalation or check not made; noted on ``record`` (default: the last stage's)."""
        self.request.metrics.stops.labels(self.route.router, reason).inc()
        if record is None and self.ran:
            record = self.ran[-1]
        if record is not None:
            record.setdefault("stopped", reason)

    def _finish(self, answer: Answer | None, status: str) -> None:
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

    async def _send(self, send: Send, answer: Answer) -> None:
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


def stage_payload(payload: Payload, stage: str, cap: Capability, logprobs: bool) -> Payload:
    """The request as sent to ``stage`` (with logprobs asked for the run's own use)."""
    if stage == payload.model and not logprobs:
        return payload
    data = dict(payload.data, model=stage)
    if logprobs:
        data["logprobs"] = True if cap is Capability.chat else 1
    return Payload(orjson.dumps(data), data, stage, payload.stream, payload.wants_usage)


def _json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return None


def _without_logprobs(data: dict[str, Any]) -> bytes:
    """The answer as if logprobs had not been asked for (``"logprobs": null``)."""
    for choice in data.get("choices") or []:
        if isinstance(choice, dict) and "logprobs" in choice:
            choice["logprobs"] = None
    return orjson.dumps(data)


__all__ = ["HEADER", "Answer", "CascadeMetrics", "StageRun", "StagedRequest", "stage_payload"]
