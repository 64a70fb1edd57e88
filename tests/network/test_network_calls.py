"""Network calls end to end against ``ivr-server serve --config examples/network.toml``
(PROTOCOL.md §6.3, §6.5.5; MODES-AND-HA §1.3): the flows of the guide with the built-in router
and with an external router driven over the HTTP API, as the held-out scenarios drive them.
After each test nothing is left: no call of the IVR side, none on the switch, none at a routing
DN (:meth:`NetSite.nothing_left`).

The example's router timeout is shortened to 1.5 s so that a silent router ends a call within the
test, and ``[api] external-router-window`` to 2 s so that an external router's client going quiet
shows; each test puts back the built-in rules of the routing DNs it served otherwise.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ivr_server.wire.messages import (
    AccessNumResp,
    CallError,
    CallInfoResp,
    Cancel,
    EndCall,
    RouteResponse,
    TreatCall,
    UDataResp,
)
from tests.integration.test_cli import REPLAY, SCENARIOS
from tests.network.conftest import (
    CONNECTED,
    END_CALL,
    IVR,
    ROUTED_TO,
    SWITCH,
    TOKEN,
    Ivr,
    NetSite,
    failure,
    new_call,
    route_request,
    router_timeout,
    running_site,
    treat_status,
    udata,
)
from tests.shared import require_shared

pytestmark = pytest.mark.xdist_group(__name__)

ROUTER_TIMEOUT_MS = 1500
EXTERNAL_WINDOW_S = 2.0


def shortened(text: str) -> str:
    """The example with the test's router timeout and external-router window."""
    text = router_timeout(ROUTER_TIMEOUT_MS)(text)
    return text.replace("[api]\n", f'[api]\nexternal-router-window = "{EXTERNAL_WINDOW_S}s"\n', 1)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetSite]:
    with running_site(tmp_path_factory.mktemp("network"), shortened) as s:
        yield s


@pytest.fixture
async def ivr(site: NetSite) -> AsyncIterator[Ivr]:
    """A logged-in NetIVR session; after the test, nothing may be left on the server."""
    session = await Ivr.open(site)
    yield session
    await session.close()
    print(f"--- server log ---\n{site.log_text()[-6000:]}")  # shown when the test failed
    try:
        site.nothing_left()
    finally:
        site.clean()  # a failed test's calls must not fail the next ones


class External:
    """Routing DN ``dn`` served by an external router: this test, over the HTTP API."""

    def __init__(self, site: NetSite, dn: str) -> None:
        self.site, self.dn = site, dn
        answer = site.api("PUT", f"routing-points/{SWITCH}/{dn}/router", {"router": "external"})
        assert answer["router"] == "external", answer

    def restore(self) -> None:
        self.site.api(
            "PUT", f"routing-points/{SWITCH}/{self.dn}/router", {"router": "builtin"}, ok=(200,)
        )

    def point(self) -> dict[str, Any]:
        points = self.site.api("GET", "routing-points", ok=(200,))
        return next(rp for rp in points if rp["dn"] == self.dn)

    async def conn_id(self, call_id: str) -> str:
        """The ConnID of Network call ``call_id`` at the routing DN (once it is there)."""
        for _ in range(100):
            for call in self.point()["network_calls"]:
                if call["call_id"] == call_id and call["conn_id"]:
                    return str(call["conn_id"])
            await asyncio.sleep(0.02)
        raise AssertionError(f"call {call_id} never showed at {self.dn}: {self.point()}")

    def route(self, conn_id: str, dest: str, route_type: str = "Normal", ok: int = 200) -> Any:
        return self.site.api(
            "POST",
            f"routing-points/{SWITCH}/{self.dn}/calls/{conn_id}/route",
            {"route_type": route_type, "dest": dest},
            ok=(ok,),
        )

    def treat(self, conn_id: str, kind: str = "PlayAnnounce") -> Any:
        return self.site.api(
            "POST",
            f"routing-points/{SWITCH}/{self.dn}/calls/{conn_id}/treatment",
            {"type": kind},
            ok=(200,),
        )


@pytest.fixture
def external(site: NetSite) -> Iterator[Any]:
    """``external(dn)``: serve routing DN ``dn`` by the test; the built-in rules come back
    after."""
    chosen: list[External] = []

    def choose(dn: str) -> External:
        router = External(site, dn)
        chosen.append(router)
        return router

    yield choose
    for router in chosen:
        router.restore()


def blocked(error: CallError) -> None:
    """A Network request out of turn: ``CallError FailedReq='Unknown' BLOCKED_REQ`` (N18,
    G20)."""
    assert (error.FailedReq, error.TlibErrCode) == ("Unknown", "BLOCKED_REQ"), error


# --------------------------------------------------------------------------- the guide's flows


async def routed_and_connected(ivr: Ivr, cid: str, dn: str, control: str = "Network") -> None:
    """NewCall on ``dn``, (Network control: RouteRequest), the built-in RouteResponse to 7002,
    Connected."""
    ivr.send(cid, new_call(dn, control=control))
    if control == "Network":
        await ivr.nothing(0.1)  # NewCall has no reply in Network mode
        ivr.send(cid, route_request("ignored", udata(Segment="Gold")))
    routed = await ivr.expect(cid, RouteResponse)
    assert (routed.RouteType, routed.Dest) == ("Normal", ROUTED_TO), routed
    ivr.send(cid, CONNECTED)


async def test_network_control_with_login(site: NetSite, ivr: Ivr) -> None:
    cid = ivr.call_id()
    await routed_and_connected(ivr, cid, "8000")
    await ivr.nothing(0.2)
    call = site.api("GET", f"calls/{cid}", ok=(200,))
    assert (call["mode"], call["routing_dn"], call["state"]) == ("Network", "8000", "CONNECTED")
    assert call["ivr"] == "NetIVR"
    assert {"name": "Segment", "type": "Str", "value": "Gold"} in call["user_data"]
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


async def test_network_control_without_login(site: NetSite) -> None:
    session = await Ivr.open(site, login=False)  # G23: login is optional in Network mode
    try:
        cid = session.call_id()
        await routed_and_connected(session, cid, "8001")
        call = site.api("GET", f"calls/{cid}", ok=(200,))
        assert (call["mode"], call["state"]) == ("Network", "CONNECTED")
        session.send(cid, END_CALL)
        await session.nothing(0.2)
    finally:
        await session.close()
    site.nothing_left()


async def test_genesys_control_is_routed_without_route_request(ivr: Ivr) -> None:
    cid = ivr.call_id()
    await routed_and_connected(ivr, cid, "8002", control="Genesys")
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


async def test_call_info_in_network_mode(ivr: Ivr) -> None:
    cid = ivr.call_id()
    ivr.send(cid, new_call("8003", ani="5550003"))
    info = await ivr.ask(cid, "<CallInfoReq></CallInfoReq>", CallInfoResp)
    assert info.CalledNum == "8003" and info.ANI == "5550003", info
    ivr.send(cid, END_CALL)  # never routed: EventAbandoned, no reply
    await ivr.nothing(0.2)


async def test_treatment_cycles_then_route(site: NetSite, ivr: Ivr, external: Any) -> None:
    router = external("8004")
    cid = ivr.call_id()
    ivr.send(cid, new_call("8004"))
    ivr.send(cid, route_request())
    conn_id = await router.conn_id(cid)
    router.treat(conn_id, "PlayAnnounce")
    assert (await ivr.expect(cid, TreatCall)).Type == "PlayAnnounce"
    ivr.send(cid, treat_status("Started"))
    ivr.send(cid, treat_status("Completed", ced="42"))
    await ivr.nothing(0.1)
    assert site.api("GET", f"calls/{cid}", ok=(200,))["state"] == "WAITING"
    router.treat(conn_id, "CollectDigits")
    assert (await ivr.expect(cid, TreatCall)).Type == "CollectDigits"
    router.treat(conn_id, "PlayAnnounce")  # replaces the first one, no Cancel (N13)
    assert (await ivr.expect(cid, TreatCall)).Type == "PlayAnnounce"
    ivr.send(cid, treat_status("NotStarted"))
    await ivr.nothing(0.1)
    router.route(conn_id, "7003")
    routed = await ivr.expect(cid, RouteResponse)
    assert (routed.RouteType, routed.Dest) == ("Normal", "7003")
    ivr.send(cid, CONNECTED)
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


async def test_route_during_a_treatment_cancels_it(site: NetSite, ivr: Ivr, external: Any) -> None:
    router = external("8005")
    cid = ivr.call_id()
    ivr.send(cid, new_call("8005"))
    ivr.send(cid, route_request())
    conn_id = await router.conn_id(cid)
    router.treat(conn_id, "PlayApplication")
    await ivr.expect(cid, TreatCall)
    ivr.send(cid, treat_status("Started"))
    await ivr.nothing(0.1)
    router.route(conn_id, "7001")
    await ivr.expect(cid, Cancel)  # N16: the route is held until CancelCompleted
    await ivr.nothing(0.2)
    assert site.api("GET", f"calls/{cid}", ok=(200,))["state"] == "CANCELLING"
    ivr.send(cid, "<CancelCompleted></CancelCompleted>")
    routed = await ivr.expect(cid, RouteResponse)
    assert routed.Dest == "7001"
    ivr.send(cid, CONNECTED)
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


async def test_failure_then_the_router_routes_again(site: NetSite, ivr: Ivr, external: Any) -> None:
    router = external("8006")
    cid = ivr.call_id()
    ivr.send(cid, new_call("8006"))
    ivr.send(cid, route_request())
    conn_id = await router.conn_id(cid)
    for cause, dest in (("Busy", "7001"), ("NoAnswer", "7002"), ("ConnectFailed", "7003")):
        router.route(conn_id, dest)
        assert (await ivr.expect(cid, RouteResponse)).Dest == dest
        ivr.send(cid, failure(cause))  # N10: back to WAITING; the router may route again
        await ivr.nothing(0.1)
        assert site.api("GET", f"calls/{cid}", ok=(200,))["state"] == "WAITING"
    router.route(conn_id, "7002")
    await ivr.expect(cid, RouteResponse)
    ivr.send(cid, END_CALL)  # never connected: EventAbandoned
    await ivr.nothing(0.2)


async def test_failure_with_the_builtin_router_is_routed_again(ivr: Ivr) -> None:
    cid = ivr.call_id()
    ivr.send(cid, new_call("8007"))
    ivr.send(cid, route_request())
    await ivr.expect(cid, RouteResponse)
    ivr.send(cid, failure("Busy"))
    again = await ivr.expect(cid, RouteResponse, timeout=ROUTER_TIMEOUT_MS / 1000 + 3)
    assert again.RouteType in ("Normal", "Default"), again
    ivr.send(cid, CONNECTED)
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


async def test_unsolicited_reroute_of_a_connected_call(
    site: NetSite, ivr: Ivr, external: Any
) -> None:
    router = external("8008")
    cid = ivr.call_id()
    ivr.send(cid, new_call("8008"))
    ivr.send(cid, route_request())
    conn_id = await router.conn_id(cid)
    router.route(conn_id, "7001")
    await ivr.expect(cid, RouteResponse)
    ivr.send(cid, CONNECTED)
    await ivr.nothing(0.1)
    for route_type in ("Reroute", "RerouteAttended", "RerouteConferenced"):  # G22: unchanged
        router.route(conn_id, "7003", route_type=route_type)
        rerouted = await ivr.expect(cid, RouteResponse)
        assert (rerouted.RouteType, rerouted.Dest) == (route_type, "7003")
        assert site.api("GET", f"calls/{cid}", ok=(200,))["state"] == "ROUTED"
        ivr.send(cid, CONNECTED)
        await ivr.nothing(0.1)
        assert site.api("GET", f"calls/{cid}", ok=(200,))["state"] == "CONNECTED"
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


async def test_silent_router_ends_the_call_with_timeout(
    site: NetSite, ivr: Ivr, external: Any
) -> None:
    external("8009")
    cid = ivr.call_id()
    ivr.send(cid, new_call("8009"))
    await ivr.nothing(ROUTER_TIMEOUT_MS / 1000 + 0.3)  # STARTED: no Router Timeout yet
    ivr.send(cid, route_request())
    ended = await ivr.expect(cid, EndCall, timeout=ROUTER_TIMEOUT_MS / 1000 + 3)
    assert ended.EndCause == "Timeout", ended  # N5: the IVR applies its default routing


# --------------------------------------------------------------------------- out of turn


async def test_second_route_request_is_blocked(ivr: Ivr) -> None:
    cid = ivr.call_id()
    await routed_and_connected(ivr, cid, "8000")
    blocked(await ivr.ask(cid, route_request(), CallError))  # CONNECTED
    ivr.send(cid, END_CALL)
    cid = ivr.call_id()
    ivr.send(cid, new_call("8000"))
    ivr.send(cid, route_request())
    await ivr.expect(cid, RouteResponse)
    blocked(await ivr.ask(cid, route_request(), CallError))  # ROUTED
    ivr.send(cid, CONNECTED)
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


async def test_connected_before_route_response_and_failure_after_connected(
    site: NetSite, ivr: Ivr, external: Any
) -> None:
    router = external("8001")
    cid = ivr.call_id()
    ivr.send(cid, new_call("8001"))
    blocked(await ivr.ask(cid, CONNECTED, CallError))  # STARTED
    ivr.send(cid, route_request())
    blocked(await ivr.ask(cid, CONNECTED, CallError))  # WAITING: no route yet
    blocked(await ivr.ask(cid, failure(), CallError))
    conn_id = await router.conn_id(cid)
    router.route(conn_id, "7002")
    await ivr.expect(cid, RouteResponse)
    ivr.send(cid, CONNECTED)
    blocked(await ivr.ask(cid, failure(), CallError))  # CONNECTED
    assert site.api("GET", f"calls/{cid}", ok=(200,))["state"] == "CONNECTED"
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


WRONG_EVERYWHERE = (
    treat_status("Started"),
    treat_status("Completed"),
    treat_status("NotStarted"),
    "<CancelCompleted></CancelCompleted>",
)
"""Requests of a treatment cycle, out of turn in every state without a treatment."""


async def test_every_request_in_a_wrong_state(site: NetSite, ivr: Ivr, external: Any) -> None:
    router = external("8002")
    cid = ivr.call_id()

    async def all_blocked(state: str) -> None:
        for body in WRONG_EVERYWHERE:
            blocked(await ivr.ask(cid, body, CallError))
        assert site.api("GET", f"calls/{cid}", ok=(200,))["state"] == state

    ivr.send(cid, new_call("8002"))
    await all_blocked("STARTED")
    ivr.send(cid, route_request())
    await all_blocked("WAITING")
    conn_id = await router.conn_id(cid)
    router.route(conn_id, "7002")
    await ivr.expect(cid, RouteResponse)
    await all_blocked("ROUTED")
    ivr.send(cid, CONNECTED)
    await all_blocked("CONNECTED")
    # Behind mode's call control: UNSUP_OPER with FailedReq 'Unknown' (G20)
    for body in (
        '<OneStepXfer DestDN="7001"></OneStepXfer>',
        '<InitXfer DestDN="7001"></InitXfer>',
        '<InitConf DestDN="7001"></InitConf>',
        "<CompleteXfer></CompleteXfer>",
        "<RetrieveCall></RetrieveCall>",
    ):
        error = await ivr.ask(cid, body, CallError)
        assert (error.FailedReq, error.TlibErrCode) == ("Unknown", "UNSUP_OPER"), (body, error)
    # N-m: user data is replaced only, never added to or deleted
    add = '<UDataSet Action="Add"><RequestId>7</RequestId>' + udata(k="v") + "</UDataSet>"
    assert (await ivr.ask(cid, add, UDataResp)).Result == "FeatureNotSupported"
    delete = '<UDataDel Action="DeleteKey" Key="k"><RequestId>8</RequestId></UDataDel>'
    assert (await ivr.ask(cid, delete, UDataResp)).Result == "FeatureNotSupported"
    replace = '<UDataSet Action="Replace"><RequestId>9</RequestId>' + udata(k="v") + "</UDataSet>"
    assert (await ivr.ask(cid, replace, UDataResp)).Result == "Success"
    assert site.api("GET", f"calls/{cid}", ok=(200,))["state"] == "CONNECTED"
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)
    # the call is gone: its requests get NoSuchCall
    error = await ivr.ask(cid, route_request(), CallError)
    assert error.FailedReq == "NoSuchCall" or error.TlibErrCode == "NoSuchCall", error


async def test_wrong_requests_during_a_treatment(site: NetSite, ivr: Ivr, external: Any) -> None:
    """TREAT_STARTING, TREATING, CANCELLING: what is not in the table is BLOCKED_REQ, the state
    unchanged; the call then goes on as if nothing happened."""
    router = external("8003")
    cid = ivr.call_id()

    async def all_blocked(state: str, *bodies: str) -> None:
        for body in bodies:
            blocked(await ivr.ask(cid, body, CallError))
        assert site.api("GET", f"calls/{cid}", ok=(200,))["state"] == state

    ivr.send(cid, new_call("8003"))
    ivr.send(cid, route_request())
    conn_id = await router.conn_id(cid)
    router.treat(conn_id, "PlayAnnounce")
    await ivr.expect(cid, TreatCall)
    common = (route_request(), CONNECTED, failure(), "<CancelCompleted></CancelCompleted>")
    await all_blocked("TREAT_STARTING", *common, treat_status("Completed"))
    ivr.send(cid, treat_status("Started"))
    await all_blocked("TREATING", *common, treat_status("Started"), treat_status("NotStarted"))
    router.route(conn_id, "7002")
    await ivr.expect(cid, Cancel)
    await all_blocked("CANCELLING", route_request(), CONNECTED, failure(), treat_status("Started"))
    ivr.send(cid, "<CancelCompleted></CancelCompleted>")
    assert (await ivr.expect(cid, RouteResponse)).Dest == "7002"
    ivr.send(cid, CONNECTED)
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


# --------------------------------------------------------------------------- hostile NewCalls


@pytest.mark.parametrize(
    "called_num",
    ["1234", "7002", "", "8" * 5000, "80000", "800", "8000 ", "8000\u00e9", "8000<x/>"],
    ids=[
        "not-a-dn",
        "extension",
        "empty",
        "huge",
        "longer",
        "shorter",
        "blank",
        "accent",
        "markup",
    ],
)
async def test_new_call_to_no_routing_dn_ends_at_once(ivr: Ivr, called_num: str) -> None:
    cid = ivr.call_id()
    text = called_num.replace("<", "&lt;").replace(">", "&gt;")
    ivr.send(cid, new_call(text, dnis=""))
    if len(called_num) > 1024:  # longer than a reply could echo: refused as a request
        error = await ivr.expect(cid, CallError)
        assert (error.FailedReq, error.TlibErrCode) == ("Unknown", "INVALID_REQ"), error
    else:  # not a Network call, and NetIVR has no ports
        assert (await ivr.expect(cid, EndCall)).EndCause == "FeatureNotSupported"
    # the call does not exist: an EndCall for it is NoSuchCall (N-k)
    assert (await ivr.ask(cid, END_CALL, CallError)).FailedReq == "NoSuchCall"
    await ivr.nothing(0.2)


async def test_routing_dn_without_a_live_router_is_refused(site: NetSite, ivr: Ivr) -> None:
    site.api("PUT", f"routing-points/{SWITCH}/8003/router", {"router": "none"}, ok=(200,))
    try:
        point = next(rp for rp in site.api("GET", "routing-points") if rp["dn"] == "8003")
        assert (point["router"], point["router_live"]) == ("none", False)
        cid = ivr.call_id()
        ended = await ivr.ask(cid, new_call("8003"), EndCall)
        assert ended.EndCause == "FeatureNotSupported"  # N4, G19
    finally:
        site.api("PUT", f"routing-points/{SWITCH}/8003/router", {"router": "builtin"}, ok=(200,))
    cid = ivr.call_id()
    await routed_and_connected(ivr, cid, "8003")  # the built-in rules are back
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


async def test_webhook_down_turns_new_calls_away(site: NetSite, ivr: Ivr) -> None:
    url = "http://127.0.0.1:9/route"  # nobody listens: every question fails at once
    site.api(
        "PUT", f"routing-points/{SWITCH}/8004/router", {"router": "webhook", "url": url}, ok=(200,)
    )
    try:
        first = [ivr.call_id() for _ in range(3)]
        for cid in first:  # asked, failed: each left to the router timeout
            ivr.send(cid, new_call("8004", control="Genesys"))
        for _ in range(100):
            point = next(rp for rp in site.api("GET", "routing-points") if rp["dn"] == "8004")
            if not point["router_live"]:
                break
            await asyncio.sleep(0.05)
        assert not point["router_live"], point
        late = ivr.call_id()
        assert (await ivr.ask(late, new_call("8004"), EndCall)).EndCause == "FeatureNotSupported"
        for cid in first:
            ended = await ivr.expect(cid, EndCall, timeout=ROUTER_TIMEOUT_MS / 1000 + 3)
            assert ended.EndCause == "Timeout"
    finally:
        site.api("PUT", f"routing-points/{SWITCH}/8004/router", {"router": "builtin"}, ok=(200,))


# --------------------------------------------------------------------------- load


async def test_many_concurrent_network_calls(site: NetSite) -> None:
    sessions = [await Ivr.open(site, login=i % 2 == 0) for i in range(4)]
    try:

        async def calls(session: Ivr, count: int) -> None:
            ids = [session.call_id() for _ in range(count)]
            for n, cid in enumerate(ids):
                session.send(cid, new_call(f"800{n % 10}", ani=f"555{n:04d}"))
                session.send(cid, route_request())
            for cid in ids:
                routed = await session.expect(cid, RouteResponse, timeout=15)
                assert routed.Dest == ROUTED_TO
                session.send(cid, CONNECTED)
            points = site.api("GET", "routing-points", ok=(200,))
            assert sum(len(rp["network_calls"]) for rp in points) >= count
            for cid in ids:
                session.send(cid, END_CALL)

        await asyncio.gather(*(calls(s, 100) for s in sessions))
    finally:
        for session in sessions:
            await session.close()
    site.nothing_left(timeout=10)


async def test_closed_session_leaves_its_calls_to_the_orphan_timeout(
    site: NetSite, tmp_path: Path
) -> None:
    """G23: a Network call's owner is its connection; when it closes, the call stays until
    ``orphan-call-timeout`` (600 s here): it is still listed, then ended by the operator."""
    session = await Ivr.open(site, login=False)
    cid = session.call_id()
    session.send(cid, new_call("8005"))
    session.send(cid, route_request())
    await session.expect(cid, RouteResponse)
    await session.close()
    await asyncio.sleep(0.2)
    call = site.api("GET", f"calls/{cid}", ok=(200,))
    assert call["mode"] == "Network" and call["connected"] is False, call
    site.api("POST", f"calls/{cid}/end-call", {}, ok=(200,))
    site.nothing_left()


# --------------------------------------------------------------------------- the API's view


async def test_quiet_external_router_turns_new_calls_away(
    site: NetSite, ivr: Ivr, external: Any
) -> None:
    """G19: an external router is live while its client is heard of (it chose the router,
    routed, treated, read the routing points) within ``external-router-window``."""
    router = external("8006")
    await asyncio.sleep(EXTERNAL_WINDOW_S + 0.3)  # the client went quiet
    cid = ivr.call_id()
    assert (await ivr.ask(cid, new_call("8006"), EndCall)).EndCause == "FeatureNotSupported"
    assert router.point()["router_live"] is True  # reading the routing points is a sign of life
    cid = ivr.call_id()
    ivr.send(cid, new_call("8006"))
    ivr.send(cid, route_request())
    router.route(await router.conn_id(cid), "7001")
    assert (await ivr.expect(cid, RouteResponse)).Dest == "7001"
    ivr.send(cid, CONNECTED)
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)
    await asyncio.sleep(EXTERNAL_WINDOW_S + 0.3)  # nothing at all happens on the server...
    external("8006")  # ...then the client chooses the router again: live from now on
    cid = ivr.call_id()
    ivr.send(cid, new_call("8006"))
    ivr.send(cid, route_request())
    router.route(await router.conn_id(cid), "7002")
    assert (await ivr.expect(cid, RouteResponse)).Dest == "7002"
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)


async def test_event_stream_and_views_follow_a_network_call(site: NetSite, ivr: Ivr) -> None:
    url = f"http://127.0.0.1:{site.api_port}/api/v1/events?dn=8007"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers) as ws:
        cid = ivr.call_id()
        ivr.send(cid, new_call("8007", ani="5550007"))
        ivr.send(cid, route_request())
        await ivr.expect(cid, RouteResponse)
        call = site.api("GET", f"calls/{cid}", ok=(200,))
        assert (call["mode"], call["routing_dn"], call["state"]) == ("Network", "8007", "ROUTED")
        point = next(rp for rp in site.api("GET", "routing-points") if rp["dn"] == "8007")
        assert point["router"] == "builtin" and point["router_live"] is True
        (shown,) = point["network_calls"]
        assert (shown["call_id"], shown["state"], shown["ani"]) == (cid, "ROUTED", "5550007")
        public = site.api("GET", "state", ok=(200,))
        assert any(c["call_id"] == cid and c["mode"] == "Network" for c in public["calls"])
        ivr.send(cid, CONNECTED)
        ivr.send(cid, END_CALL)
        names: list[str] = []
        while "EventReleased" not in names and "EventAbandoned" not in names:
            message = await ws.receive(timeout=5)
            assert message.type == aiohttp.WSMsgType.TEXT, message
            event = json.loads(message.data)
            assert event["dn"] == "8007" and event["switch"] == SWITCH
            names.append(event["event"])
    # PROTOCOL.md §6.5.5, simple routing with Network control
    assert names[:2] == ["EventQueued", "EventRouteRequest"], names
    assert names.index("EventDiverted") < names.index("EventRouteUsed"), names
    assert names[-1] == "EventReleased", names


# --------------------------------------------------------------------------- access numbers


async def test_network_call_and_access_numbers(site: NetSite, ivr: Ivr) -> None:
    """A Network call may not take an access number (In-Front and Behind only): Failure. A
    Network call arriving on a reserved number (its DNIS) gets the number's data (G24), and the
    number is free again."""
    cid = ivr.call_id()
    ivr.send(cid, new_call("8008"))
    get = '<AccessNumGet DestDN="7001" Location="Remote"></AccessNumGet>'
    refused = await ivr.ask(cid, get, AccessNumResp)
    assert (refused.Action, refused.Result) == ("Get", "Failure"), refused
    ivr.send(cid, END_CALL)
    data = [{"name": "Account", "value": "A-77"}]
    reserved = site.api(
        "POST", "access-numbers", {"location": "Remote", "user_data": data}, ok=(201,)
    )
    number = reserved["number"]
    cid = ivr.call_id()
    ivr.send(cid, new_call("8008", dnis=number))
    answer = await ivr.ask(
        cid, '<UDataGet Keys="Account"><RequestId>1</RequestId></UDataGet>', UDataResp
    )
    assert answer.Result == "Success" and answer.UDataEx is not None, answer
    assert [(n.Name, getattr(n, "Val", None)) for n in answer.UDataEx] == [("Account", "A-77")]
    assert site.request("GET", f"access-numbers/{number}")[0] == 404  # free again
    ivr.send(cid, END_CALL)
    await ivr.nothing(0.2)
    pools = site.api("GET", "access-numbers", ok=(200,))
    (remote,) = [pool for pool in pools if pool["location"] == "Remote"]
    assert remote["reserved"] == 0, remote


# --------------------------------------------------------------------------- conformance

NETWORK_SCENARIOS = (
    "login-report-status",
    "login-without-report-status",
    "login-v3-no-flowcontrol",
    "login-unknown-client",
    "login-invalid-version",
    "relogin-same-connection",
    "keepalive",
    "monitor-server-on-login",
    "endcall-unknown-call",
    "newcall-unknown-port",
    "newcall-before-login",
)
"""The shared scenarios that apply to a network IVR: sessions, keep-alive, monitoring, unknown
calls and ports. The others need In-Front ports (NetIVR has none: its calls wait at routing DNs):
calls that ring, their user data, an agent query on a port DN."""


def test_the_shared_session_scenarios_pass_against_network_mode(site: NetSite) -> None:
    require_shared(REPLAY, SCENARIOS)
    done = subprocess.run(
        [
            *(sys.executable, str(REPLAY), "--host", "127.0.0.1", "--port", str(site.port)),
            *("--ivr", IVR, str(SCENARIOS)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    passed = {line.split()[1] for line in done.stdout.splitlines() if line.startswith("PASS ")}
    missing = [name for name in NETWORK_SCENARIOS if name not in passed]
    assert not missing, f"{missing}\n{done.stdout}{done.stderr}"
    site.nothing_left()
