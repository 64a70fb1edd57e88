#!/usr/bin/env python3
"""How much of a measured latency is the server's, and how much the load generator's own.

``bench_fullcall.py`` times a reply when its generator gets round to reading it: the moment its
event loop calls ``data_received``. That includes the generator's own wake-up and any queueing on
its core, which an IVR platform on another machine would not count against the server. This
script runs the same open loop (same call flow, same checks, same server, pinned the same way)
with sessions whose sockets are read with ``recvmsg`` and ``SO_TIMESTAMPNS``, and times every
reply twice in the same run:

* **generator**: as ``bench_fullcall.py`` does, from the ``data_received`` that sent the request
  to the ``data_received`` that read its reply;
* **kernel**: from just before the request's ``send`` to the moment the reply reached the
  generator's socket (the kernel's receive timestamp): the server's response time as a tap on
  the wire would see it, without the generator's scheduling.

    python3 bench/latency_split.py                          # 1,000 and 3,000 calls/s, 50 conn
    python3 bench/latency_split.py --rate 5400 --connections 50 --rounds 3

Reading the sockets from Python costs the generator more CPU than ``bench_fullcall.py``'s uvloop
transports (about a fifth more), so keep its core under 90% (printed) for the split to mean
anything. Linux only (``SO_TIMESTAMPNS``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import struct
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

import bench_fullcall as bf
from common import free_port, run_loop, start_server, stop_servers

SO_TIMESTAMPNS: Final = 35  # Linux; not exported by Python's socket module
TIMESPEC: Final = struct.Struct("qq")
ANCILLARY: Final = socket.CMSG_SPACE(TIMESPEC.size)
READ_SIZE: Final = 262_144


class Clocks:
    """Both timings of every reply of one run, by request type."""

    def __init__(self) -> None:
        self.generator: dict[str, list[float]] = {r: [] for r in bf.REQUESTS}
        """The run's ``Stats.latencies`` itself: the open loop replaces it when its warm-up ends,
        and the kernel timings restart with it."""
        self.kernel: dict[str, list[float]] = {r: [] for r in bf.REQUESTS}
        self.written: dict[bytes, float] = {}
        """When each call's pending request was handed to ``send`` (perf_counter)."""


class SocketTransport(asyncio.Transport):
    """The little of a transport :class:`bench_fullcall.Generator` uses, over a plain
    non-blocking socket that :class:`StampedGenerator` reads itself."""

    def __init__(self, sock: socket.socket, protocol: StampedGenerator) -> None:
        super().__init__()
        self.sock = sock
        self.protocol = protocol
        self.pending = bytearray()
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.pending:
            self.pending += data
            return
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        if sent < len(data):
            self.pending += memoryview(data)[sent:]
            asyncio.get_running_loop().add_writer(self.sock.fileno(), self.write_pending)

    def write_pending(self) -> None:
        try:
            sent = self.sock.send(self.pending)
        except BlockingIOError:
            return
        del self.pending[:sent]
        if not self.pending:
            asyncio.get_running_loop().remove_writer(self.sock.fileno())

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.sock.fileno())
        loop.remove_writer(self.sock.fileno())
        self.sock.close()
        loop.call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.sock if name == "socket" else default


class StampedGenerator(bf.Generator):
    """``bench_fullcall``'s session, reading its socket with the kernel's receive timestamps."""

    def __init__(
        self,
        index: int,
        ports: list[int],
        stats: bf.Stats,
        exact: bool,
        clocks: Clocks,
        sock: socket.socket,
    ) -> None:
        super().__init__(index, ports, stats, False, exact)
        self.clocks = clocks
        self.sock = sock
        self.unsent: list[bf.Call] = []
        """Calls whose next request is in ``out``, not yet written."""
        self.received = 0.0
        """The kernel's receive timestamp of the last read, on the perf_counter clock."""

    def on_readable(self) -> None:
        try:
            data, ancillary, _, _ = self.sock.recvmsg(READ_SIZE, ANCILLARY)
        except BlockingIOError:
            return
        except OSError as exc:
            self.stats.error("socket", f"conn {self.index}: {exc}")
            data, ancillary = b"", []
        now = time.perf_counter()
        offset = time.time() - time.perf_counter()  # the stamps are on the wall clock
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                seconds, nanoseconds = TIMESPEC.unpack_from(value)
                self.received = seconds + nanoseconds * 1e-9 - offset
        if not data:
            if self.transport is not None:
                self.transport.close()
            return
        self.feed(data, now)

    def flush(self) -> None:
        if self.out:
            written = time.perf_counter()
            for call in self.unsent:
                self.clocks.written[call.call_id] = written
            self.unsent.clear()
        super().flush()

    def start_call(self, now: float) -> bool:
        if not super().start_call(now):
            return False
        self.unsent.append(next(reversed(self.calls.values())))  # the call just added
        return True

    def reply(self, payload: bytes, now: float) -> None:
        clocks = self.clocks
        if clocks.generator is not self.stats.latencies:
            clocks.generator = self.stats.latencies
            clocks.kernel = {r: [] for r in bf.REQUESTS}
        match = bf._REPLY.search(payload)
        call = self.calls.get(match.group(1)) if match is not None else None
        if call is None:
            super().reply(payload, now)
            return
        step = call.step
        name = bf._STARTED_BY[step]
        before = len(self.stats.latencies[name])
        super().reply(payload, now)
        if len(self.stats.latencies[name]) > before:  # a request's last reply, checked
            clocks.kernel[name].append(self.received - clocks.written[call.call_id])
        if call.call_id not in self.calls:  # ended
            clocks.written.pop(call.call_id, None)
        elif call.step != step and call.step != bf.ESTAB:
            self.unsent.append(call)  # its next request is in ``out``


def stamped_connector(clocks: Clocks) -> bf.Connector:
    """A :data:`bench_fullcall.Connector` opening :class:`StampedGenerator` sessions."""

    async def connect(
        port: int, count: int, per_conn: int, closed: bool, stats: bf.Stats, exact: bool
    ) -> list[bf.Generator]:
        assert not closed, "open loops only"
        loop = asyncio.get_running_loop()
        gens: list[bf.Generator] = []
        for i in range(count):
            sock = socket.create_connection(("127.0.0.1", port))
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
            ports = list(range(i * per_conn + 1, (i + 1) * per_conn + 1))
            gen = StampedGenerator(i, ports, stats, exact, clocks, sock)
            gen.connection_made(SocketTransport(sock, gen))
            loop.add_reader(sock.fileno(), gen.on_readable)
            gens.append(gen)
        await asyncio.wait_for(asyncio.gather(*(g.logged_in for g in gens)), 10)
        return gens

    return connect


def ms(values: list[float], q: float) -> str:
    return f"{bf.percentile(sorted(values), q) * 1e3:6.2f}"


def report(result: bf.Result, clocks: Clocks) -> None:
    cpu = result.cpu
    print(
        f"{result.label}: {result.rate:,.0f} calls/s, server CPU {bf.pct(cpu.server)}, "
        f"generator CPU {bf.pct(cpu.generator)}, {result.stats.errors} errors"
    )
    print("  request       replies   generator clock p50/p99/max ms   kernel clock p50/p99/max ms")
    for name in bf.REQUESTS:
        gen, kern = clocks.generator[name], clocks.kernel[name]
        if not gen or len(gen) != len(kern):
            print(f"  {name:12}  {len(gen)} / {len(kern)} timings: not comparable")
            continue
        print(
            f"  {name:12}  {len(gen):7,}   {ms(gen, 0.5)} {ms(gen, 0.99)} {ms(gen, 1.0)}"
            f"            {ms(kern, 0.5)} {ms(kern, 0.99)} {ms(kern, 1.0)}"
        )
    worst_gen = max(bf.percentile(sorted(v), 0.99) for v in clocks.generator.values())
    worst_kern = max(bf.percentile(sorted(v), 0.99) for v in clocks.kernel.values())
    print(
        f"  worst p99: generator clock {worst_gen * 1e3:.2f} ms, kernel clock "
        f"{worst_kern * 1e3:.2f} ms (difference {(worst_gen - worst_kern) * 1e3:.2f} ms)"
    )
    if cpu.generator > 0.9:
        print("  warning: the generator's core was saturated: its sends ran late too")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--rate",
        type=float,
        action="append",
        help="open-loop calls/s (repeatable; default 1000 and 3000)",
    )
    ap.add_argument("--connections", type=int, default=50, help="sessions (default 50)")
    ap.add_argument("--seconds", type=float, default=10.0, help="seconds per run (default 10)")
    ap.add_argument("--rounds", type=int, default=1, help="runs per rate (default 1)")
    ap.add_argument("--config", type=Path, default=bf.CONFIG, help="server configuration")
    args = ap.parse_args()
    if not sys.platform.startswith("linux"):
        sys.exit("SO_TIMESTAMPNS: Linux only")
    gc.collect()
    gc.freeze()  # as bench_fullcall: the generator's collector must not add to its latencies
    gc.disable()
    with tempfile.TemporaryFile() as log:
        port = free_port()
        server = start_server(port, args.config, log, api=True)
        try:
            for rate in args.rate or [1000.0, 3000.0]:
                for _ in range(args.rounds):
                    clocks = Clocks()
                    result = run_loop(
                        bf.open_loop(
                            port,
                            server.pid,
                            args.connections,
                            rate,
                            args.seconds,
                            connector=stamped_connector(clocks),
                        )
                    )
                    report(result, clocks)
        finally:
            stop_servers([server], log)


if __name__ == "__main__":
    main()
