"""Log lines about a flood of the same thing, at most one per cause per interval, sans-IO.

Theory of operation. A cause (a hashable key: a refused request's name and answer, say) is logged
in full the first time it occurs; further occurrences within the interval are only counted, and
one summary line with the count is due when the interval since the last line of that cause is
over. A cause quiet for a whole interval is logged in full again at its next occurrence. The
owner passes the time in (:meth:`LogThrottle.note`), asks when the next summary is due
(:meth:`LogThrottle.next_deadline`) and takes the summaries due (:meth:`LogThrottle.take_due`);
nothing here reads a clock or writes a log. The keys are never forgotten: their number must be
bounded by the caller (no CallIds, no peers in a key).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

__all__ = ["DEFAULT_INTERVAL", "LogThrottle", "Summary"]

K = TypeVar("K", bound=Hashable)

DEFAULT_INTERVAL: Final = 10.0
"""Seconds between two log lines about the same cause (the first is at once)."""


@dataclass(frozen=True, slots=True)
class Summary(Generic[K]):
    """Occurrences of ``key`` counted, not logged, over the last ``seconds``."""

    key: K
    count: int
    seconds: float


class _Entry:
    """A cause's last line and what was counted since."""

    def __init__(self, logged_at: float) -> None:
        self.logged_at = logged_at
        self.unlogged = 0


class LogThrottle(Generic[K]):
    """Counts occurrences by cause and says which to log in full and which to sum up."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        """Seconds between two log lines about one cause (the first is at once)."""
        self._entries: dict[K, _Entry] = {}
        self._pending: dict[K, None] = {}
        """Causes with occurrences not logged yet, in the order their counting began."""

    def note(self, key: K, now: float) -> bool:
        """One occurrence of ``key`` at ``now``: ``True`` if it is to be logged in full now
        (nothing about ``key`` was logged in the last interval), ``False`` if it is counted for
        the next summary."""
        entry = self._entries.get(key)
        if entry is None:
            self._entries[key] = _Entry(now)
            return True
        if entry.unlogged == 0:
            if now - entry.logged_at >= self.interval:
                entry.logged_at = now
                return True
            self._pending[key] = None
        entry.unlogged += 1
        return False

    @property
    def pending(self) -> bool:
        """Occurrences wait to be summed up."""
        return bool(self._pending)

    def next_deadline(self) -> float | None:
        """When the next summary is due (``None``: nothing is counted)."""
        if not self._pending:
            return None
        entries = self._entries
        interval = self.interval
        return min(entries[key].logged_at for key in self._pending) + interval

    def take_due(self, now: float, *, everything: bool = False) -> list[Summary[K]]:
        """The summaries due at ``now`` (with ``everything``: all that wait, as at a stop); each
        counts as its cause's line for the next interval."""
        if not self._pending:
            return []
        out: list[Summary[K]] = []
        entries = self._entries
        for key in list(self._pending):
            entry = entries[key]
            if everything or now - entry.logged_at >= self.interval:
                out.append(Summary(key, entry.unlogged, now - entry.logged_at))
                entry.logged_at = now
                entry.unlogged = 0
                del self._pending[key]
        return out
