"""Login in memory (PROTOCOL.md §3.1, DECISIONS.md): every variant, and what a session may do
before it (the same over TCP, byte for byte: tests/integration/test_login.py)."""

from __future__ import annotations

import pytest

from ivr_server.wire import Node
from ivr_server.wire import messages as m
from tests.service.memory import MemoryClient, MemoryServer

VERSION = "IVR Server:8.5.001.00"
CONFIG_OPTIONS = (
    Node(Name="socket_activity_timer", Type="Str", Val="20000"),
    Node(Name="site", Type="Str", Val="demo"),
)
TSERVER_OK = m.MonitorInfo(Server=m.Server(Name="TServer_IVR", Status="OK", Switch="SW_InFront"))


def invalid(req_id: str | None) -> m.CallError:
    return m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId=req_id)


def test_a_4_0_login_gets_its_options_and_flow_control(server: MemoryServer) -> None:
    client = server.connect()
    got = client.send("L1", "<LoginReq Version='4.0' ClientName='IVR_1' ReportStatus='true'/>")
    assert [(doc.call_id, doc.message) for doc in got] == [
        (
            "L1",
            m.LoginResp(
                IServerVer=VERSION, Result="Success", Status="OK", ConfigOptions=CONFIG_OPTIONS
            ),
        ),
        ("L1", m.FlowControl(Status="Off")),
    ]


def test_without_report_status_the_answer_has_no_status(server: MemoryServer) -> None:
    client = server.connect()
    got = client.send("L", "<LoginReq Version='4.0' ClientName='IVR_2'/>")
    assert got[0].message == m.LoginResp(IServerVer=VERSION, Result="Success")


def test_server_monitor_adds_the_tservers(server: MemoryServer) -> None:
    client = server.connect()
    assert client.login(monitor=True)[1:] == [m.FlowControl(Status="Off"), TSERVER_OK]


@pytest.mark.parametrize("version", ["3.0", "2.0"])
def test_versions_2_and_3_get_neither_flow_control_nor_monitoring(
    server: MemoryServer, version: str
) -> None:
    client = server.connect()
    got = client.login(version=version, monitor=True)
    assert got == [
        m.LoginResp(IServerVer=VERSION, Result="Success", Status="OK", ConfigOptions=CONFIG_OPTIONS)
    ]


def test_a_login_without_version_is_2_0(server: MemoryServer) -> None:
    client = server.connect()
    got = client.send("L", "<LoginReq ClientName='IVR_1' ReportStatus='true'/>")
    assert [doc.message.tag for doc in got] == ["LoginResp"]


@pytest.mark.parametrize("version", ["1.0", "5.0", "4"])
def test_unsupported_versions_are_refused_and_stay_logged_out(
    server: MemoryServer, version: str
) -> None:
    client = server.connect()
    assert client.login(version=version) == [
        m.LoginResp(IServerVer=VERSION, Result="InvalidProtocolVer")
    ]
    assert client.request("L", "<AgentQuery ReqId='1' PortNum='1'/>") == invalid("1")


def test_an_unknown_client_is_no_such_client_and_stays_logged_out(server: MemoryServer) -> None:
    client = server.connect()
    assert client.login("ivr_1") == [  # names are case-sensitive
        m.LoginResp(IServerVer=VERSION, Result="Success", Status="NoSuchClient"),
        m.FlowControl(Status="Off"),
    ]
    assert client.request("L", "<AgentQuery ReqId='3' PortNum='1'/>") == invalid("3")
    new_call = "<NewCall CallControlMode='Network'><CalledNum>1</CalledNum></NewCall>"
    assert client.request("C", new_call) == m.EndCall(EndCause="FeatureNotSupported")
    assert client.login(call_id="L2")[0] == m.LoginResp(
        IServerVer=VERSION, Result="Success", Status="OK", ConfigOptions=CONFIG_OPTIONS
    )


def test_a_new_login_changes_the_session_call_id(server: MemoryServer) -> None:
    client = server.connect()
    client.login(call_id="first")
    client.login(call_id="second")
    assert client.request("first", "<AgentQuery ReqId='1' PortNum='1'/>") == invalid("1")
    got = client.send("second", "<AgentQuery ReqId='2' PortNum='1'/>")
    assert [(doc.call_id, doc.message.tag) for doc in got] == [("second", "MonitorInfo")]


def test_init_in_progress_while_the_tserver_link_is_down(server: MemoryServer) -> None:
    server.service.set_link("SW_InFront", up=False)
    client = server.connect()
    assert client.login()[0] == m.LoginResp(
        IServerVer=VERSION, Result="Success", Status="InitInProgress", ConfigOptions=CONFIG_OPTIONS
    )
    server.service.set_link("SW_InFront", up=True)
    server.shuttle()
    assert client.login()[0].Status == "OK"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("call_id", "body", "answer"),
    [
        ("L", "<AgentQuery ReqId='7' PortNum='1'/>", invalid("7")),
        ("C", "<CallInfoReq/>", invalid(None)),
        ("C", "<UDataGet Keys='a'><RequestId>9</RequestId></UDataGet>", invalid(None)),
        (
            "C",
            "<NewCall CallControlMode='Network'><CalledNum>1</CalledNum></NewCall>",
            m.EndCall(EndCause="FeatureNotSupported"),
        ),
        (
            "C",
            "<MakeCall OrigNum='2' DestNum='7001'/>",
            m.EndCall(EndCause="FeatureNotSupported"),
        ),
        ("C", "<LogMsg MsgType='Standard' Msg='hello'/>", None),
        ("C", "<Reset/>", None),
    ],
)
def test_requests_before_login(
    server: MemoryServer, call_id: str, body: str, answer: m.Message | None
) -> None:
    client = server.connect()
    got = [doc.message for doc in client.send(call_id, body)]
    assert got == ([] if answer is None else [answer])


def test_every_session_logs_in_on_its_own(server: MemoryServer, ivr: MemoryClient) -> None:
    other = server.connect()
    assert other.request("L", "<AgentQuery ReqId='1' PortNum='1'/>") == invalid("1")
    assert ivr.request("L", "<AgentQuery ReqId='2' PortNum='1'/>").tag == "MonitorInfo"
