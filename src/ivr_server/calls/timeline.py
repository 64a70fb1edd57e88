"""Every call's timeline: what happened to it, kept bounded, and kept a while after it ended.

Theory of operation. A call's timeline is a ring (:class:`collections.deque` with a ``maxlen``)
of its last ``entries`` entries; an entry is a plain tuple ``(time, direction, item)`` where
``item`` is the very immutable object that passed (the IVR's message, the reply sent, the
:class:`~ivr_server.calls.replies.Refusal` raised, the switch event) and ``direction`` one of
:data:`IN`, :data:`OUT`, :data:`SWITCH`. Nothing is formatted when an entry is recorded: that is
one dictionary look-up and one append per message on the hot path. Reading a timeline
(:mod:`ivr_server.calls.timeline_view`) turns the entries into their kind (``ivr-in``,
``ivr-out``, ``switch-event``, ``router``, ``error``), a short summary (user data: keys only) and,
for errors, the T-Library name of the code with a plain-language explanation.

When a call is forgotten its entries move to the ended timelines, kept ``retention`` seconds and
at most ``calls`` of them (the oldest go first), so that an operator can still ask why a transfer
failed after the call is gone. They are kept as one flat tuple ``(ended_at, ivr, *entries)``, not
the ring: the collector stops tracking a tuple of untracked objects at its first look (a young
collection), where a ``deque`` stays tracked and every full collection walks it; with the 10,000
kept by default that walk was the server's longest stall at 1,000 calls/s (16-28 ms every few
seconds; docs/performance.md §13, "Stalls"). Flat, because the collector untracks one level of
tuples per look at them, and a young object is looked at twice (generations 0 and 1) before it
is old: ``(ended_at, ivr, tuple(ring))`` was still tracked when it got there. Memory is
therefore bounded by (calls in progress + ``calls``) x ``entries`` entries. The time of an ended
call is that of its last entry (the step that ended it), so that ending a call needs no clock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["IN", "OUT", "SWITCH", "Entry", "TimelineLimits", "Timelines"]

IN: Final = 0
"""An IVR message about the call, received."""
OUT: Final = 1
"""A message to the IVR about the call, sent (a reply, an unsolicited event, or a refusal)."""
SWITCH: Final = 2
"""A switch event about the call (or the router's instruction, which comes as one)."""

Entry = tuple[float, int, Any]
"""``(time, direction, item)``: see the module docstring."""
_ENTRIES: Final = 2
"""Where an ended timeline's entries start in its tuple (after when it ended and its IVR)."""


@dataclass(frozen=True)
class TimelineLimits:
    """How much is kept: entries per call, and for how long and how many ended calls."""

    entries: int = 200
    """Entries kept per call (the oldest go first); 0 keeps no timeline at all."""
    retention: float = 600.0
    """Seconds an ended call's timeline is kept."""
    calls: int = 10_000
    """Ended calls whose timelines are kept at most."""


class Timelines:
    """The timelines of the calls in progress and of the calls that ended lately."""

    def __init__(self, limits: TimelineLimits | None = None) -> None:
        self.limits = limits if limits is not None else TimelineLimits()
        self.now = 0.0
        """The time of the input being handled (the call side sets it at each of its doors):
        the time of every entry recorded meanwhile."""
        self.live: Final[dict[str, deque[Entry]]] = {}
        """CallId -> the ring of a call in progress."""
        self.ended: Final[OrderedDict[str, tuple[Any, ...]]] = OrderedDict()
        """CallId -> (when it ended, its IVR, *its entries), oldest first. An ordered dictionary:
        its first key is found at once, where a plain dictionary's is found by skipping every
        slot deleted before it (the oldest are dropped one by one)."""

    def start(self, call_id: str) -> None:
        """A new call: an empty ring (a CallId used again starts afresh)."""
        entries = self.limits.entries
        if entries > 0:
            self.ended.pop(call_id, None)
            self.live[call_id] = deque(maxlen=entries)

    def record(self, call_id: str, direction: int, item: Any) -> None:
        """One entry on a call in progress (nothing if the call has no timeline)."""
        ring = self.live.get(call_id)
        if ring is not None:
            ring.append((self.now, direction, item))

    def first(self, call_id: str, item: Any) -> None:
        """The IVR message that started the call, before what its handling sent already."""
        ring = self.live.get(call_id)
        if ring is not None and len(ring) < (ring.maxlen or 0):
            ring.appendleft((ring[0][0] if ring else self.now, IN, item))

    def record_late(self, call_id: str | None, direction: int, item: Any, ivr: str) -> None:
        """One entry on a call of IVR ``ivr`` that ended lately (a request after its end)."""
        kept = self.ended.get(call_id) if call_id is not None else None
        if kept is not None and call_id is not None and kept[1] == ivr:
            entries = (*kept[_ENTRIES:], (self.now, direction, item))
            limit = self.limits.entries
            if 0 < limit < len(entries):
                entries = entries[-limit:]
            self.ended[call_id] = (kept[0], ivr, *entries)  # an existing key: its place stays

    def end(self, call_id: str, ivr: str) -> None:
        """Call ``call_id`` of IVR ``ivr`` was forgotten: its ring joins the ended ones; the
        expired ones go."""
        ring = self.live.pop(call_id, None)
        if ring is None:
            return
        ended_at = ring[-1][0] if ring else self.now
        self.ended[call_id] = (ended_at, ivr, *ring)
        self.prune(ended_at)

    def prune(self, now: float) -> int:
        """Drop the ended timelines older than the retention or beyond the count; how many."""
        ended = self.ended
        limits = self.limits
        oldest = now - limits.retention
        dropped = 0
        while ended:
            call_id = next(iter(ended))
            if len(ended) <= limits.calls and ended[call_id][0] >= oldest:
                break
            del ended[call_id]
            dropped += 1
        return dropped

    def get(self, call_id: str, now: float) -> tuple[list[Entry], float | None] | None:
        """A copy of the entries of a call in progress or ended within the retention, with when
        it ended (``None``: in progress); ``None`` for a call never seen or long gone."""
        ring = self.live.get(call_id)
        if ring is not None:
            return list(ring), None
        self.prune(now)
        kept = self.ended.get(call_id)
        if kept is None:
            return None
        return list(kept[_ENTRIES:]), kept[0]

    def keys_of(self, call_id: str) -> list[str]:
        """The keys (``Call.key``: the CallId within its IVR's scope) of every timeline held of
        a call with CallId ``call_id``, in progress or ended (for the API; not the hot path)."""
        suffix = "\x1f" + call_id
        return [key for key in (*self.live, *self.ended) if key.endswith(suffix)]

    def configure(self, limits: TimelineLimits) -> None:
        """New limits: rings of calls from now on get the new length; the ended ones beyond the
        new count go at once (those past the new retention at the next end or read)."""
        self.limits = limits
        self.prune(self.now)

    def __len__(self) -> int:
        """Timelines held (calls in progress and ended ones)."""
        return len(self.live) + len(self.ended)

    def entry_count(self) -> int:
        """Entries held in all (for memory tests)."""
        return sum(len(ring) for ring in self.live.values()) + sum(
            len(kept) - _ENTRIES for kept in self.ended.values()
        )
