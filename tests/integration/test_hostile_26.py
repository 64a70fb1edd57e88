"""Issue 26 items 1 and 5, in-process: idle and slow connections, caps per address and for the
HTTP API, frames before a bad GLI header.

Every test keeps a well-behaved IVR session logged in and checks that it is still answered on
time (:func:`served_on_time`) while the hostile connections are open.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

from ivr_server.api import ApiServer
from ivr_server.config import ServerConfig, default_config
from ivr_server.runtime import IvrServer
from ivr_server.wire import decode_document
from ivr_server.wire import messages as m
from tests.integration.conftest import LOOPBACK_0
from tests.integration.rawlink import RawLink, doc, frame

StartServer = Callable[..., Awaitable[IvrServer]]

SERVER_FULL = bytes.fromhex("0002000402000007")
"""GLI Error frame, code 7: too many connections."""
NOT_AUTHORISED = bytes.fromhex("0002000402000005")
"""GLI Error frame, code 5: not authorised (also: no login within server.login-timeout)."""
INVALID = m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ", ReqId="n2")
"""An AgentQuery outside a logged-in session's CallId: answered, so the document was read."""
ON_TIME = 1.0
"""Longest answer time of the well-behaved session (generous: a loaded 2-core machine)."""
OTHER_HOST = "127.0.0.2"
"""The hostile peer's address (the loopback network answers every 127.x address)."""


def config_with(api: dict[str, Any] | None = None, **server: Any) -> ServerConfig:
    base = default_config()
    return base.model_copy(
        update={
            "server": base.server.model_copy(update=server),
            "api": base.api.model_copy(update=api or {}),
        }
    )


async def served_on_time(link: RawLink, req: str = "ok", call_id: str = "B") -> None:
    """An ``AgentQuery`` on the session's login CallId answered within :data:`ON_TIME`."""
    started = time.monotonic()
    await link.send(call_id, f"<AgentQuery ReqId='{req}' PortNum='3'/>")
    _, answer, _ = await link.recv_doc(timeout=ON_TIME)
    assert isinstance(answer, m.MonitorInfo) and answer.ReqId == req
    assert time.monotonic() - started < ON_TIME


async def canary(port: int) -> RawLink:
    link = await RawLink.open(port)
    await link.login("B")
    return link


async def open_from(port: int, host: str = OTHER_HOST) -> RawLink:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(host, 0))
    return RawLink(reader, writer)


async def closed_with(link: RawLink, timeout: float) -> bytes:
    """What the server sent before it closed ``link`` (within ``timeout``)."""
    return await asyncio.wait_for(link.reader.read(), timeout)


# -- frames before a bad GLI header ------------------------------------------------------------


async def test_frames_before_a_bad_header_in_the_same_read_are_answered_first(
    start_server: StartServer,
) -> None:
    server = await start_server()
    other = await canary(server.port)
    link = await RawLink.open(server.port)
    login = doc("L", "<LoginReq ClientName='IVR_1' ReqId='1' Version='4.0'/>")
    query = doc("L", "<AgentQuery ReqId='q' PortNum='3'/>")
    await link.send_bytes(frame(login) + frame(query) + bytes.fromhex("000300040100") + b"<x>")
    data = await link.expect_closed()
    answers: list[object] = []
    while len(data) > 8:  # Data frames, each a document, before the last frame
        length = int.from_bytes(data[2:4], "big")
        answers.append(decode_document(data[6 : 4 + length])[1])
        data = data[4 + length :]
    assert data == bytes.fromhex("0002000402000001"), data  # then the Error frame (bad version)
    assert isinstance(answers[0], m.LoginResp) and answers[0].Result == "Success"
    assert [a.ReqId for a in answers if isinstance(a, m.MonitorInfo)] == ["q"], answers
    await served_on_time(other)
    for each in (other, link):
        await each.close()


# -- login timeout -----------------------------------------------------------------------------


async def test_connections_that_never_send_a_readable_document_are_closed(
    start_server: StartServer,
) -> None:
    server = await start_server(config_with(login_timeout=0.6))
    other = await canary(server.port)
    silent = [await RawLink.open(server.port) for _ in range(5)]
    keep_alive_only = await RawLink.open(server.port)
    await keep_alive_only.send_bytes(frame(b"", 1))  # GLI traffic is no document
    malformed = await RawLink.open(server.port)
    await malformed.send_bytes(frame(b"not xml at all"))
    partial = await RawLink.open(server.port)
    await partial.send_bytes(frame(doc("P", "<LoginReq ClientName='IVR_1'"))[:-9])  # never ends
    logged_in = await RawLink.open(server.port)
    await logged_in.login("A", "IVR_1")
    network_like = await RawLink.open(server.port)  # no login, but a request the server reads
    await network_like.send("N", "<AgentQuery ReqId='n' PortNum='3'/>")
    await network_like.recv_doc()
    await served_on_time(other)
    started = time.monotonic()
    for link in [*silent, keep_alive_only, malformed]:
        data = await closed_with(link, 5.0)
        assert data.endswith(NOT_AUTHORISED), data
    assert (await closed_with(partial, 5.0)).endswith(NOT_AUTHORISED)
    assert time.monotonic() - started < 3.0
    await served_on_time(other, "after")
    await asyncio.sleep(0.5)  # the others are past their login timeout and stay
    await served_on_time(logged_in, "a", "A")
    await served_on_time(other, "k")
    await network_like.send("N", "<AgentQuery ReqId='n2' PortNum='3'/>")  # answered: still open
    assert (await network_like.recv_doc())[1] == INVALID
    assert len(server.protocols) == 3
    for link in [other, logged_in, network_like, *silent, keep_alive_only, malformed, partial]:
        await link.close()


async def test_login_timeout_zero_keeps_idle_connections(start_server: StartServer) -> None:
    server = await start_server(config_with(login_timeout=0))
    idle = await RawLink.open(server.port)
    await idle.expect_silence(0.5)
    assert len(server.protocols) == 1
    await idle.close()


# -- the cap per peer address ------------------------------------------------------------------


async def test_connections_over_the_cap_of_one_address_are_refused(
    start_server: StartServer,
) -> None:
    server = await start_server(config_with(max_connections_per_peer=3))
    other = await canary(server.port)
    held = [await open_from(server.port) for _ in range(3)]
    extra = [await open_from(server.port) for _ in range(4)]
    for link in extra:
        assert await closed_with(link, 5.0) == SERVER_FULL
    for link in held:
        await link.expect_silence(0.1)
    await served_on_time(other)
    assert server.gate.by_host == {"127.0.0.1": 1, OTHER_HOST: 3}
    # the canary's own address is not capped by the other's connections
    second = await RawLink.open(server.port)
    await second.login("A", "IVR_1")
    await held[0].close()
    for _ in range(100):
        if server.gate.by_host.get(OTHER_HOST) == 2:
            break
        await asyncio.sleep(0.02)
    again = await open_from(server.port)
    await again.login("G")
    await served_on_time(again, "g", "G")
    await served_on_time(other, "end")
    for link in [other, second, again, *held, *extra]:
        await link.close()


async def test_a_reload_changes_the_cap_per_address_and_the_login_timeout(
    start_server: StartServer,
) -> None:
    server = await start_server(config_with(max_connections_per_peer=0))
    other = await canary(server.port)
    first, second = await open_from(server.port), await open_from(server.port)
    assert server.reload(config_with(max_connections_per_peer=2, login_timeout=0.5)) is not None
    third = await open_from(server.port)
    assert await closed_with(third, 5.0) == SERVER_FULL  # two from that address already
    await first.close()
    for _ in range(100):
        if server.gate.by_host.get(OTHER_HOST) == 1:
            break
        await asyncio.sleep(0.02)
    fourth = await open_from(server.port)  # accepted after the reload: times out
    assert (await closed_with(fourth, 5.0)).endswith(NOT_AUTHORISED)
    await second.expect_silence(0.2)  # accepted before it: no login timeout then (30 s)
    await served_on_time(other)
    for link in [other, second, third, fourth]:
        await link.close()


# -- making room at the cap ---------------------------------------------------------------------


async def test_at_the_cap_the_oldest_idle_connection_makes_room_for_a_new_one(
    start_server: StartServer,
) -> None:
    server = await start_server(config_with(max_connections=4))
    other = await canary(server.port)
    logged_in = await RawLink.open(server.port)
    await logged_in.login("A")
    idle = [await RawLink.open(server.port) for _ in range(2)]
    young = await RawLink.open(server.port)
    assert await closed_with(young, 5.0) == SERVER_FULL  # the idle ones are not idle long yet
    await asyncio.sleep(2.2)  # now they are (IDLE_AFTER)
    newcomer = await RawLink.open(server.port)
    await newcomer.login("N")  # admitted: the oldest idle one made room
    assert await closed_with(idle[0], 5.0) == SERVER_FULL
    await idle[1].expect_silence(0.2)
    await served_on_time(other)
    await served_on_time(logged_in, "a", "A")
    await served_on_time(newcomer, "n", "N")
    assert server.made_room == 1 and server.gate.open == 4
    second = await RawLink.open(server.port)  # the other idle one goes for this one
    assert await closed_with(idle[1], 5.0) == SERVER_FULL
    last = await RawLink.open(server.port)  # none left idle: refused
    assert await closed_with(last, 5.0) == SERVER_FULL
    await served_on_time(other, "end")
    for link in [other, logged_in, *idle, young, newcomer, second, last]:
        await link.close()


# -- the HTTP API: cap and header timeout ------------------------------------------------------


async def http_get(
    port: int, path: str = "/api/v1/ivrs", timeout: float = 5.0
) -> tuple[int, bytes]:
    """A plain HTTP/1.1 GET: ``(status, body)``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        )
        data = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


async def unanswered(reader: asyncio.StreamReader) -> bool:
    """Was the connection closed by the server without an answer?"""
    try:
        return await asyncio.wait_for(reader.read(), 3.0) == b""
    except ConnectionError:  # reset, or a write after the close failed
        return True


async def test_api_connections_over_the_cap_get_503_and_slow_headers_are_cut(
    start_server: StartServer,
) -> None:
    config = config_with(api={"max_connections": 4, "header_timeout": 0.8})
    server = await start_server(config, api=ApiServer, api_listen=LOOPBACK_0)
    api_port = server.api_addresses[0][1]
    other = await canary(server.port)
    assert (await http_get(api_port))[0] == 200
    idle = [await asyncio.open_connection("127.0.0.1", api_port) for _ in range(2)]
    slow = [await asyncio.open_connection("127.0.0.1", api_port) for _ in range(2)]
    for _, writer in slow:
        writer.write(b"GET /api/v1/ivrs HTTP/1.1\r\n")
    await asyncio.sleep(0.1)
    status, body = await http_get(api_port)  # the fifth: over the cap
    assert status == 503 and b"api.max-connections" in body, body
    await served_on_time(other)
    started = time.monotonic()
    for i in range(8):  # the slow ones keep sending header lines, never the end of them
        for _, writer in slow:
            if not writer.is_closing():
                with contextlib.suppress(ConnectionError):
                    writer.write(f"X-Slow-{i}: 1\r\n".encode())
        await asyncio.sleep(0.15)
        await served_on_time(other, f"s{i}")
    for reader, _ in [*idle, *slow]:
        assert await unanswered(reader)
    assert time.monotonic() - started < 3.0
    assert (await http_get(api_port))[0] == 200  # places free again
    connections = cast(ApiServer, server.api).connections
    assert connections.refused >= 1 and connections.timed_out == 4
    # a keep-alive connection idle after its answer is closed after the timeout too
    reader, writer = await asyncio.open_connection("127.0.0.1", api_port)
    writer.write(b"GET /api/v1/ivrs HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 3.0)
    assert first.startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    await asyncio.wait_for(reader.read(), 3.0)  # the body, then the end: closed
    assert 0.3 < time.monotonic() - started < 3.0
    writer.close()
    for _, w in [*idle, *slow]:
        w.close()
    await served_on_time(other, "end")
    await other.close()
