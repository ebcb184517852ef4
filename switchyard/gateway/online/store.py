"""``SharedState``: what gateway replicas share about routed requests, and its in-process form.

Outcome records and bandit observations are handed over without waiting (``publish``,
``observe``); a store that talks to a server does the I/O in the background. ``lookup`` and
``claim`` serve feedback given to a replica that did not make the decision. The in-process
store shares nothing: this replica's ``OutcomeLog`` and bandits are the whole state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from switchyard.gateway.outcomes import Decided, Feedback, OutcomeRecord

if TYPE_CHECKING:  # numpy stays unimported until a router starts
    from switchyard.routers.online.stats import ArmStats, Observation


class Bandits(Protocol):
    """The replica's bandits as a shared store sees them (calls hop to the router thread)."""

    def names(self) -> list[str]: ...

    def key(self, name: str) -> str: ...

    def shape(self, name: str) -> tuple[int, float]: ...

    async def apply(self, name: str, stats: dict[str, ArmStats], step: int) -> None: ...


class SharedState(Protocol):
    async def start(self, bandits: Bandits) -> None: ...

    async def close(self) -> None: ...

    def publish(self, record: OutcomeRecord, decided: Decided) -> None:
        """A routed request is done (never blocks)."""

    def observe(self, router: str, row: Observation) -> None:
        """A bandit observation learned here, to be shared (never blocks)."""

    def feedback_given(self, answer: Feedback, decided: Decided) -> None:
        """Feedback accepted here, for the record (never blocks)."""

    def append(self, kind: str, data: bytes) -> None:
        """A follow-up entry of the outcome log (``kind`` "shadow": a decision's shadow
        outputs, ``switchyard.gateway.shadow``), JSON ``data`` (never blocks)."""

    async def lookup(self, decision_id: str) -> Decided | None:
        """A decision made by another replica (``StoreUnavailableError`` when unreachable)."""

    async def claim(self, answer: Feedback) -> tuple[Feedback, bool]:
        """The first feedback given for this decision on any replica, and whether it is
        ``answer`` (idempotency across replicas)."""

    def view(self) -> dict[str, Any]: ...


class LocalState:
    """In process: nothing to share, nothing to wait for."""

    async def start(self, bandits: Bandits) -> None:
        return None

    async def close(self) -> None:
        return None

    def publish(self, record: OutcomeRecord, decided: Decided) -> None:
        return None

    def observe(self, router: str, row: Observation) -> None:
        return None

    def feedback_given(self, answer: Feedback, decided: Decided) -> None:
        return None

    def append(self, kind: str, data: bytes) -> None:
        return None

    async def lookup(self, decision_id: str) -> Decided | None:
        return None

    async def claim(self, answer: Feedback) -> tuple[Feedback, bool]:
        return answer, True

    def view(self) -> dict[str, Any]:
        return {"kind": "memory"}
