"""The error table in memory: each kind of answer ``calls/replies.py`` gives (docs/errors.md,
"Message errors", "Sizes"), each link error's GLI Error frame (docs/errors.md, "Link errors"),
and the refusals counted by request and cause. Over TCP, with exact bytes:
tests/integration/test_hostile.py, test_oversize.py and test_calls.py."""

from __future__ import annotations

import pytest

from ivr_server.wire import messages as m
from tests.service.memory import Document, MemoryClient, MemoryServer, frame, xml_document

INVALID_REQ = m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ")
BLOCKED_REQ = m.CallError(FailedReq="Unknown", TlibErrCode="BLOCKED_REQ")
LONG = "x" * 1100
"""An identifier longer than a reply may echo (1,024 bytes written)."""


@pytest.fixture
def call(ivr: MemoryClient) -> MemoryClient:
    """The logged-in IVR_1 session with call ``C`` established on port 1."""
    got = ivr.send("C", "<NewCall CallControlMode='Network'><CalledNum>1</CalledNum></NewCall>")
    assert len(got) == 2
    return ivr


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        ("<Foo/>", INVALID_REQ),  # unknown element
        ("<LoginResp IServerVer='x' Result='Success'/>", INVALID_REQ),  # a server message
        (
            "<AgentQuery ReqId='3'/>",
            m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId="3"),
        ),
        ("<UDataGetAll/>", INVALID_REQ),  # no RequestId to echo
        (
            "<UDataGet><RequestId>7</RequestId></UDataGet>",
            m.UDataResp(Result="MiscError", RequestId="7"),
        ),
        (
            "<UDataSet Action='Bogus'><RequestId>7</RequestId></UDataSet>",
            m.UDataResp(Result="MiscError", RequestId="7"),
        ),
        (
            "<PeekStatReq><RequestId>8</RequestId></PeekStatReq>",
            m.StatResp(ResultCode="MiscError", RequestId="8"),
        ),
        (
            "<NewCall CallControlMode='Network' Version='x'><CalledNum>2</CalledNum></NewCall>",
            m.EndCall(EndCause="InvalidVersion"),
        ),
        (
            "<LoginReq Version='x' ClientName='IVR_1'/>",
            m.LoginResp(IServerVer="IVR Server:8.5.001.00", Result="InvalidProtocolVer"),
        ),
    ],
)
def test_documents_that_break_the_schema(
    call: MemoryClient, request_: str, answer: m.Message
) -> None:
    assert call.send("C", request_)[0].message == answer
    assert call.request("C", "<CallInfoReq/>").tag == "CallInfoResp"  # the link and call stay


def test_documents_that_are_not_xml(ivr: MemoryClient) -> None:
    assert ivr.send_bytes(frame(b"<GctiMsg><CallId>Q</CallId><oops")) == [
        Document("Q", INVALID_REQ)
    ]
    assert ivr.send_bytes(frame(b"<GctiMsg><oops")) == []  # no CallId to answer on
    assert ivr.send_bytes(frame(b"")) == []  # an empty Data frame
    assert ivr.closed is None


def test_requests_not_allowed_in_the_calls_state(call: MemoryClient) -> None:
    assert call.send("C", "<RouteRequest RouteDN='5001'/>") == []
    assert call.request("C", "<RouteRequest RouteDN='5001'/>") == BLOCKED_REQ
    assert call.request("C", "<TreatStatus Status='Completed'/>") == BLOCKED_REQ


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        ("<CallInfoReq/>", INVALID_REQ),
        (
            f"<UDataGet Keys='a'><RequestId>{LONG}</RequestId></UDataGet>",
            m.UDataResp(Result="MiscError", RequestId="x" * 1024),
        ),
        (
            f"<PeekStatReq><RequestId>{LONG}</RequestId><StatName>EWT_5000</StatName></PeekStatReq>",
            m.StatResp(ResultCode="MiscError", RequestId="x" * 1024),
        ),
        (
            f"<AgentQuery ReqId='{LONG}' PortNum='1'/>",
            m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId="x" * 1024),
        ),
    ],
)
def test_identifiers_too_long_to_echo_are_refused_and_cut(
    call: MemoryClient, request_: str, answer: m.Message
) -> None:
    call_id = LONG if request_ == "<CallInfoReq/>" else "C"
    (doc,) = call.send(call_id, request_)
    assert doc.call_id == call_id[:1024]
    assert doc.message == answer


def test_refusals_are_counted_by_request_and_cause(
    server: MemoryServer, call: MemoryClient
) -> None:
    call.send("C", "<RouteRequest RouteDN='5001'/>")
    call.send("C", "<RouteRequest RouteDN='5001'/>")
    call.send("nothing", "<CallInfoReq/>")
    call.send("nothing", "<UDataGet Keys='a'><RequestId>1</RequestId></UDataGet>")
    assert server.service.metrics.refusals == {
        ("RouteRequest", "BLOCKED_REQ"): 1,
        ("CallInfoReq", "NoSuchCall"): 1,
        ("UDataGet", "UDataResp:NoSuchCall"): 1,
    }


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x00\x03\x00\x04\x01\x00xx", 1),  # GLI version 1
        (b"\x00\x03\x00\x04\x02\x05xx", 2),  # application 5
        (b"\x00\x09\x00\x04\x02\x00xx", 3),  # message type 9
        (b"\x00\x03\x00\x01\x02\x00", 4),  # MessageLength 1
    ],
)
def test_a_bad_gli_header_closes_the_link_with_its_code(
    server: MemoryServer, ivr: MemoryClient, data: bytes, code: int
) -> None:
    query = frame(xml_document("L", "<AgentQuery ReqId='1' PortNum='1'/>"))
    got = ivr.send_bytes(query + data)
    assert [doc.message.tag for doc in got] == ["MonitorInfo"]  # answered before the error
    assert ivr.closed == f"peer sent GLI Error frame (code {code})"
    assert ivr.session.id not in server.service.sessions


def test_too_many_malformed_documents_close_the_link(server: MemoryServer) -> None:
    client = server.connect()
    for _ in range(20):  # malformed-limit
        client.send_bytes(frame(b"<GctiMsg><oops"))
    assert client.closed is None
    server.advance(9.0)
    client.send_bytes(frame(b"<GctiMsg><oops"))  # the 21st within malformed-window (10 s)
    assert client.closed == "peer sent GLI Error frame (code 6)"


def test_malformed_documents_spread_out_are_tolerated(server: MemoryServer) -> None:
    client = server.connect()
    for _ in range(40):
        client.send_bytes(frame(b"<GctiMsg><oops"))
        server.advance(1.0)
    assert client.closed is None
