"""A burst of requests from many connections is handled in bounded turns of the event loop when
high availability is on (``runtime/connection.py``, ``TURN_BUDGET``; issue 25, docs/ha.md §7,
docs/performance.md §13).

An ``IvrServer`` leading a hot ``memory://`` slot in this process; :data:`LINKS` raw links each
write :data:`PER_LINK` ``NewCall`` at once. A callback that schedules itself with ``call_soon``
runs once per turn of the event loop and reads how many documents the server has handled: no
turn may handle more than the budget allows (twice :data:`TURN_BUDGET` in bytes, as reads and
the turn's end each get one, plus a connection's batch each). Without the budget a turn handled
each readable connection's batch (``TURN_FRAMES``): 2,280 documents here, and a real burst
of 50,000 from 200 sessions made turns of seconds, which cost the leader its lease
(``tests/ha/test_burst.py``). Every call is still answered, in order, on every link.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator

import pytest

from ivr_server.config import HaConfig, ListenAddress, ServerConfig
from ivr_server.runtime import IvrServer
from ivr_server.runtime.connection import TURN_BUDGET, TURN_FRAMES
from tests.integration.rawlink import RawLink, doc, frame, many_ports_config, new_call_body

LINKS = 60
PER_LINK = 50
LOOPBACK_0 = (ListenAddress(host="127.0.0.1", port=0),)
_sites = itertools.count()


def config(mode: str) -> ServerConfig:
    """:data:`LINKS` × :data:`PER_LINK` ports; ``mode = hot`` on a site of its own of the
    process's ``memory://`` store (it leads at once: no other node), or ``off``."""
    base = many_ports_config(LINKS * PER_LINK, first_dn=100001)
    if mode == "off":
        return base
    ha = HaConfig(mode=mode, node_id="a", store="memory://", site=f"burst{next(_sites)}", lease=2.0)
    return base.model_copy(update={"ha": ha})


@pytest.fixture
async def links() -> AsyncIterator[list[RawLink]]:
    opened: list[RawLink] = []
    yield opened
    for link in opened:
        await link.close()


async def burst(server: IvrServer, opened: list[RawLink]) -> tuple[int, int]:
    """Log :data:`LINKS` links in, write every link's ``NewCall`` at once, count the documents
    handled per turn of the event loop until all are; wait for every call's ``Established``.
    Returns (the most documents one turn handled, the bytes of one ``NewCall`` frame)."""
    for i in range(LINKS):
        link = await RawLink.open(server.port)
        opened.append(link)
        await link.login(f"S{i}")
    loop = asyncio.get_running_loop()
    protocols = list(server.protocols.values())
    assert len(protocols) == LINKS

    def handled() -> int:
        return sum(p.session.documents_in for p in protocols if p.session is not None)

    total = handled() + LINKS * PER_LINK
    per_turn: list[int] = []
    done = loop.create_future()
    last = handled()

    def tick() -> None:
        nonlocal last
        now = handled()
        per_turn.append(now - last)
        last = now
        if now >= total:
            done.set_result(None)
        else:
            loop.call_soon(tick)

    frames = [
        b"".join(
            frame(doc(f"C{i}_{j}", new_call_body(str(i * PER_LINK + j + 1))))
            for j in range(PER_LINK)
        )
        for i in range(LINKS)
    ]
    for link, data in zip(opened, frames, strict=True):
        link.writer.write(data)  # all at once: no drain between links
    loop.call_soon(tick)
    await asyncio.wait_for(done, 60)
    for i, link in enumerate(opened):  # every call answered, in order: Ringing, Established
        for j in range(PER_LINK):
            for event in ("Ringing", "Established"):
                call_id, message, _ = await link.recv_doc(30)
                assert (call_id, message.tag) == (f"C{i}_{j}", "CallStatus"), (call_id, message)
                assert getattr(message, "Event", None) == event, message
    return max(per_turn), len(frames[0]) // PER_LINK


async def test_a_turn_handles_a_bounded_share_of_a_burst_with_ha(
    links: list[RawLink],
) -> None:
    server = IvrServer(config("hot"), listen=LOOPBACK_0, api_listen=())
    await server.start()
    try:
        assert server.ha is not None and server.ha.leads
        most, size = await burst(server, links)
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
    bound = 2 * (TURN_BUDGET // size + TURN_FRAMES)
    print(f"hot: at most {most} documents in a turn (bound {bound}; {size} bytes each)")
    assert most <= bound, f"{most} documents handled in one turn (bound {bound})"


async def test_off_keeps_its_turns(links: list[RawLink]) -> None:
    """``mode = off`` keeps its turns as they were (every readable connection's batch: printed,
    the figure the budget is compared with), and answers the same burst."""
    server = IvrServer(config("off"), listen=LOOPBACK_0, api_listen=())
    await server.start()
    try:
        assert server.ha is None
        most, size = await burst(server, links)
    finally:
        with contextlib.suppress(Exception):
            await server.stop()
    print(f"off: at most {most} documents in a turn ({size} bytes each)")
