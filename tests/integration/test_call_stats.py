"""PeekStatReq / GetStatReq over TCP, answered by the built-in statistics engine (default
configuration's [[statistics]]), inside a call only (PROTOCOL.md §3.9)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink, server_doc, start_call

StartServer = Callable[..., Awaitable[IvrServer]]


async def stat(link: RawLink, call_id: str, body: str) -> bytes:
    await link.send(call_id, body)
    got_id, _, raw = await link.recv_doc()
    assert got_id == call_id
    return raw


async def test_statistics_move_with_waiting_calls(start_server: StartServer) -> None:
    server = await start_server()
    link = await RawLink.open(server.port)
    await link.login("L")
    await start_call(link, "C1", "1")
    peek = "<PeekStatReq><RequestId>{}</RequestId><StatName>{}</StatName></PeekStatReq>"
    assert await stat(link, "C1", peek.format(1, "ReadyAgents_6000")) == server_doc(
        "C1",
        "<StatResp ResultCode='Success'><RequestId>1</RequestId><Result Value='4'/></StatResp>",
    )
    # IVR_2's four auto-logged-in agents are ready; none waits at 5000 (it routes at once)
    for port, cid in (("2", "C2"), ("3", "C3")):
        await start_call(link, cid, port)
    server.service.routers = {}  # nobody routes: the calls wait at 5000
    for cid in ("C2", "C3"):
        await link.send(cid, "<RouteRequest RouteDN='5000'/>")
    get = (
        "<GetStatReq><RequestId>2</RequestId><ServerName>StatServer</ServerName>"
        "<StatType>CurrNumberWaitingCalls</StatType><ObjectId>5000</ObjectId>"
        "<ObjectType>RoutePoint</ObjectType></GetStatReq>"
    )
    assert await stat(link, "C1", get) == server_doc(
        "C1",
        "<StatResp ResultCode='Success'><RequestId>2</RequestId><Result Value='2'/></StatResp>",
    )
    await link.send("C2", "<Connected/>")  # route abort: no longer waiting
    assert b"Value='1'" in await stat(link, "C1", get)
    assert await stat(link, "C1", peek.format(3, "NoSuchName")) == server_doc(
        "C1", "<StatResp ResultCode='NoSuchStat'><RequestId>3</RequestId></StatResp>"
    )
    wrong_server = get.replace("StatServer", "Other")
    assert b"ResultCode='NoSuchStat'" in await stat(link, "C1", wrong_server)
    # outside a call: CallError Unknown
    assert await stat(link, "NOCALL", peek.format(4, "ReadyAgents_6000")) == server_doc(
        "NOCALL", "<CallError FailedReq='Unknown'/>"
    )
    for cid in ("C1", "C2", "C3"):
        await link.send(cid, "<EndCall EndCause='Normal'/>")
    await link.send("C1", "<CallInfoReq/>")
    assert (await link.recv_doc())[1] == m.CallError(FailedReq="NoSuchCall")
    await link.close()


async def test_queue_statistics_follow_calls_routed_to_its_agents(
    start_server: StartServer,
) -> None:
    server = await start_server()
    link = await RawLink.open(server.port)
    await link.login("L")
    await start_call(link, "Q1", "1")
    peek = "<PeekStatReq><RequestId>{}</RequestId><StatName>{}</StatName></PeekStatReq>"
    # rule "agents" of 5000: CED 1 -> a treatment, then the longest-idle agent of queue 6000
    await link.send("Q1", "<RouteRequest RouteDN='5000'><CED>1</CED></RouteRequest>")
    _, treat, _ = await link.recv_doc()
    assert isinstance(treat, m.TreatCall) and treat.Type == "PlayApplication"
    assert b"Value='1'" in await stat(link, "Q1", peek.format(1, "Waiting_6000"))
    assert b"Value='0'" in await stat(link, "Q1", peek.format(2, "EWT_6000"))
    await asyncio.sleep(0.2)
    await link.send("Q1", "<TreatStatus Status='Started'/>")
    await link.send("Q1", "<TreatStatus Status='Completed'/>")
    _, routed, _ = await link.recv_doc()
    assert isinstance(routed, m.RouteResponse) and routed.Dest == "4101"  # IVR_2's first agent
    assert b"Value='0'" in await stat(link, "Q1", peek.format(3, "Waiting_6000"))
    raw = await stat(link, "Q1", peek.format(4, "EWT_6000"))
    value = float(raw.split(b"Value='")[1].split(b"'")[0])
    assert 0.2 <= value < 2.0
    await link.send("Q1", "<EndCall EndCause='Normal'/>")
    await link.close()
