"""``GET /api/v1/rates``: recent per-second rates for the web view's small charts.

Every ``interval`` seconds (5 by default) an asyncio task of the API records the server's
cumulative counters; the last ``window`` seconds (10 minutes) of samples are kept. The answer is
the per-second rate of each counter over each interval between two samples, oldest first.

The samples live in one array of doubles allocated up front, not as tuples of Python numbers: a
small object that lives for minutes keeps the 1 MiB arena of CPython's allocator it was put in
alive, and samples taken during a peak of calls landed in the peak's arenas, one or two more
pinned every 5 s (docs/performance.md §5, held calls).
"""

from __future__ import annotations

__all__ = ["SERIES", "RateSampler"]

from array import array
from typing import Any, Final

from ivr_server.service import IvrService

SERIES: Final = ("calls_started", "calls_completed", "documents_in", "documents_out", "errors")
"""The counters sampled, in this order."""


class RateSampler:
    """Samples of the service's cumulative counters; rates between consecutive samples."""

    def __init__(self, service: IvrService, interval: float = 5.0, window: float = 600.0) -> None:
        self.service = service
        self.interval = interval
        self.window = window
        self._capacity = max(2, round(window / interval) + 1)
        self._width = 1 + len(SERIES)
        self._ring = array("d", bytes(8 * self._width * self._capacity))
        """Sample i at ``[i * width]``: its time, then the counters (exact below 2**53)."""
        self._next = 0
        """Where the next sample goes (always below the capacity: never a new int object)."""
        self._full = False

    def counters(self) -> tuple[int, ...]:
        """The cumulative values of :data:`SERIES` now."""
        service = self.service
        metrics = service.metrics
        return (
            metrics.calls_started,
            service.calls.completed,
            sum(metrics.messages_in.values()),
            sum(metrics.messages_out.values()),
            sum(metrics.errors.values()),
        )

    def sample(self, now: float) -> None:
        """Record the counters at Unix time ``now`` (over the oldest sample once full)."""
        ring, start = self._ring, self._next * self._width
        ring[start] = now
        ring[start + 1 : start + self._width] = array("d", self.counters())
        self._next += 1
        if self._next == self._capacity:
            self._next, self._full = 0, True

    def _samples(self) -> list[tuple[float, list[float]]]:
        """The samples kept, oldest first."""
        order = range(self._next, self._capacity) if self._full else range(0)
        ring, width = self._ring, self._width
        return [
            (ring[i * width], ring[i * width + 1 : (i + 1) * width].tolist())
            for i in (*order, *range(self._next))
        ]

    def rates(self) -> dict[str, Any]:
        """``{"interval", "window", "series", "samples": [{"time", <series>: per second}]}``;
        ``time`` is the end of each interval."""
        samples: list[dict[str, Any]] = []
        previous: tuple[float, list[float]] | None = None
        for at, values in self._samples():
            if previous is not None:
                elapsed = at - previous[0]
                if elapsed > 0:
                    entry: dict[str, Any] = {"time": round(at, 3)}
                    for name, now_value, before in zip(SERIES, values, previous[1], strict=True):
                        entry[name] = round(max(0, now_value - before) / elapsed, 3)
                    samples.append(entry)
            previous = (at, values)
        return {
            "interval": self.interval,
            "window": self.window,
            "series": list(SERIES),
            "samples": samples,
        }
