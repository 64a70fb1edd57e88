"""``GET /api/v1/rates``: recent per-second rates for the web view's small charts.

Every ``interval`` seconds (5 by default) an asyncio task of the API records the server's
cumulative counters; the last ``window`` seconds (10 minutes) of samples are kept. The answer is
the per-second rate of each counter over each interval between two samples, oldest first.
"""

from __future__ import annotations

__all__ = ["SERIES", "RateSampler"]

from collections import deque
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
        self._samples: deque[tuple[float, tuple[int, ...]]] = deque(
            maxlen=max(2, round(window / interval) + 1)
        )

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
        """Record the counters at Unix time ``now``."""
        self._samples.append((now, self.counters()))

    def rates(self) -> dict[str, Any]:
        """``{"interval", "window", "series", "samples": [{"time", <series>: per second}]}``;
        ``time`` is the end of each interval."""
        samples: list[dict[str, Any]] = []
        previous: tuple[float, tuple[int, ...]] | None = None
        for at, values in self._samples:
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
