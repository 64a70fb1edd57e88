"""The asyncio IVR client: an ``asyncio.Protocol`` around a client-role :class:`IvrLink`.

Theory of operation (aioquic's adapter, STYLE.md §2.1): bytes read from the socket go to
``IvrLink.receive_data(data, loop.time())``; the events it returns are routed to whoever waits
for them (:mod:`.waiters` holds the rules); then ``IvrLink.data_to_send()`` is written and exactly
one ``TimerHandle`` is re-armed at ``IvrLink.next_deadline()`` (our own keep-alives and their
timeout live in the engine).

A document the server got wrong (``DocumentRejected``: bad XML, unknown element, broken schema) is
logged, kept in :attr:`IvrClient.rejected` and raised as :class:`~.errors.BadDocument` from the
pending request it can be tied to, or from the next ``expect()``/``expect_nothing()`` that reaches
it. The link stays up. When the link closes, every pending waiter raises
:class:`~.errors.ConnectionLost` and ``events()`` ends after the documents already queued.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import ssl as _ssl
import time
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Final, Literal, cast

from ivr_server.client.documents import (
    LoginResult,
    MessageTypes,
    Received,
    answer_filter,
    as_tuple,
    is_flow_control,
    str_attr,
)
from ivr_server.client.errors import (
    ClientError,
    ConnectFailed,
    ConnectionLost,
    RequestTimeout,
    UnexpectedDocument,
)
from ivr_server.client.waiters import Waiters
from ivr_server.session import (
    DocumentReceived,
    DocumentRejected,
    IvrLink,
    LinkClosed,
    LinkEvent,
    Role,
)
from ivr_server.wire import DecodeError, Message
from ivr_server.wire.gli import HEADER
from ivr_server.wire.messages import FlowControl, LoginReq, LoginResp

__all__ = ["IvrClient"]

_log = logging.getLogger("ivr_server.client")

_CALL_IDS: Final = itertools.count(1)
"""Process-wide, so CallIds stay unique across every client of a load generator."""
_RUN_TAG: Final = f"{int(time.time()) % 0x1000000:06x}"
"""Tells apart two runs that happen to get the same process id (containers: often pid 1)."""


# --------------------------------------------------------------------------- the client


class IvrClient(asyncio.Protocol):
    """An IVR-side connection to an IVR Server. Open one with :meth:`connect`.

    ``request()`` sends and waits for the answer; ``send()`` fires and forgets; everything the
    server sends that answers no pending request is *unsolicited* and is read with ``expect()`` or
    ``events()``. The routing rules: :mod:`ivr_server.client.waiters`.
    """

    def __init__(
        self,
        *,
        keep_alive_interval: float | None = None,
        keep_alive_tries: int = 3,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._link = IvrLink(
            Role.CLIENT,
            now=self._loop.time(),
            keep_alive_interval=keep_alive_interval,
            keep_alive_tries=keep_alive_tries,
        )
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._waiters = Waiters(self._loop)
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._close_reason: str | None = None
        self._closed_by_peer = False
        self.session_call_id: str | None = None
        """CallId of the latest LoginReq sent (the session CallId, PROTOCOL.md §2.7)."""
        self.rejected: list[DecodeError] = []
        """Every document the server sent that could not be decoded, in order."""

    # ------------------------------------------------------------------ opening and closing

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        keep_alive_interval: float | None = None,
        keep_alive_tries: int = 3,
        connect_timeout: float = 5.0,
        ssl: _ssl.SSLContext | None = None,
    ) -> IvrClient:
        """Open a connection. ``keep_alive_interval`` (seconds of silence before we send a
        keep-alive request; ``None`` = never) and ``keep_alive_tries`` (unanswered ones before the
        link is given up) configure the engine. Raises :class:`ConnectFailed`."""
        loop = asyncio.get_running_loop()

        def factory() -> IvrClient:
            return cls(
                keep_alive_interval=keep_alive_interval,
                keep_alive_tries=keep_alive_tries,
                loop=loop,
            )

        try:
            async with asyncio.timeout(connect_timeout):
                _, protocol = await loop.create_connection(factory, host, port, ssl=ssl)
        except TimeoutError as exc:
            raise ConnectFailed(
                f"cannot connect to {host}:{port}: no answer within {connect_timeout:g} s"
            ) from exc
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {host}:{port}: {exc}") from exc
        return protocol

    @property
    def closed(self) -> bool:
        """The link is over (closed by either side); nothing more can be sent or received."""
        return self._close_reason is not None

    @property
    def close_reason(self) -> str | None:
        """Why the link closed, or ``None`` while it is open."""
        return self._close_reason

    async def close(self) -> None:
        """Close the link (pending waiters raise :class:`ConnectionLost`) and wait for the socket."""
        if self._close_reason is None:
            self._on_link_closed(self._link.close("closed by the client"))
        if self._transport is not None:
            await asyncio.shield(self._lost)

    async def __aenter__(self) -> IvrClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ sending

    def new_call_id(self, prefix: str = "") -> str:
        """A CallId never returned before in this process: ``<prefix or C><pid>_<run>_<n>``."""
        return f"{prefix or 'C'}{os.getpid()}_{_RUN_TAG}_{next(_CALL_IDS)}"

    def send(self, call_id: str | None, message: Message) -> None:
        """Send one document and do not wait for anything. Raises :class:`ConnectionLost`."""
        self._check_open()
        self._link.send(call_id, message)
        self._transmit()

    def send_raw(
        self, payload: bytes, gli_type: int = 3, *, version: int = 2, application: int = 0
    ) -> None:
        """Send any GLI frame, valid or not (tests of hostile input): the header is built from
        the arguments, MessageLength is ``len(payload) + 2``. Raises :class:`ConnectionLost`."""
        self._check_open()
        if len(payload) > 0xFFFF - 2:
            raise ValueError(f"a GLI payload of {len(payload)} bytes cannot be framed")
        frame = HEADER.pack(gli_type, len(payload) + 2, version, application) + payload
        self._transmit()  # whatever the engine queued goes first: frames keep their order
        if self._transport is not None:
            self._transport.write(frame)

    async def login(
        self,
        client_name: str,
        *,
        version: str = "4.0",
        report_status: bool = True,
        server_monitor: bool | None = None,
        call_id: str | None = None,
        timeout: float = 5.0,
    ) -> LoginResult:
        """Send LoginReq and wait for LoginResp (and, after a successful 4.0 login, FlowControl).

        ``server_monitor``: ``True`` sends ``ServerMonitor='set'``, ``False`` ``'clear'``, ``None``
        leaves it out. ``call_id`` defaults to a fresh one; it becomes :attr:`session_call_id`.
        MonitorInfo events that follow a ``set`` login are unsolicited (use ``expect()``).
        Raises :class:`RequestTimeout`, :class:`ConnectionLost`, :class:`BadDocument`, or
        :class:`ClientError` if the server answers with a CallError.
        """
        self._check_open()
        if call_id is None:
            call_id = self.new_call_id("L")
        monitor: Literal["set", "clear"] | None = None
        if server_monitor is not None:
            monitor = "set" if server_monitor else "clear"
        request = LoginReq(
            Version=cast(Any, version),
            ClientName=client_name,
            ReportStatus="true" if report_status else "false",
            ServerMonitor=monitor,
        )
        deadline = self._loop.time() + timeout
        waiters = self._waiters
        answer = waiters.add_request(call_id, answer_filter((LoginResp,), None, None))
        # Registered before sending, so the FlowControl cannot slip into the unsolicited queue.
        flow = waiters.add_request(call_id, is_flow_control) if version == "4.0" else None
        self.session_call_id = call_id
        try:
            self._link.send(call_id, request)
            self._transmit()
            received = await waiters.wait(
                answer.future, timeout, f"LoginResp on CallId {call_id!r}"
            )
            response = received.message
            if not isinstance(response, LoginResp):
                raise ClientError(f"LoginReq answered with {response!r}")
            flow_control: FlowControl | None = None
            if flow is not None and response.Result == "Success":
                remaining = max(0.0, deadline - self._loop.time())
                got = await waiters.wait(
                    flow.future, remaining, f"FlowControl on CallId {call_id!r}"
                )
                flow_control = cast(FlowControl, got.message)
                flow = None
            return LoginResult(response, flow_control, call_id)
        finally:
            waiters.drop_request(call_id, answer)
            if flow is not None:
                waiters.abandon_request(call_id, flow)

    async def request(
        self,
        call_id: str | None,
        message: Message,
        *,
        expect: MessageTypes | None = None,
        timeout: float = 5.0,
    ) -> Received:
        """Send ``message`` and return the document that answers it.

        The answer has the same CallId, is of one of the ``expect`` types (any type if ``None``),
        and carries the same ``ReqId`` attribute and ``RequestId`` child as the request (absent on
        both sides counts as equal). A CallError answers whatever its type (when its ReqId
        matches): check ``isinstance(received.message, CallError)``. Several requests waiting on
        one CallId are served in the order they were sent. Raises :class:`RequestTimeout`,
        :class:`ConnectionLost` or :class:`BadDocument`.
        """
        self._check_open()
        req_id = str_attr(message, "ReqId")
        request_id = str_attr(message, "RequestId")
        waiters = self._waiters
        waiter = waiters.add_request(
            call_id, answer_filter(as_tuple(expect), req_id, request_id), req_id, request_id
        )
        try:
            self._link.send(call_id, message)
            self._transmit()
            return await waiters.wait(
                waiter.future, timeout, f"answer to {message.tag} on CallId {call_id!r}"
            )
        finally:
            waiters.drop_request(call_id, waiter)

    async def keep_alive(self, timeout: float = 5.0) -> float:
        """Send a GLI keep-alive request; return the seconds until a response arrived.

        A response answers the oldest pending ``keep_alive()``. (Responses to the engine's own
        keep-alives, with ``keep_alive_interval``, count too.) Raises :class:`RequestTimeout` or
        :class:`ConnectionLost`.
        """
        self._check_open()
        sent_at = self._loop.time()
        future = self._waiters.add_keep_alive()
        try:
            self._link.send_keep_alive()
            self._transmit()
            answered_at = await self._waiters.wait(future, timeout, "KeepAliveResponse")
        finally:
            self._waiters.drop_keep_alive(future)
        return answered_at - sent_at

    # ------------------------------------------------------------------ receiving

    async def expect(
        self,
        call_id: str | None = None,
        *,
        types: MessageTypes | None = None,
        timeout: float | None = 5.0,
        predicate: Callable[[Received], bool] | None = None,
    ) -> Received:
        """Return the next unsolicited document with this CallId (any if ``None``), of these
        types (any if ``None``) and for which ``predicate`` is true.

        Queued documents are searched first, oldest first; those that do not match stay queued,
        in order. ``timeout=None`` waits for ever. After the link closed, queued documents can
        still be read; when none matches, :class:`ConnectionLost` is raised. Raises
        :class:`RequestTimeout` and :class:`BadDocument` (see the module docstring).
        """
        wanted = as_tuple(types)

        def accepts(received: Received) -> bool:
            return (
                (call_id is None or received.call_id == call_id)
                and (not wanted or isinstance(received.message, wanted))
                and (predicate is None or predicate(received))
            )

        what = "unsolicited document" if not wanted else "/".join(t.tag for t in wanted)
        if call_id is not None:
            what += f" on CallId {call_id!r}"
        return await self._waiters.next_unsolicited(accepts, timeout, what, scan=True)

    async def expect_nothing(
        self, within: float, *, ignore: tuple[type[Message], ...] = ()
    ) -> None:
        """Wait ``within`` seconds; raise :class:`UnexpectedDocument` (an ``AssertionError``) if
        an unsolicited document not of the ``ignore`` types arrives meanwhile. Documents queued
        before the call, and ignored ones, stay queued. Raises :class:`ConnectionLost` if the
        link closes, :class:`BadDocument` if a bad document arrives."""

        def accepts(received: Received) -> bool:
            return not isinstance(received.message, ignore)

        try:
            received = await self._waiters.next_unsolicited(accepts, within, "", scan=False)
        except RequestTimeout:
            return
        raise UnexpectedDocument(received)

    async def events(self) -> AsyncIterator[Received]:
        """Every unsolicited document in arrival order, until the link closes (then the ones
        still queued, then the iteration ends). Bad documents are skipped (they are logged and
        kept in :attr:`rejected`). An ``expect()`` waiting at the same time has priority."""
        while True:
            try:
                received = await self._waiters.next_unsolicited(None, None, "", scan=True)
            except ConnectionLost:
                return
            yield received

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._transmit()

    def data_received(self, data: bytes) -> None:
        if self._close_reason is not None:
            return
        now = self._loop.time()
        answered_before = self._link.keep_alive_answers
        events = self._link.receive_data(data, now)
        while self._link.backlogged:  # only a bad GLI header after good frames: close now
            events += self._link.receive_more(now)
        answers = self._link.keep_alive_answers - answered_before
        self._process(events)
        if answers:
            self._waiters.answer_keep_alives(answers, now)
        self._transmit()

    def eof_received(self) -> bool | None:
        if self._close_reason is None:
            self._process(self._link.receive_data(b"", self._loop.time()))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None and self._close_reason is None:
            self._drain()
        if self._close_reason is None:
            if exc is None:
                events = self._link.receive_data(b"", self._loop.time())
            else:
                self._link.close(str(exc))
                events = [LinkClosed(f"connection lost: {exc}", by_peer=True)]
            self._process(events)
        self._transport = None
        if not self._lost.done():
            self._lost.set_result(None)

    def _drain(self) -> None:
        """A connection lost to an error (a write to a server that died: reset) is closed by the
        transport without reading what the kernel had received, and a server writes its last
        replies just before it dies: read them now (the socket is still open), so that none the
        server sent is lost on this side (TLS: not possible, left)."""
        transport = self._transport
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        try:
            fd = sock.fileno()
            if fd < 0:
                return
            while self._close_reason is None:
                data = os.read(fd, 65536)  # (the transport's socket is non-blocking)
                if not data:
                    return
                self.data_received(data)
        except OSError:  # nothing more (would block), or the reset itself
            return

    # ------------------------------------------------------------------ engine glue

    def _process(self, events: list[LinkEvent]) -> None:
        for event in events:
            match event:
                case DocumentReceived(call_id=call_id, message=message):
                    self._waiters.deliver(Received(call_id, message))
                case DocumentRejected(error=error):
                    self._on_rejected(error)
                case LinkClosed():
                    self._on_link_closed(event)

    def _transmit(self) -> None:
        """Write what the engine queued and re-arm the one timer at its next deadline."""
        transport = self._transport
        if transport is None:
            return  # not connected yet: connection_made() transmits
        data = self._link.data_to_send()
        if data and not transport.is_closing():
            transport.write(data)
        deadline = None if self._close_reason is not None else self._link.next_deadline()
        timer = self._timer
        if timer is not None:
            if deadline == self._timer_at:
                return
            timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer_at = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        # Never report a time before the deadline: the loop may fire a hair early (aioquic).
        self._process(self._link.handle_timer(max(self._timer_at, self._loop.time())))
        self._transmit()

    def _on_link_closed(self, event: LinkClosed) -> None:
        if self._close_reason is not None:
            return
        self._close_reason = event.reason
        self._closed_by_peer = event.by_peer
        _log.info("IVR link closed: %s", event.reason)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self._transport
        if transport is not None:
            data = self._link.data_to_send()
            if data and not transport.is_closing():
                transport.write(data)
            transport.close()
        self._waiters.fail(self._lost_error)

    def _lost_error(self) -> ConnectionLost:
        return ConnectionLost(self._close_reason or "link closed", by_peer=self._closed_by_peer)

    def _check_open(self) -> None:
        if self._close_reason is not None:
            raise self._lost_error()

    # ------------------------------------------------------------------ bad documents

    def _on_rejected(self, error: DecodeError) -> None:
        self.rejected.append(error)
        _log.warning(
            "server sent a bad document (CallId %r, element %r): %s",
            error.call_id,
            error.tag,
            error.reason,
        )
        self._waiters.reject(error)
