"""``Scraper``: a background asyncio task that reads every endpoint's vLLM ``/metrics`` on a
short interval and keeps the latest ``EngineSnapshot`` of each.

It never runs on the request path: requests only read ``snapshot(name)``, a dict lookup.
Each round scrapes all targets concurrently, each bounded by ``timeout_s``; a failed scrape
keeps the previous snapshot, which turns unknown (``None``) once it is older than
``stale_after`` intervals. A target's health is logged once per change (up, down with the
reason, back up), never once per failed scrape. Nothing starts before ``start()``, which must
be called inside the running loop; ``aclose()`` stops the task and closes the HTTP session.

    scraper = Scraper({"a": metrics_url("http://10.0.0.5:8000/v1")}, interval_s=1.0)
    scraper.start()
    snap = scraper.snapshot("a")   # EngineSnapshot, or None while unknown or stale
    await scraper.aclose()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from enum import Enum
from typing import Any

import aiohttp

from switchyard.backends.engine_state import EngineSnapshot, fresh, next_snapshot
from switchyard.backends.vllm_metrics import read_page

__all__ = ["Scraper", "metrics_url"]

log = logging.getLogger("switchyard.backends")

# A real two-engine vLLM page is ~75 kB; anything far larger is not a metrics page.
_MAX_PAGE_BYTES = 8 * 1024 * 1024


def metrics_url(base_url: str) -> str:
    """The ``/metrics`` URL of a server whose OpenAI API lives at ``base_url`` (``.../v1``)."""
    root = base_url.rstrip("/")
    root = root.removesuffix("/v1")
    return f"{root}/metrics"


class _Health(Enum):
    unknown = "unknown"
    up = "up"
    down = "down"


class _ScrapeError(Exception):
    """A scrape that got no usable page; the message says why (for the one log line)."""


class Scraper:
    """Latest engine snapshot of each target (name -> ``/metrics`` URL), kept fresh."""

    def __init__(
        self,
        targets: Mapping[str, str],
        *,
        interval_s: float = 1.0,
        timeout_s: float | None = None,
        stale_after: int = 3,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval_s <= 0 or stale_after < 1:
            raise ValueError("interval_s must be > 0 and stale_after >= 1")
        self.targets = dict(targets)
        self.interval_s = interval_s
        # A scrape never outlives its round, so one hung server cannot delay the others' next.
        self.timeout_s = timeout_s if timeout_s is not None else min(0.8 * interval_s, 2.0)
        self.max_age_s = stale_after * interval_s
        self._clock = clock
        self._latest: dict[str, EngineSnapshot] = {}
        self._health = dict.fromkeys(self.targets, _Health.unknown)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._first: set[asyncio.Task[None]] = set()  # first scrapes of new targets

    def snapshot(self, name: str) -> EngineSnapshot | None:
        """The latest snapshot of ``name``; ``None`` if never scraped or stale."""
        return fresh(self._latest.get(name), self._clock(), self.max_age_s)

    def snapshots(self) -> dict[str, EngineSnapshot | None]:
        """``snapshot(name)`` of every target."""
        now = self._clock()
        return {name: fresh(self._latest.get(name), now, self.max_age_s) for name in self.targets}

    def set_targets(self, targets: Mapping[str, str]) -> None:
        """Scrape ``targets`` from now on (discovery changed the pods). A new target is
        scraped at once, so a new pod's load counts from its first scrape rather than from
        the next round; a target gone is forgotten with its snapshot."""
        new = {n: u for n, u in targets.items() if self.targets.get(n) != u}
        self.targets = dict(targets)
        for name in [n for n in self._latest if n not in self.targets]:
            del self._latest[name]
        self._health = {n: self._health.get(n, _Health.unknown) for n in self.targets}
        if new and self._task is not None:
            session = self._ensure_session()
            first = asyncio.get_running_loop().create_task(
                _gather(self._scrape(session, n, u) for n, u in new.items())
            )
            self._first.add(first)
            first.add_done_callback(self._first.discard)

    def start(self) -> None:
        """Start scraping in the background (call inside the running loop; idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        for first in list(self._first):
            first.cancel()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def scrape_once(self) -> None:
        """One round: every target, concurrently. Never raises for a target's failure."""
        session = self._ensure_session()
        await asyncio.gather(*(self._scrape(session, n, u) for n, u in self.targets.items()))

    async def _run(self) -> None:
        while True:
            started = self._clock()
            try:
                await self.scrape_once()
            except Exception:
                # A bug here must not end scraping for good: snapshots would silently go
                # stale and routing would quietly degrade to in-flight counts.
                log.exception("metrics scrape round failed")
            await asyncio.sleep(max(0.0, self.interval_s - (self._clock() - started)))

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            # No limit: one request per target per round, and discovery may add targets.
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, keepalive_timeout=4.0)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            )
        return self._session

    async def _scrape(self, session: aiohttp.ClientSession, name: str, url: str) -> None:
        try:
            text = await self._fetch(session, url)
            reading = read_page(text)
            snapshot = next_snapshot(reading, self._clock(), self._latest.get(name))
        except _ScrapeError as err:
            self._set_health(name, url, _Health.down, str(err))
            return
        except TimeoutError:  # before OSError, its base class
            self._set_health(name, url, _Health.down, f"no answer within {self.timeout_s:g}s")
            return
        except (aiohttp.ClientError, OSError) as err:
            self._set_health(name, url, _Health.down, f"{type(err).__name__}: {err}")
            return
        except ValueError as err:  # an unreadable page (UnicodeDecodeError included)
            self._set_health(name, url, _Health.down, f"unreadable metrics page: {err}")
            return
        if self.targets.get(name) != url:  # discovery dropped it while the scrape ran
            return
        self._latest[name] = snapshot
        self._set_health(name, url, _Health.up, "")

    async def _fetch(self, session: aiohttp.ClientSession, url: str) -> str:
        async with session.get(url) as resp:
            if resp.status != 200:
                raise _ScrapeError(f"HTTP {resp.status}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > _MAX_PAGE_BYTES:
                    raise _ScrapeError(f"page larger than {_MAX_PAGE_BYTES} bytes")
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8")

    def _set_health(self, name: str, url: str, health: _Health, reason: str) -> None:
        before = self._health.get(name, _Health.unknown)
        if health is before or name not in self._health:  # unchanged, or no longer a target
            return
        self._health[name] = health
        if health is _Health.down:
            log.warning("engine metrics of %s (%s) unavailable: %s", name, url, reason)
        elif before is _Health.down:
            log.info("engine metrics of %s (%s) are back", name, url)
        else:
            log.info("engine metrics of %s (%s) scraped", name, url)


async def _gather(scrapes: Iterable[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*scrapes)
