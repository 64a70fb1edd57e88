"""What every state store offers (:class:`StateStore`), the batch of one turn (:class:`Batch`),
a lease (:class:`Lease`) and the store's errors."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Batch",
    "Fenced",
    "Lease",
    "NodePresence",
    "SlotVersion",
    "StateStore",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]


class StoreError(Exception):
    """The store refused or could not do what was asked."""


class StoreUnavailable(StoreError):
    """The store did not answer (connection refused or lost, timeout): the node goes on per
    ``[ha] on-store-loss`` and tries again."""


class Fenced(StoreError):
    """The slot's epoch in the store is not the writer's: another node took the slot over. The
    writer must stop answering at once (it is no longer the holder)."""

    def __init__(self, slot: str, epoch: int, current: int | None) -> None:
        super().__init__(f"slot {slot}: epoch {epoch} fenced (the store is at {current})")
        self.slot = slot
        self.epoch = epoch
        self.current = current
        """The store's epoch of the slot; ``None``: the store has none (it lost its data)."""


@dataclass(frozen=True, slots=True)
class Lease:
    """Who holds a slot, as the store said."""

    slot: str
    node: str
    epoch: int
    expires_in: float
    """Seconds left before the lease lapses (when it was read)."""


@dataclass(frozen=True, slots=True)
class NodePresence:
    """A node's presence record, as the store had it (:meth:`StateStore.presence`)."""

    node: str
    record: bytes
    """What the node wrote (``runtime/ha_presence.py``: JSON of its role, mode, addresses...)."""
    expires_in: float
    """Seconds left before it lapses (when it was read)."""


@dataclass(frozen=True, slots=True)
class SlotVersion:
    """Where a slot's state stands (:meth:`StateStore.version`): two equal versions with an
    incarnation mean that nothing was written to the slot between the two reads."""

    incarnation: str | None
    """The store's :attr:`StateStore.incarnation` the count was read on (``None``: unknown,
    equal to nothing)."""
    writes: int
    """How many batches (and drops) the slot had on that incarnation."""

    def same(self, other: SlotVersion | None) -> bool:
        """Is ``other`` this version, on a known incarnation?"""
        return other is not None and self.incarnation is not None and self == other


@dataclass(slots=True)
class Batch:
    """One turn's changes of a slot's state, applied by the store atomically, after checking the
    epoch. Keys are relative to the slot (the store adds the site and slot prefix)."""

    slot: str
    epoch: int
    puts: dict[str, bytes] = field(default_factory=dict)
    """key -> the object's whole snapshot (the latest wins: a batch is order-free)."""
    deletes: set[str] = field(default_factory=set)
    """Keys of objects that are gone."""
    marks: dict[str, int] = field(default_factory=dict)
    """Hot standby: driver stream -> index of its last request whose effects are in this batch
    or before (docs/ha.md "Replay")."""

    def __bool__(self) -> bool:
        return bool(self.puts or self.deletes or self.marks)

    def merge(self, later: Batch) -> None:
        """Fold a later batch of the same slot into this one (a queue while the store is lost)."""
        for key, value in later.puts.items():
            self.puts[key] = value
            self.deletes.discard(key)
        for key in later.deletes:
            self.puts.pop(key, None)
            self.deletes.add(key)
        self.marks.update(later.marks)
        self.epoch = later.epoch


class StateStore(Protocol):
    """A store of slot snapshots with leases and fencing. All methods raise
    :class:`StoreUnavailable` when the store does not answer within the store's timeout."""

    @property
    def url(self) -> str:
        """Where the store is, without credentials (for logs and the web view)."""
        ...

    @property
    def incarnation(self) -> str | None:
        """Which start of the store this client talks to (Redis: the server's ``run_id``, new at
        every start of a ``redis-server`` and different on a replica Sentinel promotes; memory:
        bumped by ``restart``). ``None`` until connected, or when the server does not say. A
        change is the store "changed under us": it may lack writes it had acknowledged
        (restarted from an older snapshot, failed over), see :meth:`renew`."""
        ...

    async def connect(self) -> None:
        """Open the connection(s) and install what the store needs (Redis: the function
        library, replaced when its version differs)."""
        ...

    async def close(self) -> None:
        """Close the connection(s); pending commands fail with :class:`StoreUnavailable`."""
        ...

    async def apply(self, batch: Batch, *, replicas: int = 0, wait_timeout: float = 0.05) -> int:
        """Apply ``batch`` atomically if ``batch.epoch`` is the slot's epoch, else raise
        :class:`Fenced` (nothing applied). Also :class:`Fenced` with ``current = None`` (as for a
        slot the store lost) when the store is another :attr:`incarnation` than the one this
        client last acquired or renewed the slot on: the store may hold an older state, so
        nothing is written onto it before :meth:`renew` has reclaimed the slot and the caller
        written its whole state back. With ``replicas`` > 0, then wait up to
        ``wait_timeout`` for that many replicas to have it (``WAIT``). Returns how many replicas
        acknowledged (0 when none was asked for). Several applies may be in flight at once; the
        store applies and answers them in the order they were called."""
        ...

    def apply_now(self, batch: Batch) -> asyncio.Future[int]:
        """:meth:`apply` without ``WAIT``, its command written to the store *before this returns*
        (not from a task's next step): the reply outbox deletes what it has just written in the
        same callback, so that only a process killed between the two writes leaves it kept
        (docs/ha.md §5). The future fails with :class:`StoreUnavailable` when not connected
        (nothing is retried)."""
        ...

    async def acquire(self, slot: str, node: str, lease: float) -> int | None:
        """Take ``slot``'s lease for ``node`` if it is free (never held, lapsed or released):
        the slot's epoch is incremented and returned. ``None``: another node holds it.
        :class:`StoreUnavailable` also for a free lease within ``lease`` seconds of this client
        finding the store another :attr:`incarnation` (restarted, failed over): a lease that
        lapsed there may be that of a live holder, which is given one lease to reclaim it
        (:meth:`renew`) before anyone takes the store's older state over."""
        ...

    async def renew(self, slot: str, node: str, epoch: int, lease: float) -> bool | None:
        """Extend ``node``'s lease of ``slot`` at ``epoch``. ``False``: the lease is another's
        or the epoch moved on (the caller is fenced). ``None``: renewed, but the store had lost
        the slot (its epoch and lease were gone: restarted empty) and has them again: the caller
        must write its whole state back (:meth:`apply` of everything). ``None`` also when the
        store is another :attr:`incarnation` than the one this client last acquired or renewed
        the slot on (restarted from an older snapshot, a Sentinel fail-over to a replica that
        may lack writes), even when the lease key was there: an older epoch found there is the
        store's past and is replaced by the caller's (a newer one is another holder's:
        ``False``)."""
        ...

    async def release(self, slot: str, node: str, epoch: int) -> None:
        """Give the lease up (a clean stop): a standby may take it at once."""
        ...

    async def holder(self, slot: str) -> Lease | None:
        """Who holds ``slot`` now, or ``None``."""
        ...

    async def leases(self) -> list[Lease]:
        """Every slot with a live lease (active mode: the live nodes)."""
        ...

    async def slots(self) -> list[str]:
        """Every slot that has state in the store (live or not)."""
        ...

    async def load(self, slot: str) -> dict[str, bytes]:
        """Every object of ``slot``: key -> snapshot (pipelined, for tens of thousands)."""
        ...

    async def version(self, slot: str) -> SlotVersion:
        """How many times ``slot`` was written (every :meth:`apply`, :meth:`apply_now` and
        :meth:`drop` counts one, atomically with its write; fenced ones do not), with the
        incarnation it was read on. A standby reads it before and after a :meth:`load` ahead of
        a takeover, and again once it holds the lease: the same version all three times means
        the state it loaded is the slot's (docs/ha.md "Ready before the lease lapses")."""
        ...

    async def marks(self, slot: str, streams: Iterable[str]) -> dict[str, int]:
        """The replay marks of ``streams`` in ``slot`` (missing streams: absent)."""
        ...

    async def drop(self, slot: str, node: str, epoch: int) -> None:
        """Delete every object of ``slot`` (fenced like :meth:`apply`): an adopted slot whose
        calls moved into the adopter's own slot."""
        ...

    async def heartbeat(self, node: str, record: bytes, ttl: float) -> None:
        """Publish ``node``'s presence ``record`` for ``ttl`` seconds, replacing its previous
        one (every node, leader or standby, every poll: ``GET /api/v1/nodes`` lists standbys,
        which hold no lease). Records lapsed meanwhile are pruned."""
        ...

    async def presence(self) -> dict[str, NodePresence]:
        """Every node's live presence record, by node."""
        ...


def open_store(url: str, *, site: str, timeout: float = 1.0) -> StateStore:
    """The store ``url`` names: ``redis://``, ``rediss://``, ``unix://`` (Redis),
    ``redis+sentinel://`` (Redis behind Sentinel: the primary asked of the sentinels at every
    connect) or ``memory://`` (this process only; every ``memory://`` store of one process is
    the same)."""
    if url.startswith("memory://"):
        from ivr_server.store.memory import shared_memory_store

        return shared_memory_store(url, site=site)
    from ivr_server.store.redis import RedisStore  # imports redis only when it is used

    return RedisStore(url, site=site, timeout=timeout)
