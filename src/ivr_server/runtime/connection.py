"""The asyncio adapter of one IVR connection: socket bytes <-> IvrLink <-> IvrService.

The only event-loop code of a session (aioquic's ``asyncio/protocol.py`` pattern): bytes in are
fed to the link engine with ``loop.time()``; its events go to the service; once every connection
readable in this turn of the event loop has read, everything the service queued is written out
(``IvrServer.flush_reads``) and one timer handle is re-armed to the link's next deadline. A peer
that does not read makes its transport buffer grow: reading from it pauses above the high-water
mark, and past ``write_buffer_limit`` the connection is aborted so that nobody else is slowed
down.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Final, cast

from ivr_server.service import IvrService, Session
from ivr_server.session import (
    DocumentReceived,
    DocumentRejected,
    IvrLink,
    LinkClosed,
    LinkState,
    Role,
)
from ivr_server.wire import GliErrorCode

if TYPE_CHECKING:
    from ivr_server.runtime.app import IvrServer

__all__ = ["IvrLinkProtocol"]

log = logging.getLogger("ivr_server.runtime")

_HIGH_WATER: Final = 256 * 1024
"""Transport buffer size above which we stop reading from the peer until it catches up."""
# Final: the compiled build reads it from a C variable, not from the module's dict per request.
perf_counter: Final = time.perf_counter


class IvrLinkProtocol(asyncio.Protocol):
    """One accepted IVR connection."""

    def __init__(self, server: IvrServer) -> None:
        self.server = server
        self.service: IvrService = server.service
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.session: Session | None = None
        self.link: IvrLink | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._closing = False

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.transport = transport
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        peername = transport.get_extra_info("peername")
        host, port = (str(peername[0]), int(peername[1])) if peername else ("?", 0)
        peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if not self.server.admit(self, transport, host, peer):
            self._closing = True  # over the connection cap: told, closed (IvrServer.admit)
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
        self._arm_timer()

    def data_received(self, data: bytes) -> None:
        link, session = self.link, self.session
        if link is None or session is None or self._closing:
            return
        service = self.service
        now = self.loop.time()
        metrics = service.metrics
        latency = metrics.request_latency
        for event in link.receive_data(data, now):
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
                service.handle_rejected(session, event.error, now)
            elif type(event) is LinkClosed:
                log.info("session %d: %s", session.id, event.reason)
        self.server.after_read(self, len(data))  # written once every readable one has read

    def finish_read(self) -> None:
        """After the service's output is written (``IvrServer.flush_reads``): the link's own
        output (keep-alive responses, GLI Error frames), and its timer re-armed."""
        self.flush()
        self._arm_timer()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._closing = True
        self.server.release(self)
        if self.session is not None:
            self.server.protocols.pop(self.session.id, None)
            self.service.close_session(
                self.session, str(exc) if exc else "connection closed", self.loop.time()
            )
            self.server.flush()

    def pause_writing(self) -> None:
        if self.transport is not None and not self._closing:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self._closing:
            self.transport.resume_reading()

    # ------------------------------------------------------------------ output and timers

    def flush(self) -> None:
        """Write what the link queued; enforce the write-buffer bound; close a closed link."""
        transport, link = self.transport, self.link
        if transport is None or link is None or self._closing:
            return
        data = link.data_to_send()
        if data:
            transport.write(data)
            if transport.get_write_buffer_size() > self.server.config.server.write_buffer_limit:
                log.warning(
                    "session %s: peer does not read (%d bytes queued): closing",
                    self.session.id if self.session else "?",
                    transport.get_write_buffer_size(),
                )
                self._closing = True
                transport.abort()
                return
        if link.state is LinkState.CLOSED:
            self._closing = True
            transport.close()

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
