"""What the CSTA application session reports to its user (the premise switch), as past-tense facts."""

from __future__ import annotations

__all__ = [
    "DocumentIgnored",
    "EventReceived",
    "InvokeTimedOut",
    "ProtocolError",
    "RequestFailed",
    "ResponseReceived",
    "SessionEvent",
    "SessionLost",
    "SessionRefused",
    "SessionStarted",
    "SystemStatusReceived",
]

from dataclasses import dataclass

from ivr_server.switch.csta.messages import (
    CstaEvent,
    CstaMessage,
    CstaRequest,
    NegativeResponse,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEvent:
    """Base of the session's reports."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(SessionEvent):
    """The PBX accepted the application session (StartApplicationSessionPosResponse)."""

    session_id: str
    protocol_version: str | None
    session_duration_s: int | None
    """The negotiated duration; the heartbeat keeps the session within it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionRefused(SessionEvent):
    """The PBX refused the application session; the link should be closed and retried later."""

    error: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionLost(SessionEvent):
    """The session is over (peer closed, stopped by the PBX, expired, or the stream broke)."""

    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EventReceived(SessionEvent):
    """A CSTA event, with the DN of the monitor that reported it (``None``: unknown monitor)."""

    dn: str | None
    event: CstaEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answered(SessionEvent):
    """The outcome of one request, matched by its invoke id."""

    invoke_id: int
    request: CstaRequest
    dn: str | None
    """The DN the request was about, as given when it was sent."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseReceived(_Answered):
    """A positive response, matched to the request it answers."""

    response: CstaMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFailed(_Answered):
    """A negative response (the CSTA error value kept), matched to its request."""

    error: NegativeResponse


@dataclass(frozen=True, slots=True, kw_only=True)
class InvokeTimedOut(_Answered):
    """No response came within the invoke timeout; the request is forgotten."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SystemStatusReceived(SessionEvent):
    """The PBX reported its status (the session has answered it)."""

    status: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentIgnored(SessionEvent):
    """A well-formed document of a type the session does not use (e.g. CallInformationEvent)."""

    invoke_id: int
    tag: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtocolError(SessionEvent):
    """The PBX sent something wrong; ``fatal`` when the stream cannot go on (bad frame)."""

    reason: str
    invoke_id: int | None = None
    fatal: bool = False
