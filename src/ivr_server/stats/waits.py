"""How long calls wait at routing points, measured from switch events, in bounded memory.

Theory of operation
-------------------
A call *waits* at a routing point from its ``EventRouteRequest`` until its routing dialog ends
(``EventRouteUsed``; PROTOCOL.md §6.2). :class:`WaitTracker` is fed every switch event with the
``now`` it was handled at, and keeps two things:

* the calls waiting now, per (switch, routing point), in the order they started waiting — the
  start times of :meth:`WaitTracker.longest_wait`;
* the *completed* waits per (switch, routing point): ``(ended_at, seconds)`` of the calls the
  router routed (``RequestRouteCall`` seen, or ``EventRouteUsed`` naming a destination), at most
  ``max_samples`` of them, the oldest dropped first.

A wait that ends any other way — the router's dialog aborted (router timeout, the IVR gave up),
the call released or abandoned while waiting — is forgotten without a sample: it says nothing
about how long routing takes, and counting it would pull the estimate towards zero.
:meth:`WaitTracker.expected_wait` is the mean of the completed waits that ended within the last
``window_s`` seconds; with none, the longest current wait at the routing point (0 when no call
waits there), because a call arriving now is answered no sooner than the calls ahead of it.

A failed route (``EventError`` for ``TRouteCall`` carrying the call's ConnID: the IVR sent
``Failure``) puts the call back at its routing point; its new wait starts at that moment.

Memory is bounded without a clock of our own: samples are capped per routing point and expire
as ``now`` moves on; a call is forgotten when its wait ends or the call is released. Should
events go missing (a switch replaced, an event not delivered), :meth:`WaitTracker.sweep` asks the
``still_waiting`` callback about every tracked call. It runs by itself whenever the number of
tracked calls reaches twice what the previous sweep left (at least 1024), so the table stays
within twice the calls really waiting, at amortised constant cost per event.

Nothing here reads a clock or changes the switch.
"""

from __future__ import annotations

__all__ = ["EWT_MAX_SAMPLES", "EWT_WINDOW_S", "QUEUE_KEY", "PeerWaits", "WaitTracker"]

from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final

from ivr_server.switch import (
    EventAbandoned,
    EventError,
    EventReleased,
    EventRouteRequest,
    EventRouteUsed,
    RequestRouteCall,
    SwitchEvent,
    TRouteCall,
)

EWT_WINDOW_S: Final = 300.0
"""Completed waits that ended longer ago than this (seconds) no longer count for the estimate."""

EWT_MAX_SAMPLES: Final = 256
"""Completed waits kept per routing point; beyond this the oldest is dropped."""

_SWEEP_MIN: Final = 1024

QUEUE_KEY: Final = "queue:"
"""Prefix of the sample keys of ACD queues (routed waits whose destination was an agent of the
queue); routing point keys are plain DN numbers, which never contain a colon here."""
"""Tracked calls below which no sweep runs."""

StillWaiting = Callable[[str, str, str], bool]
"""``(switch, conn_id, routing_point) -> bool``: does that call still wait there?"""


@dataclass(frozen=True, slots=True)
class PeerWaits:
    """The other active nodes' share of one routing point's or queue's waits (issue 25,
    ``service/peers_state.py``), summed over the nodes, as of their latest facts."""

    waiting: int = 0
    """Calls waiting there (a queue: waiting for its agents at a built-in router)."""
    oldest: float | None = None
    """When the call waiting longest there started waiting, on this node's clock (``now``)."""
    total: float = 0.0
    """Sum of the routed waits (seconds) each node's estimate averages."""
    samples: int = 0
    """How many they are."""


class _Wait:
    """One call waiting at one routing point. Only :class:`WaitTracker` writes it."""

    __slots__ = ("routed", "routing_point", "started_at")

    def __init__(self, routing_point: str, started_at: float) -> None:
        self.routing_point = routing_point
        self.started_at = started_at
        self.routed = False
        """The router routed the call (``RequestRouteCall``); its wait counts when it ends."""


class WaitTracker:
    """Waits at routing points: who waits now, and how long the routed calls waited.

    ``still_waiting`` is consulted by :meth:`sweep` only. ``window_s`` and ``max_samples`` bound
    what :meth:`expected_wait` averages (defaults :data:`EWT_WINDOW_S`, :data:`EWT_MAX_SAMPLES`).
    """

    def __init__(
        self,
        still_waiting: StillWaiting,
        *,
        window_s: float = EWT_WINDOW_S,
        max_samples: int = EWT_MAX_SAMPLES,
        queue_of: Callable[[str, str], str | None] | None = None,
    ) -> None:
        if window_s <= 0 or max_samples < 1:
            raise ValueError("window_s must be > 0 and max_samples >= 1")
        self._still_waiting = still_waiting
        self._queue_of = queue_of
        """(switch, destination DN) -> the ACD queue of the agent there: a routed wait also
        counts for that queue (key ``QUEUE_KEY + queue``)."""
        self._window_s = window_s
        self._max_samples = max_samples
        self._waits: dict[tuple[str, str], _Wait] = {}
        """(switch, ConnID) → the call's wait."""
        self._waiting: dict[tuple[str, str], dict[str, _Wait]] = {}
        """(switch, routing point) → ConnID → wait, oldest first; no empty inner dicts."""
        self._samples: dict[tuple[str, str], deque[tuple[float, float]]] = {}
        """(switch, routing point) → (ended_at, seconds) of routed waits, oldest first."""
        self._sweep_at = _SWEEP_MIN

    # -- input -----------------------------------------------------------------------------------

    def on_event(self, switch: str, event: SwitchEvent, now: float) -> None:
        """Account for one event of switch ``switch``, handled at ``now``."""
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, switch, event, now)
            if len(self._waits) >= self._sweep_at:
                self.sweep(now)

    def _on_route_request(self, switch: str, event: SwitchEvent, now: float) -> None:
        assert isinstance(event, EventRouteRequest)
        self._start(switch, event.conn_id, event.dn, now)

    def _on_route_call(self, switch: str, event: SwitchEvent, now: float) -> None:
        assert isinstance(event, RequestRouteCall)
        wait = self._waits.get((switch, event.conn_id))
        if wait is not None and wait.routing_point == event.dn:
            wait.routed = True

    def _on_route_used(self, switch: str, event: SwitchEvent, now: float) -> None:
        assert isinstance(event, EventRouteUsed)
        wait = self._waits.get((switch, event.conn_id))
        if wait is None or wait.routing_point != event.dn:
            return
        self._end(switch, event.conn_id)
        if wait.routed or event.dest is not None:
            seconds = max(0.0, now - wait.started_at)
            self._sample(switch, wait.routing_point, seconds, now)
            queue = (
                self._queue_of(switch, event.dest)
                if self._queue_of is not None and event.dest is not None
                else None
            )
            if queue:
                self._sample(switch, QUEUE_KEY + queue, seconds, now)

    def _on_error(self, switch: str, event: SwitchEvent, now: float) -> None:
        assert isinstance(event, EventError)
        if event.request == TRouteCall.name and event.conn_id is not None and event.dn:
            self._start(switch, event.conn_id, event.dn, now)  # the route failed: waits again

    def _on_call_gone(self, switch: str, event: SwitchEvent, now: float) -> None:
        assert isinstance(event, EventReleased | EventAbandoned)
        self._end(switch, event.conn_id)

    # -- the only writers of the tables ----------------------------------------------------------

    def _start(self, switch: str, conn_id: str, routing_point: str, now: float) -> None:
        self._end(switch, conn_id)
        wait = _Wait(routing_point, now)
        self._waits[(switch, conn_id)] = wait
        self._waiting.setdefault((switch, routing_point), {})[conn_id] = wait

    def _end(self, switch: str, conn_id: str) -> None:
        wait = self._waits.pop((switch, conn_id), None)
        if wait is None:
            return
        key = (switch, wait.routing_point)
        at_point = self._waiting[key]
        del at_point[conn_id]
        if not at_point:
            del self._waiting[key]

    def _sample(self, switch: str, routing_point: str, seconds: float, now: float) -> None:
        key = (switch, routing_point)
        samples = self._samples.get(key)
        if samples is None:
            samples = self._samples[key] = deque(maxlen=self._max_samples)
        samples.append((now, seconds))

    # -- queries ---------------------------------------------------------------------------------

    def expected_wait(self, switch: str, routing_point: str, now: float) -> float:
        """Expected wait (seconds) at ``routing_point``: the mean of the routed waits that ended
        within the window, else :meth:`longest_wait`."""
        samples = self._live_samples((switch, routing_point), now)
        if samples:
            return sum(seconds for _, seconds in samples) / len(samples)
        return self.longest_wait(switch, routing_point, now)

    def longest_wait(self, switch: str, routing_point: str, now: float) -> float:
        """How long (seconds) the call waiting longest at ``routing_point`` has waited so far;
        0 when none waits (calls whose ``EventRouteRequest`` was not seen are not known)."""
        at_point = self._waiting.get((switch, routing_point))
        if not at_point:
            return 0.0
        oldest = next(iter(at_point.values()))
        return max(0.0, now - oldest.started_at)

    def oldest_start(self, switch: str, routing_point: str) -> float | None:
        """When the call waiting longest at ``routing_point`` started (``None``: none waits)."""
        at_point = self._waiting.get((switch, routing_point))
        return next(iter(at_point.values())).started_at if at_point else None

    def summary(self, now: float) -> Iterator[tuple[str, str, float | None, float, int]]:
        """(switch, key, oldest start, sum of live samples, their number) of every routing
        point or queue key (``QUEUE_KEY`` + queue) with a call waiting or a live sample: what
        an active node tells the others (service/peers_state.py)."""
        for key in list(self._waiting.keys() | self._samples.keys()):
            samples = self._live_samples(key, now)
            oldest = self.oldest_start(*key)
            if samples or oldest is not None:
                yield key[0], key[1], oldest, sum(s for _, s in samples), len(samples)

    def completed_waits(self, switch: str, routing_point: str, now: float) -> list[float]:
        """The routed waits (seconds) the estimate averages now, oldest first."""
        return [seconds for _, seconds in self._live_samples((switch, routing_point), now)]

    def _live_samples(self, key: tuple[str, str], now: float) -> deque[tuple[float, float]]:
        samples = self._samples.get(key)
        if samples is None:
            return deque()
        cutoff = now - self._window_s
        while samples and samples[0][0] <= cutoff:
            samples.popleft()
        if not samples:
            del self._samples[key]
        return samples

    @property
    def tracked_waits(self) -> int:
        """Calls currently tracked as waiting (for tests and the memory bound)."""
        return len(self._waits)

    @property
    def stored_samples(self) -> int:
        """Completed waits currently stored, over every routing point."""
        return sum(len(samples) for samples in self._samples.values())

    # -- housekeeping ----------------------------------------------------------------------------

    def sweep(self, now: float | None = None) -> None:
        """Forget tracked calls that ``still_waiting`` denies and, given ``now``, expired samples.

        Run by :meth:`on_event` as described in the module docstring, and by the engine on
        reconfiguration (without ``now``).
        """
        for (switch, conn_id), wait in list(self._waits.items()):
            if not self._still_waiting(switch, conn_id, wait.routing_point):
                self._end(switch, conn_id)
        if now is not None:
            for key in list(self._samples):
                self._live_samples(key, now)
        self._sweep_at = max(_SWEEP_MIN, 2 * len(self._waits))

    def forget_switches(self, keep: Callable[[str], bool]) -> None:
        """Forget every wait and sample of the switches ``keep`` rejects."""
        for switch, conn_id in [key for key in self._waits if not keep(key[0])]:
            self._end(switch, conn_id)
        for key in [key for key in self._samples if not keep(key[0])]:
            del self._samples[key]


_Handler = Callable[[WaitTracker, str, SwitchEvent, float], None]

_HANDLERS: Final[Mapping[type[SwitchEvent], _Handler]] = {
    EventRouteRequest: WaitTracker._on_route_request,
    RequestRouteCall: WaitTracker._on_route_call,
    EventRouteUsed: WaitTracker._on_route_used,
    EventError: WaitTracker._on_error,
    EventReleased: WaitTracker._on_call_gone,
    EventAbandoned: WaitTracker._on_call_gone,
}
"""Event type → handler: the events that start, mark or end a wait."""
