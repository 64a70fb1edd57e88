"""Giving memory back after a crowd of calls has gone.

CPython never shrinks a ``dict`` when keys are deleted: a table that held 50,000 calls keeps its
size (about 2.5 MB) when the calls end. And freed memory stays in the C heap unless the allocator
is asked to return it. So after the number of calls in progress has fallen a lot, the components
rebuild their per-call tables in place (:func:`shrink`) and the heap is trimmed
(:func:`release_free_memory`). Both are cheap and rare: a table is only rebuilt when it is big and
mostly empty, and the trigger (``CallManager.compact_due``) fires at most once per eightfold drop.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from typing import Any, Final

__all__ = ["YOUNG_COLLECTION_INTERVAL", "YoungCollections", "release_free_memory", "shrink"]

_MIN_TABLE: Final = 64 * 1024
"""Tables smaller than this (bytes) are left alone: rebuilding them cannot give back much."""


def shrink(table: dict[Any, Any]) -> bool:
    """Rebuild ``table`` in place if a fresh copy is less than half its size; True if rebuilt.

    In place (``clear`` then ``update``), so that every holder of the dict keeps seeing the same
    object, and in the same order (the deadline queues rely on insertion order). It costs a copy
    of the table, so callers only ask after their number of entries has fallen a lot.
    """
    size = sys.getsizeof(table)
    if size < _MIN_TABLE:
        return False
    entries = table.copy()  # a dict with many deleted slots copies into a right-sized table
    if sys.getsizeof(entries) * 2 > size:
        return False
    table.clear()
    table.update(entries)
    return True


YOUNG_COLLECTION_INTERVAL: Final = 0.05
"""Seconds between two collections of the young generations that the server runs itself."""


class YoungCollections:
    """Which generation the server collects at each tick of its own timer: the youngest, and
    every ``every``-th tick the middle one too (as the interpreter's own thresholds would).

    Why the server collects at all: CPython 3.11 starts a young collection when the tracked
    objects *allocated minus those freed* since the last one pass 700, so while the calls that
    end free about as many old objects as the new calls allocate (the ended calls' timelines
    dropped once the last 10,000 are kept), that count stays low and the youngest generation
    grows to tens of thousands of objects, then one collection walks all of them at once: 20-30 ms
    at 1,000 calls/s (docs/performance.md §13, "Stalls"). A collection of the young generations
    every 50 ms keeps each one short (they walk only what is young); the oldest generation is
    still collected by the interpreter's own rule."""

    def __init__(self, every: int = 10) -> None:
        self.every = every
        """Every this many ticks the middle generation is collected too."""
        self.ticks = 0
        """Ticks so far (collections run by the server)."""

    def tick(self) -> int:
        """The generation to collect now (0, or 1 every :attr:`every`-th tick)."""
        self.ticks += 1
        return 1 if self.ticks % self.every == 0 else 0


def _malloc_trim() -> Any:
    name = ctypes.util.find_library("c")
    if name is None or not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):  # not glibc (musl has no malloc_trim)
        return None


_TRIM: Final = _malloc_trim()


def release_free_memory(*, collect: bool = False) -> bool:
    """Return the C heap's free pages to the operating system (glibc ``malloc_trim``); False
    where that does not exist.

    With ``collect``, a full garbage collection first. Besides cycles, it empties CPython's free
    lists (up to 2,000 spare tuples of each length, and dicts, lists, floats...), which keep the
    blocks freed last, those of the calls that ended last. Each such block holds a whole 1 MiB
    arena of the small-object allocator: after 50,000 calls ended, the collection gave 11 arenas
    (11 MB) back. Its cost grows with the objects not frozen (``gc.freeze``): about 40 ms with
    50,000 calls held, 1 ms with none, so callers only ask when few calls remain.
    """
    if collect:
        gc.collect()
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
