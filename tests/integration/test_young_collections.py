"""The running server collects its young generations itself, every
``YOUNG_COLLECTION_INTERVAL``, from start to stop (src/ivr_server/runtime/app.py; why:
src/ivr_server/memory.py ``YoungCollections``, docs/performance.md §13 "Stalls")."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ivr_server.memory import YOUNG_COLLECTION_INTERVAL
from ivr_server.runtime.app import IvrServer


async def test_the_server_collects_its_young_generations_until_it_stops(
    start_server: Callable[..., Awaitable[IvrServer]],
) -> None:
    server = await start_server()
    for _ in range(600):  # up to 30 s on a loaded machine
        if server.young_collections.ticks >= 3:
            break
        await asyncio.sleep(YOUNG_COLLECTION_INTERVAL)
    assert server.young_collections.ticks >= 3
    await server.stop()
    ticks = server.young_collections.ticks
    await asyncio.sleep(YOUNG_COLLECTION_INTERVAL * 4)
    assert server.young_collections.ticks == ticks  # its timer went with the server
