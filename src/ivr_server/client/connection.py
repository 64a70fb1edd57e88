"""The asyncio IVR client: an ``asyncio.Protocol`` around a client-role :class:`IvrLink`.

Theory of operation (aioquic's adapter, STYLE.md §2.1): bytes read from the socket go to
``IvrLink.receive_data(data, loop.time())``; the events it returns are routed (below); then
``IvrLink.data_to_send()`` is written and exactly one ``TimerHandle`` is re-armed at
``IvrLink.next_deadline()`` (our own keep-alives and their timeout live in the engine).

Routing of one inbound document, first match wins:

1. the oldest pending :meth:`IvrClient.request` on the same CallId that it answers;
2. the oldest waiting :meth:`IvrClient.expect` whose filter it matches;
3. the oldest waiting :meth:`IvrClient.events` iterator;
4. otherwise the unsolicited queue, where later ``expect()``/``events()`` calls find it, in order.

A document the server got wrong (``DocumentRejected``: bad XML, unknown element, broken schema) is
logged, kept in :attr:`IvrClient.rejected` and raised as :class:`BadDocument` from the pending
request it can be tied to (same CallId, compatible ReqId/RequestId); otherwise from the next
``expect()``/``expect_nothing()`` that reaches it in the unsolicited queue (``events()`` skips it).
The link stays up. When the link closes, every pending waiter raises :class:`ConnectionLost` and
``events()`` ends after the documents already queued.

Every future here has one owner, the coroutine awaiting it; every timer is cancelled by its owner.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import ssl as _ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Literal, TypeAlias, TypeVar, cast

from ivr_server.errors import IvrServerError
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
from ivr_server.wire.messages import CallError, FlowControl, LoginReq, LoginResp, MonitorInfo

__all__ = [
    "BadDocument",
    "ClientError",
    "ConnectFailed",
    "ConnectionLost",
    "IvrClient",
    "LoginResult",
    "MessageTypes",
    "Received",
    "RequestTimeout",
    "UnexpectedDocument",
]

_log = logging.getLogger("ivr_server.client")

_T = TypeVar("_T")

MessageTypes: TypeAlias = type[Message] | tuple[type[Message], ...]
"""One message class or a tuple of them, as ``isinstance`` takes them."""

_CALL_IDS: Final = itertools.count(1)
"""Process-wide, so CallIds stay unique across every client of a load generator."""
_RUN_TAG: Final = f"{int(time.time()) % 0x1000000:06x}"
"""Tells apart two runs that happen to get the same process id (containers: often pid 1)."""


# --------------------------------------------------------------------------- errors


class ClientError(IvrServerError):
    """Base of every failure the client library reports."""


class ConnectFailed(ClientError):
    """The TCP connection could not be opened (refused, unreachable, ``connect_timeout``)."""


class ConnectionLost(ClientError):
    """The link is closed: by the server, by a GLI Error frame, by a keep-alive timeout or by us."""

    def __init__(self, reason: str, *, by_peer: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        """Why, in words (the engine's ``LinkClosed.reason``)."""
        self.by_peer = by_peer
        """The server closed the connection or sent a GLI Error frame."""


class RequestTimeout(ClientError):
    """No matching document (or keep-alive response) arrived in time."""


class BadDocument(ClientError):
    """The server sent a Data frame that is not a valid GctiMsg document; the link stays up."""

    def __init__(self, error: DecodeError) -> None:
        super().__init__(f"server sent a bad document (CallId {error.call_id!r}): {error.reason}")
        self.error = error
        """The decoder's verdict, with what could still be read (CallId, tag, ReqId...)."""


@dataclass(frozen=True, slots=True)
class Received:
    """One inbound document."""

    call_id: str | None
    """Its CallId (``None`` for the DialOut form, which has none)."""
    message: Message
    """The decoded message."""


class UnexpectedDocument(ClientError, AssertionError):
    """:meth:`IvrClient.expect_nothing` saw a document arrive; ``received`` is that document."""

    def __init__(self, received: Received) -> None:
        super().__init__(
            f"unexpected {received.message.tag} on CallId {received.call_id!r}: "
            f"{received.message!r}"
        )
        self.received = received


@dataclass(frozen=True, slots=True)
class LoginResult:
    """What a :meth:`IvrClient.login` got back."""

    response: LoginResp
    """The LoginResp (``Result`` says whether the version was accepted)."""
    flow_control: FlowControl | None
    """The FlowControl that follows a successful 4.0 login; ``None`` for other versions."""
    call_id: str
    """The session CallId the LoginReq carried."""


# --------------------------------------------------------------------------- internals


@dataclass(eq=False, slots=True)
class _Waiter:
    """A coroutine waiting for one document; the coroutine owns ``future`` and removes it."""

    accepts: Callable[[Received], bool]
    future: asyncio.Future[Received]
    req_id: str | None = None
    request_id: str | None = None


def _as_tuple(types: MessageTypes | None) -> tuple[type[Message], ...]:
    if types is None:
        return ()
    return types if isinstance(types, tuple) else (types,)


def _str_attr(message: Message, name: str) -> str | None:
    value = getattr(message, name, None)
    return value if isinstance(value, str) else None


def _answer_filter(
    types: tuple[type[Message], ...], req_id: str | None, request_id: str | None
) -> Callable[[Received], bool]:
    """Does a document answer a request with these ReqId/RequestId and expected types?

    ReqId and RequestId must be equal on both sides (absent = ``None``), so an answer echoing an
    id never answers a request without one, and vice versa. A CallError always answers (its type
    need not be expected); a MonitorInfo without ReqId never does (it is unsolicited by definition,
    PROTOCOL.md §3.2.1).
    """

    def accepts(received: Received) -> bool:
        message = received.message
        if getattr(message, "ReqId", None) != req_id:
            return False
        if type(message) is CallError:
            return True
        if types and not isinstance(message, types):
            return False
        if getattr(message, "RequestId", None) != request_id:
            return False
        return not (type(message) is MonitorInfo and req_id is None)

    return accepts


def _compatible(waited: str | None, seen: str | None) -> bool:
    return waited is None or seen is None or waited == seen


def _expire(future: asyncio.Future[Any], text: str) -> None:
    if not future.done():
        future.set_exception(RequestTimeout(text))


def _is_flow_control(received: Received) -> bool:
    return type(received.message) is FlowControl


# --------------------------------------------------------------------------- the client


class IvrClient(asyncio.Protocol):
    """An IVR-side connection to an IVR Server. Open one with :meth:`connect`.

    ``request()`` sends and waits for the answer; ``send()`` fires and forgets; everything the
    server sends that answers no pending request is *unsolicited* and is read with ``expect()`` or
    ``events()``. See the module docstring for the routing rules.
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
        self._requests: dict[str | None, list[_Waiter]] = {}
        self._expecters: list[_Waiter] = []
        self._listeners: list[_Waiter] = []
        self._inbox: deque[Received | BadDocument] = deque()
        self._ka_waiters: deque[asyncio.Future[float]] = deque()
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
        answer = self._add_request(call_id, _answer_filter((LoginResp,), None, None))
        # Registered before sending, so the FlowControl cannot slip into the unsolicited queue.
        flow = self._add_request(call_id, _is_flow_control) if version == "4.0" else None
        self.session_call_id = call_id
        try:
            self._link.send(call_id, request)
            self._transmit()
            received = await self._await(answer.future, timeout, f"LoginResp on CallId {call_id!r}")
            response = received.message
            if not isinstance(response, LoginResp):
                raise ClientError(f"LoginReq answered with {response!r}")
            flow_control: FlowControl | None = None
            if flow is not None and response.Result == "Success":
                remaining = max(0.0, deadline - self._loop.time())
                got = await self._await(
                    flow.future, remaining, f"FlowControl on CallId {call_id!r}"
                )
                flow_control = cast(FlowControl, got.message)
                flow = None
            return LoginResult(response, flow_control, call_id)
        finally:
            self._drop_request(call_id, answer)
            if flow is not None:
                self._abandon_request(call_id, flow)

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
        req_id = _str_attr(message, "ReqId")
        request_id = _str_attr(message, "RequestId")
        waiter = self._add_request(
            call_id, _answer_filter(_as_tuple(expect), req_id, request_id), req_id, request_id
        )
        try:
            self._link.send(call_id, message)
            self._transmit()
            return await self._await(
                waiter.future, timeout, f"answer to {message.tag} on CallId {call_id!r}"
            )
        finally:
            self._drop_request(call_id, waiter)

    async def keep_alive(self, timeout: float = 5.0) -> float:
        """Send a GLI keep-alive request; return the seconds until a response arrived.

        A response answers the oldest pending ``keep_alive()``. (Responses to the engine's own
        keep-alives, with ``keep_alive_interval``, count too.) Raises :class:`RequestTimeout` or
        :class:`ConnectionLost`.
        """
        self._check_open()
        future: asyncio.Future[float] = self._loop.create_future()
        sent_at = self._loop.time()
        self._ka_waiters.append(future)
        try:
            self._link.send_keep_alive()
            self._transmit()
            answered_at = await self._await(future, timeout, "KeepAliveResponse")
        finally:
            if future in self._ka_waiters:
                self._ka_waiters.remove(future)
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
        wanted = _as_tuple(types)

        def accepts(received: Received) -> bool:
            return (
                (call_id is None or received.call_id == call_id)
                and (not wanted or isinstance(received.message, wanted))
                and (predicate is None or predicate(received))
            )

        what = "unsolicited document" if not wanted else "/".join(t.tag for t in wanted)
        if call_id is not None:
            what += f" on CallId {call_id!r}"
        return await self._next_unsolicited(accepts, timeout, what, scan=True)

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
            received = await self._next_unsolicited(accepts, within, "", scan=False)
        except RequestTimeout:
            return
        raise UnexpectedDocument(received)

    async def events(self) -> AsyncIterator[Received]:
        """Every unsolicited document in arrival order, until the link closes (then the ones
        still queued, then the iteration ends). Bad documents are skipped (they are logged and
        kept in :attr:`rejected`). An ``expect()`` waiting at the same time has priority."""
        while True:
            try:
                received = await self._next_unsolicited(None, None, "", scan=True)
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
        while answers and self._ka_waiters:
            future = self._ka_waiters.popleft()
            if not future.done():
                future.set_result(now)
                answers -= 1
        self._transmit()

    def eof_received(self) -> bool | None:
        if self._close_reason is None:
            self._process(self._link.receive_data(b"", self._loop.time()))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
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

    # ------------------------------------------------------------------ engine glue

    def _process(self, events: list[LinkEvent]) -> None:
        for event in events:
            match event:
                case DocumentReceived(call_id=call_id, message=message):
                    self._deliver(Received(call_id, message))
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
        waiters = [w for queue in self._requests.values() for w in queue]
        waiters += self._expecters + self._listeners
        self._requests.clear()
        self._expecters.clear()
        self._listeners.clear()
        for waiter in waiters:
            if not waiter.future.done():
                waiter.future.set_exception(self._lost_error())
        while self._ka_waiters:
            future = self._ka_waiters.popleft()
            if not future.done():
                future.set_exception(self._lost_error())

    def _lost_error(self) -> ConnectionLost:
        return ConnectionLost(self._close_reason or "link closed", by_peer=self._closed_by_peer)

    def _check_open(self) -> None:
        if self._close_reason is not None:
            raise self._lost_error()

    # ------------------------------------------------------------------ routing

    def _deliver(self, received: Received) -> None:
        waiters = self._requests.get(received.call_id)
        if waiters:
            for i, waiter in enumerate(waiters):
                if not waiter.future.done() and waiter.accepts(received):
                    del waiters[i]
                    waiter.future.set_result(received)
                    return
        self._offer(received)

    def _offer(self, item: Received | BadDocument, *, front: bool = False) -> None:
        """Give an unsolicited document to a waiting expect()/events(), else queue it."""
        if isinstance(item, BadDocument):
            for waiter in self._expecters:
                if not waiter.future.done():
                    waiter.future.set_exception(item)
                    return
            if any(not w.future.done() for w in self._listeners):
                return  # events() skips bad documents; they are logged and in `rejected`
        else:
            for waiter in self._expecters:
                if waiter.future.done():
                    continue
                try:
                    matched = waiter.accepts(item)
                except Exception as exc:  # a caller's predicate failed: that caller gets it
                    waiter.future.set_exception(exc)
                    continue
                if matched:
                    waiter.future.set_result(item)
                    return
            for waiter in self._listeners:
                if not waiter.future.done():
                    waiter.future.set_result(item)
                    return
        if front:
            self._inbox.appendleft(item)
        else:
            self._inbox.append(item)

    def _on_rejected(self, error: DecodeError) -> None:
        self.rejected.append(error)
        _log.warning(
            "server sent a bad document (CallId %r, element %r): %s",
            error.call_id,
            error.tag,
            error.reason,
        )
        bad = BadDocument(error)
        waiters = self._requests.get(error.call_id) if error.call_id is not None else None
        if waiters:
            for i, waiter in enumerate(waiters):
                if (
                    not waiter.future.done()
                    and _compatible(waiter.req_id, error.req_id)
                    and _compatible(waiter.request_id, error.request_id)
                ):
                    del waiters[i]
                    waiter.future.set_exception(bad)
                    return
        self._offer(bad)

    # ------------------------------------------------------------------ waiting

    def _add_request(
        self,
        call_id: str | None,
        accepts: Callable[[Received], bool],
        req_id: str | None = None,
        request_id: str | None = None,
    ) -> _Waiter:
        waiter = _Waiter(accepts, self._loop.create_future(), req_id, request_id)
        self._requests.setdefault(call_id, []).append(waiter)
        return waiter

    def _drop_request(self, call_id: str | None, waiter: _Waiter) -> None:
        waiters = self._requests.get(call_id)
        if waiters is None:
            return
        if waiter in waiters:
            waiters.remove(waiter)
        if not waiters:
            del self._requests[call_id]

    def _abandon_request(self, call_id: str | None, waiter: _Waiter) -> None:
        """Drop a waiter nobody will await: its document, if it got one, becomes unsolicited."""
        self._drop_request(call_id, waiter)
        future = waiter.future
        if not future.done():
            future.cancel()
        elif not future.cancelled() and future.exception() is None:
            self._offer(future.result())

    async def _next_unsolicited(
        self,
        accepts: Callable[[Received], bool] | None,
        limit_s: float | None,
        what: str,
        *,
        scan: bool,
    ) -> Received:
        """Wait as an expecter (``accepts`` given) or as an events() listener (``None``)."""
        inbox = self._inbox
        if scan:
            if accepts is None:
                while inbox:
                    item = inbox.popleft()
                    if not isinstance(item, BadDocument):
                        return item
            else:
                for i, item in enumerate(inbox):
                    if isinstance(item, BadDocument):
                        del inbox[i]
                        raise item
                    if accepts(item):
                        del inbox[i]
                        return item
        if self._close_reason is not None:
            raise self._lost_error()
        if accepts is None:
            waiter = _Waiter(lambda _: True, self._loop.create_future())
            queue = self._listeners
        else:
            waiter = _Waiter(accepts, self._loop.create_future())
            queue = self._expecters
        queue.append(waiter)
        try:
            return await self._await(
                waiter.future, limit_s, what, orphan=lambda item: self._offer(item, front=True)
            )
        finally:
            if waiter in queue:
                queue.remove(waiter)

    async def _await(
        self,
        future: asyncio.Future[_T],
        limit_s: float | None,
        what: str,
        orphan: Callable[[_T], None] | None = None,
    ) -> _T:
        """Await ``future`` with a timeout that fails it with :class:`RequestTimeout`.

        If the caller is cancelled after the result arrived, ``orphan`` gets the result (so an
        unsolicited document is not lost); an exception that arrived is marked as retrieved.
        """
        timer = None
        if limit_s is not None:
            timer = self._loop.call_later(
                limit_s, _expire, future, f"no {what} within {limit_s:g} s"
            )
        try:
            return await future
        except asyncio.CancelledError:
            # Retrieve what arrived anyway (an unretrieved exception would be logged at GC).
            arrived = future.done() and not future.cancelled() and future.exception() is None
            if arrived and orphan is not None:
                orphan(future.result())
            raise
        finally:
            if timer is not None:
                timer.cancel()
