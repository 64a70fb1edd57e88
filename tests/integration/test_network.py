"""Network mode against the real server over TCP (issue 24; PROTOCOL.md §6.3, §6.5.5): the
configuration of examples/network.toml with a short router timeout, its HTTP API, and raw IVR
links. Each test ends by checking through the API and the call manager that nothing is left: no
call, no call on the switch, no timer, no pending switch request."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest

from ivr_server.api import TOKEN_ENV, ApiServer
from ivr_server.config import ServerConfig, load_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.conftest import LOOPBACK_0
from tests.integration.conftest import start as start_cli
from tests.integration.conftest import stop as stop_cli
from tests.integration.rawlink import RawLink

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "network-tests-token"
SWITCH = "SW_Network"
ROUTER_TIMEOUT = 0.4
EXTERNAL = "8009"
BLOCKED = m.CallError(FailedReq="Unknown", TlibErrCode="BLOCKED_REQ")
TO_7002 = m.RouteResponse(RouteType="Normal", Dest="7002")
END = "<EndCall EndCause='Normal'/>"


def config() -> ServerConfig:
    base = load_config(ROOT / "examples/network.toml")
    timers = base.server.timers.model_copy(update={"router_timeout": ROUTER_TIMEOUT})
    server = base.server.model_copy(update={"timers": timers})
    api = base.api.model_copy(update={"token": TOKEN, "listen": ()})
    return base.model_copy(update={"server": server, "api": api})


def new_call(dn: str = "8000", mode: str = "Network", version: str = "4.0") -> str:
    return (
        f"<NewCall CallControlMode='{mode}' Version='{version}'><CalledNum>{dn}</CalledNum>"
        "<ANI>5551234</ANI></NewCall>"
    )


class Site:
    """The server, its API and the IVR's link."""

    def __init__(self, server: IvrServer, http: aiohttp.ClientSession) -> None:
        self.server = server
        self.http = http
        self.url = cast(ApiServer, server.api).url
        self.links: list[RawLink] = []

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not None:
            kwargs["json"] = body
        async with self.http.request(method, self.url + path, **kwargs) as response:
            text = await response.text()
            return response.status, json.loads(text) if text else None

    async def get(self, path: str) -> Any:
        status, body = await self.request("GET", path)
        assert status == 200, (path, body)
        return body

    async def link(self, login: bool = True) -> RawLink:
        link = await RawLink.open(self.server.port)
        self.links.append(link)
        if login:
            await link.login("L", "NetIVR")
        return link

    async def external(self, dn: str = EXTERNAL) -> None:
        path = f"/api/v1/routing-points/{SWITCH}/{dn}/router"
        status, body = await self.request("PUT", path, {"router": "external"})
        assert status == 200, body
        await self.get("/api/v1/routing-points")  # a sign of life of the external router (G19)

    async def conn_id(self, call_id: str) -> str:
        call = await self.get(f"/api/v1/calls/{call_id}")
        return cast(str, call["conn_id"])

    async def route(self, call_id: str, dest: str, route_type: str = "Normal") -> int:
        conn_id = await self.conn_id(call_id)
        status, _ = await self.request(
            "POST",
            f"/api/v1/routing-points/{SWITCH}/{EXTERNAL}/calls/{conn_id}/route",
            {"route_type": route_type, "dest": dest},
        )
        return status

    async def treat(self, call_id: str, kind: str = "Music") -> int:
        conn_id = await self.conn_id(call_id)
        status, _ = await self.request(
            "POST",
            f"/api/v1/routing-points/{SWITCH}/{EXTERNAL}/calls/{conn_id}/treatment",
            {"type": kind},
        )
        return status

    async def nothing_left(self) -> None:
        """No call, no switch call, no timer, no pending request (allowing in-flight ends)."""
        calls = self.server.service.calls
        for _ in range(50):
            if not calls.calls:
                break
            await asyncio.sleep(0.02)
        state = await self.get("/api/v1/state")
        assert state["calls"] == []
        assert [s["calls"] for s in state["switches"] if s["name"] == SWITCH] == [0]
        assert calls.timer_count() == 0 and calls.pending_count() == 0
        assert list(self.server.service.switches[SWITCH].view.calls()) == []


Start = Callable[[], Awaitable[Site]]


@pytest.fixture
async def start(
    start_server: Callable[..., Awaitable[IvrServer]], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Start]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    sites: list[Site] = []

    async def make() -> Site:
        server = await start_server(config(), api=ApiServer, api_listen=LOOPBACK_0)
        site = Site(server, aiohttp.ClientSession())
        sites.append(site)
        return site

    yield make
    for site in sites:
        for link in site.links:
            await link.close()
        await site.http.close()


async def recv(link: RawLink) -> m.Message:
    _, message, _ = await link.recv_doc()
    return message


async def test_simple_network_routing_then_connected_then_end(start: Start) -> None:
    site = await start()
    ivr = await site.link()
    await ivr.send("C1", new_call())
    await ivr.expect_silence(0.1)  # Network: no CallStatus
    call = await site.get("/api/v1/calls/C1")
    assert call["mode"] == "Network" and call["state"] == "STARTED"
    await ivr.send("C1", "<RouteRequest RouteDN='ignored'/>")
    assert await recv(ivr) == TO_7002
    await ivr.send("C1", "<Connected/>")
    await ivr.expect_silence(0.1)
    assert (await site.get("/api/v1/calls/C1"))["state"] == "CONNECTED"
    await ivr.send("C1", END)
    await ivr.expect_silence(0.1)
    await site.nothing_left()


async def test_genesys_control_routes_at_once(start: Start) -> None:
    site = await start()
    ivr = await site.link()
    await ivr.send("C1", new_call(mode="Genesys"))
    assert await recv(ivr) == TO_7002
    await ivr.send("C1", "<Connected/>")
    await ivr.send("C1", END)
    await ivr.expect_silence(0.1)
    await site.nothing_left()


async def test_treatment_then_route_during_treatment(start: Start) -> None:
    site = await start()
    await site.external()
    ivr = await site.link()
    await ivr.send("C1", new_call(EXTERNAL))
    await ivr.send("C1", "<RouteRequest/>")
    await ivr.expect_silence(0.05)
    assert await site.treat("C1", "PlayAnnounce") == 200
    treat = await recv(ivr)
    assert isinstance(treat, m.TreatCall) and treat.Type == "PlayAnnounce"
    await ivr.send("C1", "<TreatStatus Status='Started'/>")
    await ivr.expect_silence(0.05)
    assert (await site.get("/api/v1/calls/C1"))["state"] == "TREATING"
    assert await site.route("C1", "7001") == 200
    assert await recv(ivr) == m.Cancel()
    await ivr.send("C1", "<CancelCompleted/>")
    assert await recv(ivr) == m.RouteResponse(RouteType="Normal", Dest="7001")
    await ivr.send("C1", "<Connected/>")
    await ivr.send("C1", END)
    await ivr.expect_silence(0.1)
    await site.nothing_left()


async def test_failure_then_reroute_by_the_built_in_router(start: Start) -> None:
    site = await start()
    ivr = await site.link()
    await ivr.send("C1", new_call())
    await ivr.send("C1", "<RouteRequest/>")
    assert await recv(ivr) == TO_7002
    await ivr.send("C1", "<Failure FailureCause='Busy'/>")
    # the rule set has no second rule: the router routes Default
    assert await recv(ivr) == m.RouteResponse(RouteType="Default")
    await ivr.send("C1", END)  # never connected: EventAbandoned
    await ivr.expect_silence(0.1)
    await site.nothing_left()


async def test_router_timeout_ends_the_call(start: Start) -> None:
    site = await start()
    await site.external()
    ivr = await site.link()
    await ivr.send(
        "C1",
        new_call(EXTERNAL).replace(
            "</NewCall>", "<UDataEx><Node Name='Lang' Type='Str' Val='fr'/></UDataEx></NewCall>"
        ),
    )
    await ivr.send("C1", "<RouteRequest/>")
    end = await recv(ivr)
    assert isinstance(end, m.EndCall) and end.EndCause == "Timeout"
    assert end.UDataEx is not None and [item.Name for item in end.UDataEx] == ["Lang"]
    await site.nothing_left()


async def test_unsolicited_reroute_of_a_connected_call_through_the_api(start: Start) -> None:
    site = await start()
    await site.external()
    ivr = await site.link()
    await ivr.send("C1", new_call(EXTERNAL, mode="Genesys"))
    assert await site.route("C1", "7001") == 200
    assert await recv(ivr) == m.RouteResponse(RouteType="Normal", Dest="7001")
    await ivr.send("C1", "<Connected/>")
    await ivr.expect_silence(0.05)
    assert await site.route("C1", "7003", "RerouteAttended") == 200
    assert await recv(ivr) == m.RouteResponse(RouteType="RerouteAttended", Dest="7003")
    assert await site.route("C1", "7002") == 409  # routed already: Connected or Failure first
    await ivr.send("C1", "<Connected/>")
    await ivr.send("C1", END)
    await ivr.expect_silence(0.1)
    await site.nothing_left()


async def test_a_session_that_never_logged_in(start: Start) -> None:
    site = await start()
    ivr = await site.link(login=False)
    await ivr.send("C1", new_call(mode="Genesys"))
    assert await recv(ivr) == TO_7002
    await ivr.send("C1", "<CallInfoReq/>")
    info = await recv(ivr)
    assert isinstance(info, m.CallInfoResp) and info.CalledNum == "8000"
    assert (await site.get("/api/v1/calls/C1"))["ivr"] == ""
    await ivr.send("C1", "<Connected/>")
    await ivr.send("C1", END)
    await ivr.expect_silence(0.1)
    await site.nothing_left()


@pytest.mark.parametrize(
    ("setup", "request_", "answer"),
    [
        ([], "<Connected/>", BLOCKED),
        (["<RouteRequest/>"], "<RouteRequest/>", BLOCKED),
        (["<RouteRequest/>", "<Connected/>"], "<Failure FailureCause='NoAnswer'/>", BLOCKED),
        (
            [],
            "<UDataSet Action='Add'><RequestId>1</RequestId>"
            "<UDataEx><Node Name='a' Type='Str' Val='b'/></UDataEx></UDataSet>",
            m.UDataResp(Result="FeatureNotSupported", RequestId="1"),
        ),
        (
            [],
            "<UDataDel Action='DeleteKey' Key='a'><RequestId>2</RequestId></UDataDel>",
            m.UDataResp(Result="FeatureNotSupported", RequestId="2"),
        ),
        (
            [],
            "<CallInfoReq/>",
            m.CallInfoResp(
                ANI="5551234", CalledNum="8000", LastEvent="EventQueued", FirstHomeLocation=SWITCH
            ),
        ),
        (
            [],
            "<OneStepXfer DestDN='7001'/>",
            m.CallError(FailedReq="Unknown", TlibErrCode="UNSUP_OPER"),
        ),
    ],
)
async def test_bad_requests_get_documented_answers(
    start: Start, setup: list[str], request_: str, answer: m.Message
) -> None:
    site = await start()
    ivr = await site.link()
    await ivr.send("C1", new_call())
    for step in setup:
        await ivr.send("C1", step)
        if step.startswith("<RouteRequest"):
            assert await recv(ivr) == TO_7002
    await ivr.send("C1", request_)
    got = await recv(ivr)
    if isinstance(answer, m.CallInfoResp):
        assert isinstance(got, m.CallInfoResp)
        got = m.CallInfoResp(
            ANI=got.ANI,
            CalledNum=got.CalledNum,
            LastEvent=got.LastEvent,
            FirstHomeLocation=got.FirstHomeLocation,
        )
    assert got == answer
    await ivr.send("C1", END)
    await ivr.expect_silence(0.1)
    await site.nothing_left()


async def test_a_routing_dn_without_a_router_refuses_the_call(start: Start) -> None:
    site = await start()
    status, _ = await site.request(
        "PUT", f"/api/v1/routing-points/{SWITCH}/8005/router", {"router": "none"}
    )
    assert status == 200
    ivr = await site.link()
    await ivr.send("C1", new_call("8005"))
    assert await recv(ivr) == m.EndCall(EndCause="FeatureNotSupported")
    await site.nothing_left()


def test_the_example_is_served_and_checks() -> None:
    """``ivr-server check-config`` and ``serve --config examples/network.toml``: a Network call
    routed by the built-in rules over a real process."""
    example = str(ROOT / "examples/network.toml")
    done = subprocess.run(
        [sys.executable, "-m", "ivr_server", "check-config", example],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "OK" in done.stdout, done.stderr
    served = start_cli("--config", example)
    try:

        async def one_call() -> None:
            ivr = await RawLink.open(served.port)
            try:
                await ivr.send("C1", new_call("8003", mode="Genesys"))
                assert await recv(ivr) == TO_7002
                await ivr.send("C1", "<Connected/>")
                await ivr.send("C1", END)
                await ivr.expect_silence(0.1)
            finally:
                await ivr.close()

        asyncio.run(one_call())
    finally:
        stop_cli(served)
