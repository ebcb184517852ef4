"""The ``second_opinion:`` section of a router in the settings (nothing heavy imported).

A one-shot router (``kind: router``) with this section asks a *checker* model the same prompt
as its pick, concurrently, and when the two answers disagree (``switchyard.routers.agreement``)
has ``escalate_to`` answer instead; ``switchyard.gateway.second_opinion`` runs it."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from switchyard.gateway.cascade_config import RouterKind


class SecondOpinionConfig(BaseModel):
    """Which model checks the routed pick's answer, and which answers when they disagree."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    checker: str = Field(
        min_length=1,
        description="A configured model asked the same prompt as the pick, concurrently.",
    )
    escalate_to: str = Field(
        min_length=1,
        description="The configured model whose answer is served when the pick's and the "
        "checker's answers open with different words.",
    )
    latency_budget_ms: float | None = Field(
        default=None,
        gt=0,
        description="No escalation once this long has passed since the request arrived; a "
        "checker or escalate_to still running at the budget is abandoned for the pick's "
        "answer.",
    )


def check_second_opinion(
    kind: RouterKind, config: SecondOpinionConfig | None, models: Sequence[str]
) -> None:
    """ValueError naming the field when a router's second opinion cannot be served."""
    if config is None:
        return
    if kind is not RouterKind.router:
        raise ValueError("second_opinion: only a router of kind 'router' takes this section")
    for field in ("checker", "escalate_to"):
        name = getattr(config, field)
        if name not in models:
            raise ValueError(f"second_opinion.{field}: {name!r} is not a configured model")
    if config.checker == config.escalate_to:
        raise ValueError("second_opinion: checker and escalate_to must be different models")
