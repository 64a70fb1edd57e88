"""After a crowd of calls has gone, the server gives their memory back while it keeps serving:
a compaction on every eightfold drop from a peak of thousands down to no call (tables rebuilt,
a full collection once few calls remain, the heap trimmed; docs/performance.md §5)."""

from __future__ import annotations

import gc
import logging
from collections.abc import Awaitable, Callable

import pytest

from ivr_server.runtime import IvrServer
from tests.integration.rawlink import (
    RawLink,
    many_ports_config,
    new_call_body,
    send_many,
    start_call,
)

PORTS = 4200
"""Just over the smallest peak that starts a wind-down (4,096 calls)."""


async def _replies(link: RawLink, count: int) -> list[str]:
    """The CallIds of the next ``count`` documents."""
    ids = []
    for _ in range(count):
        call_id, _, _ = await link.recv_doc(timeout=10.0)
        assert call_id is not None
        ids.append(call_id)
    return ids


async def test_a_crowd_of_calls_is_compacted_down_to_none_and_the_server_carries_on(
    start_server: Callable[..., Awaitable[IvrServer]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = await start_server(many_ports_config(PORTS, first_dn=100_001))
    link = await RawLink.open(server.port)
    try:
        await link.login("LOGIN", "IVR_1")
        calls = [f"K{i}" for i in range(PORTS)]
        await send_many(link, [(cid, new_call_body(str(i + 1))) for i, cid in enumerate(calls)])
        assert sorted(await _replies(link, 2 * PORTS)) == sorted(calls * 2)  # Ringing, Established
        assert len(server.service.calls.calls) == PORTS
        full_collections = []

        def on_gc(phase: str, info: dict[str, int]) -> None:
            if phase == "start" and info["generation"] == 2:
                full_collections.append(len(server.service.calls.calls))

        gc.callbacks.append(on_gc)
        try:
            with caplog.at_level(logging.INFO, logger="ivr_server.service"):
                await send_many(
                    link,
                    [(cid, "<EndCall EndCause='Normal'/>") for cid in calls]
                    + [("SYNC", "<CallInfoReq/>")],
                )
                assert await _replies(link, 1) == ["SYNC"]  # answered after every EndCall
        finally:
            gc.callbacks.remove(on_gc)
        fell = [
            r.getMessage() for r in caplog.records if r.getMessage().startswith("calls in progress")
        ]
        # 4,200 -> 524 (below an eighth), then every further eightfold drop, the last at none
        assert [int(line.split()[5].rstrip(":")) for line in fell] == [524, 65, 8, 0]
        assert "tables rebuilt" in fell[0]
        # each of those compactions (all under 1,000 calls) empties the free lists first
        assert {524, 65, 8, 0} <= set(full_collections)
        assert not server.service.calls.calls
        assert not list(server.service.switches["SW_InFront"].view.calls())
        # the server still serves calls, on the same ports
        await start_call(link, "AFTER", port="7")
        assert [c.call_id for c in server.service.calls.calls.values()] == ["AFTER"]
    finally:
        await link.close()
