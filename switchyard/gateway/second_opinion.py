"""A second opinion on a one-shot router's pick (``second_opinion:`` on a ``kind: router``).

A non-streamed chat or completions request whose routed pick is neither the checker nor
``escalate_to`` (and both are usable by the request) is sent to the pick and to the checker
concurrently. When their answers agree (``switchyard.routers.agreement``: the same first
word), the pick's answer is served; when they do not, ``escalate_to`` answers and its answer
is served (``switchyard_cascade_escalations_total{reason="disagreement"}``).

When there is nothing to compare, the pick's answer is served unchecked: the pick answered
other than 200 (that answer is served as is, the checker cancelled), or the checker failed or
answered other than 200 (a stop, ``stage_failed``: an outage of the checker costs a check,
not a call to the strong model on every request). ``escalate_to`` failing, or answering other
than 200, also leaves the pick's answer (``stage_failed``). With ``latency_budget_ms``, a
checker or ``escalate_to`` still running at the budget is abandoned, and no escalation starts
after it (``latency_budget``). The pick failing is the request's error, as without a check.

Streamed requests and other APIs' translated ones are served by the pick alone, as is a
request whose pick is the checker or ``escalate_to``; ``x-switchyard-cascade`` then names the
pick only. Otherwise it lists the models that answered, in order (pick, checker, and
``escalate_to`` after a disagreement); the cost settled and recorded is their sum, and the
outcome record keeps every stage, the checker's with ``agrees``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from switchyard.gateway.second_opinion_config import SecondOpinionConfig
from switchyard.gateway.shadow_text import choice_text
from switchyard.gateway.stages import Answer, StagedRequest, StageRun
from switchyard.routers.agreement import agree


def second_opinion(
    request: StagedRequest, pick: str, config: SecondOpinionConfig, usable: Callable[[str], bool]
) -> StageRun | None:
    """The run checking ``pick``'s answer (None: the pick alone answers)."""
    stages = [pick, config.checker, config.escalate_to]
    if pick in stages[1:] or not all(map(usable, stages[1:])):
        return None
    return _SecondOpinionRun(request, stages, config.latency_budget_ms)


class _SecondOpinionRun(StageRun):
    """The pick and the checker side by side; ``escalate_to`` when they disagree."""

    async def _run(self) -> Answer:
        pick, checker, strong = self.stages
        # Started after the pick's own stage begins below (tasks start on the next loop
        # turn), so the stages are recorded in the order pick, checker.
        checking = asyncio.create_task(self._stage(checker, False, True, side=True))
        try:
            answer = await self._stage(pick, False, False)
            assert answer is not None  # the pick's failure is raised
            self.answer = answer
            second = await checking if answer.status == 200 else None
        finally:
            if not checking.done():
                checking.cancel()
                await asyncio.wait([checking])
        if second is None or answer.status != 200:
            return answer  # the checker failed (a stop, counted) or the pick did not answer
        if second.status != 200:
            self._stopped("stage_failed", second.record)
            return answer
        agrees = agree(choice_text(answer.data, self.cap), choice_text(second.data, self.cap))
        second.record["agrees"] = agrees
        if agrees or self._past_budget(answer.record):
            return answer
        self._escalate(answer, "disagreement")
        final = await self._stage(strong, True, True)
        if final is None:  # failed or abandoned at the budget (a stop, counted)
            return answer
        if final.status != 200:
            self._stopped("stage_failed", final.record)
            return answer
        self.answer = final
        return final


__all__ = ["second_opinion"]
