"""The generator proper: raw GLI sessions playing IVRs, one asyncio loop per process.

The hot path stays cheap: requests are pre-encoded templates where only the CallId changes, replies
are cut by the GLI header and checked with byte searches (CallId, element, key attributes), never
decoded as XML. Every reply is checked; anything unexpected is an error, counted by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import re
import resource
import socket
import time
from array import array
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, cast

from ivr_server.loadtest.scripts import (
    CALL_TOKEN_BYTES,
    PROLOG,
    CompiledStep,
    Script,
    compile_script,
    latency_labels,
    login_body,
)
from ivr_server.wire import FrameDecoder, GliType, encode_frame

__all__ = ["LoginFailed", "SessionSpec", "WorkerResult", "WorkerSpec", "run_worker"]

_REPLY: Final = re.compile(rb"<GctiMsg>(?:<CallId>([^<]*)</CallId>)?<([A-Za-z]+)")
_KEY_ATTR: Final = re.compile(
    rb"\b(Event|EndCause|Result|RouteType|ErrorCode|Status|FailedReq|TlibErrCode)='([^']*)'"
)
MAX_EXAMPLES: Final = 3
PROGRESS_EVERY: Final = 0.5
RECENT_MAX: Final = 2000


class LoginFailed(RuntimeError):
    """A session could not connect or log in: the run cannot start."""


def request(call_id: bytes, body: bytes) -> bytes:
    """One GLI Data frame: the fixed prolog, the CallId, the pre-encoded message element."""
    return encode_frame(GliType.DATA, PROLOG + call_id + body)


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """One IVR session (connection) and the ports it owns."""

    index: int
    ivr: str
    ports: tuple[str, ...]
    concurrency: int
    """Closed loop: calls this session keeps in progress."""


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """What one process does (picklable: sent to the worker processes)."""

    worker: int
    host: str
    port: int
    sessions: tuple[SessionSpec, ...]
    script: Script
    mode: str
    """``closed`` or ``open``."""
    rate: float
    """Open loop: calls per second this worker starts."""
    duration: float
    warmup: float
    timeout: float
    drain: float


@dataclass
class WorkerResult:
    """Everything one worker measured; merged by the runner."""

    worker: int
    labels: list[str]
    latencies: dict[str, array[float]]
    """Seconds from request to its (last) expected reply, per request type."""
    times: dict[str, array[float]]
    """When each latency was measured, in seconds since the measurement began."""
    started: int = 0
    completed: int = 0
    failed: int = 0
    unfinished: int = 0
    sent: int = 0
    received: int = 0
    window_completed: int = 0
    window_sent: int = 0
    window_received: int = 0
    window: float = 0.0
    peak_in_flight: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    start_lag: array[float] = field(default_factory=lambda: array("d"))
    cpu_seconds: float = 0.0
    ports: int = 0
    sessions: int = 0

    def error(self, kind: str, text: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        examples = self.examples.setdefault(kind, [])
        if len(examples) < MAX_EXAMPLES:
            examples.append(text)


@dataclass(frozen=True, slots=True)
class Progress:
    worker: int
    started: int
    completed: int
    errors: int
    in_flight: int
    sent: int
    received: int
    recent: list[float]
    """A sample of the latencies (seconds) measured since the previous report."""


class Port:
    __slots__ = ("number", "steps")

    def __init__(self, number: str, steps: tuple[CompiledStep, ...]) -> None:
        self.number = number
        self.steps = steps


class Call:
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


_LOGIN_STATUS: Final = re.compile(rb"<LoginResp\b[^>]*\bStatus='([^']*)'")
_LOGIN_RESULT: Final = re.compile(rb"<LoginResp\b[^>]*\bResult='([^']*)'")
_FLOW: Final = re.compile(rb"<FlowControl\b[^>]*\bStatus='([^']*)'")
_LOGIN_STATUS_WHY: Final = {
    "NoSuchClient": "the server has no IVR of that name (the IVRs it serves are listed by"
    " GET /api/v1/ivrs on its HTTP API)",
    "InitInProgress": "a T-Server link of that IVR is down, so its ports cannot take calls",
}


def _login_problem(ivr: str, first: bytes, resp: bytes, second: bytes, flow: bytes) -> str | None:
    """Why the server's answer to our ``LoginReq`` rules out a load test, in the server's own
    words (``None``: logged in, ready for calls)."""
    if (first, second) != (b"LoginResp", b"FlowControl"):
        return (
            f"IVR {ivr!r}: login answered with {first.decode('latin-1')} and "
            f"{second.decode('latin-1')}, not LoginResp and FlowControl: {resp[91:400]!r}"
        )
    result = _LOGIN_RESULT.search(resp)
    if result is None or result.group(1) != b"Success":
        words = result.group(1).decode("latin-1") if result else "?"
        return f"IVR {ivr!r}: login refused: LoginResp Result='{words}'"
    status = _LOGIN_STATUS.search(resp)
    if status is not None and status.group(1) != b"OK":
        words = status.group(1).decode("latin-1")
        why = _LOGIN_STATUS_WHY.get(words, "the server cannot take calls from it")
        return f"IVR {ivr!r}: LoginResp Status='{words}': {why}"
    control = _FLOW.search(flow)
    if control is None or control.group(1) != b"Off":
        return (
            f"IVR {ivr!r}: FlowControl Status='On': the server takes no new calls "
            "(its flow control is on)"
        )
    return None


def _describe(element: bytes, payload: bytes) -> str:
    """The reply's element and its telling attributes, in the server's own words, e.g.
    ``CallError FailedReq='Unknown' TlibErrCode='INVALID_REQ'``."""
    start = payload.find(b"<" + element)
    end = payload.find(b">", start)
    got = element.decode("latin-1")
    for match in _KEY_ATTR.finditer(payload, start, end if end >= 0 else len(payload)):
        got += f" {match.group(1).decode()}='{match.group(2).decode('latin-1')}'"
    return got


class Session(asyncio.Protocol):
    """One IVR session: logs in, then runs calls on its own ports, one at a time per port."""

    def __init__(self, worker: Worker, spec: SessionSpec) -> None:
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
        match = _REPLY.search(payload)
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
                    f"{_describe(element, payload)} for an unknown CallId",
                    f"{self.tag}: {payload[91:400]!r}",
                )
            return
        step = call.port.steps[call.index]
        if not call.waiting:
            self.fail(call, step, f"unsolicited {_describe(element, payload)}", payload, now)
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
        match = _REPLY.search(payload)
        element = match.group(2) if match is not None else b"?"
        got = _describe(element, payload)
        kind = f"{step.label or step.kind}: {why}"
        if why.endswith("got"):
            kind += f" {got}"
        self.r.error(kind, f"{self.tag}: CallId {call.call_id.decode()}: {payload[91:400]!r}")
        call.waiting = False
        self.end(call, ok=False, send=element != b"EndCall")

    def check_login(self) -> None:
        (first, resp), (second, flow) = self.login_replies
        problem = _login_problem(self.spec.ivr, first, resp, second, flow)
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


class Worker:
    """The sessions of one process and the load they run."""

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

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        for spec in self.spec.sessions:
            try:
                _, session = await loop.create_connection(
                    partial(Session, self, spec), self.spec.host, self.spec.port
                )
            except OSError as exc:
                raise LoginFailed(
                    f"cannot connect to {self.spec.host}:{self.spec.port}: {exc}"
                ) from None
            self.sessions.append(session)
        try:
            await asyncio.wait_for(asyncio.gather(*(s.logged_in for s in self.sessions)), 10)
        except (TimeoutError, LoginFailed) as failed:
            for session in self.sessions:  # nothing is left open behind a refused login
                if session.transport is not None:
                    session.transport.abort()
                if not session.logged_in.done():
                    session.logged_in.cancel()
            await asyncio.sleep(0)  # let the transports' connection_lost run before the loop ends
            if isinstance(failed, LoginFailed):
                raise
            raise LoginFailed("no LoginResp within 10 s") from None

    def progress(self) -> Progress:
        r = self.result
        recent, self.recent = self.recent, []
        return Progress(
            r.worker,
            r.started,
            r.completed,
            sum(r.errors.values()),
            self.in_flight,
            r.sent,
            r.received,
            recent,
        )

    def reset(self) -> None:
        """End of the warm-up: forget what was measured; calls in progress count as started."""
        r = self.result
        for label in r.labels:
            self.latencies[label] = array("d")
            self.times[label] = array("d")
        r.started, r.completed, r.failed, r.sent, r.received = self.in_flight, 0, 0, 0, 0
        r.errors.clear()
        r.examples.clear()
        r.start_lag = array("d")
        r.peak_in_flight = self.in_flight
        self.t0 = time.perf_counter()

    async def watchdog(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            now = time.perf_counter()
            for session in self.sessions:
                session.expire(now, self.spec.timeout)

    async def open_loop(self, until: float) -> None:
        """Start calls on schedule, round-robin over the sessions, whatever the replies."""
        rate = self.spec.rate
        sessions = list(self.sessions)
        t0, n = time.perf_counter(), 0
        while self.running:
            now = time.perf_counter()
            if now >= until:
                return
            due = int((now - t0) * rate) + 1
            touched: set[int] = set()
            while n < due:
                index = n % len(sessions)
                session = sessions[index]
                self.result.start_lag.append(now - (t0 + n / rate))
                if session.start_call():
                    touched.add(index)
                else:
                    self.result.error(
                        "no free port (open loop)", f"{session.tag}: every port busy at call {n}"
                    )
                n += 1
            for index in touched:
                sessions[index].flush()
            await asyncio.sleep(max(0.0, t0 + n / rate - time.perf_counter()))

    async def stop(self) -> None:
        """Stop starting calls; let calls in progress end (bounded); close the sessions."""
        self.running = False
        for session in self.sessions:
            session.release_held()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(s.idle.wait() for s in self.sessions)), self.spec.drain
            )
        self.result.unfinished = self.in_flight
        for session in self.sessions:
            session.calls.clear()  # unfinished: reported as such, not as lost connections
            if session.transport is not None:
                session.transport.close()
        self.in_flight = 0
        await asyncio.gather(*(s.lost for s in self.sessions))


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_worker(
    spec: WorkerSpec,
    sink: Callable[[tuple[Any, ...]], None],
    wait_go: Callable[[], Awaitable[float]],
) -> WorkerResult:
    """Connect and log in every session, wait for the go (a ``time.monotonic()`` instant), run.

    ``sink`` receives ``("ready", worker)`` once logged in and ``("progress", Progress)`` every
    half second.
    """
    worker = Worker(spec)
    gc.collect()
    gc.freeze()
    gc.disable()  # the generator makes no cycles worth collecting during a run
    try:
        await worker.connect()
        sink(("ready", spec.worker))
        go = await wait_go()
        await asyncio.sleep(max(0.0, go - time.monotonic()))
        return await _run(worker, sink)
    finally:
        gc.enable()


async def _run(worker: Worker, sink: Callable[[tuple[Any, ...]], None]) -> WorkerResult:
    spec, r = worker.spec, worker.result
    cpu0 = _cpu()
    r.sent = r.received = 0  # the login is not part of the load
    start = worker.t0 = time.perf_counter()
    window_start = start + spec.warmup
    window_end = window_start + spec.duration

    async def report() -> None:
        while True:
            await asyncio.sleep(PROGRESS_EVERY)
            sink(("progress", worker.progress()))

    tasks = [asyncio.create_task(worker.watchdog()), asyncio.create_task(report())]
    scheduler: asyncio.Task[None] | None = None
    try:
        if worker.closed:
            for session in worker.sessions:
                for _ in range(session.spec.concurrency):
                    session.start_call()
                session.flush()
        else:
            scheduler = asyncio.create_task(worker.open_loop(window_end))
        if spec.warmup > 0:
            await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
            worker.reset()
            cpu0 = _cpu()
        await asyncio.sleep(max(0.0, window_end - time.perf_counter()))
        if scheduler is not None:
            await scheduler
        r.window = time.perf_counter() - worker.t0
        r.window_completed, r.window_sent, r.window_received = r.completed, r.sent, r.received
        r.cpu_seconds = _cpu() - cpu0
        await worker.stop()
    finally:
        for task in tasks:
            task.cancel()
        if scheduler is not None:
            scheduler.cancel()
    sink(("progress", worker.progress()))
    return r
