"""Behind-mode calls end to end: the simulator delivers calls to the IVR's port DNs over CSTA and
the server turns them into the IVR XML the real site's driver saw (MODES-AND-HA §1.2 rows B1, B2,
B12-B15): the README's flow, events that arrive before the NewCall, the caller hanging up,
requests before Ringing, and wait-for-ringing. One simulator and one server for the module, with
a short wait-for-ringing; each test uses its own IVR port."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator

import pytest

from ivr_server.wire.messages import (
    CallError,
    CallInfoResp,
    CallStatus,
    EndCall,
    RouteResponse,
    UDataResp,
)
from tests.behind.conftest import (
    CALL_INFO_REQ,
    END_CALL,
    ROUTED_TO,
    Ivr,
    Site,
    cleared,
    new_call,
    nodes,
    ringing_then_established,
    route_request,
    running_site,
    udata_get,
    udata_set,
    wait_until,
)

pytestmark = pytest.mark.xdist_group(__name__)  # the module's processes on one worker

WAIT_FOR_RINGING = 1.5
"""Seconds (the site's 1 min, shortened) a NewCall waits for the PBX to ring the port."""

Open = Callable[..., Awaitable[Ivr]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    timers = {"wait-for-ringing": f"{WAIT_FOR_RINGING}s"}
    with running_site(tmp_path_factory.mktemp("calls"), timers=timers) as running:
        yield running


async def test_the_readme_flow(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    assert ivr.login.Status == "OK"
    ivr.send("R1", new_call("1", dnis="*3001", ani="5550000"))
    await ivr.nothing(0.3)  # nothing until the PBX rings the port

    call = site.sim.deliver("5551234", "3001", dnis="8800")
    await ringing_then_established(ivr, "R1")

    info = await ivr.ask("R1", CALL_INFO_REQ, CallInfoResp)
    assert info.ANI == "5551234"  # the switch's, not the NewCall's
    assert info.DNIS == "8800"  # the number dialled, from the switch (not the *3001 sent)
    assert info.PortDN == "3001" and info.CalledNum == "1"
    assert info.ConnId is not None and re.fullmatch("[0-9a-f]{16}", info.ConnId), info
    assert info.TSCallId is not None and info.TSCallId.isdigit(), info
    assert info.OtherDN == "5551234", info
    assert info.LastEvent, info

    done = await ivr.ask("R1", udata_set("1", Lang="fr", Account="42"), UDataResp)
    assert (done.Result, done.RequestId) == ("Success", "1")
    got = await ivr.ask("R1", udata_get("2", "Lang", "Account"), UDataResp)
    assert got.Result == "Success" and nodes(got.UDataEx) == {"Lang": "fr", "Account": "42"}

    routed = await ivr.ask("R1", route_request("4200"), RouteResponse)
    assert (routed.RouteType, routed.Dest) == ("Normal", ROUTED_TO)

    assert not cleared(site, call)
    ivr.send("R1", END_CALL)
    wait_until("the simulator to clear the call after EndCall", lambda: cleared(site, call), 5)
    await ivr.nothing(0.2)  # EndCall is never answered


async def test_a_call_delivered_before_the_newcall_rings_right_after_it(
    site: Site, ivrs: Open
) -> None:
    ivr = await ivrs()
    call = site.sim.deliver("5552222", "3002", queue="3085")  # through the site's ACD queue
    await ivr.nothing(0.3)  # no IVR call yet: the events wait at the port DN
    ivr.send("D1", new_call("2"))
    await ringing_then_established(ivr, "D1")
    info = await ivr.ask("D1", CALL_INFO_REQ, CallInfoResp)
    assert (info.ANI, info.PortDN, info.PortQueue) == ("5552222", "3002", "3085")
    ivr.send("D1", END_CALL)
    wait_until("the call cleared", lambda: cleared(site, call), 5)


async def test_the_caller_hangs_up(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    ivr.send("H1", new_call("3"))
    call = site.sim.deliver("5553333", "3003")
    await ringing_then_established(ivr, "H1")
    site.sim.hangup(call)
    released = await ivr.expect("H1", CallStatus)
    assert released.Event == "Released"
    # The call's context stays until the driver's EndCall, which gets no answer.
    info = await ivr.ask("H1", CALL_INFO_REQ, CallInfoResp)
    assert info.ANI == "5553333"
    ivr.send("H1", END_CALL)
    await ivr.nothing(0.3)
    gone = await ivr.ask("H1", CALL_INFO_REQ, CallError)
    assert gone.FailedReq == "NoSuchCall"


async def test_requests_before_ringing_are_answered_as_the_real_server_did(
    site: Site, ivrs: Open
) -> None:
    ivr = await ivrs()
    ivr.send("B1", new_call("1", dnis="*3001", ani="5550001"))
    info = await ivr.ask("B1", CALL_INFO_REQ, CallInfoResp)
    # Partial: what the NewCall said, and the port's DN; nothing from a switch call yet.
    assert (info.ANI, info.DNIS, info.CalledNum, info.PortDN) == ("5550001", "*3001", "1", "3001")
    assert info.ConnId is None and info.TSCallId is None and info.OtherDN is None
    nothing = await ivr.ask("B1", udata_get("7", "Lang"), UDataResp)
    assert (nothing.Result, nothing.RequestId) == ("NoMatch", "7")
    refused = await ivr.ask("B1", udata_set("8", Lang="fr"), UDataResp)
    assert (refused.Result, refused.RequestId) == ("MiscError", "8")
    route = await ivr.ask("B1", route_request("4200"), CallError)
    assert (route.FailedReq, route.TlibErrCode) == ("Unknown", "INVALID_REQ")
    xfer = await ivr.ask("B1", '<OneStepXfer DestDN="3081"></OneStepXfer>', CallError)
    assert (xfer.FailedReq, xfer.TlibErrCode) == ("Unknown", "BLOCKED_REQ")
    # The call still rings when the PBX delivers it.
    call = site.sim.deliver("5551111", "3001")
    await ringing_then_established(ivr, "B1")
    ivr.send("B1", END_CALL)
    wait_until("the call cleared", lambda: cleared(site, call), 5)


async def test_no_ringing_within_wait_for_ringing_ends_the_call(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    ivr.send("W1", new_call("2"))
    await ivr.nothing(WAIT_FOR_RINGING * 0.6)
    ended = await ivr.expect("W1", EndCall, timeout=WAIT_FOR_RINGING * 2 + 2)
    assert ended.EndCause == "Timeout"
    gone = await ivr.ask("W1", CALL_INFO_REQ, CallError)  # forgotten
    assert gone.FailedReq == "NoSuchCall"
