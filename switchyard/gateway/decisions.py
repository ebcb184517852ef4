"""One routing decision batch's parts: a queued job, its outcome, and the policy call for a
group of jobs that share a cost weight, constraints and penalties (``gateway.routing``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchyard.gateway.cascade_rule import first_stage
from switchyard.gateway.errors import InvalidRequestError

if TYPE_CHECKING:
    from switchyard.gateway.router_reload import Loaded
    from switchyard.routers.policy import Decision


@dataclass(slots=True)
class Chosen:
    """A job's decision, the offline quality it was made from, and the bandit's context."""

    decision: Decision
    quality: dict[str, float]  # the offline router's, before the bandit's correction
    context: tuple[float, ...] | None  # the bandit's context, when the router has one
    vector: Any = None  # the prompt's embedding: a row of the batch's matrix (a view)


@dataclass(slots=True)
class Job:
    """One queued decision: the request's prompt text and options, and the future it awaits."""

    router: Loaded
    text: str
    cost_weight: float
    allowed: frozenset[str]
    future: asyncio.Future[Chosen]
    penalty: dict[str, float]  # μ · expected wait, quality points, per allowed model
    arms: str  # the bandit statistics it uses: the router's, or its tenant's


def choose(
    jobs: Sequence[Job],
    quality: Any,
    cost: Any,
    offline: Sequence[dict[str, float]],
    contexts: Sequence[tuple[float, ...] | None],
) -> list[Chosen | Exception]:
    """One policy call for ``jobs``, which share a cost weight, constraints and penalties;
    ``quality`` and ``cost`` have the columns of the models the router decides among."""
    import numpy as np

    from switchyard.routers.policy import Constraints, NoModelAllowedError, decide

    job = jobs[0]
    models = job.router.decides
    penalty = np.array([job.penalty.get(m, 0.0) for m in models]) if job.penalty else None
    try:
        constraints = Constraints(allowed=job.allowed)
        decisions = decide(models, quality, cost, job.cost_weight, constraints, None, penalty)
    except NoModelAllowedError as err:
        return [InvalidRequestError(str(err), param="models")] * len(jobs)
    except ValueError as err:
        return [InvalidRequestError(str(err), param="cost_weight")] * len(jobs)
    cascade = job.router.cascade  # its pre-generation rule picks the first stage
    return [
        Chosen(d if cascade is None else first_stage(cascade, d, q), q, z)
        for d, q, z in zip(decisions, offline, contexts, strict=True)
    ]
