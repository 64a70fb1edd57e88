"""A hostile PBX (the issue's "Bad input and faults"): a PBX written in the test
(tests/behind/fakepbx.py) lets the server's premise link come up, then sends garbage frames, the
largest and the deepest documents, a DOCTYPE with entities, an unknown document, stray responses,
refuses a request and stops answering. The server logs each, stays up, answers its IVRs (another
session's call is served throughout; the refused and the unanswered agent requests get
``CallError AgentControl`` with the G12 codes 53 and 57), and its link comes back by
reconnecting. Events of a call out of order (Established before Delivered) and twice give the IVR
each CallStatus once, in order."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import MAX_DOCUMENT, encode
from ivr_server.wire.messages import CallError, CallInfoResp, CallStatus
from tests.behind.conftest import (
    CALL_INFO_REQ,
    PORT_DNS,
    Ivr,
    Site,
    behind_config,
    new_call,
    start_server,
    stop_site,
)
from tests.behind.fakepbx import FakePbx

pytestmark = pytest.mark.xdist_group(__name__)  # the module's processes on one worker

NS = b'xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed4"'
INVOKE_TIMEOUT = 1.0


@pytest.fixture
async def pbx() -> AsyncIterator[FakePbx]:
    fake = await FakePbx().start()
    yield fake
    await fake.close()


@pytest.fixture
def site(tmp_path: Path, pbx: FakePbx) -> Iterator[Site]:
    premise = {
        "invoke-timeout": f'"{INVOKE_TIMEOUT}s"',
        "reconnect-initial": '"100ms"',
        "reconnect-max": '"300ms"',
    }
    served = start_server(tmp_path, None, behind_config(tmp_path, pbx.port, premise=premise))
    yield served
    stop_site(served)


async def linked(pbx: FakePbx, connections: int) -> None:
    """The server's ``connections``-th connection has monitored every port DN."""
    await pbx.wait_for(
        f"connection {connections} with every port monitored",
        lambda: pbx.connections >= connections and set(PORT_DNS.values()) <= set(pbx.monitored),
    )


async def still_served(ivr: Ivr) -> None:
    """The other IVR session's call is answered at once (B2: no switch call yet)."""
    info = await ivr.ask("Other", CALL_INFO_REQ, CallInfoResp)
    assert (info.ANI, info.PortDN) == ("5550009", "3003")


async def test_a_hostile_pbx_is_survived(site: Site, pbx: FakePbx) -> None:
    await linked(pbx, 1)
    ivr = await Ivr.linked(site)
    other = await Ivr.linked(site)
    other.send("Other", new_call("3", ani="5550009"))
    await still_served(other)

    # Documents that decode to nothing useful: the link goes on (or reconnects), nothing dies.
    pbx.send_document(b"<<< not xml at all")
    pbx.send_document(b"<FooBarEvent " + NS + b"><x>1</x></FooBarEvent>")
    pbx.send_document(
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 '
        b'"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]><DeliveredEvent '
        + NS
        + b">&lol2;</DeliveredEvent>"
    )
    head, tail = b"<DeliveredEvent " + NS + b"><x>", b"</x></DeliveredEvent>"
    pbx.send_document(head + b"A" * (MAX_DOCUMENT - len(head) - len(tail)) + tail)  # largest
    deep = b"<a>" * 20000 + b"</a>" * 20000
    pbx.send_document(b"<DeliveredEvent " + NS + b">" + deep[:65000] + b"</DeliveredEvent>")
    # A negative response and a positive one to requests never made (invoke ids not pending).
    pbx.send_document(encode(m.CSTAErrorCode(category="operation", value="generic")), 4321)
    pbx.send_document(encode(m.MonitorStartResponse(monitor_cross_ref_id="77")), 4322)
    # An event for a monitor that does not exist.
    pbx.send_document(
        encode(
            m.ConnectionClearedEvent(
                monitor_cross_ref_id="999",
                dropped_connection=m.ConnectionID(call_id="5", device_id="3001"),
            )
        )
    )
    await still_served(other)
    assert site.alive()

    # A negative response: the IVR's agent request fails with the mapped code (G12).
    pbx.refusing["SetAgentState"] = m.CSTAErrorCode(
        category="operation", value="invalidCstaDeviceIdentifier"
    )
    ivr.send(
        ivr.session, "<AgentLogin ReqId='7' PortNum='1' Queue='3085' AgentId='9' Password=''/>"
    )
    refused = await ivr.expect(ivr.session, CallError)
    assert (refused.FailedReq, refused.TlibErrCode, refused.ReqId) == ("AgentControl", "53", "7")
    # A request the PBX never answers: the IVR's agent request fails after the invoke timeout.
    pbx.answering = False
    ivr.send(ivr.session, "<AgentQuery ReqId='8' PortNum='1'/>")
    failed = await ivr.expect(ivr.session, CallError, timeout=INVOKE_TIMEOUT + 4)
    assert (failed.FailedReq, failed.TlibErrCode, failed.ReqId) == ("AgentControl", "57", "8")
    await still_served(other)

    # A broken frame header: the byte stream cannot go on; the server reconnects.
    before = pbx.connections
    pbx.send(b"\x01\x02garbage that is no frame header at all")
    await linked(pbx, before + 1)
    await still_served(other)
    again = await Ivr.linked(site)
    assert again.login.Status == "OK"

    for session in (ivr, other, again):
        await session.client.close()
    assert site.alive()
    log = site.log_text()
    assert "Traceback" not in log
    assert '"WARNING"' in log or '"ERROR"' in log


def event(pbx: FakePbx, message: m.CstaEvent) -> None:
    """``message`` as an unsolicited event on the current connection."""
    pbx.send_document(encode(message))


async def test_duplicate_and_out_of_order_events(site: Site, pbx: FakePbx) -> None:
    await linked(pbx, 1)
    ivr = await Ivr.linked(site)
    xref = pbx.monitored["3001"]
    here = m.ConnectionID(call_id="77", device_id="3001")
    caller = m.ConnectionID(call_id="77", device_id="5550077")
    ivr.send("O1", new_call("1"))
    # Answered before it rang, then the late Delivered, then the Established again.
    established = m.EstablishedEvent(
        monitor_cross_ref_id=xref,
        established_connection=here,
        answering_device="3001",
        calling_device="5550077",
        called_device="3001",
    )
    event(pbx, established)
    event(
        pbx,
        m.DeliveredEvent(
            monitor_cross_ref_id=xref,
            connection=here,
            alerting_device="3001",
            calling_device="5550077",
            called_device="3001",
        ),
    )
    event(pbx, established)
    statuses = [(await ivr.expect("O1", CallStatus)).Event]
    statuses += [(await ivr.expect("O1", CallStatus)).Event] if statuses == ["Ringing"] else []
    assert statuses == ["Ringing", "Established"], statuses
    info = await ivr.ask("O1", CALL_INFO_REQ, CallInfoResp)
    assert (info.ANI, info.PortDN, info.TSCallId) == ("5550077", "3001", "77")
    # The caller's side is cleared twice, the call too: one Released.
    for _ in range(2):
        event(
            pbx,
            m.ConnectionClearedEvent(
                monitor_cross_ref_id=xref, dropped_connection=caller, releasing_device="5550077"
            ),
        )
        event(pbx, m.CallClearedEvent(monitor_cross_ref_id=xref, cleared_call=here))
    assert (await ivr.expect("O1", CallStatus)).Event == "Released"
    await ivr.nothing(0.5)
    await ivr.client.close()
    assert site.alive() and "Traceback" not in site.log_text()
