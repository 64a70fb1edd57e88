"""Running a load test: the plan (who owns which ports), the worker processes, live progress on
stderr and the server's CPU and memory from /proc."""

from __future__ import annotations

import asyncio
import itertools
import math
import multiprocessing
import os
import queue
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TextIO

from ivr_server.loadtest.generator import run_worker
from ivr_server.loadtest.report import Merged, ServerUsage, build_report, merge, percentile
from ivr_server.loadtest.scripts import Script
from ivr_server.loadtest.work import LoginFailed, Progress, SessionSpec, WorkerResult, WorkerSpec

__all__ = ["LoadTestError", "LoadTestOptions", "Outcome", "plan", "run_loadtest"]


class LoadTestError(RuntimeError):
    """The load test cannot run (bad options, no server, login refused, a worker died)."""


@dataclass(frozen=True)
class LoadTestOptions:
    script: Script
    host: str = "127.0.0.1"
    port: int = 3021
    ivrs: tuple[str, ...] = ("IVR_1",)
    ports_per_ivr: int = 32
    first_port: int = 1
    connections: int = 1
    """Sessions per IVR; each owns an equal share of the IVR's ports."""
    rate: float | None = None
    """Open loop: calls started per second (over all IVRs)."""
    concurrency: int | None = None
    """Closed loop: calls in progress (default: one per port)."""
    duration: float = 10.0
    warmup: float = 0.0
    processes: int = 1
    timeout: float = 5.0
    server_pid: int | None = None
    progress: bool = True


@dataclass
class Outcome:
    report: dict[str, Any]
    merged: Merged


# --------------------------------------------------------------------------------------------
# Plan


def plan(options: LoadTestOptions) -> list[WorkerSpec]:
    """The work of each process: sessions (IVR, owned ports, closed-loop calls) and rate."""
    if options.rate is not None and options.concurrency is not None:
        raise LoadTestError("give --rate (open loop) or --concurrency (closed loop), not both")
    if not options.ivrs:
        raise LoadTestError("no IVR to simulate")
    if options.connections < 1 or options.processes < 1 or options.duration <= 0:
        raise LoadTestError("--connections, --processes and --duration must be positive")
    per_session = options.ports_per_ivr // options.connections
    if per_session < 1:
        raise LoadTestError(
            f"{options.ports_per_ivr} ports per IVR cannot be shared by "
            f"{options.connections} connections"
        )
    sessions: list[tuple[str, tuple[str, ...]]] = []
    for ivr in options.ivrs:
        for c in range(options.connections):
            first = options.first_port + c * per_session
            sessions.append((ivr, tuple(str(first + i) for i in range(per_session))))
    total_ports = per_session * len(sessions)
    if options.processes > len(sessions):
        raise LoadTestError(
            f"{options.processes} processes but only {len(sessions)} sessions: "
            "each process needs at least one (raise --connections or --ivrs)"
        )
    closed = options.rate is None
    concurrency = options.concurrency if options.concurrency is not None else total_ports
    if closed and not 1 <= concurrency <= total_ports:
        raise LoadTestError(
            f"--concurrency {concurrency}: must be between 1 and the {total_ports} ports "
            "(ports per IVR × IVRs, a port carries one call at a time)"
        )
    if not closed and (options.rate is None or options.rate <= 0):
        raise LoadTestError("--rate must be positive")
    count = len(sessions)
    specs: list[list[SessionSpec]] = [[] for _ in range(options.processes)]
    for j, (ivr, ports) in enumerate(sessions):
        share = concurrency // count + (1 if j < concurrency % count else 0) if closed else 0
        specs[j % options.processes].append(SessionSpec(j, ivr, ports, share))
    return [
        WorkerSpec(
            worker=w,
            host=options.host,
            port=options.port,
            sessions=tuple(mine),
            script=options.script,
            mode="closed" if closed else "open",
            rate=0.0 if closed else (options.rate or 0.0) * len(mine) / count,
            duration=options.duration,
            warmup=options.warmup,
            timeout=options.timeout,
            drain=options.timeout + 1.0,
        )
        for w, mine in enumerate(specs)
    ]


# --------------------------------------------------------------------------------------------
# Server usage from /proc


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def read_proc(pid: int) -> tuple[float, float] | None:
    """CPU seconds used so far and resident memory in MB of ``pid`` (None: cannot read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
        status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return None
    fields = stat.rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / _TICK
    rss = math.nan
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return cpu, rss


@dataclass
class ServerProbe:
    pid: int
    samples: list[tuple[float, float, float]] = field(default_factory=list)
    """(time.monotonic(), CPU seconds, RSS MB)."""
    problem: str | None = None

    def sample(self) -> None:
        got = read_proc(self.pid)
        if got is None:
            self.problem = f"cannot read /proc/{self.pid} (no such process, or not Linux)"
            return
        self.samples.append((time.monotonic(), *got))

    def usage(self, start: float, end: float) -> ServerUsage:
        usage = ServerUsage(self.pid, samples=len(self.samples), problem=self.problem)
        s = self.samples
        if len(s) < 2:
            return usage
        before = [x for x in s if x[0] <= start + 0.05] or s[:1]
        after = [x for x in s if x[0] >= end - 0.05] or s[-1:]
        (t0, c0, _), (t1, c1, _) = before[-1], after[0]
        if t1 > t0:
            usage.cpu_percent = (c1 - c0) / (t1 - t0) * 100
        usage.cpu_peak_percent = max(
            ((b[1] - a[1]) / (b[0] - a[0]) * 100 for a, b in itertools.pairwise(s)),
            default=None,
        )
        usage.rss_start_mb, usage.rss_end_mb = s[0][2], s[-1][2]
        usage.rss_peak_mb = max(x[2] for x in s)
        return usage


# --------------------------------------------------------------------------------------------
# Live progress


class Monitor:
    """Collects the workers' progress, samples the server, redraws one line on stderr."""

    def __init__(self, options: LoadTestOptions, workers: int, out: TextIO | None = None) -> None:
        self.options = options
        self.out = out = sys.stderr if out is None else out
        self.latest: dict[int, Progress] = {}
        self.recent: list[float] = []
        self.probe = ServerProbe(options.server_pid) if options.server_pid else None
        self.go = 0.0
        self.last_draw = 0.0
        self.last_totals = (0.0, 0, 0)
        self.tty = out.isatty()
        self.drawn = False

    def start(self, go: float) -> None:
        self.go = go
        self.last_draw = go
        self.last_totals = (go, 0, 0)
        if self.probe is not None:
            self.probe.sample()

    def on_progress(self, progress: Progress) -> None:
        self.latest[progress.worker] = progress
        self.recent.extend(progress.recent)

    def tick(self) -> None:
        now = time.monotonic()
        if self.go == 0.0 or now - self.last_draw < 0.45:
            return
        self.last_draw = now
        if self.probe is not None:
            self.probe.sample()
        if self.options.progress:
            self.draw(now)

    def draw(self, now: float) -> None:
        ps = list(self.latest.values())
        completed = sum(p.completed for p in ps)
        messages = sum(p.sent + p.received for p in ps)
        t_prev, c_prev, m_prev = self.last_totals
        dt = max(1e-6, now - t_prev)
        calls_rate, msg_rate = (completed - c_prev) / dt, (messages - m_prev) / dt
        if completed < c_prev or messages < m_prev:  # the warm-up ended: counters restarted
            calls_rate = msg_rate = math.nan
        self.last_totals = (now, completed, messages)
        recent, self.recent = sorted(self.recent), []
        p50, p99 = percentile(recent, 0.5) * 1e3, percentile(recent, 0.99) * 1e3
        total = self.options.warmup + self.options.duration
        elapsed = min(total, now - self.go)
        width = 20
        filled = int(width * elapsed / total) if total else width
        bar = "#" * filled + "-" * (width - filled)
        line = (
            f"[{bar}] {elapsed:5.1f}/{total:g} s  {calls_rate:9,.0f} calls/s  "
            f"{msg_rate:9,.0f} msg/s  in flight {sum(p.in_flight for p in ps):,}  "
            f"errors {sum(p.errors for p in ps):,}  p50 {p50:.2f} ms  p99 {p99:.2f} ms"
        )
        if self.probe is not None and len(self.probe.samples) >= 2:
            (ta, ca, _), (tb, cb, rb) = self.probe.samples[-2:]
            line += f"  server CPU {(cb - ca) / max(1e-6, tb - ta) * 100:.0f}% RSS {rb:.0f} MB"
        if self.tty:
            self.out.write("\r" + line + "\x1b[K")
        else:
            self.out.write(line + "\n")
        self.out.flush()
        self.drawn = True

    def finish(self) -> ServerUsage | None:
        if self.probe is not None:
            self.probe.sample()
        if self.drawn and self.tty:
            self.out.write("\n")
            self.out.flush()
        if self.probe is None:
            return None
        start = self.go + self.options.warmup
        return self.probe.usage(start, start + self.options.duration)


# --------------------------------------------------------------------------------------------
# Processes


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, WorkerResult]], WorkerResult]:
    try:
        import uvloop

        return uvloop.run
    except ImportError:
        return asyncio.run


def _process_main(spec: WorkerSpec, events: Any, go: Connection) -> None:
    """A worker process: run the worker, send everything to the parent on ``events``."""

    async def wait_go() -> float:
        loop = asyncio.get_running_loop()
        value: float = await loop.run_in_executor(None, go.recv)
        return value

    try:
        result = _event_loop_runner()(run_worker(spec, events.put, wait_go))
    except LoginFailed as exc:
        events.put(("failed", spec.worker, str(exc)))
    except BaseException as exc:
        events.put(("failed", spec.worker, f"{type(exc).__name__}: {exc}"))
    else:
        events.put(("result", spec.worker, result))


def _run_inline(specs: list[WorkerSpec], monitor: Monitor) -> list[WorkerResult]:
    (spec,) = specs

    def sink(event: tuple[Any, ...]) -> None:
        if event[0] == "progress":
            monitor.on_progress(event[1])
            monitor.tick()

    async def wait_go() -> float:
        go = time.monotonic() + 0.05
        monitor.start(go)
        return go

    try:
        return [_event_loop_runner()(run_worker(spec, sink, wait_go))]
    except LoginFailed as exc:
        raise LoadTestError(str(exc)) from None


def _run_processes(specs: list[WorkerSpec], monitor: Monitor) -> list[WorkerResult]:
    ctx = multiprocessing.get_context("spawn")
    events = ctx.Queue()
    pipes: list[Connection] = []
    procs = []
    for spec in specs:
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_process_main, args=(spec, events, receiver), daemon=True)
        proc.start()
        pipes.append(sender)
        procs.append(proc)
    results: dict[int, WorkerResult] = {}
    ready: set[int] = set()
    deadline = time.monotonic() + 30
    try:
        while len(results) < len(specs):
            try:
                event = events.get(timeout=0.25)
            except queue.Empty:
                event = None
            if event is not None:
                kind = event[0]
                if kind == "ready":
                    ready.add(event[1])
                    if len(ready) == len(specs):
                        go = time.monotonic() + 0.1
                        monitor.start(go)
                        for pipe in pipes:
                            pipe.send(go)
                elif kind == "progress":
                    monitor.on_progress(event[1])
                elif kind == "result":
                    results[event[1]] = event[2]
                elif kind == "failed":
                    raise LoadTestError(f"process {event[1]}: {event[2]}")
            monitor.tick()
            if len(ready) < len(specs) and time.monotonic() > deadline:
                raise LoadTestError("the worker processes did not log in within 30 s")
            dead = [p for p in procs if p.exitcode not in (None, 0)]
            if dead and event is None:
                raise LoadTestError(f"a worker process died (exit code {dead[0].exitcode})")
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.terminate()
                proc.join()
        events.close()
        events.join_thread()
    return [results[w] for w in sorted(results)]


def run_loadtest(options: LoadTestOptions, out: TextIO | None = None) -> Outcome:
    """Run the load test; progress goes to ``out`` (default: stderr); returns the report and the
    raw samples."""
    specs = plan(options)
    monitor = Monitor(options, len(specs), out)
    run = _run_inline if len(specs) == 1 else _run_processes
    results = run(specs, monitor)
    server = monitor.finish()
    merged = merge(results)
    settings: dict[str, Any] = {
        "target": f"{options.host}:{options.port}",
        "script": options.script.name,
        "script_steps": options.script.describe(),
        "mode": "open" if options.rate is not None else "closed",
        "rate": options.rate,
        "concurrency": None
        if options.rate is not None
        else sum(s.concurrency for spec in specs for s in spec.sessions),
        "ivrs": list(options.ivrs),
        "ports_per_ivr": options.ports_per_ivr,
        "connections_per_ivr": options.connections,
        "warmup_s": options.warmup,
        "timeout_s": options.timeout,
    }
    return Outcome(build_report(merged, settings=settings, server=server), merged)
