"""Call control end to end in Behind mode (MODES-AND-HA §1.2 rows B4-B11, decisions G2, G5, G6,
G10, G12, G13): the IVR's OneStepXfer, InitXfer, CompleteXfer, InitConf, CompleteConf,
OneStepConf, RetrieveCall and MakeCall through the server to the CSTA simulator and back, with
the exact ``CallStatus`` sequences the real driver waits for; refusals after a delay, busy and
unanswered destinations, each party hanging up, requests twice or in the wrong state, the link
dropping mid-consultation, and what an agent desktop reads on the server's API afterwards.

One simulator and one server for the module. The agents' extensions play fixed roles, set once
(:data:`ANSWERS`, :data:`BUSY`, :data:`SILENT`, :data:`RINGS`); after each test every call the
simulator still has is hung up, so each test starts from idle DNs. The link-drop test runs last.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from ivr_server.api import TOKEN_ENV
from ivr_server.wire.messages import CallError, CallInfoResp, CallStatus, UDataResp
from tests.apihttp import http
from tests.behind.conftest import (
    CALL_INFO_REQ,
    END_CALL,
    IVR,
    PORT_DNS,
    Ivr,
    Site,
    cleared,
    new_call,
    ringing_then_established,
    running_site,
    udata_set,
    wait_until,
)

pytestmark = pytest.mark.xdist_group(__name__)  # the module's processes on one worker

Open = Callable[..., Awaitable[Ivr]]

TOKEN = "transfers-t0ken"
ANSWERS = "3081"
"""An agent who answers a call 0.1 s after it rings."""
BUSY = "3082"
"""A busy extension."""
SILENT = "3083"
"""An extension that rings and is never answered."""
RINGS = "3084"
"""An extension that rings until the test answers it (the simulator's default)."""
SECOND = "3006"
"""Another extension that answers after 0.1 s (a conference's third party)."""
MAKE_CALL_TIMEOUT = 1.0
"""Seconds (the default 60 s, shortened) an unanswered MakeCall waits (G10)."""
REFUSED_AFTER = 4.2
"""Seconds the real site's PBX took to refuse a single-step transfer (W LOG -028…-034)."""
DOWN_FOR = 1.0
"""Seconds the simulator refuses the server's reconnects after dropping the link."""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    timers = {"make-call-timeout": f"{MAKE_CALL_TIMEOUT}s"}
    premise = {"reconnect-initial": '"200ms"', "reconnect-max": '"500ms"'}
    with pytest.MonkeyPatch.context() as env:
        env.setenv(TOKEN_ENV, TOKEN)  # the server's API token (call details need it)
        with running_site(
            tmp_path_factory.mktemp("transfers"), timers=timers, premise=premise
        ) as running:
            sim = running.sim
            for dn in (ANSWERS, SECOND):
                sim.api("PUT", f"dns/{dn}", {"answer_delay": 0.1}, ok=(200,))
            sim.api("PUT", f"dns/{BUSY}", {"busy": True}, ok=(200,))
            sim.api("PUT", f"dns/{SILENT}", {"no_answer": True}, ok=(200,))
            yield running


@pytest.fixture(autouse=True)
def idle_site(site: Site) -> Iterator[None]:
    """After the test (passed or not): every call the simulator still has is hung up and every
    IVR port's call ended on the server, so that a failure does not spill into the next test."""
    yield
    for call in live_calls(site):
        http("POST", f"http://127.0.0.1:{site.sim.api_port}/api/v1/calls/{call['id']}/hangup", {})
    for port in PORT_DNS:
        url = f"http://127.0.0.1:{site.api_port}/api/v1/ivrs/{IVR}/ports/{port}/end-call"
        request = urllib.request.Request(url, data=b"{}", method="POST")
        request.add_header("Authorization", f"Bearer {TOKEN}")
        request.add_header("Content-Type", "application/json")
        with (
            contextlib.suppress(urllib.error.HTTPError),
            urllib.request.urlopen(request, timeout=5),
        ):
            pass  # 409: the port has no call


# --------------------------------------------------------------------------- helpers


def live_calls(site: Site) -> list[dict[str, Any]]:
    answer = site.sim.api("GET", "calls", ok=(200,))
    return [c for c in answer["calls"] if c["state"] in ("alerting", "connected", "held")]


def calls_at(site: Site, dn: str) -> list[dict[str, Any]]:
    """The simulator's live calls that ``dn`` is a party of."""
    return [c for c in live_calls(site) if dn in c.get("parties", ()) or c.get("to") == dn]


def kv(user_data: list[dict[str, Any]]) -> dict[str, Any]:
    """The API's user data (a list of nodes) by key."""
    return {item["name"]: item["value"] for item in user_data}


def server_api(site: Site, path: str) -> tuple[int, Any]:
    """``GET /api/v1/PATH`` on the server, with the token."""
    url = f"http://127.0.0.1:{site.api_port}/api/v1/{path}?access_token={TOKEN}"
    return http("GET", url)


async def connected(ivr: Ivr, site: Site, call_id: str, port: str, ani: str) -> str:
    """A call from ``ani`` on IVR port ``port`` up to Established; the simulator's call id."""
    ivr.send(call_id, new_call(port))
    call = site.sim.deliver(ani, f"300{port}")
    await ringing_then_established(ivr, call_id)
    return call


async def statuses(ivr: Ivr, call_id: str, count: int, timeout: float = 5.0) -> list[str]:
    """The next ``count`` CallStatus events of ``call_id``."""
    return [(await ivr.expect(call_id, CallStatus, timeout)).Event for _ in range(count)]


async def refused(ivr: Ivr, call_id: str, body: str, timeout: float = 5.0) -> tuple[str, str]:
    """Send ``body``; the (FailedReq, TlibErrCode) of the CallError that answers it."""
    ivr.send(call_id, body)
    error = await ivr.expect(call_id, CallError, timeout)
    return error.FailedReq, str(error.TlibErrCode)


async def end(ivr: Ivr, call_id: str, site: Site | None = None, call: str = "") -> None:
    """EndCall; afterwards the server has forgotten the call (and, given the ``site`` and the
    simulator's ``call``, the PBX cleared that call)."""
    ivr.send(call_id, END_CALL)
    gone = await ivr.ask(call_id, CALL_INFO_REQ, CallError)
    assert gone.FailedReq == "NoSuchCall"
    if site is not None:
        wait_until("the PBX to clear the call after EndCall", lambda: cleared(site, call), 5)


async def consulting(
    ivr: Ivr, site: Site, call_id: str, port: str, ani: str, request: str = "InitXfer"
) -> str:
    """A call on ``port`` in consultation with the agent who answers (:data:`ANSWERS`): Held,
    Dialing, Established; the simulator's id of the original call."""
    call = await connected(ivr, site, call_id, port, ani)
    ivr.send(call_id, xml(request, ANSWERS))
    assert await statuses(ivr, call_id, 3) == ["Held", "Dialing", "Established"]
    return call


def xml(request: str, dest: str | None = None, **udata: str) -> str:
    """A call-control request as the driver writes it (``DestDN``/``UDataEx`` when given)."""
    attrs = "" if dest is None else f' DestDN="{dest}"'
    kv = "".join(f'<Node Name="{k}" Type="Str" Val="{v}"/>' for k, v in udata.items())
    return f"<{request}{attrs}>{f'<UDataEx>{kv}</UDataEx>' if kv else ''}</{request}>"


# --------------------------------------------------------------------------- B5: single step


async def test_one_step_transfer_hands_the_call_and_its_data_to_the_agent(
    site: Site, ivrs: Open
) -> None:
    ivr = await ivrs()
    call = await connected(ivr, site, "X1", "1", "5551001")
    assert (await ivr.ask("X1", udata_set("1", Lang="fr"), UDataResp)).Result == "Success"
    info = await ivr.ask("X1", CALL_INFO_REQ, CallInfoResp)
    http = aiohttp.ClientSession()
    desktop = await http.ws_connect(  # the agent desktop watches its extension (a DN of ours)
        f"ws://127.0.0.1:{site.api_port}/api/v1/events?dn={RINGS}&type=EventRinging",
        headers={"Authorization": f"Bearer {TOKEN}"},
    )

    ivr.send("X1", xml("OneStepXfer", RINGS, Case="A-17"))
    assert await statuses(ivr, "X1", 1) == ["XferComplete"]
    ringing = json.loads((await desktop.receive(5.0)).data)
    await http.close()
    assert (ringing["dn"], ringing["conn_id"], ringing["ani"]) == (RINGS, info.ConnId, "5551001")
    assert kv(ringing["user_data"]) == {"Lang": "fr", "Case": "A-17"}, ringing
    # The PBX: the caller's call left the port and rings at the agent's extension.
    wait_until("the call to ring at the agent", lambda: bool(calls_at(site, RINGS)), 5)
    (at_agent,) = calls_at(site, RINGS)
    assert "3001" not in at_agent["parties"] and "5551001" in at_agent["parties"], at_agent

    # The call's view on the API until EndCall: the same ConnId and data.
    status, seen = server_api(site, "calls/X1")
    assert status == 200, seen
    assert seen["conn_id"] == info.ConnId
    assert kv(seen["user_data"]) == {"Lang": "fr", "Case": "A-17"}, seen

    await end(ivr, "X1")  # the driver's EndCall does not clear the transferred call
    await ivr.nothing(0.3)
    assert [c["id"] for c in calls_at(site, RINGS)] == [at_agent["id"]]
    assert not calls_at(site, "3001") and (call == at_agent["id"] or cleared(site, call))
    answered = site.sim.api("POST", f"calls/{at_agent['id']}/answer", {}, ok=(200,))
    assert answered["state"] == "connected", answered


async def test_a_refused_one_step_transfer_leaves_the_call_on_the_port(
    site: Site, ivrs: Open
) -> None:
    ivr = await ivrs()
    call = await connected(ivr, site, "X2", "2", "5551002")
    rule = {"request": "SingleStepTransferCall", "error": "invalidDestination"}
    site.sim.api("POST", "refusals", {**rule, "delay": REFUSED_AFTER}, ok=(200, 201))
    started = time.monotonic()
    answer = await refused(ivr, "X2", xml("OneStepXfer", RINGS), timeout=REFUSED_AFTER + 5)
    assert answer == ("OneStepXfer", "71")  # TERR_INV_CALD_DN (G12)
    assert time.monotonic() - started >= REFUSED_AFTER - 0.1  # no timer of ours fired first
    # Still on the port, at the PBX too; nothing rings at the destination.
    info = await ivr.ask("X2", CALL_INFO_REQ, CallInfoResp)
    assert info.PortDN == "3002" and info.ANI == "5551002"
    assert site.sim.call(call)["state"] == "connected" and not calls_at(site, RINGS)

    # Why did it fail? The call's timeline says so, with the PBX's own error (G12).
    status, timeline = server_api(site, "calls/X2/timeline")
    assert status == 200, timeline
    errors = [e for e in timeline["entries"] if e["kind"] == "error"]
    switch_error = next(e["error"] for e in errors if e["name"] == "EventError")
    assert switch_error["name"] == "TERR_INV_CALD_DN" and switch_error["explanation"], errors
    assert "invalidDestination" in (switch_error["switch_text"] or ""), errors
    reply = next(e["error"] for e in errors if e["name"] == "CallError")
    assert (reply["request"], reply["code"], reply["name"]) == (
        "OneStepXfer",
        "71",
        "TERR_INV_CALD_DN",
    )

    # The port still transfers: the next attempt succeeds.
    ivr.send("X2", xml("OneStepXfer", RINGS))
    assert await statuses(ivr, "X2", 1) == ["XferComplete"]
    await end(ivr, "X2")


# --------------------------------------------------------------------------- B6, B8, B11


async def test_consultation_transfer_answered_then_completed(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    await connected(ivr, site, "C1", "1", "5551003")
    ivr.send("C1", xml("InitXfer", ANSWERS, Reason="billing"))
    assert await statuses(ivr, "C1", 3) == ["Held", "Dialing", "Established"]
    ivr.send("C1", "<CompleteXfer></CompleteXfer>")
    assert await statuses(ivr, "C1", 1) == ["XferComplete"]
    await end(ivr, "C1")
    # The caller now talks to the agent; the port is out of it.
    (joined,) = calls_at(site, ANSWERS)
    assert "5551003" in joined["parties"] and "3001" not in joined["parties"], joined
    assert not calls_at(site, "3001")


async def test_busy_and_unknown_destinations_then_retrieve(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    call = await connected(ivr, site, "C2", "2", "5551004")
    # A single-step transfer to a busy or unknown DN fails; the call stays on the port.
    assert await refused(ivr, "C2", xml("OneStepXfer", BUSY)) == ("OneStepXfer", "166")
    assert await refused(ivr, "C2", xml("OneStepXfer", "9999")) == ("OneStepXfer", "71")
    assert (await ivr.ask("C2", CALL_INFO_REQ, CallInfoResp)).PortDN == "3002"
    ivr.send("C2", xml("InitXfer", BUSY))
    assert await statuses(ivr, "C2", 3) == ["Held", "Dialing", "Busy"]
    ivr.send("C2", "<RetrieveCall></RetrieveCall>")
    assert await statuses(ivr, "C2", 1) == ["Retrieved"]
    # Back to where it was: no consultation left, so CompleteXfer is blocked.
    assert await refused(ivr, "C2", "<CompleteXfer></CompleteXfer>") == (
        "CompleteXfer",
        "BLOCKED_REQ",
    )
    assert site.sim.call(call)["state"] == "connected"
    assert calls_at(site, "3002") == [site.sim.call(call)]
    await end(ivr, "C2", site, call)


async def test_an_unanswered_consultation_then_retrieve(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    call = await connected(ivr, site, "C3", "3", "5551005")
    ivr.send("C3", xml("InitXfer", SILENT))
    assert await statuses(ivr, "C3", 2) == ["Held", "Dialing"]
    await ivr.nothing(0.5)  # ringing at the far end is no CallStatus (G3)
    assert calls_at(site, SILENT)
    ivr.send("C3", "<RetrieveCall></RetrieveCall>")
    assert await statuses(ivr, "C3", 1) == ["Retrieved"]
    wait_until("the consultation released", lambda: not calls_at(site, SILENT), 5)

    # Again, and the held caller hangs up while the consultation rings (G6).
    ivr.send("C3", xml("InitXfer", SILENT))
    assert await statuses(ivr, "C3", 2) == ["Held", "Dialing"]
    site.sim.hangup(call)
    assert await statuses(ivr, "C3", 1) == ["Released"]
    assert calls_at(site, SILENT)  # until EndCall
    await end(ivr, "C3")
    wait_until("EndCall to release the consultation", lambda: not calls_at(site, SILENT), 5)


# --------------------------------------------------------------------------- B7, B9, B10


async def test_consultation_conference_then_the_agent_leaves(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    call = await consulting(ivr, site, "F1", "1", "5551006", "InitConf")
    ivr.send("F1", "<CompleteConf></CompleteConf>")
    assert await statuses(ivr, "F1", 2) == ["Retrieved", "ConfPartyAdd"]
    (conference,) = calls_at(site, ANSWERS)
    assert {"5551006", "3001", ANSWERS} <= set(conference["parties"]), conference
    site.sim.api("POST", f"calls/{conference['id']}/hangup", {"party": ANSWERS}, ok=(200,))
    assert await statuses(ivr, "F1", 1) == ["ConfPartyDel"]
    # Caller and port remain (G8): a new consultation is allowed again.
    ivr.send("F1", xml("InitXfer", BUSY))
    assert await statuses(ivr, "F1", 3) == ["Held", "Dialing", "Busy"]
    ivr.send("F1", "<RetrieveCall></RetrieveCall>")
    assert await statuses(ivr, "F1", 1) == ["Retrieved"]
    await end(ivr, "F1", site, call)


async def test_single_step_conference_then_the_party_leaves(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    call = await connected(ivr, site, "F2", "2", "5551007")
    ivr.send("F2", xml("OneStepConf", SECOND))
    assert await statuses(ivr, "F2", 1) == ["ConfPartyAdd"]
    wait_until("the party in the call", lambda: bool(calls_at(site, SECOND)), 5)
    site.sim.api("POST", f"calls/{call}/hangup", {"party": SECOND}, ok=(200,))
    assert await statuses(ivr, "F2", 1) == ["ConfPartyDel"]
    assert site.sim.call(call)["state"] == "connected"  # the caller is still with the IVR
    await end(ivr, "F2", site, call)


async def test_complete_conference_after_an_init_transfer(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    await consulting(ivr, site, "F3", "3", "5551008")
    ivr.send("F3", "<CompleteConf></CompleteConf>")  # G9: accepted
    assert await statuses(ivr, "F3", 2) == ["Retrieved", "ConfPartyAdd"]
    await end(ivr, "F3")


# --------------------------------------------------------------------------- G5, G6


async def test_the_consulted_agent_hangs_up_and_the_server_retrieves(
    site: Site, ivrs: Open
) -> None:
    ivr = await ivrs()
    call = await consulting(ivr, site, "G5", "1", "5551009")
    (consultation,) = calls_at(site, ANSWERS)
    site.sim.api("POST", f"calls/{consultation['id']}/hangup", {"party": ANSWERS}, ok=(200,))
    assert await statuses(ivr, "G5", 1) == ["Retrieved"]
    assert site.sim.call(call)["state"] == "connected"  # the caller is back with the IVR
    assert await refused(ivr, "G5", "<CompleteXfer></CompleteXfer>") == (
        "CompleteXfer",
        "BLOCKED_REQ",
    )
    await end(ivr, "G5", site, call)


async def test_the_held_caller_hangs_up_during_a_consultation(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    call = await consulting(ivr, site, "G6", "2", "5551010")
    site.sim.hangup(call)
    assert await statuses(ivr, "G6", 1) == ["Released"]
    assert calls_at(site, ANSWERS)  # the consultation stays until EndCall
    await end(ivr, "G6")
    wait_until("EndCall to release the consultation", lambda: not calls_at(site, ANSWERS), 5)
    assert not calls_at(site, "3002")


# --------------------------------------------------------------------------- B4, G10


async def test_make_call_answered(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    ivr.send("M1", f'<MakeCall OrigNum="3" DestNum="{ANSWERS}"></MakeCall>')
    assert await statuses(ivr, "M1", 2) == ["Dialing", "Established"]  # never Ringing
    info = await ivr.ask("M1", CALL_INFO_REQ, CallInfoResp)
    assert info.PortDN == "3003" and info.ConnId, info
    (made,) = calls_at(site, ANSWERS)
    assert "3003" in made["parties"], made
    site.sim.api("POST", f"calls/{made['id']}/hangup", {"party": ANSWERS}, ok=(200,))
    assert await statuses(ivr, "M1", 1) == ["Released"]  # the called party hung up
    await end(ivr, "M1")
    assert not calls_at(site, ANSWERS) and not calls_at(site, "3003")


async def test_make_call_busy(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    ivr.send("M2", f'<MakeCall OrigNum="3" DestNum="{BUSY}"></MakeCall>')
    assert await statuses(ivr, "M2", 2) == ["Dialing", "Busy"]
    await end(ivr, "M2")
    assert not calls_at(site, "3003")


async def test_make_call_unanswered_times_out(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    ivr.send("M3", f'<MakeCall OrigNum="3" DestNum="{SILENT}"></MakeCall>')
    assert await statuses(ivr, "M3", 1) == ["Dialing"]
    started = time.monotonic()
    failed = await ivr.expect("M3", CallError, timeout=MAKE_CALL_TIMEOUT + 5)
    assert (failed.FailedReq, failed.TlibErrCode) == ("MakeCall", "232")  # TERR_DN_NO_ANSWER
    assert time.monotonic() - started >= MAKE_CALL_TIMEOUT * 0.8
    wait_until("the unanswered call released", lambda: not calls_at(site, SILENT), 5)
    ivr.send("M3", END_CALL)
    # The port is free: the next MakeCall on it goes out.
    ivr.send("M4", f'<MakeCall OrigNum="3" DestNum="{ANSWERS}"></MakeCall>')
    assert await statuses(ivr, "M4", 2) == ["Dialing", "Established"]
    await end(ivr, "M4")


# --------------------------------------------------------------------------- bad sequences


async def test_requests_twice_in_the_wrong_state_and_before_ringing(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    # Before the PBX rings the port: as the real server answered (W).
    ivr.send("W1", new_call("1"))
    for request in ("InitXfer", "OneStepConf"):
        assert await refused(ivr, "W1", xml(request, ANSWERS)) == ("Unknown", "BLOCKED_REQ")
    call = site.sim.deliver("5551011", "3001")
    await ringing_then_established(ivr, "W1")

    # Bad input: an empty or missing destination, another site (G11), an unknown call.
    for body in ('<OneStepXfer DestDN=""></OneStepXfer>', "<InitXfer></InitXfer>"):
        assert await refused(ivr, "W1", body) == ("Unknown", "INVALID_REQ"), body
    remote = '<OneStepXfer DestDN="3084" Location="SiteB"></OneStepXfer>'
    assert await refused(ivr, "W1", remote) == ("OneStepXfer", "UNSUP_OPER")
    assert (await refused(ivr, "nope", xml("OneStepXfer", RINGS)))[0] == "NoSuchCall"
    ivr.send("W2", '<MakeCall OrigNum="2" DestNum="3081" Location="SiteB"></MakeCall>')
    failed = await ivr.expect("W2", CallError)
    assert (failed.FailedReq, failed.TlibErrCode) == ("MakeCall", "UNSUP_OPER")

    # Nothing to complete or retrieve without a consultation.
    for request in ("CompleteXfer", "CompleteConf", "RetrieveCall"):
        assert await refused(ivr, "W1", f"<{request}></{request}>") == (request, "BLOCKED_REQ")

    # A second single-step transfer while the first is pending; the first then fails.
    rule = {"request": "SingleStepTransferCall", "error": "invalidDestination", "delay": 0.5}
    site.sim.api("POST", "refusals", rule, ok=(200, 201))
    ivr.send("W1", xml("OneStepXfer", RINGS))
    assert await refused(ivr, "W1", xml("OneStepXfer", RINGS)) == ("OneStepXfer", "BLOCKED_REQ")
    failed = await ivr.expect("W1", CallError)
    assert (failed.FailedReq, failed.TlibErrCode) == ("OneStepXfer", "71")

    # A second consultation while one is in progress.
    ivr.send("W1", xml("InitXfer", ANSWERS))
    assert await statuses(ivr, "W1", 2) == ["Held", "Dialing"]
    assert await refused(ivr, "W1", xml("InitConf", SECOND)) == ("InitConf", "BLOCKED_REQ")
    assert await refused(ivr, "W1", xml("OneStepXfer", RINGS)) == ("OneStepXfer", "BLOCKED_REQ")
    assert await statuses(ivr, "W1", 1) == ["Established"]
    ivr.send("W1", "<RetrieveCall></RetrieveCall>")
    assert await statuses(ivr, "W1", 1) == ["Retrieved"]
    assert await refused(ivr, "W1", "<RetrieveCall></RetrieveCall>") == (
        "RetrieveCall",
        "BLOCKED_REQ",
    )
    await end(ivr, "W1", site, call)
    assert "Traceback" not in site.log_text()


async def test_a_refused_consultation_leaves_the_call_as_it_was(site: Site, ivrs: Open) -> None:
    ivr = await ivrs()
    call = await connected(ivr, site, "R1", "3", "5551013")
    # The PBX refuses the consultation: the call is as it was (G2), at the PBX too.
    rule = {"request": "ConsultationCall", "error": "invalidDestination"}
    site.sim.api("POST", "refusals", rule, ok=(200, 201))
    assert await refused(ivr, "R1", xml("InitXfer", ANSWERS)) == ("InitXfer", "71")
    await ivr.nothing(0.3)
    assert site.sim.call(call)["state"] == "connected" and not site.sim.call(call)["held"]
    assert not calls_at(site, ANSWERS)
    ivr.send("R1", xml("InitXfer", BUSY))  # and the next consultation goes out
    assert await statuses(ivr, "R1", 3) == ["Held", "Dialing", "Busy"]
    ivr.send("R1", "<RetrieveCall></RetrieveCall>")
    assert await statuses(ivr, "R1", 1) == ["Retrieved"]
    await end(ivr, "R1", site, call)


async def test_a_refusal_crossing_the_callers_hang_up(site: Site, ivrs: Open) -> None:
    """The caller hangs up while a single-step transfer waits for the PBX: ``Released`` (not
    ``XferComplete``), and the refusal is still answered: no request is left unanswered."""
    ivr = await ivrs()
    call = await connected(ivr, site, "R2", "3", "5551014")
    rule = {"request": "SingleStepTransferCall", "error": "invalidDestination", "delay": 0.5}
    site.sim.api("POST", "refusals", rule, ok=(200, 201))
    ivr.send("R2", xml("OneStepXfer", RINGS))
    site.sim.hangup(call)
    assert await statuses(ivr, "R2", 1) == ["Released"]
    failed = await ivr.expect("R2", CallError)
    assert (failed.FailedReq, failed.TlibErrCode) == ("OneStepXfer", "71")
    await end(ivr, "R2")
    assert not calls_at(site, "3003")


# --------------------------------------------------------------------------- G13 (last)


async def test_the_link_drops_mid_consultation(site: Site, ivrs: Open) -> None:
    ivr = await ivrs(monitor=True)
    await ivr.server_status("OK")  # the link's state at login
    await consulting(ivr, site, "L1", "1", "5551012")

    site.sim.drop_link(DOWN_FOR)
    await ivr.server_status("Unavailable")
    assert await refused(ivr, "L1", "<CompleteXfer></CompleteXfer>") == (
        "CompleteXfer",
        "LINK_DOWN",
    )
    await ivr.server_status("OK", timeout=DOWN_FOR + 8)

    # The consultation lived through it (the PBX kept both calls): it completes.
    ivr.send("L1", "<CompleteXfer></CompleteXfer>")
    assert await statuses(ivr, "L1", 1) == ["XferComplete"]
    await end(ivr, "L1")
    (joined,) = calls_at(site, ANSWERS)
    assert "5551012" in joined["parties"] and not calls_at(site, "3001"), joined
    assert "Traceback" not in site.log_text()
