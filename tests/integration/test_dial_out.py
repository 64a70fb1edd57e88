"""Outbound dialling over TCP: DialOutRegistry, DialOut, DialOutError, DialOutInit and the
outbound call's life (PROTOCOL.md §3.10, §6.5.7), driven by a requester in the test through
``IvrService.dial_out`` (the API's predictive-call endpoint uses the same door)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from ivr_server.config import default_config
from ivr_server.outbound import DialOutOutcome, DialOutRequest
from ivr_server.runtime import IvrServer
from ivr_server.wire import Node
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink, server_doc

StartServer = Callable[..., Awaitable[IvrServer]]
DN = "5000"


class Requester:
    """Collects the outcomes of predictive-call requests."""

    def __init__(self) -> None:
        self.outcomes: list[DialOutOutcome] = []

    def __call__(self, request: DialOutRequest, outcome: DialOutOutcome) -> None:
        self.outcomes.append(outcome)

    def kinds(self) -> list[str]:
        return [o.kind for o in self.outcomes]


async def registered(server: IvrServer) -> RawLink:
    link = await RawLink.open(server.port)
    await link.login("L")
    await link.send("L", f"<DialOutRegistry Command='Add' DN='{DN}'/>")
    _, resp, _ = await link.recv_doc()
    assert resp == m.DialOutRegistryResp(Result="Success")
    return link


def dial(server: IvrServer, requester: Requester, timeout: float = 5.0) -> DialOutRequest:
    request = server.service.dial_out(
        requester,
        DN,
        "5551234",
        timeout=timeout,
        user_data=(Node(Name="Campaign", Type="Str", Val="C7"),),
    )
    assert request is not None
    server.flush()
    return request


async def test_registry_answers(start_server: StartServer) -> None:
    server = await start_server()
    link = await RawLink.open(server.port)
    await link.login("L")
    for body, result in (
        ("<DialOutRegistry Command='Add' DN='5000'/>", "Success"),
        ("<DialOutRegistry Command='Add' DN='4001'/>", "ConfigError"),  # a port, not an RP
        ("<DialOutRegistry Command='Add' DN='9999'/>", "ConfigError"),  # unknown
        ("<DialOutRegistry Command='Remove' DN='5000'/>", "Success"),
        ("<DialOutRegistry Command='RemoveAll'/>", "Success"),
    ):
        await link.send("L", body)
        _, resp, _ = await link.recv_doc()
        assert resp == m.DialOutRegistryResp(Result=result)  # type: ignore[arg-type]
    assert server.service.dial_out(Requester(), DN, "1") is None  # nobody registered now
    await link.close()


async def test_predictive_call_is_dialled_answered_and_ended(start_server: StartServer) -> None:
    server = await start_server()
    link = await registered(server)
    requester = Requester()
    request = dial(server, requester)
    got_id, message, raw = await link.recv_doc()
    assert got_id is None  # DialOut is a form-B document: no CallId
    assert message == m.DialOut(
        RefID=request.ref_id,
        OrigNum=DN,
        DestNum="5551234",
        TimeToAnswer="5",
        UDataEx=(Node(Name="Campaign", Type="Str", Val="C7"),),
    )
    assert b"<CallId>" not in raw
    await link.send(
        "OUT1", f"<DialOutInit RefID='{request.ref_id}'><CalledNum>3</CalledNum></DialOutInit>"
    )
    assert (await link.recv_doc())[2] == server_doc("OUT1", "<CallStatus Event='Dialing'/>")
    await link.send("OUT1", "<CallStatus Event='Established'/>")
    assert (await link.recv_doc())[2] == server_doc("OUT1", "<CallStatus Event='Ringing'/>")
    assert (await link.recv_doc())[2] == server_doc("OUT1", "<CallStatus Event='Established'/>")
    assert requester.kinds() == ["dialing", "established"]
    # a normal call from now on: the campaign's data is on it
    await link.send("OUT1", "<UDataGet Keys='Campaign'><RequestId>1</RequestId></UDataGet>")
    _, got, _ = await link.recv_doc()
    assert got == m.UDataResp(
        Result="Success", RequestId="1", UDataEx=(Node(Name="Campaign", Type="Str", Val="C7"),)
    )
    await link.send("OUT1", "<CallInfoReq/>")
    _, info, _ = await link.recv_doc()
    assert isinstance(info, m.CallInfoResp) and info.PortDN == "4003" and info.CalledNum == "3"
    await link.send("OUT1", "<EndCall EndCause='Normal'/>")
    await link.send("OUT1", "<CallInfoReq/>")
    assert (await link.recv_doc())[1] == m.CallError(FailedReq="NoSuchCall")
    assert requester.kinds() == ["dialing", "established", "ended"]
    assert server.service.outbound.pending_count() == 0
    assert server.service.calls.calls == {}
    await link.close()


async def test_refused_dial_out_is_reported_with_the_mapped_error(
    start_server: StartServer,
) -> None:
    server = await start_server()
    link = await registered(server)
    for error, code in (("NotSupported", 51), ("NoTrunks", 58), ("MiscError", 100)):
        requester = Requester()
        request = dial(server, requester)
        await link.recv_doc()
        await link.send(None, f"<DialOutError Error='{error}' RefID='{request.ref_id}'/>")
        await link.send("L", "<DialOutRegistry Command='Add' DN='5000'/>")  # a known answer
        assert (await link.recv_doc())[1] == m.DialOutRegistryResp(Result="Success")
        assert [(o.kind, o.error_code) for o in requester.outcomes] == [("refused", code)]
    assert server.service.outbound.pending_count() == 0
    await link.close()


async def test_failed_dial_ends_the_call(start_server: StartServer) -> None:
    server = await start_server()
    link = await registered(server)
    requester = Requester()
    request = dial(server, requester)
    await link.recv_doc()
    await link.send(
        "OUT2", f"<DialOutInit RefID='{request.ref_id}'><CalledNum>2</CalledNum></DialOutInit>"
    )
    await link.recv_doc()  # Dialing
    await link.send("OUT2", "<Failure FailureCause='NoAnswer'/>")
    await link.send("OUT2", "<CallInfoReq/>")
    assert (await link.recv_doc())[1] == m.CallError(FailedReq="NoSuchCall")
    assert [(o.kind, o.cause) for o in requester.outcomes] == [
        ("dialing", None),
        ("failed", "NoAnswer"),
    ]
    assert list(server.service.switches["SW_InFront"].view.calls()) == []
    await link.close()


async def test_timeout_then_a_late_dial_out_init_gets_end_call(start_server: StartServer) -> None:
    server = await start_server()
    link = await registered(server)
    requester = Requester()
    request = dial(server, requester, timeout=0.3)
    await link.recv_doc()
    await asyncio.sleep(0.5)
    assert [(o.kind, o.error_code) for o in requester.outcomes] == [("timeout", 100)]
    await link.send(
        "LATE", f"<DialOutInit RefID='{request.ref_id}'><CalledNum>1</CalledNum></DialOutInit>"
    )
    assert (await link.recv_doc())[2] == server_doc(
        "LATE", "<EndCall EndCause='FeatureNotSupported'/>"
    )
    assert server.service.calls.calls == {}
    await link.close()


async def test_dial_out_init_for_a_bad_port_or_unknown_ref(start_server: StartServer) -> None:
    server = await start_server()
    link = await registered(server)
    await link.send("X1", "<DialOutInit RefID='424242'><CalledNum>1</CalledNum></DialOutInit>")
    assert (await link.recv_doc())[2] == server_doc(
        "X1", "<EndCall EndCause='FeatureNotSupported'/>"
    )
    requester = Requester()
    request = dial(server, requester)
    await link.recv_doc()
    await link.send(
        "X2", f"<DialOutInit RefID='{request.ref_id}'><CalledNum>99</CalledNum></DialOutInit>"
    )
    assert (await link.recv_doc())[2] == server_doc(
        "X2", "<EndCall EndCause='FeatureNotSupported'/>"
    )
    assert requester.kinds() == ["failed"]
    await link.close()


async def test_session_closing_fails_its_pending_dial_outs(start_server: StartServer) -> None:
    server = await start_server(default_config())
    link = await registered(server)
    requester = Requester()
    dial(server, requester)
    await link.recv_doc()
    await link.close()
    for _ in range(50):
        if requester.outcomes:
            break
        await asyncio.sleep(0.02)
    assert requester.kinds() == ["lost"]
    assert server.service.outbound.registered(DN) == []
