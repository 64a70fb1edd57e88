"""The asyncio adapter of one IVR connection: socket bytes <-> IvrLink <-> IvrService.

The only event-loop code of a session (aioquic's ``asyncio/protocol.py`` pattern): bytes in are
fed to the link engine with ``loop.time()``; its events go to the service; once every connection
readable in this turn of the event loop has read, everything the service queued is written out
(``ConnectionHost.flush_reads``) and one timer handle is re-armed to the link's next deadline. A peer
that does not read makes its transport buffer grow: reading from it pauses above the high-water
mark, and past ``write_buffer_limit`` the connection is aborted so that nobody else is slowed
down.

Fairness: one read is handled :data:`TURN_FRAMES` frames or :data:`TURN_BYTES` bytes at a time.
When a read brings more, the rest (and whatever that connection reads meanwhile) is handled in
the following turns of the event loop, one batch per turn (``ConnectionHost.end_turn``), after the
other connections' reads; reading from it pauses while more than :data:`HOLD_BYTES` wait. A
connection that floods the server slows itself, not the others.

Login timeout: a connection that has sent no document the server could read within
``server.login-timeout`` of its opening (no ``LoginReq``; in Network mode, where logging in is
optional, no request either) gets a GLI Error frame (code 5, not authorised) and is closed, so
that idle connections cannot hold places under the caps for ever. One timer handle per
connection, armed when it opens and looked at once when it fires (the service's count of the
session's documents less those rejected): nothing is added to the handling of a document.

Making room: when the IVR connections are at ``server.max-connections`` and one more arrives
from an address under its own cap, the oldest connection that has been open
:data:`IDLE_AFTER` seconds or more without sending anything readable is closed for it (GLI
Error frame code 7, as a refusal) instead of refusing the newcomer. Idle connections from many
addresses therefore cannot keep an IVR from logging in until their login timeout; a real driver
sends its ``LoginReq`` at once and is never taken for idle. The candidates are kept in the order
they opened (``ConnectionHost.admit``); a connection found active is dropped from them, so the
search costs each connection at most one look.

:class:`ConnectionHost` is what the connections share: the open ones by session, the turn's
reads and held batches, the service's timer, the connection cap and the client list.
``IvrServer`` (``runtime/app.py``) is one; it lives here, beside the adapter, so that the two call
each other directly and this module imports nothing of ``app.py``.

Held replies (high availability, ``[ha] durability = primary | replica``; docs/ha.md): before a
turn's output is written, :attr:`ConnectionHost.writer` (``runtime/ha.py``) sends the turn's
changes to the shared store as one batch and sets :attr:`ConnectionHost.reply_gate` to that batch's
number while it is unacknowledged. Whatever a connection would write meanwhile is kept, in order,
until the batch it waits for is acknowledged (:meth:`ConnectionHost.release_held`): a reply never
leaves before its effects are in the store, so a standby that takes over replays exactly the
requests that were never answered. With ``mode = "off"`` there is no writer and the gate stays 0:
one integer test per write.

Reply outbox (hot standby, ``primary | replica``): a batch the store applied may have its replies
still held when the leader dies (its acknowledgement unread, a replica's ``WAIT`` pending); its
requests are committed, so the standby does not replay them. So while
:attr:`TurnWriter.keeps_replies`, the turn's output to each driver stream is taken from the link
before the batch is sent (:meth:`IvrLinkProtocol.stage`) and kept *in* the batch. When its batch
is acknowledged, the writer writes the output to the drivers, then, in the same callback, the
deletion of what left to the store's connection (:meth:`ConnectionHost.held_keys`); a new leader
writes what is still kept (:meth:`IvrLinkProtocol.resend`). So a committed reply is never lost
with the leader, and comes twice only if the leader dies between those two writes
(docs/ha.md §5).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import struct
import time
from typing import Final, Protocol, cast

from ivr_server.config import ServerConfig
from ivr_server.runtime.access import ClientList
from ivr_server.runtime.limits import ConnectionGate, connection_cap, descriptor_limit
from ivr_server.service import IvrService, Session
from ivr_server.session import (
    DocumentReceived,
    DocumentRejected,
    IvrLink,
    LinkClosed,
    LinkEvent,
    LinkState,
    Role,
)
from ivr_server.wire import GliErrorCode, encode_error_frame

__all__ = [
    "FLUSH_AFTER_BYTES",
    "HOLD_BYTES",
    "TURN_BUDGET",
    "TURN_BYTES",
    "TURN_FRAMES",
    "ConnectionHost",
    "IvrLinkProtocol",
    "TurnWriter",
]

log = logging.getLogger("ivr_server.runtime")

_HIGH_WATER: Final = 256 * 1024
"""Transport buffer size above which we stop reading from the peer until it catches up."""
TURN_FRAMES: Final = 64
"""Most frames of one connection handled in one turn of the event loop."""
TURN_BYTES: Final = 8 * 1024
"""Most bytes of frames of one connection handled in one turn of the event loop (a larger frame
is handled alone in its turn)."""
HOLD_BYTES: Final = 64 * 1024
"""Bytes read and not yet handled above which reading from a connection pauses (TCP then slows
the sender down) until they are handled down to it."""
FLUSH_AFTER_BYTES: Final = 64 * 1024
"""Bytes read in one turn of the event loop after which its replies are written without waiting
for the turn's other connections (``ConnectionHost.after_read``)."""
TURN_BUDGET: Final = 64 * 1024
"""High availability only (a writer): bytes of frames handled per turn of the event loop across
all connections. Past it, what connections read waits, in order, for the next turns
(``ConnectionHost.end_turn``), so that timers run: a burst of 50,000 ``NewCall`` from 200
sessions made turns of 0.6-2.7 s (each connection's 64 frames), and the lease renewal, a few
turns from its timer to the store, went out seconds late (docs/performance.md §13)."""
IDLE_AFTER: Final = 2.0
"""Seconds without a readable document after which a connection may be closed to make room
for a new one when the IVR connections are at their cap (see the module docstring)."""
SIOCOUTQNSD: Final = 0x894B
"""Linux ``ioctl``: bytes of a TCP socket's send queue not yet sent (``linux/sockios.h``)."""
_SERVER_FULL: Final = encode_error_frame(GliErrorCode.TOO_MANY_CONNECTIONS)
"""What a connection over the cap gets before it is closed."""
# Final: the compiled build reads it from a C variable, not from the module's dict per request.
perf_counter: Final = time.perf_counter


class TurnWriter(Protocol):
    """What commits a turn's state changes before its output is written (``runtime/ha.py``)."""

    keeps_replies: bool
    """Hot standby's reply outbox is on (leader, ``durability = primary | replica``, store up):
    each turn's output to a driver stream is handed to :meth:`keep_reply` before
    :meth:`commit_turn` (the module docstring, "Reply outbox")."""

    def commit_turn(self) -> None:
        """Send what changed since the last call as one batch (when this node writes); set
        :attr:`ConnectionHost.reply_gate` while replies must wait for it."""
        ...

    def keep_reply(self, stream: str, index: int, data: bytes) -> str:
        """Keep ``data``, a turn's output to driver stream ``stream`` after the stream's
        document ``index`` was handled, with the turn's batch; the key it is kept under."""
        ...


class IvrLinkProtocol(asyncio.Protocol):
    """One accepted IVR connection."""

    def __init__(self, server: ConnectionHost) -> None:
        self.server = server
        self.service: IvrService = server.service
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.link: IvrLink | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closing = False
        self._held = False
        """Frames already read wait for the next turns (new bytes join them)."""
        self._backlog_paused = False
        """Reading is paused because more than HOLD_BYTES wait."""
        self._eof = False
        """The peer's end of file came while frames waited: close once they are answered."""
        self._write_paused = False
        """Reading is paused because the peer does not read what we write."""
        self._queued = False
        """In the server's list of connections to give a batch in the next turn."""
        self._resumed = False
        """The last batch was handed out in this turn: a read in this turn waits for the next."""
        self._login_timer: asyncio.TimerHandle | None = None
        """Fires at ``server.login-timeout`` after the connection opened (:meth:`_login_due`)."""
        self._rejected = 0
        """Documents received that did not decode (the service counts them in the session's
        ``documents_in`` too)."""
        self._out: list[tuple[int, bytes, tuple[str, ...]]] = []
        """Output held until the store acknowledges the batch numbered with it (HA, the module
        docstring, "Held replies"), oldest first."""
        self._close_held = False
        """The link closed (or the peer's end of file waits) while output was held: close the
        transport once it is written."""
        self._staged: list[tuple[str, bytes]] = []
        """This turn's output taken from the link for the reply outbox (:meth:`stage`), with the
        key it is kept under, to be written (or held) by :meth:`flush`."""

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        peername = transport.get_extra_info("peername")
        host, port = (str(peername[0]), int(peername[1])) if peername else ("?", 0)
        peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not self.server.admit(self, transport, host, peer):
            self._closing = True  # over the connection cap: told, closed (ConnectionHost.admit)
            return
        opts = self.server.config.server
        now = self.loop.time()
        link = IvrLink(
            Role.SERVER,
            now=now,
            keep_alive_interval=opts.keep_alive_interval if opts.keep_alive_interval > 0 else None,
            keep_alive_tries=opts.keep_alive_tries,
            malformed_limit=opts.malformed_limit,
            malformed_window=opts.malformed_window,
            frame_timeout=self.server.frame_timeout,
            turn_frames=TURN_FRAMES,
            turn_bytes=TURN_BYTES,
        )
        self.link = link
        if not self.server.client_allowed(host, port):
            log.warning("connection from %s refused: not in client-list", peer)
            link.refuse(GliErrorCode.NOT_AUTHORISED, "client not authorised")
            transport.write(link.data_to_send())
            self._closing = True
            transport.close()
            return
        self.session = self.service.open_session(peer, link, now)
        self.server.protocols[self.session.id] = self
        self.server.fresh[self] = None
        if opts.login_timeout > 0:
            self._login_timer = self.loop.call_at(now + opts.login_timeout, self._login_due)
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        link, session = self.link, self.session
        if link is None or session is None or self._closing:
            return
        server = self.server
        if (
            self._held
            or self._resumed
            or server.input_paused
            or (server.turn_spent >= TURN_BUDGET and server.writer is not None)
        ):
            # frames of this connection wait, or it had its batch in this turn already, or the
            # server reads nothing now (an HA takeover), or (HA) this turn's budget is spent:
            # these bytes wait for the next turns
            self._resumed = False
            link.buffer(data)
            self._hold()
            return
        now = self.loop.time()
        self._handle(link.receive_data(data, now), session, now)
        if link.backlogged:
            self._hold()
        self.server.after_read(self, len(data))  # written once every readable one has read

    def receive_more(self) -> None:
        """Handle the next batch of frames held back from earlier reads (``ConnectionHost.end_turn``,
        once per turn while :meth:`_hold` holds them); resume reading once few are left."""
        self._queued = False
        link, session, transport = self.link, self.session, self.transport
        if link is None or session is None or transport is None or self._closing:
            return
        if transport.is_closing():
            return
        if self._write_paused:  # the peer does not read: no more work for it until it does
            return  # (resume_writing queues it again)
        if self.server.input_paused:  # handled once the server reads again (resume_input)
            self.server.parked[self] = None
            return
        now = self.loop.time()
        before = link.buffered
        self._handle(link.receive_more(now), session, now)
        if link.backlogged:
            self._queue()
        else:
            self._held = False
            self._resumed = True  # (a read later in this turn waits for the next one)
        if self._backlog_paused and link.buffered <= HOLD_BYTES:
            self._backlog_paused = False
            if not self._write_paused and not self._eof and link.state is LinkState.OPEN:
                transport.resume_reading()
        self.server.after_read(self, before - link.buffered)

    def _hold(self) -> None:
        """Hand the frames already read out a batch per turn; stop reading while more than
        :data:`HOLD_BYTES` of them wait."""
        self._held = True
        link, transport = self.link, self.transport
        if (
            not self._backlog_paused
            and link is not None
            and transport is not None
            and link.buffered > HOLD_BYTES
        ):
            self._backlog_paused = True
            if not self._write_paused:
                transport.pause_reading()
        self._queue()

    def _queue(self) -> None:
        if not self._queued:
            self._queued = True
            self.server.hold(self)

    def _handle(self, events: list[LinkEvent], session: Session, now: float) -> None:
        service = self.service
        metrics = service.metrics
        latency = metrics.request_latency
        for event in events:
            if type(event) is DocumentReceived:
                started = perf_counter()
                message = event.message
                service.handle(session, event.call_id, message, now)
                histogram = latency.get(message.tag)
                if histogram is not None:
                    histogram.observe(perf_counter() - started)
                else:
                    metrics.observe_request(message.tag, perf_counter() - started)
            elif type(event) is DocumentRejected:
                self._rejected += 1
                service.handle_rejected(session, event.error, now)
            elif type(event) is LinkClosed:
                log.info("session %d: %s", session.id, event.reason)

    def finish_read(self) -> None:
        """After the service's output is written (``ConnectionHost.flush_reads``): the link's own
        output (keep-alive responses, GLI Error frames), and its timer re-armed; the connection
        closed if the peer's end of file waited for its last frames to be answered."""
        self.flush()
        if self._eof and not self._held and self.transport is not None and not self._closing:
            if self._out:
                self._close_held = True
            else:
                self.transport.close()
        self._arm_timer()

    def eof_received(self) -> bool | None:
        if self._held:  # frames before the end of file are still to be answered: close after
            self._eof = True
            return True
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None
        self._closing = True
        self._out.clear()
        self._staged.clear()
        self.server.waiting.pop(self, None)
        self.server.fresh.pop(self, None)
        self.server.release(self)
        if self.session is not None:
            self.server.protocols.pop(self.session.id, None)
            self.service.close_session(
                self.session, str(exc) if exc else "connection closed", self.loop.time()
            )
            self.server.flush()

    def pause_writing(self) -> None:
        self._write_paused = True
        if self.transport is not None and not self._closing and not self._backlog_paused:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self.transport is None or self._closing:
            return
        if not self._backlog_paused and not self._eof:
            self.transport.resume_reading()
        if self._held:
            self._queue()  # handle what is held back again, from the next turn

    # ------------------------------------------------------------------ output and timers

    def stage(self, writer: TurnWriter) -> None:
        """The reply outbox (the module docstring): take the turn's output of a driver stream
        from the link and have ``writer`` keep it with the turn's batch; :meth:`flush` writes it
        (or holds it) next. The output of a login's turn (nothing handled after the login yet:
        its LoginResp and FlowControl, which both nodes send anyway) is not kept."""
        link, session = self.link, self.session
        if link is None or session is None or self._closing:
            return
        stream = session.stream
        if stream is None or session.documents_in == session.stream_base:
            return
        data = link.data_to_send()
        if data:
            index = session.documents_in - session.stream_base
            self._staged.append((writer.keep_reply(stream, index, data), data))

    def flush(self) -> None:
        """Write what the link queued; enforce the write-buffer bound; close a closed link.
        While a batch of state changes is unacknowledged (:attr:`ConnectionHost.reply_gate`), keep it
        instead, behind what is already held (the module docstring, "Held replies")."""
        transport, link = self.transport, self.link
        if transport is None or link is None or self._closing:
            return
        data = link.data_to_send()
        keys: tuple[str, ...] = ()
        staged = self._staged
        if staged:
            keys = tuple([key for key, _ in staged])
            data = b"".join([part for _, part in staged]) + data
            staged.clear()
        gate = self.server.reply_gate
        if gate:
            closed = link.state is LinkState.CLOSED
            if data or closed:
                self.server.waiting[self] = None  # (kept where it was if already waiting)
                if data:
                    self._out.append((gate, data, keys))
                if closed:
                    self._close_held = True
            return
        if self._out:
            self.release_held(gate)
        if data and not self._write(transport, data):
            return
        if link.state is LinkState.CLOSED:
            self._closing = True
            transport.close()

    def can_write(self) -> bool:
        """Is this connection open for output?"""
        transport = self.transport
        return transport is not None and not self._closing and not transport.is_closing()

    def resend(self, data: bytes) -> bool:
        """Write output an earlier leader kept for this connection's stream and may not have
        written (an HA takeover, ``runtime/ha.py``); ``False`` if this connection cannot."""
        transport = self.transport
        if transport is None or not self.can_write():
            return False
        return self._write(transport, data)

    def _write(self, transport: asyncio.Transport, data: bytes) -> bool:
        """Write ``data``; ``False`` if the connection was aborted for not reading."""
        transport.write(data)
        if transport.get_write_buffer_size() > self.server.config.server.write_buffer_limit:
            log.warning(
                "session %s: peer does not read (%d bytes queued): closing",
                self.session.id if self.session else "?",
                transport.get_write_buffer_size(),
            )
            self._closing = True
            transport.abort()
            return False
        return True

    def all_sent(self) -> bool:
        """Has everything written to this connection left this host (nothing in the transport's
        buffer, nothing unsent in the kernel's queue)? A process killed with unread input resets
        its connections, and the kernel then drops what it had not sent: the reply outbox
        deletes its copy of a reply only once this is true (``runtime/ha.py``). ``True`` for a
        closed connection (nothing more will leave) and where the kernel does not say."""
        transport = self.transport
        if transport is None or self._closing:
            return True
        if transport.get_write_buffer_size():
            return False
        sock = transport.get_extra_info("socket")
        if sock is None:
            return True
        try:
            queued = fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0")
        except (OSError, ValueError):
            return True
        return not struct.unpack("i", queued)[0]

    def held_keys(self, acked: int) -> list[str]:
        """The outbox keys of the held output :meth:`release_held` would write for ``acked``."""
        keys: list[str] = []
        for seq, _, kept in self._out:
            if acked and seq > acked:
                break
            keys.extend(kept)
        return keys

    def release_held(self, acked: int) -> None:
        """Write the held output whose batch is acknowledged (numbered ``acked`` or lower; 0:
        everything held); close the connection if its link closed meanwhile."""
        out, transport = self._out, self.transport
        if transport is None or self._closing:
            out.clear()
            return
        taken = 0
        for seq, data, _ in out:
            if acked and seq > acked:
                break
            taken += 1
            if not self._write(transport, data):
                out.clear()
                return
        del out[:taken]
        if not out and self._close_held:
            self._close_held = False
            self._closing = True
            transport.close()

    def drop_held(self) -> None:
        """Forget the held output (the node was fenced: another answers these requests)."""
        self._out.clear()
        self._close_held = False

    def _arm_timer(self) -> None:
        """Make sure the timer fires no later than the link's next deadline.

        Lazy: every read moves the keep-alive deadline later, and re-arming an event-loop timer on
        each read costs more than the read's own work. So the timer is only moved *earlier*; one
        that fires before the deadline finds nothing due (``handle_timer`` checks) and is re-armed.
        """
        link = self.link
        if link is None or self._closing:
            self._cancel_timer()
            return
        deadline = link.next_deadline()
        if deadline is None:
            self._cancel_timer()
        elif self._timer_at is None or deadline < self._timer_at:
            self._cancel_timer()
            self._timer = self.loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_at = None

    def _login_due(self) -> None:
        """``server.login-timeout`` after the connection opened: close it unless it logged in or
        sent a document the server could read (Network mode needs no login)."""
        self._login_timer = None
        self.server.fresh.pop(self, None)
        link, session = self.link, self.session
        if link is None or session is None or self._closing:
            return
        if self.active:
            return
        timeout = self.server.config.server.login_timeout
        event = link.refuse(
            GliErrorCode.NOT_AUTHORISED,
            f"no login nor any readable document within {timeout:g} s (server.login-timeout)",
        )
        log.info("session %d from %s: %s", session.id, session.peer, event.reason)
        self.flush()

    @property
    def active(self) -> bool:
        """Has it logged in, or sent a document the server could read?"""
        session = self.session
        return session is not None and (
            session.login is not None or session.documents_in > self._rejected
        )

    def make_room(self) -> None:
        """Close this idle connection for a new one (the IVR connections are at their cap):
        GLI Error frame code 7, and its place is free at once."""
        link, session = self.link, self.session
        if link is not None and session is not None:
            event = link.refuse(
                GliErrorCode.TOO_MANY_CONNECTIONS,
                "closed to make room for a new connection: the IVR connections are at their cap "
                "and this one has sent nothing readable",
            )
            log.info("session %d from %s: %s", session.id, session.peer, event.reason)
        self.flush()
        self.server.release(self)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        link, session = self.link, self.session
        if link is None or session is None or self._closing:
            return
        for event in link.handle_timer(self.loop.time()):
            if type(event) is LinkClosed:
                log.info("session %d: %s", session.id, event.reason)
        self.flush()
        self._arm_timer()


class ConnectionHost:
    """What the IVR connections of a server share (``IvrServer`` is one): the open ones by
    session, the turn's reads and held batches, the service's timer, the connection cap and the
    client list."""

    def __init__(
        self, config: ServerConfig, service: IvrService, frame_timeout: float | None
    ) -> None:
        self.config = config
        self.service = service
        self.frame_timeout = frame_timeout
        """Longest wait for the rest of a partial GLI frame before the link is closed."""
        self.protocols: dict[int, IvrLinkProtocol] = {}
        """The open connections with a session, by session id."""
        self.clients = ClientList(config.server.client_list)
        """Who may connect (``server.client-list``)."""
        self.gate = ConnectionGate(
            connection_cap(config.server, descriptor_limit()),
            per_peer=config.server.max_connections_per_peer or None,
        )
        """Admits IVR connections up to the cap (``server.max-connections``, the descriptor
        limit less ``server.reserved-descriptors``) and up to ``max-connections-per-peer`` from
        one address."""
        self._admitted: dict[IvrLinkProtocol, str] = {}
        """Connections the gate admitted and their peer's host, until they close."""
        self.fresh: dict[IvrLinkProtocol, None] = {}
        """Connections not yet known to be active, in the order they opened: those that may be
        closed to make room at the cap (:meth:`admit`)."""
        self.made_room = 0
        """Idle connections closed to make room for new ones since start."""
        self._refusal_log: asyncio.TimerHandle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._reads: list[IvrLinkProtocol] = []
        """Connections that have read in this turn of the event loop, not yet written out."""
        self._read_bytes = 0
        """What they read, in bytes."""
        self._turn_end_due = False
        """Whether ``end_turn`` is scheduled."""
        self._held: list[IvrLinkProtocol] = []
        """Connections with frames read but not yet handled: each gets a batch in the next turn."""
        self.turn_spent = 0
        """Bytes of frames handled since the last :meth:`end_turn` began (HA bounds it at
        :data:`TURN_BUDGET`)."""
        self.writer: TurnWriter | None = None
        """High availability's writer (``runtime/ha.py``): commits each turn's state changes
        before its output is written. ``None`` with ``[ha] mode = "off"``."""
        self.reply_gate = 0
        """The number of the newest batch of state changes not yet acknowledged while replies
        must wait for it; 0: output is written at once (the module docstring, "Held replies")."""
        self.waiting: dict[IvrLinkProtocol, None] = {}
        """Connections with output held behind the reply gate, in the order they were held."""
        self.input_paused = False
        """Nothing read is handled (an HA takeover between its replay and the premise links
        coming up, :meth:`pause_input`): it waits, in order, in the connections' buffers."""
        self.parked: dict[IvrLinkProtocol, None] = {}
        """Connections with frames waiting for :meth:`resume_input`."""

    # ------------------------------------------------------------------ output

    def after_read(self, protocol: IvrLinkProtocol, size: int) -> None:
        """Note that ``protocol`` has handled a read of ``size`` bytes; its output waits for
        :meth:`flush_reads`.

        The event loop hands every readable connection its bytes in one turn; the replies are
        written once all of them have been handled (``call_soon`` runs before the loop polls
        again), not after each. With many connections each bringing a request or two, that is one
        pass over the service's output and timers per turn instead of per connection, and the
        writes leave in one burst, so a peer on the same host is woken once for all of them
        (docs/design.md, "The hot path"). Once a turn has read :data:`FLUSH_AFTER_BYTES`, what it
        produced is written at once, so that a turn in which hundreds of connections each bring
        hundreds of requests does not hold all their replies in memory together. The turn still
        schedules one callback only: uvloop keeps spent callback handles for reuse, and handles
        made by the hundred during a peak stay pinned in the heap after it (docs/performance.md,
        "Writing once per turn of the event loop")."""
        if not self._turn_end_due:
            self._turn_end_due = True
            protocol.loop.call_soon(self.end_turn)
        self._reads.append(protocol)
        self._read_bytes += size
        self.turn_spent += size
        if self._read_bytes >= FLUSH_AFTER_BYTES:
            self.flush_reads()

    def end_turn(self) -> None:
        """Run by the event loop once the turn's reads are handled (see :meth:`after_read`):
        write their replies, then give every connection with frames held back from earlier reads
        its next batch (:meth:`hold`); their replies go out at the end of the next turn.

        With high availability (a writer) the turn handles at most :data:`TURN_BUDGET` bytes of
        frames across all connections: the connections not served keep their place, first in
        the next turn, and reads meanwhile wait behind them. A burst then takes more, shorter
        turns, between which timers (the lease renewal) and the store's answers run."""
        self._turn_end_due = False
        self.flush_reads()
        self.turn_spent = 0
        if self._held:
            held = self._held
            self._held = []
            bounded = self.writer is not None
            for i, protocol in enumerate(held):
                if bounded and self.turn_spent >= TURN_BUDGET:
                    self._held = held[i:] + self._held  # still queued: first next turn
                    if not self._turn_end_due:
                        self._turn_end_due = True
                        protocol.loop.call_soon(self.end_turn)
                    break
                protocol.receive_more()

    def hold(self, protocol: IvrLinkProtocol) -> None:
        """Note that ``protocol`` has frames read and not yet handled (it read more than one
        turn's batch, ``TURN_FRAMES`` or ``TURN_BYTES``): the end of this turn gives it the next
        batch. One batch per connection per turn, after every readable connection's read of that
        turn: a connection that sends more than it gets answered waits for itself, not the others
        (docs/design.md, "Fairness")."""
        self._held.append(protocol)
        if not self._turn_end_due:
            self._turn_end_due = True
            protocol.loop.call_soon(self.end_turn)

    def flush_reads(self) -> None:
        """Write out what the reads so far produced and re-arm the connections' timers."""
        reads = self._reads
        if not reads:
            return
        self._reads = []
        self._read_bytes = 0
        self.flush()
        for protocol in reads:
            protocol.finish_read()

    def flush(self) -> None:
        """Write out every session the service queued data for; re-arm the service's timer.
        With high availability the turn's changes go to the store first (:attr:`writer`)."""
        writer = self.writer
        protocols = self.protocols
        dirty = self.service.take_dirty()
        if writer is not None:
            if writer.keeps_replies:
                for session in dirty:
                    protocol = protocols.get(session.id)
                    if protocol is not None:
                        protocol.stage(writer)
            writer.commit_turn()
        for session in dirty:
            protocol = protocols.get(session.id)
            if protocol is not None:
                protocol.flush()
        # Lazy, like the connections' timers: the timer only ever moves earlier. Calls ending
        # or routing dialogs closing move the earliest deadline later many times a second; the
        # timer then fires early, the service finds nothing due, and flush() re-arms it.
        deadline = self.service.next_deadline()
        if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.service.handle_timer(asyncio.get_running_loop().time())
        self.flush()

    def release_held(self, acked: int) -> None:
        """The store acknowledged every batch up to ``acked`` (0: stop holding, write everything
        held): write the output that waited for them."""
        waiting = self.waiting
        if not waiting:
            return
        for protocol in list(waiting):
            protocol.release_held(acked)
            if not protocol._out:
                del waiting[protocol]

    def held_keys(self, acked: int) -> list[tuple[IvrLinkProtocol, list[str]]]:
        """The outbox keys of what :meth:`release_held` would write for ``acked``, by
        connection."""
        found: list[tuple[IvrLinkProtocol, list[str]]] = []
        for protocol in self.waiting:
            keys = protocol.held_keys(acked)
            if keys:
                found.append((protocol, keys))
        return found

    def pause_input(self) -> None:
        """Handle nothing read from now on (it waits in each connection's buffer, reading from
        a connection pausing past :data:`HOLD_BYTES`) until :meth:`resume_input`."""
        self.input_paused = True

    def resume_input(self) -> None:
        """Handle again what was read meanwhile: each waiting connection gets its next batch
        from the next turn of the event loop, as after a long read."""
        self.input_paused = False
        parked = self.parked
        self.parked = {}
        for protocol in parked:
            protocol._queue()

    def drop_held(self) -> None:
        """Forget every connection's held output (fenced: it must never be sent)."""
        for protocol in self.waiting:
            protocol.drop_held()
        self.waiting.clear()

    # ------------------------------------------------------------------ who may connect

    def admit(
        self, protocol: IvrLinkProtocol, transport: asyncio.Transport, host: str, peer: str
    ) -> bool:
        """May the IVR connection ``protocol`` just accepted from ``peer`` stay? Over the cap it
        gets a GLI Error frame (code 7) and is closed here; the refusal is logged, at most once
        per ``gate.log_interval`` (with a count)."""
        gate = self.gate
        now = protocol.loop.time()
        if gate.full and gate.peer_fits(host):
            self._make_room(now)
        if gate.admit(host, now):
            self._admitted[protocol] = host
            return True
        transport.write(_SERVER_FULL)
        transport.close()
        if gate.log_due and self._refusal_log is None:
            self._refusal_log = protocol.loop.call_later(gate.log_interval, self._log_refusals)
        return False

    def _make_room(self, now: float) -> None:
        """Close the oldest connection idle for :data:`IDLE_AFTER` seconds or more, if any (the
        module docstring, "Making room")."""
        fresh = self.fresh
        while fresh:
            oldest = next(iter(fresh))
            session = oldest.session
            if (
                session is not None
                and session.opened_at > now - IDLE_AFTER
                and oldest.active is False
            ):
                return  # the oldest candidate is too young: so are the others
            del fresh[oldest]
            if session is not None and not oldest._closing and not oldest.active:
                self.made_room += 1
                oldest.make_room()
                return

    def release(self, protocol: IvrLinkProtocol) -> None:
        """``protocol``'s connection closed (whether it was admitted or not)."""
        host = self._admitted.pop(protocol, None)
        if host is not None:
            self.gate.closed(host)

    def _log_refusals(self) -> None:
        self._refusal_log = None
        self.gate.log_refusals(asyncio.get_running_loop().time())

    def client_allowed(self, host: str, port: int) -> bool:
        """Is a client at ``host:port`` allowed (original ``gli-client-list``; empty = all)?"""
        return self.clients.allows(host, port)
