#!/usr/bin/env python3
"""Transfers per second in Behind mode: calls ending in a transfer to an agent through the CSTA
PBX simulator, beside the same run's plain Behind calls (issue 23, "Speed").

Each call is bench/behind.py's production flow (NewCall, the simulator's delivery, CallInfoReq,
UDataSet, UDataGet, RouteRequest), then, instead of hanging up:

    OneStepXfer DestDN=<agent>   -> CallStatus XferComplete       (most calls: the real site's
                                    driver, CSTA SingleStepTransferCall)
    InitXfer DestDN=<agent>      -> CallStatus Held, Dialing, Established (the agent's extension
                                    answers at once); CompleteXfer -> CallStatus XferComplete
                                    (one call in ``--consult-every``: ConsultationCall, then
                                    TransferCall)
    EndCall Normal               -> no reply (the port has left the call)

and the generator hangs the transferred call up at the simulator (``POST
/api/v1/calls/{id}/hangup``, the agent's caller leaving) so that the agent's extension is free
for a later round: each port transfers to extensions of its own, in turn.

A transfer's latency is from the request to ``XferComplete`` (OneStepXfer; CompleteXfer for a
consultation) and from InitXfer to ``Dialing`` (what the I-Library completes on); the closed
loop's rate of transferred calls is the transfers per second. Targets: >= 500 transfers/s, p99
< 5 ms at half the maximum. The plain Behind calls are measured first by bench/behind.py's own
code on the same machine in the same run; processes are placed as there (server on CPU 0,
simulator beside this generator on CPU 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final

import behind
from bench_fullcall import _REPLY, ROUTE, STEP_TIMEOUT, Call, _body, header, percentile, request
from common import free_port, record, start_server, stop_servers

AGENT_BASE: Final = 200001
AGENTS_PER_PORT: Final = 8
"""Each port N transfers to the extensions AGENT_BASE + (N - 1) * AGENTS_PER_PORT ... in turn, so a
port's next transfer never finds its last one's extension still held (the generator's hang-up of
the transferred call goes through the simulator's HTTP API and may come later)."""
TARGET_TRANSFERS: Final = 500
TARGET_P99: Final = 0.005
TRANSFERS: Final = ("OneStepXfer", "InitXfer", "CompleteXfer")
LABELS: Final = {
    "OneStepXfer": "OneStepXfer → XferComplete",
    "InitXfer": "InitXfer → Dialing",
    "CompleteXfer": "CompleteXfer → XferComplete",
}
CONSULT_EVERY = 10
"""One call in this many transfers by consultation (``--consult-every``)."""

XFER, HELD, DIALING, ESTABLISHED, COMPLETE = range(100, 105)
"""The steps after RouteResponse (bench_fullcall's steps end at ROUTE)."""
_WAIT: Final = {
    XFER: b"Event='XferComplete'",
    HELD: b"Event='Held'",
    DIALING: b"Event='Dialing'",
    ESTABLISHED: b"Event='Established'",
    COMPLETE: b"Event='XferComplete'",
}
_MEASURED: Final = {XFER: "OneStepXfer", DIALING: "InitXfer", COMPLETE: "CompleteXfer"}
COMPLETE_XFER: Final = _body("<CompleteXfer></CompleteXfer>")


def agent(port: int, turn: int = 0) -> str:
    return str(AGENT_BASE + (port - 1) * AGENTS_PER_PORT + turn % AGENTS_PER_PORT)


def sim_config() -> str:
    """bench/behind.py's simulator, plus AGENTS_PER_PORT extensions per port, answering at
    once."""
    agents = "".join(
        f'\n[[dns]]\nnumber = "{agent(port, turn)}"\ntype = "extension"\nanswer-delay = 0\n'
        for port in range(1, behind.PORTS + 1)
        for turn in range(AGENTS_PER_PORT)
    )
    return behind.sim_config() + agents


SIM_IDS: dict[str, str] = {}
"""The simulator's call id of each delivered call, by its ANI (one Deliverer serves every
session)."""


def delivered(call: dict[str, Any]) -> None:
    SIM_IDS[str(call["from"])] = str(call["id"])


API_PORT = 0
"""The simulator's HTTP API port (set by :func:`run_suite`)."""


def hang_up_everyone() -> None:
    """Every live call of the simulator hung up (blocking, between runs: a run that ended with
    transfers in flight leaves calls at agents, whose DNs would be busy for the next run)."""
    api = f"http://127.0.0.1:{API_PORT}/api/v1/calls"
    with urllib.request.urlopen(api, timeout=10) as answer:
        calls = json.loads(answer.read())["calls"]
    for call in calls:
        if call["state"] in ("alerting", "connected"):
            hangup = urllib.request.Request(f"{api}/{call['id']}/hangup", data=b"{}", method="POST")
            with contextlib.suppress(urllib.error.HTTPError), urllib.request.urlopen(hangup):
                pass
    SIM_IDS.clear()


class Hangups(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to the simulator's API for the hang-ups of transferred
    calls, pipelined; answers checked (200)."""

    def __init__(self, stats: Any) -> None:
        self.stats = stats
        self.transport: asyncio.Transport | None = None
        self.host = ""
        self.queue: list[str] = []
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        host, port = transport.get_extra_info("peername")[:2]
        self.host = f"{host}:{port}"
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.flush()

    def hangup(self, call_id: str) -> None:
        self.queue.append(call_id)
        if self.transport is not None and len(self.queue) == 1:
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        queue, self.queue = self.queue, []
        if self.transport is not None and queue:
            self.transport.write(
                b"".join(
                    f"POST /api/v1/calls/{call_id}/hangup HTTP/1.1\r\nHost: {self.host}\r\n"
                    "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".encode()
                    for call_id in queue
                )
            )

    def data_received(self, data: bytes) -> None:
        answers, self.buffer = behind.http_responses(self.buffer + data)
        for status, body in answers:
            if status != "200":
                self.stats.error(f"hang-up refused ({status})", body[:200].decode(errors="replace"))


class TransferGenerator(behind.BehindGenerator):
    """bench/behind.py's Behind session, each call ending in a transfer."""

    consult_every = CONSULT_EVERY

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        if self.index == 0:  # a new run: no call left at an agent by the previous one
            hang_up_everyone()
        self.ani: dict[bytes, str] = {}
        self.hangups: Hangups | None = None
        self.opening: asyncio.Task[Any] | None = None
        self.transfers = 0
        self.turns: dict[int, int] = {}
        """Port → how many transfers it made (its next extension)."""

    def start_call(self, now: float) -> bool:
        deliverer = self.deliverer
        if deliverer is not None and self.hangups is None:
            hangups = self.hangups = Hangups(self.stats)
            deliverer.on_delivered = delivered
            host, port = deliverer.host.split(":")
            loop = asyncio.get_running_loop()
            self.opening = loop.create_task(
                loop.create_connection(lambda: hangups, host, int(port))
            )
        started = super().start_call(now)
        if started:  # the call just added, and bench/behind.py's ANI for it
            self.ani[next(reversed(self.calls))] = f"9{self.index:03d}{self.seq:07d}"
        return started

    def finish(self, call: Call, now: float, ok: bool) -> None:
        if ok and call.step == ROUTE:  # routed: now the transfer, not yet EndCall
            consult = self.seq % self.consult_every == 0
            verb = "InitXfer" if consult else "OneStepXfer"
            turn = self.turns[call.port] = self.turns.get(call.port, -1) + 1
            body = _body(f'<{verb} DestDN="{agent(call.port, turn)}"></{verb}>')
            call.step, call.sent = (HELD if consult else XFER), now
            self.out.append(request(call.call_id, body))
            return
        ani = self.ani.pop(call.call_id, "")
        sim_id = SIM_IDS.pop(ani, None)
        if ok:
            self.transfers += 1
            if sim_id is not None and self.hangups is not None:
                self.hangups.hangup(sim_id)  # the agent's caller leaves: the extension is free
            else:
                self.stats.error("no simulator id for a transferred call", ani)
        super().finish(call, now, ok)

    def expire(self, now: float) -> None:
        """bench_fullcall's, for the transfer steps too."""
        late = [c for c in self.calls.values() if c.step >= XFER and now - c.sent > STEP_TIMEOUT]
        for call in late:
            self.stats.error(
                f"no reply in transfer step {call.step - XFER} within {STEP_TIMEOUT:.0f} s",
                f"conn {self.index}: CallId {call.call_id.decode()}",
            )
            self.finish(call, now, ok=False)
        super().expire(now)

    def reply(self, payload: bytes, now: float) -> None:
        match = _REPLY.search(payload)
        call = None if match is None else self.calls.get(match.group(1))
        if call is None or call.step < XFER:
            super().reply(payload, now)
            return
        step = call.step
        if match is None or match.group(2) != b"CallStatus" or _WAIT[step] not in payload:
            self.stats.error(
                f"unexpected reply in transfer step {step - XFER}", f"{payload[91:400]!r}"
            )
            self.finish(call, now, ok=False)
            return
        if step in _MEASURED:
            self.stats.latencies.setdefault(_MEASURED[step], []).append(now - call.sent)
        if step in (XFER, COMPLETE):
            self.finish(call, now, ok=True)
        elif step == ESTABLISHED:
            call.step, call.sent = COMPLETE, now
            self.out.append(request(call.call_id, COMPLETE_XFER))
        else:
            call.step = step + 1


def print_transfers(mode: behind.Mode) -> float:
    """The transfer latencies of the open loop at half; returns their worst p99."""
    print(f"    {'transfer latency (ms)':<32}{'p50':>8}{'p99':>8}{'max':>8}{'count':>10}")
    worst = 0.0
    for name in TRANSFERS:
        values = sorted(mode.half.result.stats.latencies.get(name, []))
        p50, p99 = percentile(values, 0.50), percentile(values, 0.99)
        top = values[-1] if values else float("nan")
        worst = max(worst, p99) if values else worst
        print(
            f"    {LABELS[name]:<32}{p50 * 1e3:>8.2f}{p99 * 1e3:>8.2f}{top * 1e3:>8.2f}"
            f"{len(values):>10,}"
        )
    return worst


def run_suite(seconds: float, consult_every: int) -> None:
    global API_PORT
    runner: Callable[[Coroutine[Any, Any, behind.Run]], behind.Run] = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        pass
    TransferGenerator.consult_every = max(1, consult_every)
    gc.collect()
    gc.freeze()
    gc.disable()
    modes: dict[str, behind.Mode] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as log:
            sim_toml = Path(tmp) / "pbx.toml"
            sim_toml.write_text(sim_config(), encoding="utf-8")
            server_toml = Path(tmp) / "behind.toml"
            with tempfile.TemporaryFile() as sim_log:
                sim, csta, api = behind.start_sim(sim_toml, sim_log)
                API_PORT = api
                try:
                    batch = behind.has_batch(api)
                    server_toml.write_text(behind.server_config(csta), encoding="utf-8")
                    for name, kind in (
                        ("Behind", behind.BehindGenerator),
                        ("Transfers", TransferGenerator),
                    ):
                        behind.GENERATOR = kind
                        port = free_port()
                        server = start_server(port, server_toml, log, api=True)
                        try:
                            asyncio.run(behind.wait_linked(port))
                            modes[name] = behind.measure(
                                runner, name, port, server.pid, api, sim.pid, seconds, batch
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
    finally:
        gc.enable()
    conclude(modes["Behind"], modes["Transfers"])


def conclude(plain: behind.Mode, transfers: behind.Mode) -> None:
    header("Transfers: the open loop at half")
    worst = print_transfers(transfers)
    rate = transfers.closed.result.rate
    errors = transfers.closed.result.stats.errors + transfers.half.result.stats.errors
    print("\nsummary (the same run):")
    print(f"  plain Behind calls  max {plain.closed.result.rate:>7,.0f} calls/s")
    print(
        f"  transferred calls   max {rate:>7,.0f} transfers/s; at half: worst transfer p99 "
        f"{worst * 1e3:.2f} ms; {errors} errors"
    )
    print(
        f"  targets: >= {TARGET_TRANSFERS} transfers/s: {rate:,.0f} "
        f"({'met' if rate >= TARGET_TRANSFERS and not errors else 'NOT met'}); p99 < "
        f"{TARGET_P99 * 1e3:.0f} ms at half: {worst * 1e3:.2f} ms "
        f"({'met' if worst < TARGET_P99 else 'NOT met'})"
    )
    record(
        "transfer",
        "plain Behind complete calls/s, closed loop (same run)",
        plain.closed.result.rate,
        "/s",
    )
    record(
        "transfer",
        "Behind calls ending in a transfer /s, closed loop",
        rate,
        "/s",
        f">= {TARGET_TRANSFERS}, 0 errors",
        rate >= TARGET_TRANSFERS and not errors,
    )
    record(
        "transfer",
        "worst transfer p99 at half the max (request → XferComplete / Dialing)",
        worst * 1e3,
        "ms",
        f"< {TARGET_P99 * 1e3:.0f} ms",
        worst < TARGET_P99,
    )


def main() -> None:
    ap = behind.run_options(__doc__)
    ap.add_argument(
        "--consult-every",
        type=int,
        default=CONSULT_EVERY,
        help=f"one call in this many transfers by consultation (default {CONSULT_EVERY})",
    )
    args, _ = ap.parse_known_args()  # bench/run.py passes every benchmark's options
    run_suite(args.seconds or (2.0 if args.quick else 10.0), args.consult_every)


if __name__ == "__main__":
    main()
