#!/usr/bin/env python3
"""Network-mode calls and access-number round trips per second, against In-Front full calls in
the same run (issue 24).

One Network call is what a network IVR does for a call the built-in router routes (PROTOCOL.md
§6.3), on routing DNs 8000-8009 of a Network IVR:

    NewCall Network, CalledNum 800x  -> nothing to the IVR (EventQueued to the router side)
    RouteRequest                     -> RouteResponse Normal, Dest 7002 (built-in rules)
    Connected                        -> nothing (EventDiverted, EventRouteUsed)
    EndCall Normal                   -> nothing (EventReleased)

NewCall and RouteRequest go out together (a NewCall has no reply to wait for); the latency is
from them to the RouteResponse. The In-Front figures are bench/bench_fullcall.py's flow (NewCall
→ Ringing, Established; CallInfoReq; UDataSet; UDataGet; RouteRequest → RouteResponse; EndCall) on
``bench/fullcall.toml``, with the same topology and the same generator, in the same run. Target:
Network calls/s ≥ In-Front calls/s (a Network call does less work: no port, no Ringing and
Established, no user data).

An access-number round trip is an In-Front call that asks for an access number of the DNIS pool
of location ``Remote`` and gives it back (docs/access-numbers.md):

    NewCall                              -> CallStatus Ringing, Established
    AccessNumGet Location=Remote         -> AccessNumResp Get Success, AccessNum=<a pool number>
    AccessNumCancel                      -> AccessNumResp Cancel Success
    EndCall Normal

reported as round trips (AccessNumGet → AccessNumResp) per second with their p50/p99.

Each flow: a closed loop (every connection keeps its calls in progress, a finished call replaced at
once) gives the maximum rate; an open loop at half that maximum gives the latency per request.
The server is pinned to CPU 0, this generator to CPU 1 (bench/common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Final, cast

from bench_fullcall import (
    _REPLY,
    END_CALL,
    ESTABLISHED,
    LABELS,
    REQUESTS,
    RINGING,
    ROUTE_REQUEST,
    ROUTED,
    STEP_TIMEOUT,
    TARGET_DN,
    Call,
    Check,
    CpuMeter,
    Generator,
    Result,
    Stats,
    _body,
    drain,
    header,
    percentile,
    print_errors,
    request,
    summary,
    wait_idle,
    watchdog,
)
from bench_fullcall import (
    CONFIG as IN_FRONT_CONFIG,
)
from common import free_port, record, run_loop, start_server, stop_servers

CONNECTIONS: Final = 10
CALLS_PER_CONN: Final = 20
"""Every run's topology: 10 IVR sessions with 20 calls in progress each (closed loop), as
bench/behind.py's."""
SLOTS_PER_CONN: Final = 2 * CALLS_PER_CONN
"""In-Front: the ports each session owns (twice its calls: a port rests before it is reused).
Network: how many calls a session may have in progress (an open loop may need more than the
closed loop's)."""
ROUTING_DNS: Final = tuple(str(8000 + i) for i in range(10))
NETWORK_IVR: Final = "NETBENCH"
IVR: Final = "BENCH"
POOL_LOCATION: Final = "Remote"
POOL_SIZE: Final = 1000
"""DNIS pool numbers: more than the round trips in progress at once, so none is ever refused."""
FIRST_POOL_DN: Final = 9100000
STEP_KEYS: Final = ("NewCall", "RouteRequest", "AccessNumGet", "AccessNumCancel")
STEP_LABELS: Final = {
    **LABELS,
    "AccessNumGet": "AccessNumGet → AccessNumResp",
    "AccessNumCancel": "AccessNumCancel → AccessNumResp",
}
NETWORK_LABEL: Final = "NewCall+RouteRequest → RouteResponse"


# --------------------------------------------------------------------------------------------
# Configurations


def network_config() -> str:
    """ivr-server: one in-front switch with routing DNs 8000-8009 (the built-in rules send every
    call to 7002) served to the network IVR :data:`NETWORK_IVR`."""
    dns = "\n".join(f'    {{ number = "{dn}", type = "routing-point" }},' for dn in ROUTING_DNS)
    routing = "\n".join(
        f'[[routing]]\ndn = "{dn}"\n\n[[routing.rules]]\nname = "all"\ndn = "{TARGET_DN}"\n'
        for dn in ROUTING_DNS
    )
    return f"""\
[server]
log-level = "WARNING"

[[switches]]
name = "SW_Net"
type = "in-front"
dns = [
    {{ number = "{TARGET_DN}", type = "extension" }},
{dns}
]

[[tservers]]
name = "TServer_Net"
switch = "SW_Net"

[[ivrs]]
name = "{NETWORK_IVR}"
tservers = ["TServer_Net"]

{routing}"""


def access_config() -> str:
    """bench/fullcall.toml with a DNIS pool of :data:`POOL_SIZE` numbers for location
    :data:`POOL_LOCATION`."""
    text = IN_FRONT_CONFIG.read_text(encoding="utf-8")
    last = FIRST_POOL_DN + POOL_SIZE - 1
    return f"""{text}
[[locations]]
name = "{POOL_LOCATION}"
numbers = ["{FIRST_POOL_DN}-{last}"]
"""


# --------------------------------------------------------------------------------------------
# Documents


def network_new_call(dn: str, ani: str) -> bytes:
    return _body(
        '<NewCall CallControlMode="Network" Version="4.0">'
        f"<CalledNum>{dn}</CalledNum><DNIS>{dn}</DNIS><ANI>{ani}</ANI></NewCall>"
    )


def in_front_new_call(port: int, ani: str) -> bytes:
    return _body(
        '<NewCall CallControlMode="Network" Version="4.0">'
        f"<CalledNum>{port}</CalledNum><DNIS>8800</DNIS><ANI>{ani}</ANI></NewCall>"
    )


CONNECTED: Final = _body("<Connected></Connected>")
ACCESS_GET: Final = _body(
    f'<AccessNumGet DestDN="{TARGET_DN}" Location="{POOL_LOCATION}" XRouteType="DnisPool">'
    '<UDataEx><Node Name="k1" Type="Str" Val="bench"/></UDataEx></AccessNumGet>'
)
ACCESS_CANCEL: Final = _body("<AccessNumCancel></AccessNumCancel>")
GOT_NUMBER: Final[Check] = (b"AccessNumResp", (b"Action='Get'", b"Result='Success'", b"AccessNum="))
CANCELLED: Final[Check] = (b"AccessNumResp", (b"Action='Cancel'", b"Result='Success'"))


# --------------------------------------------------------------------------------------------
# Sessions


class FlowGenerator(Generator):
    """An IVR session running one fixed flow per call, logged in as ``ivr``: ``steps`` lists,
    per step, the reply awaited, the latency it ends (``None``: not measured) and the request
    sent on it (``b""``: none, the next reply follows by itself; ``None``: the call is over:
    ``final`` is sent, then EndCall). Every reply is checked."""

    steps: tuple[tuple[Check, str | None, bytes | None], ...] = ()
    final: bytes = b""
    """Sent before EndCall (Network: Connected)."""
    ivr: str = IVR
    flow_control: bool = True
    """The login's answer includes FlowControl (not in Network mode: MODES-AND-HA N-a)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        login = f'<LoginReq Version="4.0" ClientName="{self.ivr}"></LoginReq>'
        self.transport.write(request(self.session_id, _body(login)))

    def check_login(self) -> None:
        (element, resp), *_ = self.login_replies
        if element != b"LoginResp" or b"Result='Success'" not in resp:
            self.logged_in.set_exception(RuntimeError(f"login refused: {resp!r}"))
        else:
            self.logged_in.set_result(None)

    def first(self, call_id: bytes, slot: int, ani: str) -> list[bytes]:
        """The documents that start a call."""
        raise NotImplementedError

    def start_call(self, now: float) -> bool:
        if not self.free:
            return False
        slot = self.free.pop()
        self.seq += 1
        call_id = f"N{self.index}_{slot}_{self.seq}".encode()
        ani = f"9{self.index:03d}{self.seq:07d}"
        self.calls[call_id] = Call(call_id, slot, ROUTED, b"", ROUTED, 0, now)
        self.idle.clear()
        self.out.extend(request(call_id, body) for body in self.first(call_id, slot, ani))
        self.stats.started += 1
        return True

    def finish(self, call: Call, now: float, ok: bool) -> None:
        if ok and self.final:
            self.out.append(request(call.call_id, self.final))
        del self.calls[call.call_id]
        self.out.append(request(call.call_id, END_CALL))
        if ok:
            self.stats.completed += 1
        else:
            self.dead.add(call.call_id)
        self.free.insert(0, call.port)  # a freed slot goes to the back of the line
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
            if call_id == self.session_id:
                self.login_replies.append((element, payload))
                if len(self.login_replies) == 1 + self.flow_control:
                    self.check_login()
            elif call_id not in self.dead:
                self.stats.error("reply for no call", f"conn {self.index}: {payload[91:400]!r}")
            return
        (name, needles), measured, following = self.steps[call.step]
        if element != name or not all(n in payload for n in needles):
            self.stats.error(
                f"unexpected reply at step {call.step}",
                f"conn {self.index}: expected {name.decode()} {b' '.join(needles).decode()}, "
                f"got {payload[91:400]!r}",
            )
            self.finish(call, now, ok=False)
            return
        if measured is not None:
            self.stats.latencies[measured].append(now - call.sent)
        if following is None:
            self.finish(call, now, ok=True)
            return
        call.step += 1
        if following:
            call.sent = now
            self.out.append(request(call_id, following))

    def expire(self, now: float) -> None:
        for call in [c for c in self.calls.values() if now - c.sent > STEP_TIMEOUT]:
            self.stats.error(
                f"no reply at step {call.step} within {STEP_TIMEOUT:.0f} s",
                f"conn {self.index}: CallId {call.call_id.decode()}",
            )
            self.finish(call, now, ok=False)
        self.flush()


class NetworkGenerator(FlowGenerator):
    """Network calls on the routing DNs in turn, as the network IVR :data:`NETWORK_IVR`."""

    steps = ((ROUTED, "RouteRequest", None),)
    final = CONNECTED
    ivr = NETWORK_IVR
    flow_control = False

    def first(self, call_id: bytes, slot: int, ani: str) -> list[bytes]:
        dn = ROUTING_DNS[self.seq % len(ROUTING_DNS)]
        return [network_new_call(dn, ani), ROUTE_REQUEST]


class AccessGenerator(FlowGenerator):
    """In-Front calls that take an access number and give it back."""

    steps = (
        (RINGING, None, b""),
        (ESTABLISHED, "NewCall", ACCESS_GET),
        (GOT_NUMBER, "AccessNumGet", ACCESS_CANCEL),
        (CANCELLED, "AccessNumCancel", None),
    )

    def first(self, call_id: bytes, slot: int, ani: str) -> list[bytes]:
        return [in_front_new_call(slot, ani)]


# --------------------------------------------------------------------------------------------
# Runs


def new_stats() -> Stats:
    stats = Stats()
    stats.latencies = {key: [] for key in (*REQUESTS, *STEP_KEYS)}
    return stats


async def connect(port: int, kind: type[Generator], closed: bool, stats: Stats) -> list[Generator]:
    """:data:`CONNECTIONS` logged-in sessions of ``kind``, session i owning slots (In-Front:
    ports) i*SLOTS_PER_CONN+1 ..."""
    loop = asyncio.get_running_loop()
    gens: list[Generator] = []
    for i in range(CONNECTIONS):
        slots = list(range(i * SLOTS_PER_CONN + 1, (i + 1) * SLOTS_PER_CONN + 1))
        _, gen = await loop.create_connection(
            partial(kind, i, slots, stats, closed, True), "127.0.0.1", port
        )
        gens.append(gen)
    await asyncio.wait_for(asyncio.gather(*(g.logged_in for g in gens)), 10)
    return gens


async def closed_loop(port: int, pid: int, kind: type[Generator], seconds: float) -> Result:
    stats = new_stats()
    gens = await connect(port, kind, True, stats)
    dog = asyncio.create_task(watchdog(gens))
    now = time.perf_counter()
    for gen in gens:
        for _ in range(CALLS_PER_CONN):
            gen.start_call(now)
        gen.flush()
    await asyncio.sleep(min(1.0, seconds / 5))  # warm-up, not counted
    stats.completed = 0
    stats.latencies = new_stats().latencies
    meter, t0 = CpuMeter(pid), time.perf_counter()
    await asyncio.sleep(seconds)
    elapsed = time.perf_counter() - t0
    cpu = meter.stop()
    done, latencies = stats.completed, stats.latencies
    stats.latencies = new_stats().latencies
    left = await drain(gens)
    dog.cancel()
    stats.completed, stats.latencies = done, latencies
    return Result(f"{CONNECTIONS} conn × {CALLS_PER_CONN} calls", elapsed, stats, cpu, left)


async def open_loop(
    port: int, pid: int, kind: type[Generator], rate: float, seconds: float
) -> Result:
    """``rate`` calls per second round-robin over the sessions, whatever the replies; the first
    second is a warm-up, not measured."""
    stats = new_stats()
    gens = await connect(port, kind, False, stats)
    dog = asyncio.create_task(watchdog(gens))
    warm, total = int(rate), int(rate * (1 + seconds))
    t0 = time.perf_counter()
    n = 0
    measuring = False
    meter, t_measured = CpuMeter(pid), t0
    while n < total:
        now = time.perf_counter()
        due = min(total, int((now - t0) * rate) + 1)
        if not measuring and due > warm:
            if n < warm:
                due = warm
            else:
                measuring = True
                stats.latencies = new_stats().latencies
                stats.completed, stats.started = stats.completed - stats.started, 0
                meter, t_measured = CpuMeter(pid), now
        while n < due:
            gen = gens[n % CONNECTIONS]
            if not gen.start_call(now):
                stats.error("no free slot (open loop)", f"conn {gen.index}: call {n}")
            n += 1
        for gen in gens:
            gen.flush()
        await asyncio.sleep(max(0.001, t0 + n / rate - time.perf_counter()))
    await wait_idle(gens, 6.0)
    elapsed = time.perf_counter() - t_measured
    cpu = meter.stop()
    left = await drain(gens)
    dog.cancel()
    return Result(f"{rate:,.0f} calls/s, {CONNECTIONS} conn", elapsed, stats, cpu, left)


# --------------------------------------------------------------------------------------------
# Report


@dataclass
class Flow:
    """What one flow gave: the closed loop's rate, the open loop at half of it, worst p99."""

    name: str
    closed: Result
    half: Result
    worst: float
    worst_name: str


def labels_of(kind: type[Generator]) -> dict[str, str]:
    """The latency columns of a flow's sessions, in call order."""
    if issubclass(kind, NetworkGenerator):
        return {"RouteRequest": NETWORK_LABEL}
    if issubclass(kind, AccessGenerator):
        return {key: STEP_LABELS[key] for key in ("NewCall", "AccessNumGet", "AccessNumCancel")}
    return dict(LABELS)


def print_steps(result: Result, labels: dict[str, str]) -> None:
    print(f"    {'latency (ms)':<38}{'p50':>8}{'p99':>8}{'max':>8}{'count':>10}")
    for name, label in labels.items():
        values = sorted(result.stats.latencies[name])
        p50, p99 = percentile(values, 0.50) * 1e3, percentile(values, 0.99) * 1e3
        top = (values[-1] if values else float("nan")) * 1e3
        print(f"    {label:<38}{p50:>8.2f}{p99:>8.2f}{top:>8.2f}{len(values):>10,}")


def report(flow: str, what: str, r: Result, labels: dict[str, str]) -> None:
    header(f"{flow}: {what}")
    summary(r)
    print(f"    {r.stats.completed:,} completed in {r.seconds:.1f} s")
    print_steps(r, labels)
    print_errors(r)


Runner = Callable[[Coroutine[Any, Any, Result]], Result]


def measure(
    runner: Runner, flow: str, port: int, pid: int, kind: type[Generator], seconds: float
) -> Flow:
    labels = labels_of(kind)
    closed = runner(closed_loop(port, pid, kind, seconds))
    report(flow, "closed loop", closed, labels)
    half_rate = max(1, round(closed.rate / 2))
    half = runner(open_loop(port, pid, kind, half_rate, max(seconds, 2.0)))
    report(flow, f"open loop at half the max, {half_rate:,}/s", half, labels)
    worst_name, worst = max(
        ((n, percentile(sorted(half.stats.latencies[n]), 0.99)) for n in labels),
        key=lambda item: item[1],
    )
    return Flow(flow, closed, half, worst, worst_name)


def serve(
    runner: Runner, flow: str, config: Path, kind: type[Generator], seconds: float, log: Any
) -> Flow:
    """Start a server on ``config``, measure ``flow`` on it, stop it."""
    port = free_port()
    server = start_server(port, config, log, api=True)
    try:
        return measure(runner, flow, port, server.pid, kind, seconds)
    finally:
        stop_servers([server], log)


def run_suite(seconds: float, access: bool) -> None:
    runner: Runner = run_loop
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
            front = serve(runner, "In-Front", IN_FRONT_CONFIG, Generator, seconds, log)
            net_toml = Path(tmp) / "network.toml"
            net_toml.write_text(network_config(), encoding="utf-8")
            network = serve(runner, "Network", net_toml, NetworkGenerator, seconds, log)
            numbers: Flow | None = None
            if access:
                access_toml = Path(tmp) / "access.toml"
                access_toml.write_text(access_config(), encoding="utf-8")
                numbers = serve(
                    runner, "Access numbers", access_toml, AccessGenerator, seconds, log
                )
        conclude(front, network, numbers)
    finally:
        gc.enable()


def conclude(front: Flow, network: Flow, numbers: Flow | None) -> None:
    rate_n, rate_f = network.closed.rate, front.closed.rate
    errors = network.closed.stats.errors + network.half.stats.errors
    print("\nsummary (the same run):")
    for flow in (front, network, numbers):
        if flow is None:
            continue
        half = flow.half
        print(
            f"  {flow.name:<15} max {flow.closed.rate:>7,.0f}/s; at half: worst p99 "
            f"{flow.worst * 1e3:.2f} ms ({flow.worst_name}), server CPU "
            f"{half.cpu.server * 100:.0f}% = {half.cpu.server / half.rate * 1e6:,.0f} µs per call"
        )
    met = rate_n >= rate_f and not errors
    print(
        f"  target: Network calls/s >= In-Front calls/s: {rate_n:,.0f} vs {rate_f:,.0f} "
        f"({'met' if met else 'NOT met'})"
    )
    record("network", "In-Front complete calls/s, closed loop (same run)", rate_f, "/s")
    record(
        "network",
        "Network calls/s, closed loop",
        rate_n,
        "/s",
        ">= In-Front, 0 errors",
        met,
    )
    record(
        "network",
        f"Network worst p99 at half the max ({network.worst_name})",
        network.worst * 1e3,
        "ms",
    )
    if numbers is not None:
        p99 = percentile(sorted(numbers.half.stats.latencies["AccessNumGet"]), 0.99)
        record("network", "Access-number round trips/s, closed loop", numbers.closed.rate, "/s")
        record("network", "AccessNumGet p99 at half the max", p99 * 1e3, "ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--seconds",
        "--duration",
        dest="seconds",
        type=float,
        default=None,
        help="seconds per measurement (default 10, --quick 2)",
    )
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    ap.add_argument("--no-access", action="store_true", help="skip the access-number round trips")
    args, _ = ap.parse_known_args()  # bench/run.py passes every benchmark's options
    run_suite(args.seconds or (2.0 if args.quick else 10.0), not args.no_access)


if __name__ == "__main__":
    main()
