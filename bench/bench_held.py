#!/usr/bin/env python3
"""Concurrent held calls and the server's memory per call.

A configuration like bench/fullcall.toml but with one IVR ``BENCH`` of as many ports as the
largest number of calls asked for (written to a temporary file, never committed; or to a file of
your choosing with ``--write-config``, for other load generators) is served on CPU 0. The
generator (CPU 1) opens ``--connections`` IVR sessions (default 200), each owning its own slice
of the ports, and reads the server's resident memory (VmRSS of /proc/<pid>/status):

* *idle*: every session logged in, no call;
* *held*: N calls started (NewCall → Ringing, Established, every reply checked) and held;
* *ended*: every call ended (EndCall; a CallInfoReq for an unknown call after them on every
  session is answered only once the server has handled them all).

For each N of ``--calls`` (default 10,000 then 50,000 six times). Reported: MB, bytes per held
call, and whether RSS came back within 10% of the idle figure. Target (issue 5): 50,000 calls
under 500 MB. A leak shows over repeat rounds of the same N: each one would leave RSS higher than
all the rounds before it. The allocator's high-water mark does not: RSS after a round swings by a
few MB either way over the first rounds (CPython's small-object allocator keeps each 1 MiB arena
where a long-lived object made during a round's peak survives; later rounds reuse them, so it is
bounded by the peak), so the last repeat round is checked against the highest of the rounds
before it. Idle is read after the server's start-up trim, the lowest reading of 2 s of quiet.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Final, cast

from bench_fullcall import (
    CALL_INFO_REQ,
    END_CALL,
    FIRST_DN,
    IVR,
    login_frame,
    new_call_body,
    request,
)
from common import (
    add_common_args,
    free_port,
    record,
    rss_bytes,
    run_loop,
    start_server,
    stop_servers,
)
from ivr_server.wire import FrameDecoder, GliType

_REPLY: Final = re.compile(rb"<CallId>([^<]*)</CallId><([A-Za-z]+)")
TARGET_CALLS: Final = 50_000
TARGET_MB: Final = 500
RETURN_TOLERANCE: Final = 0.10
LEAK_TOLERANCE: Final = 0.01
"""The last repeat round of the same number of calls leaving RSS higher than every round before it
by more than this (of the idle figure) is a leak; below, it is the allocator's high-water mark.
Only the last round counts: the first rounds still settle the heap (a few MB each)."""
MB: Final = 1024 * 1024


def config_text(ports: int) -> str:
    """One in-front switch, IVR BENCH with ``ports`` ports "1".."ports" on DNs 100001.. (no
    routing point: a port numbered like one would receive its calls as routed calls)."""
    dns = "\n".join(
        f'    {{ number = "{FIRST_DN + i}", type = "voice-treatment-port" }},' for i in range(ports)
    )
    port_list = "\n".join(
        f'    {{ number = "{i + 1}", dn = "{FIRST_DN + i}" }},' for i in range(ports)
    )
    return f"""\
[server]
log-level = "WARNING"

[[switches]]
name = "SW_Bench"
type = "in-front"
dns = [
{dns}
]

[[tservers]]
name = "TServer_Bench"
switch = "SW_Bench"

[[ivrs]]
name = "{IVR}"
tservers = ["TServer_Bench"]
ports = [
{port_list}
]
"""


class Holder(asyncio.Protocol):
    """One IVR session holding calls on its own ports."""

    def __init__(self, index: int, ports: range) -> None:
        self.index = index
        self.ports = ports
        self.session_id = b"S%d" % index
        self.sync_id = b"SYNC%d" % index
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.logged_in: asyncio.Future[None] = loop.create_future()
        self.login_replies = 0
        self.want = 0
        self.established = 0
        self.all_established: asyncio.Future[None] = loop.create_future()
        self.synced: asyncio.Future[None] = loop.create_future()
        self.calls: list[bytes] = []
        self.errors = 0
        self.first_error = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(login_frame(self.session_id))

    def connection_lost(self, exc: Exception | None) -> None:
        for fut in (self.logged_in, self.all_established, self.synced):
            if not fut.done():
                fut.set_exception(ConnectionError(f"conn {self.index} lost: {exc}"))

    def error(self, payload: bytes) -> None:
        self.errors += 1
        if not self.first_error:
            self.first_error = payload[:400]

    def data_received(self, data: bytes) -> None:
        for gli_type, payload in self.decoder.feed(data):
            if gli_type != GliType.DATA:
                continue
            match = _REPLY.search(payload)
            if match is None:
                self.error(payload)
                continue
            call_id, element = match.groups()
            if call_id == self.session_id:
                self.login_replies += 1
                if element == b"LoginResp" and b"Result='Success'" not in payload:
                    self.error(payload)
                if self.login_replies == 2 and not self.logged_in.done():
                    self.logged_in.set_result(None)
            elif call_id == self.sync_id:
                if not self.synced.done():
                    self.synced.set_result(None)
            elif element == b"CallStatus":
                if b"Event='Established'" in payload:
                    self.established += 1
                    if self.established == self.want and not self.all_established.done():
                        self.all_established.set_result(None)
                elif b"Event='Ringing'" not in payload:
                    self.error(payload)
            else:
                self.error(payload)

    def start_calls(self, count: int, round_no: int) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self.want, self.established = count, 0
        self.all_established = loop.create_future()
        if count == 0:
            self.all_established.set_result(None)
        self.calls = [b"H%d_%d_%d" % (self.index, p, round_no) for p in self.ports[:count]]
        self.transport.write(
            b"".join(
                request(cid, new_call_body(p))
                for cid, p in zip(self.calls, self.ports[:count], strict=True)
            )
        )

    def end_calls(self) -> None:
        assert self.transport is not None
        self.synced = asyncio.get_running_loop().create_future()
        out = [request(cid, END_CALL) for cid in self.calls]
        out.append(request(self.sync_id, CALL_INFO_REQ))
        self.transport.write(b"".join(out))
        self.calls = []


async def settled_rss(pid: int, seconds: float) -> int:
    """RSS after ``seconds`` of quiet (the lowest reading of the last half)."""
    await asyncio.sleep(seconds / 2)
    low = rss_bytes(pid)
    for _ in range(5):
        await asyncio.sleep(seconds / 10)
        low = min(low, rss_bytes(pid))
    return low


async def run(port: int, pid: int, connections: int, sizes: list[int], ports: int) -> bool:
    loop = asyncio.get_running_loop()
    per_conn = ports // connections
    holders: list[Holder] = []
    started_rss = rss_bytes(pid)
    for i in range(connections):
        _, h = await loop.create_connection(
            partial(Holder, i, range(i * per_conn + 1, (i + 1) * per_conn + 1)), "127.0.0.1", port
        )
        holders.append(h)
    await asyncio.wait_for(asyncio.gather(*(h.logged_in for h in holders)), 30)
    idle = await settled_rss(pid, 2.0)
    print(f"  server started, no session: {started_rss / MB:.1f} MB")
    print(f"  idle ({connections} sessions, no call): {idle / MB:.1f} MB")
    print(
        f"  {'calls held':>10}{'set-up calls/s':>16}{'held MB':>9}{'B/call':>8}"
        f"{'ended MB':>10}{'vs idle':>9}{'errors':>8}"
    )
    all_ok = True
    ended_after: dict[int, int] = {}
    for round_no, n in enumerate(sizes):
        base, extra = divmod(n, connections)
        t0 = time.perf_counter()
        for i, h in enumerate(holders):
            h.start_calls(base + (1 if i < extra else 0), round_no)
        try:
            await asyncio.wait_for(
                asyncio.gather(*(h.all_established for h in holders)), 30 + n / 1000
            )
        except TimeoutError:
            got = sum(h.established for h in holders)
            first = next((h.first_error for h in holders if h.first_error), b"")
            raise RuntimeError(
                f"{got:,} of {n:,} calls established; errors "
                f"{sum(h.errors for h in holders)}, first: {first!r}"
            ) from None
        setup_rate = n / (time.perf_counter() - t0)
        held = await settled_rss(pid, 2.0)
        for h in holders:
            h.end_calls()
        await asyncio.wait_for(asyncio.gather(*(h.synced for h in holders)), 60)
        ended = await settled_rss(pid, 3.0)
        errors = sum(h.errors for h in holders)
        per_call = (held - idle) / n
        back = ended / idle - 1
        returned = back <= RETURN_TOLERANCE
        print(
            f"  {n:>10,}{setup_rate:>16,.0f}{held / MB:>9.1f}{per_call:>8,.0f}"
            f"{ended / MB:>10.1f}{back * 100:>+8.0f}%{errors:>8}"
        )
        first = next((h.first_error for h in holders if h.first_error), b"")
        if first:
            print(f"    first error: {first!r}")
        repeat = sizes[:round_no].count(n)
        label = f"{n:,} held calls" + (f" (round {repeat + 1})" if repeat else "")
        size_target = f"< {TARGET_MB} MB" if n >= TARGET_CALLS else ""
        size_met = held / MB < TARGET_MB and errors == 0 if n >= TARGET_CALLS else None
        record("held", f"RSS, {label}", held / MB, "MB", size_target, size_met)
        record("held", f"RSS growth per held call (lower bound), {label}", per_call, "B")
        record(
            "held",
            f"RSS after they ended vs idle, {label}",
            back * 100,
            "%",
            f"<= +{RETURN_TOLERANCE:.0%}",
            returned and errors == 0,
        )
        all_ok = all_ok and returned and errors == 0 and size_met is not False
        if n in ended_after:
            growth = (ended - ended_after[n]) / MB  # over the highest of the earlier rounds
            last = n not in sizes[round_no + 1 :]
            grew = growth > LEAK_TOLERANCE * idle / MB
            print(
                f"    RSS after this round minus the highest after the earlier ones: {growth:+.1f} MB"
            )
            record(
                "held",
                f"RSS growth over the earlier rounds' highest, {label}",
                growth,
                "MB",
                f"<= {LEAK_TOLERANCE:.0%} of idle" if last else "",
                not grew if last else None,
            )
            if last:
                all_ok = all_ok and not grew
        ended_after[n] = max(ended, ended_after.get(n, 0))
    record("held", f"RSS idle, {connections} sessions", idle / MB, "MB")
    for h in holders:
        if h.transport is not None:
            h.transport.close()
    return all_ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)
    ap.add_argument(
        "--calls",
        default=None,
        help="comma-separated numbers of held calls, run in order "
        "(default 10000 then 50000 six times; --quick: 2000,2000,2000)",
    )
    ap.add_argument("--connections", type=int, default=200, help="IVR sessions (default 200)")
    ap.add_argument(
        "--write-config",
        metavar="FILE",
        type=Path,
        help="write the configuration the benchmark would serve (enough ports for the largest "
        "--calls over --connections) to FILE and exit: for other load generators",
    )
    args, _ = ap.parse_known_args()
    spec = args.calls or ("2000,2000,2000" if args.quick else "10000" + ",50000" * 6)
    sizes = [int(v.replace("_", "")) for v in spec.split(",") if v.strip()]
    connections = args.connections
    ports = -(-max(sizes) // connections) * connections
    if args.write_config is not None:
        args.write_config.write_text(config_text(ports), encoding="utf-8")
        print(f'{args.write_config}: IVR {IVR} with {ports:,} ports, "1".."{ports}"')
        return
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
        config = Path(tmp) / "held.toml"
        config.write_text(config_text(ports), encoding="utf-8")
        port = free_port()
        print(
            f"held calls: IVR {IVR} with {ports:,} ports over {connections} sessions "
            f"({config.stat().st_size / MB:.1f} MB of TOML, temporary)"
        )
        t0 = time.perf_counter()
        server = start_server(port, config, log, api=True)
        print(f"  server accepting after {time.perf_counter() - t0:.1f} s")
        gc.disable()
        try:
            ok = run_loop(run(port, server.pid, connections, sizes, ports))
            print(
                f"targets: {TARGET_CALLS:,} calls under {TARGET_MB} MB (largest here: "
                f"{max(sizes):,}), RSS back within {RETURN_TOLERANCE:.0%} of idle after they end, "
                f"no growth over repeat rounds: {'met' if ok else 'NOT met'}"
            )
        finally:
            gc.enable()
            stop_servers([server], log)


if __name__ == "__main__":
    main()
