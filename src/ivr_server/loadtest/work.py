"""What a worker process is given (:class:`WorkerSpec`, one :class:`SessionSpec` per connection)
and what it hands back (:class:`WorkerResult` at the end, :class:`Progress` on the way). The specs
are picklable: the runner sends them to the worker processes."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from typing import Final

from ivr_server.loadtest.scripts import Script

__all__ = ["MAX_EXAMPLES", "LoginFailed", "Progress", "SessionSpec", "WorkerResult", "WorkerSpec"]

MAX_EXAMPLES: Final = 3
"""Examples kept per kind of error (the report shows them)."""


class LoginFailed(RuntimeError):
    """A session could not connect or log in: the run cannot start."""


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
    """What a worker has done so far, sent to the runner every half second."""

    worker: int
    started: int
    completed: int
    errors: int
    in_flight: int
    sent: int
    received: int
    recent: list[float]
    """A sample of the latencies (seconds) measured since the previous report."""
