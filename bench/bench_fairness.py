#!/usr/bin/env python3
"""Fairness between connections: one noisy IVR connection must slow itself, not the others.

50 well-behaved connections run the production call flow of ``bench_fullcall.py`` in an open
loop at ``--rate`` complete calls per second (default 1,000), first alone ("quiet"), then beside
one noisy connection that sends, as fast as the server takes it:

    udata       UDataSet Replace of about 63 KB (1,265 keys) on its own call, again and again
    flood       small requests on its own call (CallInfoReq and UDataGet), thousands per write
    keepalive   GLI KeepAliveRequest frames

The noisy connection is a separate process of plain blocking sockets (one thread writes, one
reads and counts the frames it gets back), so that it costs the load generator's core little; it
runs on the generator's core, the server on its own (as in ``bench_fullcall.py``). It owns port
1000, 999 or 998 of ``bench/fullcall.toml``; the 50 connections use ports 1-950.

Printed for each run: the 50 connections' calls per second, errors, per-request p50/p99/max
(the same table as ``bench_fullcall.py``), and the noisy connection's answered frames per second.
Target (issue 19): the worst p99 of the well-behaved requests beside the noisy connection at most
twice the quiet figure and under 10 ms. On a shared machine the figures are noisy: compare runs
made together.

    python3 bench/bench_fairness.py                 # quiet, then each noise (5 s each)
    python3 bench/bench_fairness.py --noise udata    # one noise only
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Final

from bench_fullcall import (
    CONFIG,
    PORTS,
    REQUESTS,
    Generator,
    Result,
    Stats,
    connect,
    header,
    login_frame,
    new_call_body,
    open_loop,
    percentile,
    print_errors,
    print_latencies,
    request,
    summary,
)
from common import free_port, record, run_loop, start_server, stop_servers
from ivr_server.wire import FrameDecoder, GliType, encode_frame

NOISES: Final = ("udata", "flood", "keepalive")
LABELS: Final = {
    "udata": "63 KB UDataSets",
    "flood": "request flood",
    "keepalive": "keep-alive flood",
}
NOISY_PORTS: Final = {"udata": PORTS, "flood": PORTS - 1, "keepalive": PORTS - 2}
"""The noisy connection's port, one per noise (a call left on a port after its connection has gone
keeps it for a while); the 50 well-behaved connections keep below them."""
NOISY_PORT: Final = min(NOISY_PORTS.values())
NOISY_CALL: Final = b"NOISY-1"
TARGET_RATIO: Final = 2.0
TARGET_CEILING: Final = 0.010
CONNECTIONS: Final = 50


# --------------------------------------------------------------------------------------------
# The noisy connection (a child process: --noisy MODE --port N)


def _body(element: str) -> bytes:
    return b"</CallId>" + element.encode("latin-1") + b"</GctiMsg>\n"


def noisy_chunk(mode: str) -> bytes:
    """What the noisy connection writes again and again."""
    if mode == "udata":
        nodes = "".join(
            f'<Node Name="key{i:04d}" Type="Str" Val="value{i:05d}"/>' for i in range(1265)
        )
        body = _body(
            '<UDataSet Action="Replace"><RequestId>9</RequestId>'
            f"<UDataEx>{nodes}</UDataEx></UDataSet>"
        )
        return request(NOISY_CALL + b"udata", body)
    if mode == "flood":
        info = request(NOISY_CALL + b"flood", _body("<CallInfoReq></CallInfoReq>"))
        get = request(
            NOISY_CALL + b"flood", _body('<UDataGet Keys="k1"><RequestId>8</RequestId></UDataGet>')
        )
        return (info + get) * 500
    if mode == "keepalive":
        return encode_frame(GliType.KEEP_ALIVE_REQUEST) * 10_000
    raise ValueError(mode)


def run_noisy(mode: str, port: int) -> None:
    """Log in, start a call on its port (NOISY_PORTS), print "ready", then flood until SIGTERM; print the
    counts as one JSON line."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    decoder = FrameDecoder()

    def until(pred: bytes) -> None:
        while True:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("server closed during set-up")
            for _, payload in decoder.feed(data):
                if pred in payload:
                    return
                if b"<EndCall" in payload or (b"Result='" in payload and b"Success" not in payload):
                    raise RuntimeError(f"set-up refused: {payload[-200:]!r}")

    sock.sendall(login_frame(b"noisy-login"))
    until(b"<FlowControl")
    sock.sendall(request(NOISY_CALL + mode.encode(), new_call_body(NOISY_PORTS[mode])))
    until(b"Event='Established'")
    sock.settimeout(None)
    chunk = noisy_chunk(mode)
    stop = threading.Event()
    counts = {"frames": 0, "bytes_in": 0, "bytes_out": 0}

    def reader() -> None:
        with contextlib.suppress(OSError):
            while not stop.is_set():
                data = sock.recv(262144)
                if not data:
                    break
                counts["bytes_in"] += len(data)
                if mode != "keepalive":  # (6-byte answers: counted by size, at no CPU cost)
                    counts["frames"] += len(decoder.feed(data))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    started = time.perf_counter()
    with contextlib.suppress(OSError):
        while not stop.is_set():
            sock.sendall(chunk)
            counts["bytes_out"] += len(chunk)
    seconds = time.perf_counter() - started
    if mode == "keepalive":
        counts["frames"] = counts["bytes_in"] // 6
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    print(json.dumps({**counts, "seconds": seconds}), flush=True)


class Noisy:
    """The noisy child process, started before a run and stopped after it."""

    def __init__(self, mode: str, port: int) -> None:
        self.mode = mode
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--noisy", mode, "--port", str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.proc.kill()
            raise RuntimeError(f"noisy connection ({mode}) did not start: {line!r}")

    def stop(self) -> dict[str, float]:
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        lines = [line for line in out.splitlines() if line.startswith("{")]
        return dict(json.loads(lines[-1])) if lines else {}


# --------------------------------------------------------------------------------------------
# Runs


def worst_p99(result: Result) -> tuple[str, float]:
    return max(
        ((name, percentile(sorted(result.stats.latencies[name]), 0.99)) for name in REQUESTS),
        key=lambda item: item[1],
    )


def run_one(port: int, pid: int, rate: float, seconds: float, noise: str | None) -> Result | None:
    """One open loop of the 50, beside the noisy connection ``noise`` (started once the 50 have
    logged in); ``None`` when the 50 could not run (printed)."""
    noisy: list[Noisy] = []

    async def connect_then_noise(
        port: int, count: int, per_conn: int, closed: bool, stats: Stats, exact: bool
    ) -> list[Generator]:
        """The well-behaved sessions, on ports below the noisy connection's; then the noise."""
        per = (NOISY_PORT - 1) // count
        gens = await connect(port, count, min(per, per_conn), closed, stats, exact)
        if noise:
            noisy.append(Noisy(noise, port))
        return gens

    what = LABELS[noise] if noise else "quiet"
    header(f"{rate:,.0f} calls/s over {CONNECTIONS} connections, {what}")
    try:
        result = run_loop(
            open_loop(port, pid, CONNECTIONS, rate, seconds, connector=connect_then_noise)
        )
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(f"  the {CONNECTIONS} connections could not run: {exc!r}")
        return None
    finally:
        counts = noisy[0].stop() if noisy else {}
    summary(result)
    print_latencies(result)
    print_errors(result)
    if counts:
        secs = counts.get("seconds", 0.0) or float("nan")
        print(
            f"    noisy connection: {counts['frames'] / secs:,.0f} frames answered/s, "
            f"{counts['bytes_out'] / secs / 1e6:,.1f} MB/s written (as fast as the server took it)"
        )
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", "--duration", type=float, default=None, help="seconds per run")
    ap.add_argument("--quick", action="store_true", help="2 s per run")
    ap.add_argument("--rate", type=float, default=1000.0, help="calls/s of the 50 (default 1000)")
    ap.add_argument("--config", type=Path, default=CONFIG, help="server configuration")
    ap.add_argument(
        "--noise", default=",".join(NOISES), help=f"which noises, of {','.join(NOISES)}"
    )
    ap.add_argument("--noisy", choices=NOISES, help=argparse.SUPPRESS)  # the child process
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args, _ = ap.parse_known_args()
    if args.noisy:
        run_noisy(args.noisy, args.port)
        return
    seconds = args.seconds or (2.0 if args.quick else 5.0)
    noises = [n.strip() for n in args.noise.split(",") if n.strip()]
    for noise in noises:
        if noise not in NOISES:
            ap.error(f"unknown noise {noise!r}")
    gc.collect()
    gc.freeze()
    gc.disable()  # as bench_fullcall.py: the generator's collections would count as latency
    port = free_port()
    with tempfile.TemporaryFile() as log:
        server = start_server(port, args.config, log)
        try:
            quiet = run_one(port, server.pid, args.rate, seconds, None)
            if quiet is None:
                raise SystemExit("the quiet run failed")
            _, quiet_p99 = worst_p99(quiet)
            rows: list[tuple[str, Result | None, float, bool | None]] = [
                ("quiet", quiet, quiet_p99, None)
            ]
            for noise in noises:
                result = run_one(port, server.pid, args.rate, seconds, noise)
                p99 = worst_p99(result)[1] if result is not None else float("inf")
                ok = (
                    result is not None
                    and p99 <= TARGET_RATIO * quiet_p99
                    and p99 < TARGET_CEILING
                    and not result.stats.errors
                    and not result.in_flight
                )
                rows.append((LABELS[noise], result, p99, ok))
        finally:
            stop_servers([server], log)
    print(
        f"\nfairness: worst request p99 of the {CONNECTIONS} well-behaved connections at "
        f"{args.rate:,.0f} calls/s (target: <= {TARGET_RATIO:g}x quiet and < "
        f"{TARGET_CEILING * 1e3:.0f} ms; CPU {os.cpu_count()} cores, shared: figures are noisy)"
    )
    for what, result, p99, met in rows:
        verdict = "" if met is None else ("met" if met else "NOT met")
        if result is None:
            print(f"  {what:<20} the {CONNECTIONS} connections could not run  {verdict}")
            record("fairness", f"{what}: the {CONNECTIONS} connections could not run", 0, "ms")
            continue
        name, _ = worst_p99(result)
        print(
            f"  {what:<20} p99 {p99 * 1e3:7.2f} ms ({name:<12}) {p99 / quiet_p99:5.1f}x quiet, "
            f"{result.stats.errors} errors  {verdict}"
        )
        record(
            "fairness",
            f"worst request p99 of {CONNECTIONS} conn at {args.rate:,.0f} calls/s, {what}",
            p99 * 1e3,
            "ms",
            "" if met is None else f"<= {TARGET_RATIO:g}x quiet, < {TARGET_CEILING * 1e3:.0f} ms",
            met,
        )


if __name__ == "__main__":
    main()
