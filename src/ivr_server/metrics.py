"""Counters and histograms of the server, kept as plain integers on the hot path.

Nothing here knows Prometheus: the API layer exports these numbers at scrape time through a
custom collector, so counting costs a dict increment and nobody pays for a metrics library when
nobody scrapes.
"""

from __future__ import annotations

import bisect
from collections import Counter
from dataclasses import dataclass, field
from typing import Final

__all__ = ["LATENCY_BUCKETS", "HaMetrics", "Histogram", "Metrics"]

# Final: the compiled build reads it from a C variable, not from the module's dict per call.
bisect_left: Final = bisect.bisect_left

# Not Final: mypyc (the compiled build) leaves a Final tuple of floats unset at run time.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds in seconds (plus +Inf), from 100 µs to 10 s."""


class Histogram:
    """A cumulative-on-export histogram: per-bucket counts, the sum and the count."""

    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.count += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, cumulative count)`` pairs as Prometheus exposes them, ending with ``+Inf``."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


@dataclass
class Metrics:
    """Everything the server counts. Plain attributes, incremented in place."""

    calls_started: int = 0
    """Calls admitted (NewCall and DialOutInit that reached the switch)."""
    sessions_opened: int = 0
    sessions_closed: int = 0
    logins: Counter[str] = field(default_factory=Counter)
    """Login outcomes: ``OK``, ``NoSuchClient``, ``InitInProgress``, ``InvalidProtocolVer``."""
    messages_in: Counter[str] = field(default_factory=Counter)
    """Documents received, by element name (``rejected`` for those that did not decode)."""
    messages_out: Counter[str] = field(default_factory=Counter)
    """Documents sent, by element name."""
    errors: Counter[str] = field(default_factory=Counter)
    """Error answers by kind: ``NoSuchCall``, ``BLOCKED_REQ``, ``INVALID_REQ``, ``EndCall:<cause>``,
    ``rejected``, ``internal``…"""
    refusals: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Requests refused, by (request element, cause): the cause is what the IVR is told, as in
    ``errors`` (``EndCall:ServerPaused``, ``NoSuchCall``, ``INVALID_REQ``…)."""
    routing: Counter[str] = field(default_factory=Counter)
    """RouteResponse RouteTypes sent (``Default`` includes router timeouts)."""
    router_timeouts: int = 0
    routing_latency: Histogram = field(default_factory=Histogram)
    """RouteRequest to RouteResponse, seconds."""
    request_latency: dict[str, Histogram] = field(default_factory=dict)
    """Per request element: time from the document's arrival to the end of its handling."""
    loop_lag: Histogram = field(default_factory=Histogram)
    """How late the event loop ran a timer due every quarter second, seconds: how long requests
    arriving then waited before the server could even read them (a backlog, a long callback, the
    process not scheduled). About a millisecond of it is the loop's timer resolution."""
    logmsg_dropped: Counter[str] = field(default_factory=Counter)
    """IVR ``LogMsg`` documents not logged, by reason (``rate_limit``: over the session's
    ``logmsg-rate``)."""
    logmsg_truncated: int = 0
    """IVR ``LogMsg`` texts cut to ``logmsg-max-length``."""

    ha: HaMetrics | None = None
    """High availability's figures (``ha_*``); ``None`` with ``[ha] mode = "off"``, which then
    costs nothing and exports nothing (docs/ha.md, "Metrics")."""

    def observe_request(self, tag: str, seconds: float) -> None:
        histogram = self.request_latency.get(tag)
        if histogram is None:
            histogram = self.request_latency[tag] = Histogram()
        histogram.observe(seconds)


@dataclass
class HaMetrics:
    """What high availability counts (``runtime/ha.py``), exported as ``ivr_server_ha_*``.
    Written by the node's writer and role loop, once per batch or role change: never per
    request."""

    mode: str
    node: str
    role: int = 0
    """0 standby, 1 leader (``ha_role``)."""
    epoch: int = 0
    """The fencing epoch of the slot this node writes (0: none held)."""
    store_up: int = 1
    """1 while the store answers, 0 while it is lost (``ha_store_up``)."""
    queued_records: int = 0
    """State records queued while the store is lost (``ha_queued_records``)."""
    commit_latency: Histogram = field(default_factory=Histogram)
    """From a turn's batch sent to its acknowledgement, seconds."""
    batches: int = 0
    """Batches the store acknowledged."""
    replayed: int = 0
    """Requests of the driver replayed at takeovers (hot standby)."""
    fenced: int = 0
    """Times this node found another holding its slot and demoted itself."""
    takeovers: int = 0
    takeover: Histogram = field(
        default_factory=lambda: Histogram((0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0))
    )
    """From winning the lease to answering, seconds (``ha_takeover_seconds``)."""
    replica_timeouts: int = 0
    """Batches whose replicas did not all acknowledge within ``[ha] wait-timeout``."""
    adopted_calls: int = 0  # issue 25, helper F (runtime/ha_active.py sets it)
    """Active mode: calls adopted from dead nodes (``ha_adopted_calls_total``)."""
