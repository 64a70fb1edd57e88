"""Agent control on IVR ports and monitoring in memory (PROTOCOL.md §3.2, §6.5.6; the rules in
docs/decisions.md "Agent control rules"; over TCP: tests/integration/test_agents.py)."""

from __future__ import annotations

import pytest

from ivr_server.wire import messages as m
from tests.service.memory import MemoryClient, MemoryServer

SWITCH = "SW_InFront"


def agent(port: str, status: str, req_id: str | None = None) -> m.MonitorInfo:
    return m.MonitorInfo(ReqId=req_id, Agent=m.Agent(PortNum=port, Status=status))  # type: ignore[arg-type]


def tserver(status: str) -> m.MonitorInfo:
    return m.MonitorInfo(Server=m.Server(Name="TServer_IVR", Status=status, Switch=SWITCH))  # type: ignore[arg-type]


def call_error(failed: str, code: str | None, req_id: str | None) -> m.CallError:
    return m.CallError(FailedReq=failed, TlibErrCode=code, ReqId=req_id)  # type: ignore[arg-type]


def test_agent_control_and_what_other_sessions_of_the_ivr_hear(server: MemoryServer) -> None:
    link, other = server.connect(), server.connect()
    link.login()
    other.login(call_id="O")
    steps = [
        ("<AgentQuery ReqId='1' PortNum='1'/>", ["Unknown"], []),
        (
            "<AgentLogin ReqId='2' PortNum='1' Queue='6000' AgentId='553' Password='secret'/>",
            ["LoggedIn", "NotReady"],
            ["LoggedIn", "NotReady"],
        ),
        (
            "<AgentReady ReqId='3' PortNum='1' Queue='6000' WorkMode='ManualIn'/>",
            ["Ready"],
            ["Ready"],
        ),
        ("<AgentQuery ReqId='4' PortNum='1'/>", ["Ready"], []),
        ("<AgentNotReady ReqId='5' PortNum='1' Queue='6000'/>", ["NotReady"], ["NotReady"]),
        ("<AgentLogout ReqId='6' PortNum='1'/>", ["LoggedOut"], ["LoggedOut"]),  # no Queue: fine
        ("<AgentQuery ReqId='7' PortNum='1'/>", ["Unknown"], []),
    ]
    for number, (request, answers, heard) in enumerate(steps, 1):
        got = link.send("L", request)
        assert [(doc.call_id, doc.message) for doc in got] == [
            ("L", agent("1", status, str(number))) for status in answers
        ]
        assert [(doc.call_id, doc.message) for doc in other.take()] == [
            ("O", agent("1", status))
            for status in heard  # unsolicited: no ReqId
        ]


def test_agent_control_errors(server: MemoryServer, ivr: MemoryClient) -> None:
    login = "<AgentLogin ReqId='{}' PortNum='2' Queue='6000' AgentId='1' Password=''/>"
    assert len(ivr.send("L", login.format(1))) == 2
    # the switch's EventError code: already logged in
    assert ivr.request("L", login.format(2)) == call_error("AgentControl", "50", "2")
    assert ivr.request("L", "<AgentQuery ReqId='3' PortNum='99999'/>") == call_error(
        "AgentControl", "INVALID_REQ", "3"
    )
    assert ivr.request("other", "<AgentQuery ReqId='4' PortNum='1'/>") == call_error(
        "Unknown", "INVALID_REQ", "4"
    )
    server.service.set_link(SWITCH, up=False)
    server.shuttle()
    ivr.take()
    assert ivr.request("L", "<AgentReady ReqId='5' PortNum='2' Queue='6000'/>") == call_error(
        "AgentControl", "LINK_DOWN", "5"
    )
    bad_mode = "<AgentReady ReqId='6' PortNum='2' Queue='6000' WorkMode='Sleepy'/>"
    assert ivr.request("L", bad_mode) == call_error("Unknown", "INVALID_REQ", "6")


@pytest.mark.parametrize("version", ["2.0", "3.0"])
def test_agent_control_needs_a_4_0_session(server: MemoryServer, version: str) -> None:
    client = server.connect()
    client.login(version=version)
    assert client.request("L", "<AgentQuery ReqId='1' PortNum='1'/>") == call_error(
        "Unknown", "INVALID_REQ", "1"
    )


@pytest.mark.parametrize(
    "request_",
    [
        "<AgentLogout ReqId='2' PortNum='1' Queue='6000'/>",
        "<AgentReady ReqId='2' PortNum='1' Queue='6000'/>",
        "<AgentNotReady ReqId='2' PortNum='1' Queue='6000'/>",
        "<AgentLogin ReqId='2' PortNum='1' Queue='6000' AgentId='x' Password=''/>",
    ],
)
def test_legacy_mode_ports_are_server_controlled(server: MemoryServer, request_: str) -> None:
    client = server.connect()
    client.login("IVR_2")
    # auto-login with set-ready: the agent is Ready already, and may only be queried
    assert client.request("L", "<AgentQuery ReqId='1' PortNum='1'/>") == agent("1", "Ready", "1")
    assert client.request("L", request_) == call_error("NotAllowed", None, "2")


def test_server_monitoring_reports_tserver_links(server: MemoryServer) -> None:
    client = server.connect()
    assert client.login(monitor=True)[-1] == tserver("OK")
    server.service.set_link(SWITCH, up=False)
    server.shuttle()
    assert [(doc.call_id, doc.message) for doc in client.take()] == [("L", tserver("Unavailable"))]
    server.service.set_link(SWITCH, up=True)
    server.shuttle()
    assert client.messages() == [tserver("OK")]
    client.send("L2", "<LoginReq Version='4.0' ClientName='IVR_1' ServerMonitor='clear'/>")
    server.service.set_link(SWITCH, up=False)
    server.shuttle()
    assert client.messages() == []  # unsubscribed


def test_monitoring_is_for_4_0_sessions_that_ask(server: MemoryServer) -> None:
    v3, v4 = server.connect(), server.connect()
    v3.login(version="3.0", monitor=True)
    v4.login()
    server.service.set_link(SWITCH, up=False)
    server.shuttle()
    assert v3.messages() == [] and v4.messages() == []


def test_agents_logged_in_by_the_server_come_back_with_the_link(server: MemoryServer) -> None:
    client = server.connect()
    client.login("IVR_2")
    server.service.set_link(SWITCH, up=False)
    server.shuttle()
    client.take()
    server.service.set_link(SWITCH, up=True)
    server.shuttle()
    client.take()
    assert client.request("L", "<AgentQuery ReqId='1' PortNum='3'/>") == agent("3", "Ready", "1")
