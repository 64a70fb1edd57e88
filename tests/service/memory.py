"""The whole server in memory: an ``IvrService`` and client-role ``IvrLink`` peers, no sockets.

h11's ``ConnectionPair`` and aioquic's ``client_and_server()`` for this project. A
:class:`MemoryServer` drives the service exactly as ``runtime/connection.py`` does: a server-role
``IvrLink`` per connection, registered with ``open_session``; every ``DocumentReceived`` to
``handle``, every ``DocumentRejected`` to ``handle_rejected``; the sessions ``take_dirty`` names
and every link written out; ``handle_timer`` when ``next_deadline`` has come; ``close_session``
when a connection ends. A :class:`MemoryClient` is the IVR's end: a client-role ``IvrLink`` (the
client library's engine) whose bytes are shuttled to the server's link and back at once, both
ways, until neither has anything left to say. Time passes only when a test says so
(:meth:`MemoryServer.advance`): no asyncio, no sleeps, nothing that can be late.

Only the service's public surface is used, so that its internals can move freely.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from ivr_server.config import ServerConfig, default_config
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
from ivr_server.wire import Message

__all__ = ["START", "Document", "MemoryClient", "MemoryServer", "frame", "xml_document"]

START: Final = 1000.0
"""The clock's reading when a :class:`MemoryServer` is built (any value would do)."""

_HEADER: Final = struct.Struct(">HHBB")
_PROLOG: Final = (
    '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE GctiMsg SYSTEM "IServer.dtd">\n'
)


def xml_document(call_id: str | None, body: str) -> bytes:
    """A document as real drivers write it (double quotes, newlines) around the element ``body``."""
    cid = f"<CallId>{call_id}</CallId>" if call_id is not None else ""
    return f"{_PROLOG}<GctiMsg>{cid}{body}</GctiMsg>\n".encode("latin-1")


def frame(payload: bytes, gli_type: int = 3) -> bytes:
    """A GLI frame (version 2, application 0) around ``payload``."""
    return _HEADER.pack(gli_type, len(payload) + 2, 2, 0) + payload


@dataclass(frozen=True, slots=True)
class Document:
    """One document the client received: its CallId and message."""

    call_id: str | None
    message: Message


@dataclass(eq=False)
class MemoryClient:
    """An IVR's connection to a :class:`MemoryServer`."""

    server: MemoryServer = field(repr=False)
    link: IvrLink
    """The client's engine (``Role.CLIENT``)."""
    server_link: IvrLink
    """The server's engine for this connection (``Role.SERVER``), as the runtime would make it."""
    session: Session
    """The service's session for this connection."""
    received: list[Document] = field(default_factory=list)
    """Documents received and not yet taken (:meth:`take`)."""
    closed: str | None = None
    """Why the connection ended, once it has."""
    ended: bool = False
    """The server has seen the connection end (``close_session``)."""
    deaf: bool = False
    """Reads nothing the server sends (a client that hangs): the bytes are dropped."""
    _raw_out: bytearray = field(default_factory=bytearray)

    # ------------------------------------------------------------------ sending

    def send(self, call_id: str | None, message: Message | str) -> list[Document]:
        """Send a message (or the XML of one element, written as drivers write it) and return
        every document received in answer."""
        if isinstance(message, str):
            self._raw_out += frame(xml_document(call_id, message))
        else:
            self.link.send(call_id, message)
        return self._exchange()

    def send_bytes(self, data: bytes) -> list[Document]:
        """Send raw bytes (broken frames, documents no encoder would write)."""
        self._raw_out += data
        return self._exchange()

    def _exchange(self) -> list[Document]:
        self.server.shuttle()
        return self.take()

    def take(self) -> list[Document]:
        """Every document received since the last look."""
        got, self.received = self.received, []
        return got

    def messages(self) -> list[Message]:
        """The messages of :meth:`take`, without their CallIds."""
        return [doc.message for doc in self.take()]

    def request(self, call_id: str | None, message: Message | str) -> Message:
        """Send and return the one message received in answer."""
        got = self.send(call_id, message)
        assert len(got) == 1, f"expected one answer, got {got}"
        return got[0].message

    def login(
        self,
        name: str = "IVR_1",
        version: str = "4.0",
        *,
        call_id: str = "L",
        monitor: bool = False,
    ) -> list[Message]:
        """Log in (``ReportStatus='true'``); return what came back (LoginResp, FlowControl...)."""
        monitor_attr = " ServerMonitor='set'" if monitor else ""
        return [
            doc.message
            for doc in self.send(
                call_id,
                f"<LoginReq Version='{version}' ClientName='{name}' ReportStatus='true'"
                f"{monitor_attr}/>",
            )
        ]

    def close(self) -> None:
        """The IVR closes its connection (the server sees an end of file)."""
        if not self.ended:
            self.link.close("client closed")
            self.server.deliver(self, self.server_link.receive_data(b"", self.server.now))
            self.server.end(self, "connection closed")
            self.server.shuttle()

    # ------------------------------------------------------------------ the shuttle

    def outgoing(self) -> bytes:
        """What the client has queued for the server, once."""
        raw = bytes(self._raw_out)
        self._raw_out.clear()
        return self.link.data_to_send() + raw

    def incoming(self, data: bytes, now: float) -> None:
        """Bytes from the server: decode them as the client library would."""
        for event in self.link.receive_data(data, now):
            if type(event) is DocumentReceived:
                self.received.append(Document(event.call_id, event.message))
            elif type(event) is DocumentRejected:
                raise AssertionError(f"the server wrote a document a client cannot read: {event}")
            elif type(event) is LinkClosed and self.closed is None:
                self.closed = event.reason


class MemoryServer:
    """An ``IvrService`` with its connections in memory and a clock moved by hand."""

    def __init__(self, config: ServerConfig | None = None, *, now: float = START) -> None:
        self.config = config or default_config()
        self.now = now
        self.service = IvrService(self.config)
        self.clients: list[MemoryClient] = []
        self._peers = iter(range(40000, 65536))

    def connect(self, **link_options: float | int | None) -> MemoryClient:
        """Accept a new IVR connection; ``link_options`` go to the server's ``IvrLink`` as the
        runtime sets them from the configuration (``keep_alive_interval``...)."""
        opts = self.config.server
        options: dict[str, float | int | None] = {
            "keep_alive_interval": opts.keep_alive_interval
            if opts.keep_alive_interval > 0
            else None,
            "keep_alive_tries": opts.keep_alive_tries,
            "malformed_limit": opts.malformed_limit,
            "malformed_window": opts.malformed_window,
        }
        options.update(link_options)
        server_link = IvrLink(Role.SERVER, now=self.now, **options)  # type: ignore[arg-type]
        session = self.service.open_session(f"127.0.0.1:{next(self._peers)}", server_link, self.now)
        client = MemoryClient(self, IvrLink(Role.CLIENT, now=self.now), server_link, session)
        self.clients.append(client)
        return client

    def deliver(self, client: MemoryClient, events: list[LinkEvent]) -> None:
        """Hand what a server link produced to the service (``IvrLinkProtocol._handle``)."""
        service, session, now = self.service, client.session, self.now
        for event in events:
            if type(event) is DocumentReceived:
                service.handle(session, event.call_id, event.message, now)
            elif type(event) is DocumentRejected:
                service.handle_rejected(session, event.error, now)

    def shuttle(self) -> None:
        """Move bytes both ways until every link is quiet; end the connections that closed."""
        for _ in range(1000):
            moved = False
            self.service.take_dirty()  # the runtime writes these out; below, every link is
            for client in self._open():
                upstream = client.outgoing()
                if upstream:
                    moved = True
                    self.deliver(client, client.server_link.receive_data(upstream, self.now))
                    while client.server_link.backlogged:
                        self.deliver(client, client.server_link.receive_more(self.now))
                self.service.take_dirty()
                downstream = client.server_link.data_to_send()
                if downstream and not client.deaf:
                    moved = True
                    client.incoming(downstream, self.now)
            for client in self._open():
                if client.server_link.state is LinkState.CLOSED:
                    moved = True
                    self.end(client, "the server closed the link")
                elif client.link.state is LinkState.CLOSED:
                    moved = True
                    self.end(client, client.closed or "the client closed the link")
            if not moved:
                return
        raise AssertionError("the links never went quiet")

    def _open(self) -> Iterator[MemoryClient]:
        return (client for client in list(self.clients) if not client.ended)

    def end(self, client: MemoryClient, reason: str) -> None:
        """The runtime's ``connection_lost``: what is left is delivered, the session closed."""
        client.incoming(client.server_link.data_to_send(), self.now)
        if client.closed is None:
            client.closed = reason
        client.ended = True
        self.service.close_session(client.session, reason, self.now)

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass: every timer due meanwhile (the service's, the links') fires at
        its own time, in order, and its output is delivered."""
        until = self.now + seconds
        for _ in range(100_000):
            due = self._next_due()
            if due is None or due > until:
                break
            self.now = max(self.now, due)
            self.service.handle_timer(self.now)
            for client in self._open():
                for link in (client.server_link, client.link):
                    deadline = link.next_deadline()
                    if deadline is not None and deadline <= self.now:
                        link.handle_timer(self.now)
            self.shuttle()
            after = self._next_due()
            assert after is None or after > self.now, f"a timer due at {after} stays due"
        else:
            raise AssertionError("timers kept firing")
        self.now = until
        self.shuttle()

    def _next_due(self) -> float | None:
        deadlines = [self.service.next_deadline()]
        for client in self._open():
            deadlines += [client.server_link.next_deadline(), client.link.next_deadline()]
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None
