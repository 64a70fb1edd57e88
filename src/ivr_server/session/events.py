"""What an :class:`~ivr_server.session.link.IvrLink` reports to the layer above (past-tense facts)."""

from __future__ import annotations

from dataclasses import dataclass

from ivr_server.wire import DecodeError, GliErrorCode, Message

__all__ = ["DocumentReceived", "DocumentRejected", "LinkClosed", "LinkEvent"]


@dataclass(frozen=True, slots=True)
class DocumentReceived:
    """A valid GctiMsg document arrived."""

    call_id: str | None
    """Its CallId (``None`` for the DialOut / DialOutError forms)."""
    message: Message
    """The decoded message."""


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
