"""What the client library raises: one root, :class:`ClientError`, split by what went wrong.

Callers catch meanings, not strings: the connection could not be opened (:class:`ConnectFailed`),
the link is over (:class:`ConnectionLost`), nothing came in time (:class:`RequestTimeout`), the
server sent something undecodable (:class:`BadDocument`, the link stays up), or a document came
when none was expected (:class:`UnexpectedDocument`, an ``AssertionError`` for tests).
"""

from __future__ import annotations

from ivr_server.client.documents import Received
from ivr_server.errors import IvrServerError
from ivr_server.wire import DecodeError

__all__ = [
    "BadDocument",
    "ClientError",
    "ConnectFailed",
    "ConnectionLost",
    "RequestTimeout",
    "UnexpectedDocument",
]


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


class UnexpectedDocument(ClientError, AssertionError):
    """:meth:`IvrClient.expect_nothing` saw a document arrive; ``received`` is that document."""

    def __init__(self, received: Received) -> None:
        super().__init__(
            f"unexpected {received.message.tag} on CallId {received.call_id!r}: "
            f"{received.message!r}"
        )
        self.received = received
