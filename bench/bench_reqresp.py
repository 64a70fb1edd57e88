#!/usr/bin/env python3
"""CallInfoReq → CallInfoResp per second on established calls, against ivr-server and, in the same
run with the same generator, against the bare GLI echo server (bench/echo_server.py): the ratio is
how close ivr-server comes to the physical limit of a Python server on this event loop.

Each connection logs in as IVR ``BENCH`` (bench/fullcall.toml, 1000 ports), starts one call on
its own port (NewCall → Ringing, Established) and then asks CallInfoReq for that call over and
over: *not pipelined* (one request in flight per connection: a reply triggers the next request)
and *pipelined* (``--depth`` requests in flight: every read's replies are replaced by as many
requests in one write). The echo server gets the same frames (no login, no call: it answers
anything). Both servers run on CPU 0, the generator on CPU 1.

The generator is lean: request frames are precomputed (one bytes object per batch size), replies
are counted by walking the GLI headers, and every reply is checked to be a CallInfoResp for the
connection's CallId: a read made only of copies of the first checked reply is accepted with one
comparison, anything else is cut frame by frame and each frame is byte-searched for
``<CallId>…</CallId><CallInfoResp``. A reply that fails the check is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import struct
import tempfile
import time
from dataclasses import dataclass
from functools import partial
from typing import Final, cast

from bench_fullcall import CALL_INFO_REQ, CONFIG, END_CALL, CpuMeter, login_frame, new_call_body
from bench_fullcall import request as data_frame
from common import (
    add_common_args,
    free_port,
    record,
    run_loop,
    start_echo_server,
    start_server,
    stop_servers,
)

HEADER: Final = struct.Struct(">HHBB")
PATTERNS: Final = ((1, 1), (1, 32), (50, 1), (50, 32))
"""(connections, requests in flight per connection)."""
TARGET_RATE: Final = 40_000
TARGET_RATIO: Final = 0.35


class Conn(asyncio.Protocol):
    """One connection: set-up exchanges (login, NewCall), then CallInfoReq at a fixed depth."""

    def __init__(self, index: int, depth: int) -> None:
        self.index = index
        self.depth = depth
        self.call_id = f"R{index}".encode()
        req = data_frame(self.call_id, CALL_INFO_REQ)
        self.batches = [req * n for n in range(depth + 1)]
        self.needle = b"<CallId>" + self.call_id + b"</CallId><CallInfoResp "
        self.expected: list[bytes] = []
        """expected[n]: n copies of the first checked reply (the fast path's comparison)."""
        self.size = 0
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.running = False
        self.replies = 0
        self.errors = 0
        self.first_error = b""
        self.in_flight = 0
        self.setup_frames: list[bytes] = []
        self.setup_wanted = 0
        self.setup_done: asyncio.Future[list[bytes]] | None = None
        self.lost = asyncio.get_running_loop().create_future()
        self.drained: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        if self.setup_done is not None and not self.setup_done.done():
            self.setup_done.set_exception(ConnectionError(f"connection lost: {exc}"))
        if not self.lost.done():
            self.lost.set_result(None)

    async def exchange(self, frame: bytes, replies: int) -> list[bytes]:
        """Write ``frame``, return the payloads of the next ``replies`` Data frames."""
        assert self.transport is not None
        self.setup_frames, self.setup_wanted = [], replies
        self.setup_done = asyncio.get_running_loop().create_future()
        self.transport.write(frame)
        return await asyncio.wait_for(self.setup_done, 10)

    def start(self) -> None:
        assert self.transport is not None
        self.running = True
        self.in_flight = self.depth
        self.transport.write(self.batches[self.depth])

    def data_received(self, data: bytes) -> None:
        if self.setup_done is not None and not self.setup_done.done():
            self.buffer += data
            for payload in self.cut():
                self.setup_frames.append(payload)
            if len(self.setup_frames) >= self.setup_wanted:
                self.setup_done.set_result(self.setup_frames)
            return
        size = self.size
        n = len(data) // size if size and not self.buffer else 0
        if n and n <= self.depth and data == self.expected[n]:
            good = n
        else:
            self.buffer += data
            good = n = 0
            for payload in self.cut():
                if self.needle in payload:
                    good += 1
                    if not size:
                        self.learn(payload)
                        size = self.size
                else:
                    self.errors += 1
                    if not self.first_error:
                        self.first_error = payload[:300]
                n += 1
            n = min(n, self.depth)
        self.replies += good
        if self.running:
            if n:
                assert self.transport is not None
                self.transport.write(self.batches[n])
        else:
            self.in_flight -= n
            if self.in_flight <= 0 and not self.drained.done():
                self.drained.set_result(None)

    def cut(self) -> list[bytes]:
        """The complete frames' payloads out of the buffer (Data frames only; the rest dropped)."""
        buf = self.buffer
        out: list[bytes] = []
        pos, size = 0, len(buf)
        while size - pos >= 6:
            gli_type, length, _, _ = HEADER.unpack_from(buf, pos)
            end = pos + 4 + length
            if end > size:
                break
            if gli_type == 3:
                out.append(bytes(buf[pos + 6 : end]))
            pos = end
        del buf[:pos]
        return out

    def learn(self, payload: bytes) -> None:
        frame = HEADER.pack(3, len(payload) + 2, 2, 0) + payload
        self.size = len(frame)
        self.expected = [frame * n for n in range(self.depth + 1)]


async def connect(port: int, count: int, depth: int, ivr_server: bool) -> list[Conn]:
    loop = asyncio.get_running_loop()
    conns: list[Conn] = []
    for i in range(count):
        _, conn = await loop.create_connection(partial(Conn, i, depth), "127.0.0.1", port)
        conns.append(conn)
    if ivr_server:
        for conn in conns:
            login = await conn.exchange(login_frame(b"S%d" % conn.index), 2)
            if b"Result='Success'" not in login[0]:
                raise RuntimeError(f"login refused: {login[0]!r}")
            call = await conn.exchange(data_frame(conn.call_id, new_call_body(conn.index + 1)), 2)
            if b"Event='Established'" not in call[1]:
                raise RuntimeError(f"NewCall refused: {call!r}")
    return conns


@dataclass
class Result:
    rate: float
    errors: int
    server_cpu: float
    generator_cpu: float
    other_cpu: float
    missing: int
    first_error: bytes


async def measure(
    port: int, pid: int, connections: int, depth: int, seconds: float, ivr_server: bool
) -> Result:
    conns = await connect(port, connections, depth, ivr_server)
    for conn in conns:
        conn.start()
    await asyncio.sleep(min(1.0, seconds / 4))  # warm-up, not counted
    meter = CpuMeter(pid)
    before, t0 = sum(c.replies for c in conns), time.perf_counter()
    await asyncio.sleep(seconds)
    done, elapsed = sum(c.replies for c in conns) - before, time.perf_counter() - t0
    cpu = meter.stop()
    for conn in conns:
        conn.running = False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(c.drained for c in conns)), 3)
    for conn in conns:
        assert conn.transport is not None
        if ivr_server:
            conn.transport.write(data_frame(conn.call_id, END_CALL))
        conn.transport.close()
    await asyncio.gather(*(c.lost for c in conns))
    errors = sum(c.errors for c in conns)
    first = next((c.first_error for c in conns if c.first_error), b"")
    missing = sum(max(0, c.in_flight) for c in conns)
    return Result(done / elapsed, errors, cpu.server, cpu.generator, cpu.others, missing, first)


def pct(value: float) -> str:
    return "n/a" if value != value else f"{value * 100:.0f}%"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--depth", type=int, default=32, help="requests in flight when pipelined")
    args, _ = ap.parse_known_args()
    seconds = args.seconds or (1.0 if args.quick else 5.0)
    patterns = [(c, d if d == 1 else args.depth) for c, d in PATTERNS]
    ivr_port, echo_port = free_port(), free_port()
    with tempfile.TemporaryFile() as log:
        server = start_server(ivr_port, CONFIG, log, api=True)
        echo = start_echo_server(echo_port)
        gc.collect()
        gc.freeze()
        gc.disable()
        try:
            print(
                f"{'CallInfoReq → CallInfoResp':<30}{'server':>12}{'req/s':>10}{'errors':>8}"
                f"{'srv CPU':>9}{'gen CPU':>9}{'other':>7}{'ratio':>8}"
            )
            best = 0.0
            for connections, depth in patterns:
                label = f"{connections} conn, " + (
                    "not pipelined" if depth == 1 else f"{depth} in flight"
                )
                results = {}
                for name, port, proc in (
                    ("ivr-server", ivr_port, server),
                    ("echo", echo_port, echo),
                ):
                    r = run_loop(
                        measure(port, proc.pid, connections, depth, seconds, name != "echo")
                    )
                    results[name] = r
                    ratio = ""
                    if name == "echo":
                        ratio = f"{results['ivr-server'].rate / r.rate * 100:.0f}%"
                    print(
                        f"  {label:<28}{name:>12}{r.rate:>10,.0f}{r.errors:>8}"
                        f"{pct(r.server_cpu):>9}{pct(r.generator_cpu):>9}{pct(r.other_cpu):>7}"
                        f"{ratio:>8}"
                    )
                    if r.errors or r.missing:
                        print(f"    {r.missing} replies missing; first error: {r.first_error!r}")
                srv, ech = results["ivr-server"], results["echo"]
                best = max(best, srv.rate)
                ok = srv.errors == 0 and srv.missing == 0
                ratio_value = srv.rate / ech.rate if ech.rate else 0.0
                note = ", echo generator-bound" if ech.generator_cpu > 0.9 else ""
                record("reqresp", f"CallInfoReq/s, {label}", srv.rate, "/s", met=None)
                record("reqresp", f"echo server, {label}", ech.rate, "/s")
                record(
                    "reqresp",
                    f"ivr-server / echo, {label}{note}",
                    ratio_value * 100,
                    "%",
                    f">= {TARGET_RATIO:.0%}",
                    ratio_value >= TARGET_RATIO and ok,
                )
            record(
                "reqresp",
                "CallInfoReq/s, best pattern",
                best,
                "/s",
                f">= {TARGET_RATE:,}",
                best >= TARGET_RATE,
            )
            print(
                f"targets: >= {TARGET_RATE:,} CallInfoReq/s: best {best:,.0f} "
                f"({'met' if best >= TARGET_RATE else 'NOT met'}); "
                f">= {TARGET_RATIO:.0%} of the echo server in each pattern"
            )
        finally:
            gc.enable()
            stop_servers([server, echo], log)


if __name__ == "__main__":
    main()
