"""Monitoring and agent control on IVR ports (PROTOCOL.md §3.2, §6.5.6) over real TCP."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink

Connect = Callable[[], Awaitable[RawLink]]


def agent(port: str, status: str, req_id: str | None = None) -> m.MonitorInfo:
    return m.MonitorInfo(ReqId=req_id, Agent=m.Agent(PortNum=port, Status=status))  # type: ignore[arg-type]


def call_error(failed: str, code: str | None, req_id: str | None) -> m.CallError:
    return m.CallError(FailedReq=failed, TlibErrCode=code, ReqId=req_id)  # type: ignore[arg-type]


async def test_server_monitor_reports_tservers_and_link_changes(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await link.login("L", monitor="set")
    call_id, info, raw = await link.recv_doc()
    assert call_id == "L"
    assert info == m.MonitorInfo(
        Server=m.Server(Name="TServer_IVR", Status="OK", Switch="SW_InFront")
    )
    assert b"<MonitorInfo><Server Name='TServer_IVR' Status='OK' Switch='SW_InFront'/>" in raw
    server.service.set_link("SW_InFront", up=False)
    server.flush()
    assert (await link.recv_doc())[1] == m.MonitorInfo(
        Server=m.Server(Name="TServer_IVR", Status="Unavailable", Switch="SW_InFront")
    )
    server.service.set_link("SW_InFront", up=True)
    server.flush()
    assert (await link.recv_doc())[1] == m.MonitorInfo(
        Server=m.Server(Name="TServer_IVR", Status="OK", Switch="SW_InFront")
    )
    # unsubscribe: no more Server events
    await link.login("L2", monitor="clear")
    server.service.set_link("SW_InFront", up=False)
    server.flush()
    await link.expect_silence(0.3)


async def test_monitor_needs_version_4(connect: Connect) -> None:
    link = await connect()
    await link.login("L", version="3.0", monitor="set")
    await link.expect_silence(0.3)


async def test_agent_control_flow(connect: Connect) -> None:
    link = await connect()
    other = await connect()
    await link.login("L")
    await other.login("O")
    await link.send("L", "<AgentQuery ReqId='705' PortNum='1'/>")
    assert (await link.recv_doc())[1] == agent("1", "Unknown", "705")
    await link.send(
        "L", "<AgentLogin ReqId='706' PortNum='1' Queue='6000' AgentId='553' Password='secret'/>"
    )
    assert (await link.recv_doc())[1] == agent("1", "LoggedIn", "706")
    assert (await link.recv_doc())[1] == agent("1", "NotReady", "706")
    # another session of the same IVR sees the same events, unsolicited (no ReqId)
    assert (await other.recv_doc())[1:2] == (agent("1", "LoggedIn"),)
    assert (await other.recv_doc())[1] == agent("1", "NotReady")
    await link.send("L", "<AgentReady ReqId='707' PortNum='1' Queue='6000' WorkMode='ManualIn'/>")
    assert (await link.recv_doc())[1] == agent("1", "Ready", "707")
    await link.send("L", "<AgentQuery ReqId='708' PortNum='1'/>")
    assert (await link.recv_doc())[1] == agent("1", "Ready", "708")
    await link.send("L", "<AgentNotReady ReqId='709' PortNum='1' Queue='6000'/>")
    assert (await link.recv_doc())[1] == agent("1", "NotReady", "709")
    await link.send("L", "<AgentLogout ReqId='710' PortNum='1'/>")  # Queue omitted: accepted
    assert (await link.recv_doc())[1] == agent("1", "LoggedOut", "710")
    await link.send("L", "<AgentQuery ReqId='711' PortNum='1'/>")
    assert (await link.recv_doc())[1] == agent("1", "Unknown", "711")
    for expected in ("Ready", "NotReady", "LoggedOut"):
        assert (await other.recv_doc())[1] == agent("1", expected)


async def test_agent_errors(server: IvrServer, connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await link.send("L", "<AgentLogin ReqId='1' PortNum='2' Queue='6000' AgentId='1' Password=''/>")
    await link.recv_doc()
    await link.recv_doc()
    # already logged in: the switch's EventError code
    await link.send("L", "<AgentLogin ReqId='2' PortNum='2' Queue='6000' AgentId='1' Password=''/>")
    assert (await link.recv_doc())[1] == call_error("AgentControl", "50", "2")
    # unknown port
    await link.send("L", "<AgentQuery ReqId='3' PortNum='99999'/>")
    assert (await link.recv_doc())[1] == call_error("AgentControl", "INVALID_REQ", "3")
    # a CallId other than the session CallId
    await link.send("other", "<AgentQuery ReqId='4' PortNum='1'/>")
    assert (await link.recv_doc())[1] == call_error("Unknown", "INVALID_REQ", "4")
    # link down
    server.service.set_link("SW_InFront", up=False)
    server.flush()
    await link.send("L", "<AgentReady ReqId='5' PortNum='2' Queue='6000'/>")
    assert (await link.recv_doc())[1] == call_error("AgentControl", "LINK_DOWN", "5")
    # a malformed agent request keeps its ReqId
    await link.send("L", "<AgentReady ReqId='6' PortNum='2' Queue='6000' WorkMode='Sleepy'/>")
    assert (await link.recv_doc())[1] == call_error("Unknown", "INVALID_REQ", "6")


async def test_agent_control_needs_a_4_0_session(connect: Connect) -> None:
    link = await connect()
    await link.login("L", version="3.0")
    await link.send("L", "<AgentQuery ReqId='1' PortNum='1'/>")
    assert (await link.recv_doc())[1] == call_error("Unknown", "INVALID_REQ", "1")


async def test_legacy_mode_ports_are_server_controlled(connect: Connect) -> None:
    link = await connect()
    await link.login("L", name="IVR_2")
    # auto-login with set-ready: the agent is already Ready
    await link.send("L", "<AgentQuery ReqId='1' PortNum='1'/>")
    assert (await link.recv_doc())[1] == agent("1", "Ready", "1")
    for body in (
        "<AgentLogout ReqId='2' PortNum='1' Queue='6000'/>",
        "<AgentReady ReqId='2' PortNum='1' Queue='6000'/>",
        "<AgentNotReady ReqId='2' PortNum='1' Queue='6000'/>",
        "<AgentLogin ReqId='2' PortNum='1' Queue='6000' AgentId='x' Password=''/>",
    ):
        await link.send("L", body)
        assert (await link.recv_doc())[1] == call_error("NotAllowed", None, "2")


async def test_dial_out_registry(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await link.send("L", "<DialOutRegistry Command='Add' DN='5000'/>")
    assert (await link.recv_doc())[1] == m.DialOutRegistryResp(Result="Success")
    await link.send("L", "<DialOutRegistry Command='Add' DN='4001'/>")
    assert (await link.recv_doc())[1] == m.DialOutRegistryResp(Result="ConfigError")
    await link.send("L", "<DialOutRegistry Command='Remove' DN='5000'/>")
    assert (await link.recv_doc())[1] == m.DialOutRegistryResp(Result="Success")
    await link.send("L", "<DialOutRegistry Command='RemoveAll'/>")
    assert (await link.recv_doc())[1] == m.DialOutRegistryResp(Result="Success")
    await link.send("X", "<DialOutRegistry Command='RemoveAll'/>")
    assert (await link.recv_doc())[1] == call_error("Unknown", "INVALID_REQ", None)
