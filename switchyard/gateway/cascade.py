"""Running a cascade router's request (``kind: cascade``) after its first stage is chosen, and
choosing how a routed request with more than one model to ask is served.

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
answered; the cost settled and recorded is the sum; the outcome record keeps every stage
(``switchyard.gateway.stages``, with the metrics).

A one-shot router with ``second_opinion:`` is served the same way by
``switchyard.gateway.second_opinion``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Send

from switchyard.gateway.cascade_config import CascadeConfig
from switchyard.gateway.cascade_rule import stages_after
from switchyard.gateway.disconnect import DisconnectWatch
from switchyard.gateway.payload import PROMPT_FIELD, Payload
from switchyard.gateway.second_opinion import second_opinion
from switchyard.gateway.settings import Capability, ModelConfig, RouterConfig
from switchyard.gateway.shadow_text import choice_text
from switchyard.gateway.stages import HEADER, Answer, CascadeMetrics, StagedRequest, StageRun

if TYPE_CHECKING:
    from switchyard.gateway.proxy import Call, Proxy
    from switchyard.routers.cascade import CascadeModel

_RUN_HERE = (Capability.chat, Capability.completions)


class Cascades:
    """Serves the non-streamed requests of cascade routers, and of routers with a second
    opinion, for one ``Proxy``."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.metrics = CascadeMetrics(proxy.metrics.registry)

    async def serve(
        self, receive: Receive, send: Send, model: ModelConfig, payload: Payload,
        cap: Capability, call: Call, may_use: Callable[[str], bool],
    ) -> bool:  # fmt: skip
        """Run a cascade's or a second opinion's request here (True), or let the proxy serve
        the routed pick alone (False: neither, streamed, or another API's request)."""
        routing, route = self.proxy.routing, call.route
        if routing is None or route is None:
            return False
        cascade = routing.cascade(route.router)
        router = routing.resolve(route.router)
        if cascade is None and (router is None or router.second_opinion is None):
            return False
        request = StagedRequest(self.proxy, self.metrics, payload, cap, call, may_use)
        run = self._run(request, model.name, cascade, router)
        if run is None:
            call.extra.append((HEADER, model.name.encode()))  # the pick alone answers
            return False
        watch = DisconnectWatch(receive)
        try:
            await run.serve(send)
        except asyncio.CancelledError:
            if not watch.absorb():
                raise
        finally:
            watch.stop()
        return True

    def _run(
        self, request: StagedRequest, pick: str, cascade: CascadeModel | None,
        router: RouterConfig | None,
    ) -> StageRun | None:  # fmt: skip
        """How the request is run here (None: its pick alone answers, as the proxy does)."""
        cap, call = request.cap, request.call
        if request.payload.stream or cap not in _RUN_HERE or call.translation is not None:
            return None
        models = self.proxy.upstreams.models

        def usable(name: str) -> bool:
            return name in models and cap in models[name].capabilities and request.may_use(name)

        if cascade is None:
            assert router is not None and router.second_opinion is not None
            return second_opinion(request, pick, router.second_opinion, usable)
        config = (router.cascade if router is not None else None) or CascadeConfig()
        return _CascadeRun(request, stages_after(cascade, pick, usable), cascade, config)


class _CascadeRun(StageRun):
    """One cascaded request: escalated stage by stage while its answer is doubted."""

    def __init__(
        self, request: StagedRequest, stages: list[str], cascade: CascadeModel,
        config: CascadeConfig,
    ) -> None:  # fmt: skip
        injected = config.min_mean_logprob is not None and not _asks_logprobs(request.payload)
        super().__init__(request, stages, config.latency_budget_ms, injected)
        self.cascade, self.config = cascade, config

    async def _run(self) -> Answer:
        for i, stage in enumerate(self.stages):
            last = i == len(self.stages) - 1
            got = await self._stage(stage, last, self.answer is not None)
            if got is None:  # failed or abandoned at the budget: serve what we have
                break
            self.answer = got
            if last or got.status != 200 or self.config.max_escalations == 0:
                break
            reason = await self._doubt(got)
            if reason is None:
                break
            if sum("escalated" in r for r in self.ran) >= self.config.max_escalations:
                self._stopped("max_escalations")
                break
            if self._past_budget():
                break
            self._escalate(got, reason)
        assert self.answer is not None  # the first stage raises rather than return None
        return self.answer

    async def _doubt(self, answer: Answer) -> str | None:
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


def _asks_logprobs(payload: Payload) -> bool:
    value = payload.data.get("logprobs")
    return value is not None and value is not False


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


__all__ = ["HEADER", "CascadeMetrics", "Cascades"]
