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

The gate counts connections in ``admit`` / ``closed`` with the peer's host, so that per-peer caps
can be added there.

:func:`set_tcp_keep_alive` sets ``SO_KEEPALIVE`` and the probe timers on a listening socket; on
Linux the sockets it accepts inherit them, so no system call is spent per connection.
"""

from __future__ import annotations

__all__ = [
    "REFUSAL_LOG_INTERVAL",
    "ConnectionGate",
    "connection_cap",
    "descriptor_limit",
    "raise_descriptor_limit",
    "set_tcp_keep_alive",
]

import logging
import socket
from typing import Any, Final

from ivr_server.config import ServerOptions, TcpKeepAlive
from ivr_server.throttle import DEFAULT_INTERVAL, LogThrottle

try:
    import resource
except ImportError:  # pragma: no cover - not on Windows
    resource = None  # type: ignore[assignment]

log = logging.getLogger("ivr_server.runtime")

REFUSAL_LOG_INTERVAL: Final = DEFAULT_INTERVAL
"""Seconds between two log lines about connections refused at the cap (the first is at once)."""


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


class ConnectionGate:
    """Admits IVR connections up to a cap; counts and logs (rate-limited) those it refuses."""

    def __init__(self, cap: int | None, log_interval: float = REFUSAL_LOG_INTERVAL) -> None:
        self.cap = cap
        """The most connections open at once (``None``: no cap)."""
        self.open = 0
        """Connections admitted and not closed yet."""
        self.refused = 0
        """Connections refused since start."""
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
        cap = self.cap
        if cap is None or self.open < cap:
            self.open += 1
            return True
        self.refused += 1
        if self._throttle.note(None, now):
            self._log(f"connection from {host} refused")
        return False

    def closed(self, host: str) -> None:
        """An admitted connection from ``host`` closed."""
        self.open -= 1

    def log_refusals(self, now: float) -> None:
        """Log the refusals not logged yet (one line), if any."""
        for summary in self._throttle.take_due(now, everything=True):
            self._log(
                f"{summary.count} IVR connections refused in the last {summary.seconds:.0f} s"
            )

    def _log(self, what: str) -> None:
        log.warning(
            "%s: %d IVR connections are open, the most allowed (server.max-connections, or the "
            "file-descriptor limit less server.reserved-descriptors); %d refused since start",
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
