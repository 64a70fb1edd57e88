"""The generator proper: one :class:`Worker` per process, its sessions (:mod:`.session`) playing
IVRs over raw GLI on one asyncio loop, in closed loop or open loop, for a warm-up and a measured
window. Every reply is checked; anything unexpected is an error, counted by kind."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import resource
import time
from array import array
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, Final

from ivr_server.loadtest.session import Session, WorkerState
from ivr_server.loadtest.work import (
    LoginFailed,
    Progress,
    SessionSpec,
    WorkerResult,
    WorkerSpec,
)

__all__ = ["LoginFailed", "SessionSpec", "Worker", "WorkerResult", "WorkerSpec", "run_worker"]

PROGRESS_EVERY: Final = 0.5
"""Seconds between two progress reports of a worker."""


class Worker(WorkerState):
    """The sessions of one process and the load they run."""

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
