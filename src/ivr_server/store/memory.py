"""A state store in this process's memory: the reference semantics of
:class:`~ivr_server.store.protocol.StateStore`, for unit tests and for several nodes of one
process (``memory://``). Nothing survives the process."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from ivr_server.store.protocol import (
    Batch,
    Fenced,
    Lease,
    NodePresence,
    SlotVersion,
    StoreError,
    StoreUnavailable,
)

__all__ = ["MemoryImage", "MemoryStore", "shared_memory_store"]


@dataclass(slots=True)
class _Slot:
    epoch: int = 0
    holder: str | None = None
    expires: float = 0.0
    objects: dict[str, bytes] = field(default_factory=dict)
    marks: dict[str, int] = field(default_factory=dict)
    writes: int = 0


@dataclass(frozen=True, slots=True)
class MemoryImage:
    """What :meth:`MemoryStore.snapshot` saved (a Redis RDB snapshot's counterpart)."""

    slots: dict[str, _Slot]
    floor: int


class MemoryStore:
    """Slots in a dict; leases against ``clock`` (monotonic seconds). ``down = True`` makes every
    call raise :class:`StoreUnavailable` (tests of a lost store); :meth:`wipe` forgets
    everything, as a Redis restarted without persistence does; :meth:`restart` is another
    incarnation of the store, empty or from a :meth:`snapshot` (a Redis restarted from an older
    RDB snapshot, or a replica promoted by Sentinel).

    One store serves every node of the process, so what a Redis client keeps per connection is
    kept here per holder: the incarnation each slot's lease was last acquired or renewed on (per
    slot and epoch), and the moment of the last :meth:`restart` (the one lease during which a
    free lease is not taken: :meth:`acquire`)."""

    def __init__(self, *, site: str = "ivr", clock: Callable[[], float] = time.monotonic) -> None:
        self._site = site
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._floor = 0
        """The highest epoch before the last :meth:`wipe`: epochs never repeat (fencing)."""
        self.down = False
        self.applied = 0
        """Batches applied (for tests)."""
        self._incarnation = 1
        self._restarted_at: float | None = None
        self._held_on: dict[tuple[str, int], int] = {}
        """(slot, epoch) -> the incarnation it was last acquired or renewed on."""
        self._presence: dict[str, tuple[bytes, float]] = {}
        self._writes = 0
        """Writes of every slot so far (not reset by :meth:`wipe`): a slot's count is this at
        its last write, so it never comes back to a value a reader saw (the Redis store seeds
        a lost count from its clock)."""

    def _count_write(self) -> int:
        self._writes += 1
        return self._writes

    @property
    def url(self) -> str:
        return f"memory://{self._site}"

    @property
    def incarnation(self) -> str:
        return f"memory-{self._incarnation}"

    def snapshot(self) -> MemoryImage:
        """The store's state now (``SAVE``), for a later :meth:`restart` from it."""
        return MemoryImage(copy.deepcopy(self._slots), self._floor)

    def restart(self, image: MemoryImage | None = None) -> None:
        """Another incarnation: the state of ``image`` (an older snapshot), or empty (the highest
        epoch kept, as :meth:`wipe`). Leases in the image lapse at their old times. Presence
        records are gone (they are not worth a snapshot)."""
        if image is None:
            self.wipe()
        else:
            self._slots = copy.deepcopy(image.slots)
            self._floor = image.floor
        self._presence.clear()
        self._incarnation += 1
        self._restarted_at = self._clock()

    def _stale(self, slot: str, epoch: int) -> bool:
        """Was ``slot`` at ``epoch`` last confirmed on an earlier incarnation?"""
        held = self._held_on.get((slot, epoch))
        return held is not None and held != self._incarnation

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

    def apply_now(self, batch: Batch) -> asyncio.Future[int]:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        try:
            future.set_result(self._apply(batch))
        except StoreError as exc:
            future.set_exception(exc)
        return future

    async def apply(self, batch: Batch, *, replicas: int = 0, wait_timeout: float = 0.05) -> int:
        return self._apply(batch)

    def _apply(self, batch: Batch) -> int:
        self._check()
        if self._stale(batch.slot, batch.epoch):  # renew first: the state may be older
            raise Fenced(batch.slot, batch.epoch, None)
        s = self._slots.get(batch.slot)
        current = s.epoch if s is not None and s.epoch else None
        if s is None or current != batch.epoch:
            raise Fenced(batch.slot, batch.epoch, current)
        for key in batch.deletes:
            s.objects.pop(key, None)
        s.objects.update(batch.puts)
        s.marks.update(batch.marks)
        s.writes = self._count_write()
        self.applied += 1
        return 0

    async def acquire(self, slot: str, node: str, lease: float) -> int | None:
        self._check()
        s = self._slot(slot)
        if self._live(s) and s.holder != node:
            return None
        restarted = self._restarted_at
        if not self._live(s) and restarted is not None and self._clock() - restarted < lease:
            raise StoreUnavailable(
                f"{self.url} restarted {self._clock() - restarted:.3f} s ago: a free lease is "
                "not taken for one lease (its holder may be alive and reclaim it)"
            )
        s.epoch = max(s.epoch, self._floor) + 1
        s.holder = node
        s.expires = self._clock() + lease
        for key in [key for key in self._held_on if key[0] == slot]:
            del self._held_on[key]  # older epochs: fenced by the store's epoch from now on
        self._held_on[(slot, s.epoch)] = self._incarnation
        return s.epoch

    async def renew(self, slot: str, node: str, epoch: int, lease: float) -> bool | None:
        self._check()
        reclaim = self._stale(slot, epoch)
        s = self._slots.get(slot)
        if s is None or s.epoch == 0 or (reclaim and s.epoch < epoch):
            # the store lost the slot, or has an older past of it: it is ours again
            s = self._slot(slot)
            s.epoch, s.holder, s.expires = epoch, node, self._clock() + lease
            self._held_on[(slot, epoch)] = self._incarnation
            return None
        if s.epoch != epoch or (self._live(s) and s.holder != node):
            self._held_on.pop((slot, epoch), None)
            return False
        s.holder = node
        s.expires = self._clock() + lease
        self._held_on[(slot, epoch)] = self._incarnation
        return None if reclaim else True

    async def release(self, slot: str, node: str, epoch: int) -> None:
        self._check()
        s = self._slots.get(slot)
        if s is not None and s.holder == node and s.epoch == epoch:
            s.holder = None
            s.expires = 0.0
        self._held_on.pop((slot, epoch), None)

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

    async def version(self, slot: str) -> SlotVersion:
        self._check()
        s = self._slots.get(slot)
        return SlotVersion(self.incarnation, s.writes if s is not None else 0)

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
        s.writes = self._count_write()

    async def heartbeat(self, node: str, record: bytes, ttl: float) -> None:
        self._check()
        now = self._clock()
        for name, (_, until) in list(self._presence.items()):
            if until <= now:
                del self._presence[name]
        self._presence[node] = (record, now + ttl)

    async def presence(self) -> dict[str, NodePresence]:
        self._check()
        now = self._clock()
        return {
            name: NodePresence(name, record, until - now)
            for name, (record, until) in sorted(self._presence.items())
            if until > now
        }


_SHARED: dict[str, MemoryStore] = {}


def shared_memory_store(url: str, *, site: str) -> MemoryStore:
    """The one :class:`MemoryStore` of this process for ``url`` and ``site``."""
    key = f"{url}#{site}"
    store = _SHARED.get(key)
    if store is None:
        store = _SHARED[key] = MemoryStore(site=site)
    return store
