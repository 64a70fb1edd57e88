"""The HTTP API, metrics, event stream and web view of the real server (docs/api.md).

Each test starts the server in-process on loopback with its API on a free port (never the
default configuration's 8021), drives IVR sessions over GLI with :class:`RawLink` and the API with
a plain aiohttp client, and checks both sides: what the API answers and what the IVR receives.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import shutil
import ssl
import subprocess
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from ivr_server import __version__, logs
from ivr_server.api import TOKEN_ENV, ApiServer, openapi
from ivr_server.api import responses as r
from ivr_server.api.operations import OPERATIONS
from ivr_server.config import ApiConfig, ServerConfig, default_config
from ivr_server.errors import ConfigError
from ivr_server.routing import RoutingPointDispatcher
from ivr_server.runtime import IvrServer
from ivr_server.wire import Node
from ivr_server.wire import messages as m
from tests.integration.conftest import LOOPBACK_0
from tests.integration.conftest import start as start_cli
from tests.integration.conftest import stop as stop_cli
from tests.integration.rawlink import RawLink, server_doc, start_call

StartServer = Callable[..., Awaitable[IvrServer]]

TOKEN = "t0ken-for-the-tests"
SWITCH = "SW_InFront"
ROUTER_TIMEOUT = 0.4
UNSET: Any = object()


def make_config(
    *, token: str | None = TOKEN, public_read: bool = True, router_timeout: float = ROUTER_TIMEOUT
) -> ServerConfig:
    """The default configuration with a token, a short router timeout and no API address."""
    base = default_config()
    timers = base.server.timers.model_copy(update={"router_timeout": router_timeout})
    server = base.server.model_copy(update={"timers": timers})
    api = base.api.model_copy(update={"token": token, "public_read": public_read, "listen": ()})
    return base.model_copy(update={"server": server, "api": api})


class Env:
    """A running server with its API, an HTTP client and IVR links."""

    def __init__(self, server: IvrServer, http: aiohttp.ClientSession, token: str | None) -> None:
        self.server = server
        self.api = cast(ApiServer, server.api)
        self.http = http
        self.token = token
        self.links: list[RawLink] = []

    @property
    def url(self) -> str:
        return self.api.url

    @property
    def auth(self) -> dict[str, str]:
        """The headers of a request with the token (the event stream needs it)."""
        return {"Authorization": f"Bearer {self.token}"}

    async def request(
        self,
        method: str,
        path: str,
        body: Any = UNSET,
        *,
        token: Any = UNSET,
        data: bytes | None = None,
    ) -> tuple[int, Any, Any]:
        """``(status, decoded JSON or text, headers)``."""
        token = self.token if token is UNSET else token
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        kwargs: dict[str, Any] = {"headers": headers}
        if body is not UNSET:
            kwargs["json"] = body
        if data is not None:
            kwargs["data"] = data
        async with self.http.request(method, self.url + path, **kwargs) as response:
            text = await response.text()
            try:
                decoded: Any = json.loads(text)
            except ValueError:
                decoded = text
            return response.status, decoded, response.headers

    async def get(self, path: str, **kwargs: Any) -> Any:
        status, body, _ = await self.request("GET", path, **kwargs)
        assert status == 200, (path, status, body)
        return body

    async def act(self, method: str, path: str, body: Any = UNSET, status: int = 200) -> Any:
        got, answer, _ = await self.request(method, path, body)
        assert got == status, (method, path, got, answer)
        return answer

    async def ivr(self, name: str = "IVR_1", session_call_id: str = "L", **kw: Any) -> RawLink:
        link = await RawLink.open(self.server.port)
        self.links.append(link)
        await link.login(session_call_id, name, **kw)
        return link


StartApi = Callable[..., Awaitable[Env]]


@pytest.fixture
async def start_api(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StartApi]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    envs: list[Env] = []

    async def start(
        config: ServerConfig | None = None, token: str | None = TOKEN, **api_options: Any
    ) -> Env:
        factory = functools.partial(ApiServer, **api_options) if api_options else ApiServer
        server = await start_server(config or make_config(), api=factory, api_listen=LOOPBACK_0)
        env = Env(server, aiohttp.ClientSession(), token)
        envs.append(env)
        return env

    yield start
    for env in envs:
        for link in env.links:
            await link.close()
        await env.http.close()


@pytest.fixture
async def env(start_api: StartApi) -> Env:
    return await start_api()


@pytest.fixture
def restore_log_level() -> Any:
    before = logging.getLogger(logs.ROOT).level
    root = logging.getLogger().level
    yield
    logging.getLogger(logs.ROOT).setLevel(before)
    logging.getLogger().setLevel(root)


async def expect(link: RawLink, call_id: str, body: str) -> None:
    got_id, _, raw = await link.recv_doc()
    assert (got_id, raw) == (call_id, server_doc(call_id, body))


async def next_message(link: RawLink, call_id: str, timeout: float = 3.0) -> Any:
    got_id, message, _ = await link.recv_doc(timeout)
    assert got_id == call_id
    return message


def names(answer: Any) -> list[str]:
    return [event["event"] for event in answer["events"]]


async def call_with_data(env: Env, call_id: str = "C1", port: str = "1") -> RawLink:
    """An IVR_1 session with an established call carrying ANI, DNIS and one user-data item."""
    link = await env.ivr()
    await start_call(
        link,
        call_id,
        port,
        "<DNIS>8005551212</DNIS><ANI>5550100</ANI>"
        "<UDataEx><Node Name='Segment' Type='Str' Val='Gold'/></UDataEx>",
    )
    return link


# ------------------------------------------------------------------------------------- reading


async def test_reads_reflect_real_calls_sessions_ports_and_agents(env: Env) -> None:
    link = await call_with_data(env)
    await link.send("C1", "<RouteRequest RouteDN='5001'/>")  # 5001 has no router: it waits
    await asyncio.sleep(0.05)

    (session,) = await env.get("/api/v1/sessions")
    assert session["client_name"] == "IVR_1" and session["version"] == "4.0"
    assert session["peer"].startswith("127.0.0.1:") and session["documents_in"] == 3
    assert session["documents_out"] >= 4 and session["opened_at"] > 1e9

    call = await env.get("/api/v1/calls/C1")
    assert call["ivr"] == "IVR_1" and call["port"] == "1" and call["dn"] == "4001"
    assert call["switch"] == SWITCH and call["state"] == "ROUTING" and call["route_dn"] == "5001"
    assert (call["ani"], call["dnis"], call["last_event"]) == (
        "5550100",
        "8005551212",
        "EventEstablished",
    )
    assert len(call["conn_id"]) == 16
    assert call["user_data"] == [{"name": "Segment", "type": "Str", "value": "Gold"}]
    assert call["parties"] == [
        {"dn": "4001", "role": "port"},
        {"dn": "5001", "role": "routing-point"},
    ]
    assert await env.get("/api/v1/calls") == [call]

    ivrs = {ivr["name"]: ivr for ivr in await env.get("/api/v1/ivrs")}
    port1 = ivrs["IVR_1"]["ports"][0]
    assert port1["dn"] == "4001" and port1["switch"] == SWITCH and port1["available"]
    assert port1["call"] == {"call_id": "C1", "conn_id": call["conn_id"], "state": "ROUTING"}
    assert port1["agent"] is None and ivrs["IVR_1"]["ports"][1]["call"] is None
    assert ivrs["IVR_2"]["legacy_mode"] is True
    assert ivrs["IVR_2"]["ports"][0]["agent"] == {
        "agent_id": "9101",
        "state": "Ready",
        "queue": "6000",
        "work_mode": "AutoIn",
    }

    (switch,) = await env.get("/api/v1/switches")
    assert switch["name"] == SWITCH and switch["tserver"] == "TServer_IVR" and switch["link_up"]
    dns = {dn["number"]: dn for dn in switch["dns"]}
    assert dns["5000"]["type"] == "routing-point" and dns["4101"]["agent"]["agent_id"] == "9101"
    assert dns["4001"]["registered"] and dns["4001"]["in_service"]

    points = {rp["dn"]: rp for rp in await env.get("/api/v1/routing-points")}
    assert points["5000"]["router"] == "builtin" and points["5000"]["waiting"] == []
    (waiting,) = points["5001"]["waiting"]
    assert points["5001"]["router"] == "none"
    assert waiting["conn_id"] == call["conn_id"] and waiting["call_id"] == "C1"
    assert waiting["since"] > 1e9 and waiting["ani"] == "5550100"

    stats = await env.get("/api/v1/stats")
    assert set(stats) == {"statistics", "routing_points", "queues", "agent_groups", "ivrs"}
    state = await env.get("/api/v1/state")
    assert set(state) == {
        "server",
        "switches",
        "ivrs",
        "sessions",
        "calls",
        "routing_points",
        "stats",
        "redacted",
    }
    assert state["calls"] == [call] and state["server"]["api_listen"]
    assert state["redacted"] is False
    assert (await env.get("/api/v1/log-level"))["level"] in ("DEBUG", "INFO", "WARNING")

    status, body, _ = await env.request("GET", "/api/v1/calls/nope")
    assert status == 404 and body == {"error": "no call 'nope'"}
    status, body, _ = await env.request("GET", "/api/v1/nothing-here")
    assert status == 404 and "error" in body
    status, body, headers = await env.request("GET", "/api/v1/calls/C1/release")
    assert status == 405 and body == {"error": "Method Not Allowed"} and "POST" in headers["Allow"]
    status, body, _ = await env.request("GET", "/api/v1/events")  # not a WebSocket upgrade
    assert status == 400 and "WebSocket" in body["error"]


async def test_reads_need_the_token_when_read_is_not_public(start_api: StartApi) -> None:
    env = await start_api(make_config(public_read=False))
    status, body, headers = await env.request("GET", "/api/v1/state", token=None)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    status, _, headers = await env.request("GET", "/api/v1/calls", token="wrong")
    assert status == 401 and 'error="invalid_token"' in headers["WWW-Authenticate"]
    status, _, _ = await env.request("GET", "/metrics", token=None)
    assert status == 401
    assert (await env.get("/api/v1/calls")) == []
    # the page and the description stay public; a browser's WebSocket may use access_token
    for path in ("/openapi.json", "/", "/static/app.css"):
        assert (await env.request("GET", path, token=None))[0] == 200
    status, _, _ = await env.request("GET", f"/api/v1/calls?access_token={TOKEN}", token=None)
    assert status == 200

    closed = await start_api(make_config(public_read=False, token=None), token=None)
    status, body, _ = await closed.request("GET", "/api/v1/state")
    assert status == 403 and "no API token" in body["error"]


ACTS: list[tuple[str, str, Any]] = [
    (
        "POST",
        "/api/v1/calls/C1/user-data",
        {"action": "add", "data": [{"name": "a", "value": "b"}]},
    ),
    ("DELETE", "/api/v1/calls/C1/user-data", UNSET),
    ("DELETE", "/api/v1/calls/C1/user-data/Segment", UNSET),
    ("POST", "/api/v1/calls/C1/release", UNSET),
    ("POST", "/api/v1/routing-points/SW_InFront/5001/calls/0/route", {"dest": "7001"}),
    ("POST", "/api/v1/routing-points/SW_InFront/5001/calls/0/treatment", {"type": "Music"}),
    ("PUT", "/api/v1/routing-points/SW_InFront/5000/router", {"router": "external"}),
    ("POST", "/api/v1/agents/SW_InFront/7001/login", {"agent_id": "A1"}),
    ("POST", "/api/v1/agents/SW_InFront/4101/logout", {}),
    ("POST", "/api/v1/agents/SW_InFront/4101/ready", {}),
    ("POST", "/api/v1/agents/SW_InFront/4101/not-ready", {}),
    ("PUT", "/api/v1/switches/SW_InFront/link", {"up": False}),
    ("PUT", "/api/v1/log-level", {"level": "DEBUG"}),
]


async def test_every_act_needs_the_token(start_api: StartApi) -> None:
    env = await start_api()
    await call_with_data(env)
    before = await env.get("/api/v1/state")
    for method, path, body in ACTS:
        status, answer, headers = await env.request(method, path, body, token=None)
        assert status == 401 and headers["WWW-Authenticate"] == 'Bearer realm="ivr-server"', path
        assert answer == {"error": "a bearer token is required"}
        status, _, headers = await env.request(method, path, body, token="not-" + TOKEN)
        assert status == 401 and "invalid_token" in headers["WWW-Authenticate"], path
        status, _, _ = await env.request(method, path, body, token=TOKEN.upper())
        assert status == 401
    after = await env.get("/api/v1/state")
    for key in ("switches", "ivrs", "calls", "routing_points"):
        assert before[key] == after[key], key

    no_token = await start_api(make_config(token=None))
    for method, path, body in ACTS:
        status, answer, _ = await no_token.request(method, path, body)
        assert status == 403 and "no API token is configured" in answer["error"], path


async def test_the_environment_variable_overrides_the_configured_token(
    start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = await start_api()
    monkeypatch.setenv(TOKEN_ENV, "from-the-environment")
    path, body = "/api/v1/agents/SW_InFront/7001/login", {"agent_id": "A1"}
    assert (await env.request("POST", path, body))[0] == 401
    status, answer, _ = await env.request("POST", path, body, token="from-the-environment")
    assert status == 200 and names(answer) == ["EventAgentLogin", "EventAgentNotReady"]


# ------------------------------------------------------------------------------------ acting


async def test_user_data_attach_update_delete(env: Env) -> None:
    link = await call_with_data(env)
    base = "/api/v1/calls/C1/user-data"
    answer = await env.act(
        "POST",
        base,
        {
            "action": "add",
            "data": [
                {"name": "Segment", "value": "Silver"},
                {"name": "Score", "type": "Int", "value": 42},
                {"name": "Addr", "list": [{"name": "City", "value": "Paris"}]},
            ],
        },
    )
    (event,) = answer["events"]
    assert event["event"] == "EventAttachedDataChanged" and event["dn"] == "4001"
    assert event["switch"] == SWITCH and event["time"] > 1e9 and event["reference_id"] > 0
    assert event["user_data"] == [
        {"name": "Segment", "type": "Str", "value": "Gold"},
        {"name": "Segment", "type": "Str", "value": "Silver"},
        {"name": "Score", "type": "Int", "value": 42},
        {"name": "Addr", "list": [{"name": "City", "type": "Str", "value": "Paris"}]},
    ]
    answer = await env.act(
        "POST", base, {"action": "replace", "data": [{"name": "Segment", "value": "Bronze"}]}
    )
    assert [i["value"] for i in answer["events"][0]["user_data"] if i["name"] == "Segment"] == [
        "Bronze"
    ]
    await env.act("DELETE", f"{base}/Score")
    call = await env.get("/api/v1/calls/C1")
    assert [item["name"] for item in call["user_data"]] == ["Segment", "Addr"]
    # the IVR reads what the API wrote: it lives on the switch's call
    await link.send("C1", "<UDataGetAll><RequestId>1</RequestId></UDataGetAll>")
    message = await next_message(link, "C1")
    assert [item.Name for item in message.UDataEx] == ["Segment", "Addr"]
    await env.act("DELETE", base)
    assert (await env.get("/api/v1/calls/C1"))["user_data"] == []


async def test_malformed_requests_are_refused_and_change_nothing(env: Env) -> None:
    await call_with_data(env)
    before = await env.get("/api/v1/calls/C1")
    path = "/api/v1/calls/C1/user-data"
    bad_bodies: list[Any] = [
        {"action": "merge", "data": [{"name": "a", "value": "b"}]},
        {"action": "add", "data": []},
        {"action": "add", "data": [{"name": "a", "value": "b"}], "extra": 1},
        {"action": "add", "data": [{"name": "a", "value": "b", "colour": "red"}]},
        {"action": "add", "data": [{"name": "", "value": "b"}]},
        {"action": "add", "data": [{"name": "a", "type": "Int", "value": "x"}]},
        {"action": "add", "data": [{"name": "a", "type": "Int", "value": 2**31}]},
        {"action": "add", "data": [{"name": "a", "type": "Str", "value": 5}]},
        {"action": "add", "data": [{"name": "a", "list": []}]},
        {"action": "add", "data": [{"name": "ok", "value": "1"}, {"value": "no name"}]},
        ["action", "add"],
        "add",
    ]
    for body in bad_bodies:
        status, answer, _ = await env.request("POST", path, body)
        assert status == 400, body
        assert answer["error"].startswith(("invalid request body", "the body must be")), answer
    for raw in (b"{not json", b"\xff\xfe", b'{"action": "add", "data": [}'):
        status, answer, _ = await env.request("POST", path, data=raw)
        assert status == 400 and answer["error"].startswith("malformed JSON"), raw
    status, answer, _ = await env.request("POST", path, {"action": "add"})
    assert status == 400 and answer["problems"][0]["location"] == "data"
    for method, where, body in [
        ("POST", "/api/v1/agents/SW_InFront/7001/login", {"agent_id": "A", "work_mode": "Busy"}),
        ("POST", "/api/v1/agents/SW_InFront/7001/login", {}),
        ("PUT", "/api/v1/switches/SW_InFront/link", {"up": "no"}),
        ("PUT", "/api/v1/switches/SW_InFront/link", {}),
        ("PUT", "/api/v1/log-level", {"level": "LOUD"}),
        ("PUT", "/api/v1/routing-points/SW_InFront/5000/router", {"router": "webhook"}),
        (
            "PUT",
            "/api/v1/routing-points/SW_InFront/5000/router",
            {"router": "webhook", "url": "ftp://x"},
        ),
        (
            "PUT",
            "/api/v1/routing-points/SW_InFront/5000/router",
            {"router": "external", "url": "http://x"},
        ),
        (
            "POST",
            "/api/v1/routing-points/SW_InFront/5001/calls/0/route",
            {"route_type": "Sideways"},
        ),
        ("POST", "/api/v1/routing-points/SW_InFront/5001/calls/0/treatment", {"type": "Dance"}),
        ("POST", "/api/v1/calls/C1/release", {"now": True}),
    ]:
        status, answer, _ = await env.request(method, where, body)
        assert status == 400, (where, body, answer)
    assert await env.get("/api/v1/calls/C1") == before
    (switch,) = await env.get("/api/v1/switches")
    assert (
        switch["link_up"]
        and next(d for d in switch["dns"] if d["number"] == "7001")["agent"] is None
    )
    points = {rp["dn"]: rp["router"] for rp in await env.get("/api/v1/routing-points")}
    assert points == {"5000": "builtin", "5001": "none"}


async def test_not_found_and_conflicts(env: Env) -> None:
    await call_with_data(env)
    add = {"action": "add", "data": [{"name": "a", "value": "b"}]}
    for method, path, body in [
        ("POST", "/api/v1/calls/nope/user-data", add),
        ("DELETE", "/api/v1/calls/nope/user-data", UNSET),
        ("POST", "/api/v1/calls/nope/release", UNSET),
        ("POST", "/api/v1/agents/SW_Nowhere/7001/login", {"agent_id": "A"}),
        ("POST", "/api/v1/agents/SW_InFront/9999/login", {"agent_id": "A"}),
        ("POST", "/api/v1/routing-points/SW_InFront/7001/calls/00/route", {"dest": "1"}),
        ("POST", "/api/v1/routing-points/SW_InFront/5001/calls/00/route", {"dest": "1"}),
        ("PUT", "/api/v1/routing-points/SW_InFront/9999/router", {"router": "external"}),
        ("PUT", "/api/v1/switches/SW_Nowhere/link", {"up": True}),
    ]:
        status, answer, _ = await env.request(method, path, body)
        assert status == 404 and answer["error"], (path, answer)

    # 16 KB of user data is the switch's limit: EventError, nothing attached
    big = {"action": "add", "data": [{"name": "big", "value": "x" * 17_000}]}
    status, answer, _ = await env.request("POST", "/api/v1/calls/C1/user-data", big)
    assert status == 409 and answer["error_code"] == 53
    assert answer["error_name"] == "TERR_INVALID_ATTR" and answer["request"] == "TAttachUserData"
    assert names(answer) == ["EventError"]
    assert len((await env.get("/api/v1/calls/C1"))["user_data"]) == 1

    login = "/api/v1/agents/SW_InFront/7001/login"
    await env.act("POST", login, {"agent_id": "A1", "queue": "6000", "work_mode": "AutoIn"})
    status, answer, _ = await env.request("POST", login, {"agent_id": "A1"})
    assert status == 409 and answer["error_code"] == 50 and answer["request"] == "TAgentLogin"
    status, answer, _ = await env.request(
        "POST", "/api/v1/agents/SW_InFront/5000/login", {"agent_id": "A2"}
    )
    assert status == 409 and answer["error_code"] == 51  # a routing point holds no agent
    status, answer, _ = await env.request(
        "PUT", "/api/v1/routing-points/SW_InFront/5001/router", {"router": "builtin"}
    )
    assert status == 409 and "no built-in rules" in answer["error"]


async def test_release_hangs_up_the_caller(env: Env) -> None:
    link = await call_with_data(env)
    answer = await env.act("POST", "/api/v1/calls/C1/release")
    assert names(answer) == ["EventReleased"] and answer["events"][0]["reference_id"] is None
    await expect(link, "C1", "<CallStatus Event='Released'/>")
    assert (await env.get("/api/v1/calls/C1"))["state"] == "DETACHED"
    status, answer, _ = await env.request("POST", "/api/v1/calls/C1/release")
    assert status == 409 and "already released" in answer["error"]
    status, answer, _ = await env.request(
        "POST",
        "/api/v1/calls/C1/user-data",
        {"action": "add", "data": [{"name": "a", "value": "b"}]},
    )
    assert status == 409 and answer["request"] == "TAttachUserData"
    await link.send("C1", "<EndCall EndCause='Normal'/>")
    await asyncio.sleep(0.05)
    assert (await env.request("POST", "/api/v1/calls/C1/release"))[0] == 404
    assert await env.get("/api/v1/calls") == []


async def test_agent_control_on_any_dn_reaches_monitoring_ivrs(env: Env) -> None:
    link = await env.ivr()
    base = "/api/v1/agents/SW_InFront/4002"
    answer = await env.act(
        "POST", f"{base}/login", {"agent_id": "A7", "queue": "6000", "work_mode": "ManualIn"}
    )
    assert names(answer) == ["EventAgentLogin", "EventAgentReady"]
    assert (
        answer["events"][0]["agent_id"] == "A7" and answer["events"][1]["work_mode"] == "ManualIn"
    )
    assert await next_message(link, "L") == m.MonitorInfo(
        Agent=m.Agent(PortNum="2", Status="LoggedIn")
    )
    assert await next_message(link, "L") == m.MonitorInfo(
        Agent=m.Agent(PortNum="2", Status="Ready")
    )
    answer = await env.act("POST", f"{base}/not-ready", {"work_mode": "AfterCallWork"})
    assert names(answer) == ["EventAgentNotReady"]
    assert await next_message(link, "L") == m.MonitorInfo(
        Agent=m.Agent(PortNum="2", Status="NotReady")
    )
    ivrs = {ivr["name"]: ivr for ivr in await env.get("/api/v1/ivrs")}
    assert ivrs["IVR_1"]["ports"][1]["agent"] == {
        "agent_id": "A7",
        "state": "NotReady",
        "queue": "6000",
        "work_mode": "AfterCallWork",
    }
    assert names(await env.act("POST", f"{base}/ready", {})) == ["EventAgentReady"]
    assert await next_message(link, "L") == m.MonitorInfo(
        Agent=m.Agent(PortNum="2", Status="Ready")
    )
    assert names(await env.act("POST", f"{base}/logout")) == ["EventAgentLogout"]
    assert await next_message(link, "L") == m.MonitorInfo(
        Agent=m.Agent(PortNum="2", Status="LoggedOut")
    )
    status, answer, _ = await env.request("POST", f"{base}/ready", {})
    assert status == 409 and answer["error_code"] == 50


async def test_link_maintenance(env: Env) -> None:
    link = await env.ivr(monitor="set")
    assert (await next_message(link, "L")).Server.Status == "OK"
    answer = await env.act("PUT", "/api/v1/switches/SW_InFront/link", {"up": False})
    assert answer["link_up"] is False and names(answer) == ["EventLinkDisconnected"]
    assert (await next_message(link, "L")).Server.Status == "Unavailable"
    (switch,) = await env.get("/api/v1/switches")
    assert switch["link_up"] is False
    await link.send("C9", "<NewCall CallControlMode='Network'><CalledNum>1</CalledNum></NewCall>")
    await expect(link, "C9", "<EndCall EndCause='ServerPaused'/>")
    answer = await env.act("PUT", "/api/v1/switches/SW_InFront/link", {"up": True})
    assert answer["link_up"] is True and names(answer)[0] == "EventLinkConnected"
    assert (await next_message(link, "L")).Server.Status == "OK"


async def test_log_level_changes_at_run_time(env: Env, restore_log_level: Any) -> None:
    assert (await env.act("PUT", "/api/v1/log-level", {"level": "error"})) == {"level": "ERROR"}
    assert logs.get_level() == "ERROR"
    assert (await env.get("/api/v1/log-level")) == {"level": "ERROR"}
    assert (await env.act("PUT", "/api/v1/log-level", {"level": "DEBUG"})) == {"level": "DEBUG"}


# ------------------------------------------------------------------------------------ routers


async def test_external_router_routes_over_the_api(env: Env) -> None:
    link = await call_with_data(env)
    path = "/api/v1/routing-points/SW_InFront/5000/router"
    assert await env.act("PUT", path, {"router": "external"}) == {
        "switch": SWITCH,
        "dn": "5000",
        "router": "external",
        "url": None,
    }
    await link.send("C1", "<RouteRequest RouteDN='5000'/>")
    await link.expect_silence(0.15)  # the built-in rules no longer answer
    point = next(rp for rp in await env.get("/api/v1/routing-points") if rp["dn"] == "5000")
    assert point["router"] == "external"
    (waiting,) = point["waiting"]
    conn_id = waiting["conn_id"]
    route = f"/api/v1/routing-points/SW_InFront/5000/calls/{conn_id}"
    answer = await env.act(
        "POST",
        f"{route}/treatment",
        {"type": "PlayAnnounce", "parameters": [{"name": "ID", "type": "Int", "value": 7}]},
    )
    assert names(answer) == ["RequestApplyTreatment"]
    assert await next_message(link, "C1") == m.TreatCall(
        Type="PlayAnnounce", Parameters=(Node(Name="ID", Type="Int", Val="7"),)
    )
    await link.send("C1", "<TreatStatus Status='Started'/>")
    await link.send("C1", "<TreatStatus Status='Completed'/>")
    await asyncio.sleep(0.05)
    answer = await env.act(
        "POST",
        f"{route}/route",
        {"dest": "7003", "extensions": [{"name": "ROUTED_BY", "value": "api"}]},
    )
    assert names(answer) == ["RequestRouteCall", "EventRouteUsed"]
    assert await next_message(link, "C1") == m.RouteResponse(
        RouteType="Normal", Dest="7003", ExtnsEx=(Node(Name="ROUTED_BY", Type="Str", Val="api"),)
    )
    status, answer, _ = await env.request("POST", f"{route}/route", {"dest": "7003"})
    assert status == 409 and "does not wait" in answer["error"]

    # back to the built-in rules: routed at once to 7002 (Segment Gold goes to 7001 first)
    assert (await env.act("PUT", path, {"router": "builtin"}))["router"] == "builtin"
    assert SWITCH not in {
        name
        for name, router in env.server.service.routers.items()
        if isinstance(router, RoutingPointDispatcher)
    }
    await link.send("C1", "<RouteRequest RouteDN='5000'/>")
    message = await next_message(link, "C1")
    assert message.RouteType == "Normal" and message.Dest == "7001"


async def test_external_router_still_gets_the_router_timeout_default(env: Env) -> None:
    link = await call_with_data(env)
    await env.act("PUT", "/api/v1/routing-points/SW_InFront/5000/router", {"router": "external"})
    await link.send("C1", "<RouteRequest RouteDN='5000'/>")
    started = asyncio.get_running_loop().time()
    await expect(link, "C1", "<RouteResponse RouteType='Default'/>")
    assert asyncio.get_running_loop().time() - started >= ROUTER_TIMEOUT * 0.9


async def test_router_choice_survives_a_reload(env: Env) -> None:
    await env.act("PUT", "/api/v1/routing-points/SW_InFront/5000/router", {"router": "external"})
    env.server.reload(make_config())
    assert isinstance(env.server.service.routers[SWITCH], RoutingPointDispatcher)
    points = {rp["dn"]: rp["router"] for rp in await env.get("/api/v1/routing-points")}
    assert points == {"5000": "external", "5001": "none"}


class Webhook:
    """A tiny HTTP service playing an external router."""

    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.asked: list[dict[str, Any]] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.asked.append(await request.json())
        answer = self.answers.pop(0) if self.answers else {}
        return web.json_response(answer)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/route", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}/route"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.fixture
async def webhook() -> AsyncIterator[Webhook]:
    hook = Webhook([])
    await hook.start()
    yield hook
    await hook.stop()


async def test_webhook_router_answers_with_treatment_then_route(env: Env, webhook: Webhook) -> None:
    webhook.answers[:] = [
        {
            "treatment": {
                "type": "CollectDigits",
                "parameters": [{"name": "MAX", "type": "Int", "value": 4}],
            }
        },
        {"route_type": "Normal", "dest": "7004", "extensions": [{"name": "HOOK", "value": "yes"}]},
    ]
    link = await call_with_data(env)
    answer = await env.act(
        "PUT",
        "/api/v1/routing-points/SW_InFront/5001/router",
        {"router": "webhook", "url": webhook.url},
    )
    assert answer["router"] == "webhook" and answer["url"] == webhook.url
    await link.send("C1", "<RouteRequest RouteDN='5001'><CED>12</CED></RouteRequest>")
    assert await next_message(link, "C1") == m.TreatCall(
        Type="CollectDigits", Parameters=(Node(Name="MAX", Type="Int", Val="4"),)
    )
    await link.send("C1", "<TreatStatus Status='Started'/>")
    await link.send("C1", "<TreatStatus Status='Completed' CED='1234'/>")
    assert await next_message(link, "C1") == m.RouteResponse(
        RouteType="Normal", Dest="7004", ExtnsEx=(Node(Name="HOOK", Type="Str", Val="yes"),)
    )
    first, second = webhook.asked
    assert first["event"] == "EventRouteRequest" and first["dn"] == "5001"
    assert first["other_dn"] == "4001" and first["collected_digits"] == "12"
    assert first["user_data"] == [{"name": "Segment", "type": "Str", "value": "Gold"}]
    assert second["event"] == "EventTreatmentEnd" and second["collected_digits"] == "1234"
    assert second["conn_id"] == first["conn_id"]


async def test_webhook_down_leaves_the_call_to_the_router_timeout(
    env: Env, webhook: Webhook
) -> None:
    url = webhook.url
    await webhook.stop()  # nobody listens there any more
    link = await call_with_data(env)
    await env.act(
        "PUT", "/api/v1/routing-points/SW_InFront/5000/router", {"router": "webhook", "url": url}
    )
    await link.send("C1", "<RouteRequest RouteDN='5000'/>")
    await expect(link, "C1", "<RouteResponse RouteType='Default'/>")
    assert env.server.service.metrics.router_timeouts == 1


async def test_webhook_silence_and_nonsense_leave_the_default(env: Env, webhook: Webhook) -> None:
    webhook.answers[:] = [{"route_type": "Sideways"}]
    link = await call_with_data(env)
    await env.act(
        "PUT",
        "/api/v1/routing-points/SW_InFront/5000/router",
        {"router": "webhook", "url": webhook.url},
    )
    await link.send("C1", "<RouteRequest RouteDN='5000'/>")
    await expect(link, "C1", "<RouteResponse RouteType='Default'/>")
    assert len(webhook.asked) == 1


# ------------------------------------------------------------------------------- event stream


async def receive(ws: aiohttp.ClientWebSocketResponse, timeout: float = 3.0) -> dict[str, Any]:
    message = await ws.receive(timeout)
    assert message.type == aiohttp.WSMsgType.TEXT, message
    decoded: dict[str, Any] = json.loads(message.data)
    return decoded


async def test_event_stream_with_filters(env: Env) -> None:
    base = env.url.replace("http", "ws") + "/api/v1/events"
    link = await env.ivr()  # before the clients: they test switch events only
    every = await env.http.ws_connect(base, headers=env.auth)
    by_dn = await env.http.ws_connect(
        f"{base}?dn=4002&type=EventRinging,EventEstablished", headers=env.auth
    )
    by_ivr = await env.http.ws_connect(f"{base}?ivr=IVR_1&type=EventRouteRequest", headers=env.auth)
    by_type = await env.http.ws_connect(
        f"{base}?type=EventAgentLogin&type=EventAgentLogout", headers=env.auth
    )
    assert len(env.server.service.listeners) == 1  # one listener for every client

    await start_call(link, "C1", "1", "<ANI>555</ANI>")
    await start_call(link, "C2", "2", "<ANI>556</ANI>")
    await link.send("C2", "<RouteRequest RouteDN='5001'/>")
    await env.act("POST", "/api/v1/agents/SW_InFront/7002/login", {"agent_id": "B"})

    ringing = await receive(every)
    assert ringing["event"] == "EventRinging" and ringing["dn"] == "4001"
    assert ringing["switch"] == SWITCH and ringing["ani"] == "555" and ringing["time"] > 1e9
    assert ringing["user_data"] == [] and len(ringing["conn_id"]) == 16
    assert [(await receive(by_dn))["event"] for _ in range(2)] == [
        "EventRinging",
        "EventEstablished",
    ]
    route = await receive(by_ivr)
    assert route["event"] == "EventRouteRequest" and (route["dn"], route["other_dn"]) == (
        "5001",
        "4002",
    )
    login = await receive(by_type)
    assert login["event"] == "EventAgentLogin" and login["agent_id"] == "B"
    seen = [ringing["event"]] + [(await receive(every))["event"] for _ in range(5)]
    assert seen == [
        "EventRinging",
        "EventEstablished",
        "EventRinging",
        "EventEstablished",
        "EventRouteRequest",
        "EventAgentLogin",
    ]
    for ws in (every, by_dn, by_ivr, by_type):
        await ws.close()
    await asyncio.sleep(0.05)
    assert env.server.service.listeners == []

    for query, status in (("type=EventNothing", 400), ("ivr=IVR_9", 404), ("colour=red", 400)):
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await env.http.ws_connect(f"{base}?{query}", headers=env.auth)
        assert info.value.status == status
    assert env.server.service.listeners == []


async def test_slow_event_client_is_dropped_without_blocking(env: Env) -> None:
    base = env.url.replace("http", "ws") + "/api/v1/events"
    link = await env.ivr()  # before the clients: session notices would use up the slow one
    env.api.event_queue_limit = 1  # the next client holds one event at most
    slow = await env.http.ws_connect(base, headers=env.auth)
    env.api.event_queue_limit = 1000
    fast = await env.http.ws_connect(base, headers=env.auth)

    await start_call(link, "C1", "1")  # two events at once: too many for the slow client
    await link.send("C1", "<CallInfoReq/>")
    assert (await next_message(link, "C1")).tag == "CallInfoResp"  # the server carries on
    assert [(await receive(fast))["event"] for _ in range(2)] == [
        "EventRinging",
        "EventEstablished",
    ]

    overflow = await receive(slow)
    assert overflow["event"] == "overflow" and overflow["limit"] == 1
    closing = await slow.receive(3.0)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert len(env.api.hub.subscribers) == 1 and len(env.server.service.listeners) == 1
    await fast.close()
    await slow.close()
    await asyncio.sleep(0.05)
    assert env.server.service.listeners == []


async def test_event_stream_needs_the_token_when_read_is_not_public(start_api: StartApi) -> None:
    env = await start_api(make_config(public_read=False))
    base = env.url.replace("http", "ws") + "/api/v1/events"
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await env.http.ws_connect(base)
    assert info.value.status == 401
    ws = await env.http.ws_connect(f"{base}?access_token={TOKEN}")
    await env.act("POST", "/api/v1/agents/SW_InFront/7001/login", {"agent_id": "Z"})
    assert (await receive(ws))["event"] == "EventAgentLogin"
    await ws.close()


# ------------------------------------------------------------------- metrics, rates, openapi


async def test_metrics_count_calls_messages_and_links(env: Env) -> None:
    link = await call_with_data(env)
    await link.send("C1", "<RouteRequest RouteDN='5000'/>")
    await next_message(link, "C1")  # RouteResponse from the built-in router
    await link.send("C1", "<EndCall EndCause='Normal'/>")
    await link.send("C2", "<Bogus/>")
    await asyncio.sleep(0.1)
    await env.act("PUT", "/api/v1/switches/SW_InFront/link", {"up": False})
    status, text, headers = await env.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def value(name: str, **labels: str) -> float:
        return samples[(f"ivr_server_{name}", tuple(sorted(labels.items())))]

    assert value("sessions_open") == 1 and value("sessions_opened_total") == 1
    assert value("logins_total", result="OK") == 1
    assert value("messages_in_total", type="NewCall") == 1
    assert value("messages_in_total", type="EndCall") == 1
    assert value("messages_out_total", type="CallStatus") == 2
    assert value("messages_out_total", type="RouteResponse") == 1
    assert value("calls_active") == 0 and value("calls_completed_total") == 1
    assert value("routing_total", route_type="Normal") == 1
    assert value("router_timeouts_total") == 0
    assert value("routing_latency_seconds_count") == 1
    assert value("routing_latency_seconds_bucket", le="+Inf") == 1
    assert value("request_latency_seconds_count", type="NewCall") == 1
    assert ("ivr_server_event_loop_lag_seconds_count", ()) in samples
    assert samples[("process_resident_memory_bytes", ())] > 1e6
    assert samples[("process_cpu_seconds_total", ())] > 0
    assert value("link_up", switch=SWITCH) == 0
    assert sum(v for (n, _), v in samples.items() if n == "ivr_server_errors_total") >= 1
    assert (
        value(
            "api_requests_total",
            method="PUT",
            route="/api/v1/switches/{switch}/link",
            status="200",
        )
        == 1
    )
    assert value("event_stream_clients") == 0


async def test_rates_are_sampled(start_api: StartApi) -> None:
    env = await start_api(rate_interval=0.05)
    link = await env.ivr()
    await start_call(link, "C1", "1")
    await asyncio.sleep(0.25)
    rates = await env.get("/api/v1/rates")
    assert rates["interval"] == 0.05 and rates["window"] == 600.0
    assert rates["series"] == [
        "calls_started",
        "calls_completed",
        "documents_in",
        "documents_out",
        "errors",
    ]
    assert len(rates["samples"]) >= 3
    assert set(rates["samples"][0]) == {"time", *rates["series"]}
    assert sum(s["calls_started"] for s in rates["samples"]) > 0
    assert sum(s["documents_in"] for s in rates["samples"]) > 0


async def test_the_app_serves_exactly_the_table_the_document_describes(env: Env) -> None:
    document = await env.get("/openapi.json", token=None)
    assert document["openapi"] == "3.1.0" and document["info"]["title"]
    described = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    routes = {
        (route.method, route.resource.canonical)
        for route in env.api.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    table = {(op.method, op.path) for op in OPERATIONS}
    assert routes == table == described
    assert env.api.operations is OPERATIONS
    assert document == openapi.document(__version__)


def check(model: type[BaseModel], answer: Any, many: bool = False) -> None:
    """``answer`` is what ``model`` (a list of it: ``many``) describes."""
    for item in answer if many else [answer]:
        model.model_validate(item)


async def test_answers_are_what_their_response_models_describe(env: Env) -> None:
    link = await call_with_data(env)
    await link.send("C1", "<RouteRequest RouteDN='5001'/>")  # 5001 has no router: it waits
    await asyncio.sleep(0.05)
    await env.act("POST", "/api/v1/agents/SW_InFront/7001/login", {"agent_id": "A1"})
    await env.act(
        "PUT",
        "/api/v1/routing-points/SW_InFront/5000/router",
        {"router": "webhook", "url": "http://127.0.0.1:9/route"},
    )
    reads = [
        op
        for op in OPERATIONS
        if op.method == "GET" and op.response is not None and "{" not in op.path
    ]
    assert len(reads) >= 10
    for op in reads:
        assert op.response is not None
        check(op.response, await env.get(op.path), op.many)
    state = await env.get("/api/v1/state", token=None)
    assert state["redacted"] is True
    check(r.State, state)
    check(r.Call, await env.get("/api/v1/calls/C1"))
    assert (await env.get("/api/v1/calls/C1"))["user_data"]  # a key/value list was checked
    add = {"action": "add", "data": [{"name": "k", "list": [{"name": "n", "value": "v"}]}]}
    check(r.ActResult, await env.act("POST", "/api/v1/calls/C1/user-data", add))
    check(r.LinkResult, await env.act("PUT", "/api/v1/switches/SW_InFront/link", {"up": True}))
    level = (await env.get("/api/v1/log-level"))["level"]
    check(r.LogLevel, await env.act("PUT", "/api/v1/log-level", {"level": level}))
    check(r.ActResult, await env.act("POST", "/api/v1/agents/SW_InFront/7001/ready", {}))
    refused = await env.act(
        "POST", "/api/v1/agents/SW_InFront/7001/login", {"agent_id": "A2"}, status=409
    )
    check(r.Error, refused)
    assert refused["error_name"] and refused["events"]
    for status, body in (
        (404, await env.act("GET", "/api/v1/calls/nope", status=404)),
        (400, await env.act("POST", "/api/v1/calls/C1/user-data", {"action": 1}, status=400)),
    ):
        check(r.Error, body)
        assert status == 404 or body["problems"]
    ended = await env.act("POST", "/api/v1/calls/C1/end-call")
    check(r.EndCallResult, ended)
    reload = await env.act("POST", "/api/v1/reload", {}, status=409)  # no file: built-in default
    check(r.ReloadResult, reload)


async def test_web_view_is_served(env: Env) -> None:
    status, page, headers = await env.request("GET", "/", token=None)
    assert status == 200 and headers["Content-Type"].startswith("text/html") and "<html" in page
    for name in ("app.css", "app.js"):
        assert (await env.request("GET", f"/static/{name}", token=None))[0] == 200
    for bad in ("nope.js", "..%2Fserver.py", ".hidden", "%2Fetc%2Fpasswd"):
        assert (await env.request("GET", f"/static/{bad}", token=None))[0] == 404, bad


async def test_api_listener_stops_with_the_server(start_api: StartApi) -> None:
    env = await start_api()
    url = env.url
    ws = await env.http.ws_connect(url.replace("http", "ws") + "/api/v1/events", headers=env.auth)
    await env.server.stop()
    message = await ws.receive(3.0)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    with pytest.raises(aiohttp.ClientConnectionError):
        async with env.http.get(url + "/api/v1/state"):
            pass
    with contextlib.suppress(Exception):
        await ws.close()


def test_serve_command_starts_the_api_and_says_where() -> None:
    served = start_cli()  # with --api-listen 127.0.0.1:0
    try:
        line = served.banner.splitlines()[2]
        assert line.startswith("HTTP API, metrics and web view on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].strip().split(",")[0].rstrip("/")
        with urllib.request.urlopen(f"{url}/api/v1/switches", timeout=5) as response:
            (switch,) = json.loads(response.read())
        assert switch["name"] == SWITCH and switch["link_up"] is True
    finally:
        stop_cli(served)


def test_serve_command_without_api() -> None:
    served = start_cli("--no-api")
    try:
        assert served.banner.splitlines()[2].startswith("HTTP API: off")
    finally:
        stop_cli(served)


def make_certificates(where: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, with openssl."""
    files = {name: where / name for name in ("ca.pem", "ca.key", "server.pem", "server.key")}
    files |= {name: where / name for name in ("client.pem", "client.key", "san.cnf")}
    files["san.cnf"].write_text("subjectAltName=IP:127.0.0.1\n", encoding="ascii")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)

    openssl("req", "-x509", *ec, "-keyout", str(files["ca.key"]), "-out", str(files["ca.pem"]),
            "-days", "2", "-subj", "/CN=ivr-server test CA")  # fmt: skip
    for name, extra in (("server", ["-extfile", str(files["san.cnf"])]), ("client", [])):
        csr = where / f"{name}.csr"
        openssl("req", *ec, "-keyout", str(files[f"{name}.key"]), "-out", str(csr),
                "-subj", f"/CN={name}")  # fmt: skip
        openssl("x509", "-req", "-in", str(csr), "-CA", str(files["ca.pem"]),
                "-CAkey", str(files["ca.key"]), "-CAcreateserial", "-days", "2",
                "-out", str(files[f"{name}.pem"]), *extra)  # fmt: skip
    return files


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_https_with_client_certificates(start_api: StartApi, tmp_path: Path) -> None:
    files = make_certificates(tmp_path)
    base = make_config()
    api = base.api.model_copy(
        update={
            "tls_cert": str(files["server.pem"]),
            "tls_key": str(files["server.key"]),
            "tls_client_ca": str(files["ca.pem"]),
        }
    )
    env = await start_api(base.model_copy(update={"api": api}))
    assert env.url.startswith("https://127.0.0.1:")
    trusted = ssl.create_default_context(cafile=str(files["ca.pem"]))
    with_cert = ssl.create_default_context(cafile=str(files["ca.pem"]))
    with_cert.load_cert_chain(str(files["client.pem"]), str(files["client.key"]))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{env.url}/api/v1/switches", ssl=with_cert) as response:
            assert response.status == 200
        headers = {"Authorization": f"Bearer {TOKEN}"}
        login = f"{env.url}/api/v1/agents/SW_InFront/7001/login"
        async with http.post(login, json={"agent_id": "T"}, ssl=with_cert) as response:
            assert response.status == 401  # mutual TLS does not replace the token
        async with http.post(
            login, json={"agent_id": "T"}, ssl=with_cert, headers=headers
        ) as response:
            assert response.status == 200
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"{env.url}/api/v1/switches", ssl=trusted) as response:
                await response.read()


def test_tls_settings_must_be_complete() -> None:
    with pytest.raises(ValueError, match="go together"):
        ApiConfig(tls_cert="cert.pem")
    with pytest.raises(ValueError, match="needs tls-cert"):
        ApiConfig(tls_client_ca="ca.pem")


async def test_unreadable_tls_files_stop_the_start(
    start_server: StartServer, tmp_path: Path
) -> None:
    base = make_config()
    api = base.api.model_copy(
        update={"tls_cert": str(tmp_path / "missing.pem"), "tls_key": str(tmp_path / "k.pem")}
    )
    with pytest.raises(ConfigError, match=r"api\.tls-cert"):
        await start_server(
            base.model_copy(update={"api": api}), api=ApiServer, api_listen=LOOPBACK_0
        )


async def test_dial_out_over_the_api_reaches_the_ivr_and_reports_its_outcome(env: Env) -> None:
    link = await env.ivr()
    await link.send("L", "<DialOutRegistry Command='Add' DN='5000'/>")
    assert (await link.recv_doc())[1] == m.DialOutRegistryResp(Result="Success")
    ws = await env.http.ws_connect(
        env.url.replace("http", "ws") + "/api/v1/events?type=DialOutProgress", headers=env.auth
    )

    async def ivr_side() -> None:
        got_id, dial_out, _ = await link.recv_doc()
        assert got_id is None and isinstance(dial_out, m.DialOut)
        assert (dial_out.OrigNum, dial_out.DestNum, dial_out.TimeToAnswer) == (
            "5000",
            "5551234",
            "20",
        )
        await link.send(
            "OUT", f"<DialOutInit RefID='{dial_out.RefID}'><CalledNum>4</CalledNum></DialOutInit>"
        )
        await expect(link, "OUT", "<CallStatus Event='Dialing'/>")
        await link.send("OUT", "<CallStatus Event='Established'/>")
        await expect(link, "OUT", "<CallStatus Event='Ringing'/>")
        await expect(link, "OUT", "<CallStatus Event='Established'/>")

    ivr = asyncio.create_task(ivr_side())
    answer = await env.act(
        "POST",
        "/api/v1/dial-out",
        {
            "dn": "5000",
            "dest": "5551234",
            "timeout": 20,
            "user_data": [{"name": "Campaign", "value": "C7"}],
        },
    )
    await ivr
    assert answer["result"] == "established" and answer["call_id"] == "OUT"
    assert [o["kind"] for o in answer["outcomes"]] == ["dialing", "established"]
    kinds = []
    for _ in range(2):
        event = json.loads((await ws.receive(timeout=3)).data)
        assert event["event"] == "DialOutProgress" and event["ref_id"] == answer["ref_id"]
        kinds.append(event["kind"])
    assert kinds == ["dialing", "established"]
    await ws.close()
    # nobody registered 5001; 4001 is not a routing point; no token
    assert (await env.request("POST", "/api/v1/dial-out", {"dn": "5001", "dest": "1"}))[0] == 409
    assert (await env.request("POST", "/api/v1/dial-out", {"dn": "4001", "dest": "1"}))[0] == 404
    status, _, _ = await env.request(
        "POST", "/api/v1/dial-out", {"dn": "5000", "dest": "1"}, token=None
    )
    assert status == 401
    assert env.server.service.outbound.pending_count() == 0


async def test_refused_dial_out_is_answered_with_the_mapped_error(env: Env) -> None:
    link = await env.ivr()
    await link.send("L", "<DialOutRegistry Command='Add' DN='5000'/>")
    await link.recv_doc()

    async def refuse() -> None:
        _, dial_out, _ = await link.recv_doc()
        assert isinstance(dial_out, m.DialOut)
        await link.send(None, f"<DialOutError Error='NoTrunks' RefID='{dial_out.RefID}'/>")

    task = asyncio.create_task(refuse())
    status, answer, _ = await env.request("POST", "/api/v1/dial-out", {"dn": "5000", "dest": "9"})
    await task
    assert status == 409
    assert answer["result"] == "refused" and answer["outcomes"][0]["error_code"] == 58


async def test_stats_and_session_notices(env: Env) -> None:
    ws = await env.http.ws_connect(
        env.url.replace("http", "ws") + "/api/v1/events?type=SessionOpened,SessionLoggedIn",
        headers=env.auth,
    )
    link = await env.ivr()
    opened = json.loads((await ws.receive(timeout=3)).data)
    logged = json.loads((await ws.receive(timeout=3)).data)
    assert opened["event"] == "SessionOpened" and logged["event"] == "SessionLoggedIn"
    assert (logged["ivr"], logged["version"], logged["status"]) == ("IVR_1", "4.0", "OK")
    await ws.close()
    await start_call(link, "S1", "1")
    stats = await env.get("/api/v1/stats")
    by_name = {s["name"]: s for s in stats["statistics"]}
    assert by_name["ReadyAgents_6000"]["value"] == 4
    assert {"name": "IVR_1", "calls": 1} in stats["ivrs"]
    state = await env.get("/api/v1/state")
    assert state["stats"]["statistics"] == stats["statistics"]
