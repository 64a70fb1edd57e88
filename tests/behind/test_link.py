"""The premise link drops mid-call and comes back (MODES-AND-HA G13, rows B16-B17): calls and
their user data are kept, ``ServerMonitor`` sessions see ``Server Unavailable`` then ``OK``, a
login while down says ``InitInProgress``, agent control and call control answer ``LINK_DOWN``,
and after the reconnect the resync (SnapshotDevice per port DN) releases the calls that ended
meanwhile and rings the IVR for a call delivered meanwhile. The link's back-off is shortened."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator

import pytest

from ivr_server.wire.messages import CallError, CallInfoResp, CallStatus, EndCall, UDataResp
from tests.behind.conftest import (
    CALL_INFO_REQ,
    END_CALL,
    Ivr,
    Site,
    cleared,
    new_call,
    nodes,
    ringing_then_established,
    running_site,
    udata_get,
    udata_set,
    wait_until,
)

pytestmark = pytest.mark.xdist_group(__name__)  # the module's processes on one worker

DOWN_FOR = 2.0
"""Seconds the simulator refuses the server's reconnects after dropping the link."""

Open = Callable[..., Awaitable[Ivr]]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    premise = {"reconnect-initial": '"200ms"', "reconnect-max": '"500ms"'}
    with running_site(tmp_path_factory.mktemp("link"), premise=premise) as running:
        yield running


async def test_a_link_drop_keeps_the_calls_and_resyncs(site: Site, ivrs: Open) -> None:
    ivr = await ivrs(monitor=True)
    ivr.send("K1", new_call("1"))
    kept = site.sim.deliver("5551001", "3001")
    await ringing_then_established(ivr, "K1")
    assert (await ivr.ask("K1", udata_set("1", Case="A-17"), UDataResp)).Result == "Success"
    before = await ivr.ask("K1", CALL_INFO_REQ, CallInfoResp)
    ivr.send("K2", new_call("2"))
    hung_up = site.sim.deliver("5551002", "3002")
    await ringing_then_established(ivr, "K2")

    site.sim.drop_link(DOWN_FOR)
    await ivr.server_status("Unavailable")

    # While down: the call and its data are still there, call and agent control say LINK_DOWN.
    assert await ivr.ask("K1", CALL_INFO_REQ, CallInfoResp) == before
    got = await ivr.ask("K1", udata_get("2", "Case"), UDataResp)
    assert nodes(got.UDataEx) == {"Case": "A-17"}
    xfer = await ivr.ask("K1", '<OneStepXfer DestDN="3081"></OneStepXfer>', CallError)
    assert (xfer.FailedReq, xfer.TlibErrCode) == ("OneStepXfer", "LINK_DOWN")
    agent = await ivr.ask(ivr.session, "<AgentQuery ReqId='31' PortNum='1'/>", CallError)
    assert (agent.FailedReq, agent.TlibErrCode, agent.ReqId) == ("AgentControl", "LINK_DOWN", "31")
    late = await ivrs(linked=False)
    assert late.login.Status == "InitInProgress"
    # A new call is offered again later (docs/behind.md: as under flow control).
    paused = await ivr.ask("K3", new_call("3"), EndCall)
    assert paused.EndCause == "ServerPaused"
    # The caller of K2 hangs up and a new call reaches port 3 while the server cannot see it.
    site.sim.hangup(hung_up)
    fresh = site.sim.deliver("5551003", "3003")

    await ivr.server_status("OK", timeout=DOWN_FOR + 8)
    released = await ivr.expect("K2", CallStatus)
    assert released.Event == "Released"
    # The resync found the new call at 3003 and keeps it for the port's NewCall.
    statuses = [(await ivr.ask("K4", new_call("3"), CallStatus)).Event]
    if statuses[0] == "Ringing":  # the call was answered before the resync saw it
        statuses.append((await ivr.expect("K4", CallStatus)).Event)
    assert statuses == ["Ringing", "Established"], statuses
    info = await ivr.ask("K4", CALL_INFO_REQ, CallInfoResp)
    # SnapshotDevice names the call and its state at the port, not the caller: no ANI.
    assert info.PortDN == "3003" and info.ConnId and info.ConnId != before.ConnId, info

    # K1 lived through it all, same identity, same data; EndCall still clears it at the PBX.
    assert (await ivr.ask("K1", CALL_INFO_REQ, CallInfoResp)).ConnId == before.ConnId
    got = await ivr.ask("K1", udata_get("3", "Case"), UDataResp)
    assert nodes(got.UDataEx) == {"Case": "A-17"}
    ivr.send("K1", END_CALL)
    ivr.send("K4", END_CALL)
    wait_until("K1 and K4 cleared at the PBX", lambda: cleared(site, kept) and cleared(site, fresh))
    ivr.send("K2", END_CALL)
    await ivr.nothing(0.3)
    assert "Traceback" not in site.log_text()
