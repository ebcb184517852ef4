"""``Learner``: each router's bandit on top of its offline predictions.

Every method runs on the router worker thread (the one that embeds and decides), so a
decision never reads statistics half-way through an update. The bandit only corrects the
offline router's predicted quality (``adjust``); the cost-aware policy still decides.

With ``bandit.scope: tenant`` a router has one bandit per tenant, made on first use from the
router's template and shared under its own key (``<router>@<tenant>``, see ``arms``), so one
tenant's feedback shapes only that tenant's routing.

Imported when routers start (it needs numpy), never at gateway import time.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from switchyard.gateway.settings import BanditConfig, BanditScope
from switchyard.routers.online.bandit import LinearThompsonBandit
from switchyard.routers.online.stats import ArmStats, Observation

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class _Template:
    models: tuple[str, ...]
    config: BanditConfig
    input_dim: int
    key: str  # the router's shared key; a tenant's bandit appends the tenant


@dataclass(slots=True)
class _Arms:
    bandit: LinearThompsonBandit
    key: str  # names the shared statistics: the router plus everything that shapes them
    learned: int = 0  # observations learned on this replica


class Learner:
    """The bandits of the routers that have ``bandit.enabled``."""

    def __init__(self) -> None:
        self._templates: dict[str, _Template] = {}
        self._routers: dict[str, _Arms] = {}  # by arms name: a router, or router@tenant

    def add(
        self,
        name: str,
        models: Sequence[str],
        config: BanditConfig,
        input_dim: int,
        embedder: str,
    ) -> None:
        # Replicas share statistics only if their contexts and discounting agree.
        shape = f"{embedder}|{input_dim}|{config.dim}|{config.seed}|{config.discount}"
        digest = hashlib.sha256(shape.encode()).hexdigest()[:12]
        template = _Template(tuple(models), config, input_dim, f"{name}:{digest}")
        self._templates[name] = template
        if config.scope is BanditScope.global_:
            self._routers[name] = _Arms(_bandit(template), template.key)

    def drop(self, router: str) -> None:
        """Forget ``router``'s bandits, its tenants' too (a reload removed or remade it)."""
        self._templates.pop(router, None)
        for name in [n for n in self._routers if n.partition("@")[0] == router]:
            del self._routers[name]

    def models(self, router: str) -> tuple[str, ...] | None:
        """The arms of ``router``'s bandit (None without one)."""
        template = self._templates.get(router.partition("@")[0])
        return None if template is None else template.models

    def __contains__(self, name: str) -> bool:
        """Whether router (or arms name) ``name`` has a bandit."""
        return name.partition("@")[0] in self._templates

    def arms(self, router: str, tenant: str | None) -> str:
        """The name of the statistics a request of ``tenant`` to ``router`` uses."""
        template = self._templates.get(router)
        if template is None or template.config.scope is BanditScope.global_ or tenant is None:
            return router
        return f"{router}@{tenant}"

    def _get(self, name: str) -> _Arms | None:
        """The bandit called ``name``; a tenant's is made from its router's template."""
        arms = self._routers.get(name)
        if arms is None:
            router, _, tenant = name.partition("@")
            template = self._templates.get(router)
            if template is None or not tenant:
                return None
            arms = _Arms(_bandit(template), f"{template.key}:tenant:{tenant}")
            self._routers[name] = arms
        return arms

    def routers(self) -> list[str]:
        """The routers with a bandit (global or per tenant)."""
        return list(self._templates)

    def names(self) -> list[str]:
        """The bandits made so far: a global router's, and each tenant's seen here."""
        return list(self._routers)

    def key(self, name: str) -> str:
        return self._routers[name].key

    def shape(self, name: str) -> tuple[int, float]:
        """(context size, discount) of the router's bandit, for folding shared statistics."""
        bandit = self._routers[name].bandit
        return bandit.context_dim, bandit.discount

    def adjust(
        self, name: str, X: FloatArray, quality: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Quality plus a Thompson sample of the learned residual, and the contexts ``z``."""
        arms = self._get(name)
        assert arms is not None, f"no bandit {name}"
        z = arms.bandit.context(X)
        return quality + arms.bandit.residual(z), z

    def learn(self, name: str, row: Observation) -> None:
        arms = self._get(name)
        if arms is None:
            return
        bandit = arms.bandit
        # Feedback on a decision made before a reload remade the bandit no longer fits it.
        if row.arm not in bandit.arms_ or len(row.z) != bandit.context_dim:
            return
        bandit.learn([row])
        arms.learned += 1

    def replace(self, name: str, stats: dict[str, ArmStats], step: int) -> None:
        """Take the shared statistics (they include what was learned here once flushed)."""
        arms = self._routers.get(name)
        if arms is not None:
            arms.bandit.set_stats(stats, step)

    def steps(self) -> dict[str, int]:
        """Observations held per router (an int read: safe from any thread)."""
        return {name: arms.bandit.n_updates_ for name, arms in list(self._routers.items())}

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, arms in list(self._routers.items()):
            bandit = arms.bandit
            out[name] = {
                "kind": "linear-thompson",
                "key": arms.key,
                "step": bandit.n_updates_,
                "learned_here": arms.learned,
                "arms": {
                    arm: {"weight": round(float(np.trace(bandit.A_[j])), 6)}
                    for j, arm in enumerate(bandit.arms_)
                },
            }
        return out


def _bandit(template: _Template) -> LinearThompsonBandit:
    config = template.config
    return LinearThompsonBandit(
        list(template.models),
        input_dim=template.input_dim,
        dim=config.dim,
        prior_strength=config.prior_strength,
        noise=config.noise,
        discount=config.discount,
        seed=config.seed,
    )


class WorkerBandits:
    """The learner as a shared store sees it (``store.Bandits``): calls that read or replace
    statistics hop to the router worker thread."""

    def __init__(self, learner: Learner, executor: Executor) -> None:
        self._learner = learner
        self._executor = executor

    def names(self) -> list[str]:
        return self._learner.names()

    def key(self, name: str) -> str:
        return self._learner.key(name)

    def shape(self, name: str) -> tuple[int, float]:
        return self._learner.shape(name)

    async def apply(self, name: str, stats: dict[str, ArmStats], step: int) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._learner.replace, name, stats, step)
