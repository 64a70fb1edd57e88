"""The asyncio adapter of linked switches (runtime/links.py) against a fake LinkedSwitch and real
loopback TCP servers: connecting, bytes both ways, the timer, back-off doubling and its reset,
closing when the switch says so, reconnecting, TLS, a PBX that floods or does not read, following
the service's switches, and a clean stop."""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from ivr_server.runtime.links import (
    WRITE_LIMIT,
    SwitchLink,
    SwitchLinks,
    describe_target,
    tls_context,
)
from ivr_server.switch import DnType, EventLinkConnected, EventLinkDisconnected, SwitchEvent
from ivr_server.switch.protocol import LinkedSwitch, LinkTarget, link_of
from ivr_server.switch.requests import SwitchRequest
from ivr_server.switch.view import SwitchView

pytestmark = pytest.mark.xdist_group("timing")


class FakeSwitch:
    """A line protocol standing in for a PBX session: ``HELLO`` on connect; ``UP`` from the far
    end brings the link up, ``CLOSE`` makes the switch close (after ``BYE``)."""

    def __init__(self, name: str, target: LinkTarget, *, wanted: bool = True) -> None:
        self.name = name
        self.tserver = f"TS_{name}"
        self.view = SwitchView([("3001", DnType.VOICE_TREATMENT_PORT)])
        self.target = target
        self.link_wanted = wanted
        self.closing = False
        self.out = bytearray()
        self.events: list[SwitchEvent] = []
        self.chunks: list[bytes] = []
        self.doors: list[tuple[str, float]] = []
        self.lost_reasons: list[str] = []
        self.deadline: float | None = None
        self.timer_fired: list[float] = []
        self.greeting = b"HELLO\n"

    def request(self, req: SwitchRequest) -> None:
        raise AssertionError("not used")

    def drain_events(self) -> list[SwitchEvent]:
        events, self.events = self.events, []
        return events

    def compact(self) -> int:
        return 0

    def _emit(self, event: SwitchEvent) -> None:
        self.view.apply(event)
        self.events.append(event)

    def connection_made(self, now: float) -> None:
        self.doors.append(("made", now))
        self.closing = False
        self.out += self.greeting

    def data_received(self, data: bytes, now: float) -> None:
        assert data
        self.doors.append(("data", now))
        self.chunks.append(data)
        lines = b"".join(self.chunks).split(b"\n")
        if b"UP" in lines and not self.view.link_up:
            self._emit(EventLinkConnected(switch=self.name, tserver=self.tserver))
        if b"CLOSE" in lines and not self.closing:
            self.out += b"BYE\n"
            self.closing = True

    def connection_lost(self, reason: str, now: float) -> None:
        self.doors.append(("lost", now))
        self.lost_reasons.append(reason)
        self.chunks.clear()
        if self.view.link_up:
            self._emit(EventLinkDisconnected(switch=self.name, tserver=self.tserver))

    def data_to_send(self) -> bytes:
        data, self.out = bytes(self.out), bytearray()
        return data

    def next_deadline(self) -> float | None:
        return self.deadline

    def handle_timer(self, now: float) -> None:
        self.doors.append(("timer", now))
        if self.deadline is not None and now >= self.deadline:
            self.deadline = None
            self.timer_fired.append(now)
            self.out += b"TICK\n"


@dataclass
class Pbx:
    """A loopback TCP server playing the PBX: each accepted connection is handed to ``behave``."""

    behave: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    server: asyncio.Server | None = None
    accepted: int = 0
    port: int = 0
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            try:
                await self.behave(reader, writer)
            except ConnectionResetError:
                pass  # the link under test cut the connection: this PBX's side of it is over
            finally:
                writer.close()

        self.server = await asyncio.start_server(on_client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while not check():
        assert loop.time() < until, "timed out"
        await asyncio.sleep(0.005)


class Host:
    """What ``IvrServer`` does after each door: deliver (here: record) and write out."""

    def __init__(self) -> None:
        self.links = SwitchLinks(self.after_door)
        self.doors: list[float] = []

    def after_door(self, now: float) -> None:
        self.doors.append(now)
        self.links.flush()


def _target(port: int, **kw: float | bool) -> LinkTarget:
    return LinkTarget(host="127.0.0.1", port=port, **kw)  # type: ignore[arg-type]


def _closed_port() -> int:
    """A loopback port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    h = Host()
    yield h
    await h.links.stop(close_wait=0.2)


def test_the_fake_is_a_linked_switch() -> None:
    switch = FakeSwitch("PBX", _target(1))
    assert link_of(switch) is switch and isinstance(switch, LinkedSwitch)
    assert describe_target(_target(3022)) == "127.0.0.1:3022"
    assert describe_target(LinkTarget(host="::1", port=1, tls=True)) == "[::1]:1 over TLS"


async def test_connects_passes_bytes_both_ways_with_the_loop_clock(host: Host) -> None:
    got: list[bytes] = []

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got.append(await reader.readline())
        writer.write(b"UP\n")
        await writer.drain()
        got.append(await reader.readline())  # blocks until the adapter writes again

    pbx = Pbx(behave)
    await pbx.start()
    switch = FakeSwitch("PBX", _target(pbx.port))
    loop = asyncio.get_running_loop()
    before = loop.time()
    host.links.sync({"PBX": switch})
    await _until(lambda: switch.view.link_up)
    assert got == [b"HELLO\n"]
    assert [door for door, _ in switch.doors[:2]] == ["made", "data"]
    assert all(before <= now <= loop.time() for _, now in switch.doors)
    assert host.doors and host.doors[-1] == switch.doors[-1][1]  # the service delivered after it
    link = host.links.get("PBX")
    assert link is not None and link.connected and link.running
    switch.out += b"REQ\n"  # what the switch queues answering an IVR leaves at the next flush
    host.links.flush()
    await _until(lambda: len(got) == 2)
    assert got[1] == b"REQ\n"
    await pbx.stop()


async def test_the_timer_fires_at_the_switch_deadline(host: Host) -> None:
    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        assert await reader.readline() == b"TICK\n"
        await reader.read()

    pbx = Pbx(behave)
    await pbx.start()
    switch = FakeSwitch("PBX", _target(pbx.port))
    host.links.sync({"PBX": switch})
    await _until(lambda: any(door == "made" for door, _ in switch.doors))
    due = asyncio.get_running_loop().time() + 0.05
    switch.deadline = due
    host.links.flush()  # arms the timer
    await _until(lambda: bool(switch.timer_fired))
    assert switch.timer_fired[0] >= due
    await pbx.stop()


async def test_failed_attempts_back_off_doubling_to_the_maximum_with_one_log_line(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ivr_server.runtime.links")
    switch = FakeSwitch("PBX", _target(_closed_port(), reconnect_initial=0.01, reconnect_max=0.04))
    host.links.sync({"PBX": switch})
    link = host.links.get("PBX")
    assert link is not None
    await _until(lambda: len(link.waits) >= 5)
    assert link.waits[:5] == [0.01, 0.02, 0.04, 0.04, 0.04]
    assert len(switch.lost_reasons) >= 5
    assert all(r.startswith("cannot connect: ") for r in switch.lost_reasons)
    assert [door for door, _ in switch.doors] == ["lost"] * len(switch.doors)
    failures = [r for r in caplog.records if "cannot connect to the PBX" in r.getMessage()]
    assert len(failures) == 1, "the same failure is logged once per interval"
    assert "127.0.0.1:" in failures[0].getMessage()
    assert not link.connected


async def test_the_failures_not_logged_are_counted_when_the_pbx_comes(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ivr_server.runtime.links")
    port = _closed_port()
    switch = FakeSwitch("PBX", _target(port, reconnect_initial=0.01, reconnect_max=0.02))
    host.links.sync({"PBX": switch})
    await _until(lambda: len(switch.lost_reasons) >= 4)

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        writer.close()

    server = await asyncio.start_server(behave, "127.0.0.1", port)
    try:
        await _until(lambda: any(door == "made" for door, _ in switch.doors))
    finally:
        await host.links.stop(close_wait=1.0)
        server.close()
        await server.wait_closed()
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "cannot connect to the PBX" in line]) == 1
    (summary,) = [line for line in lines if "more failed attempts" in line]
    counted = int(summary.split("switch PBX: ")[1].split()[0])
    failures = [r for r in switch.lost_reasons if r.startswith("cannot connect: ")]
    assert counted == len(failures) - 1  # every failure after the first one logged
    connected = [i for i, line in enumerate(lines) if "connected to the PBX" in line]
    assert connected and lines.index(summary) < connected[0]


async def test_the_back_off_starts_afresh_after_a_connection_on_which_the_link_came_up(
    host: Host,
) -> None:
    bring_up = False

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        if bring_up:
            writer.write(b"UP\n")
            await writer.drain()
            await asyncio.sleep(0.05)
        # then the PBX drops the connection

    pbx = Pbx(behave)
    await pbx.start()
    switch = FakeSwitch("PBX", _target(pbx.port, reconnect_initial=0.01, reconnect_max=1.0))
    host.links.sync({"PBX": switch})
    link = host.links.get("PBX")
    assert link is not None
    await _until(lambda: len(link.waits) >= 3)
    assert link.waits[:3] == [0.01, 0.02, 0.04]  # connected, never usable: still doubling
    bring_up = True
    await _until(lambda: switch.view.link_up)
    await _until(lambda: not switch.view.link_up)  # dropped: EventLinkDisconnected
    await _until(lambda: link.waits[-1] == 0.01)
    assert "closed by the PBX" in switch.lost_reasons
    await pbx.stop()


async def test_closes_when_the_switch_says_closing_and_reconnects(host: Host) -> None:
    seen: list[bytes] = []

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"UP\nCLOSE\n")
        await writer.drain()
        seen.append(await reader.read())  # everything until the adapter closes

    pbx = Pbx(behave)
    await pbx.start()
    switch = FakeSwitch("PBX", _target(pbx.port, reconnect_initial=0.01))
    host.links.sync({"PBX": switch})
    await _until(lambda: pbx.accepted >= 2)
    assert seen[0] == b"BYE\n"  # written before the close
    assert switch.lost_reasons[0] == "closed by us"
    assert [door for door, _ in switch.doors].count("made") >= 2
    await pbx.stop()


async def test_a_switch_that_does_not_want_its_link_is_not_connected_until_it_does(
    host: Host,
) -> None:
    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    pbx = Pbx(behave)
    await pbx.start()
    switch = FakeSwitch("PBX", _target(pbx.port), wanted=False)
    host.links.sync({"PBX": switch})
    await asyncio.sleep(0.05)
    link = host.links.get("PBX")
    assert link is not None and not link.running and pbx.accepted == 0
    switch.link_wanted = True  # a TOpenLink (set_link up): the next flush starts the task
    host.links.flush()
    await _until(lambda: link.connected)
    switch.link_wanted = False  # a TCloseLink: the switch closes, the task ends
    switch.closing = True
    host.links.flush()
    await _until(lambda: not link.running)
    assert not link.connected and pbx.accepted == 1
    await pbx.stop()


async def test_tls_is_spoken_when_the_target_says_so(host: Host) -> None:
    first: list[bytes] = []

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        first.append(await reader.read(5))  # then closes: the handshake fails

    pbx = Pbx(behave)
    await pbx.start()
    switch = FakeSwitch("PBX", _target(pbx.port, tls=True, reconnect_initial=5.0))
    host.links.sync({"PBX": switch})
    await _until(lambda: bool(switch.lost_reasons))
    assert first[0][:1] == b"\x16"  # a TLS handshake record (ClientHello)
    context = await tls_context()
    assert context is await tls_context()  # the trust store is loaded once, not per attempt
    assert context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
    assert switch.lost_reasons[0].startswith("cannot connect")
    assert not any(door == "made" for door, _ in switch.doors)
    await pbx.stop()


async def test_a_pbx_that_does_not_read_is_cut_and_reconnected(
    host: Host, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "ivr_server.runtime.links")
    release = asyncio.Event()

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await release.wait()  # reads nothing

    pbx = Pbx(behave)
    await pbx.start()
    switch = FakeSwitch("PBX", _target(pbx.port, reconnect_initial=0.01))
    switch.greeting = b"x" * (WRITE_LIMIT * 16)  # more than the kernel's buffers take
    host.links.sync({"PBX": switch})
    await _until(lambda: bool(switch.lost_reasons))
    assert "does not read" in switch.lost_reasons[0]
    await _until(lambda: pbx.accepted >= 2)
    assert any("does not read" in r.getMessage() for r in caplog.records)
    release.set()
    await pbx.stop()


async def test_a_flood_from_the_pbx_comes_in_bounded_reads_and_others_run_between(
    host: Host,
) -> None:
    size = 8 * 1024 * 1024

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"y" * size)
        await writer.drain()
        await reader.read()

    ticks = 0
    total = 0
    between: list[int] = []
    sizes: list[int] = []

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        asyncio.get_running_loop().call_soon(tick)

    pbx = Pbx(behave)
    await pbx.start()
    switch = FakeSwitch("PBX", _target(pbx.port))
    original = switch.data_received

    def counting(data: bytes, now: float) -> None:
        nonlocal total
        total += len(data)
        sizes.append(len(data))
        between.append(ticks)
        switch.chunks.clear()  # the fake keeps no flood
        original(data, now)

    switch.data_received = counting  # type: ignore[method-assign]
    asyncio.get_running_loop().call_soon(tick)
    host.links.sync({"PBX": switch})
    await _until(lambda: total >= size, timeout=20.0)
    assert len(sizes) > 1 and max(sizes) <= 256 * 1024  # one socket read at a time
    assert between[-1] > between[0], "other callbacks ran while the flood was read"
    await pbx.stop()


async def test_sync_follows_the_switches_added_and_removed(host: Host) -> None:
    received: dict[int, list[bytes]] = {}

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mine = received.setdefault(len(received), [])
        mine.append(await reader.readline())
        mine.append(await reader.read())

    pbx = Pbx(behave)
    await pbx.start()
    first = FakeSwitch("A", _target(pbx.port))
    host.links.sync({"A": first})
    await _until(lambda: bool(received) and len(received[0]) == 1)
    first.out += b"STOP\n"  # the StopApplicationSession of its TCloseLink
    first.link_wanted = False
    second = FakeSwitch("B", _target(pbx.port))
    host.links.sync({"B": second})  # A removed (retired), B added
    await _until(lambda: len(received) == 2 and len(received[0]) == 2)
    assert received[0] == [b"HELLO\n", b"STOP\n"]  # written, then closed
    assert host.links.get("A") is None
    b_link = host.links.get("B")
    assert b_link is not None
    await _until(lambda: b_link.connected)
    replaced = FakeSwitch("B", _target(pbx.port))  # same name, another object (rebuilt)
    host.links.sync({"B": replaced})
    assert host.links.get("B") is not b_link
    await _until(lambda: not b_link.connected and not b_link.running)
    await pbx.stop()


async def test_stop_closes_and_cancels_cleanly() -> None:
    closed = asyncio.Event()

    async def behave(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()
        closed.set()

    pbx = Pbx(behave)
    await pbx.start()
    h = Host()
    switch = FakeSwitch("PBX", _target(pbx.port))
    waiting = FakeSwitch("DOWN", _target(_closed_port(), reconnect_initial=30.0))
    h.links.sync({"PBX": switch, "DOWN": waiting})
    await _until(lambda: any(door == "made" for door, _ in switch.doors))
    await _until(lambda: bool(waiting.lost_reasons))  # now sleeping in its back-off
    links: list[SwitchLink] = list(h.links)
    await asyncio.wait_for(h.links.stop(close_wait=1.0), 3.0)
    assert not h.links and all(not link.running and not link.connected for link in links)
    await asyncio.wait_for(closed.wait(), 2.0)
    assert switch.lost_reasons == ["closed by us"]
    await pbx.stop()
