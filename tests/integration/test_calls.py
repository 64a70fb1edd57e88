"""In-Front calls over real TCP: start, errors, end, hang-up, timers, sessions and load.

PROTOCOL.md §3.3 (NewCall…CallError), §3.6 (In-Front rules), §3.7, §5.2, §6.1-§6.4, §7, §9.4.4
and DECISIONS.md. Every expectation is an exact reply (element, attributes, CallId), mostly
compared byte for byte. A request whose answer must be *nothing* is followed by a request with
a known answer on the same connection: replies leave in request order, so the next document
read must be that known answer.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ivr_server.config import ServerConfig, default_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.rawlink import (
    RawLink,
    many_ports_config,
    new_call_body,
    send_many,
    server_doc,
    start_call,
)

Connect = Callable[[], Awaitable[RawLink]]
StartServer = Callable[..., Awaitable[IvrServer]]
OpenLink = Callable[[IvrServer], Awaitable[RawLink]]

SWITCH = "SW_InFront"
NO_SUCH_CALL = "<CallError FailedReq='NoSuchCall'/>"
INVALID_REQ = "<CallError FailedReq='Unknown' TlibErrCode='INVALID_REQ'/>"
FEATURE_NOT_SUPPORTED = "<EndCall EndCause='FeatureNotSupported'/>"
CONN_ID = re.compile(r"[0-9a-f]{16}")
END_CAUSES = (
    "Normal",
    "Abandoned",
    "Resources",
    "FeatureNotSupported",
    "InvalidVersion",
    "InvalidStateTransition",
    "Timeout",
    "ServerPaused",
)


def with_timers(**timers: float) -> ServerConfig:
    """The default configuration with some ``[server.timers]`` values (seconds) replaced."""
    base = default_config()
    server = base.server.model_copy(update={"timers": base.server.timers.model_copy(update=timers)})
    return base.model_copy(update={"server": server})


@pytest.fixture
async def links() -> AsyncIterator[OpenLink]:
    """Open raw links to any server started by the test; closed at the end."""
    opened: list[RawLink] = []

    async def open_link(server: IvrServer) -> RawLink:
        link = await RawLink.open(server.port)
        opened.append(link)
        return link

    yield open_link
    for link in opened:
        await link.close()


async def expect(link: RawLink, call_id: str, body: str) -> m.Message:
    """Read the next document and check its exact bytes."""
    got_id, message, raw = await link.recv_doc()
    assert (got_id, raw) == (call_id, server_doc(call_id, body))
    return message


async def ask(link: RawLink, call_id: str, request: str, answer: str) -> None:
    """Send ``request`` and check that the next document is exactly ``answer``."""
    await link.send(call_id, request)
    await expect(link, call_id, answer)


async def call_info(link: RawLink, call_id: str, attrs: str = "") -> tuple[m.CallInfoResp, bytes]:
    await link.send(call_id, f"<CallInfoReq{attrs}/>")
    got_id, message, raw = await link.recv_doc()
    assert got_id == call_id
    assert isinstance(message, m.CallInfoResp), raw
    return message, raw


async def conn_id_of(link: RawLink, call_id: str) -> str:
    info, _ = await call_info(link, call_id)
    assert info.ConnId is not None
    return info.ConnId


async def gone(link: RawLink, call_id: str) -> None:
    """The CallId is unknown: CallInfoReq gets NoSuchCall."""
    await ask(link, call_id, "<CallInfoReq/>", NO_SUCH_CALL)


def assert_no_leaks(server: IvrServer) -> None:
    calls = server.service.calls
    assert calls.calls == {}
    assert calls.timer_count() == 0
    assert calls.pending_count() == 0
    assert list(server.service.switches[SWITCH].view.calls()) == []


def switch_call(server: IvrServer, conn_id: str) -> tuple[str, int]:
    snapshot = server.service.switches[SWITCH].view.call(conn_id)
    assert snapshot is not None
    return snapshot.conn_id, snapshot.call_id


# ---------------------------------------------------------------------------------- call start


async def test_new_call_rings_then_establishes_and_call_info_is_exact(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    await link.send(
        "C1",
        '<NewCall CallControlMode="Network" Version="4.0"><CalledNum>1</CalledNum>'
        "<DNIS>5550700</DNIS><ANI>3432232</ANI></NewCall>",
    )
    await expect(link, "C1", "<CallStatus Event='Ringing'/>")
    await expect(link, "C1", "<CallStatus Event='Established'/>")
    (snapshot,) = server.service.switches[SWITCH].view.calls()
    assert (snapshot.ani, snapshot.dnis, snapshot.parties) == ("3432232", "5550700", ("4001",))
    assert CONN_ID.fullmatch(snapshot.conn_id)
    await ask(
        link,
        "C1",
        "<CallInfoReq></CallInfoReq>",
        f"<CallInfoResp ANI='3432232' DNIS='5550700' CalledNum='1' ConnId='{snapshot.conn_id}' "
        f"TSCallId='{snapshot.call_id}' PortDN='4001' LastEvent='EventEstablished'/>",
    )
    await link.send("C1", '<EndCall EndCause="Normal"/>')
    await gone(link, "C1")
    assert_no_leaks(server)


@pytest.mark.parametrize("version", ["1.0", "2.0", "3.0", "4.0", None])
async def test_every_call_version_starts_a_call(
    server: IvrServer, connect: Connect, version: str | None
) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "7", "<DNIS>800</DNIS><ANI>200</ANI>", version=version)
    info, raw = await call_info(link, "C")
    assert info.ConnId is not None
    conn_id, ts_call_id = switch_call(server, info.ConnId)
    assert raw == server_doc(
        "C",
        f"<CallInfoResp ANI='200' DNIS='800' CalledNum='7' ConnId='{conn_id}' "
        f"TSCallId='{ts_call_id}' PortDN='4007' LastEvent='EventEstablished'/>",
    )


@pytest.mark.parametrize("extra", ["", "<DNIS></DNIS><ANI></ANI>", "<DNIS/><ANI/>"])
async def test_call_info_never_has_empty_attributes(
    server: IvrServer, connect: Connect, extra: str
) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "2", extra)
    info, raw = await call_info(link, "C")
    assert info.ConnId is not None
    conn_id, ts_call_id = switch_call(server, info.ConnId)
    assert raw == server_doc(
        "C",
        f"<CallInfoResp CalledNum='2' ConnId='{conn_id}' TSCallId='{ts_call_id}' "
        "PortDN='4002' LastEvent='EventEstablished'/>",
    )
    assert b"=''" not in raw


async def test_report_uuid_adds_a_stable_uuid_last(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "3", "<DNIS>1</DNIS><ANI>2</ANI>")
    plain, plain_raw = await call_info(link, "C")
    with_uuid, raw = await call_info(link, "C", ' ReportUUID="true"')
    assert with_uuid.UUID
    # same attributes as without the flag, then UUID after LastEvent (DTD order)
    assert raw == plain_raw.replace(
        b"LastEvent='EventEstablished'/>",
        f"LastEvent='EventEstablished' UUID='{with_uuid.UUID}'/>".encode(),
    )
    again, _ = await call_info(link, "C", ' ReportUUID="true"')
    assert again.UUID == with_uuid.UUID
    no_uuid, no_uuid_raw = await call_info(link, "C", ' ReportUUID="false"')
    assert no_uuid_raw == plain_raw and no_uuid.UUID is None and plain.UUID is None
    # no third party in an In-Front call at the port: nothing to report, nothing emitted
    _, third_raw = await call_info(link, "C", ' ReportThirdPartyDN="true"')
    assert third_raw == plain_raw


async def test_conn_ids_and_switch_call_ids_are_unique(server: IvrServer, connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    infos: list[m.CallInfoResp] = []
    for round_ in range(2):
        for port in range(1, 6):
            call_id = f"C{round_}-{port}"
            await start_call(link, call_id, str(port))
            infos.append((await call_info(link, call_id))[0])
        for port in range(1, 6):  # the same ports again in round 2: new ConnIds all the same
            await link.send(f"C{round_}-{port}", "<EndCall EndCause='Normal'/>")
    await gone(link, "C1-5")
    conn_ids = [info.ConnId for info in infos]
    ts_ids = [info.TSCallId for info in infos]
    assert all(c is not None and CONN_ID.fullmatch(c) for c in conn_ids)
    assert all(t is not None and t.isdigit() for t in ts_ids)
    assert len(set(conn_ids)) == len(set(ts_ids)) == 10
    assert_no_leaks(server)


async def test_initial_udata_ex_is_the_calls_user_data(server: IvrServer, connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    udata = (
        "<UDataEx><Node Name='AccountNo' Type='Str' Val='12345'/>"
        "<Node Name='Tries' Type='Int' Val='3'/>"
        "<List Name='Order'><Node Name='Item' Type='Str' Val='A&amp;B'/>"
        "<List Name='Price'><Node Name='Amount' Type='Int' Val='100'/></List></List>"
        "<Node Name='Raw' Type='Bin' Val='00ff'/></UDataEx>"
    )
    await start_call(link, "C", "4", f"<DNIS>1</DNIS><ANI>2</ANI>{udata}")
    await ask(
        link,
        "C",
        "<UDataGetAll><RequestId>r1</RequestId></UDataGetAll>",
        f"<UDataResp Result='Success'><RequestId>r1</RequestId>{udata}</UDataResp>",
    )
    (snapshot,) = server.service.switches[SWITCH].view.calls()
    assert [item.Name for item in snapshot.user_data] == ["AccountNo", "Tries", "Order", "Raw"]


async def test_version_1_user_data_nvpairs_become_str_nodes(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    nvpairs = (
        "<UserData><NVPair><NVName>AccountNo</NVName><NVVal>12345</NVVal></NVPair>"
        "<NVPair><NVName>Lang</NVName><NVVal>EN</NVVal></NVPair></UserData>"
    )
    await start_call(link, "C", "5", nvpairs, version="1.0")
    await ask(
        link,
        "C",
        "<UDataGetAll><RequestId>7</RequestId></UDataGetAll>",
        "<UDataResp Result='Success'><RequestId>7</RequestId><UDataEx>"
        "<Node Name='AccountNo' Type='Str' Val='12345'/><Node Name='Lang' Type='Str' Val='EN'/>"
        "</UDataEx></UDataResp>",
    )


@pytest.mark.parametrize("restriction", ["CLIP", "CLIR"])
async def test_ani_restriction_is_accepted_and_ignored(
    server: IvrServer, connect: Connect, restriction: str
) -> None:
    link = await connect()
    await link.login("L")
    await link.send(
        "C",
        f'<NewCall CallControlMode="Network" Version="4.0" ANIRestriction="{restriction}">'
        "<CalledNum>6</CalledNum><ANI>999</ANI></NewCall>",
    )
    await expect(link, "C", "<CallStatus Event='Ringing'/>")
    await expect(link, "C", "<CallStatus Event='Established'/>")
    info, _ = await call_info(link, "C")
    assert (info.ANI, info.CalledNum, info.PortDN) == ("999", "6", "4006")


async def test_port_numbers_belong_to_the_logged_in_ivr(connect: Connect) -> None:
    one = await connect()
    two = await connect()
    await one.login("L1", name="IVR_1")
    await two.login("L2", name="IVR_2")
    await start_call(one, "A", "1")
    await start_call(two, "B", "1")  # IVR_2's port "1" is another port (DN 4101)
    assert (await call_info(one, "A"))[0].PortDN == "4001"
    assert (await call_info(two, "B"))[0].PortDN == "4101"
    # IVR_2 has only four ports
    await ask(two, "D", new_call_body("5"), FEATURE_NOT_SUPPORTED)


async def test_new_call_extensions_are_not_user_data(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await start_call(
        link,
        "C",
        "8",
        "<UDataEx><Node Name='u' Type='Str' Val='1'/></UDataEx>"
        "<ExtnsEx><Node Name='e' Type='Str' Val='2'/></ExtnsEx>",
    )
    await ask(
        link,
        "C",
        "<UDataGetAll><RequestId>1</RequestId></UDataGetAll>",
        "<UDataResp Result='Success'><RequestId>1</RequestId>"
        "<UDataEx><Node Name='u' Type='Str' Val='1'/></UDataEx></UDataResp>",
    )


async def test_log_msg_is_never_answered(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    for call_id in ("C", "unknown", "L"):
        await link.send(call_id, "<LogMsg MsgType='Standard' Msg='hello &amp; bye'/>")
    await gone(link, "unknown")  # the next document: no LogMsg was answered


# ---------------------------------------------------------------------------------- NewCall errors


async def test_new_call_before_login_is_feature_not_supported(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await ask(link, "C", new_call_body("1"), FEATURE_NOT_SUPPORTED)
    await ask(link, "C", "<CallInfoReq/>", INVALID_REQ)  # still not logged in
    await link.login("L")
    await gone(link, "C")
    await start_call(link, "C", "1")  # the CallId and the port were never taken


async def test_new_call_from_an_unknown_client_is_feature_not_supported(
    connect: Connect,
) -> None:
    link = await connect()
    await link.send("L", '<LoginReq Version="4.0" ClientName="IVR_X" ReportStatus="true"/>')
    _, resp, _ = await link.recv_doc()
    assert isinstance(resp, m.LoginResp) and resp.Status == "NoSuchClient"
    await link.recv_doc()  # FlowControl
    await ask(link, "C", new_call_body("1"), FEATURE_NOT_SUPPORTED)


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (new_call_body("99"), FEATURE_NOT_SUPPORTED),  # no such port
        (new_call_body("01"), FEATURE_NOT_SUPPORTED),  # port numbers compare exactly
        (new_call_body("4001"), FEATURE_NOT_SUPPORTED),  # a DN is not a port number
        (new_call_body("5001"), FEATURE_NOT_SUPPORTED),  # routing point without a router (G19)
        (new_call_body("5001"), FEATURE_NOT_SUPPORTED),
        (new_call_body("1", mode="Genesys"), FEATURE_NOT_SUPPORTED),
        (new_call_body("1", version="5.0"), "<EndCall EndCause='InvalidVersion'/>"),
    ],
)
async def test_refused_new_call_leaves_nothing_behind(
    server: IvrServer, connect: Connect, body: str, answer: str
) -> None:
    link = await connect()
    await link.login("L")
    await ask(link, "C", body, answer)
    await gone(link, "C")
    assert_no_leaks(server)
    await start_call(link, "C", "1")  # neither the CallId nor port 1 is taken


async def test_duplicate_call_id_on_the_same_connection(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    before = await call_info(link, "C")
    for port in ("2", "1"):
        await ask(link, "C", new_call_body(port), INVALID_REQ)
    assert await call_info(link, "C") == before  # untouched
    await start_call(link, "D", "2")  # port 2 was not taken by the refused NewCall
    assert len(server.service.calls.calls) == 2


async def test_duplicate_call_id_on_another_connection(connect: Connect) -> None:
    first = await connect()
    second = await connect()
    third = await connect()
    await first.login("L1")
    await second.login("L2")
    await third.login("L3", name="IVR_2")
    await start_call(first, "C", "1")
    before = await call_info(first, "C")
    await ask(second, "C", new_call_body("2"), INVALID_REQ)
    # CallIds are unique per IVR: another IVR's "C" is its own call, and tells it nothing
    await start_call(third, "C", "1")
    assert await call_info(first, "C") == before
    await start_call(second, "D", "2")


async def test_busy_port_gets_end_call_resources(server: IvrServer, connect: Connect) -> None:
    link = await connect()
    other = await connect()
    await link.login("L")
    await other.login("O")
    await start_call(link, "C", "3", "<ANI>1</ANI>")
    before = await call_info(link, "C")
    await ask(link, "D", new_call_body("3"), "<EndCall EndCause='Resources'/>")
    await ask(other, "E", new_call_body("3"), "<EndCall EndCause='Resources'/>")
    await gone(link, "D")
    await gone(other, "E")
    assert await call_info(link, "C") == before
    assert len(list(server.service.switches[SWITCH].view.calls())) == 1


async def test_flow_control_on_pauses_new_calls_only(server: IvrServer, connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    server.service.set_flow_control(True)
    server.flush()
    await expect(link, "L", "<FlowControl Status='On'/>")
    await ask(link, "D", new_call_body("2"), "<EndCall EndCause='ServerPaused'/>")
    await gone(link, "D")
    info, _ = await call_info(link, "C")  # calls already started continue
    assert info.LastEvent == "EventEstablished"
    server.service.set_flow_control(False)
    server.flush()
    await expect(link, "L", "<FlowControl Status='Off'/>")
    await start_call(link, "D", "2")


async def test_t_server_link_down_pauses_new_calls(server: IvrServer, connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    server.service.set_link(SWITCH, False)
    server.flush()
    await ask(link, "C", new_call_body("1"), "<EndCall EndCause='ServerPaused'/>")
    await gone(link, "C")
    server.service.set_link(SWITCH, True)
    server.flush()
    await start_call(link, "C", "1")


# ---------------------------------------------------------------------------------- unknown calls


UNKNOWN_CALL_ANSWERS = [
    ("<EndCall EndCause='Normal'/>", NO_SUCH_CALL),
    ("<CallInfoReq/>", NO_SUCH_CALL),
    ("<RouteRequest RouteDN='5001'/>", NO_SUCH_CALL),
    ("<Connected/>", NO_SUCH_CALL),
    ("<Failure FailureCause='Busy'/>", NO_SUCH_CALL),
    ("<TreatStatus Status='Started'/>", NO_SUCH_CALL),
    ("<CancelCompleted/>", NO_SUCH_CALL),
    ("<AccessNumGet DestDN='7001' Location='SW_Remote'/>", NO_SUCH_CALL),
    (
        "<UDataSet Action='Add'><RequestId>11</RequestId>"
        "<UDataEx><Node Name='a' Type='Str' Val='1'/></UDataEx></UDataSet>",
        "<UDataResp Result='NoSuchCall'><RequestId>11</RequestId></UDataResp>",
    ),
    (
        "<UDataGet Keys='a'><RequestId>12</RequestId></UDataGet>",
        "<UDataResp Result='NoSuchCall'><RequestId>12</RequestId></UDataResp>",
    ),
    (
        "<UDataGetAll><RequestId>13</RequestId></UDataGetAll>",
        "<UDataResp Result='NoSuchCall'><RequestId>13</RequestId></UDataResp>",
    ),
    (
        "<UDataDel Action='DeleteAll'><RequestId>14</RequestId></UDataDel>",
        "<UDataResp Result='NoSuchCall'><RequestId>14</RequestId></UDataResp>",
    ),
    (
        "<PeekStatReq><RequestId>15</RequestId><StatName>EWT</StatName></PeekStatReq>",
        "<CallError FailedReq='Unknown'/>",
    ),
    (
        "<GetStatReq><RequestId>16</RequestId><ServerName>Stat</ServerName>"
        "<StatType>EWT</StatType><ObjectId>6000@SW_InFront</ObjectId>"
        "<ObjectType>SObjectQueue</ObjectType></GetStatReq>",
        "<CallError FailedReq='Unknown'/>",
    ),
]


@pytest.mark.parametrize(("request_body", "answer"), UNKNOWN_CALL_ANSWERS)
async def test_requests_on_an_unknown_call_id(
    connect: Connect, request_body: str, answer: str
) -> None:
    link = await connect()
    await link.login("L")
    await ask(link, "nobody", request_body, answer)


@pytest.mark.parametrize(("request_body", "answer"), UNKNOWN_CALL_ANSWERS)
async def test_requests_on_an_ended_call_id(
    connect: Connect, request_body: str, answer: str
) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    await link.send("C", "<EndCall EndCause='Normal'/>")
    await ask(link, "C", request_body, answer)


async def test_the_session_call_id_is_not_a_call(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await gone(link, "L")
    await ask(
        link,
        "L",
        "<UDataGetAll><RequestId>1</RequestId></UDataGetAll>",
        "<UDataResp Result='NoSuchCall'><RequestId>1</RequestId></UDataResp>",
    )


async def test_calls_of_another_ivr_are_unknown_to_its_sessions(connect: Connect) -> None:
    owner = await connect()
    stranger = await connect()
    await owner.login("L1", name="IVR_1")
    await stranger.login("L2", name="IVR_2")
    await start_call(owner, "C", "1", "<ANI>42</ANI>")
    before = await call_info(owner, "C")
    await ask(stranger, "C", "<CallInfoReq/>", NO_SUCH_CALL)
    await ask(stranger, "C", "<EndCall EndCause='Normal'/>", NO_SUCH_CALL)
    await ask(
        stranger,
        "C",
        "<UDataGet Keys='x'><RequestId>5</RequestId></UDataGet>",
        "<UDataResp Result='NoSuchCall'><RequestId>5</RequestId></UDataResp>",
    )
    assert await call_info(owner, "C") == before  # untouched by the other IVR


# ---------------------------------------------------------------------------------- In-Front limits


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("OneStepXfer", "<OneStepXfer DestDN='7001' Location='Paris'/>", "UNSUP_OPER"),
        ("OneStepConf", "<OneStepConf DestDN='7001' Location='Paris'/>", "UNSUP_OPER"),
        ("InitXfer", "<InitXfer DestDN='7001' Location='Paris'/>", "UNSUP_OPER"),
        ("InitConf", "<InitConf DestDN='7001' Location='SW_InFront'/>", "UNSUP_OPER"),
        ("CompleteXfer", "<CompleteXfer/>", "BLOCKED_REQ"),
        ("CompleteConf", "<CompleteConf/>", "BLOCKED_REQ"),
        ("RetrieveCall", "<RetrieveCall/>", "BLOCKED_REQ"),
    ],
)
async def test_call_control_to_another_site_or_without_a_consultation_is_refused(
    server: IvrServer, connect: Connect, name: str, body: str, code: str
) -> None:
    """In-Front call control is carried out by the virtual switch (test_transfers_in_front.py);
    a ``Location`` (no remote site, G11) and a Complete/Retrieve without a consultation are
    refused, the call untouched."""
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    before = await call_info(link, "C")
    await ask(link, "C", body, f"<CallError FailedReq='{name}' TlibErrCode='{code}'/>")
    assert await call_info(link, "C") == before
    (snapshot,) = server.service.switches[SWITCH].view.calls()
    assert snapshot.parties == ("4001",)


async def test_make_call_to_another_site_is_unsupported_and_creates_nothing(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    await ask(
        link,
        "M",
        "<MakeCall OrigNum='2' DestNum='7001' Location='Paris'/>",
        "<CallError FailedReq='MakeCall' TlibErrCode='UNSUP_OPER'/>",
    )
    await gone(link, "M")
    assert_no_leaks(server)
    await start_call(link, "M", "2")


async def test_access_numbers_are_not_available(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    await ask(
        link,
        "C",
        "<AccessNumGet DestDN='7001' Location='SW_Remote' XRouteType='Route'/>",
        "<AccessNumResp Action='Get' Result='Failure'/>",
    )
    await ask(link, "C", "<AccessNumCancel/>", "<AccessNumResp Action='Cancel' Result='Failure'/>")


async def test_statistics_not_configured_are_no_such_stat(connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    await ask(
        link,
        "C",
        "<PeekStatReq><RequestId>9</RequestId><StatName>EWT_Sales</StatName></PeekStatReq>",
        "<StatResp ResultCode='NoSuchStat'><RequestId>9</RequestId></StatResp>",
    )


# ---------------------------------------------------------------------------------- EndCall


async def test_end_call_is_not_answered_and_frees_call_id_and_port(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "1")
    await link.send(
        "C",
        "<EndCall EndCause='Normal'><ExtnsEx>"
        "<Node Name='GCTIActiveRelease' Type='Str' Val='false'/></ExtnsEx></EndCall>",
    )
    await link.expect_silence(0.3)
    await gone(link, "C")
    await ask(link, "C", "<EndCall EndCause='Normal'/>", NO_SUCH_CALL)  # a second EndCall
    assert_no_leaks(server)
    await start_call(link, "C", "1")  # CallId and port reusable at once


@pytest.mark.parametrize("cause", END_CAUSES)
async def test_end_call_variants(server: IvrServer, connect: Connect, cause: str) -> None:
    link = await connect()
    await link.login("L")
    variants = [  # (extra EndCall attributes, children)
        ("", ""),
        ("", "<ExtnsEx><Node Name='GCTIActiveRelease' Type='Str' Val='true'/></ExtnsEx>"),
        ("", "<ExtnsEx><Node Name='GCTIActiveRelease' Type='Str' Val='false'/></ExtnsEx>"),
        (
            "",
            "<UDataEx><Node Name='Result' Type='Str' Val='done'/></UDataEx>"
            "<ExtnsEx><Node Name='GCTIActiveRelease' Type='Str' Val='true'/></ExtnsEx>",
        ),
        ("", "<UDataEx><Node Name='Result' Type='Int' Val='1'/></UDataEx>"),
        # the guide's attribute spelling of the flag (PROTOCOL.md §3.11 row 15)
        (" GCTIActiveRelease='false'", ""),
        # call version 1.0 forms
        (
            "",
            "<UserData><NVPair><NVName>Result</NVName><NVVal>ok</NVVal></NVPair></UserData>"
            "<Extensions><NVPair><NVName>GCTIActiveRelease</NVName><NVVal>false</NVVal>"
            "</NVPair></Extensions>",
        ),
    ]
    for n, (attrs, children) in enumerate(variants):
        call_id = f"{cause}-{n}"
        await start_call(link, call_id, "9", "<ANI>5</ANI>")
        await link.send(call_id, f"<EndCall EndCause='{cause}'{attrs}>{children}</EndCall>")
        await gone(link, call_id)  # the next document: EndCall itself had no reply
        assert_no_leaks(server)


# ---------------------------------------------------------------------------------- caller hang-up


async def test_caller_hang_up_detaches_the_call_until_end_call(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    udata = "<UDataEx><Node Name='Lang' Type='Str' Val='EN'/><Node Name='N' Type='Int' Val='2'/></UDataEx>"
    await start_call(link, "C", "4", f"<DNIS>800</DNIS><ANI>123</ANI>{udata}")
    info, _ = await call_info(link, "C")
    assert info.ConnId is not None
    _, ts_call_id = switch_call(server, info.ConnId)
    assert server.service.hang_up(SWITCH, info.ConnId) is True
    server.flush()
    await expect(link, "C", "<CallStatus Event='Released'/>")
    assert list(server.service.switches[SWITCH].view.calls()) == []
    assert server.service.hang_up(SWITCH, info.ConnId) is False  # the switch call is gone
    # the call context stays until EndCall
    released, _ = await call_info(link, "C")
    assert (released.ANI, released.DNIS, released.CalledNum, released.PortDN) == (
        "123",
        "800",
        "4",
        "4004",
    )
    assert released.TSCallId == str(ts_call_id)
    assert released.LastEvent == "EventReleased"
    await ask(
        link,
        "C",
        "<UDataGet Keys='N:Lang'><RequestId>g</RequestId></UDataGet>",
        f"<UDataResp Result='Success'><RequestId>g</RequestId>{udata}</UDataResp>",
    )
    await ask(
        link,
        "C",
        "<UDataGetAll><RequestId>a</RequestId></UDataGetAll>",
        f"<UDataResp Result='Success'><RequestId>a</RequestId>{udata}</UDataResp>",
    )
    await ask(
        link,
        "C",
        "<UDataSet Action='Replace'><RequestId>s</RequestId>"
        "<UDataEx><Node Name='Lang' Type='Str' Val='FR'/></UDataEx></UDataSet>",
        "<UDataResp Result='MiscError'><RequestId>s</RequestId></UDataResp>",
    )
    await ask(
        link,
        "C",
        "<UDataDel Action='DeleteAll'><RequestId>d</RequestId></UDataDel>",
        "<UDataResp Result='MiscError'><RequestId>d</RequestId></UDataResp>",
    )
    await ask(
        link,
        "C",
        "<RouteRequest RouteDN='5001'/>",
        "<CallError FailedReq='Unknown' TlibErrCode='BLOCKED_REQ'/>",
    )
    # the port still belongs to the detached call
    await ask(link, "D", new_call_body("4"), "<EndCall EndCause='Resources'/>")
    await link.send("C", "<EndCall EndCause='Normal'/>")
    await gone(link, "C")
    assert_no_leaks(server)
    await start_call(link, "D", "4")


async def test_call_info_after_hang_up_still_reports_the_conn_id(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    await start_call(link, "C", "4", "<DNIS>800</DNIS><ANI>123</ANI>")
    conn_id = await conn_id_of(link, "C")
    _, ts_call_id = switch_call(server, conn_id)
    server.service.hang_up(SWITCH, conn_id)
    server.flush()
    await expect(link, "C", "<CallStatus Event='Released'/>")
    await ask(
        link,
        "C",
        "<CallInfoReq/>",
        f"<CallInfoResp ANI='123' DNIS='800' CalledNum='4' ConnId='{conn_id}' "
        f"TSCallId='{ts_call_id}' PortDN='4004' LastEvent='EventReleased'/>",
    )


# ---------------------------------------------------------------------------------- timers


async def test_call_timeout_ends_the_call_unsolicited(
    start_server: StartServer, links: OpenLink
) -> None:
    server = await start_server(with_timers(call_timeout=0.4))
    link = await links(server)
    await link.login("L")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await start_call(link, "C", "1")
    await expect(link, "C", "<EndCall EndCause='Timeout'/>")
    assert loop.time() - started >= 0.35
    await gone(link, "C")
    assert_no_leaks(server)
    await start_call(link, "D", "1")  # the port is free
    await link.send("D", "<EndCall EndCause='Normal'/>")
    await gone(link, "D")
    assert_no_leaks(server)


async def test_router_timeout_answers_route_response_default(
    start_server: StartServer, links: OpenLink
) -> None:
    server = await start_server(with_timers(router_timeout=0.3))
    link = await links(server)
    await link.login("L")
    await start_call(link, "C", "1")
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await link.send("C", "<RouteRequest RouteDN='5001'/>")
    await expect(link, "C", "<RouteResponse RouteType='Default'/>")
    assert loop.time() - sent >= 0.25
    assert server.service.calls.timer_count() == 1  # only the call timeout runs
    await link.send("C", "<EndCall EndCause='Normal'/>")
    await gone(link, "C")
    assert_no_leaks(server)


async def test_orphaned_call_is_continued_by_a_new_session_of_the_ivr(
    start_server: StartServer, links: OpenLink
) -> None:
    server = await start_server(with_timers(orphan_call_timeout=0.5))
    first = await links(server)
    await first.login("L1")
    await start_call(first, "C", "2", "<ANI>77</ANI>")
    before = await call_info(first, "C")
    await first.close()
    await asyncio.sleep(0.1)
    second = await links(server)
    await second.login("L2")
    assert await call_info(second, "C") == before
    await asyncio.sleep(0.6)  # past the orphan timeout: adopted calls are not released
    assert await call_info(second, "C") == before
    await second.send("C", "<EndCall EndCause='Normal'/>")
    await gone(second, "C")
    assert_no_leaks(server)


async def test_orphaned_call_is_released_after_the_orphan_timeout(
    start_server: StartServer, links: OpenLink
) -> None:
    server = await start_server(with_timers(orphan_call_timeout=0.3))
    first = await links(server)
    await first.login("L1")
    await start_call(first, "C", "2")
    conn_id = await conn_id_of(first, "C")
    await first.close()
    await asyncio.sleep(0.6)
    assert server.service.switches[SWITCH].view.call(conn_id) is None
    assert_no_leaks(server)
    second = await links(server)
    await second.login("L2")
    await gone(second, "C")
    await start_call(second, "D", "2")  # the port is free


async def test_a_logged_in_session_of_another_ivr_does_not_adopt(
    start_server: StartServer, links: OpenLink
) -> None:
    server = await start_server(with_timers(orphan_call_timeout=0.3))
    first = await links(server)
    other = await links(server)
    await first.login("L1", name="IVR_1")
    await other.login("L2", name="IVR_2")
    await start_call(first, "C", "2")
    await first.close()
    await asyncio.sleep(0.6)
    await gone(other, "C")
    assert_no_leaks(server)


async def test_replies_stay_with_the_session_that_started_the_call(
    start_server: StartServer, links: OpenLink
) -> None:
    server = await start_server(with_timers(router_timeout=0.3))
    first = await links(server)
    second = await links(server)
    await first.login("L1")
    await second.login("L2")
    await start_call(first, "C", "3")
    await first.send("C", "<RouteRequest RouteDN='5001'/>")
    info, _ = await call_info(second, "C")  # another session of the IVR may ask about it
    assert info.CalledNum == "3"
    got_id, _, raw = await first.recv_doc(timeout=1.0)
    assert (got_id, raw) == ("C", server_doc("C", "<RouteResponse RouteType='Default'/>"))
    await second.expect_silence(0.1)


async def test_call_passes_to_another_connected_session_of_the_ivr(
    start_server: StartServer, links: OpenLink
) -> None:
    server = await start_server(with_timers(router_timeout=0.4, orphan_call_timeout=0.2))
    first = await links(server)
    second = await links(server)
    await first.login("L1")
    await second.login("L2")
    await start_call(first, "C", "3")
    await first.send("C", "<RouteRequest RouteDN='5001'/>")
    await first.close()
    # the router timeout's RouteResponse goes to the remaining session of the IVR
    await expect(second, "C", "<RouteResponse RouteType='Default'/>")
    await asyncio.sleep(0.3)  # longer than the orphan timeout: the call was never orphaned
    info, _ = await call_info(second, "C")
    assert info.LastEvent == "EventEstablished"
    await second.send("C", "<EndCall EndCause='Normal'/>")
    await gone(second, "C")
    assert_no_leaks(server)


# ---------------------------------------------------------------------------------- load


def _udata_set(n: int) -> str:
    return (
        f"<UDataSet Action='Add'><RequestId>s{n}</RequestId>"
        f"<UDataEx><Node Name='n' Type='Int' Val='{n}'/></UDataEx></UDataSet>"
    )


def _expected_call_script(call_id: str, port: int) -> list[bytes]:
    """The exact replies to the pipelined script of :func:`_call_script`, in order."""
    node = f"<UDataEx><Node Name='n' Type='Int' Val='{port}'/></UDataEx>"
    return [
        server_doc(call_id, "<CallStatus Event='Ringing'/>"),
        server_doc(call_id, "<CallStatus Event='Established'/>"),
        server_doc(
            call_id, f"<UDataResp Result='Success'><RequestId>s{port}</RequestId></UDataResp>"
        ),
        server_doc(
            call_id, f"<UDataResp Result='Success'><RequestId>g{port}</RequestId>{node}</UDataResp>"
        ),
        server_doc(
            call_id, f"<UDataResp Result='Success'><RequestId>d{port}</RequestId></UDataResp>"
        ),
        server_doc(
            call_id, f"<UDataResp Result='NoMatch'><RequestId>a{port}</RequestId></UDataResp>"
        ),
        server_doc(call_id, NO_SUCH_CALL),
    ]


def _call_script(call_id: str, port: int) -> list[tuple[str | None, str]]:
    return [
        (call_id, new_call_body(str(port), f"<ANI>{port}</ANI>")),
        (call_id, _udata_set(port)),
        (call_id, f"<UDataGet Keys='n'><RequestId>g{port}</RequestId></UDataGet>"),
        (
            call_id,
            f"<UDataDel Action='DeleteKey' Key='n'><RequestId>d{port}</RequestId></UDataDel>",
        ),
        (call_id, f"<UDataGetAll><RequestId>a{port}</RequestId></UDataGetAll>"),
        (call_id, "<EndCall EndCause='Normal'/>"),
        (call_id, "<CallInfoReq/>"),
    ]


async def _run_interleaved(link: RawLink, calls: list[tuple[str, int]]) -> None:
    """Pipeline the scripts of ``calls`` round-robin in one write; check every reply."""
    scripts = [_call_script(call_id, port) for call_id, port in calls]
    interleaved = [step for steps in zip(*scripts, strict=True) for step in steps]
    await send_many(link, interleaved)
    expected = {call_id: _expected_call_script(call_id, port) for call_id, port in calls}
    got: dict[str, list[bytes]] = {call_id: [] for call_id, _ in calls}
    for _ in range(sum(len(replies) for replies in expected.values())):
        call_id, _, raw = await link.recv_doc(timeout=5.0)
        assert call_id in got
        got[call_id].append(raw)
    assert got == expected  # per-call order preserved


async def test_thirty_calls_interleaved_on_one_connection(
    server: IvrServer, connect: Connect
) -> None:
    link = await connect()
    await link.login("L")
    await _run_interleaved(link, [(f"IVR_1_{port:04d}", port) for port in range(1, 31)])
    await link.expect_silence(0.2)
    assert_no_leaks(server)


async def test_thirty_concurrent_calls_stay_apart(server: IvrServer, connect: Connect) -> None:
    link = await connect()
    await link.login("L")
    await send_many(
        link,
        [(f"K{port}", new_call_body(str(port), f"<ANI>{port}</ANI>")) for port in range(1, 31)],
    )
    events: dict[str, list[bytes]] = {}
    for _ in range(60):
        call_id, _, raw = await link.recv_doc()
        assert call_id is not None
        events.setdefault(call_id, []).append(raw)
    assert events == {
        f"K{port}": [
            server_doc(f"K{port}", "<CallStatus Event='Ringing'/>"),
            server_doc(f"K{port}", "<CallStatus Event='Established'/>"),
        ]
        for port in range(1, 31)
    }
    await send_many(link, [(f"K{port}", "<CallInfoReq/>") for port in range(30, 0, -1)])
    conn_ids = set()
    for port in range(30, 0, -1):
        call_id, info, _ = await link.recv_doc()
        assert call_id == f"K{port}" and isinstance(info, m.CallInfoResp)
        assert (info.ANI, info.CalledNum, info.PortDN) == (str(port), str(port), str(4000 + port))
        conn_ids.add(info.ConnId)
    assert len(conn_ids) == 30
    assert len(list(server.service.switches[SWITCH].view.calls())) == 30
    await send_many(link, [(f"K{port}", "<EndCall EndCause='Normal'/>") for port in range(1, 31)])
    await gone(link, "K30")
    assert_no_leaks(server)


async def test_twenty_connections_with_five_calls_each(
    start_server: StartServer, links: OpenLink
) -> None:
    server = await start_server(many_ports_config(100))
    sessions = [await links(server) for _ in range(20)]
    for n, link in enumerate(sessions):
        await link.login(f"L{n}")

    async def run(n: int, link: RawLink) -> None:
        await _run_interleaved(link, [(f"S{n}C{k}", 5 * n + k) for k in range(1, 6)])

    await asyncio.gather(*(run(n, link) for n, link in enumerate(sessions)))
    for link in sessions:
        await link.expect_silence(0.05)
    assert server.service.calls.completed == 100
    assert_no_leaks(server)


async def test_an_internal_error_is_answered_and_harms_nobody(
    start_server: StartServer, links: OpenLink
) -> None:
    server = await start_server()
    link = await links(server)
    other = await links(server)
    await link.login("L")
    await other.login("L2")
    await start_call(link, "C", "1")
    await start_call(other, "D", "2")

    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    handlers = server.service.calls._handlers
    original = handlers[m.CallInfoReq]
    handlers[m.CallInfoReq] = broken
    try:
        await link.send("C", "<CallInfoReq/>")
        await expect(link, "C", "<CallError FailedReq='Unknown'/>")
    finally:
        handlers[m.CallInfoReq] = original
    assert (await call_info(link, "C"))[0].PortDN == "4001"
    assert (await call_info(other, "D"))[0].PortDN == "4002"
    for lk, cid in ((link, "C"), (other, "D")):
        await lk.send(cid, "<EndCall EndCause='Normal'/>")
        await gone(lk, cid)
    assert_no_leaks(server)
