"""Replies are written once per turn of the event loop, after every readable connection has read.

The server's connection objects are driven directly with stand-in transports that record each
write, so the test sees exactly when and how the bytes leave (over TCP the kernel would merge
them): nothing is written while the turn's reads are being handled, then each connection gets one
write holding all its replies, in order.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextvars import Context
from typing import Any, cast

from ivr_server.config import default_config
from ivr_server.runtime.app import FLUSH_AFTER_BYTES, IvrServer
from ivr_server.runtime.connection import TURN_BYTES, TURN_FRAMES, IvrLinkProtocol
from ivr_server.wire import FrameDecoder, decode_document
from tests.integration.rawlink import doc, frame

LOGIN = '<LoginReq Version="4.0" ClientName="IVR_{n}" ReportStatus="true"></LoginReq>'


def ask(call_id: str) -> bytes:
    """A CallInfoReq on a CallId the server does not know: answered with a CallError."""
    return frame(doc(call_id, "<CallInfoReq></CallInfoReq>"))


def one_batch(name: str) -> bytes:
    """One read of as many requests as a connection gets handled in one turn (TURN_FRAMES frames
    whose lengths add up to TURN_BYTES at most)."""
    frames: list[bytes] = []
    size = 0
    while len(frames) < TURN_FRAMES:
        one = ask(f"{name}-{len(frames)}")
        size += len(one) - 4  # a frame's length counts its payload and 2 header bytes
        if size > TURN_BYTES:
            break
        frames.append(one)
    return b"".join(frames)


def batch_size(name: str) -> int:
    return len(FrameDecoder().feed(one_batch(name)))


def over_the_bound() -> int:
    """How many connections, each reading :func:`one_batch`, make a turn read FLUSH_AFTER_BYTES."""
    return -(-FLUSH_AFTER_BYTES // len(one_batch("big-0")))


class RecordingTransport:
    """What ``IvrLinkProtocol`` needs of a transport; every write is kept."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", self.port) if name == "peername" else default

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def tags(data: bytes) -> list[str]:
    """The message tags of the GLI Data frames in ``data``."""
    return [decode_document(payload)[1].tag for _, payload in FrameDecoder().feed(data)]


async def connect(server: IvrServer, n: int) -> tuple[IvrLinkProtocol, RecordingTransport]:
    protocol = IvrLinkProtocol(server)
    transport = RecordingTransport(40000 + n)
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(frame(doc(f"login-{n}", LOGIN.format(n=n))))
    await asyncio.sleep(0)
    assert tags(b"".join(transport.writes)) == ["LoginResp", "FlowControl"]
    transport.writes.clear()
    return protocol, transport


async def test_replies_wait_for_the_turn_then_leave_in_one_write_per_connection() -> None:
    server = IvrServer(default_config())
    (p1, t1), (p2, t2), (p3, t3) = [await connect(server, n) for n in (1, 2, 3)]

    # One turn: connection 1 reads three requests at once, connection 2 one, connection 3 none.
    p1.data_received(b"".join(ask(f"nope-{i}") for i in range(3)))
    p2.data_received(ask("nope-9"))
    assert t1.writes == [] and t2.writes == [] and t3.writes == []

    await asyncio.sleep(0)  # the loop runs what the reads scheduled: the replies go out
    assert len(t1.writes) == 1 and len(t2.writes) == 1 and t3.writes == []
    replies = [decode_document(p) for _, p in FrameDecoder().feed(t1.writes[0])]
    assert [call_id for call_id, _ in replies] == ["nope-0", "nope-1", "nope-2"]
    assert {message.tag for _, message in replies} == {"CallError"}
    assert tags(t2.writes[0]) == ["CallError"]

    # The next turn starts afresh.
    p3.data_received(ask("nope-10"))
    assert t3.writes == []
    await asyncio.sleep(0)
    assert len(t1.writes) == 1 and len(t2.writes) == 1 and tags(t3.writes[0]) == ["CallError"]


async def test_a_turn_that_reads_a_lot_writes_without_waiting_for_its_end() -> None:
    """Past FLUSH_AFTER_BYTES read in one turn, what the turn produced so far is written at once,
    so a turn of many large reads never holds all their replies together."""
    server = IvrServer(default_config())
    count = over_the_bound()
    links = [await connect(server, n) for n in range(1, count + 3)]
    (p1, t1), others, (p3, t3) = links[0], links[1:-1], links[-1]

    p1.data_received(ask("nope-0"))
    for n, (protocol, transport) in enumerate(others):
        assert t1.writes == [] and transport.writes == []
        protocol.data_received(one_batch(f"big{n}"))
    assert len(t1.writes) == 1  # all written before the turn ends
    assert tags(t1.writes[0]) == ["CallError"]
    assert all(
        tags(t.writes[0]) == ["CallError"] * batch_size(f"big{n}")
        for n, (_, t) in enumerate(others)
    )

    p3.data_received(ask("nope-3"))  # after the flush, the turn goes on as usual
    assert t3.writes == []
    await asyncio.sleep(0)
    assert tags(t3.writes[0]) == ["CallError"]
    assert len(t1.writes) == 1 and all(len(t.writes) == 1 for _, t in others)


class CountingLoop:
    """The parts of the running loop a connection uses, counting what ``call_soon`` schedules."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.real = loop
        self.soon: list[Any] = []

    def call_soon(
        self, callback: Callable[..., object], *args: object, context: Context | None = None
    ) -> asyncio.Handle:
        self.soon.append(callback)
        return self.real.call_soon(callback, *args, context=context)

    def time(self) -> float:
        return self.real.time()

    def call_at(
        self,
        when: float,
        callback: Callable[..., object],
        *args: object,
        context: Context | None = None,
    ) -> asyncio.TimerHandle:
        return self.real.call_at(when, callback, *args, context=context)


async def test_one_end_of_turn_callback_however_often_the_turn_writes() -> None:
    """A turn that writes early (past FLUSH_AFTER_BYTES) still schedules one callback: uvloop keeps
    spent handles for reuse, and hundreds made in a peak pinned heap arenas after it."""
    server = IvrServer(default_config())
    links = [await connect(server, n) for n in range(1, 2 * over_the_bound() + 1)]
    loop = CountingLoop(asyncio.get_running_loop())
    for protocol, _ in links:
        protocol.loop = cast(asyncio.AbstractEventLoop, loop)
    for n, (protocol, _) in enumerate(links):  # this turn goes past the bound twice
        protocol.data_received(one_batch(f"big{n}"))
    assert all(len(transport.writes) == 1 for _, transport in links)
    assert loop.soon == [server.end_turn]
    await asyncio.sleep(0)
    links[0][0].data_received(ask("next"))  # the next turn schedules its own
    assert loop.soon == [server.end_turn, server.end_turn]
    await asyncio.sleep(0)
    assert tags(links[0][1].writes[-1]) == ["CallError"]


async def test_stop_writes_what_the_last_reads_produced() -> None:
    server = IvrServer(default_config())
    protocol, transport = await connect(server, 1)
    protocol.data_received(ask("nope-1"))
    await server.stop()
    assert tags(b"".join(transport.writes)) == ["CallError"]
    assert transport.closed
