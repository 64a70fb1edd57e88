"""Deadline queues: the timers of many calls, cheap to start, restart, cancel and expire.

Every timer of one kind has the same duration (router timeout, call timeout, ...), so deadlines are
set in increasing order and a plain insertion-ordered ``dict`` is already sorted: the earliest
deadline is the first key, starting or restarting a timer moves its key to the end, cancelling it
deletes the key. No heap and no tombstones, so a call that ends leaves nothing behind. A deadline
that would break the order (the duration was shortened by a reload) triggers one re-sort.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from operator import itemgetter
from typing import Generic, TypeVar

from ivr_server.memory import shrink

__all__ = ["DeadlineQueue", "earliest"]

K = TypeVar("K", bound=Hashable)
_DEADLINE = itemgetter(1)
"""An item's deadline (sorting tens of thousands in ``set_many`` with no Python call each)."""


class DeadlineQueue(Generic[K]):
    """Keys with deadlines, kept in deadline order."""

    __slots__ = ("_deadlines", "_last")

    def __init__(self) -> None:
        self._deadlines: dict[K, float] = {}
        self._last = float("-inf")

    def __len__(self) -> int:
        return len(self._deadlines)

    def __contains__(self, key: object) -> bool:
        return key in self._deadlines

    def set(self, key: K, deadline: float) -> None:
        """Start (or restart) the timer of ``key``."""
        deadlines = self._deadlines
        deadlines.pop(key, None)
        deadlines[key] = deadline
        if deadline < self._last:
            self._deadlines = dict(sorted(deadlines.items(), key=lambda item: item[1]))
        else:
            self._last = deadline

    def cancel(self, key: K) -> None:
        """Stop the timer of ``key`` (nothing if it is not running)."""
        self._deadlines.pop(key, None)

    def get(self, key: K) -> float | None:
        """The deadline of ``key``, or ``None`` (HA: a call's timers are persisted as absolute
        deadlines, issue 25)."""
        return self._deadlines.get(key)

    def set_many(self, items: list[tuple[K, float]]) -> None:
        """Start the timers of many keys at once, sorted once (HA restore of tens of thousands
        of calls, issue 25: one :meth:`set` per key would re-sort each time out of order)."""
        if not items:
            return
        merged = self._deadlines
        for key, deadline in items:
            merged.pop(key, None)
            merged[key] = deadline
        self._deadlines = dict(sorted(merged.items(), key=_DEADLINE))
        self._last = max(self._last, max(map(_DEADLINE, items)))

    def first(self) -> float | None:
        """The earliest deadline, or ``None`` when no timer runs."""
        for deadline in self._deadlines.values():
            return deadline
        return None

    def compact(self) -> bool:
        """Give back the table's room after most timers have ended (see ``ivr_server.memory``)."""
        return shrink(self._deadlines)

    def pop_due(self, now: float) -> Iterator[K]:
        """Remove and yield, earliest first, every key whose deadline is ``<= now``."""
        deadlines = self._deadlines
        while deadlines:
            key = next(iter(deadlines))
            if deadlines[key] > now:
                return
            del deadlines[key]
            yield key


def earliest(*deadlines: float | None) -> float | None:
    """The smallest of ``deadlines`` that is not ``None`` (``None`` if all are); on the hot path,
    so it builds no list."""
    best: float | None = None
    for deadline in deadlines:
        if deadline is not None and (best is None or deadline < best):
            best = deadline
    return best
