"""The listening socket and the event loop: a burst of connections is accepted at once
(``listen-backlog``); a blocked loop shows in the event-loop lag metric."""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import resource
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ivr_server.config import ServerConfig, default_config
from ivr_server.runtime import IvrServer
from tests.integration.rawlink import RawLink, frame

pytestmark = pytest.mark.xdist_group("timing")  # the burst is timed: not beside the floods

BURST = 600
"""Connections opened together: six times Python's default backlog (100). Every connect() is
issued before the server, on the same event loop, accepts any of them."""


def _burst_fits() -> bool:
    """Both ends of the burst fit in the open-files limit (the soft limit raised if need be) and
    the kernel lets a listen queue hold the whole burst (``net.core.somaxconn``)."""
    try:
        somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    except (OSError, ValueError):
        return False
    return somaxconn >= BURST and _enough_descriptors(2 * BURST + 200)


def _enough_descriptors(needed: int) -> bool:
    """Raise the soft limit on open files to ``needed`` if the hard limit allows it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return True
    if hard != resource.RLIM_INFINITY and hard < needed:
        return False
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    return True


@contextlib.asynccontextmanager
async def _burst(
    start_server: Callable[..., Awaitable[IvrServer]], config: ServerConfig | None = None
) -> AsyncIterator[tuple[list[float], list[RawLink]]]:
    """Start a server, open :data:`BURST` connections to it at once; yields how long each took
    to connect and the links, closed afterwards. Skips the test if the burst cannot fit."""
    if not _burst_fits():
        pytest.skip("open-files limit or net.core.somaxconn too low for the burst")
    config = config or default_config()
    options = config.server.model_copy(update={"max_connections_per_peer": 0})  # all from here
    server = await start_server(config.model_copy(update={"server": options}))

    async def one() -> tuple[float, RawLink]:
        t0 = time.perf_counter()
        link = await RawLink.open(server.port)
        return time.perf_counter() - t0, link

    results = await asyncio.gather(*(one() for _ in range(BURST)))
    links = [link for _, link in results]
    try:
        yield [t for t, _ in results], links
    finally:
        for link in links:
            await link.close()


async def test_a_burst_of_connections_is_accepted_without_syn_retries(
    start_server: Callable[..., Awaitable[IvrServer]],
) -> None:
    async with _burst(start_server) as (delays, links):
        # A connection the listen queue had no room for waits for its SYN to be retransmitted,
        # one second later (Linux's initial retransmission timeout).
        assert max(delays) < 0.9, f"{sum(d >= 0.9 for d in delays)} connections waited a second"
        # Every connection is served: each answers a keep-alive request.
        for link in links:
            await link.send_bytes(frame(b"", gli_type=0))
        for link in links:
            assert await link.recv_frame() == (1, b"")
        await links[-1].login("L1")


async def test_the_backlog_comes_from_the_configuration(
    start_server: Callable[..., Awaitable[IvrServer]],
) -> None:
    """With the backlog Python would use by default, the same burst overflows the queue: the
    measurement above can fail, and the configured value is what reaches listen()."""
    cfg = default_config()
    small = cfg.model_copy(update={"server": cfg.server.model_copy(update={"listen_backlog": 100})})
    async with _burst(start_server, small) as (delays, _):
        assert max(delays) >= 0.9


async def test_a_blocked_event_loop_shows_in_the_lag_metric(
    start_server: Callable[..., Awaitable[IvrServer]],
) -> None:
    server = await start_server()
    lag = server.service.metrics.loop_lag
    slow = bisect.bisect_right(lag.bounds, 0.1)  # the buckets of lags over 100 ms
    await asyncio.sleep(0.6)  # the probe runs every 0.25 s
    assert lag.count >= 1
    before = sum(lag.counts[slow:])
    # A stall twice the probe's interval: one probe falls due at least 0.25 s before it ends.
    time.sleep(0.5)  # noqa: ASYNC251 - blocking the loop is the point
    await asyncio.sleep(0.3)
    assert sum(lag.counts[slow:]) >= before + 1, lag.counts
    assert lag.total >= 0.25
