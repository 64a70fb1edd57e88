"""What the process may hold: the file-descriptor limit, the cap on IVR connections, TCP keep-alive.

Theory of operation. Every connection costs a file descriptor, and a process out of descriptors
can accept nothing at all: not an IVR's login, not the HTTP API's request (the event loop's
accept fails, and the peer gets a reset). So :func:`raise_descriptor_limit` lifts the soft limit
to the hard one at start-up, and :class:`ConnectionGate` keeps IVR connections under the limit
less a reserve (``server.reserved-descriptors``): the API, the log and the configuration file
always find a descriptor. A connection over the cap is accepted, told why (a GLI Error frame,
code 7) and closed at once; no accept fails for want of a descriptor, so the accept loop never
spins on ``EMFILE``. Refusals are logged at once, then at most once per
:data:`REFUSAL_LOG_INTERVAL` with a count (:class:`~ivr_server.throttle.LogThrottle`), so a flood
of connections cannot flood the log.

The gate also caps the connections of one peer address (``server.max-connections-per-peer``), so
that one host holding idle connections cannot take every place: it counts them by host in
``admit`` / ``closed``. A connection over either cap gets the same answer (GLI Error code 7).

The HTTP API has a cap of its own (:func:`api_connection_cap`: ``api.max-connections``, at most
the reserved descriptors less :data:`OTHER_DESCRIPTORS`), so that the two listeners cannot take
each other's descriptors: IVR connections never take the reserve, and the API takes only its
share of it (``api/limits.py``).

:func:`set_tcp_keep_alive` sets ``SO_KEEPALIVE`` and the probe timers on a listening socket; on
Linux the sockets it accepts inherit them, so no system call is spent per connection.
"""

from __future__ import annotations

__all__ = [
    "OTHER_DESCRIPTORS",
    "REFUSAL_LOG_INTERVAL",
    "ConnectionGate",
    "api_connection_cap",
    "connection_cap",
    "descriptor_limit",
    "raise_descriptor_limit",
    "set_tcp_keep_alive",
]

import logging
import socket
from typing import Any, Final

from ivr_server.config import ServerConfig, ServerOptions, TcpKeepAlive
from ivr_server.throttle import DEFAULT_INTERVAL, LogThrottle

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger("ivr_server.runtime")

REFUSAL_LOG_INTERVAL: Final = DEFAULT_INTERVAL
"""Seconds between two log lines about connections refused at the cap (the first is at once)."""
OTHER_DESCRIPTORS: Final = 32
"""Of ``server.reserved-descriptors``, what the HTTP API's connections never take either: the
log, the configuration file, the listening sockets, the switch links, the webhooks' connections."""


def descriptor_limit() -> int | None:
    """The process's soft file-descriptor limit (``None``: unknown or unlimited)."""
    if resource is None:  # pragma: no cover - not on Windows
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else int(soft)


def raise_descriptor_limit() -> tuple[int | None, int | None]:
    """Raise the soft file-descriptor limit to the hard limit; ``(before, after)``."""
    before = descriptor_limit()
    if resource is None:  # pragma: no cover - not on Windows
        return before, before
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:  # e.g. an unlimited hard limit the kernel refuses
            log.warning("cannot raise the file-descriptor limit from %d to %d: %s", soft, hard, exc)
    return before, descriptor_limit()


def connection_cap(options: ServerOptions, limit: int | None) -> int | None:
    """The most IVR connections open at once (``None``: no cap): ``max-connections``, at most
    the descriptor limit less ``reserved-descriptors`` (and at least 1)."""
    cap = options.max_connections
    if limit is not None:
        room = max(1, limit - options.reserved_descriptors)
        cap = room if cap is None else min(cap, room)
    return cap


def api_connection_cap(config: ServerConfig, limit: int | None) -> int:
    """The most HTTP API connections open at once: ``api.max-connections``, at most
    ``server.reserved-descriptors`` less :data:`OTHER_DESCRIPTORS` (and at least 1) when the
    descriptor limit is known, so that the API cannot take the descriptors IVR connections may
    use, nor those the rest of the server needs."""
    cap = config.api.max_connections
    if limit is not None:
        cap = min(cap, max(1, config.server.reserved_descriptors - OTHER_DESCRIPTORS))
    return cap


class ConnectionGate:
    """Admits IVR connections up to a cap overall and a cap per peer address; counts and logs
    (rate-limited) those it refuses."""

    def __init__(
        self,
        cap: int | None,
        log_interval: float = REFUSAL_LOG_INTERVAL,
        per_peer: int | None = None,
    ) -> None:
        self.cap = cap
        """The most connections open at once (``None``: no cap)."""
        self.per_peer = per_peer
        """The most connections open at once from one peer address (``None``: no cap)."""
        self.open = 0
        """Connections admitted and not closed yet."""
        self.refused = 0
        """Connections refused since start."""
        self.by_host: dict[str, int] = {}
        """Connections admitted and not closed yet, by peer address (only those with some)."""
        self._throttle: LogThrottle[None] = LogThrottle(log_interval)
        """The refusals' log lines: one cause, a refusal."""

    @property
    def log_interval(self) -> float:
        """Seconds between two log lines about refusals (the first is at once)."""
        return self._throttle.interval

    @log_interval.setter
    def log_interval(self, seconds: float) -> None:
        self._throttle.interval = seconds

    def admit(self, host: str, now: float) -> bool:
        """A connection from ``host`` was accepted: may it stay? (If so, :meth:`closed` must
        follow when it closes.)"""
        cap, per_peer, by_host = self.cap, self.per_peer, self.by_host
        from_host = by_host.get(host, 0)
        if (cap is None or self.open < cap) and (per_peer is None or from_host < per_peer):
            self.open += 1
            by_host[host] = from_host + 1
            return True
        self.refused += 1
        if self._throttle.note(None, now):
            if cap is not None and self.open >= cap:
                self._log(f"connection from {host} refused")
            else:
                log.warning(
                    "connection from %s refused: %d IVR connections from %s are open, the most "
                    "allowed from one address (server.max-connections-per-peer); %d refused "
                    "since start",
                    host,
                    from_host,
                    host,
                    self.refused,
                )
        return False

    @property
    def full(self) -> bool:
        """Are as many connections open as the cap allows?"""
        return self.cap is not None and self.open >= self.cap

    def peer_fits(self, host: str) -> bool:
        """Is ``host`` under its own cap (``max-connections-per-peer``)?"""
        return self.per_peer is None or self.by_host.get(host, 0) < self.per_peer

    def closed(self, host: str) -> None:
        """An admitted connection from ``host`` closed."""
        self.open -= 1
        by_host = self.by_host
        left = by_host.get(host, 0) - 1
        if left > 0:
            by_host[host] = left
        else:
            by_host.pop(host, None)

    def log_refusals(self, now: float) -> None:
        """Log the refusals not logged yet (one line), if any."""
        for summary in self._throttle.take_due(now, everything=True):
            self._log(
                f"{summary.count} IVR connections refused in the last {summary.seconds:.0f} s"
            )

    def _log(self, what: str) -> None:
        log.warning(
            "%s: %d IVR connections are open, the most allowed (server.max-connections, or the "
            "file-descriptor limit less server.reserved-descriptors, or "
            "server.max-connections-per-peer from one address); %d refused since start",
            what,
            self.open,
            self.refused,
        )

    @property
    def log_due(self) -> bool:
        """Refusals wait to be logged (the owner logs them once the interval is over)."""
        return self._throttle.pending


def set_tcp_keep_alive(sock: Any, options: TcpKeepAlive) -> None:
    """Turn on TCP keep-alive on ``sock`` (a listening socket: Linux passes the settings on to
    the sockets it accepts) with ``options``' timers, where the system has them."""
    if not options.enabled:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in (
            ("TCP_KEEPIDLE", options.idle),
            ("TCP_KEEPINTVL", options.interval),
            ("TCP_KEEPCNT", options.count),
        ):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, int(value))
    except OSError as exc:
        log.warning("cannot set TCP keep-alive on %s: %s", _name(sock), exc)


def _name(sock: Any) -> str:
    try:
        return str(sock.getsockname())
    except OSError:
        return "a socket"
