"""The ``shadow:`` section of the settings (nothing heavy imported here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ShadowConfig(BaseModel):
    """Shadow mode (``switchyard.gateway.shadow``): a sampled fraction of routed requests also
    goes, in the background and never delaying the user's answer, to the router's other
    candidates, and every model's answer is kept beside the decision's outcome record (the
    data ``switchyard train --label-free`` learns from). Shadow calls are never streamed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=False, description="Shadow routed requests (turning it on or off needs a restart)."
    )
    sample: float = Field(
        default=0.01, ge=0, le=1, description="Fraction of routed requests shadowed."
    )
    routers: tuple[str, ...] | None = Field(
        default=None, description="Routers whose requests may be shadowed (default: all)."
    )
    candidates: tuple[str, ...] | None = Field(
        default=None,
        description="Models to shadow to (default: the router's candidates); the model that "
        "answered the user is never called again.",
    )
    max_concurrent: int = Field(default=4, ge=1, description="Shadow calls in flight at most.")
    max_rate_per_s: float = Field(
        default=5.0,
        gt=0,
        description="Shadow calls started per second at most (a token bucket holding one "
        "second's worth, at least one call).",
    )
    budget_usd_per_hour: float = Field(
        default=1.0,
        ge=0,
        description="USD of shadow answers over the last hour (their usage at the models' "
        "prices) past which shadow calls stop.",
    )
    max_tokens: int = Field(
        default=512, ge=1, description="max_tokens of a shadow call (the request's, if lower)."
    )
    seed: int | None = Field(default=None, description="Seed of the sampling (tests).")
