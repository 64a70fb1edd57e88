"""Login over real TCP (PROTOCOL.md §3.1, DECISIONS.md): exact bytes and every variant."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink

Connect = Callable[[], Awaitable[RawLink]]
PROLOG = b"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>"


async def test_login_resp_and_flow_control_are_byte_exact(connect: Connect) -> None:
    link = await connect()
    await link.send(
        "L1", '<LoginReq Version="4.0" ClientName="IVR_1" ReportStatus="true"></LoginReq>'
    )
    _, _, resp = await link.recv_doc()
    _, _, flow = await link.recv_doc()
    assert resp == PROLOG + (
        b"<GctiMsg><CallId>L1</CallId><LoginResp IServerVer='IVR Server:8.5.001.00' "
        b"Result='Success' Status='OK'><ConfigOptions><Node Name='socket_activity_timer' "
        b"Type='Str' Val='20000'/><Node Name='site' Type='Str' Val='demo'/></ConfigOptions>"
        b"</LoginResp></GctiMsg>"
    )
    assert flow == PROLOG + b"<GctiMsg><CallId>L1</CallId><FlowControl Status='Off'/></GctiMsg>"


async def test_login_without_report_status_has_no_status(connect: Connect) -> None:
    link = await connect()
    await link.send("L1", '<LoginReq Version="4.0" ClientName="IVR_2"/>')
    _, resp, raw = await link.recv_doc()
    assert resp == m.LoginResp(IServerVer="IVR Server:8.5.001.00", Result="Success")
    assert raw.endswith(
        b"<LoginResp IServerVer='IVR Server:8.5.001.00' Result='Success'/></GctiMsg>"
    )


async def test_versions_2_and_3_get_no_flow_control(connect: Connect) -> None:
    link = await connect()
    for version in ("3.0", "2.0"):
        await link.send(
            "L",
            f'<LoginReq Version="{version}" ClientName="IVR_1" '
            'ReportStatus="true" ServerMonitor="set"/>',
        )
        _, resp, _ = await link.recv_doc()
        assert isinstance(resp, m.LoginResp) and resp.Result == "Success" and resp.Status == "OK"
        await link.expect_silence(0.3)


async def test_unsupported_versions_are_refused(connect: Connect) -> None:
    link = await connect()
    for version in ("1.0", "5.0", "4"):
        await link.send(
            "L", f'<LoginReq Version="{version}" ClientName="IVR_1" ReportStatus="true"/>'
        )
        _, resp, raw = await link.recv_doc()
        assert resp == m.LoginResp(IServerVer="IVR Server:8.5.001.00", Result="InvalidProtocolVer")
        assert b"Status" not in raw
    # still logged out: other requests are answered as before login
    await link.send("L", "<AgentQuery ReqId='1' PortNum='1'/>")
    _, err, _ = await link.recv_doc()
    assert err == m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId="1")


async def test_login_without_version_is_treated_as_2_0(connect: Connect) -> None:
    link = await connect()
    await link.send("L", '<LoginReq ClientName="IVR_1" ReportStatus="true"/>')
    _, resp, _ = await link.recv_doc()
    assert isinstance(resp, m.LoginResp) and resp.Result == "Success"
    await link.expect_silence(0.3)  # 2.0: no FlowControl


async def test_unknown_client_is_no_such_client_and_stays_logged_out(connect: Connect) -> None:
    link = await connect()
    await link.send("L", '<LoginReq Version="4.0" ClientName="ivr_1" ReportStatus="true"/>')
    _, resp, _ = await link.recv_doc()
    assert isinstance(resp, m.LoginResp)
    assert (resp.Result, resp.Status, resp.ConfigOptions) == ("Success", "NoSuchClient", None)
    _, flow, _ = await link.recv_doc()
    assert flow == m.FlowControl(Status="Off")
    await link.send("L", "<AgentQuery ReqId='3' PortNum='1'/>")
    assert (await link.recv_doc())[1] == m.CallError(
        FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId="3"
    )
    await link.send("C", '<NewCall CallControlMode="Network"><CalledNum>1</CalledNum></NewCall>')
    assert (await link.recv_doc())[1] == m.EndCall(EndCause="FeatureNotSupported")
    # and may log in again, properly
    await link.login("L2")


async def test_relogin_changes_the_session_call_id(connect: Connect) -> None:
    link = await connect()
    await link.login("first")
    await link.login("second")
    await link.send("first", "<AgentQuery ReqId='1' PortNum='1'/>")
    assert (await link.recv_doc())[1] == m.CallError(
        FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId="1"
    )
    await link.send("second", "<AgentQuery ReqId='2' PortNum='1'/>")
    call_id, info, _ = await link.recv_doc()
    assert call_id == "second" and isinstance(info, m.MonitorInfo) and info.ReqId == "2"


async def test_init_in_progress_while_the_tserver_link_is_down(
    server: IvrServer, connect: Connect
) -> None:
    server.service.set_link("SW_InFront", up=False)
    link = await connect()
    await link.send("L", '<LoginReq Version="4.0" ClientName="IVR_1" ReportStatus="true"/>')
    _, resp, _ = await link.recv_doc()
    assert isinstance(resp, m.LoginResp) and resp.Status == "InitInProgress"
    server.service.set_link("SW_InFront", up=True)
    server.flush()
    await link.recv_doc()  # FlowControl
    await link.send("L", '<LoginReq Version="4.0" ClientName="IVR_1" ReportStatus="true"/>')
    _, resp, _ = await link.recv_doc()
    assert isinstance(resp, m.LoginResp) and resp.Status == "OK"


async def test_requests_before_login(connect: Connect) -> None:
    link = await connect()
    await link.send(
        "C1", '<NewCall CallControlMode="Network" Version="4.0"><CalledNum>1</CalledNum></NewCall>'
    )
    assert (await link.recv_doc())[1] == m.EndCall(EndCause="FeatureNotSupported")
    await link.send("C1", "<CallInfoReq/>")
    assert (await link.recv_doc())[1] == m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ")
    await link.send("C1", '<LogMsg MsgType="Standard" Msg="hello"/>')
    await link.send("C1", "<Reset/>")
    await link.expect_silence(0.3)


async def test_logmsg_and_reset_are_never_answered(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    for level in ("Standard", "Trace", "Debug"):
        await link.send("anything", f'<LogMsg MsgType="{level}" Msg="a &amp; b"/>')
    await link.send("L", "<Reset><ExtnsEx><Node Name='a' Type='Str' Val='b'/></ExtnsEx></Reset>")
    await link.expect_silence(0.3)


async def test_keep_alive_is_answered_before_and_after_login(connect: Connect) -> None:
    link = await connect()
    await link.send_bytes(bytes.fromhex("000000020200"))
    assert await link.recv_frame() == (1, b"")
    await link.login("L")
    await link.send_bytes(bytes.fromhex("000000020200") * 3)
    for _ in range(3):
        assert await link.recv_frame() == (1, b"")


async def test_call_requests_after_login_are_for_unknown_calls(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await link.send("X", "<EndCall EndCause='Normal'/>")
    assert (await link.recv_doc())[1] == m.CallError(FailedReq="NoSuchCall")
    await link.send("X", "<UDataGet Keys='a'><RequestId>5</RequestId></UDataGet>")
    assert (await link.recv_doc())[1] == m.UDataResp(Result="NoSuchCall", RequestId="5")
    await link.send(
        "X", "<PeekStatReq><RequestId>6</RequestId><StatName>s</StatName></PeekStatReq>"
    )
    assert (await link.recv_doc())[1] == m.CallError(FailedReq="Unknown")
