"""High availability, the service's side: the node's role, driver streams, the hot standby's
journal, the leader's marks and the replay at takeover (issue 25, MODES-AND-HA §3.5).

Theory of operation. A node is ``single`` (``[ha] mode = "off"``: this module is not even built,
nothing is counted), ``leader`` (it holds the lease: it answers and its runtime writes the state)
or ``standby``. A hot-standby driver logs in to both nodes and sends every request to both
(PROTOCOL.md §8.1). Both nodes answer ``LoginReq`` and send ``FlowControl``; only the leader
answers the rest. So a standby handles ``LoginReq`` as usual (its context is *muted*:
``ServiceContext.send`` lets nothing else out), and keeps every other document of the session,
unanswered and without effect, in the stream's *journal*.

Driver streams. A logged-in session carries one stream, named at its first successful login
``"<ClientName>#<k>"``, k the lowest index no live session of that ClientName uses on this node:
the driver logs in to both nodes the same way, so both name its connections alike. The *index*
of a document on a stream is the count of documents the session received after that LoginReq
(``Session.documents_in - Session.stream_base``), the rejected ones (that did not decode)
included: both nodes receive the same bytes, so both count alike. A later LoginReq on the same
session keeps the stream and is counted like any document (both nodes handle it, neither
journals it).

Marks. After every turn the leader's runtime takes :meth:`HotStandby.take_marks` (the streams
whose index moved: the index of the last document handled, all of whose effects are in that
turn's batch) and writes them with the batch. A new stream is reported at 0 at once, and a stream
whose session closed too: a mark left in the store by an earlier session of the same name must
not trim the next one's journal. The standby reads the marks while polling and drops the journal
up to them (:meth:`HotStandby.trim`).

Alignment. A stream's indices mean the same on both nodes only if both connections logged in
together. When one connection was opened again alone (the old leader comes back as standby and
the driver logs in to it while its connection to the new leader goes on; or the leader's
connection broke and was opened again), the counts are offset and a replay could answer twice.
A standby notices the second case by its mark going down (the leader's stream started again;
but within :data:`FRESH_S` of its own stream's start, a mark going down is the leader resetting
one an earlier session left, and is taken): the stream is then *unaligned* until its session
closes; its journal is emptied at every trim and
nothing of it is replayed (what was in flight at a takeover is then lost, as with the original).
In the first case the leader's marks are far ahead of the standby's count: everything is trimmed
and nothing is replayed, which is as safe. A mark ahead by less than :data:`AHEAD_LIMIT` is
taken as the leader being a little faster; a mark ahead of what a standby received when it takes
over means the rest of those documents were committed and will arrive late: they are handled
again (a duplicate answer, in a window of lease + poll seconds after the leader died: not worth
the risk of dropping an offset stream's new requests).

Takeover. The runtime restores the state from the store, :meth:`bind_orphans` gives the restored
calls (which have no session) to a live session of their IVR, and :meth:`replay` re-handles, in
the order they arrived, the journaled documents after each stream's mark, through the normal
path, on the same sessions: each request the dead leader never committed is answered once, by
this node.

Demotion. A leader the store fences goes back to standby: muted at once, its calls dropped
without a word (``CallManager.clear_silently``); the runtime closes the IVR sessions.
"""

from __future__ import annotations

import heapq
import logging
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from ivr_server.service.context import ServiceContext, log_ctx
from ivr_server.service.sessions import Session
from ivr_server.wire import DecodeError, Message
from ivr_server.wire import messages as m

__all__ = [
    "AHEAD_LIMIT",
    "FRESH_S",
    "JOURNAL_LIMIT",
    "LAST_LIMIT",
    "Entry",
    "HotStandby",
    "JournalCounters",
    "Role",
]

log = logging.getLogger("ivr_server.service.standby")

Role = Literal["single", "leader", "standby"]
"""``single``: no high availability (``[ha] mode = "off"``); ``leader``: holds the lease,
answers; ``standby``: answers only ``LoginReq`` (and ``FlowControl``), keeps the rest."""

ROLES: Final = ("single", "leader", "standby")

AHEAD_LIMIT: Final = 1000
"""A leader's mark ahead of the standby's count by more than this is not taken as its latest
aligned mark (the leader is that far ahead only when the standby's connection is offset, or
when it read a mark an earlier session of the stream's name left)."""

FRESH_S: Final = 5.0
"""A mark going down this soon after a stream started on the standby is taken as the leader
resetting a mark an earlier session of the name left in the store (after both nodes restarted,
say), not as the leader's stream starting again: a driver opens a broken connection again
after ``time_recon_is`` (2 s) at the earliest, and logs in to both nodes together at start."""

LAST_LIMIT: Final = 100_000
"""Calls per stream whose latest document index a standby remembers (``received_since``)."""

JOURNAL_LIMIT: Final = 100_000
"""Most documents one stream's journal keeps; past it the oldest go (counted, and logged once per
stream until it falls back below). A standby whose leader commits nothing for that long has lost
the journal's point anyway: at the default 0.2 s poll it means 500,000 requests a second."""

APPLIED_BY_STANDBY: Final = frozenset({m.LoginReq, m.DialOutRegistry})
"""Handled by a standby too: ``LoginReq`` (answered: both nodes answer it, PROTOCOL.md §8.1) and
``DialOutRegistry`` (the session's registrations are the session's, not in the store: applied
without an answer, and journaled as well so that an uncommitted one is answered at takeover;
applying it twice changes nothing)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One document a standby kept: its index on the stream, its order of arrival on the node,
    its session, and the document (a :class:`DecodeError` for one that did not decode)."""

    index: int
    seq: int
    session: Session
    call_id: str | None
    message: Message | DecodeError


@dataclass(slots=True)
class JournalCounters:
    """What the journals counted (for the runtime's metrics and ``/api/v1/ha``)."""

    journaled: int = 0
    """Documents kept by the standby."""
    trimmed: int = 0
    """Kept documents dropped because the leader's marks say it committed them."""
    overflowed: int = 0
    """Kept documents dropped because their journal was full (:data:`JOURNAL_LIMIT`)."""
    closed: int = 0
    """Kept documents dropped because their session closed."""
    replayed: int = 0
    """Documents re-handled at takeovers (``ha_replayed_requests_total``)."""
    unaligned: int = 0
    """Kept documents dropped because their stream's indices do not match the leader's (see
    the module docstring, "Alignment")."""


class _Journal:
    """The documents a standby kept for one stream, oldest first."""

    __slots__ = ("aligned", "entries", "full", "mark", "session", "started")

    def __init__(self, session: Session, started: float) -> None:
        self.session = session
        self.started = started
        """When the stream started on this node (its login)."""
        self.entries: deque[Entry] = deque()
        self.full = False
        """Overflowing (logged once until it drains)."""
        self.mark = 0
        """The latest mark read that was not too far ahead (:data:`AHEAD_LIMIT`)."""
        self.aligned = True
        """``False`` once the leader's mark went down: its stream started again, this one
        did not (the module docstring, "Alignment")."""


class HotStandby:
    """The role, the streams, the journals and the marks of one node (see the module
    docstring)."""

    def __init__(self, ctx: ServiceContext, limit: int = JOURNAL_LIMIT) -> None:
        self.ctx = ctx
        self.role: Role = "single"
        """``single`` until the service's first ``set_role``."""
        self.limit = limit
        self.counters = JournalCounters()
        self.streams: dict[str, Session] = {}
        """Stream name -> the live session carrying it."""
        self._journals: dict[str, _Journal] = {}
        self._reported: dict[str, int] = {}
        """Leader: the mark last given per stream (:meth:`take_marks`)."""
        self._reset: set[str] = set()
        """Leader: streams whose session closed, reported at 0 once."""
        self._seq = 0
        self._started: dict[str, float] = {}
        """Stream -> when it started on this node (``ctx.now`` at its login)."""
        self._replaying: Iterator[Entry] | None = None
        """The rest of a replay under way (:meth:`replay` with a limit)."""
        self._last: dict[str, dict[str, int]] = {}
        """Standby: stream -> CallId -> index of the latest document of that call received (at
        most :data:`LAST_LIMIT` calls per stream, the least recent forgotten)."""

    # ------------------------------------------------------------------ roles

    def set_role(self, role: Role) -> None:
        """Become ``leader`` or ``standby`` (the service does the rest: ``IvrService.set_role``)."""
        self.role = role
        self.ctx.muted = role == "standby"
        if role == "standby":
            self._reported.clear()
            self._reset.clear()
            self._replaying = None  # (fenced mid-replay: the new leader replays)
            self._last.clear()

    # ------------------------------------------------------------------ streams

    def logged_in(self, session: Session) -> None:
        """After a ``LoginReq`` was handled: a session's first successful login names its
        stream; its documents are counted from here."""
        login = session.login
        if login is None or session.stream is not None:
            return
        name = login.client_name
        k = 0
        while f"{name}#{k}" in self.streams:
            k += 1
        stream = session.stream = f"{name}#{k}"
        session.stream_base = session.documents_in
        self.streams[stream] = session
        self._started[stream] = self.ctx.now
        self._reset.discard(stream)
        self._reported.pop(stream, None)  # reported at 0 by the next take_marks

    def closed(self, session: Session) -> None:
        """The session closed: its stream is free (named again by the next login), what it kept
        goes (replaying it on no session would answer nobody)."""
        stream = session.stream
        if stream is None or self.streams.get(stream) is not session:
            return
        del self.streams[stream]
        self._started.pop(stream, None)
        self._last.pop(stream, None)
        journal = self._journals.pop(stream, None)
        if journal is not None and journal.entries:
            self.counters.closed += len(journal.entries)
        if self.role == "leader":
            self._reported.pop(stream, None)
            self._reset.add(stream)

    @staticmethod
    def index(session: Session) -> int:
        """The index on its stream of the document ``session`` received last."""
        return session.documents_in - session.stream_base

    # ------------------------------------------------------------------ standby

    def intercepts(self, session: Session, call_id: str | None, message: Message) -> bool:
        """Called for every document received with high availability on, before it is handled:
        ``True`` when it must not be handled (a standby keeps it)."""
        if self.role != "standby":
            return False
        if type(message) in APPLIED_BY_STANDBY:
            if type(message) is not m.LoginReq:
                self._keep(session, call_id, message)
            return False
        self._keep(session, call_id, message)
        return True

    def intercepts_rejected(self, session: Session, error: DecodeError) -> bool:
        """As :meth:`intercepts`, for a document that did not decode (its answer is an error
        the leader sends; a standby keeps it to answer it if it takes over first)."""
        if self.role != "standby":
            return False
        self._keep(session, None, error)
        return True

    def _journal(self, stream: str) -> _Journal | None:
        """The journal of a live stream, made on first use."""
        journal = self._journals.get(stream)
        if journal is None:
            session = self.streams.get(stream)
            if session is None:
                return None
            journal = self._journals[stream] = _Journal(session, self._started.get(stream, 0.0))
        return journal

    def _keep(self, session: Session, call_id: str | None, message: Message | DecodeError) -> None:
        stream = session.stream
        if stream is None:
            return  # before the login: the leader refuses it, nothing to replay
        journal = self._journal(stream)
        if journal is None:
            return
        entries = journal.entries
        if len(entries) >= self.limit:
            entries.popleft()
            self.counters.overflowed += 1
            if not journal.full:
                journal.full = True
                log.warning(
                    "hot standby: the journal of stream %s is full (%d documents, no mark from "
                    "the leader covers them): the oldest are dropped, and will not be replayed",
                    stream,
                    self.limit,
                    extra=log_ctx(session, None),
                )
        self._seq += 1
        index = self.index(session)
        entries.append(Entry(index, self._seq, session, call_id, message))
        self.counters.journaled += 1
        if call_id is not None:
            last = self._last.get(stream)
            if last is None:
                last = self._last[stream] = {}
            last.pop(call_id, None)  # (to the end: the least recent first)
            last[call_id] = index
            if len(last) > LAST_LIMIT:
                del last[next(iter(last))]

    def received_since(self, stream: str, call_id: str, index: int) -> bool:
        """Has this node, as standby, received a document of ``call_id`` on ``stream`` with an
        index above ``index``? (A takeover leaves out a kept reply the driver had: see
        ``runtime/ha.py``, ``HaNode._unanswered``.)"""
        last = self._last.get(stream)
        return last is not None and last.get(call_id, 0) > index

    def trim(self, marks: Mapping[str, int]) -> int:
        """Drop what the leader committed: every kept document at or below its stream's mark;
        how many were dropped. A mark lower than the one before says the leader's stream
        started again and this one did not: the stream is unaligned from then on."""
        dropped = unaligned = 0
        for stream, mark in marks.items():
            journal = self._journal(stream)
            if journal is None:
                continue
            entries = journal.entries
            self._check_alignment(stream, journal, mark)
            if not journal.aligned:
                unaligned += len(entries)
                entries.clear()
                continue
            if mark <= self.index(journal.session) + AHEAD_LIMIT:
                journal.mark = mark
            while entries and entries[0].index <= mark:
                entries.popleft()
                dropped += 1
            if journal.full and len(entries) < self.limit // 2:
                journal.full = False
        self.counters.trimmed += dropped
        self.counters.unaligned += unaligned
        return dropped + unaligned

    def _check_alignment(self, stream: str, journal: _Journal, mark: int) -> None:
        """A mark lower than the stream's latest: within :data:`FRESH_S` of the stream's start
        here, the latest was one an earlier session of the name left (the leader has just reset
        it); later, the leader's stream started again and this one did not."""
        if not journal.aligned or mark >= journal.mark:
            return
        if self.ctx.now - journal.started < FRESH_S:
            journal.mark = mark
            return
        journal.aligned = False
        log.warning(
            "hot standby: the leader's stream %s started again (mark %d, was %d) and this "
            "node's did not: its requests are not replayed at a takeover until the driver's "
            "connection here is opened again",
            stream,
            mark,
            journal.mark,
            extra=log_ctx(journal.session, None),
        )

    def journal_streams(self) -> dict[str, int]:
        """Standby: every live stream -> documents kept (the streams whose marks to read)."""
        if self.role != "standby":
            return {stream: len(j.entries) for stream, j in self._journals.items()}
        journals = self._journals
        return {
            stream: len(journals[stream].entries) if stream in journals else 0
            for stream in self.streams
        }

    # ------------------------------------------------------------------ leader

    def take_marks(self) -> dict[str, int]:
        """Stream -> index of its last document handled, for the streams whose index moved
        since the last call (new streams and closed ones at 0): the turn's marks."""
        marks: dict[str, int] = {}
        if self._reset:
            for stream in self._reset:
                marks[stream] = 0
            self._reset.clear()
        reported = self._reported
        for stream, session in self.streams.items():
            n = session.documents_in - session.stream_base
            if reported.get(stream) != n:
                reported[stream] = marks[stream] = n
        return marks

    # ------------------------------------------------------------------ takeover

    def replay(
        self,
        marks: Mapping[str, int],
        handle: Callable[[Session, str | None, Message], None],
        handle_rejected: Callable[[Session, DecodeError], None],
        limit: int | None = None,
    ) -> int:
        """Re-handle the kept documents after each stream's mark, in their order of arrival
        across streams, on their sessions (``handle``: the service's dispatch, without counting
        them again); how many. The journals are emptied; an unaligned stream's documents are
        dropped. The role must be ``leader`` already (muted, the answers would not leave).
        With ``limit``, at most that many now: :meth:`replay_more` goes on (:attr:`replaying`),
        so that a takeover with tens of thousands to replay can renew its lease between
        slices."""
        pending: list[list[Entry]] = []
        for stream, journal in self._journals.items():
            session = journal.session
            if self.streams.get(stream) is not session:
                continue  # the session closed meanwhile
            mark = marks.get(stream, 0)
            self._check_alignment(stream, journal, mark)
            if not journal.aligned:
                self.counters.unaligned += len(journal.entries)
                continue
            pending.append([entry for entry in journal.entries if entry.index > mark])
        self._journals.clear()
        self._replaying = heapq.merge(*pending, key=_seq)
        return self.replay_more(handle, handle_rejected, limit)

    @property
    def replaying(self) -> bool:
        """Is a replay under way (:meth:`replay` with a ``limit``)?"""
        return self._replaying is not None

    def replay_more(
        self,
        handle: Callable[[Session, str | None, Message], None],
        handle_rejected: Callable[[Session, DecodeError], None],
        limit: int | None = None,
    ) -> int:
        """The replay's next (at most ``limit``) documents; how many were handled."""
        entries = self._replaying
        if entries is None:
            return 0
        count = 0
        for entry in entries:
            session = entry.session
            if session.stream is None or self.streams.get(session.stream) is not session:
                continue  # closed by an earlier replayed document's doing
            if isinstance(entry.message, DecodeError):
                handle_rejected(session, entry.message)
            else:
                handle(session, entry.call_id, entry.message)
            count += 1
            if limit is not None and count >= limit:
                break
        else:
            self._replaying = None
        self.counters.replayed += count
        return count


def _seq(entry: Entry) -> int:
    return entry.seq
