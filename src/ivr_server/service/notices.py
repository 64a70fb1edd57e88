"""Events of the server itself (not of a switch) that watchers of the event stream want: sessions
coming and going, and the progress of predictive calls. They are delivered to the same
``IvrService.listeners`` as switch events, with an empty switch name, and have the same shape
(frozen ``msgspec`` structs with a ``name``) so the API publishes both alike."""

from __future__ import annotations

from typing import ClassVar

from ivr_server.switch import SwitchEvent

__all__ = ["NOTICES", "DialOutProgress", "SessionClosed", "SessionLoggedIn", "SessionOpened"]


class SessionOpened(SwitchEvent, frozen=True, kw_only=True):
    """An IVR connection was accepted."""

    name: ClassVar[str] = "SessionOpened"

    session: int
    peer: str


class SessionLoggedIn(SwitchEvent, frozen=True, kw_only=True):
    """A session's LoginReq succeeded (``status``: OK, NoSuchClient, InitInProgress)."""

    name: ClassVar[str] = "SessionLoggedIn"

    session: int
    ivr: str
    version: str
    status: str


class SessionClosed(SwitchEvent, frozen=True, kw_only=True):
    """An IVR connection closed."""

    name: ClassVar[str] = "SessionClosed"

    session: int
    peer: str
    ivr: str | None
    reason: str


class DialOutProgress(SwitchEvent, frozen=True, kw_only=True):
    """A step of a predictive call (docs/calls.md "Outbound calls")."""

    name: ClassVar[str] = "DialOutProgress"

    ref_id: str
    kind: str
    dn: str
    dest: str
    call_id: str | None = None
    error_code: int | None = None
    cause: str | None = None


NOTICES: tuple[type[SwitchEvent], ...] = (
    SessionOpened,
    SessionLoggedIn,
    SessionClosed,
    DialOutProgress,
)
"""Every notice type (for the event stream's ``type`` filter)."""
