"""Active nodes with real processes (issue 25, "statistics consistent across nodes"): a real
``redis-server`` and two ``ivr-server serve`` processes in ``[ha] mode = "active"``. A call
waiting at a routing point of one node counts in the ``PeekStatReq`` answers of the other (the
routing point's and the queue's waiting calls), and the other's expected wait is the first's
routed wait (runtime/ha_active.py, service/peers_state.py, stats/engine.py).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from ivr_server.wire import messages as m
from tests.ha.conftest import POLL, Cluster, default_body
from tests.integration.rawlink import RawLink, start_call

pytestmark = pytest.mark.xdist_group(__name__)

ROLE_S = 10.0
MIRROR_S = 10.0
"""Longest wait for a fact to reach the other node (two polls and a round trip, loaded)."""
PEEK = "<PeekStatReq><RequestId>{}</RequestId><StatName>{}</StatName></PeekStatReq>"


async def peek(link: RawLink, call_id: str, name: str) -> float:
    await link.send(call_id, PEEK.format(1, name))
    got_id, reply, raw = await link.recv_doc(10.0)
    assert got_id == call_id and isinstance(reply, m.StatResp), raw
    assert reply.ResultCode == "Success" and reply.Result is not None, raw
    return float(reply.Result.Value)


async def until_peek(link: RawLink, call_id: str, name: str, wanted: float) -> None:
    deadline = time.monotonic() + MIRROR_S
    while (value := await peek(link, call_id, name)) != wanted:
        assert time.monotonic() < deadline, f"{name} = {value}, not {wanted}"
        await asyncio.sleep(POLL)


async def test_peek_stat_counts_the_other_nodes_waiting_calls(cluster: Cluster) -> None:
    body = default_body()
    a = cluster.add("a", body, mode="active")
    b = cluster.add("b", body, mode="active")
    a.wait_role("leader", ROLE_S)
    b.wait_role("leader", ROLE_S)
    la, lb = await RawLink.open(a.port), await RawLink.open(b.port)
    try:
        await la.login("L")
        await lb.login("L")
        await start_call(la, "A1", port="1")
        await start_call(lb, "B1", port="2")
        # b: rule "agents" of 5000 (CED 1) plays a treatment; the call waits for queue 6000
        await lb.send("B1", "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>")
        assert isinstance((await lb.recv_doc(10.0))[1], m.TreatCall)
        await until_peek(la, "A1", "Waiting_5000", 1)
        await until_peek(la, "A1", "Waiting_6000", 1)
        await asyncio.sleep(0.3)
        await lb.send("B1", "<TreatStatus Status='Started'/>")
        await lb.send("B1", "<TreatStatus Status='Completed'/>")
        assert isinstance((await lb.recv_doc(10.0))[1], m.RouteResponse)
        await until_peek(la, "A1", "Waiting_5000", 0)
        here = await peek(lb, "B1", "EWT_6000")
        assert here >= 0.3
        await until_peek(la, "A1", "EWT_6000", here)
    finally:
        await la.close()
        await lb.close()
