"""One simulated IVR session (:class:`Session`, an ``asyncio.Protocol``): it logs in, then runs
calls on its own ports, one at a time per port, checking every reply. What the sessions of one
process share (the result they fill, whether the run goes on, the calls in progress, the compiled
scripts) is :class:`WorkerState`; the worker (:mod:`.generator`) extends it."""

from __future__ import annotations

import asyncio
import socket
import time
from array import array
from typing import Final, cast

from ivr_server.loadtest.frames import REPLY, describe, login_problem, request
from ivr_server.loadtest.scripts import (
    CALL_TOKEN_BYTES,
    CompiledStep,
    compile_script,
    latency_labels,
    login_body,
)
from ivr_server.loadtest.work import LoginFailed, SessionSpec, WorkerResult, WorkerSpec
from ivr_server.wire import FrameDecoder, GliType, encode_frame

__all__ = ["Call", "Port", "Session", "WorkerState"]

RECENT_MAX: Final = 2000
"""Latencies kept between two progress reports (a sample for the live line)."""


class Port:
    """One simulated port of an IVR and its script, compiled for it."""

    __slots__ = ("number", "steps")

    def __init__(self, number: str, steps: tuple[CompiledStep, ...]) -> None:
        self.number = number
        self.steps = steps


class Call:
    """One call in progress on a port: where it is in the script, what it waits for."""

    __slots__ = ("call_id", "index", "left", "number", "port", "reply", "sent", "waiting")

    def __init__(self, call_id: bytes, port: Port, number: bytes) -> None:
        self.call_id = call_id
        self.port = port
        self.number = number
        """What replaces ``{call}`` in this call's requests and checks (digits, unique per run)."""
        self.index = 0
        self.left = 1
        self.reply = 0
        self.sent = 0.0
        self.waiting = False


class Session(asyncio.Protocol):
    """One IVR session: logs in, then runs calls on its own ports, one at a time per port."""

    def __init__(self, worker: WorkerState, spec: SessionSpec) -> None:
        self.w = worker
        self.r = worker.result
        self.spec = spec
        self.loop = asyncio.get_running_loop()
        self.tag = f"W{worker.spec.worker}S{spec.index}"
        self.session_id = self.tag.encode()
        self.free = [Port(p, worker.compiled(p)) for p in reversed(spec.ports)]
        self.calls: dict[bytes, Call] = {}
        self.dead: set[bytes] = set()
        self.seq = 0
        self.decoder = FrameDecoder()
        self.transport: asyncio.Transport | None = None
        self.logged_in: asyncio.Future[None] = self.loop.create_future()
        self.login_replies: list[tuple[bytes, bytes]] = []
        self.out: list[bytes] = []
        self.lost: asyncio.Future[None] = self.loop.create_future()
        self.idle = asyncio.Event()
        self.idle.set()
        self.held: list[Call] = []

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.transport.write(request(self.session_id, login_body(self.spec.ivr)))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.w.running or self.calls:
            self.r.error("connection lost", f"{self.tag} ({self.spec.ivr}): {exc}")
        for call in list(self.calls.values()):
            self.end(call, ok=False, send=False)
        if not self.logged_in.done():
            self.logged_in.set_exception(LoginFailed(f"{self.spec.ivr}: connection lost in login"))
        if not self.lost.done():
            self.lost.set_result(None)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        for gli_type, payload in self.decoder.feed(data):
            if gli_type == GliType.DATA:
                self.r.received += 1
                self.on_reply(payload, now)
            elif gli_type == GliType.KEEP_ALIVE_REQUEST:
                self.out.append(encode_frame(GliType.KEEP_ALIVE_RESPONSE))
            else:
                self.r.error(f"GLI frame type {gli_type}", f"{self.tag}: {payload[:200]!r}")
        self.flush()

    # -- calls

    def flush(self) -> None:
        if self.out:
            if self.transport is not None:
                self.transport.write(b"".join(self.out))
            self.out.clear()

    def start_call(self) -> bool:
        """Start a call on a free port (False: every port of the session is busy)."""
        if not self.free or self.transport is None:
            return False
        port = self.free.pop()
        self.seq += 1
        call = Call(
            f"{self.tag}_{port.number}_{self.seq}".encode(),
            port,
            b"%d%04d%07d" % (self.w.spec.worker, self.spec.index, self.seq),
        )
        self.calls[call.call_id] = call
        self.idle.clear()
        self.r.started += 1
        in_flight = self.w.in_flight = self.w.in_flight + 1
        if in_flight > self.r.peak_in_flight:
            self.r.peak_in_flight = in_flight
        self.send(call)
        return True

    def begin(self, call: Call, index: int) -> None:
        """Move ``call`` to step ``index``: wait its think time, then send its request."""
        call.index = index
        step = call.port.steps[index]
        call.left = step.repeat
        if step.think > 0:
            self.loop.call_later(step.think, self.send_later, call)
        else:
            self.send(call)

    def send_later(self, call: Call) -> None:
        if call.call_id in self.calls:
            self.send(call)
            self.flush()

    def send(self, call: Call) -> None:
        step = call.port.steps[call.index]
        if step.hold:
            if self.w.running:
                self.held.append(call)
            else:
                self.begin(call, call.index + 1)
            return
        if not step.body:  # Think: its time has passed
            self.begin(call, call.index + 1)
            return
        body = step.body.replace(CALL_TOKEN_BYTES, call.number) if step.per_call else step.body
        self.out.append(request(call.call_id, body))
        self.r.sent += 1
        if not step.replies:  # EndCall
            self.end(call, ok=True, send=False)
            return
        call.sent = time.perf_counter()
        call.reply = 0
        call.waiting = True

    def release_held(self) -> None:
        held, self.held = self.held, []
        for call in held:
            if call.call_id in self.calls:
                self.begin(call, call.index + 1)
        self.flush()

    def end(self, call: Call, ok: bool, send: bool) -> None:
        """The call is over: free its port; in closed loop start the next call."""
        del self.calls[call.call_id]
        self.w.in_flight -= 1
        if send:
            self.out.append(request(call.call_id, call.port.steps[-1].body))
            self.r.sent += 1
        if ok:
            self.r.completed += 1
        else:
            self.r.failed += 1
            if len(self.dead) > 100_000:
                self.dead.clear()
            self.dead.add(call.call_id)
        self.free.append(call.port)
        if self.w.closed and self.w.running:
            self.start_call()
        elif not self.calls:
            self.idle.set()

    def on_reply(self, payload: bytes, now: float) -> None:
        match = REPLY.search(payload)
        if match is None:
            self.r.error("unparsable reply", f"{self.tag}: {payload[:300]!r}")
            return
        call_id, element = match.groups()
        if call_id is None:
            self.r.error(
                f"{element.decode('latin-1')} without a CallId", f"{self.tag}: {payload[:300]!r}"
            )
            return
        call = self.calls.get(call_id)
        if call is None:
            if call_id == self.session_id and not self.logged_in.done():
                self.login_replies.append((element, payload))
                if len(self.login_replies) == 2:
                    self.check_login()
            elif call_id not in self.dead:
                self.r.error(
                    f"{describe(element, payload)} for an unknown CallId",
                    f"{self.tag}: {payload[91:400]!r}",
                )
            return
        step = call.port.steps[call.index]
        if not call.waiting:
            self.fail(call, step, f"unsolicited {describe(element, payload)}", payload, now)
            return
        check = step.replies[call.reply]
        needles = check.needles
        if step.per_call:
            needles = tuple(n.replace(CALL_TOKEN_BYTES, call.number) for n in needles)
        if element != check.element or not all(n in payload for n in needles):
            self.fail(call, step, f"expected {check.text}, got", payload, now)
            return
        call.reply += 1
        if call.reply < len(step.replies):
            return
        call.waiting = False
        latency = now - call.sent
        self.w.latencies[step.label].append(latency)
        self.w.times[step.label].append(now - self.w.t0)
        if len(self.w.recent) < RECENT_MAX:
            self.w.recent.append(latency)
        if call.left != 1 and (call.left > 1 or self.w.running):
            if call.left > 1:
                call.left -= 1
            if step.think > 0:
                self.loop.call_later(step.think, self.send_later, call)
            else:
                self.send(call)
            return
        self.begin(call, call.index + 1)

    def fail(self, call: Call, step: CompiledStep, why: str, payload: bytes, now: float) -> None:
        """A wrong reply: count it by kind, end the call (unless the server already did)."""
        match = REPLY.search(payload)
        element = match.group(2) if match is not None else b"?"
        got = describe(element, payload)
        kind = f"{step.label or step.kind}: {why}"
        if why.endswith("got"):
            kind += f" {got}"
        self.r.error(kind, f"{self.tag}: CallId {call.call_id.decode()}: {payload[91:400]!r}")
        call.waiting = False
        self.end(call, ok=False, send=element != b"EndCall")

    def check_login(self) -> None:
        (first, resp), (second, flow) = self.login_replies
        problem = login_problem(self.spec.ivr, first, resp, second, flow)
        if problem is None:
            self.logged_in.set_result(None)
        else:
            self.logged_in.set_exception(LoginFailed(problem))

    def expire(self, now: float, timeout: float) -> None:
        """Calls whose reply is more than ``timeout`` late are errors; end them."""
        for call in [c for c in self.calls.values() if c.waiting and now - c.sent > timeout]:
            step = call.port.steps[call.index]
            expected = step.replies[call.reply].text
            self.r.error(
                f"{step.label}: no {expected} within {timeout:g} s",
                f"{self.tag}: CallId {call.call_id.decode()}",
            )
            call.waiting = False
            self.end(call, ok=False, send=True)
        self.flush()


class WorkerState:
    """What the sessions of one process share: the result they fill, the run's state, the
    compiled scripts of their ports."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        labels = latency_labels(spec.script)
        self.result = WorkerResult(
            spec.worker,
            labels,
            {label: array("d") for label in labels},
            {label: array("d") for label in labels},
            ports=sum(len(s.ports) for s in spec.sessions),
            sessions=len(spec.sessions),
        )
        self.latencies = self.result.latencies
        self.times = self.result.times
        self.closed = spec.mode == "closed"
        self.running = True
        self.in_flight = 0
        self.t0 = time.perf_counter()
        self.recent: list[float] = []
        self.sessions: list[Session] = []
        self._compiled: dict[str, tuple[CompiledStep, ...]] = {}

    def compiled(self, port: str) -> tuple[CompiledStep, ...]:
        steps = self._compiled.get(port)
        if steps is None:
            steps = self._compiled[port] = compile_script(self.spec.script, port)
        return steps
