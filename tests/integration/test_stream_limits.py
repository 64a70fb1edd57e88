"""The event stream's limits (issue 26 item 2): a cap on clients, each event serialised once, and
an IVR's calls served on time while the limit's worth of clients watch, some of them not reading.

The refusals run in process; the latency test runs the real ``ivr-server serve`` in its own
process (its own core, as in production), the reading clients in another, the clients that do
not read and the measuring IVR in this one.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.resources
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ivr_server.api import events as events_module
from ivr_server.config import ServerConfig
from tests.integration.conftest import start as start_cli
from tests.integration.conftest import stop as stop_cli
from tests.integration.rawlink import RawLink, start_call
from tests.integration.test_api import TOKEN, Env, StartApi, make_config, receive
from tests.integration.test_api import start_api as start_api  # the fixture

SUBSCRIBERS = 64
"""The default ``api.max-subscribers``: the latency test opens this many clients."""
NOT_READING = 16
"""Of which this many never read a byte (their socket buffers fill, then their queues)."""
CALLS = 150
"""Calls measured in each phase of the latency test."""


def limited(most: int, per_peer: int) -> ServerConfig:
    config = make_config()
    api = config.api.model_copy(
        update={"max_subscribers": most, "max_subscribers_per_peer": per_peer}
    )
    return config.model_copy(update={"api": api})


async def upgrade(env: Env) -> tuple[int, Any, Any]:
    """A WebSocket upgrade of the event stream by hand: ``(status, JSON body, headers)``."""
    headers = {
        **env.auth,
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
    }
    async with env.http.get(env.url + "/api/v1/events", headers=headers) as response:
        return response.status, json.loads(await response.text()), response.headers


async def call_completes(link: RawLink, call_id: str) -> None:
    await start_call(link, call_id, "1")
    await link.send(call_id, "<EndCall EndCause='Normal'/>")
    await link.send(call_id, "<CallInfoReq/>")
    assert (await link.recv_doc())[0] == call_id  # NoSuchCall: the call ended


async def test_clients_over_the_caps_are_refused_with_503(start_api: StartApi) -> None:
    env = await start_api(limited(3, 2))
    link = await env.ivr()
    base = env.url.replace("http", "ws") + "/api/v1/events"
    first = await env.http.ws_connect(base, headers=env.auth)
    second = await env.http.ws_connect(base, headers=env.auth)
    status, body, headers = await upgrade(env)  # a third from the same address
    assert status == 503 and headers["Retry-After"] == "5"
    assert "api.max-subscribers-per-peer" in body["error"], body
    assert len(env.api.hub.subscribers) == 2
    await call_completes(link, "C1")  # the IVR is served meanwhile

    env.server.config = limited(2, 0)  # no per-address cap; two at most (re-read every time)
    status, body, _ = await upgrade(env)
    assert status == 503 and "2 event-stream clients are connected" in body["error"], body
    await first.close()
    await asyncio.sleep(0.05)
    third = await env.http.ws_connect(base, headers=env.auth)  # a place freed
    await env.act("POST", "/api/v1/agents/SW_InFront/7001/login", {"agent_id": "Z"})
    assert (await receive(third))["event"] == "EventAgentLogin"

    env.server.config = limited(0, 0)
    status, body, _ = await upgrade(env)
    assert status == 503 and "turned off" in body["error"], body
    await second.close()
    await third.close()
    await call_completes(link, "C2")


async def test_each_event_is_serialised_once(
    start_api: StartApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = await start_api()
    built: list[bytes] = []
    original = events_module.event_bytes

    def counted(event: Any, at: float) -> bytes:
        data = original(event, at)
        built.append(data)
        return data

    monkeypatch.setattr(events_module, "event_bytes", counted)
    link = await env.ivr()
    base = env.url.replace("http", "ws") + "/api/v1/events"
    clients = [await env.http.ws_connect(base, headers=env.auth) for _ in range(5)]
    await start_call(link, "C1", "1")
    for ws in clients:
        got = [(await receive(ws))["event"] for _ in range(2)]
        assert got == ["EventRinging", "EventEstablished"]
    assert [json.loads(data)["event"] for data in built] == ["EventRinging", "EventEstablished"]
    for ws in clients:
        await ws.close()


# ------------------------------------------------------------------------ latency, out of process

READERS = """
import asyncio, sys, aiohttp
async def main(url, token, n):
    async with aiohttp.ClientSession() as http:
        sockets = [await http.ws_connect(url, headers={"Authorization": "Bearer " + token})
                   for _ in range(n)]
        print("ready", flush=True)
        async def read(ws):
            async for _ in ws:
                pass
        await asyncio.gather(*(read(ws) for ws in sockets))
asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""
"""Reading clients in a process of their own (so that reading costs the measuring IVR nothing)."""


def silent_client(host: str, port: int) -> socket.socket:
    """A client that upgrades to the event stream and then never reads."""
    sock = socket.create_connection((host, port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /api/v1/events HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {TOKEN}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n\r\n"
        ).encode()
    )
    answer = sock.recv(1024)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


async def call_latencies(link: RawLink, prefix: str) -> list[float]:
    """Seconds from each NewCall to its Established, for :data:`CALLS` calls in a row."""
    out: list[float] = []
    for i in range(CALLS):
        began = time.perf_counter()
        await start_call(link, f"{prefix}{i}", "1")
        out.append(time.perf_counter() - began)
        await link.send(f"{prefix}{i}", "<EndCall EndCause='Normal'/>")
        await link.send(f"{prefix}{i}", "<CallInfoReq/>")
        await link.recv_doc()
    return sorted(out)


def quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    text = importlib.resources.files("ivr_server.config").joinpath("default.toml").read_text()
    api = f'[api]\ntoken = "{TOKEN}"\nmax-subscribers = {SUBSCRIBERS}\n'
    api += f"max-subscribers-per-peer = {SUBSCRIBERS}\n"
    path = tmp_path / "server.toml"
    path.write_text(text.replace("[api]\n", api), encoding="utf-8")
    return path


async def test_an_ivr_is_served_on_time_with_the_limit_of_clients(config_file: Path) -> None:
    served = start_cli("--config", str(config_file))
    readers: subprocess.Popen[str] | None = None
    silent: list[socket.socket] = []
    try:
        line = served.banner.splitlines()[2]
        url = line.split(" on ", 1)[1].strip().split(",")[0].rstrip("/")
        host, _, port = url.removeprefix("http://").partition(":")
        link = await RawLink.open(served.port)
        await link.login("L")
        await call_latencies(link, "W")  # warm up
        alone = await call_latencies(link, "A")

        silent = [silent_client(host, int(port)) for _ in range(NOT_READING)]
        ws_url = url.replace("http", "ws") + "/api/v1/events"
        readers = subprocess.Popen(  # noqa: ASYNC220 - nothing else runs on the loop yet
            [sys.executable, "-c", READERS, ws_url, TOKEN, str(SUBSCRIBERS - NOT_READING)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert readers.stdout is not None
        assert readers.stdout.readline().strip() == "ready"
        async with aiohttp.ClientSession() as http:  # one more is refused: the cap holds
            with pytest.raises(aiohttp.WSServerHandshakeError) as info:
                await http.ws_connect(ws_url, headers={"Authorization": f"Bearer {TOKEN}"})
            assert info.value.status == 503
        watched = await call_latencies(link, "B")
        await link.close()
    finally:
        for sock in silent:
            sock.close()
        if readers is not None:
            readers.kill()
            readers.communicate()
        stop_cli(served)
    # Each call makes a few events, each sent to 64 clients: the fan-out costs the server a few
    # hundred microseconds per call, done in 2 ms slices between the IVR's reads. Compared with
    # the same IVR alone in the same run (a loaded machine slows both phases alike): the median
    # may not triple, nor the 99th percentile exceed five times the alone one, plus a floor for
    # the scheduler's noise (measured on a loaded 2-core machine: p50 0.3 ms alone, 0.9-1.6 ms
    # watched; p99 0.4-0.8 ms alone, 4.6-7.4 ms watched). Before the fix, 1,000 clients took a
    # p50 of 2 ms to 99 ms; 64 clients serialising each event 64 times cost ~5 ms a call.
    p50, p99 = quantile(watched, 0.5), quantile(watched, 0.99)
    assert p50 <= 3 * quantile(alone, 0.5) + 0.003, (alone, watched)
    assert p99 <= 5 * quantile(alone, 0.99) + 0.020, (alone, watched)
