"""A cascade router's decisions (``kind: cascade``): loading its learned parts and the
pre-generation rule, run inside ``RouterService``'s batch on the worker thread.

The rule reads the router's predicted quality of each stage for the prompt, already computed
for the one-shot decision, so it adds a few comparisons to it: the first stage (cheapest
first) among the allowed ones whose predicted quality, less the strongest stage's, reaches
its ``skip_below`` answers first; a prompt the cheaper stages are expected to fail where the
strongest succeeds goes to the strongest allowed one (``CascadeModel.start``)."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from switchyard.gateway.settings import RouterConfig

if TYPE_CHECKING:
    from switchyard.routers.cascade import CascadeModel
    from switchyard.routers.policy import Decision


def load_cascade(router: RouterConfig, embedder: Any) -> CascadeModel:
    """On the worker thread: the artifact's cascade (ValueError if it cannot serve here)."""
    from switchyard.routers.cascade import CascadeModel
    from switchyard.routers.embedding import check_embedder

    model = CascadeModel.load(router.artifact)
    check_embedder(model.embedder, embedder)
    if model.dim != embedder.dim:
        raise ValueError(
            f"the cascade's verifiers in {router.artifact} expect {model.dim}-dimensional "
            f"embeddings, {embedder.name} gives {embedder.dim}: re-train the cascade"
        )
    return model


def reloaded_cascade(
    router: RouterConfig, old: RouterConfig, cascade: CascadeModel | None, embedder: Any
) -> CascadeModel | None:
    """After a reload that kept the artifact: the cascade's parts kept, or loaded or dropped
    when the router's ``kind`` changed."""
    if router.kind == old.kind:
        return cascade
    return load_cascade(router, embedder) if router.kind == "cascade" else None


def first_stage(model: CascadeModel, decision: Decision, quality: dict[str, float]) -> Decision:
    """``decision`` with its model replaced by the cascade's first stage: the stages the
    policy left allowed (utility above −inf), in cascade order."""
    allowed = [s for s in model.stages if decision.utility.get(s, float("-inf")) > float("-inf")]
    if not allowed:  # constraints left no stage: the policy's choice stands
        return decision
    return replace(decision, model=model.start(quality, allowed))


def stages_after(model: CascadeModel, start: str, usable: Any) -> list[str]:
    """``start`` and the stronger stages ``usable(name)`` allows, in cascade order."""
    if start not in model.stages:
        return [start]
    rest = model.stages[model.stages.index(start) + 1 :]
    return [start, *(s for s in rest if usable(s))]
