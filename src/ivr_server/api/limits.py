"""The HTTP API's connections: a cap on how many are open, and a time limit on request headers.

Theory of operation. aiohttp neither caps its connections nor limits the time a client takes to
send a request's headers: a client that opens connections and sends nothing, or a header line
every few seconds (slowloris), holds them for ever, and with them the process's descriptors,
which every IVR login needs too. So the API's listeners are :class:`CappedSite` sites: each
connection aiohttp would serve is first a :class:`ApiConnection`, a thin protocol in front of
aiohttp's own (its callbacks handed on unchanged), counted by :class:`ApiConnections`.

- **Cap** (``api.max-connections``, at most ``server.reserved-descriptors`` less 32 when the
  descriptor limit is known: :func:`~ivr_server.runtime.limits.api_connection_cap`). One more
  connection never reaches aiohttp: it waits up to :data:`REFUSAL_WAIT` for its request, is
  answered ``503`` with ``Retry-After`` (so that the answer is not lost to a reset by a request
  still unread), and closed. At most :data:`REFUSALS_AT_ONCE` wait so; more are closed at once.
  Refusals are logged at once, then at most once per 10 s with a count.
- **Header timeout** (``api.header-timeout``): a connection must bring a request's headers within
  the timeout of its opening, and the next request's within the timeout of the previous one's
  end (an idle keep-alive connection is closed then too). The timer is one event-loop handle per
  connection; the API's middleware stops it when aiohttp hands it a request
  (:meth:`ApiConnections.request_started`) and starts it again when the request is done
  (:meth:`ApiConnections.request_ended`). A WebSocket event stream is a request until it ends.
  Over HTTPS the connection counts from the end of the TLS handshake (asyncio times the
  handshake itself, 60 s).

:class:`CappedSite` is a ``web.BaseSite``, aiohttp's documented base of its sites, and starts its
listener as ``web.TCPSite`` does, with the attributes the base class keeps (``_runner``,
``_ssl_context``, ``_backlog``, ``_server``); aiohttp is pinned in ``pyproject.toml`` and the
integration tests run through it.
"""

from __future__ import annotations

__all__ = [
    "REFUSALS_AT_ONCE",
    "REFUSAL_WAIT",
    "ApiConnection",
    "ApiConnections",
    "CappedSite",
]

import asyncio
import json
import logging
import ssl
from collections.abc import Callable
from typing import Any, Final, Literal, cast

from aiohttp import web

from ivr_server.runtime.limits import REFUSAL_LOG_INTERVAL
from ivr_server.throttle import LogThrottle

log = logging.getLogger("ivr_server.api")

REFUSALS_AT_ONCE: Final = 8
"""Connections over the cap that may wait at once for their request to be answered ``503``."""
REFUSAL_WAIT: Final = 1.0
"""Seconds a connection over the cap may take to send its request before it is closed."""
_BODY: Final = json.dumps(
    {"error": "too many HTTP API connections open (api.max-connections); try again later"}
).encode()
SERVICE_UNAVAILABLE: Final = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
    b"Content-Length: " + str(len(_BODY)).encode() + b"\r\n"
    b"Retry-After: 1\r\n"
    b"Connection: close\r\n"
    b"\r\n" + _BODY
)
"""The answer of a connection over the cap."""

Cause = Literal["refused", "timeout"]


class ApiConnections:
    """The open API connections: admits them up to :attr:`cap`, closes those that do not send a
    request's headers within :attr:`header_timeout` (see the module docstring)."""

    def __init__(
        self, cap: int, header_timeout: float, log_interval: float = REFUSAL_LOG_INTERVAL
    ) -> None:
        self.cap = cap
        """The most connections open at once."""
        self.header_timeout = header_timeout
        """Seconds a connection has for a request's headers."""
        self.open: dict[asyncio.BaseTransport, ApiConnection] = {}
        """The admitted connections, by transport (the one a request names)."""
        self.refusing: set[ApiConnection] = set()
        """Connections over the cap waiting for their request, to be answered 503."""
        self.refused = 0
        """Connections refused since start."""
        self.timed_out = 0
        """Connections closed since start for want of a request's headers in time."""
        self._throttle: LogThrottle[Cause] = LogThrottle(log_interval)
        self._log_timer: asyncio.TimerHandle | None = None

    def factory(self, inner: Callable[[], asyncio.BaseProtocol]) -> Callable[[], ApiConnection]:
        """The protocol factory of a listener: aiohttp's ``inner`` behind an :class:`ApiConnection`."""
        return lambda: ApiConnection(self, inner)

    def request_started(self, transport: asyncio.BaseTransport | None) -> None:
        """aiohttp has a request's headers from ``transport``: its header timer stops."""
        connection = self.open.get(transport) if transport is not None else None
        if connection is not None:
            connection.stop_timer()

    def request_ended(self, transport: asyncio.BaseTransport | None) -> None:
        """A request on ``transport`` is answered: the next one's headers are timed."""
        connection = self.open.get(transport) if transport is not None else None
        if connection is not None:
            connection.start_timer()

    def close_refusing(self) -> None:
        """Close the connections over the cap still waiting (the API stops)."""
        for connection in list(self.refusing):
            connection.close()
        if self._log_timer is not None:
            self._log_timer.cancel()
            self._log_timer = None
            self._log_due()

    def note(self, cause: Cause, peer: str) -> None:
        """Log a refusal or a header timeout: the first of its kind at once, then one line per
        interval with a count."""
        if cause == "refused":
            self.refused += 1
        else:
            self.timed_out += 1
        loop = asyncio.get_running_loop()
        if self._throttle.note(cause, loop.time()):
            log.warning("API connection from %s %s", peer, _what(cause, self))
        if self._throttle.pending and self._log_timer is None:
            self._log_timer = loop.call_later(self._throttle.interval, self._log_due)

    def _log_due(self) -> None:
        self._log_timer = None
        for summary in self._throttle.take_due(asyncio.get_running_loop().time(), everything=True):
            log.warning(
                "%d API connections %s in the last %.0f s",
                summary.count,
                _what(summary.key, self),
                summary.seconds,
            )


def _what(cause: Cause, connections: ApiConnections) -> str:
    if cause == "refused":
        return (
            f"refused: {len(connections.open)} are open, the most allowed (api.max-connections); "
            f"{connections.refused} refused since start"
        )
    return (
        f"closed: no request headers within {connections.header_timeout:g} s "
        f"(api.header-timeout); {connections.timed_out} closed so since start"
    )


class ApiConnection(asyncio.Protocol):
    """One API connection: counted, timed, and handed on to aiohttp's protocol (or, over the
    cap, answered 503 and closed)."""

    def __init__(
        self, connections: ApiConnections, inner: Callable[[], asyncio.BaseProtocol]
    ) -> None:
        self.connections = connections
        self._make_inner = inner
        self.inner: Any = None
        """aiohttp's protocol of the connection, once admitted."""
        self.transport: asyncio.BaseTransport | None = None
        self.peer = "?"
        self._timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peername = transport.get_extra_info("peername")
        self.peer = str(peername[0]) if peername else "?"
        connections = self.connections
        if len(connections.open) >= connections.cap:
            connections.note("refused", self.peer)
            if len(connections.refusing) >= REFUSALS_AT_ONCE:
                transport.close()
                return
            connections.refusing.add(self)
            self._timer = asyncio.get_running_loop().call_later(REFUSAL_WAIT, self.close)
            return
        connections.open[transport] = self
        self.start_timer()
        self.inner = self._make_inner()
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        inner = self.inner
        if inner is not None:
            inner.data_received(data)
        elif self in self.connections.refusing:  # over the cap: its request is answered 503
            if self.transport is not None:  # (uvloop's transports are no asyncio subclasses)
                cast(asyncio.WriteTransport, self.transport).write(SERVICE_UNAVAILABLE)
            self.close()

    def eof_received(self) -> bool | None:
        inner = self.inner
        return inner.eof_received() if inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_timer()
        connections = self.connections
        connections.refusing.discard(self)
        if self.transport is not None and connections.open.get(self.transport) is self:
            del connections.open[self.transport]
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    # ------------------------------------------------------------------ header timer

    def start_timer(self) -> None:
        """Time the next request's headers (``api.header-timeout`` from now)."""
        self.stop_timer()
        transport = self.transport
        if transport is not None and not transport.is_closing():
            self._timer = asyncio.get_running_loop().call_later(
                self.connections.header_timeout, self._expired
            )

    def stop_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        self.connections.note("timeout", self.peer)
        self.close()

    def close(self) -> None:
        """Close the connection (aiohttp's protocol learns it from ``connection_lost``)."""
        self.stop_timer()
        self.connections.refusing.discard(self)
        if self.transport is not None:
            self.transport.close()


class CappedSite(web.BaseSite):
    """A TCP listener of an ``AppRunner`` whose connections go through ``connections`` (as
    ``web.TCPSite`` but for the protocol factory)."""

    __slots__ = ("_connections", "_host", "_port", "_reuse_address")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        connections: ApiConnections,
        *,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = 128,
        reuse_address: bool = True,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._connections = connections
        self._reuse_address = reuse_address

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._connections.factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )

    @property
    def sockets(self) -> list[Any]:
        """The listening sockets, once started."""
        server = self._server
        return list(getattr(server, "sockets", None) or ()) if server is not None else []
