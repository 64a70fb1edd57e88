#!/usr/bin/env python3
"""Complete calls per second against a real server on loopback: the production call flow.

One call is what a real driver does for an inbound In-Front call routed by the built-in router:

    NewCall            -> CallStatus Ringing, CallStatus Established
    CallInfoReq        -> CallInfoResp
    UDataSet Replace   -> UDataResp Success            (3 nodes)
    UDataGet k1:k2     -> UDataResp Success + UDataEx
    RouteRequest 5000  -> RouteResponse Normal, Dest 7002
    EndCall Normal     (no reply)

Every connection logs in first as IVR ``BENCH`` (LoginReq 4.0 -> LoginResp + FlowControl). A port
carries one call at a time; each connection owns its own ports of the 1000 in
``bench/fullcall.toml`` (regenerate it with ``--write-config``).

Two loads: *closed loop* (a fixed number of calls in progress; a finished call is replaced at once
by the next one on the same port) measures the most calls per second; *open loop* starts calls on a
fixed schedule whatever the replies and measures per-request latency at that rate.

The same 200 calls in flight are spread two ways (:data:`TOPOLOGIES`): over 50 connections (many
small IVRs, 4 calls each) and over 2 (two large IVR platforms, 100 calls each); a third closed
loop has 1 connection × 8 calls. For each of the two topologies, an open loop runs at half its
own closed-loop maximum (the p99 target); when that misses the target, at 40%, 30% and 20% of it
until one meets it, to show where it holds. Another open loop runs at ``--rate`` over 50
connections. Then the same closed loops and open loops at half the maximum run against the bare
echo server (``bench/echo_server.py --calls``), and open loops at ivr-server's half rates: what the
machine allows the same call flow (``--no-echo`` skips it).

The server runs in its own process (pinned to CPU 0 when the machine has more than one core); the
load comes from this process (pinned to CPU 1). The generator stays cheap: request documents are
templates where only the CallId changes, replies are cut by the GLI header and checked with byte
searches (CallId, element, key attributes), never decoded as XML. Every reply is checked; anything
unexpected is an error, counted and printed. CPU use of the server, of the generator and of
everything else on the machine is reported, so that a saturated generator or a busy machine shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import re
import resource
import socket
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final, cast

from common import free_port, record, start_echo_server, start_server, stop_servers
from ivr_server.wire import FrameDecoder, GliType, encode_frame

HERE: Final = Path(__file__).resolve().parent
CONFIG: Final = HERE / "fullcall.toml"
IVR: Final = "BENCH"
PORTS: Final = 1000
FIRST_DN: Final = 100001
ROUTE_DN: Final = "5000"
TARGET_DN: Final = "7002"
TARGET_CALLS: Final = 4000
TARGET_P99_HALF: Final = 0.002
"""Issue 5: p99 under 2 ms for every request type at half the maximum call rate."""
TARGET_P99_FIXED: Final = 0.005
"""Issue 2: p99 under 5 ms per request at 1,000 calls/s."""
STEP_TIMEOUT: Final = 5.0
"""A reply not seen within this many seconds is an error (the call is ended and replaced)."""

# Request types, in call order: the latency columns of the report.
REQUESTS: Final = ("NewCall", "CallInfoReq", "UDataSet", "UDataGet", "RouteRequest")
LABELS: Final = {
    "NewCall": "NewCall → Established",
    "CallInfoReq": "CallInfoReq → CallInfoResp",
    "UDataSet": "UDataSet → UDataResp",
    "UDataGet": "UDataGet → UDataResp",
    "RouteRequest": "RouteRequest → RouteResponse",
}


# --------------------------------------------------------------------------------------------
# Configuration


def config_text() -> str:
    """``bench/fullcall.toml``: one in-front switch, IVR BENCH with 1000 ports, router 5000→7002."""
    dns = "\n".join(
        f'    {{ number = "{FIRST_DN + i}", type = "voice-treatment-port" }},' for i in range(PORTS)
    )
    ports = "\n".join(f'    {{ number = "{i + 1}", dn = "{FIRST_DN + i}" }},' for i in range(PORTS))
    return f"""\
# Configuration of bench/bench_fullcall.py. Generated: python3 bench/bench_fullcall.py --write-config
#
# One in-front switch; IVR "{IVR}" with {PORTS} ports "1".."{PORTS}" on DNs {FIRST_DN}..{FIRST_DN + PORTS - 1};
# routing point {ROUTE_DN} served by the built-in router, whose only rule sends every call to {TARGET_DN}.

[server]
listen = ["127.0.0.1:3021"]
log-level = "WARNING"

[[switches]]
name = "SW_Bench"
type = "in-front"
dns = [
    {{ number = "{ROUTE_DN}", type = "routing-point" }},
    {{ number = "{TARGET_DN}", type = "extension" }},
{dns}
]

[[tservers]]
name = "TServer_Bench"
switch = "SW_Bench"

[[ivrs]]
name = "{IVR}"
tservers = ["TServer_Bench"]
ports = [
{ports}
]

[[routing]]
dn = "{ROUTE_DN}"

[[routing.rules]]
name = "all"
dn = "{TARGET_DN}"
"""


# --------------------------------------------------------------------------------------------
# Request templates: only the CallId changes from call to call.

_PROLOG: Final = (
    b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE GctiMsg SYSTEM "IServer.dtd">\n'
    b"<GctiMsg><CallId>"
)


def _body(element: str) -> bytes:
    return b"</CallId>" + element.encode("latin-1") + b"</GctiMsg>\n"


def request(call_id: bytes, body: bytes) -> bytes:
    """One GLI Data frame: the fixed prolog, the CallId, the pre-encoded message element."""
    return encode_frame(GliType.DATA, _PROLOG + call_id + body)


def new_call_body(port: int, ani: str = "5551234") -> bytes:
    return _body(
        '<NewCall CallControlMode="Network" Version="4.0">'
        f"<CalledNum>{port}</CalledNum><DNIS>8800</DNIS><ANI>{ani}</ANI></NewCall>"
    )


CALL_INFO_REQ: Final = _body("<CallInfoReq></CallInfoReq>")


def udata_set_body(value: str = "bench") -> bytes:
    return _body(
        '<UDataSet Action="Replace"><RequestId>1</RequestId><UDataEx>'
        f'<Node Name="k1" Type="Str" Val="{value}"/><Node Name="k2" Type="Int" Val="42"/>'
        '<Node Name="k3" Type="Str" Val="three"/></UDataEx></UDataSet>'
    )


UDATA_GET: Final = _body('<UDataGet Keys="k1:k2"><RequestId>2</RequestId></UDataGet>')
ROUTE_REQUEST: Final = _body(f'<RouteRequest RouteDN="{ROUTE_DN}"></RouteRequest>')
END_CALL: Final = _body('<EndCall EndCause="Normal"></EndCall>')


def login_frame(call_id: bytes) -> bytes:
    return request(call_id, _body(f'<LoginReq Version="4.0" ClientName="{IVR}"></LoginReq>'))


# --------------------------------------------------------------------------------------------
# Reply checks: (element, byte strings the document must contain). The server writes single
# quotes and self-closes empty elements (PROTOCOL.md §2.2).

_REPLY: Final = re.compile(rb"<CallId>([^<]*)</CallId><([A-Za-z]+)")

Check = tuple[bytes, tuple[bytes, ...]]
RINGING: Final[Check] = (b"CallStatus", (b"Event='Ringing'",))
ESTABLISHED: Final[Check] = (b"CallStatus", (b"Event='Established'",))
UDATA_SET_OK: Final[Check] = (b"UDataResp", (b"Result='Success'", b"<RequestId>1</RequestId>"))


def udata_get_check(value: str) -> Check:
    return (
        b"UDataResp",
        (
            b"Result='Success'",
            b"<RequestId>2</RequestId>",
            f"<Node Name='k1' Type='Str' Val='{value}'/>".encode(),
            b"<Node Name='k2' Type='Int' Val='42'/>",
        ),
    )


ROUTED: Final[Check] = (
    b"RouteResponse",
    (b"RouteType='Normal'", f"<Dest>{TARGET_DN}</Dest>".encode()),
)


def call_info_check(port: int, ani: str) -> Check:
    return (b"CallInfoResp", (f"CalledNum='{port}'".encode(), f"ANI='{ani}'".encode()))


CALL_INFO_ANY: Final[Check] = (b"CallInfoResp", ())
UDATA_GET_ANY: Final[Check] = (b"UDataResp", (b"Result='Success'", b"<RequestId>2</RequestId>"))
"""Against the bare echo server (``--calls``), which keeps no call: the reply's element and fixed
fields only, not the call's own ANI, port and user data."""


# The steps of a call: the reply each step waits for (CallInfoResp, UDataResp to UDataGet: per
# call, see Call), the
# request whose latency the reply ends, and the request sent when the reply arrived. After the
# RouteResponse the call sends EndCall and is complete.
RING, ESTAB, INFO, USET, UGET, ROUTE = range(6)
_EXPECTED: Final[dict[int, Check]] = {
    RING: RINGING,
    ESTAB: ESTABLISHED,
    USET: UDATA_SET_OK,
    ROUTE: ROUTED,
}
_NEXT: Final[dict[int, bytes]] = {
    ESTAB: CALL_INFO_REQ,
    USET: UDATA_GET,
    UGET: ROUTE_REQUEST,
}
"""The next request after each step's reply (INFO: the call's own UDataSet)."""
_STARTED_BY: Final = {
    RING: "NewCall",
    ESTAB: "NewCall",
    INFO: "CallInfoReq",
    USET: "UDataSet",
    UGET: "UDataGet",
    ROUTE: "RouteRequest",
}


@dataclass(slots=True)
class Call:
    """One call. Its ANI and its first user-data value are its own, as a real caller's number and
    data would be: the server's decoder remembers documents that repeat with only the CallId
    changed, and the benchmark must not make every document such a repeat."""

    call_id: bytes
    port: int
    info_check: Check
    """CallInfoResp: the port's CalledNum and the call's ANI."""
    udata_set: bytes
    get_check: Check
    """UDataResp to UDataGet: the call's own value read back."""
    step: int = RING
    sent: float = 0.0
    """When the request the call now waits on was written (perf_counter)."""


@dataclass
class Stats:
    """Everything one run measures, over all connections."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in REQUESTS})
    completed: int = 0
    started: int = 0
    errors: int = 0
    kinds: dict[str, int] = field(default_factory=dict)
    """Errors by kind ("unexpected reply to UDataSet", "no reply to NewCall within 5 s"...)."""
    examples: dict[str, list[str]] = field(default_factory=dict)
    """The first few errors of each kind, in full."""
    start_lag: list[float] = field(default_factory=list)

    def error(self, kind: str, text: str) -> None:
        self.errors += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        examples = self.examples.setdefault(kind, [])
        if len(examples) < 3:
            examples.append(text)


class Generator(asyncio.Protocol):
    """One IVR session: logs in, then runs calls on its own ports, one at a time per port.

    ``closed`` true: a completed call is replaced at once on the same port (closed loop).
    ``exact`` false: the replies' per-call values are not checked (the bare echo server).
    """

    def __init__(
        self, index: int, ports: list[int], stats: Stats, closed: bool, exact: bool
    ) -> None:
        self.index = index
        self.stats = stats
        self.closed = closed
        self.exact = exact
        self.running = True
        self.free = list(reversed(ports))
        self.calls: dict[bytes, Call] = {}
        self.dead: set[bytes] = set()
        self.seq = 0
        self.decoder = FrameDecoder()
        self.session_id = f"S{index}".encode()
        self.transport: asyncio.Transport | None = None
        self.logged_in = asyncio.get_running_loop().create_future()
        self.login_replies: list[tuple[bytes, bytes]] = []
        self.out: list[bytes] = []
        self.lost = asyncio.get_running_loop().create_future()
        self.idle = asyncio.Event()
        self.idle.set()

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(login_frame(self.session_id))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.running:
            self.stats.error("connection lost", f"conn {self.index}: {exc}")
        if not self.logged_in.done():
            self.logged_in.set_exception(ConnectionError("connection lost during login"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.feed(data, time.perf_counter())

    def feed(self, data: bytes, now: float) -> None:
        """Handle bytes read at ``now`` (bench/latency_split.py reads its sockets itself)."""
        for gli_type, payload in self.decoder.feed(data):
            if gli_type == GliType.DATA:
                self.reply(payload, now)
            elif gli_type == GliType.KEEP_ALIVE_REQUEST:
                self.out.append(encode_frame(GliType.KEEP_ALIVE_RESPONSE))
            else:
                self.stats.error("GLI frame", f"conn {self.index}: type {gli_type} {payload!r}")
        self.flush()

    # -- calls

    def flush(self) -> None:
        if self.out and self.transport is not None:
            self.transport.write(b"".join(self.out))
            self.out.clear()

    def start_call(self, now: float) -> bool:
        """Start a call on a free port (False: every port of the connection is busy)."""
        if not self.free:
            return False
        port = self.free.pop()
        self.seq += 1
        call_id = f"B{self.index}_{port}_{self.seq}".encode()
        ani = f"9{self.index:03d}{self.seq:07d}"
        value = f"v{self.index}_{self.seq}"
        exact = self.exact
        self.calls[call_id] = Call(
            call_id,
            port,
            call_info_check(port, ani) if exact else CALL_INFO_ANY,
            udata_set_body(value),
            udata_get_check(value) if exact else UDATA_GET_ANY,
            RING,
            now,
        )
        self.idle.clear()
        self.out.append(request(call_id, new_call_body(port, ani)))
        self.stats.started += 1
        return True

    def finish(self, call: Call, now: float, ok: bool) -> None:
        """The call is over (EndCall sent): free its port, and in closed loop start the next."""
        del self.calls[call.call_id]
        self.out.append(request(call.call_id, END_CALL))
        if ok:
            self.stats.completed += 1
        else:
            self.dead.add(call.call_id)
        self.free.append(call.port)
        if self.closed and self.running:
            self.start_call(now)
        elif not self.calls:
            self.idle.set()

    def reply(self, payload: bytes, now: float) -> None:
        match = _REPLY.search(payload)
        if match is None:
            self.stats.error("unparsable reply", f"conn {self.index}: {payload[:300]!r}")
            return
        call_id, element = match.groups()
        call = self.calls.get(call_id)
        if call is None:
            if not self.logged_in.done() and call_id == self.session_id:
                self.login_replies.append((element, payload))
                if len(self.login_replies) == 2:
                    self.check_login()
            elif call_id not in self.dead:
                self.stats.error("reply for no call", f"conn {self.index}: {payload[91:400]!r}")
            return
        step = call.step
        name, needles = (
            call.info_check if step == INFO else call.get_check if step == UGET else _EXPECTED[step]
        )
        if element != name or not all(n in payload for n in needles):
            self.stats.error(
                f"unexpected reply to {_STARTED_BY[step]}",
                f"conn {self.index}: expected {name.decode()} {b' '.join(needles).decode()}, "
                f"got {payload[91:400]!r}",
            )
            self.finish(call, now, ok=False)
            return
        if step == RING:
            call.step = ESTAB
            return
        self.stats.latencies[_STARTED_BY[step]].append(now - call.sent)
        if step == ROUTE:
            self.finish(call, now, ok=True)
            return
        call.step = step + 1
        call.sent = now
        self.out.append(request(call_id, call.udata_set if step == INFO else _NEXT[step]))

    def check_login(self) -> None:
        (first, resp), (second, flow) = self.login_replies
        if (first, second) != (b"LoginResp", b"FlowControl") or not (
            b"Result='Success'" in resp and b"Status='Off'" in flow
        ):
            self.logged_in.set_exception(RuntimeError(f"login refused: {resp!r} {flow!r}"))
        else:
            self.logged_in.set_result(None)

    def expire(self, now: float) -> None:
        """Calls whose reply is more than STEP_TIMEOUT late are errors; end them."""
        for call in [c for c in self.calls.values() if now - c.sent > STEP_TIMEOUT]:
            self.stats.error(
                f"no reply to {_STARTED_BY[call.step]} within {STEP_TIMEOUT:.0f} s",
                f"conn {self.index}: CallId {call.call_id.decode()}",
            )
            self.finish(call, now, ok=False)
        self.flush()


# --------------------------------------------------------------------------------------------
# Runs


@dataclass
class Result:
    label: str
    seconds: float
    stats: Stats
    cpu: Cpu
    in_flight: int

    @property
    def rate(self) -> float:
        return self.stats.completed / self.seconds


def process_cpu(pid: int) -> float:
    """CPU seconds used by process ``pid`` so far (Linux /proc; nan elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_cpu() -> float:
    """CPU seconds all cores spent busy so far (Linux /proc/stat; nan elsewhere)."""
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = ticks[3] + ticks[4]  # idle, iowait
    return (sum(ticks[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Cpu:
    """CPU use during a measurement, in cores (1.0 = one core busy all the time)."""

    generator: float
    server: float
    others: float
    """Everything else on the machine: other processes, the kernel's network work for both."""


class CpuMeter:
    """CPU seconds of the generator, the server and the whole machine from creation to stop()."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.start = self.sample()

    def sample(self) -> tuple[float, float, float, float]:
        return time.perf_counter(), own_cpu(), process_cpu(self.pid), machine_cpu()

    def stop(self) -> Cpu:
        t1, gen1, srv1, all1 = self.sample()
        t0, gen0, srv0, all0 = self.start
        wall = t1 - t0
        gen, srv = (gen1 - gen0) / wall, (srv1 - srv0) / wall
        return Cpu(gen, srv, max(0.0, (all1 - all0) / wall - gen - srv))


async def connect(
    port: int, count: int, per_conn: int, closed: bool, stats: Stats, exact: bool
) -> list[Generator]:
    """``count`` logged-in sessions, session i owning ports i*per_conn+1 .. (i+1)*per_conn."""
    loop = asyncio.get_running_loop()
    gens: list[Generator] = []
    for i in range(count):
        ports = list(range(i * per_conn + 1, (i + 1) * per_conn + 1))
        _, gen = await loop.create_connection(
            partial(Generator, i, ports, stats, closed, exact), "127.0.0.1", port
        )
        gens.append(gen)
    await asyncio.wait_for(asyncio.gather(*(g.logged_in for g in gens)), 10)
    return gens


Connector = Callable[[int, int, int, bool, Stats, bool], Coroutine[Any, Any, list[Generator]]]
"""How a run opens its logged-in sessions: :func:`connect`'s signature."""


async def watchdog(gens: list[Generator]) -> None:
    while True:
        await asyncio.sleep(0.5)
        now = time.perf_counter()
        for gen in gens:
            gen.expire(now)


async def wait_idle(gens: list[Generator], timeout: float) -> None:
    """Until no connection has a call in progress, or ``timeout`` seconds."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(g.idle.wait() for g in gens)), timeout)


async def drain(gens: list[Generator]) -> int:
    """Stop starting calls; let calls in progress end (up to 2 s); close. Returns calls left."""
    for gen in gens:
        gen.running = False
    await wait_idle(gens, 2.0)
    left = sum(len(g.calls) for g in gens)
    for gen in gens:
        if gen.transport is not None:
            gen.transport.close()
    await asyncio.gather(*(g.lost for g in gens))
    return left


async def closed_loop(
    port: int,
    server_pid: int,
    connections: int,
    calls_per_conn: int,
    seconds: float,
    exact: bool = True,
) -> Result:
    """Each connection keeps ``calls_per_conn`` calls in progress for ``seconds``."""
    stats = Stats()
    per_conn = PORTS // connections
    if calls_per_conn > per_conn:
        raise ValueError(f"{calls_per_conn} calls per connection, but only {per_conn} ports")
    gens = await connect(port, connections, per_conn, True, stats, exact)
    dog = asyncio.create_task(watchdog(gens))
    # Warm-up, not counted: the first calls of a fresh server pay for imports and caches.
    now = time.perf_counter()
    for gen in gens:
        for _ in range(calls_per_conn):
            gen.start_call(now)
        gen.flush()
    await asyncio.sleep(min(1.0, seconds / 5))
    stats.completed = 0
    stats.latencies = {r: [] for r in REQUESTS}
    meter, t0 = CpuMeter(server_pid), time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    done, latencies = stats.completed, stats.latencies
    stats.latencies = {r: [] for r in REQUESTS}  # the calls ended by drain() are not counted
    left = await drain(gens)
    dog.cancel()
    stats.completed, stats.latencies = done, latencies
    label = f"{connections} conn × {calls_per_conn} calls"
    return Result(label, elapsed, stats, cpu, left)


async def open_loop(
    port: int,
    server_pid: int,
    connections: int,
    rate: float,
    seconds: float,
    warmup: float = 1.0,
    exact: bool = True,
    connector: Connector = connect,
) -> Result:
    """Start ``rate`` calls per second round-robin over ``connections``, whatever the replies.

    The first ``warmup`` seconds run the same schedule but are not measured (like the closed
    loop's warm-up: a fresh connection's first calls pay for the server's first allocations).
    ``connector``: how the sessions are opened (bench/latency_split.py opens its own)."""
    stats = Stats()
    gens = await connector(port, connections, PORTS // connections, False, stats, exact)
    dog = asyncio.create_task(watchdog(gens))
    t0 = time.perf_counter()
    meter = CpuMeter(server_pid)
    n = 0
    warm = int(rate * warmup)
    total = warm + int(rate * seconds)
    measuring, t_measured = warm == 0, t0
    while n < total:
        now = time.perf_counter()
        due = min(total, int((now - t0) * rate) + 1)
        if not measuring and due > warm:  # the measurement starts with call number ``warm``
            if n < warm:
                due = warm
            else:
                measuring = True
                stats.latencies = {r: [] for r in REQUESTS}
                stats.start_lag.clear()
                # the warm-up calls still in progress will complete: they are not counted
                stats.completed, stats.started = stats.completed - stats.started, 0
                meter, t_measured = CpuMeter(server_pid), now
        first = n
        while n < due:
            gen = gens[n % connections]
            stats.start_lag.append(now - (t0 + n / rate))
            if not gen.start_call(now):
                stats.error("no free port (open loop)", f"conn {gen.index}: call {n}")
            n += 1
        for i in range(first, min(n, first + connections)):
            gens[i % connections].flush()
        # uvloop's timers count whole milliseconds: a shorter sleep would return at once and
        # spin the generator's core, so calls due within the same millisecond start together.
        await asyncio.sleep(max(0.001, t0 + n / rate - time.perf_counter()))
    # Calls started in the last moments still run: wait for them (bounded) before measuring.
    await wait_idle(gens, STEP_TIMEOUT + 1)
    elapsed = time.perf_counter() - t_measured
    cpu = meter.stop()
    left = await drain(gens)
    dog.cancel()
    label = f"{rate:,.0f} calls/s, {connections} conn"
    return Result(label, elapsed, stats, cpu, left)


# --------------------------------------------------------------------------------------------
# Server process


# --------------------------------------------------------------------------------------------
# Report


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def pct(value: float) -> str:
    return "n/a" if value != value else f"{value * 100:.0f}%"


def print_latencies(result: Result) -> None:
    print(f"    {'latency (ms)':<32}{'p50':>8}{'p99':>8}{'max':>8}{'count':>10}")
    for name in REQUESTS:
        values = sorted(result.stats.latencies[name])
        p50, p99 = percentile(values, 0.50) * 1e3, percentile(values, 0.99) * 1e3
        top = (values[-1] if values else float("nan")) * 1e3
        print(f"    {LABELS[name]:<32}{p50:>8.2f}{p99:>8.2f}{top:>8.2f}{len(values):>10,}")


def print_errors(result: Result) -> None:
    stats = result.stats
    if stats.errors or result.in_flight:
        print(f"    errors: {stats.errors}; calls unfinished at the end: {result.in_flight}")
        for kind, count in stats.kinds.items():
            print(f"      {count:>7,} × {kind}, e.g.")
            for text in stats.examples[kind]:
                print(f"                {text}")


def header(title: str) -> None:
    print(f"{title:<34}{'calls/s':>10}{'errors':>8}{'srv CPU':>9}{'gen CPU':>9}{'other CPU':>11}")


def summary(r: Result) -> None:
    print(
        f"  {r.label:<32}{r.rate:>10,.0f}{r.stats.errors:>8}{pct(r.cpu.server):>9}"
        f"{pct(r.cpu.generator):>9}{pct(r.cpu.others):>11}"
    )


Runner = Callable[[Coroutine[Any, Any, Result]], Result]


TOPOLOGIES: Final = ((50, 4), (2, 100))
"""(connections, calls in progress on each) of the closed loops whose maximum sets an open loop's
rate for the p99 target (at half of it, over as many connections): the same 200 calls in flight
as many small IVRs or as two large platforms. The cost of a call depends on how many requests
arrive per wake-up of the server, hence on the topology as much as on the rate (docs/performance.md
§6)."""
CLOSED: Final = ((1, 8), *TOPOLOGIES)
"""Every closed loop run: the best of them is the maximum call rate."""


@dataclass
class Measured:
    """What one server gave: its best closed-loop rate, each closed loop's rate by its number of
    connections, and its open loops (what → result, worst p99 over the request types)."""

    best: float
    errors: int
    maxima: dict[int, float]
    opens: dict[str, tuple[Result, float]]


LADDER: Final = (0.4, 0.3, 0.2)
"""Shares of the closed-loop maximum tried, in order, when the open loop at half of it misses
the p99 target: the first that meets it is reported."""
LADDER_TEXT: Final = "/".join(f"{share:.0%}" for share in LADDER)


def open_run(
    runner: Runner,
    port: int,
    pid: int,
    rate: int,
    connections: int,
    seconds: float,
    exact: bool,
    prefix: str,
    what: str,
    target: float,
    verdict: bool,
) -> tuple[Result, float, bool]:
    """One open loop at ``rate`` over ``connections``; prints it and records its worst p99 (with
    a verdict against ``target`` when ``verdict``). Returns the result, the worst p99 and whether
    it met the target with no error."""
    header(f"{prefix}full calls (open loop, {what})")
    r = runner(open_loop(port, pid, connections, rate, max(seconds, 2.0), exact=exact))
    summary(r)
    lag = sorted(r.stats.start_lag)
    print(
        f"    {r.stats.completed:,} of {r.stats.started:,} calls completed in "
        f"{r.seconds:.1f} s; call start lag behind schedule p99 "
        f"{percentile(lag, 0.99) * 1e3:.2f} ms"
    )
    print_latencies(r)
    print_errors(r)
    worst_name, worst = max(
        ((n, percentile(sorted(v), 0.99)) for n, v in r.stats.latencies.items()),
        key=lambda item: item[1],
    )
    ok = worst < target and not r.stats.errors and not r.in_flight
    saturated = r.cpu.generator > 0.9
    if saturated:
        print(
            f"  warning: the generator used {pct(r.cpu.generator)} of its core: "
            "these latencies include its own queueing (an upper bound for the server)"
        )
    print(
        f"  {'target' if verdict else 'for comparison'}: p99 < {target * 1e3:.0f} ms per "
        f"request at {rate:,} calls/s: worst {worst * 1e3:.2f} ms ({worst_name}) "
        f"({'met' if ok else 'NOT met'})"
    )
    record(
        "fullcall",
        f"{prefix}worst request p99 at {rate:,} calls/s ({what}; {worst_name}, "
        f"{pct(r.cpu.server)} server CPU)" + (", generator saturated" if saturated else ""),
        worst * 1e3,
        "ms",
        f"< {target * 1e3:.0f} ms" if verdict else "",
        ok if verdict else None,
    )
    return r, worst, ok


OpenSpec = tuple[float, float, str, int]
"""An open loop to run: (calls/s, p99 target, what it is, connections)."""


def measure(
    runner: Runner,
    who: str,
    port: int,
    pid: int,
    seconds: float,
    more: list[OpenSpec],
    exact: bool,
    ladder: bool = False,
) -> Measured:
    """The closed loops (:data:`CLOSED`), for each of :data:`TOPOLOGIES` the open loop at half its
    closed-loop maximum, and the open loops ``more``, against the server ``who`` listening on
    ``port``; prints and records. ``ladder``: when half a maximum misses the p99 target, lower
    shares of it (:data:`LADDER`) until one meets it."""
    echo = not exact  # only the bare echo server is measured without exact checks
    prefix = f"{who}: " if echo else ""
    header(f"{prefix}full calls (closed loop)")
    measured = Measured(0.0, 0, {}, {})
    for connections, per_conn in CLOSED:
        r = runner(closed_loop(port, pid, connections, per_conn, seconds, exact))
        measured.maxima[connections] = r.rate
        if r.rate > measured.best:
            measured.best, measured.errors = r.rate, r.stats.errors + r.in_flight
        record("fullcall", f"{prefix}complete calls/s, closed loop {r.label}", r.rate, "/s")
        summary(r)
        print_latencies(r)
        print_errors(r)
    best = measured.best
    if echo:
        record("fullcall", "echo server: complete calls/s, best closed loop", best, "/s")
    else:
        record(
            "fullcall",
            "complete calls/s, best closed loop",
            best,
            "/s",
            f">= {TARGET_CALLS:,}, 0 errors",
            best >= TARGET_CALLS and not measured.errors,
        )
    halves: list[OpenSpec] = [
        (measured.maxima[c] / 2, TARGET_P99_HALF, half_rate(c), c) for c, _ in TOPOLOGIES
    ]
    for spec in halves + more:
        exact_rate, target, what, connections = spec
        is_half = spec in halves
        r, worst, ok = open_run(
            runner,
            port,
            pid,
            round(exact_rate),
            connections,
            seconds,
            exact,
            prefix,
            what,
            target,
            not echo and is_half,
        )
        measured.opens[what] = (r, worst)
        if ladder and is_half and not ok:
            # Where the target does hold: lower shares of that maximum until one meets it.
            top = exact_rate * 2
            held = 0.0
            for share in LADDER:
                _, _, met = open_run(
                    runner,
                    port,
                    pid,
                    round(top * share),
                    connections,
                    seconds,
                    exact,
                    prefix,
                    f"{share:.0%} of the max rate, {connections} conn",
                    target,
                    False,
                )
                if met:
                    held = share
                    break
            print(
                f"  p99 < {target * 1e3:.0f} ms over {connections} connections holds at "
                + (f"{held:.0%} of their max rate" if held else f"none of {LADDER_TEXT}")
            )
            record(
                "fullcall",
                f"highest share of the max rate, {connections} conn, with p99 < "
                f"{target * 1e3:.0f} ms, of 50% then {LADDER_TEXT}",
                held * 100,
                "%",
            )
    return measured


def half_rate(connections: int) -> str:
    """What the open loop at half the maximum over ``connections`` is called."""
    return f"half the max rate, {connections} conn"


def run_suite(seconds: float, open_rate: float, config: Path, quick: bool, echo: bool) -> None:
    runner: Runner = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    if config == CONFIG and config.read_text(encoding="utf-8") != config_text():
        print(f"warning: {config.name} differs from what --write-config would write")
    # The generator's own garbage collections would count as server time in the latencies;
    # it makes no reference cycles worth collecting during a run, so the collector stays off.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        port = free_port()
        with tempfile.TemporaryFile() as server_log:
            server = start_server(port, config, server_log, api=True)
            try:
                ivr = measure(
                    runner,
                    "ivr-server",
                    port,
                    server.pid,
                    seconds,
                    [] if quick else [(open_rate, TARGET_P99_FIXED, "fixed rate", 50)],
                    exact=True,
                    ladder=not quick,
                )
            finally:
                stop_servers([server], server_log)
        print(
            f"target: >= {TARGET_CALLS:,} calls/s with 0 errors: {ivr.best:,.0f} "
            f"({'met' if ivr.best >= TARGET_CALLS and not ivr.errors else 'NOT met'}; "
            f"issue 5 asks for 60 s sustained, this ran {seconds:.0f} s)"
        )
        if not echo:
            return
        port = free_port()
        with tempfile.TemporaryFile() as echo_log:
            bare = start_echo_server(port, echo_log, calls=True)
            try:
                same: list[OpenSpec] = [
                    (ivr.maxima[c] / 2, TARGET_P99_HALF, f"ivr-server's {half_rate(c)}", c)
                    for c, _ in TOPOLOGIES
                ]
                base = measure(runner, "echo server", port, bare.pid, seconds, same, exact=False)
            finally:
                stop_servers([bare], echo_log)
        ratio = ivr.best / base.best if base.best else float("nan")
        record("fullcall", "ivr-server / echo server, best closed loop", ratio * 100, "%")
        print(
            f"ivr-server / echo server, best closed loop: {ivr.best:,.0f} / {base.best:,.0f} = "
            f"{ratio:.0%}"
        )
        print("open loops, server CPU and worst p99:")
        for connections, _ in TOPOLOGIES:
            half = half_rate(connections)
            for who, what, measured in (
                ("ivr-server", half, ivr),
                ("echo server", half, base),
                ("echo server", f"ivr-server's {half}", base),
            ):
                r, worst = measured.opens[what]
                print(
                    f"  {who:<12} {r.rate:>8,.0f} calls/s ({what}): {pct(r.cpu.server)} CPU, "
                    f"{r.cpu.server / r.rate * 1e6:,.0f} µs per call, p99 {worst * 1e3:.2f} ms"
                )
    finally:
        gc.enable()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--duration",
        "--seconds",
        dest="duration",
        type=float,
        default=None,
        help="seconds per measurement (default 10, --quick 1.5; the open loops run at least 2 s); "
        "--seconds is the same, the option bench/run.py passes to every benchmark",
    )
    ap.add_argument(
        "--config", type=Path, default=CONFIG, help=f"server configuration (default {CONFIG.name})"
    )
    ap.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="calls per second of the fixed-rate open loop (default 1000); another open loop "
        "runs at half the best closed-loop rate",
    )
    ap.add_argument("--write-config", action="store_true", help=f"write {CONFIG.name} and exit")
    ap.add_argument(
        "--quick", action="store_true", help="short runs, no fixed-rate open loop (a smoke test)"
    )
    ap.add_argument(
        "--no-echo",
        action="store_true",
        help="skip the same loads against the bare echo server (bench/echo_server.py --calls)",
    )
    args, _ = ap.parse_known_args()  # bench/run.py passes every benchmark's options
    if args.write_config:
        CONFIG.write_text(config_text(), encoding="utf-8")
        print(f"wrote {CONFIG}")
        return
    duration = args.duration or (1.5 if args.quick else 10.0)
    run_suite(duration, args.rate, args.config, args.quick, not args.no_echo)


if __name__ == "__main__":
    main()
