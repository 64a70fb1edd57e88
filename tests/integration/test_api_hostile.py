"""The HTTP API against hostile and careless clients (issue 19 item 6; items 3 and 20.4: the
operator frees a stuck port).

Black box: the real server in this process, its API on a free loopback port, requests written
byte by byte where a client library would refuse to send them (headers that are not Latin-1,
foreign ``Host`` and ``Origin``). Throughout every test a well-behaved IVR session (the canary,
IVR_2) makes complete calls; each must be served completely and on time, and the server's log
must hold no traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast
from xml.sax.saxutils import escape

import aiohttp
import pytest

from ivr_server.api import TOKEN_ENV, ApiServer
from ivr_server.config import ServerConfig
from ivr_server.runtime import IvrServer
from ivr_server.wire import messages as m
from tests.integration.conftest import LOOPBACK_0
from tests.integration.rawlink import RawLink, new_call_body, start_call
from tests.integration.test_api import TOKEN, make_config

StartServer = Callable[..., Awaitable[IvrServer]]

CANARY_DEADLINE = 3.0
"""Seconds a canary call may take from NewCall to its last reply (about 1 ms when idle; a loaded
2-core machine is far slower, and still far from this)."""
PIN = "4711-PIN"
"""A user-data value that must never be served without the token."""
ANI = "5550123987"
"""A caller number that must never be served without the token."""

PATH_VALUES = {
    "call_id": "C1",
    "key": "Segment",
    "switch": "SW_InFront",
    "dn": "5001",
    "conn_id": "0",
    "ivr": "IVR_1",
    "port": "1",
    "name": "app.js",
    "number": "88005500",
}


def fill(template: str) -> str:
    """A route's path with a value for each of its parameters."""
    for name, value in PATH_VALUES.items():
        template = template.replace("{" + name + "}", value)
    return template


# ------------------------------------------------------------------------------ raw HTTP


async def raw_http(port: int, request: bytes, timeout: float = 5.0) -> tuple[int, bytes, bytes]:
    """Send ``request`` as it is; ``(status, head, body)`` of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
        return status, head, body
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()


def http_request(
    method: str,
    path: str,
    *,
    host: bytes,
    headers: tuple[bytes, ...] = (),
    body: bytes = b"",
) -> bytes:
    lines = [
        f"{method} {path} HTTP/1.1".encode(),
        b"Host: " + host,
        *headers,
        b"Content-Length: " + str(len(body)).encode(),
        b"Connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


WS_UPGRADE = (
    b"Upgrade: websocket",
    b"Connection: Upgrade",
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    b"Sec-WebSocket-Version: 13",
)


# ------------------------------------------------------------------------------ the canary


class Canary:
    """A well-behaved IVR_2 session making complete calls (NewCall, UDataSet, EndCall) one
    after another on port 1 while the test runs."""

    def __init__(self, link: RawLink) -> None:
        self.link = link
        self.calls = 0
        self.slowest = 0.0
        self.stray: list[tuple[str | None, str]] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _reply(self, call_id: str) -> m.Message:
        while True:
            got_id, message, _ = await self.link.recv_doc(CANARY_DEADLINE)
            if got_id == call_id:
                return message
            self.stray.append((got_id, message.tag))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stop.is_set():
            call_id = f"CANARY-{self.calls}"
            began = loop.time()
            await self.link.send(call_id, new_call_body("1", "<ANI>5550000</ANI>", "3.0"))
            assert await self._reply(call_id) == m.CallStatus(Event="Ringing")
            assert await self._reply(call_id) == m.CallStatus(Event="Established")
            await self.link.send(
                call_id,
                '<UDataSet Action="Add"><RequestId>1</RequestId><UDataEx>'
                '<Node Name="Step" Type="Str" Val="menu"/></UDataEx></UDataSet>',
            )
            assert await self._reply(call_id) == m.UDataResp(Result="Success", RequestId="1")
            await self.link.send(call_id, '<EndCall EndCause="Normal"/>')
            await self.link.send(call_id, "<CallInfoReq/>")  # ended: NoSuchCall, in order
            assert await self._reply(call_id) == m.CallError(FailedReq="NoSuchCall")
            self.slowest = max(self.slowest, loop.time() - began)
            self.calls += 1
            await asyncio.sleep(0.005)

    async def cancel(self) -> None:
        """Stop at once (teardown). Cancelled again until done: Python 3.11's ``wait_for``
        loses a cancellation that meets a reply arriving."""
        self._stop.set()
        task = self._task
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=0.1)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: a failure was reported by check(), or not wanted

    async def check(self) -> None:
        """Stop, and require every call served on time and none failed."""
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, CANARY_DEADLINE * 3)
        assert self.calls > 0, "the canary made no call"
        assert self.slowest < CANARY_DEADLINE, f"a canary call took {self.slowest:.2f} s"
        assert self.stray == [], self.stray


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert bad == [], [r.getMessage() for r in bad]


# ------------------------------------------------------------------------------ fixtures


class Api:
    """A running server with its API and a canary."""

    def __init__(self, server: IvrServer, http: aiohttp.ClientSession, canary: Canary) -> None:
        self.server = server
        self.api = cast(ApiServer, server.api)
        self.http = http
        self.canary = canary
        self.links: list[RawLink] = [canary.link]
        host, port = self.api.addresses[0]
        self.port = port
        self.host = f"{host}:{port}".encode()
        self.url = f"http://{host}:{port}"

    async def request(
        self, method: str, path: str, body: Any = None, *, token: str | None = TOKEN, **kw: Any
    ) -> tuple[int, Any]:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with self.http.request(
            method, self.url + path, json=body, headers=headers, **kw
        ) as response:
            text = await response.text()
            try:
                return response.status, json.loads(text)
            except ValueError:
                return response.status, text

    async def raw(self, request: bytes) -> tuple[int, Any]:
        status, _, body = await raw_http(self.port, request)
        try:
            return status, json.loads(body)
        except ValueError:
            return status, body

    async def ivr(self, name: str = "IVR_1", call_id: str = "L") -> RawLink:
        link = await RawLink.open(self.server.port)
        self.links.append(link)
        await link.login(call_id, name)
        return link


StartApi = Callable[..., Awaitable[Api]]


@pytest.fixture
async def start_api(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[StartApi]:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    started: list[Api] = []

    async def start(config: ServerConfig | None = None) -> Api:
        server = await start_server(config or make_config(), api=ApiServer, api_listen=LOOPBACK_0)
        link = await RawLink.open(server.port)
        await link.login("K", "IVR_2", version="3.0")
        canary = Canary(link)
        api = Api(server, aiohttp.ClientSession(), canary)
        started.append(api)
        canary.start()
        return api

    yield start
    for api in started:
        await api.canary.cancel()
        for link in api.links:
            await link.close()
        await api.http.close()


@pytest.fixture
async def api(start_api: StartApi) -> Api:
    return await start_api()


async def call_with_secrets(api: Api, call_id: str = "C1", port: str = "1") -> RawLink:
    """An IVR_1 call with a caller number and a PIN in its user data, waiting at 5001."""
    link = await api.ivr()
    await start_call(link, call_id, port, f"<ANI>{ANI}</ANI>")
    await link.send(
        call_id,
        '<UDataSet Action="Add"><RequestId>1</RequestId><UDataEx>'
        f'<Node Name="PIN" Type="Str" Val="{PIN}"/></UDataEx></UDataSet>',
    )
    assert (await link.recv_doc())[1] == m.UDataResp(Result="Success", RequestId="1")
    await link.send(call_id, "<RouteRequest RouteDN='5001'/>")  # no router there: it waits
    return link


# ------------------------------------------------------------------------------ tokens

WEIRD_TOKENS: tuple[bytes, ...] = (
    b"\xff\xfe\xfd",  # not UTF-8 at all
    b"\xed\xa0\x80",  # a UTF-8-encoded surrogate
    b"\xe2\x82\xac uro",  # outside Latin-1
    b"caf\xc3\xa9",  # Latin-1 in UTF-8
    b"\xe9t\xe9",  # Latin-1 bytes
    "🔑".encode(),
    TOKEN.encode() + b"\x80",
    b"x" * 6000,
)


async def test_weird_tokens_get_401_on_every_endpoint_that_needs_one(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    guarded = [route for route in api.api.operations if route.access in ("act", "private")]
    assert sum(route.access == "act" for route in guarded) >= 16
    for route in guarded:
        path = fill(route.path)
        for token in WEIRD_TOKENS:
            status, answer = await api.raw(
                http_request(
                    route.method,
                    path,
                    host=api.host,
                    headers=(b"Authorization: Bearer " + token,),
                    body=b"{}" if route.method != "GET" else b"",
                )
            )
            assert (status, answer) == (401, {"error": "wrong bearer token"}), (path, token)
    # the same in the query (GET only: RFC 6750 §2.3), percent-encoded and raw
    for query in ("%ED%A0%80", "%FF%FE", "%E2%82%AC", "\u20ac", "%00"):
        for path in ("/api/v1/calls", "/api/v1/routing-points", "/api/v1/events"):
            status, answer = await api.request("GET", f"{path}?access_token={query}", token=None)
            assert status == 401, (path, query, answer)
    await api.canary.check()
    no_tracebacks(caplog)


# ------------------------------------------------------------------------------ who reads what

HARMLESS = (
    "/api/v1/switches",
    "/api/v1/ivrs",
    "/api/v1/sessions",
    "/api/v1/stats",
    "/api/v1/rates",
    "/api/v1/log-level",
    "/metrics",
)
USER_DATA = ("/api/v1/calls", "/api/v1/calls/C1", "/api/v1/routing-points")


async def test_user_data_needs_the_token_by_default(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    default = make_config()
    assert default.api.public_read is True  # the default, as shipped
    api = await start_api(default)
    await call_with_secrets(api)

    for path in USER_DATA:
        status, answer = await api.request("GET", path, token=None)
        assert (status, answer) == (401, {"error": "a bearer token is required"}), path
        status, answer = await api.request("GET", path)
        assert status == 200 and ANI in json.dumps(answer), path
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await api.http.ws_connect(api.url.replace("http", "ws") + "/api/v1/events")
    assert info.value.status == 401

    # the harmless views are public; nothing in them is a PIN or a caller's number
    for path in (*HARMLESS, "/", "/static/app.js", "/openapi.json"):
        status, answer = await api.request("GET", path, token=None)
        assert status == 200, path
        text = answer if isinstance(answer, str) else json.dumps(answer)
        assert PIN not in text and ANI not in text, path
    # ... and the state, without the calls' user data, caller numbers and parties
    status, state = await api.request("GET", "/api/v1/state", token=None)
    assert status == 200 and state["redacted"] is True
    assert PIN not in json.dumps(state) and ANI not in json.dumps(state)
    (call,) = [c for c in state["calls"] if c["ivr"] == "IVR_1"]  # (and the canary's)
    assert (call["call_id"], call["port"], call["state"]) == ("C1", "1", "ROUTING")
    assert (call["ani"], call["dnis"], call["user_data"], call["parties"]) == (None,) * 4
    rp = next(p for p in state["routing_points"] if p["dn"] == "5001")
    assert [(w["call_id"], w["ani"]) for w in rp["waiting"]] == [("C1", None)]
    # with the token: in full
    status, state = await api.request("GET", "/api/v1/state")
    assert status == 200 and state["redacted"] is False and PIN in json.dumps(state)
    # a wrong token is refused even where none is needed (a page's stale token shows)
    status, _ = await api.request("GET", "/api/v1/state", token="stale")
    assert status == 401

    # public-read = false: every read needs it
    closed = await start_api(make_config(public_read=False))
    for path in (*HARMLESS, "/api/v1/state", *USER_DATA):
        status, _ = await closed.request("GET", path, token=None)
        assert status == 401, path
        assert (await closed.request("GET", path))[0] in (200, 404), path
    # no token configured at all: user data cannot be read, the harmless views can
    tokenless = await start_api(make_config(token=None))
    for path in USER_DATA:
        status, answer = await tokenless.request("GET", path, token=None)
        assert status == 403 and "no API token" in answer["error"], path
    assert (await tokenless.request("GET", "/api/v1/ivrs", token=None))[0] == 200

    for each in (api, closed, tokenless):
        await each.canary.check()
    no_tracebacks(caplog)


# ------------------------------------------------------------------------------ Host and Origin


async def test_foreign_origin_and_host_are_refused_on_acts_and_the_event_stream(
    start_api: StartApi, caplog: pytest.LogCaptureFixture
) -> None:
    api = await start_api()
    port = str(api.port).encode()
    auth = b"Authorization: Bearer " + TOKEN.encode()
    login = "/api/v1/agents/SW_InFront/7001/login"
    body = b'{"agent_id": "A1"}'

    refused: list[tuple[bytes, tuple[bytes, ...]]] = [
        (api.host, (b"Origin: http://evil.example",)),  # a cross-site page
        (api.host, (b"Origin: null",)),  # a sandboxed frame, a file
        (api.host, (b"Origin: http://127.0.0.1:1",)),  # another port: another origin
        (b"evil.example:" + port, ()),  # DNS rebinding: a foreign name for our address
        (b"evil.example:" + port, (b"Origin: http://evil.example:" + port,)),
        (b"127.0.0.1.evil.example:" + port, ()),
        (b"", ()),
    ]
    for host, extra in refused:
        status, answer = await api.raw(
            http_request("POST", login, host=host, headers=(auth, *extra), body=body)
        )
        assert status == 403, (host, extra, answer)
        status, _ = await api.raw(
            http_request("GET", "/api/v1/events", host=host, headers=(auth, *WS_UPGRADE, *extra))
        )
        assert status == 403, (host, extra)
    _, switches = await api.request("GET", "/api/v1/switches")
    dn = next(d for d in switches[0]["dns"] if d["number"] == "7001")
    assert dn["agent"] is None  # none of them logged the agent in

    allowed: list[tuple[bytes, tuple[bytes, ...]]] = [
        (api.host, ()),  # not a browser
        (api.host, (b"Origin: http://" + api.host,)),  # the page this API served
        (b"localhost:" + port, (b"Origin: http://localhost:" + port,)),
        (b"[::1]:" + port, ()),
    ]
    for n, (host, extra) in enumerate(allowed):
        request_body = json.dumps({"agent_id": f"A{n}"}).encode()
        await api.request("POST", "/api/v1/agents/SW_InFront/7001/logout", {})
        status, answer = await api.raw(
            http_request("POST", login, host=host, headers=(auth, *extra), body=request_body)
        )
        assert status == 200, (host, extra, answer)
        status, _ = await api.raw(
            http_request("GET", "/api/v1/events", host=host, headers=(auth, *WS_UPGRADE, *extra))
        )
        assert status == 101, (host, extra)
    ws = await api.http.ws_connect(
        api.url.replace("http", "ws") + "/api/v1/events",
        headers={"Authorization": f"Bearer {TOKEN}"},
        origin=api.url,
    )
    await ws.close()
    # harmless reads are not checked (nothing to protect, and scrapers use any name)
    status, _ = await api.raw(http_request("GET", "/api/v1/ivrs", host=b"evil.example"))
    assert status == 200

    # [api] allowed-origins: a console elsewhere, or no check at all
    base = make_config()
    for origins, host, origin, expected in (
        (("https://ops.example.com",), api.host, b"https://ops.example.com", 200),
        (("https://ops.example.com",), b"ops.example.com", b"https://ops.example.com", 200),
        (("https://ops.example.com",), api.host, b"https://ops.example.com:8443", 403),
        (("*",), b"evil.example", b"http://evil.example", 200),
    ):
        config = base.model_copy(
            update={"api": base.api.model_copy(update={"allowed_origins": origins})}
        )
        other = await start_api(config)
        status, answer = await other.raw(
            http_request("POST", login, host=host, headers=(auth, b"Origin: " + origin), body=body)
        )
        assert status == expected, (origins, host, origin, answer)
        await other.canary.check()

    await api.canary.check()
    no_tracebacks(caplog)


def test_allowed_origins_must_be_origins() -> None:
    base = make_config()
    for bad in ("evil.example", "ftp://x", "https://x/path", "https://x:99999", "https://"):
        with pytest.raises(ValueError, match="not a web origin"):
            base.api.model_validate({"allowed_origins": [bad]})
    ok = base.api.model_validate({"allowed_origins": ["HTTPS://Ops.Example.com/", "*"]})
    assert ok.allowed_origins == ("https://ops.example.com", "*")


# ------------------------------------------------------------------------------ deep JSON


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


async def test_deeply_nested_json_is_a_400(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    await call_with_secrets(api)
    acts = [route for route in api.api.operations if route.access == "act"]
    kv: dict[str, Any] = {"name": "k", "type": "Str", "value": "v"}
    for _ in range(20):
        kv = {"name": "k", "list": [kv]}
    bodies = {
        "100,000 arrays": nested(100_000),
        "50,000 arrays in a field": b'{"data": ' + nested(50_000) + b"}",
        "50,000 objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
        "1,000 arrays": nested(1000),
        "20 nested key/value lists": json.dumps({"action": "add", "data": [kv]}).encode(),
    }
    for route in acts:
        for what, body in bodies.items():
            status, answer = await api.raw(
                http_request(
                    route.method,
                    fill(route.path),
                    host=api.host,
                    headers=(b"Authorization: Bearer " + TOKEN.encode(),),
                    body=body,
                )
            )
            assert status == 400, (route.path, what, status, answer)
            assert "nested deeper than 32" in answer["error"], (route.path, what)
    # the call is untouched, its user data too
    _, call = await api.request("GET", "/api/v1/calls/C1")
    assert [item["value"] for item in call["user_data"]] == [PIN]
    # larger than the API reads at all
    status, _ = await api.request(
        "POST", "/api/v1/calls/C1/user-data", data=io.BytesIO(b"[" * (2 * 1024 * 1024))
    )
    assert status == 413
    await api.canary.check()
    no_tracebacks(caplog)


# ------------------------------------------------------------------------------ freeing a port

ODD_ID = "x" * 900 + "/?#%&'<> ~"
"""A CallId as long as the server admits (written escaped, it stays within what a reply may echo)
and full of what URLs and XML treat specially: only the port names its call simply."""


async def new_call(link: RawLink, call_id: str, port: str) -> None:
    """NewCall with any CallId (escaped in the document), and its two CallStatus events."""
    await link.send(escape(call_id, {"'": "&apos;"}), new_call_body(port))
    for event in ("Ringing", "Established"):
        assert (await link.recv_doc())[:2] == (call_id, m.CallStatus(Event=event))


async def test_end_call_by_port_frees_any_stuck_port(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    stuck = await api.ivr()
    await new_call(stuck, ODD_ID, "31")
    # the port is taken: the next call there is refused
    other = await api.ivr(call_id="L2")
    await other.send("N1", new_call_body("31"))
    assert (await other.recv_doc())[:2] == ("N1", m.EndCall(EndCause="Resources"))

    end = "/api/v1/ivrs/IVR_1/ports/31/end-call"
    # guarded by the CallId the operator saw: another call is left alone
    status, answer = await api.request("POST", end, {"call_id": "not-this-one"})
    assert status == 409 and "has another call" in answer["error"]
    # no token, a foreign page: refused, nothing done
    assert (await api.request("POST", end, {}, token=None))[0] == 401
    assert (await api.request("POST", end, {}, headers={"Origin": "http://evil.example"}))[0] == 403
    _, ivrs = await api.request("GET", "/api/v1/ivrs")
    assert ivrs[0]["ports"][30]["call"]["call_id"] == ODD_ID

    status, answer = await api.request("POST", end, {"call_id": ODD_ID})
    assert status == 200, answer
    assert (answer["call_id"], answer["ivr"], answer["port"]) == (ODD_ID, "IVR_1", "31")
    assert "EventReleased" in [event["event"] for event in answer["events"]]
    # the IVR is told, as on a Call Timeout
    assert (await stuck.recv_doc())[:2] == (ODD_ID, m.EndCall(EndCause="Timeout"))
    # the port is free at once
    _, ivrs = await api.request("GET", "/api/v1/ivrs")
    assert ivrs[0]["ports"][30]["call"] is None
    await start_call(other, "N2", "31")
    await other.send("N2", '<EndCall EndCause="Normal"/>')
    # and logged: what, where, who
    (record,) = [r for r in caplog.records if "ended by the operator" in r.getMessage()]
    text = record.getMessage()
    assert record.levelno == logging.WARNING and "port 31 of IVR_1" in text
    assert "API client 127.0.0.1" in text and f"({len(ODD_ID)} characters)" in text

    # a free port, an unknown port or IVR
    status, answer = await api.request("POST", end, {})
    assert status == 409 and "has no call" in answer["error"]
    assert (await api.request("POST", "/api/v1/ivrs/IVR_1/ports/99/end-call", {}))[0] == 404
    assert (await api.request("POST", "/api/v1/ivrs/IVR_9/ports/1/end-call", {}))[0] == 404
    await stuck.expect_silence(0.2)  # nothing more for the call that ended

    # released by the API, the call stays DETACHED on its port until the IVR's EndCall: ended
    # by CallId (the URL escapes what it must)
    await new_call(other, "REL/1?", "30")
    status, _ = await api.request("POST", "/api/v1/calls/REL%2F1%3F/release")
    assert status == 200
    assert (await other.recv_doc())[:2] == ("REL/1?", m.CallStatus(Event="Released"))
    _, ivrs = await api.request("GET", "/api/v1/ivrs")
    assert ivrs[0]["ports"][29]["call"]["state"] == "DETACHED"
    status, answer = await api.request("POST", "/api/v1/calls/REL%2F1%3F/end-call")
    assert status == 200 and answer["port"] == "30"
    assert (await other.recv_doc())[:2] == ("REL/1?", m.EndCall(EndCause="Timeout"))
    _, ivrs = await api.request("GET", "/api/v1/ivrs")
    assert ivrs[0]["ports"][29]["call"] is None

    # a call whose IVR has no session left (no one to tell: the port is freed all the same)
    for link in (stuck, other):
        await link.close()
        api.links.remove(link)
    gone = await api.ivr(call_id="L3")
    await start_call(gone, "ORPHAN", "29")
    await gone.close()
    api.links.remove(gone)
    status, answer = await api.request("POST", "/api/v1/ivrs/IVR_1/ports/29/end-call", {})
    assert status == 200 and answer["call_id"] == "ORPHAN"
    assert (await api.request("GET", "/api/v1/calls/ORPHAN"))[0] == 404
    assert (await api.request("POST", "/api/v1/calls/ORPHAN/end-call"))[0] == 404
    _, ivrs = await api.request("GET", "/api/v1/ivrs")
    assert ivrs[0]["ports"][28]["call"] is None

    await api.canary.check()
    no_tracebacks(caplog)
