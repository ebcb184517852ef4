"""Routed models ("model": "auto" or a router's name): ``RouterService``, which decides in
micro-batches (the per-request options are ``switchyard.gateway.routing_options``).

Concurrent decisions are queued; a batch goes out on the next loop turn (after
``routing.batch_wait_ms`` if set), at ``routing.max_batch`` prompts, or, while a batch runs,
as soon as it is done (so batches grow with load). It is embedded in one call, then each
request gets its own decision under its own cost weight and constraints: on a worker thread
for MiniLM, on the event loop for the static embedder (:attr:`RouterService.inline`). The
routers package is imported when the service starts, never when this module is imported.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from switchyard.gateway.cache.vectors import SemanticEmbedder, semantic_embedder
from switchyard.gateway.cascade_rule import load_cascade, reloaded_cascade
from switchyard.gateway.constraints import Needs, filter_candidates
from switchyard.gateway.decisions import Chosen, Job, choose
from switchyard.gateway.errors import InvalidRequestError
from switchyard.gateway.inline import InlineExecutor, outcome
from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.online.store import LocalState, SharedState
from switchyard.gateway.outcomes import Decided, Feedback, OutcomeLog, OutcomeRecord, Owner, Route
from switchyard.gateway.router_reload import (
    Loaded,
    Prepared,
    RouterPlan,
    Running,
    embedder_kind,
    fingerprint,
    plan,
    routing_restart,
)
from switchyard.gateway.routing_options import NO_OPTIONS, RoutingOptions
from switchyard.gateway.settings import RouterConfig, Settings
from switchyard.gateway.tenancy.keys import KeyRecord

if TYPE_CHECKING:
    from switchyard.gateway.online.learner import Learner

log = logging.getLogger("switchyard.gateway")
T = TypeVar("T")


class RouterService:
    """The configured routers, the embedder, the decision batcher, the bandits, the outcome
    log and the state shared with other replicas (Redis when ``state.redis_url`` is set)."""

    def __init__(self, settings: Settings, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.outcomes = OutcomeLog(settings.routing.records)
        self._routers: dict[str, Loaded] = {}
        self.candidates = {r.name: settings.candidates(r) for r in settings.routers}
        self._every: dict[tuple[str, ...], frozenset[str]] = {}  # allowed() with no limits
        self._prompt_text: Callable[[Any], str] = str
        self._embed: Callable[[list[str]], Any] | None = None
        self._embedder: Any = None
        self._queue: list[Job] = []
        self._timer: asyncio.Handle | None = None
        self._busy = False
        self._executor: Executor | None = None
        self.inline = False  # decisions and bandit updates run on the event loop
        self.semantic: SemanticEmbedder | None = None  # the cache's, when not the routers'
        self.learner: Learner | None = None
        self.shared: SharedState = LocalState()

    @property
    def batches(self) -> int:
        """Embedding calls made (one per batch), as ``switchyard_routing_batches`` counts them."""
        return self.metrics.routing.batches

    async def start(self) -> None:
        """Load the embedder and the routers (on the worker thread; exports if needed), then
        start sharing state when Redis is configured."""
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="switchyard-router")
        await self.on_worker(self._load)
        if self.inline:  # from now on all router work runs here, in order: no thread hops
            self._executor.shutdown(wait=False)
            self._executor = InlineExecutor()
        if self.learner is not None:
            self.metrics.watch_bandits(self.learner.steps)
        if self.settings.state.redis_url is not None and self.learner is not None:
            from switchyard.gateway.online.learner import WorkerBandits
            from switchyard.gateway.online.redis_state import RedisState

            self.shared = RedisState(self.settings.state, self.settings.routing, self.metrics)
            await self.shared.start(WorkerBandits(self.learner, self._executor))

    async def on_worker(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the router worker thread (where the bandits live), or here when the
        embedder is cheap enough to run on the event loop (:attr:`inline`)."""
        assert self._executor is not None, "start() first"
        if self.inline:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _load(self) -> None:
        from switchyard.gateway.online.learner import Learner
        from switchyard.routers.embedding import (
            EmbedderUnavailableError,
            load_embedder,
            prompt_text,
        )

        routing = self.settings.routing
        kind = embedder_kind(self.settings.routers)
        try:
            embedder = load_embedder(
                kind, cache=routing.embedder_cache, threads=routing.embedder_threads
            )
        except EmbedderUnavailableError as err:
            raise RuntimeError(
                f"routers need the prompt embedder: {err}. Export it once with "
                "`switchyard embedder export --static` (routing.embedder_cache picks the cache)"
            ) from None
        self._prompt_text = prompt_text
        self._embed = embedder.embed
        self._embedder = embedder
        # A static embedder costs ~0.1 ms a prompt: handing it to a thread costs more than
        # that (GIL hand-offs, wake-ups), so its decisions run on the event loop.
        self.inline = kind == "static"
        if self.inline and self.settings.cache.enabled:
            self.semantic = semantic_embedder(routing)
        learner = Learner()
        for router in self.settings.routers:
            loaded = self._load_router(router, self.candidates[router.name])
            self._routers[router.name] = loaded
            if router.bandit.enabled:
                self._add_bandit(learner, loaded)
        self.learner = learner if learner.routers() else None

    def _load_router(self, router: RouterConfig, candidates: tuple[str, ...]) -> Loaded:
        """On the worker thread: read one router's artifact."""
        from switchyard.routers.pipeline import RoutingPipeline

        found = fingerprint(router.artifact)
        pipe = RoutingPipeline.load(router.artifact, self._embedder)
        pipe.warm()
        lam = pipe.cost_weight if router.cost_weight is None else router.cost_weight
        online = "with a bandit" if router.bandit.enabled else "offline only"
        where = "the event loop" if self.inline else "the router thread"
        log.info("router %s: %s over %s, %s; %s, decides on %s", router.name, router.artifact,
                 ", ".join(candidates), online, self._embedder.name, where)  # fmt: skip
        cascade = load_cascade(router, self._embedder) if router.kind == "cascade" else None
        return Loaded(router, pipe, candidates, lam, found, cascade)

    def _add_bandit(self, learner: Learner, loaded: Loaded) -> None:
        embedder, config = self._embedder, loaded.config
        learner.add(config.name, loaded.pipeline.models, config.bandit, embedder.dim, embedder.name)

    # -- reload ----------------------------------------------------------------------------

    async def prepare(self, new: Settings) -> Prepared:
        """Load what ``new`` changes (artifacts on the worker thread); nothing is served
        from it until ``commit``. Raises ``ValueError`` for an artifact that cannot be used."""
        running = {
            name: Running(r.config, r.fingerprint, tuple(r.pipeline.models), r.candidates)
            for name, r in self._routers.items()
        }
        shared = not isinstance(self.shared, LocalState)
        todo = plan(running, new, self.learner is not None, shared)
        loaded = await self.on_worker(self._load_planned, new, todo)
        restart = routing_restart(self.settings.routing, new.routing) + todo.restart
        return Prepared(new, loaded, todo, restart)

    def _load_planned(self, new: Settings, todo: RouterPlan) -> dict[str, Loaded]:
        out: dict[str, Loaded] = {}
        for router in new.routers:
            name, old = router.name, self._routers.get(router.name)
            if name in todo.held and old is not None:
                configured = {m.name for m in new.models}
                kept = tuple(m for m in old.candidates if m in configured) or old.candidates
                out[name] = replace(old, candidates=kept)
            elif name in todo.load or old is None:
                try:
                    out[name] = self._load_router(router, new.candidates(router))
                except (ValueError, OSError) as err:  # a corrupt artifact, another embedder
                    raise ValueError(f"routers: {name}: {err}") from None
            else:
                pipe = old.pipeline
                lam = pipe.cost_weight if router.cost_weight is None else router.cost_weight
                cascade = reloaded_cascade(router, old.config, old.cascade, self._embedder)
                out[name] = replace(old, config=router, candidates=new.candidates(router),
                                    cost_weight=lam, cascade=cascade)  # fmt: skip
        return out

    async def commit(self, prepared: Prepared) -> None:
        """Serve ``prepared`` from now on. The swap happens before the first await, so a
        caller that swaps other parts just before sees one consistent config; decisions
        already queued finish on the routers they were queued with."""
        self.settings = prepared.settings
        self._routers = prepared.routers
        self.candidates = {name: r.candidates for name, r in prepared.routers.items()}
        self._every = {}
        todo = prepared.plan
        if self.learner is not None and (todo.drop or todo.bandits):
            await self.on_worker(self._swap_bandits, self.learner, todo, prepared.routers)

    def _swap_bandits(self, learner: Learner, todo: RouterPlan, new: dict[str, Loaded]) -> None:
        for name in todo.drop:
            learner.drop(name)
        for name in todo.bandits:
            self._add_bandit(learner, new[name])

    async def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        await self.shared.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self.semantic is not None:
            self.semantic.close()

    def cascade(self, name: str) -> Any:
        """Router ``name``'s CascadeModel (``kind: cascade``), else None."""
        loaded = self._routers.get(name)
        return None if loaded is None else loaded.cascade

    def resolve(self, name: str) -> RouterConfig | None:
        return self.settings.router(name)

    async def embed(self, text: str) -> Any:
        """The routers' embedding of ``text`` (float32, L2-normalised), on the worker thread
        (a cascade's verifier reads it)."""
        return await self.on_worker(self._embed_one, text)

    async def semantic_vector(self, text: str, routed: Any = None) -> Any:
        """The semantic cache's embedding of ``text`` (``gateway.cache.vectors``): MiniLM's;
        ``routed``, the routing decision's embedding, when the routers embed with it too."""
        if not self.inline:
            return routed if routed is not None else await self.embed(text)
        if self.semantic is None:  # the cache was enabled by a reload: load it now, off-loop
            self.semantic = await asyncio.to_thread(semantic_embedder, self.settings.routing)
        return await self.semantic.vector(text)

    def _embed_one(self, text: str) -> Any:
        assert self._embed is not None, "start() first"
        return self._embed([text])[0]  # every embedder gives float32 rows

    def prompt_of(self, value: Any) -> str:
        try:
            return self._prompt_text(value)
        except (TypeError, AttributeError, ValueError) as err:
            raise InvalidRequestError(f"cannot read the prompt to route it: {err}") from None

    def allowed(
        self,
        name: str,
        options: RoutingOptions,
        may_use: Callable[[str], bool] | None,
        needs: Needs | None = None,
    ) -> frozenset[str]:
        """The candidates this request may go to; 400 if the options, the caller's key
        (``may_use``; None: one that may use every model) or the model constraints ``needs``
        (``switchyard.gateway.constraints``) leave none."""
        candidates = self.candidates[name]
        if options is NO_OPTIONS and may_use is None and needs is None:  # the common case
            every = self._every.get(candidates)
            if every is None:
                every = self._every[candidates] = frozenset(candidates)
            return every
        if options.models is not None:
            unknown = [m for m in options.models if m not in candidates]
            if unknown:
                raise InvalidRequestError(
                    f"router '{name}' cannot choose {', '.join(unknown)}; its candidates are "
                    f"{', '.join(candidates)}",
                    param="models",
                )
        cap = options.max_price_per_mtok
        allowed = frozenset(
            m
            for m in (options.models or candidates)
            if (may_use is None or may_use(m)) and (cap is None or self._price_out(m) <= cap)
        )
        if not allowed:
            raise InvalidRequestError(
                "no candidate model is left by the routing constraints", param="models"
            )
        if needs is not None:
            allowed = filter_candidates(name, allowed, needs, self.settings.model, self.metrics)
        return allowed

    def _price_out(self, model: str) -> float:
        config = self.settings.model(model)
        return math.inf if config is None else config.price_output_per_mtok

    async def decide(
        self,
        name: str,
        text: str,
        options: RoutingOptions,
        allowed: frozenset[str],
        delays: Mapping[str, float] | None = None,
        key: KeyRecord | None = None,
    ) -> Route:
        """Queue one decision, await its batch, and register it as pending.

        ``delays``: expected wait (s) on each allowed model's best replica, read by the
        caller on the event loop; the decision subtracts ``latency_weight`` times it.
        ``key``: the caller's, whose owner alone may give feedback on the decision (None
        when auth is off); a tenant-scoped bandit decides with its tenant's statistics."""
        started = time.perf_counter()
        router = self._routers[name]
        lam = router.cost_weight if options.cost_weight is None else options.cost_weight
        mu = router.config.latency_weight
        mu = mu if options.latency_weight is None else options.latency_weight
        penalty = {m: mu * d for m, d in (delays or {}).items() if math.isfinite(d) and d > 0}
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Chosen] = loop.create_future()
        owner = None if key is None else Owner(key.id, key.tenant)
        tenant = None if key is None else key.tenant
        arms = name if self.learner is None else self.learner.arms(name, tenant)
        self._queue.append(Job(router, text, lam, allowed, future, penalty, arms))
        if len(self._queue) >= self.settings.routing.max_batch:
            self._flush()
        elif self._timer is None:
            wait = self.settings.routing.batch_wait_ms / 1e3
            # No wait by default: prompts arriving while a batch runs form the next one.
            if wait:
                self._timer = loop.call_later(wait, self._flush)
            else:
                self._timer = loop.call_soon(self._flush)
        chosen = await future
        decision = chosen.decision
        took = time.perf_counter() - started
        self.metrics.routing.decided(name, decision.model, took)
        route = Route(
            decision_id=os.urandom(16).hex(),
            router=name,
            model=decision.model,
            cost_weight=lam,
            quality={m: chosen.quality[m] for m in router.candidates},
            cost={m: decision.cost[m] for m in router.candidates},
            started=started,
            decision_s=took,
            context=chosen.context,
            owner=owner,
            arms=arms,
            embedding=chosen.vector,
        )
        self.outcomes.pending(route)
        return route

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._busy or not self._queue:
            return  # the running batch flushes the queue when it is done
        size = self.settings.routing.max_batch
        jobs, self._queue = self._queue[:size], self._queue[size:]
        self._busy = True
        self.metrics.routing.batches += 1
        if self.inline:
            try:
                self._resolve(jobs, self._run_batch(jobs))
            except Exception as err:  # every job of the batch gets the error
                self._resolve(jobs, err)
            return
        loop = asyncio.get_running_loop()
        assert self._executor is not None, "start() first"
        done = loop.run_in_executor(self._executor, self._run_batch, jobs)
        done.add_done_callback(lambda fut: self._resolve(jobs, outcome(fut)))  # type: ignore[arg-type]

    def _resolve(self, jobs: list[Job], done: list[Chosen | Exception] | BaseException) -> None:
        self._busy = False
        for i, job in enumerate(jobs):
            if job.future.done():
                continue
            result = done if isinstance(done, BaseException) else done[i]
            if isinstance(result, BaseException):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)
        if self._queue:
            self._flush()

    def _run_batch(self, jobs: Sequence[Job]) -> list[Chosen | Exception]:
        """On the worker thread: one embedding call, one prediction per router, then one
        decision call per group of jobs sharing a cost weight, constraints and penalties."""
        import numpy as np

        assert self._embed is not None, "start() first"
        texts = [job.text for job in jobs]
        X = np.asarray(self._embed(texts), dtype=np.float64)
        out: list[Chosen | Exception] = [RuntimeError("not decided")] * len(jobs)
        for router in {id(job.router): job.router for job in jobs}.values():
            rows = [i for i, job in enumerate(jobs) if job.router is router]
            pred = router.pipeline.predict_features(X[rows], [texts[i] for i in rows])
            quality, contexts = self._adjust([jobs[i] for i in rows], X[rows], pred.quality)
            cols, models = router.columns, router.decides  # the candidates' columns
            quality, cost = quality[:, cols], pred.cost[:, cols]
            offline = [dict(zip(models, q, strict=True)) for q in pred.quality[:, cols].tolist()]
            z = [None] * len(rows) if contexts is None else list(map(tuple, contexts.tolist()))
            groups: dict[tuple[Any, ...], list[int]] = {}
            for k, i in enumerate(rows):
                job = jobs[i]
                key = (job.cost_weight, job.allowed, tuple(sorted(job.penalty.items())))
                groups.setdefault(key, []).append(k)
            for ks in groups.values():
                chosen = choose([jobs[rows[k]] for k in ks], quality[ks], cost[ks],
                                [offline[k] for k in ks], [z[k] for k in ks])  # fmt: skip
                for k, result in zip(ks, chosen, strict=True):
                    out[rows[k]] = result
                    if isinstance(result, Chosen):
                        result.vector = X[rows[k]]  # a view: free unless the cache reads it
        return out

    def _adjust(self, jobs: Sequence[Job], X: Any, quality: Any) -> tuple[Any, Any]:
        """The bandit's correction of one router's predicted quality, job by job with the
        statistics each uses (its tenant's, with a tenant-scoped bandit), and the contexts."""
        import numpy as np

        learner, router = self.learner, jobs[0].router
        name = router.config.name
        # A job queued before a reload remade this router's bandit decides without it.
        if learner is None or learner.models(name) != tuple(router.pipeline.models):
            return quality, None
        groups: dict[str, list[int]] = {}
        for k, job in enumerate(jobs):
            groups.setdefault(job.arms, []).append(k)
        if len(groups) == 1:
            return learner.adjust(jobs[0].arms, X, quality)
        adjusted, contexts = np.array(quality, copy=True), None
        for arms, ks in groups.items():
            q, z = learner.adjust(arms, X[ks], quality[ks])
            if contexts is None:
                contexts = np.empty((len(jobs), z.shape[1]))
            adjusted[ks], contexts[ks] = q, z
        return adjusted, contexts

    # -- outcomes and feedback -------------------------------------------------------------

    def finish(self, route: Route, record: OutcomeRecord) -> None:
        """A routed request is done: record it here and hand it to the shared store."""
        decided = self.outcomes.finish(route, record)
        self.shared.publish(record, decided)

    async def learn(self, answer: Feedback, decided: Decided) -> None:
        """New feedback: the bandit of the decision's router learns its reward's residual,
        here at once and on every replica through the shared store."""
        self.metrics.feedback.labels(decided.router, decided.model).observe(answer.score)
        self.shared.feedback_given(answer, decided)
        learner = self.learner
        if learner is None or decided.context is None or decided.router not in learner:
            return
        from switchyard.routers.online.stats import Observation

        row = Observation(decided.model, decided.context, answer.reward - decided.prior)
        arms = decided.arms or decided.router
        await self.on_worker(learner.learn, arms, row)
        self.shared.observe(arms, row)

    def cards(self) -> list[tuple[str, tuple[str, ...]]]:
        """(name, candidates) of each routed model name, "auto" included when it resolves."""
        names = [r.name for r in self.settings.routers]
        if "auto" not in names and self.resolve("auto") is not None:
            names.append("auto")
        out = []
        for name in names:
            router = self.resolve(name)
            assert router is not None
            out.append((name, self.candidates[router.name]))
        return out
