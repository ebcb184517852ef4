"""The ``kind`` and ``cascade:`` fields of a router in the settings (nothing heavy imported).

A router of ``kind: cascade`` serves a directory written by ``switchyard train --cascade``:
a router over the stage models plus ``cascade.json`` (stages from cheap to strong, thresholds)
and the verifier (``switchyard.routers.cascade``); ``switchyard.gateway.cascade`` runs it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

CASCADE_FILE = "cascade.json"  # as switchyard.routers.cascade.model writes it


class RouterKind(StrEnum):
    router = "router"  # one-shot: the policy picks one model
    cascade = "cascade"  # cheap stage first, escalated when it is expected to fail


class CascadeConfig(BaseModel):
    """How a cascade router escalates (the thresholds come from its artifact)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_escalations: int = Field(
        default=1, ge=0, description="Stages tried after the first one at most (0: no verifier)."
    )
    latency_budget_ms: float | None = Field(
        default=None,
        gt=0,
        description="No escalation once this long has passed since the request arrived; a "
        "stronger stage still running at the budget is abandoned for the answer in hand.",
    )
    verifier: bool = Field(
        default=True, description="Escalate when the artifact's verifier doubts the answer."
    )
    min_mean_logprob: float | None = Field(
        default=None,
        le=0,
        description="Also escalate when the answer's mean token log-probability is below "
        "this (logprobs are requested upstream and removed unless the client asked).",
    )


def cascade_stages(artifact: Path) -> list[str]:
    """The stages named in a cascade directory, cheapest first (ValueError if unreadable)."""
    try:
        manifest = json.loads((artifact / CASCADE_FILE).read_text(encoding="utf-8"))
        stages = manifest["stages"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(
            f"kind cascade needs a directory written by `switchyard train --cascade`; "
            f"{artifact}/{CASCADE_FILE}: {err}"
        ) from None
    if not (isinstance(stages, list) and all(isinstance(s, str) for s in stages)):
        raise ValueError(f"{artifact}/{CASCADE_FILE}: 'stages' is not a list of model names")
    return stages


def check_cascade(
    kind: RouterKind, cascade: CascadeConfig | None, artifact: Path, candidates: Sequence[str]
) -> None:
    """ValueError naming the field when a router's cascade settings cannot be served."""
    if kind is RouterKind.router:
        if cascade is not None:
            raise ValueError("cascade: only a router of kind 'cascade' takes this section")
        return
    served = [s for s in cascade_stages(artifact) if s in candidates]
    if len(served) < 2:
        raise ValueError(
            f"kind cascade: at least two of its stages must be candidates; "
            f"{artifact} has stages {', '.join(cascade_stages(artifact))}"
        )
