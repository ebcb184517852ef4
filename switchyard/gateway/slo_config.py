"""The ``upstream.slo:`` section of the settings: targets of the ``slo`` balancer (nothing
heavy imported here)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from switchyard.backends.slo import SloPolicy


class SloConfig(BaseModel):
    """SLO-aware replica choice and early shedding (``upstream.balancer: slo``,
    ``switchyard.backends.slo``); read by no other balancer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ttft_s: float = Field(
        default=1.0, gt=0, le=600, description="Time-to-first-token target each pick aims at."
    )
    shed: bool = Field(
        default=True,
        description="Refuse (429 with Retry-After) a request no replica is likely to start "
        "within ttft_s, before it queues and delays the requests behind it.",
    )
    shed_below: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="Shed when the best replica's predicted chance of meeting ttft_s is below "
        "this (docs/BENCHMARKS.md section 27).",
    )

    itl_s: float | None = Field(
        default=None,
        gt=0,
        le=60,
        description="Mean inter-token latency target: a replica whose recent time between "
        "tokens (vLLM's inter_token_latency_seconds) is above it counts as missing the SLO "
        "(unset: TTFT only).",
    )

    def policy(self) -> SloPolicy:
        return SloPolicy(
            ttft_s=self.ttft_s, shed=self.shed, shed_below=self.shed_below, itl_s=self.itl_s
        )
