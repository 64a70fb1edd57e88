#!/usr/bin/env python3
"""Behind-mode full calls per second: ivr-server watching the CSTA PBX simulator, against the
same calls In-Front in the same run.

One Behind call is the production flow of the real site (issue 22), on a premise switch:

    NewCall              -> nothing yet; the simulator is told (HTTP API) to deliver a call
                            from the call's own ANI to the port's DN, and answers it at once:
                            CSTA Delivered, Established -> CallStatus Ringing, Established
    CallInfoReq          -> CallInfoResp (the switch's ANI, the port)
    UDataSet Replace     -> UDataResp Success            (3 nodes)
    UDataGet k1:k2       -> UDataResp Success + UDataEx
    RouteRequest 5000    -> RouteResponse Normal, Dest 7002 (a Virtual Routing Point whose
                            built-in router answers at once: no PBX request, MODES-AND-HA G1)
    EndCall Normal       -> no reply; the server clears the port's connection (CSTA
                            ClearConnection) and the simulator ends the call

The In-Front figures are bench/bench_fullcall.py's flow (the same requests, Ringing and
Established from the server's own virtual switch) on ``bench/fullcall.toml``, measured by the
same generator with the same topology in the same run. Both: a closed loop (every connection
keeps its calls in progress, a finished call replaced at once) gives the maximum rate; an open
loop at half that maximum gives the latency per request (p50, p99).

Processes: the server pinned to CPU 0; the simulator pinned to CPU 1, beside this load
generator (the place of every benchmark's generator). Deliveries go to the simulator's API on
one keep-alive HTTP connection, pipelined, several calls per request when the simulator has
``POST /api/v1/calls/batch`` (``--per-call`` forces one request per call); a port is reused only
after every other port of its connection (its previous call is long cleared by then).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, Final

from bench_fullcall import (
    CONFIG as IN_FRONT_CONFIG,
)
from bench_fullcall import (
    END_CALL,
    IVR,
    REQUESTS,
    ROUTE_DN,
    TARGET_DN,
    Call,
    CpuMeter,
    Generator,
    Result,
    Stats,
    drain,
    header,
    percentile,
    print_errors,
    print_latencies,
    process_cpu,
    request,
    summary,
    wait_idle,
    watchdog,
)
from common import free_port, record, start_server, stop_servers

FIRST_DN: Final = 100001
"""The port DNs, as bench/fullcall.toml's (ports "1".."N" on DNs 100001...)."""
CONNECTIONS: Final = 10
CALLS_PER_CONN = 20
"""The topology of every run: 10 IVR sessions with 20 calls in progress each (closed loop;
``--per-conn`` changes it)."""
PORTS_PER_CONN = 2 * CALLS_PER_CONN
"""Twice the calls: a port waits for every other port of its connection before it is reused."""
PORTS = CONNECTIONS * PORTS_PER_CONN
TARGET_CALLS: Final = 1000
TARGET_P99: Final = 0.005
TARGET_SHARE: Final = 0.40
DELIVERY_TIMEOUT: Final = 5.0


# --------------------------------------------------------------------------------------------
# Configurations


def server_config(pbx_port: int) -> str:
    """ivr-server: one premise switch on the simulator, IVR BENCH with :data:`PORTS` ports, VRP
    5000 routed to 7002 by the built-in router."""
    dns = "\n".join(
        f'    {{ number = "{FIRST_DN + i}", type = "voice-treatment-port" }},' for i in range(PORTS)
    )
    ports = "\n".join(f'    {{ number = "{i + 1}", dn = "{FIRST_DN + i}" }},' for i in range(PORTS))
    return f"""\
[server]
log-level = "WARNING"

[[switches]]
name = "SW_Premise"
type = "premise-csta"
dns = [
    {{ number = "{ROUTE_DN}", type = "virtual-routing-point" }},
    {{ number = "{TARGET_DN}", type = "extension" }},
{dns}
]

[[tservers]]
name = "TServer_Premise"
switch = "SW_Premise"

[tservers.premise]
address = "127.0.0.1:{pbx_port}"
application-id = "ivr-server"

[[ivrs]]
name = "{IVR}"
tservers = ["TServer_Premise"]
ports = [
{ports}
]

[[routing]]
dn = "{ROUTE_DN}"

[[routing.rules]]
name = "all"
dn = "{TARGET_DN}"
"""


def sim_config() -> str:
    """The simulator: the same port DNs (answered at once) and the extension 7002."""
    dns = "\n".join(
        f'[[dns]]\nnumber = "{FIRST_DN + i}"\ntype = "voice-treatment-port"\n' for i in range(PORTS)
    )
    return f'[simulator]\nname = "BenchPBX"\n\n[[dns]]\nnumber = "{TARGET_DN}"\ntype = "extension"\n\n{dns}'


# --------------------------------------------------------------------------------------------
# Deliveries through the simulator's HTTP API


class Deliverer(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to the simulator's API: deliveries are queued, written
    once per turn of the loop (pipelined; one ``POST /calls/batch`` for all of them when
    ``batch``), and their answers read in order and checked (201/200)."""

    def __init__(self, host: str, stats: Stats, batch: bool) -> None:
        self.host = host
        self.stats = stats
        self.batch = batch
        self.queue: list[tuple[str, str]] = []
        self.waiting: deque[int] = deque()
        """Deliveries each request in flight carries, oldest first."""
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.scheduled = False
        self.requests = 0
        self.on_delivered: Callable[[dict[str, Any]], None] | None = None
        """Called with each call the simulator delivered (bench/transfer.py keeps its id)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.waiting:
            self.stats.error("simulator API connection lost", f"{exc}")

    def deliver(self, ani: str, dn: str) -> None:
        self.queue.append((ani, dn))
        if not self.scheduled:
            self.scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def _post(self, path: str, body: object) -> bytes:
        data = json.dumps(body, separators=(",", ":")).encode()
        head = (
            f"POST /api/v1/{path} HTTP/1.1\r\nHost: {self.host}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
        )
        return head.encode() + data

    def flush(self) -> None:
        self.scheduled = False
        queue, self.queue = self.queue, []
        if not queue or self.transport is None:
            return
        if self.batch:
            calls = [{"from": ani, "to": dn} for ani, dn in queue]
            self.transport.write(self._post("calls/batch", {"calls": calls}))
            self.waiting.append(len(queue))
            self.requests += 1
        else:
            self.transport.write(
                b"".join(self._post("calls", {"from": ani, "to": dn}) for ani, dn in queue)
            )
            self.waiting.extend([1] * len(queue))
            self.requests += len(queue)

    def data_received(self, data: bytes) -> None:
        answers, self.buffer = http_responses(self.buffer + data)
        for status, body in answers:
            if self.waiting:
                self.waiting.popleft()
            if status not in ("200", "201"):
                self.stats.error(
                    f"delivery refused ({status})", body[:200].decode(errors="replace")
                )
            elif self.batch:
                for call in json.loads(body)["calls"]:
                    if call.get("status") != 201:
                        self.stats.error(f"delivery refused ({call.get('status')})", str(call))
                    elif self.on_delivered is not None:
                        self.on_delivered(call)
            elif self.on_delivered is not None:
                self.on_delivered(json.loads(body))


def http_responses(buffer: bytes) -> tuple[list[tuple[str, bytes]], bytes]:
    """The complete HTTP/1.1 responses at the start of ``buffer`` as (status, body), and the
    bytes left (a response not yet whole)."""
    answers: list[tuple[str, bytes]] = []
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return answers, buffer
        head = buffer[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        if len(buffer) < end + 4 + length:
            return answers, buffer
        answers.append((head.split(" ", 2)[1], buffer[end + 4 : end + 4 + length]))
        buffer = buffer[end + 4 + length :]


class BehindGenerator(Generator):
    """bench_fullcall's IVR session, for Behind calls: each NewCall is followed by its delivery
    through the simulator, and a freed port goes to the back of the line."""

    deliverer: Deliverer | None = None

    def start_call(self, now: float) -> bool:
        if not self.free:
            return False
        port = self.free[-1]
        started = super().start_call(now)
        assert self.deliverer is not None
        self.deliverer.deliver(f"9{self.index:03d}{self.seq:07d}", str(FIRST_DN + port - 1))
        return started

    def finish(self, call: Call, now: float, ok: bool) -> None:
        """As the In-Front generator's, but the freed port goes to the front of the line."""
        del self.calls[call.call_id]
        self.out.append(request(call.call_id, END_CALL))
        if ok:
            self.stats.completed += 1
        else:
            self.dead.add(call.call_id)
        self.free.insert(0, call.port)
        if self.closed and self.running:
            self.start_call(now)
        elif not self.calls:
            self.idle.set()


GENERATOR: type[BehindGenerator] = BehindGenerator
"""The Behind sessions' class (bench/transfer.py sets its own, ending each call in a transfer)."""


# --------------------------------------------------------------------------------------------
# Runs


async def connect(
    port: int, api_port: int | None, batch: bool, closed: bool, stats: Stats
) -> tuple[list[Generator], Deliverer | None]:
    """The sessions (each with its :data:`PORTS_PER_CONN` ports) and, Behind, the deliverer."""
    loop = asyncio.get_running_loop()
    deliverer: Deliverer | None = None
    if api_port is not None:
        _, deliverer = await loop.create_connection(
            partial(Deliverer, f"127.0.0.1:{api_port}", stats, batch), "127.0.0.1", api_port
        )
    kind = Generator if deliverer is None else GENERATOR
    gens: list[Generator] = []
    for i in range(CONNECTIONS):
        ports = list(range(i * PORTS_PER_CONN + 1, (i + 1) * PORTS_PER_CONN + 1))
        _, gen = await loop.create_connection(
            partial(kind, i, ports, stats, closed, True), "127.0.0.1", port
        )
        if isinstance(gen, BehindGenerator):
            gen.deliverer = deliverer
        gens.append(gen)
    await asyncio.wait_for(asyncio.gather(*(g.logged_in for g in gens)), 10)
    return gens, deliverer


@dataclass
class Run:
    """One measurement: the generator's result, the simulator's CPU share (Behind)."""

    result: Result
    sim_cpu: float


async def closed_loop(
    port: int, pid: int, api_port: int | None, sim_pid: int | None, seconds: float, batch: bool
) -> Run:
    stats = Stats()
    gens, deliverer = await connect(port, api_port, batch, True, stats)
    dog = asyncio.create_task(watchdog(gens))
    now = time.perf_counter()
    for gen in gens:
        for _ in range(CALLS_PER_CONN):
            gen.start_call(now)
        gen.flush()
    await asyncio.sleep(min(1.0, seconds / 5))  # warm-up, not counted
    stats.completed = 0
    stats.latencies = {r: [] for r in REQUESTS}
    meter, t0 = CpuMeter(pid), time.perf_counter()
    sim0 = process_cpu(sim_pid) if sim_pid else 0.0
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    sim_cpu = (process_cpu(sim_pid) - sim0) / elapsed if sim_pid else 0.0
    done, latencies = stats.completed, stats.latencies
    stats.latencies = {r: [] for r in REQUESTS}
    left = await drain(gens)
    dog.cancel()
    if deliverer is not None and deliverer.transport is not None:
        deliverer.transport.close()
    stats.completed, stats.latencies = done, latencies
    label = f"{CONNECTIONS} conn × {CALLS_PER_CONN} calls"
    return Run(Result(label, elapsed, stats, cpu, left), sim_cpu)


async def open_loop(
    port: int,
    pid: int,
    api_port: int | None,
    sim_pid: int | None,
    rate: float,
    seconds: float,
    batch: bool,
) -> Run:
    """``rate`` calls per second round-robin over the sessions, whatever the replies; the first
    second is a warm-up, not measured."""
    stats = Stats()
    gens, deliverer = await connect(port, api_port, batch, False, stats)
    dog = asyncio.create_task(watchdog(gens))
    warm, total = int(rate), int(rate * (1 + seconds))
    t0 = time.perf_counter()
    n = 0
    measuring = False
    meter, t_measured, sim0 = CpuMeter(pid), t0, 0.0
    while n < total:
        now = time.perf_counter()
        due = min(total, int((now - t0) * rate) + 1)
        if not measuring and due > warm:  # the measurement starts with call number ``warm``
            if n < warm:
                due = warm
            else:
                measuring = True
                stats.latencies = {r: [] for r in REQUESTS}
                # the warm-up calls still in progress will complete: they are not counted
                stats.completed, stats.started = stats.completed - stats.started, 0
                meter, t_measured = CpuMeter(pid), now
                sim0 = process_cpu(sim_pid) if sim_pid else 0.0
        while n < due:
            gen = gens[n % CONNECTIONS]
            if not gen.start_call(now):
                stats.error("no free port (open loop)", f"conn {gen.index}: call {n}")
            n += 1
        for gen in gens:
            gen.flush()
        await asyncio.sleep(max(0.001, t0 + n / rate - time.perf_counter()))
    await wait_idle(gens, DELIVERY_TIMEOUT + 1)
    elapsed = time.perf_counter() - t_measured
    cpu = meter.stop()
    sim_cpu = (process_cpu(sim_pid) - sim0) / elapsed if sim_pid else 0.0
    left = await drain(gens)
    dog.cancel()
    if deliverer is not None and deliverer.transport is not None:
        deliverer.transport.close()
    label = f"{rate:,.0f} calls/s, {CONNECTIONS} conn"
    return Run(Result(label, elapsed, stats, cpu, left), sim_cpu)


# --------------------------------------------------------------------------------------------
# Processes


def start_sim(config: Path, log: IO[bytes]) -> tuple[subprocess.Popen[bytes], int, int]:
    """``ivr-server csta-sim`` pinned to CPU 1 (beside this generator); (process, CSTA port,
    API port) once its API answers."""
    csta, api = free_port(), free_port()
    cmd = [sys.executable, "-m", "ivr_server", "csta-sim", "--config", str(config)]
    cmd += ["--listen", f"127.0.0.1:{csta}", "--api-listen", f"127.0.0.1:{api}"]
    cmd += ["--log-level", "WARNING"]
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "1", *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"the simulator exited: {log.read().decode(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", api), timeout=0.2).close()
            return proc, csta, api
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the simulator did not start")


def has_batch(api_port: int) -> bool:
    """Whether the simulator takes ``POST /api/v1/calls/batch`` (an empty batch: 200/201)."""
    import urllib.error
    import urllib.request

    req = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/api/v1/calls/batch",
        data=b'{"calls": []}',
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return resp.status in (200, 201)
    except (urllib.error.URLError, OSError):
        return False


async def wait_linked(port: int, timeout: float = 20.0) -> None:
    """Until a login of IVR BENCH says the premise link is up (LoginResp Status='OK')."""
    from ivr_server.client import IvrClient

    deadline = time.monotonic() + timeout
    while True:
        client = await IvrClient.connect("127.0.0.1", port)
        try:
            result = await client.login(IVR)
        finally:
            await client.close()
        if result.response.Status == "OK":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the premise link did not come up: {result.response}")
        await asyncio.sleep(0.2)


# --------------------------------------------------------------------------------------------
# Report


@dataclass
class Mode:
    """What one mode gave: the closed loop's rate, the open loop at half of it, worst p99."""

    name: str
    closed: Run
    half: Run
    worst: float
    worst_name: str


def report(mode: str, what: str, run: Run, behind: bool) -> None:
    r = run.result
    header(f"{mode}: full calls ({what})")
    summary(r)
    if behind:
        print(f"    simulator CPU: {run.sim_cpu * 100:.0f}% (on the generator's core)")
    print(f"    {r.stats.completed:,} calls completed in {r.seconds:.1f} s")
    print_latencies(r)
    print_errors(r)


def measure(
    runner: Callable[[Coroutine[Any, Any, Run]], Run],
    mode: str,
    port: int,
    pid: int,
    api: int | None,
    sim_pid: int | None,
    seconds: float,
    batch: bool,
) -> Mode:
    behind = api is not None
    closed = runner(closed_loop(port, pid, api, sim_pid, seconds, batch))
    report(mode, "closed loop", closed, behind)
    half_rate = max(1, round(closed.result.rate / 2))
    half = runner(open_loop(port, pid, api, sim_pid, half_rate, max(seconds, 2.0), batch))
    report(mode, f"open loop at half the max, {half_rate:,} calls/s", half, behind)
    worst_name, worst = max(
        ((n, percentile(sorted(v), 0.99)) for n, v in half.result.stats.latencies.items()),
        key=lambda item: item[1],
    )
    return Mode(mode, closed, half, worst, worst_name)


def run_suite(seconds: float, per_call: bool, quick: bool) -> None:
    runner: Callable[[Coroutine[Any, Any, Run]], Run] = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
            port = free_port()
            server = start_server(port, IN_FRONT_CONFIG, log, api=True)
            try:
                front = measure(runner, "In-Front", port, server.pid, None, None, seconds, False)
            finally:
                stop_servers([server], log)

            sim_toml = Path(tmp) / "pbx.toml"
            sim_toml.write_text(sim_config(), encoding="utf-8")
            with tempfile.TemporaryFile() as sim_log:
                sim, csta, api = start_sim(sim_toml, sim_log)
                try:
                    batch = not per_call and has_batch(api)
                    print(
                        f"deliveries: {'batched (POST /calls/batch)' if batch else 'one POST /calls per call'}"
                    )
                    server_toml = Path(tmp) / "behind.toml"
                    server_toml.write_text(server_config(csta), encoding="utf-8")
                    port = free_port()
                    server = start_server(port, server_toml, log, api=True)
                    try:
                        asyncio.run(wait_linked(port))
                        behind = measure(
                            runner, "Behind", port, server.pid, api, sim.pid, seconds, batch
                        )
                    finally:
                        stop_servers([server], log)
                finally:
                    sim.terminate()
                    sim.wait(10)
                    sim_log.seek(0)
                    tail = sim_log.read()[-1500:].decode(errors="replace")
                    if tail.strip():
                        print(f"simulator stderr (tail):\n{tail}")
        conclude(front, behind)
    finally:
        gc.enable()


def conclude(front: Mode, behind: Mode) -> None:
    rate_b, rate_f = behind.closed.result.rate, front.closed.result.rate
    share = rate_b / rate_f if rate_f else float("nan")
    errors = behind.closed.result.stats.errors + behind.half.result.stats.errors
    print("\nsummary (the same run):")
    for mode in (front, behind):
        half = mode.half.result
        print(
            f"  {mode.name:<9} max {mode.closed.result.rate:>7,.0f} calls/s; at half: worst p99 "
            f"{mode.worst * 1e3:.2f} ms ({mode.worst_name}), server CPU "
            f"{half.cpu.server * 100:.0f}% = {half.cpu.server / half.rate * 1e6:,.0f} µs per call"
            + (
                f", simulator {mode.half.sim_cpu / half.rate * 1e6:,.0f} µs"
                if mode.half.sim_cpu
                else ""
            )
        )
    print(
        f"  targets: Behind >= {TARGET_CALLS:,} calls/s: {rate_b:,.0f} "
        f"({'met' if rate_b >= TARGET_CALLS and not errors else 'NOT met'}); "
        f"p99 < {TARGET_P99 * 1e3:.0f} ms at half: {behind.worst * 1e3:.2f} ms "
        f"({'met' if behind.worst < TARGET_P99 else 'NOT met'}); Behind / In-Front "
        f">= {TARGET_SHARE:.0%}: {share:.0%} ({'met' if share >= TARGET_SHARE else 'NOT met'})"
    )
    record("behind", "In-Front complete calls/s, closed loop (same run)", rate_f, "/s")
    record(
        "behind",
        "Behind complete calls/s, closed loop",
        rate_b,
        "/s",
        f">= {TARGET_CALLS:,}, 0 errors",
        rate_b >= TARGET_CALLS and not errors,
    )
    record(
        "behind",
        f"Behind worst request p99 at half the max ({behind.worst_name})",
        behind.worst * 1e3,
        "ms",
        f"< {TARGET_P99 * 1e3:.0f} ms",
        behind.worst < TARGET_P99,
    )
    record(
        "behind",
        "Behind / In-Front, closed loop",
        share * 100,
        "%",
        f">= {TARGET_SHARE:.0%}",
        share >= TARGET_SHARE,
    )


def run_options(doc: str | None) -> argparse.ArgumentParser:
    """The options of every run (``--seconds``, ``--quick``), for this benchmark and
    bench/transfer.py."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--seconds",
        "--duration",
        dest="seconds",
        type=float,
        default=None,
        help="seconds per measurement (default 10, --quick 2)",
    )
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    return ap


def main() -> None:
    global CALLS_PER_CONN, PORTS_PER_CONN, PORTS
    ap = run_options(__doc__)
    ap.add_argument(
        "--per-call",
        action="store_true",
        help="one POST /api/v1/calls per call even when the simulator takes batches",
    )
    ap.add_argument(
        "--per-conn",
        type=int,
        default=CALLS_PER_CONN,
        help=f"calls in progress per IVR session in the closed loop (default {CALLS_PER_CONN}; "
        f"{CONNECTIONS} sessions; at most 50: the In-Front configuration has 1000 ports)",
    )
    args, _ = ap.parse_known_args()  # bench/run.py passes every benchmark's options
    CALLS_PER_CONN = min(50, max(1, args.per_conn))
    PORTS_PER_CONN = 2 * CALLS_PER_CONN
    PORTS = CONNECTIONS * PORTS_PER_CONN
    run_suite(args.seconds or (2.0 if args.quick else 10.0), args.per_call, args.quick)


if __name__ == "__main__":
    main()
