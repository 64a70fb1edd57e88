"""Bad input gets its documented answer and harms nobody else (PROTOCOL.md §9.4, DECISIONS.md).

Every test keeps a second, well-behaved session open and checks that it is still served.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import pytest

from ivr_server.config import default_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink, doc, frame

Connect = Callable[[], Awaitable[RawLink]]
StartServer = Callable[..., Awaitable[IvrServer]]
INVALID = m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ")


async def still_served(link: RawLink, call_id: str = "B") -> None:
    await link.send(call_id, "<AgentQuery ReqId='ok' PortNum='3'/>")
    _, answer, _ = await link.recv_doc()
    assert isinstance(answer, m.MonitorInfo) and answer.ReqId == "ok"


async def bystander(connect: Connect) -> RawLink:
    link = await connect()
    await link.login("B")
    return link


@pytest.mark.parametrize("header", ["000300040100", "000300040201", "000900020200", "000300010200"])
async def test_bad_gli_header_gets_error_frame_and_close(connect: Connect, header: str) -> None:
    other = await bystander(connect)
    link = await connect()
    await link.send_bytes(bytes.fromhex(header) + b"<x>")
    data = await link.expect_closed()
    assert data[:4] == bytes.fromhex("00020004") and len(data) == 8
    await still_served(other)


async def test_entity_expansion_is_refused_and_answered(connect: Connect) -> None:
    other = await bystander(connect)
    link = await connect()
    await link.login("L")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE GctiMsg [<!ENTITY a "aaaaaaaaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
        "<GctiMsg><CallId>evil</CallId><LogMsg MsgType='Standard' Msg='&c;&c;&c;'/></GctiMsg>"
    )
    await link.send_bytes(frame(bomb.encode()))
    call_id, answer, _ = await link.recv_doc()
    assert (call_id, answer) == ("evil", INVALID)
    xxe = (
        '<?xml version="1.0"?><!DOCTYPE GctiMsg [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        "<GctiMsg><CallId>evil2</CallId><LogMsg MsgType='Standard' Msg='&x;'/></GctiMsg>"
    )
    await link.send_bytes(frame(xxe.encode()))
    assert (await link.recv_doc())[:2] == ("evil2", INVALID)
    await still_served(link, "L")
    await still_served(other)


async def test_malformed_without_call_id_is_not_answered(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await link.send_bytes(frame(b"this is not xml"))
    await link.send_bytes(frame(b""))  # an empty Data frame is malformed too
    await link.expect_silence(0.3)
    await still_served(link, "L")


async def test_unknown_and_wrong_direction_messages(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await link.send("X", "<Teleport Where='moon'/>")
    assert (await link.recv_doc())[:2] == ("X", INVALID)
    await link.send("X", "<RouteResponse RouteType='Normal'><Dest>1</Dest></RouteResponse>")
    assert (await link.recv_doc())[:2] == ("X", INVALID)
    await link.send("X", "<UDataSet Action='Add'><RequestId>7</RequestId></UDataSet>")
    assert (await link.recv_doc())[1] == m.UDataResp(Result="MiscError", RequestId="7")
    await link.send("X", "<GetStatReq><RequestId>8</RequestId></GetStatReq>")
    assert (await link.recv_doc())[1] == m.StatResp(ResultCode="MiscError", RequestId="8")


async def test_frames_split_byte_by_byte(connect: Connect) -> None:
    link = await connect()
    data = frame(doc("L", '<LoginReq Version="4.0" ClientName="IVR_1"/>')) + bytes.fromhex(
        "000000020200"
    )
    for i in range(len(data)):
        link.writer.write(data[i : i + 1])
        await link.writer.drain()
    # the keep-alive response may overtake the login's replies (PROTOCOL.md §1.5 rule 5)
    frames = [await link.recv_frame() for _ in range(3)]
    assert (1, b"") in frames
    docs = [p for t, p in frames if t == 3]
    assert b"<LoginResp " in docs[0] and b"<FlowControl Status='Off'/>" in docs[1]


async def test_many_documents_in_one_write(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    batch = b"".join(frame(doc("L", f"<AgentQuery ReqId='{i}' PortNum='1'/>")) for i in range(200))
    await link.send_bytes(batch)
    for i in range(200):
        _, answer, _ = await link.recv_doc()
        assert isinstance(answer, m.MonitorInfo) and answer.ReqId == str(i)


async def test_too_many_malformed_documents_close_the_link(connect: Connect) -> None:
    other = await bystander(connect)
    link = await connect()
    await link.send_bytes(frame(b"<oops") * 21)
    data = await link.expect_closed()
    assert data.endswith(bytes.fromhex("0002000402000006"))
    await still_served(other)


async def test_client_that_stops_reading_is_closed_and_others_carry_on(
    start_server: StartServer,
) -> None:
    cfg = default_config()
    cfg = cfg.model_copy(
        update={"server": cfg.server.model_copy(update={"write_buffer_limit": 32 * 1024})}
    )
    server = await start_server(cfg)
    busy = await RawLink.open(server.port)
    await busy.login("B")
    # A client with a tiny receive buffer that logs in and then never reads again.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(frame(doc("S", '<LoginReq Version="4.0" ClientName="IVR_1"/>')))
    for _ in range(100):
        if any(
            s.login
            for s in server.service.sessions.values()
            if s.peer.endswith(str(sock.getsockname()[1]))
        ):
            break
        await asyncio.sleep(0.01)
    stuck = next(
        p
        for p in server.protocols.values()
        if p.session is not None and p.session.peer.endswith(str(sock.getsockname()[1]))
    )
    assert stuck.transport is not None
    stuck.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)
    # The busy session's agent changes fan out to the stuck session until it is cut off.
    for i in range(3000):
        if stuck.session is not None and stuck.session.id not in server.service.sessions:
            break
        await busy.send(
            "B", f"<AgentLogin ReqId='{i}' PortNum='1' Queue='6000' AgentId='1' Password=''/>"
        )
        for _ in range(2):
            await busy.recv_doc()
        await busy.send("B", f"<AgentLogout ReqId='{i}' PortNum='1'/>")
        await busy.recv_doc()
    else:
        raise AssertionError("the server kept a non-reading client forever")
    await still_served(busy)
    sock.close()
    await busy.close()


async def test_partial_frame_that_never_completes_is_dropped(start_server: StartServer) -> None:
    server = await start_server(frame_timeout=0.3)
    link = await RawLink.open(server.port)
    await link.send_bytes(bytes.fromhex("000300ff0200") + b"<GctiMsg>")
    data = await link.expect_closed(3.0)
    assert data == bytes.fromhex("0002000402000004")
    await link.close()


async def test_server_keep_alive_closes_a_silent_client(start_server: StartServer) -> None:
    cfg = default_config()
    cfg = cfg.model_copy(
        update={
            "server": cfg.server.model_copy(
                update={"keep_alive_interval": 0.2, "keep_alive_tries": 1}
            )
        }
    )
    server = await start_server(cfg)
    quiet = await RawLink.open(server.port)
    polite = await RawLink.open(server.port)
    assert await quiet.recv_frame(1.0) == (0, b"")  # keep-alive request after 0.2 s silence
    assert await polite.recv_frame(1.0) == (0, b"")
    await polite.send_bytes(bytes.fromhex("000100020200"))
    data = await quiet.expect_closed(2.0)
    assert data == b""
    await polite.login("P")  # the polite one is still there
    await polite.close()
    await quiet.close()


async def test_client_not_in_client_list_is_refused(start_server: StartServer) -> None:
    cfg = default_config()
    cfg = cfg.model_copy(
        update={"server": cfg.server.model_copy(update={"client_list": ("10.255.255.1:*",)})}
    )
    server = await start_server(cfg)
    link = await RawLink.open(server.port)
    assert await link.expect_closed() == bytes.fromhex("0002000402000005")
    await link.close()
    cfg2 = cfg.model_copy(
        update={"server": cfg.server.model_copy(update={"client_list": ("127.0.0.1:*",)})}
    )
    server.reload(cfg2)
    link = await RawLink.open(server.port)
    await link.login("L")
    await link.close()


async def test_abrupt_disconnects_leave_nothing_behind(server: IvrServer, connect: Connect) -> None:
    for _ in range(20):
        link = await RawLink.open(server.port)
        await link.send_bytes(frame(doc("L", '<LoginReq Version="4.0" ClientName="IVR_1"/>'))[:50])
        link.writer.transport.abort()
        await link.close()
    await asyncio.sleep(0.2)
    assert server.service.sessions == {} and server.protocols == {}
    await still_served(await bystander(connect))
