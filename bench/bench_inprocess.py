#!/usr/bin/env python3
"""The server's own Python cost per call, without sockets or the kernel.

An ``IvrServer`` is built in this process on ``bench/fullcall.toml`` (not listening) and one
``IvrLinkProtocol`` is driven through a stand-in transport that only counts what it is given. The
production call flow of ``bench_fullcall.py`` (NewCall, CallInfoReq, UDataSet, UDataGet,
RouteRequest, EndCall) is fed one request per ``data_received``, each followed by a turn of the
event loop (``asyncio.sleep(0)``), which runs the server's end-of-turn step as in production: one
request per read, one read per turn, as in an open loop at a moderate rate. The measured calls run
on a frozen heap, as ``serve`` leaves it (``IvrServer.settle_heap``). ``--count`` calls are
measured after a warm-up. Printed: microseconds of CPU per call and per request. Comparing with the
server's CPU per call in ``bench_fullcall.py`` shows what the event loop, the kernel's TCP work and
cold caches add. ``--per-read K`` runs K calls side by side, their requests of each step in one read:
what batching saves in the server's own code. ``--profile`` prints a cProfile table instead (its
overhead makes the timing meaningless).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from typing import Any

from bench_fullcall import (
    CALL_INFO_REQ,
    CONFIG,
    END_CALL,
    ROUTE_REQUEST,
    UDATA_GET,
    login_frame,
    new_call_body,
    request,
    udata_set_body,
)
from common import add_common_args, record, run_loop
from ivr_server.config import load_config
from ivr_server.runtime.app import IvrServer
from ivr_server.runtime.connection import IvrLinkProtocol


class CountingTransport:
    """What ``IvrLinkProtocol`` needs of a transport; writes are counted, not sent."""

    def __init__(self) -> None:
        self.writes = 0
        self.bytes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        self.bytes += len(data)

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def call_frames(count: int, offset: int) -> list[list[bytes]]:
    frames = []
    for i in range(count):
        call_id = b"P%08d" % (offset + i)
        port = 1 + i % 1000
        n = offset + i  # each call its own ANI and user data, as in bench_fullcall.py
        bodies = (
            new_call_body(port, f"9{n:010d}"),
            CALL_INFO_REQ,
            udata_set_body(f"v{n}"),
            UDATA_GET,
            ROUTE_REQUEST,
            END_CALL,
        )
        frames.append([request(call_id, body) for body in bodies])
    return frames


async def drive(protocol: IvrLinkProtocol, calls: list[list[bytes]], per_read: int = 1) -> None:
    """Each read in its own turn of the event loop: the turn's end runs the server's ``end_turn``
    (scheduled by ``after_read``), which writes the replies. Calling ``end_turn`` directly instead
    would leave one unrun callback per read queued in the loop until the end, and the collector
    would scan them all again and again. ``per_read`` calls run side by side, their requests of
    each step in one read (as a busy connection brings them); 1 is one request per read."""
    for first in range(0, len(calls), per_read):
        group = calls[first : first + per_read]
        for step in range(len(group[0])):
            protocol.data_received(b"".join(call[step] for call in group))
            await asyncio.sleep(0)


async def run(calls: int, profile: bool, per_read: int = 1) -> None:
    server = IvrServer(load_config(CONFIG))
    protocol = IvrLinkProtocol(server)
    transport = CountingTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    protocol.data_received(login_frame(b"bench-session"))
    await drive(protocol, call_frames(2000, 0))  # warm-up
    work = call_frames(calls, 10_000_000)
    writes_before = transport.writes
    server.settle_heap()
    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    t0 = time.process_time()
    await drive(protocol, work, per_read)
    cpu = time.process_time() - t0
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        return
    left = len(server.service.calls.calls)
    shape = "one request per read" if per_read == 1 else f"{per_read} requests per read"
    print(f"in-process, {shape}, {calls:,} calls (calls left: {left})")
    print(
        f"  {cpu / calls * 1e6:,.1f} us of CPU per call, {cpu / calls / 6 * 1e6:,.1f} per request"
    )
    writes = (transport.writes - writes_before) / calls
    print(f"  {calls / cpu:,.0f} calls/s on one core; {writes:.1f} writes per call")
    record("inprocess", f"Python cost per call, {shape}, no sockets", cpu / calls * 1e6, "us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--count", type=int, default=20_000, help="calls measured (default 20,000)")
    add_common_args(ap)  # --quick: 2,000 calls
    ap.add_argument("--profile", action="store_true", help="print a cProfile table instead")
    ap.add_argument(
        "--per-read",
        type=int,
        default=1,
        help="calls run side by side, their requests of each step in one read (default 1: one "
        "request per read, as in an open loop at a moderate rate; 20: as in a busy closed loop)",
    )
    args, _ = ap.parse_known_args()
    run_loop(run(2000 if args.quick else args.count, args.profile, max(1, args.per_read)))


if __name__ == "__main__":
    main()
