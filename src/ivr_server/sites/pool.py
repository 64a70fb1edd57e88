"""One Location's DNIS pool: its access numbers, which are free, and the counts of what happened
to them (MODES-AND-HA §1.4, G24: the ISCC ``dnis-pool`` transaction type).

A number is either free or reserved; the pool keeps the free ones in the order they became free
and hands out the one free the longest, so a number just released (a caller may still dial it
late) is the last to be used again. Who holds a reserved number, with which data, is the
business of :class:`~ivr_server.sites.numbers.AccessNumbers`: the pool only knows its numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DnisPool", "PoolCounts"]


@dataclass(slots=True)
class PoolCounts:
    """What happened to a pool's numbers since the server started (kept across reloads)."""

    reserved: int = 0
    """Numbers handed out (``AccessNumGet``, or a reservation over the API)."""
    handed_off: int = 0
    """Reserved numbers claimed: the call arrived on its DNIS, or a claim over the API."""
    expired: int = 0
    """Reserved numbers whose lifetime ended unclaimed."""
    cancelled: int = 0
    """Reserved numbers released early (``AccessNumCancel``, a second ``AccessNumGet``, a
    release over the API)."""
    exhausted: int = 0
    """Requests refused because no number was free."""


class DnisPool:
    """The access numbers of one Location (see the module docstring)."""

    def __init__(self, location: str, numbers: Iterable[str], taken: Iterable[str] = ()) -> None:
        self.location = location
        self.numbers: frozenset[str] = frozenset(numbers)
        """Every number of the pool."""
        held = frozenset(taken)
        self._free: dict[str, None] = dict.fromkeys(n for n in numbers if n not in held)
        """The free numbers, the one free the longest first."""
        self.counts = PoolCounts()

    @property
    def size(self) -> int:
        return len(self.numbers)

    @property
    def free(self) -> int:
        """How many numbers are free now."""
        return len(self._free)

    @property
    def in_use(self) -> int:
        """How many numbers are reserved now (every number that is not free is)."""
        return len(self.numbers) - len(self._free)

    def is_free(self, number: str) -> bool:
        return number in self._free

    def take(self) -> str | None:
        """The number free the longest, now reserved; ``None`` when none is free (counted)."""
        for number in self._free:
            del self._free[number]
            self.counts.reserved += 1
            return number
        self.counts.exhausted += 1
        return None

    def give_back(self, number: str) -> bool:
        """A reserved number is free again (last in line); ``False`` if it is not one of the
        pool's numbers (a reload took it away: it is simply gone)."""
        if number not in self.numbers:
            return False
        self._free[number] = None
        return True
