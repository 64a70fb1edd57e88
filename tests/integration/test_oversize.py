"""No accepted data that cannot be read back, no stuck port from one long CallId (issue 19 items 1
and 3): every reply the server can be made to produce fits a frame of at most 32,767 bytes.

Black box over TCP: the real server in this process, raw GLI clients. Throughout every test a
well-behaved IVR_2 session (the canary) makes complete calls; each must be served completely and
on time, and the server's log must hold no traceback. Every frame a test reads is checked to be
within the bound (``recv``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from ivr_server.config import default_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import Node, decode_document
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink, frame, new_call_body, start_call

Connect = Callable[[], Awaitable[RawLink]]
StartServer = Callable[..., Awaitable[IvrServer]]

LIMIT = 32_765
"""The longest document the server may send: its MessageLength (payload + 2) stays within 32,767
for drivers that read it as a signed 16-bit number."""
CANARY_DEADLINE = 3.0
"""Seconds a canary call may take (about 1 ms when idle; far from this on a loaded machine)."""
SWITCH = "SW_InFront"
APOS = "'"
LONG = APOS * 11_000
"""The issue's identifier: 11,000 apostrophes, 66,000 bytes once escaped."""
CUT = APOS * 170
"""How a reply echoes it: the longest prefix that fits 1,024 bytes written (170 x 6 = 1,020)."""
INVALID = m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ")


async def recv(link: RawLink) -> tuple[str | None, m.Message]:
    """The next document, checked to be within the size bound."""
    gli_type, payload = await link.recv_frame()
    assert gli_type == 3, (gli_type, payload[:80])
    assert len(payload) <= LIMIT, f"a document of {len(payload)} bytes"
    return decode_document(payload)


def node(name: str, value: str) -> str:
    return f'<Node Name="{name}" Type="Str" Val="{value}"/>'


def udata_set(request_id: str, action: str, *nodes: str) -> str:
    return (
        f'<UDataSet Action="{action}"><RequestId>{request_id}</RequestId>'
        f"<UDataEx>{''.join(nodes)}</UDataEx></UDataSet>"
    )


def get_all(request_id: str) -> str:
    return f"<UDataGetAll><RequestId>{request_id}</RequestId></UDataGetAll>"


# ------------------------------------------------------------------------------ the canary


class Canary:
    """A well-behaved IVR_2 session making complete calls on its port 1 while the test runs."""

    def __init__(self, link: RawLink) -> None:
        self.link = link
        self.calls = 0
        self.slowest = 0.0
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        link = self.link
        while not self._stop.is_set():
            call_id = f"CANARY-{self.calls}"
            began = loop.time()
            await link.send(call_id, new_call_body("1", "<ANI>5550000</ANI>"))
            assert await recv(link) == (call_id, m.CallStatus(Event="Ringing"))
            assert await recv(link) == (call_id, m.CallStatus(Event="Established"))
            await link.send(call_id, udata_set("1", "Add", node("Step", "menu")))
            assert await recv(link) == (call_id, m.UDataResp(Result="Success", RequestId="1"))
            await link.send(call_id, get_all("2"))
            assert await recv(link) == (
                call_id,
                m.UDataResp(
                    Result="Success",
                    RequestId="2",
                    UDataEx=(Node(Name="Step", Type="Str", Val="menu"),),
                ),
            )
            await link.send(call_id, '<EndCall EndCause="Normal"/>')
            self.slowest = max(self.slowest, loop.time() - began)
            self.calls += 1
            await asyncio.sleep(0.005)

    async def check(self) -> None:
        """Stop, and require every call served on time."""
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, CANARY_DEADLINE * 3)
        assert self.calls > 0, "the canary made no call"
        assert self.slowest < CANARY_DEADLINE, f"a canary call took {self.slowest:.2f} s"

    async def cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


@pytest.fixture
async def canary(server: IvrServer) -> AsyncIterator[Canary]:
    link = await RawLink.open(server.port)
    await link.login("CANARY", name="IVR_2")
    bird = Canary(link)
    bird.start()
    try:
        yield bird
    finally:
        await bird.cancel()
        await link.close()


@pytest.fixture(autouse=True)
def no_tracebacks(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.WARNING, logger="ivr_server")
    yield
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage()[:200] for r in bad]


@pytest.fixture
async def call(connect: Connect) -> RawLink:
    """A logged-in IVR_1 link with call ``C`` established on port 1."""
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    return link


async def served(link: RawLink, call_id: str = "L") -> None:
    """The link is open and its session logged in: an agent query is answered."""
    await link.send(call_id, '<AgentQuery ReqId="ok" PortNum="3"/>')
    _, answer = await recv(link)
    assert isinstance(answer, m.MonitorInfo) and answer.ReqId == "ok"


async def port_is_free(link: RawLink, port: str = "1", call_id: str = "NEXT") -> None:
    """A legitimate call on ``port`` is admitted (and ended again)."""
    await link.send(call_id, new_call_body(port))
    assert await recv(link) == (call_id, m.CallStatus(Event="Ringing"))
    assert await recv(link) == (call_id, m.CallStatus(Event="Established"))
    await link.send(call_id, '<EndCall EndCause="Normal"/>')
    await link.send(call_id, "<CallInfoReq/>")
    assert await recv(link) == (call_id, m.CallError(FailedReq="NoSuchCall"))


# ----------------------------------------------------------- item 1: data that cannot be read back


@pytest.mark.parametrize("action", ["Add", "Replace"])
async def test_user_data_that_could_not_be_read_back_is_refused_and_nothing_stored(
    server: IvrServer, canary: Canary, call: RawLink, action: str
) -> None:
    await call.send("C", udata_set("1", "Add", node("first", "kept")))
    assert await recv(call) == ("C", m.UDataResp(Result="Success", RequestId="1"))
    # 16,033 bytes by the original's count, under 16 KB; 96,033 bytes once escaped
    await call.send("C", udata_set("2", action, node("big", APOS * 16_000)))
    assert await recv(call) == ("C", m.UDataResp(Result="MiscError", RequestId="2"))
    await call.send("C", get_all("3"))
    kept = (Node(Name="first", Type="Str", Val="kept"),)
    assert await recv(call) == ("C", m.UDataResp(Result="Success", RequestId="3", UDataEx=kept))
    conn_id = server.service.calls.find("C")[0].conn_id
    assert conn_id is not None
    assert server.service.switches[SWITCH].view.user_data(conn_id) == kept
    await canary.check()


async def test_the_largest_data_accepted_reads_back_in_one_frame(
    server: IvrServer, canary: Canary, connect: Connect
) -> None:
    """With the longest CallId and RequestId a reply may echo (1,024 bytes each), data taking
    exactly the written limit (28,000 bytes) is accepted and its UDataGetAll reply fits; one
    byte more is refused."""
    link = await connect()
    await link.login("L")
    call_id, request_id = "C" * 1024, "R" * 1024
    await start_call(link, call_id, "1")
    value = APOS * ((28_000 - 34) // 6)  # <Node Name='k' Type='Str' Val='...'/>: 34 + 6n
    await link.send(call_id, udata_set(request_id, "Replace", node("k", value)))
    assert await recv(link) == (call_id, m.UDataResp(Result="Success", RequestId=request_id))
    await link.send(call_id, get_all(request_id))
    got = await recv(link)  # within LIMIT, checked by recv
    assert got == (
        call_id,
        m.UDataResp(
            Result="Success", RequestId=request_id, UDataEx=(Node(Name="k", Type="Str", Val=value),)
        ),
    )
    await link.send(call_id, udata_set("2", "Replace", node("k", value + APOS)))
    assert await recv(link) == (call_id, m.UDataResp(Result="MiscError", RequestId="2"))
    await link.send(call_id, udata_set("3", "Add", node("x", "y")))
    assert await recv(link) == (call_id, m.UDataResp(Result="MiscError", RequestId="3"))
    await canary.check()


async def test_ordinary_data_keeps_the_16_kb_rule(canary: Canary, call: RawLink) -> None:
    value = "x" * (16_384 - 33 - 1)  # exactly 16 KB by the original's count
    await call.send("C", udata_set("1", "Add", node("k", value)))
    assert await recv(call) == ("C", m.UDataResp(Result="Success", RequestId="1"))
    await call.send("C", get_all("2"))
    _, answer = await recv(call)
    assert isinstance(answer, m.UDataResp) and answer.UDataEx is not None
    assert answer.UDataEx[0] == Node(Name="k", Type="Str", Val=value)
    await call.send("C", udata_set("3", "Add", node("l", "")))  # 34 bytes more
    assert await recv(call) == ("C", m.UDataResp(Result="MiscError", RequestId="3"))
    await canary.check()


async def test_new_call_with_data_that_could_not_be_read_back_is_refused(
    server: IvrServer, canary: Canary, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    body = new_call_body("1", f"<UDataEx>{node('big', APOS * 5_000)}</UDataEx>")
    await link.send("N", body)
    assert await recv(link) == ("N", m.EndCall(EndCause="FeatureNotSupported"))
    assert not server.service.calls.find("N")
    await port_is_free(link)
    await canary.check()


async def test_route_request_with_data_that_could_not_be_read_back_is_refused(
    canary: Canary, call: RawLink
) -> None:
    await call.send(
        "C",
        f'<RouteRequest RouteDN="5001"><UDataEx>{node("big", APOS * 5_000)}</UDataEx>'
        "</RouteRequest>",
    )
    assert await recv(call) == ("C", INVALID)
    await call.send("C", get_all("1"))
    assert await recv(call) == ("C", m.UDataResp(Result="NoMatch", RequestId="1"))
    await canary.check()


# ------------------------------------------------------------- identifiers too long to echo


LOGGED_OUT = [
    pytest.param(LONG, "<CallInfoReq/>", (CUT, INVALID), id="call-id"),
    pytest.param(
        "L",
        f'<AgentQuery ReqId="{LONG}" PortNum="1"/>',
        ("L", m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId=CUT)),
        id="req-id",
    ),
    pytest.param(
        "X",
        f'<UDataGet Keys="a"><RequestId>{LONG}</RequestId></UDataGet>',
        ("X", m.UDataResp(Result="MiscError", RequestId=CUT)),
        id="request-id",
    ),
    pytest.param(LONG, new_call_body("1"), (CUT, INVALID), id="new-call"),
    pytest.param(LONG, '<LoginReq Version="4.0" ClientName="IVR_1"/>', (CUT, INVALID), id="login"),
]


@pytest.mark.parametrize(("call_id", "body", "answer"), LOGGED_OUT)
async def test_identifiers_too_long_before_login_get_a_framed_refusal(
    canary: Canary,
    connect: Connect,
    call_id: str,
    body: str,
    answer: tuple[str, m.Message],
) -> None:
    link = await connect()
    await link.send(call_id, body)
    assert await recv(link) == answer
    await link.send("X", "<CallInfoReq/>")  # still open, still not logged in
    assert await recv(link) == ("X", INVALID)
    await link.login("L")
    await served(link)
    await canary.check()


LOGGED_IN = [
    pytest.param(
        "L",
        f'<AgentQuery ReqId="{LONG}" PortNum="99"/>',
        ("L", m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId=CUT)),
        id="unknown-port-req-id",
    ),
    pytest.param(LONG, new_call_body("99"), (CUT, INVALID), id="unknown-port-new-call"),
    pytest.param(
        LONG,
        "<UDataGet Keys='a'><RequestId>1</RequestId></UDataGet>",
        (CUT, m.UDataResp(Result="MiscError", RequestId="1")),
        id="unknown-call-call-id",
    ),
    pytest.param(
        "NOPE",
        f"<UDataGetAll><RequestId>{LONG}</RequestId></UDataGetAll>",
        ("NOPE", m.UDataResp(Result="MiscError", RequestId=CUT)),
        id="unknown-call-request-id",
    ),
    pytest.param(LONG, '<EndCall EndCause="Normal"/>', (CUT, INVALID), id="unknown-call-end"),
    pytest.param(
        "L",
        f'<Teleport ReqId="{LONG}" Where="moon"/>',
        ("L", m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId=CUT)),
        id="unknown-message-req-id",
    ),
    pytest.param(LONG, '<Teleport Where="moon"/>', (CUT, INVALID), id="unknown-message-call-id"),
    pytest.param(
        "L",
        f'<CallError FailedReq="Unknown" ReqId="{LONG}"/>',
        ("L", m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId=CUT)),
        id="wrong-direction-req-id",
    ),
    pytest.param(
        "X",
        f'<UDataSet Action="Add"><RequestId>{LONG}</RequestId></UDataSet>',
        ("X", m.UDataResp(Result="MiscError", RequestId=CUT)),
        id="schema-violation-request-id",
    ),
    pytest.param(
        LONG,
        '<UDataSet Action="Merge"><RequestId>1</RequestId></UDataSet>',
        (CUT, m.UDataResp(Result="MiscError", RequestId="1")),
        id="schema-violation-call-id",
    ),
]


@pytest.mark.parametrize(("call_id", "body", "answer"), LOGGED_IN)
async def test_identifiers_too_long_get_a_framed_refusal_and_the_link_stays(
    canary: Canary,
    connect: Connect,
    call_id: str,
    body: str,
    answer: tuple[str, m.Message],
) -> None:
    link = await connect()
    await link.login("L")
    await link.send(call_id, body)
    assert await recv(link) == answer
    await served(link)
    await canary.check()


async def test_identifiers_too_long_on_a_live_call_are_refused_before_anything_happens(
    server: IvrServer, canary: Canary, call: RawLink
) -> None:
    await call.send("C", udata_set(LONG, "Add", node("k", "v")))
    assert await recv(call) == ("C", m.UDataResp(Result="MiscError", RequestId=CUT))
    await call.send(
        "C", f"<PeekStatReq><RequestId>{LONG}</RequestId><StatName>x</StatName></PeekStatReq>"
    )
    assert await recv(call) == ("C", m.StatResp(ResultCode="MiscError", RequestId=CUT))
    await call.send("C", get_all("1"))
    assert await recv(call) == ("C", m.UDataResp(Result="NoMatch", RequestId="1"))
    await canary.check()


async def test_malformed_document_with_a_long_call_id_is_answered_on_its_cut_form(
    canary: Canary, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    bad = f"<GctiMsg><CallId>{APOS * 500}</CallId><oops</GctiMsg>".encode()
    await link.send_bytes(frame(bad))
    assert await recv(link) == (CUT, INVALID)
    await served(link)
    await canary.check()


# ------------------------------------------------------------- item 3: no stuck port


@pytest.mark.parametrize(
    ("call_id", "extra"),
    [
        pytest.param(LONG, "", id="call-id"),
        pytest.param("N", f"<ANI>{LONG}</ANI>", id="ani"),
        pytest.param("N", f"<DNIS>{LONG}</DNIS>", id="dnis"),
    ],
)
async def test_new_call_with_an_identifier_too_long_leaves_no_call_behind(
    server: IvrServer, canary: Canary, connect: Connect, call_id: str, extra: str
) -> None:
    link = await connect()
    await link.login("L")
    await link.send(call_id, new_call_body("1", extra))
    assert await recv(link) == (CUT if call_id == LONG else call_id, INVALID)
    assert not server.service.calls.port_busy("IVR_1", "1")
    assert [c for c in server.service.calls.calls.values() if c.call_id.startswith(APOS)] == []
    await port_is_free(link)  # the next legitimate call on the port is served
    await served(link)
    await canary.check()


async def test_call_ids_up_to_the_bound_make_complete_calls(
    canary: Canary, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    for call_id in ("a" * 1024, APOS * 170, "é" * 512):  # 1,024 / 1,020 / 1,024 bytes (UTF-8)
        await port_is_free(link, "1", call_id)
    await link.send(APOS * 171, new_call_body("1"))  # 1,026 bytes
    assert await recv(link) == (CUT, INVALID)
    await canary.check()


# ------------------------------------------------------------- the safety net


async def test_a_reply_that_cannot_fit_gets_a_small_error_and_one_log_line(
    server: IvrServer, canary: Canary, call: RawLink, caplog: pytest.LogCaptureFixture
) -> None:
    """Data the operator attached (the IVR's own writes are bounded) that no reply could carry:
    ``UDataGetAll`` gets ``UDataResp Result='MiscError'`` instead, one line is logged, no
    traceback, the link stays open, and smaller reads still work."""
    server.control.set_user_data(
        "C",
        (Node(Name="small", Type="Str", Val="1"), Node(Name="big", Type="Str", Val=APOS * 10_000)),
        replace=False,
    )
    server.flush()
    await call.send("C", get_all("1"))
    assert await recv(call) == ("C", m.UDataResp(Result="MiscError", RequestId="1"))
    lines = [r for r in caplog.records if "not sent" in r.getMessage()]
    assert len(lines) == 1 and "UDataResp of 60" in lines[0].getMessage(), lines
    await call.send("C", "<UDataGet Keys='small'><RequestId>2</RequestId></UDataGet>")
    assert await recv(call) == (
        "C",
        m.UDataResp(
            Result="Success", RequestId="2", UDataEx=(Node(Name="small", Type="Str", Val="1"),)
        ),
    )
    await canary.check()


async def test_a_call_whose_first_documents_cannot_be_sent_is_removed_again(
    server: IvrServer, canary: Canary, connect: Connect, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug simulated: every document to one session is too long (its DOCTYPE made huge behind
    the configuration's back). Its NewCall cannot get its CallStatus: the call is removed again
    and the port freed, one line is logged, and the link stays open."""
    link = await connect()
    await link.login("L")
    (session,) = [s for s in server.service.sessions.values() if s.login and s.login.call_id == "L"]
    session.link.dtd_file = "d" * 40_000
    await link.send("N", new_call_body("1"))
    await link.send_bytes(frame(b"", 0))  # a keep-alive request: answered, the link is open
    assert await link.recv_frame() == (1, b"")
    assert not server.service.calls.find("N")
    assert not server.service.calls.port_busy("IVR_1", "1")
    lines = [r for r in caplog.records if "not sent" in r.getMessage()]
    assert len(lines) == 1 and "removed again" in lines[0].getMessage(), lines
    session.link.dtd_file = "IServer.dtd"
    await port_is_free(link)
    await canary.check()


async def test_login_whose_answer_cannot_be_sent_does_not_log_in(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = default_config()
    cfg = cfg.model_copy(
        update={"server": cfg.server.model_copy(update={"version_string": "v" * 40_000})}
    )
    server = await start_server(cfg)
    link = await RawLink.open(server.port)
    try:
        await link.send("L", '<LoginReq Version="2.0" ClientName="IVR_1"/>')
        assert await recv(link) == ("L", m.CallError(FailedReq="Unknown"))
        await link.send("X", "<CallInfoReq/>")  # not logged in
        assert await recv(link) == ("X", INVALID)
        assert [s.login for s in server.service.sessions.values()] == [None]
        assert len([r for r in caplog.records if "not sent" in r.getMessage()]) == 1
    finally:
        await link.close()
