"""What a config reload changes in the routers: a plan made on the event loop, from the running
routers and the new settings, that ``RouterService`` carries out (artifacts loaded on its worker
thread, then one swap).

Per router of the new config:

* unchanged artifact (same files) and bandit settings: its loaded pipeline and its bandit are
  kept; candidates, cost weight, latency weight and the default flag come from the new config;
* a new router, or a changed artifact or bandit: the artifact is loaded again, and its bandit
  made again from the new settings (its learned statistics start over);
* except where that is not safe: a bandit where the gateway started with none (there is no
  learner, and no shared state was started for one), or a changed bandit while the statistics
  are shared through Redis (the shared store caches each router's last statistics by name);
  then the router keeps running as it is and the field is named as needing a restart.

``routing:`` fields read once at start (the embedder, the outcome log, the shared store's
timings) are named as needing a restart when they change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from switchyard.gateway.settings import RouterConfig, RoutingConfig, Settings

if TYPE_CHECKING:
    from switchyard.routers.pipeline import RoutingPipeline


@dataclass(slots=True)
class Loaded:
    """One router as the router service serves it."""

    config: RouterConfig
    pipeline: RoutingPipeline
    candidates: tuple[str, ...]
    cost_weight: float
    fingerprint: str = ""  # of the artifact's files when loaded (a reload compares it)
    cascade: Any = None  # kind cascade: its CascadeModel (switchyard.gateway.cascade)
    # What its decisions rank: the candidates and a cascade's stages, in the artifact's model
    # order (the rule breaks ties by it), and their columns in the artifact's predictions.
    # The artifact may know many more models; deciding among these alone is the same choice.
    decides: tuple[str, ...] = field(init=False)
    columns: list[int] = field(init=False)

    def __post_init__(self) -> None:
        stages = () if self.cascade is None else tuple(self.cascade.stages)
        wanted = {*self.candidates, *stages}
        models = list(self.pipeline.models)
        self.columns = [j for j, m in enumerate(models) if m in wanted]
        self.decides = tuple(models[j] for j in self.columns)


@dataclass(slots=True)
class Prepared:
    """A reload made ready off the request path; ``RouterService.commit`` swaps it in."""

    settings: Settings
    routers: dict[str, Loaded]
    plan: RouterPlan
    restart: list[str]  # fields of routers:/routing: that need a restart


# Read when the router service starts; a reload cannot change them.
ROUTING_RESTART_FIELDS = (
    "embedder_cache",
    "embedder_threads",
    "records",
    "refresh_s",
    "buffer",
    "stream_maxlen",
    "decision_ttl_s",
)


@dataclass(frozen=True, slots=True)
class Running:
    """What the plan needs to know of one running router."""

    config: RouterConfig
    fingerprint: str  # of its artifact's files when it was loaded
    models: tuple[str, ...]  # its pipeline's models
    candidates: tuple[str, ...]


@dataclass(slots=True)
class RouterPlan:
    """Routers to keep (pipeline and bandit), load, rebuild the bandit of, drop, or hold back."""

    keep: list[str] = field(default_factory=list)  # pipeline kept, config refreshed
    load: list[str] = field(default_factory=list)  # artifact (re)loaded
    bandits: list[str] = field(default_factory=list)  # bandit made (again) after the swap
    drop: list[str] = field(default_factory=list)  # bandit forgotten (router gone or rebuilt)
    held: list[str] = field(default_factory=list)  # left running as they are (restart)
    restart: list[str] = field(default_factory=list)  # fields that need a restart
    fingerprints: dict[str, str] = field(default_factory=dict)


def fingerprint(artifact: Path) -> str:
    """Names, sizes and modification times of an artifact's files: a retrained router saved
    over the old directory counts as changed."""
    digest = hashlib.sha256(str(artifact.resolve()).encode())
    try:
        files = sorted(p for p in artifact.rglob("*") if p.is_file())
        for path in files:
            stat = path.stat()
            digest.update(
                f"{path.relative_to(artifact)}|{stat.st_size}|{stat.st_mtime_ns}".encode()
            )
    except OSError as err:
        digest.update(repr(err).encode())
    return digest.hexdigest()


def routing_restart(old: RoutingConfig, new: RoutingConfig) -> list[str]:
    return [f"routing.{f}" for f in ROUTING_RESTART_FIELDS if getattr(old, f) != getattr(new, f)]


def plan(running: dict[str, Running], new: Settings, has_learner: bool, shared: bool) -> RouterPlan:
    """``has_learner``: the gateway runs bandits; ``shared``: their statistics are in Redis."""
    out = RouterPlan()
    for router in new.routers:
        name, now = router.name, running.get(router.name)
        out.fingerprints[name] = fingerprint(router.artifact)
        if now is None:
            _add(out, router, has_learner)
            continue
        same_files = now.fingerprint == out.fingerprints[name] and (
            now.config.artifact == router.artifact
        )
        if not (now.config.bandit.enabled or router.bandit.enabled):
            (out.keep if same_files else out.load).append(name)  # no bandit on either side
            continue
        if same_files and now.config.bandit == router.bandit:
            out.keep.append(name)
            continue
        if shared:  # the shared store would fold the old statistics into the new bandit
            out.held.append(name)
            field_ = "artifact" if not same_files else "bandit"
            out.restart.append(f"routers.{name}.{field_}")
            continue
        out.drop.append(name)
        _add(out, router, has_learner)
    names = {r.name for r in new.routers}
    out.drop += [name for name in running if name not in names]
    return out


def _add(out: RouterPlan, router: RouterConfig, has_learner: bool) -> None:
    out.load.append(router.name)
    if not router.bandit.enabled:
        return
    if has_learner:
        out.bandits.append(router.name)
    else:  # no learner and no shared state were started: the router runs offline until then
        out.restart.append(f"routers.{router.name}.bandit")


def embedder_kind(routers: Sequence[RouterConfig]) -> str:
    """The embedder every router's artifact was trained on (one gateway runs one embedder);
    RuntimeError naming them when they differ or an artifact cannot be read."""
    from switchyard.routers.embedding import kind_of
    from switchyard.routers.models import RouterFormatError
    from switchyard.routers.pipeline import RoutingPipeline

    names: dict[str, list[str]] = {}
    for router in routers:
        try:
            name = RoutingPipeline.recorded_embedder(router.artifact)
        except RouterFormatError as err:
            raise RuntimeError(f"router {router.name}: {err}") from None
        names.setdefault(name, []).append(router.name)
    if len(names) > 1:
        found = "; ".join(f"{name}: {', '.join(r)}" for name, r in names.items())
        raise RuntimeError(
            f"routers were trained on different embedders ({found}); one gateway runs one "
            "embedder: re-train them with the same `switchyard train --embedder`"
        )
    try:
        return kind_of(next(iter(names))) if names else "static"
    except ValueError as err:
        raise RuntimeError(f"routers: {err}") from None
