"""The metrics scraper against real servers on real sockets: live simulators, a dead port,
a 404, a server that never answers, and snapshots that age into unknown."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator

import aiohttp
import pytest

from switchyard.backends.scraper import Scraper, metrics_url
from tests.support.gateways import Simulator
from tests.support.servers import free_port

LOGGER = "switchyard.backends"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (kernel backlog) but never answers a byte."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_metrics_url_is_derived_from_the_openai_base_url() -> None:
    assert metrics_url("http://10.0.0.5:8000/v1") == "http://10.0.0.5:8000/metrics"
    assert metrics_url("http://10.0.0.5:8000/v1/") == "http://10.0.0.5:8000/metrics"
    assert metrics_url("http://vllm:8000") == "http://vllm:8000/metrics"


def test_snapshot_shows_running_and_waiting_requests_of_a_live_simulator(
    simulator: Callable[..., Simulator],
) -> None:
    sim = simulator("m", decode_base_s=0.02, max_num_seqs=2, kv_cache_tokens=64_000)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5000}

    async def scenario() -> None:
        scraper = Scraper({"a": metrics_url(sim.base_url)}, interval_s=0.1)
        async with aiohttp.ClientSession() as client:
            calls = [
                asyncio.ensure_future(client.post(f"{sim.base_url}/chat/completions", json=body))
                for _ in range(5)
            ]
            deadline = time.monotonic() + 5
            engine = sim.app.engine
            while (engine.num_running, engine.num_waiting) != (2, 3):  # admitted step by step
                assert time.monotonic() < deadline, "the simulator never saw 5 requests"
                await asyncio.sleep(0.01)
            await scraper.scrape_once()
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
        await scraper.aclose()
        snap = scraper.snapshot("a")
        assert snap is not None
        assert (snap.running, snap.waiting, snap.engines) == (2, 3, 1)
        assert snap.kv_capacity_tokens == 64_000
        assert snap.kv_cache_usage is not None and snap.kv_cache_usage > 0
        assert snap.preemptions == 0

    asyncio.run(scenario())


def test_background_task_keeps_every_target_fresh(simulator: Callable[..., Simulator]) -> None:
    sims = {name: simulator(name) for name in ("a", "b")}

    async def scenario() -> None:
        scraper = Scraper({n: metrics_url(s.base_url) for n, s in sims.items()}, interval_s=0.05)
        scraper.start()
        seen: set[float] = set()
        deadline = time.monotonic() + 5
        while len(seen) < 3:
            assert time.monotonic() < deadline, "snapshots did not keep coming"
            snaps = scraper.snapshots()
            if all(snaps.values()):
                seen.add(snaps["a"].scraped_at)  # type: ignore[union-attr]
            await asyncio.sleep(0.02)
        await scraper.aclose()

    asyncio.run(scenario())


def test_dead_port_is_unknown_logged_once_and_recovery_logged_once(
    simulator: Callable[..., Simulator], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    port = free_port()
    scraper = Scraper({"a": f"http://127.0.0.1:{port}/metrics"}, interval_s=0.05)

    async def rounds(n: int) -> None:
        for _ in range(n):
            await scraper.scrape_once()

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(rounds(3))
        assert scraper.snapshot("a") is None
        assert len(warnings_of(caplog)) == 1
        assert "unavailable" in warnings_of(caplog)[0]
        simulator("m", port=port)
        loop.run_until_complete(rounds(3))
        assert scraper.snapshot("a") is not None
        back = [r.getMessage() for r in caplog.records if "are back" in r.getMessage()]
        assert len(back) == 1
        assert len(warnings_of(caplog)) == 1
    finally:
        loop.run_until_complete(scraper.aclose())
        loop.close()


def test_a_page_that_is_not_vllm_metrics_is_unknown(
    simulator: Callable[..., Simulator], caplog: pytest.LogCaptureFixture
) -> None:
    sim = simulator("m")
    scraper = Scraper(
        {"missing": f"{sim.server.url}/nope", "models": f"{sim.base_url}/models"}, interval_s=0.05
    )

    async def scenario() -> None:
        await scraper.scrape_once()
        await scraper.aclose()

    asyncio.run(scenario())
    assert scraper.snapshots() == {"missing": None, "models": None}
    reasons = " ".join(warnings_of(caplog))
    assert "HTTP 404" in reasons
    assert "unreadable metrics page" in reasons


def test_a_server_that_never_answers_costs_one_timeout_and_no_exception(
    silent_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    scraper = Scraper({"a": f"http://127.0.0.1:{silent_port}/metrics"}, timeout_s=0.2)

    async def scenario() -> float:
        started = time.monotonic()
        await scraper.scrape_once()
        elapsed = time.monotonic() - started
        await scraper.aclose()
        return elapsed

    assert asyncio.run(scenario()) < 1.0
    assert scraper.snapshot("a") is None
    assert "no answer within 0.2s" in warnings_of(caplog)[0]


def test_snapshot_survives_a_missed_scrape_but_turns_unknown_once_stale(
    simulator: Callable[..., Simulator],
) -> None:
    sim = simulator("m")
    clock = FakeClock()
    scraper = Scraper({"a": metrics_url(sim.base_url)}, interval_s=1.0, stale_after=3, clock=clock)
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(scraper.scrape_once())
        first = scraper.snapshot("a")
        assert first is not None and first.scraped_at == 1000.0
        sim.server.stop()
        clock.now += 1.0
        loop.run_until_complete(scraper.scrape_once())  # fails: the last snapshot stays
        assert scraper.snapshot("a") is first
        clock.now += 2.5  # 3.5 intervals since the last good scrape
        assert scraper.snapshot("a") is None
        assert scraper.snapshots() == {"a": None}
    finally:
        loop.run_until_complete(scraper.aclose())
        loop.close()


def test_invalid_intervals_are_refused() -> None:
    with pytest.raises(ValueError):
        Scraper({}, interval_s=0)
    with pytest.raises(ValueError):
        Scraper({}, stale_after=0)


def test_new_targets_are_scraped_at_once_and_gone_ones_forgotten(
    simulator: Callable[..., Simulator],
) -> None:
    old, new = simulator("m"), simulator("m")

    async def scenario() -> tuple[bool, bool, bool]:
        scraper = Scraper({"old": metrics_url(old.base_url)}, interval_s=30.0)
        scraper.start()
        deadline = time.monotonic() + 5
        while scraper.snapshot("old") is None:
            assert time.monotonic() < deadline, "no snapshot of old"
            await asyncio.sleep(0.01)
        # The next round is 30 s away: only an immediate first scrape can fill this in.
        scraper.set_targets({"new": metrics_url(new.base_url)})
        while scraper.snapshot("new") is None:
            assert time.monotonic() < deadline, "no snapshot of new"
            await asyncio.sleep(0.01)
        result = (scraper.snapshot("new") is not None, scraper.snapshot("old") is None,
                  list(scraper.snapshots()) == ["new"])  # fmt: skip
        await scraper.aclose()
        return result

    assert asyncio.run(scenario()) == (True, True, True)
