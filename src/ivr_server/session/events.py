"""What an :class:`~ivr_server.session.link.IvrLink` reports to the layer above (past-tense facts)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from ivr_server.wire import DecodeError, GliErrorCode, Message

__all__ = ["DocumentReceived", "DocumentRejected", "LinkClosed", "LinkEvent"]


class DocumentReceived:
    """A valid GctiMsg document arrived.

    One per request, so not a frozen dataclass: its generated ``__init__`` (``object.__setattr__``
    per field) was the costliest step of handing a request up. Its attributes are ``Final``: mypy
    rejects any assignment, and the compiled build makes them read-only at run time."""

    __slots__ = ("call_id", "message")

    def __init__(self, call_id: str | None, message: Message) -> None:
        self.call_id: Final = call_id
        """Its CallId (``None`` for the DialOut / DialOutError forms)."""
        self.message: Final = message
        """The decoded message."""

    def __repr__(self) -> str:
        return f"DocumentReceived(call_id={self.call_id!r}, message={self.message!r})"

    def __eq__(self, other: object) -> bool:
        return (
            type(other) is DocumentReceived
            and self.call_id == other.call_id
            and self.message == other.message
        )

    def __hash__(self) -> int:
        return hash((self.call_id, self.message))


@dataclass(frozen=True, slots=True)
class DocumentRejected:
    """A Data frame arrived that is not a valid GctiMsg document; the link stays up."""

    error: DecodeError
    """What was wrong, and what could still be read from it."""


@dataclass(frozen=True, slots=True)
class LinkClosed:
    """The link is over: the adapter writes what is pending, then closes the connection."""

    reason: str
    """Why, in words for the log."""
    error_code: GliErrorCode | None = None
    """The GLI Error frame queued for the peer, if any."""
    by_peer: bool = False
    """The peer closed the connection (or sent a GLI Error frame)."""


LinkEvent = DocumentReceived | DocumentRejected | LinkClosed
