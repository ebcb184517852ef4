"""Fleet-wide config reload: a reload through any replica reaches every replica sharing its
Redis (``state.redis_url``).

After a successful local reload the replica publishes a config version in one Redis hash,
``{<key_prefix>}:config``: ``version`` (incremented) and ``sha256`` (of the config file's text it
applied). Every replica checks that hash every ``routing.refresh_s``; when the published hash is not
the one it already serves, it re-reads its OWN config file and applies it as the admin route does
(``switchyard.gateway.reload``). If its file's hash differs from the published one (a Kubernetes
ConfigMap not yet propagated to this pod), it says so once and keeps checking until the file
matches.

Without Redis a reload stays in the process that got it. A Redis outage never fails a local
reload: publishing or checking is skipped, logged once per change, and retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from switchyard.gateway.metrics import GatewayMetrics
from switchyard.gateway.redis_client import UNAVAILABLE, KeyTags, connect, target_of, unavailable
from switchyard.gateway.reload import ConfigReloader
from switchyard.gateway.settings import SettingsError
from switchyard.gateway.state import StateConfig

log = logging.getLogger("switchyard.gateway")

# One script, so the version and the hash of one publication are written together.
_PUBLISH = """
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'sha256', ARGV[1])
return version
"""


class Fleet:
    """Publishes this replica's reloads and applies the other replicas' ones."""

    def __init__(
        self,
        state: StateConfig,
        reloader: ConfigReloader,
        metrics: GatewayMetrics,
        refresh_s: Callable[[], float],
    ) -> None:
        target = target_of(state)
        self.key = KeyTags(state.key_prefix, target.spread).tag() + ":config"
        self.version = 0  # the published version this replica serves (0: none seen yet)
        self._target, self._timeout_s = target, state.timeout_s
        self._reloader = reloader
        self._metrics = metrics
        self._refresh_s = refresh_s
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._down: str | None = None  # the outage last logged
        self._waiting: tuple[int, str] | None = None  # (version, sha256) last logged as unmet
        self._failed: tuple[int, str] | None = None  # (version, sha256) that did not load here
        self._seen: tuple[int, str | None] = (0, None)  # what Redis last said
        # A reload applied here while Redis was away, and what Redis said before it.
        self._pending: tuple[str, tuple[int, str | None]] | None = None

    async def start(self) -> None:
        self._client = connect(self._target, self._timeout_s, max_connections=2)
        await self.check()
        self._task = asyncio.create_task(self._run(), name="switchyard-fleet")

    async def close(self) -> None:
        # Stopped by a flag, not by cancelling: a cancellation that lands inside a Redis call
        # can be taken for a failed call there, and the loop would go on.
        self._stop.set()
        if self._task is not None:
            await self._task
        if self._client is not None:
            await self._client.aclose()

    async def publish(self, sha: str) -> dict[str, Any]:
        """Tell the other replicas that this one now serves the file with hash ``sha``."""
        try:
            version = int(await self._client.eval(_PUBLISH, 1, self.key, sha))
        except UNAVAILABLE as err:
            message = str(unavailable(err))
            self._health(message)
            self._pending = (sha, self._seen)
            note = f"{message}; applied on this replica only, published once Redis is back"
            return {"fleet": False, "fleet_note": note}
        self._health(None)
        self._seen = (version, sha)
        self._serving(version)
        return {"fleet": True, "config_version": version, "sha256": sha}

    async def _run(self) -> None:
        while not await self._stopped_within(self._refresh_s()):
            try:
                await self.check()
            except Exception:  # a background task: a bug here must not end the sync
                log.exception("fleet config sync: check failed")

    async def _stopped_within(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
        return self._stop.is_set()

    async def check(self) -> None:
        """Apply the published config if it moved past the one served here."""
        try:
            raw = await self._client.hmget(self.key, ["version", "sha256"])
        except UNAVAILABLE as err:
            self._health(str(unavailable(err)))
            return
        self._health(None)
        version = int(raw[0] or 0)
        sha = raw[1].decode() if isinstance(raw[1], bytes) else raw[1]
        self._seen = (version, sha)
        if await self._publish_pending(version, sha):
            return
        # The hash decides, not the version alone: a Redis restarted empty counts from 1 again.
        if sha is None or (version, sha) == self._failed:
            return
        if sha == self._reloader.applied_sha:
            if version != self.version:
                self._serving(version)
            return
        await self._apply(version, sha)

    async def _publish_pending(self, version: int, sha: str | None) -> bool:
        """Publish a reload made here while Redis was away, unless another replica published
        one since (then that one, newer, wins and is applied here as any other)."""
        if self._pending is None:
            return False
        pending, before = self._pending
        self._pending = None
        if (sha is not None and (version, sha) != before) or pending != self._reloader.applied_sha:
            return False
        answer = await self.publish(pending)
        if answer["fleet"]:
            log.info("fleet config version %d published: the reload made here while the state "
                     "store was away", answer["config_version"])  # fmt: skip
        return True

    async def _apply(self, version: int, sha: str) -> None:
        try:
            done = await self._reloader.reload(only_if=sha)
        except SettingsError as err:  # valid where it was published: something local differs
            log.error("fleet config version %d (sha256 %s) does not load here; keeping the "
                      "running config: %s", version, sha[:12], err)  # fmt: skip
            self._failed = (version, sha)
            return
        if done is None:
            if self._waiting != (version, sha):
                self._waiting = (version, sha)
                log.warning("fleet config version %d (sha256 %s) published, but %s differs; "
                            "applying it once the file matches", version, sha[:12],
                            self._reloader.path)  # fmt: skip
            return
        self._serving(version)  # the reloader logged what changed
        log.info("fleet config version %d (sha256 %s) applied here", version, sha[:12])

    def _serving(self, version: int) -> None:
        self.version = version
        self._waiting = None
        self._metrics.config_version.set(version)

    def _health(self, error: str | None) -> None:
        if error is not None and self._down is None:
            log.warning("fleet config sync: %s (reloads stay local until it is back)", error)
        elif error is None and self._down is not None:
            log.info("fleet config sync: the state store answers again")
        self._down = error
