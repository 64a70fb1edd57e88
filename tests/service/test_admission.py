"""Call admission in memory (docs/calls.md, "Admission of a new call"): a NewCall's answers in
the documented order of checks, busy ports, CallIds that are not calls, and the requests about
a call from sessions that may or may not send them (over TCP: tests/integration/test_calls.py)."""

from __future__ import annotations

import pytest

from ivr_server.wire import messages as m
from tests.service.memory import MemoryClient, MemoryServer

RINGING = m.CallStatus(Event="Ringing")
ESTABLISHED = m.CallStatus(Event="Established")
NO_SUCH_CALL = m.CallError(FailedReq="NoSuchCall")
INVALID_REQ = m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ")


def new_call(port: str, *, version: str | None = "4.0", mode: str = "Network") -> str:
    ver = f" Version='{version}'" if version is not None else ""
    return f"<NewCall CallControlMode='{mode}'{ver}><CalledNum>{port}</CalledNum></NewCall>"


def start(client: MemoryClient, call_id: str, port: str = "1") -> None:
    got = client.send(call_id, new_call(port))
    assert [(doc.call_id, doc.message) for doc in got] == [
        (call_id, RINGING),
        (call_id, ESTABLISHED),
    ]


def end(client: MemoryClient, call_id: str) -> None:
    assert client.send(call_id, "<EndCall EndCause='Normal'/>") == []


def test_a_call_rings_establishes_and_is_known(ivr: MemoryClient) -> None:
    start(ivr, "C1", "1")
    info = ivr.request("C1", "<CallInfoReq/>")
    assert isinstance(info, m.CallInfoResp)
    assert (info.CalledNum, info.PortDN) == ("1", "4001")
    end(ivr, "C1")
    assert ivr.request("C1", "<CallInfoReq/>") == NO_SUCH_CALL


@pytest.mark.parametrize("version", [None, "1.0", "2.0", "3.0", "4.0"])
def test_every_call_version_starts_a_call(ivr: MemoryClient, version: str | None) -> None:
    got = ivr.send("C", new_call("2", version=version))
    assert [doc.message for doc in got] == [RINGING, ESTABLISHED]


def test_a_busy_port_gets_resources_and_the_call_there_goes_on(ivr: MemoryClient) -> None:
    start(ivr, "C1", "3")
    assert ivr.request("C2", new_call("3")) == m.EndCall(EndCause="Resources")
    assert isinstance(ivr.request("C1", "<CallInfoReq/>"), m.CallInfoResp)
    assert ivr.request("C2", "<CallInfoReq/>") == NO_SUCH_CALL
    end(ivr, "C1")
    start(ivr, "C2", "3")  # free again


@pytest.mark.parametrize("call_id", ["C1", "L"])  # an active call's, the session's own
def test_a_call_id_in_use_is_invalid(ivr: MemoryClient, call_id: str) -> None:
    start(ivr, "C1", "1")
    assert ivr.request(call_id, new_call("2")) == INVALID_REQ
    assert ivr.request("C1", "<CallInfoReq/>").tag == "CallInfoResp"
    start(ivr, "C2", "2")  # port 2 was not taken


def test_a_call_id_active_on_another_session_of_the_ivr_is_invalid(
    server: MemoryServer, ivr: MemoryClient
) -> None:
    start(ivr, "C1", "1")
    other = server.connect()
    other.login("IVR_1", call_id="L2")
    assert other.request("C1", new_call("2")) == INVALID_REQ


def test_another_ivrs_call_ids_are_none_of_an_ivrs_business(
    server: MemoryServer, ivr: MemoryClient
) -> None:
    """CallIds are unique per IVR (issue 26): an IVR can neither refuse nor detect another's."""
    start(ivr, "C1", "1")
    other = server.connect()
    other.login("IVR_2")
    assert [d.message for d in other.send("C1", new_call("1"))] == [
        m.CallStatus(Event="Ringing"),
        m.CallStatus(Event="Established"),
    ]
    assert sorted(c.ivr for c in server.service.calls.find("C1")) == ["IVR_1", "IVR_2"]
    assert other.send("C1", "<EndCall EndCause='Normal'/>") == []
    assert [c.ivr for c in server.service.calls.find("C1")] == ["IVR_1"]
    assert ivr.take() == []  # the first IVR saw nothing of it


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        (new_call("1", version="5.0"), m.EndCall(EndCause="InvalidVersion")),
        (new_call("99"), m.EndCall(EndCause="FeatureNotSupported")),  # no such port
        (new_call("5001"), m.EndCall(EndCause="FeatureNotSupported")),  # no router (G19)
        (new_call("1", mode="Genesys"), m.EndCall(EndCause="FeatureNotSupported")),
        (
            "<MakeCall OrigNum='2' DestNum='7001' Location='Paris'/>",
            m.CallError(FailedReq="MakeCall", TlibErrCode="UNSUP_OPER"),
        ),
    ],
)
def test_refused_new_calls_leave_nothing_behind(
    ivr: MemoryClient, request_: str, answer: m.Message
) -> None:
    assert ivr.request("C", request_) == answer
    assert ivr.request("C", "<CallInfoReq/>") == NO_SUCH_CALL
    start(ivr, "C", "1")


def test_ports_belong_to_the_logged_in_ivr(server: MemoryServer) -> None:
    second = server.connect()
    second.login("IVR_2")
    assert second.request("C", new_call("5")) == m.EndCall(EndCause="FeatureNotSupported")
    start(second, "C", "4")  # IVR_2 has ports 1-4


def test_flow_control_pauses_new_calls_only(server: MemoryServer, ivr: MemoryClient) -> None:
    start(ivr, "C1", "1")
    server.service.set_flow_control(True)
    server.shuttle()
    assert ivr.messages() == [m.FlowControl(Status="On")]
    assert ivr.request("C2", new_call("2")) == m.EndCall(EndCause="ServerPaused")
    assert ivr.request("C1", "<CallInfoReq/>").tag == "CallInfoResp"
    server.service.set_flow_control(False)
    server.shuttle()
    assert ivr.messages() == [m.FlowControl(Status="Off")]
    start(ivr, "C2", "2")


def test_a_tserver_link_down_pauses_new_calls(server: MemoryServer, ivr: MemoryClient) -> None:
    server.service.set_link("SW_InFront", up=False)
    server.shuttle()
    assert ivr.request("C", new_call("1")) == m.EndCall(EndCause="ServerPaused")
    server.service.set_link("SW_InFront", up=True)
    server.shuttle()
    start(ivr, "C", "1")


@pytest.mark.parametrize(
    ("request_", "answer"),
    [
        ("<CallInfoReq/>", NO_SUCH_CALL),
        ("<EndCall EndCause='Normal'/>", NO_SUCH_CALL),
        ("<RouteRequest RouteDN='5000'/>", NO_SUCH_CALL),
        (
            "<UDataGet Keys='a'><RequestId>7</RequestId></UDataGet>",
            m.UDataResp(Result="NoSuchCall", RequestId="7"),
        ),
        (
            "<PeekStatReq><RequestId>8</RequestId><StatName>EWT_5000</StatName></PeekStatReq>",
            m.CallError(FailedReq="Unknown"),
        ),
    ],
)
def test_requests_on_a_call_id_that_is_no_call(
    ivr: MemoryClient, request_: str, answer: m.Message
) -> None:
    assert ivr.request("nothing", request_) == answer
    assert ivr.request("L", request_) == answer  # the session CallId is no call either


def test_calls_of_another_ivr_are_unknown_to_its_sessions(
    server: MemoryServer, ivr: MemoryClient
) -> None:
    start(ivr, "C", "1")
    other = server.connect()
    other.login("IVR_2")
    assert other.request("C", "<CallInfoReq/>") == NO_SUCH_CALL
    assert other.send("C", "<EndCall EndCause='Normal'/>")[0].message == NO_SUCH_CALL
    assert ivr.request("C", "<CallInfoReq/>").tag == "CallInfoResp"


def test_another_session_of_the_ivr_may_ask_but_events_go_to_the_owner(
    server: MemoryServer, ivr: MemoryClient
) -> None:
    second = server.connect()
    second.login(call_id="L2")
    start(ivr, "C", "1")
    assert second.request("C", "<CallInfoReq/>").tag == "CallInfoResp"
    assert second.send("C", "<RouteRequest RouteDN='5000'/>") == []
    assert ivr.messages() == [m.RouteResponse(RouteType="Normal", Dest="7002")]


def test_routing_from_a_dn_that_is_no_routing_point(ivr: MemoryClient) -> None:
    start(ivr, "C", "1")
    assert ivr.request("C", "<RouteRequest RouteDN='7001'/>") == INVALID_REQ
    assert ivr.request("C", "<RouteRequest RouteDN='5000'/>") == m.RouteResponse(
        RouteType="Normal", Dest="7002"
    )


def test_the_operator_names_a_call_several_ivrs_use_with_its_ivr(
    server: MemoryServer, ivr: MemoryClient
) -> None:
    """The operator's API finds a call by CallId; a CallId two IVRs use needs the IVR."""
    from ivr_server.service.control import Conflict, Control, NotFound

    control = Control(server.service)
    start(ivr, "C1", "1")
    assert control.call("C1").ivr == "IVR_1"
    other = server.connect()
    other.login("IVR_2")
    other.send("C1", new_call("1"))
    with pytest.raises(Conflict, match="several IVRs"):
        control.call("C1")
    assert control.call("C1", "IVR_2").ivr == "IVR_2"
    with pytest.raises(NotFound):
        control.call("C1", "IVR_3")
    with pytest.raises(Conflict, match="several IVRs"):
        control.timeline("C1", server.service.now)
    entries, ended = control.timeline("C1", server.service.now, "IVR_1")
    assert ended is None and entries
