"""High availability's runtime (``[ha] mode = warm | hot | active``; docs/ha.md, MODES-AND-HA §3.5).

:class:`HaNode` is the asyncio side of a node that shares its state through a
:class:`~ivr_server.store.StateStore`. ``IvrServer`` makes one only when ``mode`` is not
``off``: a single node has no node, no writer, no gate, nothing to pay. What goes into a snapshot
is the service's business (``service/persist.py``); what a standby answers and keeps is the
service's too (``service.role``, its journal of the driver's requests); this module moves bytes,
holds leases and decides when replies may leave.

**Roles.** A node starts as ``standby`` and tries to take the slot's lease at once and every
``poll``; the holder renews it every third of ``lease``. Warm and hot standby share the slot
``"primary"``; in active mode every node is the leader of its own slot (its node id) from the start
and :class:`~ivr_server.runtime.ha_active.ActiveMode` adopts the dead nodes' slots.

**Takeover** (the lease won): load the slot, rebuild the calls from it (``restore``; or, when the
holder had missed a renewal, only install what was loaded and built ahead while its lease ran
out, if the slot has not changed since: ``runtime/ha_prefetch.py``), give the
owner-less calls to the live sessions of their IVR (``bind_orphans``), connect the premise links
and wait (briefly) for them to come up (Behind mode: a replayed request that reaches the PBX
needs its link; G27), read the driver streams' marks and replay, on the same sessions, the requests the old leader never committed (hot standby),
then lead: answer, write, and (warm standby) open the IVR listener. Its duration is logged and
exported (``ha_takeover_seconds``).

**The writer.** At the end of every turn that handled anything (:meth:`HaNode.commit_turn`,
called by ``ConnectionHost.flush`` before any output is written), what changed is sent as one
:class:`~ivr_server.store.Batch`, with the marks of the requests whose effects it holds. Batches
are not awaited in the turn: several may be in flight, acknowledged in order; past
:data:`MAX_IN_FLIGHT` (one with ``replica`` durability) the turns' changes are merged into the
next batch, sent when one is acknowledged (group commit), so a slow store means bigger batches,
not a longer line. With ``durability =
primary | replica`` the output of a turn waits for its batch (``ConnectionHost.reply_gate``, held per
connection in order), so a reply never precedes its effects' commit; ``async`` writes at once.

**Fencing.** A renewal that finds the lease another's, or a batch the store refuses for its epoch
(another's: a refusal because the slot is gone means the store lost its data, handled as a lost
store whose whole state is written back), demotes the node at once: its held replies are dropped (the new leader answers those requests),
its IVR sessions closed (their drivers log in again), the premise links closed, and in warm
standby the IVR listener closed.

**Store loss.** A command unanswered within ``store-timeout``: ``on-store-loss = pause`` sends
``FlowControl On`` (no new calls; the calls in progress go on and their replies are no longer
held), ``continue`` only logs the alarm. Batches are merged into one queue of the latest snapshot
per key, up to ``max-queued`` records; past it the queue is dropped and the whole state is written
when the store is back. The store is tried again every ``poll``; once it answers, the lease is
renewed (another node took it: demote), the queue (or everything) written, the flow control
lifted.

**A graceful stop** (SIGTERM, ``IvrServer.shutdown``) of a node ends no call: the batches in
flight get up to :data:`SETTLE_WAIT` to be acknowledged (their replies leave), the replies still
held are dropped, the lease is given up, and another node takes over at its next poll.

**Reply outbox** (hot standby, ``primary | replica``; ``runtime/connection.py``'s docstring,
docs/ha.md §5). A leader killed after the store applied a batch and before it wrote that batch's
replies leaves those requests committed, so the standby does not replay them. So each turn's
output to a driver stream goes into the batch (:data:`REPLY` records, :meth:`HaNode.keep_reply`);
when the batch is acknowledged, the output is written, then at once its deletion, to the store's
connection (``apply_now``: written before it returns; :meth:`HaNode._release`); a takeover writes
what is still kept before it replays (:meth:`HaNode._resend`). A committed reply is then never
lost with its leader; it comes twice only if the leader dies between those two writes of one
callback (a lost reply there was the other choice: a driver drops a second answer to a request
it has had answered, by its ``RequestId``; a missing one costs its request timeout).

A kept copy is deleted only once its output has left the host (``IvrLinkProtocol.all_sent``):
a killed process's connections are reset, and the kernel drops what it had not sent.

**Limits** (docs/ha.md §5, §7). (1) A reply written and not yet deleted when the leader dies is
written again by its successor unless the driver asked on that call since. (2) While the store
is lost replies are not held; a
leader that dies before the store is back leaves requests answered but not committed, which the
standby replays: answered twice. (3) A leader cut off from the store but not from the drivers
serves on (``on-store-loss``) while a standby that still reaches the store may take over: both
answer until the store answers the old leader again, which then finds itself fenced.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from ivr_server.metrics import HaMetrics
from ivr_server.runtime.ha_prefetch import Prefetch, split_off
from ivr_server.runtime.ha_presence import PresenceWriter
from ivr_server.service.persist import StatePersistence
from ivr_server.store import Batch, Fenced, StateStore, StoreError, StoreUnavailable, open_store
from ivr_server.wire import (
    DecodeError,
    FrameDecoder,
    GliFrameError,
    GliType,
    decode_document,
    encode_frame,
)

if TYPE_CHECKING:
    from ivr_server.runtime.app import IvrServer
    from ivr_server.runtime.connection import IvrLinkProtocol

__all__ = ["COMMIT_WINDOW", "HaNode", "Role"]

log = logging.getLogger("ivr_server.ha")

Role = Literal["standby", "leader"]
PRIMARY: Final = "primary"
"""The slot of warm and hot standby."""
MAX_IN_FLIGHT: Final = 8
"""Batches sent and unacknowledged at once (``durability`` async or primary); past it a turn's
changes are merged into the next batch, sent when one is acknowledged (group commit). With
``replica`` durability one: each batch's ``WAIT`` holds the store's connection, so batches
queued behind it would only wait longer."""
COMMIT_WINDOW: Final = 2048
"""Batches whose commit latency the median and p99 of the web view are taken over."""
EXPIRY_MARGIN: Final = 0.002
"""Seconds after the holder's lease lapses at which a standby tries to take it."""
LINK_WAIT: Final = 2.0
"""Longest a takeover waits for its premise links to come up before it answers (at most a
third of the lease, which is renewed only after the takeover)."""
UNSENT_CHECK: Final = 0.005
"""Seconds between looks at released output the kernel has not sent yet (a driver that does not
read for a while): its kept copy is deleted once it left."""
REPLAY_SLICE: Final = 2048
"""Journaled documents a takeover replays between two looks at its lease (a slice of
``NewCall``s takes ~0.1-0.2 s, pure Python)."""
SETTLE_WAIT: Final = 1.0
"""Longest a stopping node waits for its batches in flight (their replies go out first)."""
REPLY: Final = "reply:"
"""Prefix of the reply outbox's records in the slot: ``reply:<epoch>:<n>:<index>:<stream>`` ->
the bytes of one turn's output to a driver stream, made once the stream's document ``index`` was
handled (the module docstring, "Reply outbox")."""


class _Active(Protocol):
    """What the runtime uses of ``runtime/ha_active.py``'s ``ActiveMode``."""

    async def start(self) -> None: ...

    async def tick(self, now: float) -> None: ...

    def stop(self) -> None: ...


@dataclass(slots=True)
class _InFlight:
    """A batch sent and not yet acknowledged."""

    seq: int
    batch: Batch
    sent: float
    """``perf_counter()`` when it was sent."""
    outcome: BaseException | int | None = None
    """``None`` until done; then replicas acknowledged, or the exception."""
    done: bool = False
    task: asyncio.Future[int] | None = None
    """The store's work on it, kept referenced while in flight (the loop keeps tasks weakly: one
    waiting on a future nothing else holds would be collected, pending)."""


@dataclass(slots=True)
class Takeover:
    """The last takeover: how long it took and what it brought back."""

    seconds: float
    at: float
    """Unix time it ended."""
    calls: int
    replayed: int
    slot: str
    epoch: int
    load_seconds: float = 0.0
    """Of :attr:`seconds`: reading the slot from the store."""
    restore_seconds: float = 0.0
    """Of :attr:`seconds`: rebuilding the calls from the records."""
    records: int = 0
    """Records read."""
    prefetched: bool = False
    """The state was built ahead, before the lease lapsed (``runtime/ha_prefetch.py``):
    :attr:`load_seconds` and :attr:`build_seconds` are not part of :attr:`seconds` (but for
    :attr:`waited_seconds`), and :attr:`restore_seconds` is the installing only."""
    build_seconds: float = 0.0
    """With :attr:`prefetched`: building the objects ahead."""
    waited_seconds: float = 0.0
    """Of :attr:`seconds`: waiting for the state built ahead (not done when the lease lapsed),
    and reading the slot's version."""

    def view(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 4),
            "at": round(self.at, 3),
            "calls": self.calls,
            "replayed": self.replayed,
            "slot": self.slot,
            "epoch": self.epoch,
            "load_seconds": round(self.load_seconds, 4),
            "restore_seconds": round(self.restore_seconds, 4),
            "records": self.records,
            "prefetched": self.prefetched,
            "build_seconds": round(self.build_seconds, 4),
            "waited_seconds": round(self.waited_seconds, 4),
        }


def _merged(first: Batch | None, later: Batch) -> Batch:
    """``later`` folded into ``first`` (a copy of ``later`` when there is none)."""
    if first is None:
        first = Batch(later.slot, later.epoch)
    first.merge(later)
    return first


def _size(batch: Batch | None) -> int:
    return len(batch.puts) + len(batch.deletes) if batch is not None else 0


@dataclass(slots=True)
class _Queue:
    """What waits for a lost store, oldest first, each part merged (the latest snapshot per
    key): the batches that were in flight when it was lost (:attr:`failed`, in their order),
    the batch that was waiting for room among them (:attr:`unsent`), the turns' changes since
    (:attr:`later`)."""

    failed: Batch | None = None
    unsent: Batch | None = None
    later: Batch | None = None
    overflow: bool = False
    """More than ``max-queued`` records: the queue was dropped, everything is written back."""

    def size(self) -> int:
        return _size(self.failed) + _size(self.unsent) + _size(self.later)

    def take(self) -> Batch | None:
        """Everything queued as one batch (oldest first, so the latest wins); the queue empty."""
        merged: Batch | None = None
        for part in (self.failed, self.unsent, self.later):
            if part is not None:
                merged = _merged(merged, part)
        self.clear()
        return merged

    def clear(self) -> None:
        self.failed = self.unsent = self.later = None


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class HaNode:
    """One node of a highly available site (the module docstring). The attributes below are what
    the API (``GET /api/v1/ha``) and the web view read."""

    def __init__(self, server: IvrServer, *, store: StateStore | None = None) -> None:
        config = server.config.ha
        self.server = server
        self.config = config
        self.mode: str = config.mode
        self.node_id: str = config.node_id
        """This node's name (empty until :meth:`start` when the configuration gives none)."""
        self.store: StateStore = store or open_store(
            config.store, site=config.site, timeout=config.store_timeout
        )
        self.store_url: str = self.store.url
        self.role: Role = "standby"
        self.slot: str = PRIMARY
        """The slot this node writes (its node id in active mode)."""
        self.epoch = 0
        """The fencing epoch of :attr:`slot` while held (0: not held)."""
        self.slots: dict[str, int] = {}
        """Every slot this node holds, with its epoch (active mode: its own and the adopted)."""
        self.store_state: Literal["ok", "lost"] = "ok"
        self.queued = 0
        """State records queued while the store is lost."""
        self.batches = 0
        """Batches the store acknowledged."""
        self.replayed = 0
        """Requests replayed at takeovers."""
        self.fenced_count = 0
        """Times this node was fenced and demoted itself."""
        self.last_takeover: Takeover | None = None
        self.release_on_stop = True
        """Give the lease up when stopping (a standby takes over at once). Tests of a crash
        turn it off."""
        self.metrics = HaMetrics(mode=self.mode, node=self.node_id)
        self.active: _Active | None = None
        self.presence = PresenceWriter(self)
        """This node's presence record in the store, every poll (``runtime/ha_presence.py``)."""
        """Active mode's adoption of dead nodes (``runtime/ha_active.py``)."""
        self.service = server.service
        self.persistence: StatePersistence | None = None
        """The service's ``StatePersistence`` (from :meth:`prepare`)."""
        self._hold = config.durability != "async"
        self._replays = config.mode == "hot"
        self._outbox = self._replays and self._hold
        """Hot standby with replies held: the reply outbox is kept while leading."""
        self.keeps_replies = False
        """Is the reply outbox on now (leader, store up)? ``ConnectionHost.flush`` reads it."""
        self._reply_n = 0
        self._replies: dict[str, bytes] = {}
        """The turn's kept output (written with its batch)."""
        self._kept: dict[str, set[str]] = {}
        """Stream -> keys kept in the store and not yet released (their deletion not sent)."""
        self._unsent: list[tuple[IvrLinkProtocol, list[str]]] = []
        """Released output not yet all sent by the kernel: (connection, keys), deleted from the
        store once it has left (:meth:`_release_then_delete`)."""
        self._unsent_check: asyncio.TimerHandle | None = None
        """Only a hot standby replays, so only hot standby writes the driver streams' marks (in
        warm and active mode a turn that changed nothing sends no batch)."""
        self._replicas = config.replicas if config.durability == "replica" else 0
        self._inflight: deque[_InFlight] = deque()
        self._max_in_flight = 1 if self._replicas else MAX_IN_FLIGHT
        self._next: Batch | None = None
        """The turns' changes waiting for room among the batches in flight; it will be sent
        numbered ``_seq + 1`` (the replies of those turns wait for that number)."""
        self._seq = 0
        self._generation = 0
        """Bumped by a demotion: the acknowledgements of older batches are ignored."""
        self._queue = _Queue()
        self._marks: dict[str, int] = {}
        """Every driver stream's latest mark written (a resync writes them all again)."""
        self._latencies: deque[float] = deque(maxlen=COMMIT_WINDOW)
        self._paused = False
        """This node turned the flow control on for a lost store (and turns it off)."""
        self._acquire_after = 0.0
        """A standby tries the lease again only from then (after the store came back: the
        leader renews first)."""
        self._renew_due = 0.0
        self._lease_until = 0.0
        """Loop time until which this node's lease is certainly its own: the sending of the
        last acquire or renewal the store confirmed, plus ``lease``. Past its last third (a
        renewal missed: the node was paused or starved), nothing leaves before the store has
        confirmed the epoch again (:meth:`commit_turn`)."""
        self._try_at = 0.0
        """Standby: when the holder's lease lapses (read after a failed acquire), or when to
        look again before (:meth:`Prefetch.watch`)."""
        self.prefetch: Prefetch | None = None
        """Warm and hot standby: the takeover built ahead (from :meth:`prepare`)."""
        self._last_replayed = 0
        self._replay_due = False
        """A takeover leads but has not replayed yet: no mark may be written (a mark covers the
        requests received, and those not replayed yet have no effect to commit)."""
        self._initial: dict[str, bytes] | None = None
        """What a takeover of an empty slot writes first (this node's whole state)."""
        self._task: asyncio.Task[None] | None = None
        self._presence_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._drained = asyncio.Event()
        """Set while no batch is in flight."""
        self._drained.set()

    # ------------------------------------------------------------------ what others read

    @property
    def leads(self) -> bool:
        """Does this node answer and write now?"""
        return self.role == "leader"

    def commit_latency(self) -> dict[str, float | None]:
        """The last batch's commit latency and the median and p99 of the last
        :data:`COMMIT_WINDOW`, seconds."""
        values = list(self._latencies)
        return {
            "last": values[-1] if values else None,
            "p50": _percentile(values, 0.5),
            "p99": _percentile(values, 0.99),
        }

    def view(self) -> dict[str, Any]:
        """Everything ``GET /api/v1/ha`` and the web view's HA panel show."""
        latency = self.commit_latency()
        return {
            "mode": self.mode,
            "node_id": self.node_id,
            "role": self.role,
            "epoch": self.epoch,
            "slots": dict(self.slots),
            "store_url": self.store_url,
            "store_state": self.store_state,
            "durability": self.config.durability,
            "queued": self.queued,
            "commit_latency": {
                k: (round(v, 6) if v is not None else None) for k, v in latency.items()
            },
            "batches": self.batches,
            "in_flight": len(self._inflight),
            "replayed": self.replayed,
            "fenced_count": self.fenced_count,
            "last_takeover": self.last_takeover.view() if self.last_takeover else None,
            "journal": self._journal_view(),
            "prefetch": self.prefetch.view() if self.prefetch is not None else None,
        }

    def _journal_view(self) -> dict[str, int] | None:
        """Hot standby: what the journals of the driver's requests counted."""
        counters = self.service.journal_counters
        if counters is None or self.mode != "hot":
            return None
        return {
            "journaled": counters.journaled,
            "trimmed": counters.trimmed,
            "overflowed": counters.overflowed,
            "closed": counters.closed,
            "replayed": counters.replayed,
            "unaligned": counters.unaligned,
        }

    # ------------------------------------------------------------------ lifecycle

    def prepare(self) -> None:
        """Before the server listens: the node's name, the service in the standby role, the
        persistence tracking changes. Synchronous, so that no request is handled before."""
        if not self.node_id:
            self.node_id = _default_node_id(self.server)
        self.metrics.node = self.node_id
        self.server.service.metrics.ha = self.metrics
        if self.mode == "active":
            self.slot = self.node_id
        persistence = StatePersistence(
            self.service, wall=time.time, loop=asyncio.get_running_loop().time
        )
        persistence.enable()
        self.persistence = persistence
        if self.mode != "active":
            self.prefetch = Prefetch(self.store, persistence, self.slot, self.config.lease, REPLY)
        self.service.set_role("standby", self._now())
        self.server.writer = self

    async def start(self) -> None:
        """Connect to the store (unreachable: the node starts with the store lost and keeps
        trying), try the lease once, and run the role loop."""
        try:
            await self.store.connect()
            if self.mode == "active":
                await self._take_own_slot()
            else:
                await self._try_acquire(self._now())
        except StoreUnavailable as exc:
            self._store_lost(exc)
        log.info(
            "HA %s node %s: %s, store %s (%s), durability %s",
            self.mode,
            self.node_id,
            self.role,
            self.store_url,
            self.store_state,
            self.config.durability,
        )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="ha-role-loop")

    async def stop(self) -> None:
        """Stop the role loop; wait (briefly) for the batches in flight so that their replies
        leave; give the lease up unless :attr:`release_on_stop` is off; close the store."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self.prefetch is not None:
            await self.prefetch.close()
        if self._presence_task is not None:
            self._presence_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._presence_task
        if self.active is not None:
            self.active.stop()
        await self.settle(SETTLE_WAIT)
        self._generation += 1  # what is still in flight: its outcome changes nothing now
        self._forget_unsent()
        self.server.reply_gate = 0
        self.server.drop_held()  # never sent: their effects are not committed (the next leader
        # replays those requests)
        if self.leads and self.release_on_stop and self.store_state == "ok":
            for slot, epoch in list(self.slots.items()):
                with contextlib.suppress(StoreError, OSError):
                    await asyncio.wait_for(
                        self.store.release(slot, self.node_id, epoch), self.config.store_timeout
                    )
        self.server.writer = None
        with contextlib.suppress(StoreError, OSError):
            await self.store.close()

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the batches in flight to be acknowledged."""
        if self._inflight:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._drained.wait(), timeout)

    # ------------------------------------------------------------------ the writer

    def commit_turn(self) -> None:
        """Send what changed since the last turn as one batch (``ConnectionHost.flush``, before
        the turn's output is written). Only the leader writes."""
        if self.role != "leader":
            return
        persistence = self.persistence
        if persistence is None:
            return
        try:
            puts, deletes = persistence.collect()
        except Exception:  # a bug of ours: logged; the turn's output still leaves
            log.exception("HA: collecting the turn's changes failed: not written")
            self.service.metrics.errors["ha_collect"] += 1
            return
        if self._initial is not None:
            initial, self._initial = self._initial, None
            initial.update(puts)
            puts = initial
            deletes.difference_update(puts)
        marks = self.service.take_marks() if self._replays and not self._replay_due else {}
        if self._replies or (marks and self._kept):
            self._outbox_changes(puts, deletes, marks)
        if not (puts or deletes or marks) and not self._lease_in_doubt():
            return
        if marks:
            self._marks.update(marks)
        batch = Batch(self.slot, self.epoch, puts, deletes, marks)
        if self.store_state == "lost":
            self._enqueue(batch)
            return
        self._submit(batch)

    # ------------------------------------------------------------------ the reply outbox

    def keep_reply(self, stream: str, index: int, data: bytes) -> str:
        """Keep a turn's output to ``stream`` (made once its document ``index`` was handled) with
        the turn's batch (``IvrLinkProtocol.stage``); the key it is kept under."""
        self._reply_n += 1
        key = f"{REPLY}{self.epoch}:{self._reply_n}:{index}:{stream}"
        self._replies[key] = data
        kept = self._kept.get(stream)
        if kept is None:
            kept = self._kept[stream] = set()
        kept.add(key)
        return key

    def _release(self, acked: int) -> None:
        """Write the held output of the batches acknowledged up to ``acked`` (0: everything).
        With the reply outbox, the deletion of that output from the store is written right
        after it, in the same callback (``apply_now``), so that only a leader killed between the
        two writes leaves a written reply kept, to be written again (the module docstring).
        When the lease is in doubt (a renewal overdue: this node may have been paused while
        another took over and wrote these kept replies itself), an empty batch checks the epoch
        first; the output and its deletion follow its answer, or, fenced, the output is
        dropped."""
        server = self.server
        if not (self.keeps_replies and server.waiting):
            server.release_held(acked)
            return
        if self._lease_in_doubt():
            upto = acked or self._seq  # (0: what is held now, not what is held by then)
            if not server.reply_gate:
                server.reply_gate = upto  # a turn's output meanwhile waits for the check too
            generation = self._generation
            check = self.store.apply_now(Batch(self.slot, self.epoch))
            check.add_done_callback(lambda f: self._checked(f, generation, upto))
            return
        self._release_then_delete(acked)

    def _release_then_delete(self, acked: int) -> None:
        server = self.server
        held = server.held_keys(acked)
        server.release_held(acked)
        if not held and not self._unsent:
            return
        self._unsent.extend(held)  # what is still on this host is deleted once it left
        keys = self._sent_since()
        if keys:
            self._delete_kept(keys)

    def _delete_kept(self, keys: list[str]) -> None:
        """Delete kept output that left (``apply_now``: written before this returns)."""
        future = self.store.apply_now(Batch(self.slot, self.epoch, deletes=set(keys)))
        self._forget_kept(keys)
        generation = self._generation
        future.add_done_callback(lambda f: self._deleted(f, generation))

    def _sent_since(self) -> list[str]:
        """The keys of released output that has left since, and (while some has not) a look
        again soon."""
        keys: list[str] = []
        waiting: list[tuple[IvrLinkProtocol, list[str]]] = []
        for protocol, of_protocol in self._unsent:
            if protocol.all_sent():
                keys.extend(of_protocol)
            else:
                waiting.append((protocol, of_protocol))
        self._unsent = waiting
        if waiting and self._unsent_check is None:
            self._unsent_check = asyncio.get_running_loop().call_later(
                UNSENT_CHECK, self._check_unsent
            )
        return keys

    def _forget_unsent(self) -> None:
        """No more looks at released output still on this host (stopped, or demoted)."""
        self._unsent = []
        if self._unsent_check is not None:
            self._unsent_check.cancel()
            self._unsent_check = None

    def _check_unsent(self) -> None:
        self._unsent_check = None
        if not self.leads:
            self._unsent = []
            return
        keys = self._sent_since()
        if keys:
            self._delete_kept(keys)

    def _checked(self, future: asyncio.Future[int], generation: int, acked: int) -> None:
        """The epoch check of a release in doubt came back."""
        exc = None if future.cancelled() else future.exception()
        if generation != self._generation or not self.leads:
            return
        if isinstance(exc, Fenced) and exc.current is not None:
            self._fenced(f"the store refused the epoch check of held replies: {exc}")
            return
        self._release_then_delete(acked)  # (the store lost: released, as then)
        if not self._inflight and self.server.reply_gate <= acked:
            self.server.reply_gate = 0

    def _deleted(self, future: asyncio.Future[int], generation: int) -> None:
        """The store answered the deletion of released output."""
        exc = None if future.cancelled() else future.exception()
        if generation != self._generation:
            return
        if isinstance(exc, Fenced) and exc.current is not None:
            self._fenced(f"the store refused the outbox's deletion: {exc}")

    def _forget_kept(self, keys: list[str]) -> None:
        kept = self._kept
        for key in keys:
            stream = _reply_key(key)[3]
            of_stream = kept.get(stream)
            if of_stream is not None:
                of_stream.discard(key)
                if not of_stream:
                    del kept[stream]

    def _outbox_changes(
        self, puts: dict[str, bytes], deletes: set[str], marks: dict[str, int]
    ) -> None:
        """Fold the outbox into the turn's batch: the turn's kept output, and the deletion of
        everything kept for a stream that closed or started again (its mark reset to 0: that
        connection is gone, nobody to send it to)."""
        if self._replies:
            puts.update(self._replies)
            self._replies = {}
        if marks and self._kept:
            for stream, mark in marks.items():
                if mark == 0:
                    for key in self._kept.pop(stream, ()):
                        if puts.pop(key, None) is None:
                            deletes.add(key)

    def _resend(self, replies: dict[str, bytes]) -> int:
        """Takeover: write the output the old leader kept and never released, oldest first, on
        the connections now carrying its streams; how many were written. Then all of it is
        deleted from the store (written, or for a stream no longer here), as :meth:`_release`."""
        if not replies:
            return 0
        protocols = {
            p.session.stream: p
            for p in self.server.protocols.values()
            if p.session is not None and p.session.stream is not None
        }
        written = skipped = 0
        for _, _, index, stream, key in sorted((*_reply_key(key), key) for key in replies):
            protocol = protocols.get(stream)
            if protocol is None:
                continue
            data, dropped = self._unanswered(stream, index, replies[key])
            skipped += dropped
            if data and protocol.resend(data):
                written += 1
        if skipped:
            log.warning(
                "HA: %d kept documents not written again: the driver asked on their calls since",
                skipped,
            )
        future = self.store.apply_now(Batch(self.slot, self.epoch, deletes=set(replies)))
        generation = self._generation
        future.add_done_callback(lambda f: self._deleted(f, generation))
        return written

    def _unanswered(self, stream: str, index: int, data: bytes) -> tuple[bytes, int]:
        """Of the documents in ``data`` (kept after the stream's document ``index``), those the
        driver may not have had, and how many were left out: a document of a call on which this
        node has since received a request the old leader had not handled (index above
        ``index``) reached the driver, whose IVR asks one thing at a time per call: it had the
        answer before it asked again. That is the duplicate a leader killed between writing a
        reply and writing its deletion would otherwise leave (docs/ha.md §5)."""
        try:
            frames = FrameDecoder().feed(data)
        except GliFrameError:
            return data, 0
        answered = self.service.answered_since
        kept: list[bytes] = []
        dropped = 0
        for kind, payload in frames:
            if kind == GliType.DATA:
                try:
                    call_id, _ = decode_document(payload)
                except DecodeError:
                    call_id = None
                if call_id is not None and answered(stream, call_id, index):
                    dropped += 1
                    continue
            kept.append(encode_frame(GliType(kind), payload))
        return (b"".join(kept) if dropped else data), dropped

    def _lease_in_doubt(self) -> bool:
        """Has a renewal been missed (more than two thirds of the lease since the last one the
        store confirmed)? The node may have been paused or starved while another took its slot
        over: then even a turn that changed nothing (a ``UDataGet``, a ``CallInfoReq``) sends a
        batch, empty, whose apply checks the epoch in the store, and its replies wait for it:
        a fenced node's answers are dropped, never sent after its successor's (H4)."""
        return (
            self._hold
            and self.store_state == "ok"
            and self._now() >= self._lease_until - self.config.lease / 3
        )

    def _submit(self, batch: Batch) -> None:
        """Send ``batch``, or merge it into the next one while :attr:`_max_in_flight` are in
        flight (its replies wait for that one)."""
        waiting = self._next
        if waiting is not None:
            waiting.merge(batch)
            return
        if len(self._inflight) >= self._max_in_flight:
            self._next = batch
            self._drained.clear()
            if self._hold:
                self.server.reply_gate = self._seq + 1
            return
        self._send(batch)

    def _send(self, batch: Batch) -> None:
        self._seq += 1
        entry = _InFlight(self._seq, batch, time.perf_counter())
        self._inflight.append(entry)
        self._drained.clear()
        generation = self._generation
        task = asyncio.ensure_future(
            self.store.apply(batch, replicas=self._replicas, wait_timeout=self.config.wait_timeout)
        )
        task.add_done_callback(lambda t: self._applied(entry, generation, t))
        entry.task = task
        if self._hold:
            self.server.reply_gate = entry.seq

    def _applied(self, entry: _InFlight, generation: int, task: asyncio.Future[int]) -> None:
        """A batch is done: handle every batch done at the head of the line, in order."""
        if task.cancelled():
            outcome: BaseException | int = StoreUnavailable("cancelled")
        else:
            exc = task.exception()  # retrieved, whatever comes of it
            outcome = exc if exc is not None else task.result()
        if generation != self._generation:
            return  # sent before a demotion or the stop: its outcome changes nothing
        entry.done = True
        entry.outcome = outcome
        inflight = self._inflight
        acked = 0
        while inflight and inflight[0].done:
            head = inflight.popleft()
            result = head.outcome
            if isinstance(result, Fenced) and result.current is not None:
                self._fenced(f"the store refused batch {head.seq}: {result}")
                return
            if isinstance(result, BaseException):
                if isinstance(result, Fenced):  # the slot is gone: the store lost its data
                    self._queue.overflow = True  # everything is written back once renewed
                elif not isinstance(result, StoreError):
                    log.error("HA: batch %d failed: %r", head.seq, result)
                self._queue.failed = _merged(self._queue.failed, head.batch)
                self._store_lost(result)
                continue
            latency = time.perf_counter() - head.sent
            self._latencies.append(latency)
            self.metrics.commit_latency.observe(latency)
            self.batches += 1
            self.metrics.batches = self.batches
            if self._replicas and isinstance(result, int) and result < self._replicas:
                self.metrics.replica_timeouts += 1
            older = self._queue.failed
            if older is not None:  # newer than what failed before it: not to be undone
                for key in head.batch.puts:
                    older.puts.pop(key, None)
                older.deletes.difference_update(head.batch.puts)
                older.deletes.difference_update(head.batch.deletes)
            acked = head.seq
        waiting = self._next
        if waiting is not None and len(inflight) < self._max_in_flight:
            self._next = None
            self._send(waiting)  # numbered as its replies expect
        server = self.server
        if not inflight:
            self._drained.set()
            server.reply_gate = 0
            self._release(0)
        elif acked:
            self._release(acked)

    def _enqueue(self, batch: Batch) -> None:
        """Keep a turn's ``batch`` for when the store is back, merged with what is queued."""
        queue = self._queue
        if queue.overflow:
            return
        queue.later = _merged(queue.later, batch)
        self._count_queued()

    def _count_queued(self) -> None:
        """Past ``max-queued`` records, drop the queue: everything is written back instead."""
        queue = self._queue
        size = 0 if queue.overflow else queue.size()
        if size > self.config.max_queued:
            log.warning(
                "HA: more than %d state records queued while the store is lost (max-queued): "
                "dropped; the whole state will be written when it is back",
                self.config.max_queued,
            )
            queue.clear()
            queue.overflow = True
            size = 0
        self.queued = size
        self.metrics.queued_records = size

    # ------------------------------------------------------------------ the role loop

    async def _run(self) -> None:
        config = self.config
        while not self._stopping:
            now = self._now()
            try:
                if self.leads:
                    if now >= self._renew_due or self.store_state == "lost":
                        await self._renew(now)
                    if self.store_state == "lost":
                        await self._store_back()
                    if self.active is not None and self.leads:
                        await self.active.tick(self._now())
                else:
                    if self.store_state == "lost":
                        await self.store.holder(self.slot)  # does it answer again?
                        await self._store_back()
                    await self._try_acquire(now)
            except StoreUnavailable as exc:
                self._store_lost(exc)
            except Fenced as exc:
                self._fenced(str(exc))
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug of ours: logged, the loop goes on
                log.exception("HA: role loop")
            self._tick_presence()  # standbys too: GET /api/v1/nodes
            interval = config.poll
            if self.leads and self.active is None and self.store_state == "ok":
                interval = max(0.0, min(config.lease / 3, self._renew_due - self._now()))
            elif not self.leads and self.store_state == "ok":
                interval = max(0.0, min(interval, self._try_at - self._now()))
            # a plain timer: the loop runs again one event-loop turn after it fires (a wait_for
            # of an event took three: the timeout, the inner task's cancellation, the return),
            # and under a burst every turn counts for the renewal (docs/performance.md §13)
            await asyncio.sleep(interval)

    def _tick_presence(self) -> None:
        """Write the presence record (when due) without waiting for it: on the batches'
        connection it may answer after them, and the role loop's next renewal must not wait."""
        task = self._presence_task
        if task is None or task.done():
            self._presence_task = asyncio.get_running_loop().create_task(
                self.presence.tick(self._now()), name="ha-presence"
            )

    async def _try_acquire(self, now: float) -> None:
        """Standby: take the lease if it is free (then take over), else trim the journal."""
        if self.store_state == "lost" or now < self._acquire_after:
            await self._trim()
            return
        sent = self._now()
        epoch = await self.store.acquire(self.slot, self.node_id, self.config.lease)
        if epoch is None:
            held = await self.store.holder(self.slot)
            now = self._now()
            # the next try right when the holder's lease would lapse, not up to a poll later
            self._try_at = now + (held.expires_in + EXPIRY_MARGIN if held else 0.0)
            if self.prefetch is not None:  # and a look when the holder would be late
                self._try_at = min(self._try_at, self.prefetch.watch(held, now))
            await self._trim()
            return
        self._renew_due = self._now() + self.config.lease / 3
        self._lease_until = sent + self.config.lease
        await self._takeover(epoch)
        if self.mode == "active" and self.leads:
            await self._start_active()

    async def _start_active(self) -> None:
        """Active mode, once this node holds its own slot: the adoption of dead nodes and the
        facts shared with the others (``runtime/ha_active.py``), started once."""
        if self.active is not None:
            return
        from ivr_server.runtime.ha_active import ActiveMode

        active: _Active = ActiveMode(self)
        self.active = active
        await active.start()

    async def _trim(self) -> None:
        """Forget the journaled requests the leader committed (hot standby)."""
        if self.mode != "hot" or self.store_state == "lost":
            return
        streams = self.service.journal_streams()
        if streams:
            self.service.trim_journal(await self.store.marks(self.slot, streams))

    async def _takeover(self, epoch: int) -> None:
        """The lease is ours: rebuild the state from the store, replay what was never committed,
        lead (the module docstring, "Takeover")."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        slot = self.slot
        log.warning(
            "HA: node %s took the lease of %r (epoch %d): taking over", self.node_id, slot, epoch
        )
        persistence = self.persistence
        assert persistence is not None
        try:
            built = await self.prefetch.take() if self.prefetch is not None else None
            now = loop.time()
            waited = now - began
            if built is not None:
                replies = built.replies
                records = built.records
                loaded = built.load_seconds
                calls = persistence.install(built.prepared, now)
            else:
                stored = await self.store.load(slot)
                loaded = loop.time() - now
                now = loop.time()
                replies = split_off(stored, REPLY)
                records = len(stored)
                calls = persistence.restore(stored, now)
            # The calls taken over go to the collector's permanent generation, as the
            # configuration does (IvrServer.settle_heap): else the server's next young
            # collections walk all of them once, 0.2-0.3 s with 50,000 calls, right in the
            # takeover. Reference counting frees them when they end (they hold no cycle).
            gc.freeze()
            if not records:  # a new site (or a store restarted empty)
                self._initial = persistence.everything()  # this node's whole state is written
            restored = loop.time() - now
            self.service.bind_orphans(now)
            streams = self.service.journal_streams() if self.mode == "hot" else []
            marks = await self.store.marks(slot, streams) if streams else {}
        except BaseException:
            with contextlib.suppress(StoreError, OSError):
                await self.store.release(slot, self.node_id, epoch)
            raise
        server = self.server
        server.pause_input()  # what arrives from here waits until the journal is replayed
        try:
            await self._lead(slot, epoch, marks, replies)
        finally:
            server.resume_input()
        if not self.leads:
            log.error("HA: node %s fenced during its takeover of %r", self.node_id, slot)
            return
        await server.lead()
        took = loop.time() - began
        self.metrics.takeovers += 1
        self.metrics.takeover.observe(took)
        self.last_takeover = Takeover(
            took,
            time.time(),
            calls,
            self._last_replayed,
            slot,
            epoch,
            loaded,
            restored,
            records,
            built is not None,
            built.build_seconds if built is not None else 0.0,
            waited,
        )
        how = (
            f"loaded ahead in {loaded:.3f} s and built in {built.build_seconds:.3f} s, waited for "
            f"{waited:.3f} s, installed in {restored:.3f} s"
            if built is not None
            else f"loaded in {loaded:.3f} s, restored in {restored:.3f} s"
        )
        log.warning(
            "HA: node %s leads %r at epoch %d: %d calls restored, %d requests replayed in %.3f s "
            "(%d records %s)",
            self.node_id,
            slot,
            epoch,
            calls,
            self._last_replayed,
            took,
            records,
            how,
        )

    async def _lead(
        self, slot: str, epoch: int, marks: dict[str, int], replies: dict[str, bytes]
    ) -> None:
        """The takeover's second half, the IVR input paused: lead, let the premise links come
        up (their resynchronisation with the PBX's snapshots reported to the IVRs as the
        leader's), write the replies the old leader kept and may not have sent (the reply
        outbox), then replay the journal after the marks (G27: resync, then answer)."""
        now = asyncio.get_running_loop().time()
        self.epoch = epoch
        self.slots[slot] = epoch
        self._marks = dict(marks)
        self.role = "leader"
        self.metrics.role = 1
        self.metrics.epoch = epoch
        self._replay_due = True
        self.service.set_role("leader", now)
        self.keeps_replies = self._outbox and self.store_state == "ok"
        self.server.flush()  # what the takeover itself changed (the orphans bound) is written
        await self._keep_lease()  # (loading and restoring 50,000 calls take a second)
        if not self.leads:
            return
        await self.connect_links(min(LINK_WAIT, self.config.lease / 3))
        resent = self._resend(replies)
        if resent:
            log.warning(
                "HA: %d replies the old leader kept (committed, perhaps not sent) written again",
                resent,
            )
        service = self.service
        replayed = service.replay(marks, self._now(), REPLAY_SLICE)
        while service.replaying:  # tens of thousands: in slices, the lease renewed between
            self.server.flush()  # this slice's effects (no mark yet: the replay is not over)
            await self._keep_lease()
            if not self.leads:
                return  # fenced meanwhile (demoted: the journal and the replay are gone)
            replayed += service.replay_more(self._now(), REPLAY_SLICE)
        self._replay_due = False
        self.replayed += replayed
        self.metrics.replayed = self.replayed
        self._last_replayed = replayed
        self.server.flush()  # the replayed requests' effects committed, their replies held

    async def _keep_lease(self) -> None:
        """During a long takeover (the role loop waits for it): renew the lease when due, and
        let the store's answers and the timers run."""
        if self._now() >= self._renew_due:
            await self._renew(self._now())
        else:
            await asyncio.sleep(0)

    async def connect_links(self, timeout: float) -> None:
        """Bring the premise links up at a takeover and wait up to ``timeout`` for them (a
        method of its own: tests watch the takeover at this step, which the compiled
        ``IvrServer`` does not let them replace)."""
        await self.server.connect_links(timeout)

    async def _take_own_slot(self) -> None:
        """Active mode: this node's own slot, held from the start (its calls of an earlier run
        restored)."""
        sent = self._now()
        epoch = await self.store.acquire(self.slot, self.node_id, self.config.lease)
        if epoch is None:
            raise StoreError(
                f"[ha] node-id {self.node_id!r}: another live node holds that slot (two nodes "
                "with the same node-id?)"
            )
        self._renew_due = self._now() + self.config.lease / 3
        self._lease_until = sent + self.config.lease
        await self._takeover(epoch)
        await self._start_active()

    async def _renew(self, now: float) -> None:
        renewed = await self.store.renew(self.slot, self.node_id, self.epoch, self.config.lease)
        self._renew_due = now + self.config.lease / 3
        if renewed is not False:
            self._lease_until = now + self.config.lease
        if renewed is False:
            self._fenced(f"the lease of {self.slot!r} at epoch {self.epoch} is another's")
        elif renewed is None:
            log.warning(
                "HA: the store had lost slot %r, or is another incarnation (restarted empty or "
                "from an older snapshot, or failed over): writing the whole state back",
                self.slot,
            )
            self._queue.clear()
            self._queue.overflow = True
            if self.store_state == "ok":
                await self._resync()

    async def _resync(self) -> None:
        """Write the whole state (and every mark) back, deleting what the store has that this
        node no longer has."""
        persistence = self.persistence
        assert persistence is not None
        existing = await self.store.load(self.slot)
        self._queue.clear()  # older than this: everything queued meanwhile comes after it
        puts = persistence.everything()
        waiting = self._next  # sent after this: its snapshots are older, its deletes stand
        if waiting is not None:
            waiting.puts.clear()
            waiting.deletes.difference_update(puts)
        batch = Batch(self.slot, self.epoch, puts, set(existing) - set(puts), dict(self._marks))
        await self.store.apply(
            batch, replicas=self._replicas, wait_timeout=self.config.wait_timeout
        )
        self._queue.overflow = False
        log.info("HA: whole state written back to %s (%d records)", self.store_url, len(puts))

    # ------------------------------------------------------------------ store loss

    def _store_lost(self, exc: BaseException) -> None:
        if self.store_state == "lost" or self._stopping:
            return
        if self.leads and self._hold and self._now() >= self._lease_until:
            # Noticed only after this node's whole lease had passed since the store last
            # confirmed it: the node was paused or starved (SIGSTOP, a stalled VM) while its
            # commands waited, and another node may lead now. Serving on (replies released, a
            # FlowControl On) would answer what the new leader answers: demote, as if fenced.
            self._fenced(f"the store did not answer ({exc}) and the lease may have lapsed")
            return
        self.store_state = "lost"
        self.metrics.store_up = 0
        server = self.server
        waiting, self._next = self._next, None
        if waiting is not None:  # newer than the batches in flight, older than what follows
            self._queue.unsent = waiting
        self._count_queued()
        server.reply_gate = 0  # replies no longer wait for a store that does not answer
        self.keeps_replies = False  # nor are they kept (docs/ha.md §7)
        server.release_held(0)
        if self.config.on_store_loss == "pause":
            if not server.service.flow_control:
                self._paused = True
                server.service.set_flow_control(True)
            log.error(
                "HA: store %s lost (%s): FlowControl On (no new calls; the calls in progress go "
                "on, their changes queued up to %d records)",
                self.store_url,
                exc,
                self.config.max_queued,
            )
        else:
            log.error(
                "HA: ALARM: store %s lost (%s): serving on (on-store-loss = continue), changes "
                "queued up to %d records",
                self.store_url,
                exc,
                self.config.max_queued,
            )
        server.flush()

    async def _store_back(self) -> None:
        """The store answered again: write what was queued (or everything), lift the flow
        control."""
        if self.store_state != "lost":
            return
        if self.leads:
            queue = self._queue
            if queue.overflow:
                await self._resync()
            else:
                batch = queue.take()  # (turns meanwhile are queued after it, in later)
                if batch is not None:
                    batch.epoch = self.epoch
                    try:
                        await self.store.apply(
                            batch, replicas=self._replicas, wait_timeout=self.config.wait_timeout
                        )
                    except StoreUnavailable:
                        queue.failed = _merged(batch, queue.failed) if queue.failed else batch
                        raise
        else:
            self._acquire_after = self._now() + self.config.lease
        self.store_state = "ok"
        self.metrics.store_up = 1
        self.queued = 0
        self.metrics.queued_records = 0
        pending = self._queue.take()
        if pending is not None and self.leads:
            pending.epoch = self.epoch
            self._submit(pending)
        if self.leads:
            self.keeps_replies = self._outbox
        if self._paused:
            self._paused = False
            self.server.service.set_flow_control(False)
        log.warning(
            "HA: store %s is back%s",
            self.store_url,
            ": FlowControl Off" if self.config.on_store_loss == "pause" else "",
        )
        self.server.flush()

    # ------------------------------------------------------------------ fencing

    def _fenced(self, why: str) -> None:
        """Another node holds this node's slot: stop answering at once (module docstring)."""
        if not self.leads:
            return
        log.error(
            "HA: node %s fenced (%s): demoted to standby, IVR sessions closed", self.node_id, why
        )
        self.fenced_count += 1
        self.metrics.fenced = self.fenced_count
        self._demote()

    def _demote(self) -> None:
        server = self.server
        self._generation += 1
        self._inflight.clear()
        self._next = None
        self._replay_due = False
        self._drained.set()
        self._queue = _Queue()
        self.keeps_replies = False
        self._replies = {}
        self._kept = {}
        self._forget_unsent()
        self.role = "standby"
        self.metrics.role = 0
        self.slots.clear()
        self.epoch = 0
        self.metrics.epoch = 0
        server.reply_gate = 0
        server.drop_held()
        self.service.set_role("standby", self._now())
        if self.store_state == "lost":  # the store answers: it told us
            self.store_state = "ok"
            self.metrics.store_up = 1
        if self._paused:
            self._paused = False
            server.service.set_flow_control(False)
        self._acquire_after = self._now() + self.config.lease
        server.follow()

    # ------------------------------------------------------------------ helpers

    def flush(self) -> None:
        """Write out what the service queued (the turn's batch first)."""
        self.server.flush()

    def _now(self) -> float:
        return asyncio.get_running_loop().time()


def _reply_key(key: str) -> tuple[int, int, int, str]:
    """A kept reply's key ``reply:<epoch>:<n>:<index>:<stream>`` read: (epoch, number) is the
    order it was written in, ``index`` the stream's document after which it was made (a stream's
    name may hold ``:``)."""
    _, epoch, n, index, stream = key.split(":", 4)
    return int(epoch), int(n), int(index), stream


def _default_node_id(server: IvrServer) -> str:
    """The host name and the first IVR listen port (``[ha] node-id`` empty); with port 0 (any
    free port, tests), the process id instead."""
    host = socket.gethostname().split(".")[0] or "node"
    port = server.listen[0].port if server.listen else 0
    name = f"{host}-{port}" if port else f"{host}-pid{os.getpid()}"
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)[:64]
