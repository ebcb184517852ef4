"""Reloading the config file in this process, for ``POST /admin/config/reload`` and for the
fleet sync (``switchyard.gateway.fleet``), which applies another replica's reload here.

A reload reads the file, validates it, loads what the routers need from it off the request
path (``RouterService.prepare``: artifacts on the router worker thread), and only then swaps
upstreams, auth and routers one after the other with no await in between, so a request sees
either the old config or the new one. A file that does not validate, or a router artifact that
cannot be loaded, changes nothing. Reloads are serialised: one at a time per process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from switchyard.gateway.routing import RouterService
from switchyard.gateway.settings import Settings, SettingsError, load_settings
from switchyard.gateway.tenancy.guard import Guard
from switchyard.gateway.upstreams import Upstreams

log = logging.getLogger("switchyard.gateway")


@dataclass(frozen=True, slots=True)
class Reloaded:
    """One applied reload: the config before and after, the file's hash, and the fields of
    ``routers:``/``routing:`` that were not applied because they need a restart."""

    old: Settings
    new: Settings
    sha256: str
    restart: list[str] = field(default_factory=list)


def digest(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


class ConfigReloader:
    """Re-reads ``path`` (the file this process started from) and applies it."""

    def __init__(
        self,
        upstreams: Upstreams,
        guard: Guard,
        routing: RouterService | None,
        path: Path | None,
    ) -> None:
        self.upstreams = upstreams
        self.guard = guard
        self.routing = routing
        self.path = path
        self._lock = asyncio.Lock()
        # The hash of the file text now served (None: not started from a file).
        self.applied_sha: str | None = None
        if path is not None:
            try:
                self.applied_sha = digest(path.read_bytes())
            except OSError:
                self.applied_sha = None

    def file_sha(self) -> str:
        """The hash of the file as it is now (``SettingsError`` if it cannot be read)."""
        assert self.path is not None, "not started from a config file"
        try:
            return digest(self.path.read_bytes())
        except OSError as err:
            raise SettingsError(f"cannot read config file {self.path}: {err.strerror}") from None

    async def reload(self, only_if: str | None = None) -> Reloaded | None:
        """Read the file and apply it; ``SettingsError`` (nothing changed) if it is not valid.
        ``only_if``: apply only a file with this hash (None, nothing done, when it differs)."""
        assert self.path is not None, "not started from a config file"
        async with self._lock:
            sha = self.file_sha()
            if only_if is not None and sha != only_if:
                return None
            new = load_settings(self.path)
            return await self._apply(new, sha)

    async def _apply(self, new: Settings, sha: str) -> Reloaded:
        routing, restart = self.routing, []
        prepared = None
        if routing is not None:
            try:
                prepared = await routing.prepare(new)
            except ValueError as err:
                raise SettingsError(str(err)) from None
            restart = prepared.restart
        elif new.routers:  # no router service (nor embedder, nor worker) was started
            restart = ["routers"]
        old = self.upstreams.settings
        self.upstreams.reload(new)
        self.guard.reconfigure(new.auth)
        if routing is not None and prepared is not None:
            await routing.commit(prepared)
        self.applied_sha = sha
        done = Reloaded(old, new, sha, restart)
        log.info("config reloaded from %s (sha256 %s): %s", self.path, sha[:12], summary(done))
        return done


def summary(done: Reloaded) -> str:
    """What a reload changed, in one line for the log."""
    parts = []
    for what, old, new in (
        ("models", {m.name: m for m in done.old.models}, {m.name: m for m in done.new.models}),
        ("routers", {r.name: r for r in done.old.routers}, {r.name: r for r in done.new.routers}),
    ):
        added = sorted(new.keys() - old.keys())
        removed = sorted(old.keys() - new.keys())
        changed = sorted(n for n in new.keys() & old.keys() if new[n] != old[n])
        parts.append(f"{what} +{added} -{removed} ~{changed}")
    if done.old.routing != done.new.routing:
        parts.append("routing changed")
    if done.old.auth != done.new.auth:
        parts.append("auth changed")
    if done.restart:
        parts.append(f"need a restart: {', '.join(done.restart)}")
    return "; ".join(parts)
