"""The asyncio client library against a tiny in-test server (a server-role IvrLink over TCP)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import re
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from ivr_server.client import (
    BadDocument,
    ConnectFailed,
    ConnectionLost,
    IvrClient,
    Received,
    RequestTimeout,
    UnexpectedDocument,
    build_document,
    format_document,
    format_payload,
    pretty_xml,
    run_console,
    use_color,
)
from ivr_server.session import DocumentReceived, IvrLink, LinkState, Role
from ivr_server.wire import (
    GliErrorCode,
    GliType,
    Message,
    encode_document,
    encode_error_frame,
    encode_frame,
)
from ivr_server.wire.kv import str_node
from ivr_server.wire.messages import (
    Agent,
    AgentQuery,
    CallError,
    CallStatus,
    FlowControl,
    LoginReq,
    LoginResp,
    LogMsg,
    MonitorInfo,
    Server,
    UDataGet,
    UDataResp,
)

Reply = tuple[str | None, Message]
Handler = Callable[["FakeServer", str | None, Message], list[Reply]]

SHORT = 0.05
"""Seconds for timeouts that are meant to expire."""


# --------------------------------------------------------------------------- the fake server


def answer(server: FakeServer, call_id: str | None, message: Message) -> list[Reply]:
    """What the fake server says to each request (a small subset of the real server)."""
    if isinstance(message, LoginReq):
        ok = message.Version in ("2.0", "3.0", "4.0")
        replies: list[Reply] = [
            (
                call_id,
                LoginResp(
                    IServerVer="IVR Server:8.5.001.00",
                    Result="Success" if ok else "InvalidProtocolVer",
                    Status="OK" if ok and message.ReportStatus == "true" else None,
                ),
            )
        ]
        if ok and message.Version == "4.0":
            replies.append((call_id, FlowControl(Status="Off")))
            if message.ServerMonitor == "set":
                replies.append((call_id, MonitorInfo(Server=Server(Name="TServer", Status="OK"))))
        return replies
    if isinstance(message, AgentQuery):
        if message.PortNum == "bad":
            return [
                (
                    call_id,
                    CallError(
                        FailedReq="AgentControl", TlibErrCode="INVALID_REQ", ReqId=message.ReqId
                    ),
                )
            ]
        return [
            (
                call_id,
                MonitorInfo(
                    ReqId=message.ReqId, Agent=Agent(PortNum=message.PortNum, Status="Ready")
                ),
            )
        ]
    if isinstance(message, UDataGet):
        return [
            (
                call_id,
                UDataResp(
                    Result="Success",
                    RequestId=message.RequestId,
                    UDataEx=(str_node(message.Keys, "v" + message.RequestId),),
                ),
            )
        ]
    return []  # LogMsg and everything else: no answer


class _Conn:
    def __init__(self, link: IvrLink, writer: asyncio.StreamWriter) -> None:
        self.link = link
        self.writer = writer

    def flush(self) -> None:
        data = self.link.data_to_send()
        if data and not self.writer.is_closing():
            self.writer.write(data)


class FakeServer:
    """Accepts connections, answers through ``handler``, records what it received."""

    def __init__(self, *, silent: bool = False) -> None:
        self.handler: Handler = answer
        self.silent = silent
        """Read and ignore everything (no keep-alive answers either)."""
        self.received: asyncio.Queue[tuple[str | None, Message]] = asyncio.Queue()
        self.conns: list[_Conn] = []
        self.connected = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        loop = asyncio.get_running_loop()
        conn = _Conn(IvrLink(Role.SERVER, now=loop.time(), frame_timeout=None), writer)
        self.conns.append(conn)
        self.connected.set()
        try:
            while True:
                data = await reader.read(65536)
                if self.silent:
                    if not data:
                        break
                    continue
                for event in conn.link.receive_data(data, loop.time()):
                    if isinstance(event, DocumentReceived):
                        self.received.put_nowait((event.call_id, event.message))
                        for call_id, reply in self.handler(self, event.call_id, event.message):
                            conn.link.send(call_id, reply)
                conn.flush()
                if conn.link.state is LinkState.CLOSED:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._tasks.discard(task)

    @property
    def conn(self) -> _Conn:
        return self.conns[-1]

    def push(self, call_id: str | None, message: Message) -> None:
        """Send an unsolicited document on the latest connection."""
        self.conn.link.send(call_id, message)
        self.conn.flush()

    def push_raw(self, data: bytes) -> None:
        self.conn.writer.write(data)

    async def next_received(self) -> tuple[str | None, Message]:
        return await asyncio.wait_for(self.received.get(), 2.0)

    def drop_connections(self) -> None:
        for conn in self.conns:
            conn.writer.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.fixture(autouse=True)
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Fail any test during which something unhandled reached the loop (STYLE.md §2.8)."""
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    gc.collect()
    await asyncio.sleep(0)
    loop.set_exception_handler(None)
    assert not errors, errors


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def client(server: FakeServer) -> AsyncIterator[IvrClient]:
    async with await IvrClient.connect("127.0.0.1", server.port) as connected:
        yield connected


# --------------------------------------------------------------------------- login


async def test_login_returns_response_and_flow_control(
    client: IvrClient, server: FakeServer
) -> None:
    result = await client.login("IVR1")
    assert result.response.Result == "Success"
    assert result.response.Status == "OK"
    assert result.flow_control == FlowControl(Status="Off")
    assert result.call_id == client.session_call_id
    call_id, sent = await server.next_received()
    assert call_id == result.call_id
    assert sent == LoginReq(Version="4.0", ClientName="IVR1", ReportStatus="true")
    await client.expect_nothing(SHORT)  # the FlowControl was consumed by login()


async def test_login_with_monitor_leaves_monitor_info_unsolicited(
    client: IvrClient, server: FakeServer
) -> None:
    result = await client.login("IVR1", server_monitor=True, call_id="L1", report_status=False)
    assert result.call_id == "L1" == client.session_call_id
    assert result.response.Status is None
    _, sent = await server.next_received()
    assert isinstance(sent, LoginReq)
    assert (sent.ServerMonitor, sent.ReportStatus) == ("set", "false")
    got = await client.expect("L1", types=MonitorInfo)
    assert got == Received("L1", MonitorInfo(Server=Server(Name="TServer", Status="OK")))


async def test_login_server_monitor_clear(client: IvrClient, server: FakeServer) -> None:
    await client.login("IVR1", server_monitor=False)
    _, sent = await server.next_received()
    assert isinstance(sent, LoginReq)
    assert sent.ServerMonitor == "clear"


async def test_login_other_versions_have_no_flow_control(client: IvrClient) -> None:
    result = await client.login("IVR1", version="3.0")
    assert result.response.Result == "Success"
    assert result.flow_control is None
    refused = await client.login("IVR1", version="1.0")
    assert refused.response.Result == "InvalidProtocolVer"
    assert refused.flow_control is None
    assert client.session_call_id == refused.call_id != result.call_id
    await client.expect_nothing(SHORT)


async def test_relogin_flow_control_is_taken_by_the_new_login(client: IvrClient) -> None:
    first = await client.login("IVR1")
    second = await client.login("IVR1")
    assert second.flow_control is not None
    assert first.call_id != second.call_id
    await client.expect_nothing(SHORT)


async def test_login_times_out_against_a_silent_server() -> None:
    silent = FakeServer(silent=True)
    await silent.start()
    try:
        async with await IvrClient.connect("127.0.0.1", silent.port) as client:
            with pytest.raises(RequestTimeout, match="LoginResp"):
                await client.login("IVR1", timeout=SHORT)
    finally:
        await silent.stop()


# --------------------------------------------------------------------------- requests


async def test_request_matches_req_id(client: IvrClient) -> None:
    login = await client.login("IVR1")
    got = await client.request(
        login.call_id, AgentQuery(ReqId="7", PortNum="1"), expect=MonitorInfo
    )
    assert got == Received(
        login.call_id, MonitorInfo(ReqId="7", Agent=Agent(PortNum="1", Status="Ready"))
    )


async def test_call_error_answers_whatever_was_expected(client: IvrClient) -> None:
    login = await client.login("IVR1")
    got = await client.request(
        login.call_id, AgentQuery(ReqId="8", PortNum="bad"), expect=MonitorInfo
    )
    assert got.message == CallError(FailedReq="AgentControl", TlibErrCode="INVALID_REQ", ReqId="8")


async def test_out_of_order_replies_go_to_their_requests(
    client: IvrClient, server: FakeServer
) -> None:
    held: list[Reply] = []

    def reverse_pairs(srv: FakeServer, call_id: str | None, message: Message) -> list[Reply]:
        replies = answer(srv, call_id, message)
        if isinstance(message, LoginReq):
            return replies
        held.extend(replies)
        if len(held) < 2:
            return []
        out = held[::-1]
        held.clear()
        return out

    server.handler = reverse_pairs
    login = await client.login("IVR1")
    first, second = await asyncio.gather(
        client.request(login.call_id, AgentQuery(ReqId="1", PortNum="1")),
        client.request(login.call_id, AgentQuery(ReqId="2", PortNum="2")),
    )
    assert isinstance(first.message, MonitorInfo)
    assert isinstance(second.message, MonitorInfo)
    assert (first.message.ReqId, second.message.ReqId) == ("1", "2")

    call = client.new_call_id()
    a, b = await asyncio.gather(
        client.request(call, UDataGet(Keys="k", RequestId="10"), expect=UDataResp),
        client.request(call, UDataGet(Keys="k", RequestId="11"), expect=UDataResp),
    )
    assert isinstance(a.message, UDataResp)
    assert isinstance(b.message, UDataResp)
    assert (a.message.RequestId, b.message.RequestId) == ("10", "11")
    assert a.message.UDataEx == (str_node("k", "v10"),)


async def test_replies_on_other_call_ids_do_not_answer(
    client: IvrClient, server: FakeServer
) -> None:
    def wrong_call(srv: FakeServer, call_id: str | None, message: Message) -> list[Reply]:
        return [("other", reply) for _, reply in answer(srv, call_id, message)]

    server.handler = wrong_call
    with pytest.raises(RequestTimeout, match="UDataGet"):
        await client.request("mine", UDataGet(Keys="k", RequestId="1"), timeout=SHORT)
    got = await client.expect("other", types=UDataResp)
    assert isinstance(got.message, UDataResp)


async def test_unsolicited_documents_bypass_pending_requests(
    client: IvrClient, server: FakeServer
) -> None:
    login = await client.login("IVR1")
    pushed = MonitorInfo(Agent=Agent(PortNum="3", Status="NotReady"))

    def push_first(srv: FakeServer, call_id: str | None, message: Message) -> list[Reply]:
        return [(call_id, pushed), *answer(srv, call_id, message)]

    server.handler = push_first
    got = await client.request(login.call_id, AgentQuery(ReqId="5", PortNum="1"))
    assert isinstance(got.message, MonitorInfo)
    assert got.message.ReqId == "5"
    assert (await client.expect(types=MonitorInfo)).message == pushed


async def test_request_timeout_then_late_reply_is_unsolicited(
    client: IvrClient, server: FakeServer
) -> None:
    with pytest.raises(RequestTimeout):
        await client.request("C1", LogMsg(MsgType="Standard", Msg="hello"), timeout=SHORT)
    server.push("C1", CallStatus(Event="Released"))
    got = await client.expect("C1")
    assert got.message == CallStatus(Event="Released")


# --------------------------------------------------------------------------- unsolicited


async def test_expect_filters_and_keeps_the_rest_in_order(
    client: IvrClient, server: FakeServer
) -> None:
    server.push("X", CallStatus(Event="Ringing"))
    server.push("S", MonitorInfo(Server=Server(Name="T", Status="OK")))
    server.push("Y", CallStatus(Event="Established"))
    server.push("X", CallStatus(Event="Established"))
    got = await client.expect(types=MonitorInfo)
    assert got.call_id == "S"
    got = await client.expect("Y")
    assert got.message == CallStatus(Event="Established")
    got = await client.expect(predicate=lambda r: getattr(r.message, "Event", "") == "Established")
    assert got.call_id == "X"
    got = await client.expect()
    assert got == Received("X", CallStatus(Event="Ringing"))
    with pytest.raises(RequestTimeout):
        await client.expect(timeout=SHORT)


async def test_waiting_expect_has_priority_over_events(
    client: IvrClient, server: FakeServer
) -> None:
    seen: list[Received] = []
    two_seen = asyncio.Event()

    async def listen() -> None:
        async for received in client.events():
            seen.append(received)
            if len(seen) == 2:
                two_seen.set()

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0)
    waiting = asyncio.create_task(client.expect(types=MonitorInfo))
    await asyncio.sleep(0)
    server.push("A", CallStatus(Event="Ringing"))
    server.push("S", MonitorInfo(Server=Server(Name="T", Status="OK")))
    got = await waiting
    assert got.call_id == "S"
    server.push("B", CallStatus(Event="Released"))
    await asyncio.wait_for(two_seen.wait(), 2.0)
    await client.close()
    await listener
    assert [r.call_id for r in seen] == ["A", "B"]


async def test_expect_nothing(client: IvrClient, server: FakeServer) -> None:
    await client.expect_nothing(SHORT)
    server.push("X", FlowControl(Status="On"))
    await client.expect_nothing(SHORT, ignore=(FlowControl,))
    assert (await client.expect()).message == FlowControl(Status="On")  # ignored ones stay
    task = asyncio.create_task(client.expect_nothing(1.0))
    await asyncio.sleep(0)
    server.push("X", CallStatus(Event="Ringing"))
    with pytest.raises(UnexpectedDocument) as caught:
        await task
    assert isinstance(caught.value, AssertionError)
    assert caught.value.received == Received("X", CallStatus(Event="Ringing"))


async def test_events_in_arrival_order_until_close(client: IvrClient, server: FakeServer) -> None:
    for event in ("Ringing", "Established", "Released"):
        server.push("X", CallStatus(Event=event))
    seen = []
    async for received in client.events():
        seen.append(received.message)
        if len(seen) == 3:
            break
    assert seen == [
        CallStatus(Event="Ringing"),
        CallStatus(Event="Established"),
        CallStatus(Event="Released"),
    ]


async def test_cancelled_expect_loses_nothing(client: IvrClient) -> None:
    waiting = asyncio.create_task(client.expect())
    await asyncio.sleep(0)
    # The document reaches the waiter's future, and the waiter is cancelled before it runs.
    client.data_received(
        encode_frame(GliType.DATA, encode_document("X", CallStatus(Event="Ringing")))
    )
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert (await client.expect()).call_id == "X"


# --------------------------------------------------------------------------- keep-alives


async def test_keep_alive_round_trip(client: IvrClient) -> None:
    first, second = await asyncio.gather(client.keep_alive(), client.keep_alive())
    assert 0 <= first < 1.0
    assert 0 <= second < 1.0


async def test_keep_alive_timeout() -> None:
    silent = FakeServer(silent=True)
    await silent.start()
    try:
        async with await IvrClient.connect("127.0.0.1", silent.port) as client:
            with pytest.raises(RequestTimeout, match="KeepAliveResponse"):
                await client.keep_alive(timeout=SHORT)
    finally:
        await silent.stop()


async def test_engine_keep_alives_close_a_dead_link() -> None:
    silent = FakeServer(silent=True)
    await silent.start()
    try:
        client = await IvrClient.connect(
            "127.0.0.1", silent.port, keep_alive_interval=0.02, keep_alive_tries=2
        )
        async with client:
            with pytest.raises(ConnectionLost, match="keep-alive") as caught:
                await client.expect(timeout=2.0)
            assert not caught.value.by_peer
            assert client.closed
    finally:
        await silent.stop()


async def test_engine_keep_alives_keep_a_live_link(server: FakeServer) -> None:
    client = await IvrClient.connect(
        "127.0.0.1", server.port, keep_alive_interval=0.01, keep_alive_tries=1
    )
    async with client:
        await client.expect_nothing(0.1)
        assert not client.closed


async def test_pending_keep_alive_fails_when_the_link_drops() -> None:
    silent = FakeServer(silent=True)
    await silent.start()
    try:
        async with await IvrClient.connect("127.0.0.1", silent.port) as client:
            pending = asyncio.create_task(client.keep_alive())
            await silent.connected.wait()
            silent.drop_connections()
            with pytest.raises(ConnectionLost):
                await pending
    finally:
        await silent.stop()


def test_link_counts_keep_alive_responses_split_anywhere() -> None:
    stream = (
        encode_frame(GliType.KEEP_ALIVE_RESPONSE)
        + encode_frame(GliType.DATA, b"\x00\x01" * 40)
        + encode_frame(GliType.KEEP_ALIVE_REQUEST)
        + encode_frame(GliType.DATA, encode_frame(GliType.KEEP_ALIVE_RESPONSE))
        + encode_frame(GliType.KEEP_ALIVE_RESPONSE)
    )
    for cut in range(1, len(stream)):  # (b"" would mean "the peer closed")
        link = IvrLink(Role.CLIENT, now=0.0)
        link.receive_data(stream[:cut], 0.0)
        link.receive_data(stream[cut:], 0.0)
        assert link.keep_alive_answers == 2


def test_link_reports_documents_as_values() -> None:
    """A received document is a value: equal, hashed and printed by its CallId and message."""
    status = CallStatus(Event="Ringing")
    frame = encode_frame(GliType.DATA, encode_document("C1", status))
    link = IvrLink(Role.CLIENT, now=0.0)
    events = link.receive_data(frame * 2, 0.0)
    assert events == [DocumentReceived("C1", status)] * 2
    assert events[0] is not events[1]
    assert hash(events[0]) == hash(DocumentReceived("C1", status))
    assert events[0] != DocumentReceived("C2", status)
    assert events[0] != DocumentReceived("C1", CallStatus(Event="Established"))
    assert events[0] != ("C1", status)
    assert repr(events[0]) == f"DocumentReceived(call_id='C1', message={status!r})"
    match events[0]:
        case DocumentReceived(call_id="C1", message=CallStatus(Event=event)):
            assert event == "Ringing"
        case _:
            pytest.fail("no match")


# --------------------------------------------------------------------------- closing and errors


async def test_server_close_fails_every_waiter(client: IvrClient, server: FakeServer) -> None:
    login = await client.login("IVR1")
    server.push("X", CallStatus(Event="Ringing"))
    await asyncio.sleep(SHORT)
    pending_request = asyncio.create_task(client.request("C9", LogMsg(MsgType="Trace", Msg="x")))
    pending_expect = asyncio.create_task(client.expect(types=FlowControl))
    await asyncio.sleep(0)
    server.drop_connections()
    for task in (pending_request, pending_expect):
        with pytest.raises(ConnectionLost) as caught:
            await task
        assert caught.value.by_peer
    assert client.closed
    assert [r.call_id async for r in client.events()] == ["X"]  # queued ones, then the end
    with pytest.raises(ConnectionLost):
        client.send(login.call_id, LogMsg(MsgType="Trace", Msg="late"))
    with pytest.raises(ConnectionLost):
        await client.request(login.call_id, AgentQuery(ReqId="1", PortNum="1"))
    with pytest.raises(ConnectionLost):
        await client.expect()


async def test_gli_error_frame_closes_the_link(client: IvrClient, server: FakeServer) -> None:
    waiting = asyncio.create_task(client.expect())
    await asyncio.sleep(0)
    server.push_raw(encode_error_frame(GliErrorCode.NOT_AUTHORISED))
    with pytest.raises(ConnectionLost, match="GLI Error") as caught:
        await waiting
    assert caught.value.by_peer


async def test_send_raw_hostile_header_gets_an_error_frame(client: IvrClient) -> None:
    client.send_raw(b"", GliType.KEEP_ALIVE_REQUEST, version=9)
    with pytest.raises(ConnectionLost, match="GLI Error frame \\(code 1\\)"):
        await client.expect(timeout=2.0)


async def test_send_raw_document_is_processed(client: IvrClient, server: FakeServer) -> None:
    client.send_raw(build_document("C5", "<LogMsg MsgType='Debug' Msg='raw'/>"))
    assert await server.next_received() == ("C5", LogMsg(MsgType="Debug", Msg="raw"))


async def test_bad_document_fails_the_request_it_answers(
    client: IvrClient, server: FakeServer
) -> None:
    def garbage(srv: FakeServer, call_id: str | None, message: Message) -> list[Reply]:
        srv.push_raw(encode_frame(GliType.DATA, build_document(call_id, "<UDataResp")))
        return []

    server.handler = garbage
    with pytest.raises(BadDocument) as caught:
        await client.request("C7", UDataGet(Keys="k", RequestId="1"))
    assert caught.value.error.call_id == "C7"
    assert len(client.rejected) == 1
    assert not client.closed


async def test_unsolicited_bad_document_surfaces_in_expect_not_events(
    client: IvrClient, server: FakeServer
) -> None:
    server.push_raw(encode_frame(GliType.DATA, build_document("X", "<Bogus/>")))
    server.push("X", CallStatus(Event="Ringing"))
    await asyncio.sleep(SHORT)
    with pytest.raises(BadDocument, match="Bogus"):
        await client.expect(types=CallStatus)
    assert (await client.expect()).message == CallStatus(Event="Ringing")
    server.push_raw(encode_frame(GliType.DATA, b"not xml"))
    server.push("X", CallStatus(Event="Released"))
    await asyncio.sleep(SHORT)
    async for received in client.events():
        assert received.message == CallStatus(Event="Released")
        break
    assert len(client.rejected) == 2


async def test_close_is_idempotent(client: IvrClient) -> None:
    waiting = asyncio.create_task(client.expect(timeout=None))
    await asyncio.sleep(0)
    await client.close()
    await client.close()
    with pytest.raises(ConnectionLost) as caught:
        await waiting
    assert not caught.value.by_peer
    assert client.close_reason == "closed by the client"


async def test_connect_failure() -> None:
    port = await unused_port()
    with pytest.raises(ConnectFailed, match=str(port)):
        await IvrClient.connect("127.0.0.1", port)


async def unused_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


async def test_new_call_ids_are_unique(client: IvrClient, server: FakeServer) -> None:
    async with await IvrClient.connect("127.0.0.1", server.port) as other:
        ids = {client.new_call_id() for _ in range(500)}
        ids |= {other.new_call_id() for _ in range(500)}
        ids |= {client.new_call_id("IVR1_") for _ in range(500)}
    assert len(ids) == 1500
    assert client.new_call_id().startswith("C")
    assert client.new_call_id("IVR1_").startswith("IVR1_")


# --------------------------------------------------------------------------- console and pretty


async def test_console_runs_commands_and_prints_traffic(server: FakeServer) -> None:
    out = io.StringIO()
    status = await run_console(
        "127.0.0.1",
        server.port,
        client_name="IVR1",
        monitor=True,
        interactive=False,
        wait=0.1,
        out=out,
        commands=[
            "<AgentQuery ReqId='1' PortNum='1'/>",
            "{new}:<UDataGet Keys='k'><RequestId>9</RequestId></UDataGet>",
            "C42:<LogMsg MsgType='Trace' Msg='hi'/>",
            "# a comment",
            ":keepalive",
            "no element here",
        ],
    )
    text = out.getvalue()
    assert status == 0, text
    assert "\x1b[" not in text  # not a TTY: no colour
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} -> LoginReq  CallId=L", text, re.M)
    assert re.search(r"^\d\d:\d\d:\d\d\.\d{3} <- LoginResp  CallId=L", text, re.M)
    assert "<- FlowControl" in text
    assert "<Server Name='TServer' Status='OK'/>" in text
    assert "-> AgentQuery" in text
    assert "<MonitorInfo ReqId='1'>" in text
    assert "    <CallId>C42</CallId>" in text
    assert "<Node Name='k' Type='Str' Val='v9'/>" in text
    assert "keep-alive response after" in text
    assert "not a command or an XML element" in text
    received = [await server.next_received() for _ in range(4)]
    assert received[3] == ("C42", LogMsg(MsgType="Trace", Msg="hi"))
    assert received[2][0] != received[0][0]  # {new} made a fresh CallId


async def test_console_interactive_reads_until_quit(server: FakeServer) -> None:
    out = io.StringIO()
    lines = io.StringIO("{session}:<AgentQuery ReqId='3' PortNum='2'/>\n:quit\n<LogMsg/>\n")
    status = await run_console(
        "127.0.0.1", server.port, client_name="IVR1", out=out, in_stream=lines
    )
    assert status == 0
    assert lines.readline() == "<LogMsg/>\n"  # nothing after :quit was read
    await server.next_received()
    _, query = await server.next_received()
    assert query == AgentQuery(ReqId="3", PortNum="2")


async def test_console_exit_status(server: FakeServer) -> None:
    def drop_on_log(srv: FakeServer, call_id: str | None, message: Message) -> list[Reply]:
        if isinstance(message, LogMsg):
            srv.drop_connections()
        return answer(srv, call_id, message)

    server.handler = drop_on_log
    out = io.StringIO()
    assert (
        await run_console(
            "127.0.0.1",
            server.port,
            client_name="IVR1",
            out=out,
            commands=["{none}:<Bogus/>"],
            interactive=False,
            wait=0.0,
        )
        == 0
    )
    assert "-> Bogus\n" in out.getvalue()  # no CallId in the header
    out = io.StringIO()
    assert (
        await run_console(
            "127.0.0.1",
            server.port,
            client_name="IVR1",
            out=out,
            commands=["<LogMsg MsgType='Trace' Msg='bye'/>"],
            interactive=False,
            wait=5.0,
        )
        == 1
    )
    assert "connection closed: peer closed the connection" in out.getvalue()

    def drop(srv: FakeServer, call_id: str | None, message: Message) -> list[Reply]:
        srv.drop_connections()
        return []

    server.handler = drop
    out = io.StringIO()
    assert await run_console("127.0.0.1", server.port, client_name="IVR1", out=out) == 1
    assert "login failed" in out.getvalue()


async def test_console_connect_failure() -> None:
    out = io.StringIO()
    port = await unused_port()
    assert await run_console("127.0.0.1", port, client_name="IVR1", out=out) == 1
    assert f"cannot connect to 127.0.0.1:{port}" in out.getvalue()


def test_pretty_document_layout_and_colour() -> None:
    message = UDataResp(Result="Success", RequestId="1", UDataEx=(str_node("a", "x'y"),))
    plain = format_document("C1", message)
    assert plain.splitlines() == [
        "<- UDataResp  CallId=C1",
        "  <GctiMsg>",
        "    <CallId>C1</CallId>",
        "    <UDataResp Result='Success'>",
        "      <RequestId>1</RequestId>",
        "      <UDataEx>",
        "        <Node Name='a' Type='Str' Val='x&apos;y'/>",
        "      </UDataEx>",
        "    </UDataResp>",
        "  </GctiMsg>",
    ]
    coloured = format_document("C1", message, color=True)
    assert "\x1b[1;33mC1\x1b[0m" in coloured
    assert "<\x1b[1;36mUDataResp\x1b[0m Result" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain
    assert not use_color(io.StringIO())


def test_pretty_shows_anything() -> None:
    assert pretty_xml(b"<a><b/>t</a>") == "<a>\n  t\n  <b/>\n</a>"
    assert pretty_xml(b"bad\x01<") == "bad\\x01<"
    assert format_payload(b"").endswith("(empty payload)")
    hostile = b"<!DOCTYPE a [<!ENTITY x 'y'>]><a>&x;</a>"
    assert "not well-formed" in format_payload(hostile)
    assert format_payload(
        build_document(None, "<DialOutError Error='NoTrunks' RefID='1'/>")
    ).startswith("-> DialOutError\n")


async def test_the_last_replies_of_a_server_that_reset_the_connection_are_read() -> None:
    """A server writes its last replies and dies (its connection reset); the client, which had
    not read them yet, writes again, fails, and its transport closes: the replies the kernel
    had received are still read and delivered first (``IvrClient._drain``)."""
    accepted: asyncio.Future[asyncio.StreamWriter] = asyncio.get_running_loop().create_future()

    async def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(writer)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = await IvrClient.connect("127.0.0.1", port)
        writer = await accepted
        assert client._transport is not None
        client._transport.pause_reading()  # a busy client: it has not read yet
        writer.write(
            encode_frame(
                GliType.DATA, encode_document("C1", UDataResp(Result="Success", RequestId="1"))
            )
        )
        await writer.drain()
        await asyncio.sleep(0.05)  # with the client's kernel now
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # reset
        await asyncio.sleep(0.05)
        with contextlib.suppress(ConnectionLost):
            for _ in range(20):  # writes to a reset connection fail, and the transport closes
                client.send("C1", UDataGet(Keys="a", RequestId="2"))
                await asyncio.sleep(0.01)
        got = await client.expect("C1", types=UDataResp, timeout=1.0)
        assert got.message == UDataResp(Result="Success", RequestId="1")
        await client.close()
    finally:
        server.close()
        await server.wait_closed()
