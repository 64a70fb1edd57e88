"""A state store in this process's memory: the reference semantics of
:class:`~ivr_server.store.protocol.StateStore`, for unit tests and for several nodes of one
process (``memory://``). Nothing survives the process."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ivr_server.store.protocol import Batch, Fenced, Lease, StoreUnavailable

__all__ = ["MemoryStore", "shared_memory_store"]


@dataclass(slots=True)
class _Slot:
    epoch: int = 0
    holder: str | None = None
    expires: float = 0.0
    objects: dict[str, bytes] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)


class MemoryStore:
    """Slots in a dict; leases against ``clock`` (monotonic seconds). ``down = True`` makes every
    call raise :class:`StoreUnavailable` (tests of a lost store); :meth:`wipe` forgets
    everything, as a Redis restarted without persistence does."""

    def __init__(self, *, site: str = "ivr", clock: Callable[[], float] = time.monotonic) -> None:
        self._site = site
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._floor = 0
        """The highest epoch before the last :meth:`wipe`: epochs never repeat (fencing)."""
        self.down = False
        self.applied = 0
        """Batches applied (for tests)."""

    @property
    def url(self) -> str:
        return f"memory://{self._site}"

    def _check(self) -> None:
        if self.down:
            raise StoreUnavailable(f"{self.url} is down")

    def _slot(self, slot: str) -> _Slot:
        found = self._slots.get(slot)
        if found is None:
            found = self._slots[slot] = _Slot()
        return found

    def _live(self, s: _Slot) -> bool:
        return s.holder is not None and s.expires > self._clock()

    def wipe(self) -> None:
        """Forget everything (a store restarted empty) but the highest epoch: a slot taken after
        the wipe gets a higher one than any holder from before could have (the Redis store gets
        the same from seeding a new slot's epoch with its clock), else a paused old holder's
        apply would pass the fencing check against its successor's first epoch."""
        self._floor = max([self._floor, *(s.epoch for s in self._slots.values())])
        self._slots.clear()

    async def connect(self) -> None:
        self._check()

    async def close(self) -> None:
        return None

    async def apply(self, batch: Batch, *, replicas: int = 0, wait_timeout: float = 0.05) -> int:
        self._check()
        s = self._slots.get(batch.slot)
        current = s.epoch if s is not None and s.epoch else None
        if s is None or current != batch.epoch:
            raise Fenced(batch.slot, batch.epoch, current)
        for key in batch.deletes:
            s.objects.pop(key, None)
        s.objects.update(batch.puts)
        s.marks.update(batch.marks)
        self.applied += 1
        return 0

    async def acquire(self, slot: str, node: str, lease: float) -> int | None:
        self._check()
        s = self._slot(slot)
        if self._live(s) and s.holder != node:
            return None
        s.epoch = max(s.epoch, self._floor) + 1
        s.holder = node
        s.expires = self._clock() + lease
        return s.epoch

    async def renew(self, slot: str, node: str, epoch: int, lease: float) -> bool | None:
        self._check()
        s = self._slots.get(slot)
        if s is None or s.epoch == 0:  # the store lost the slot: it is ours again
            s = self._slot(slot)
            s.epoch, s.holder, s.expires = epoch, node, self._clock() + lease
            return None
        if s.epoch != epoch or (self._live(s) and s.holder != node):
            return False
        s.holder = node
        s.expires = self._clock() + lease
        return True

    async def release(self, slot: str, node: str, epoch: int) -> None:
        self._check()
        s = self._slots.get(slot)
        if s is not None and s.holder == node and s.epoch == epoch:
            s.holder = None
            s.expires = 0.0

    async def holder(self, slot: str) -> Lease | None:
        self._check()
        s = self._slots.get(slot)
        if s is None or not self._live(s) or s.holder is None:
            return None
        return Lease(slot, s.holder, s.epoch, s.expires - self._clock())

    async def leases(self) -> list[Lease]:
        self._check()
        now = self._clock()
        return [
            Lease(name, s.holder, s.epoch, s.expires - now)
            for name, s in self._slots.items()
            if s.holder is not None and s.expires > now
        ]

    async def slots(self) -> list[str]:
        self._check()
        return [name for name, s in self._slots.items() if s.objects or s.marks]

    async def load(self, slot: str) -> dict[str, bytes]:
        self._check()
        s = self._slots.get(slot)
        return dict(s.objects) if s is not None else {}

    async def marks(self, slot: str, streams: Iterable[str]) -> dict[str, int]:
        self._check()
        s = self._slots.get(slot)
        if s is None:
            return {}
        return {stream: s.marks[stream] for stream in streams if stream in s.marks}

    async def drop(self, slot: str, node: str, epoch: int) -> None:
        self._check()
        s = self._slots.get(slot)
        if s is None or s.epoch != epoch:
            raise Fenced(slot, epoch, s.epoch if s is not None else None)
        s.objects.clear()
        s.marks.clear()


_SHARED: dict[str, MemoryStore] = {}


def shared_memory_store(url: str, *, site: str) -> MemoryStore:
    """The one :class:`MemoryStore` of this process for ``url`` and ``site``."""
    key = f"{url}#{site}"
    store = _SHARED.get(key)
    if store is None:
        store = _SHARED[key] = MemoryStore(site=site)
    return store
