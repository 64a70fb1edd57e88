"""A call's record (:class:`Call`), where a new call lands, and the timer settings of calls.

:class:`PortTarget` is the port the service's mode procedure found; :class:`CallSettings` the
timer durations every call runs with.

A :class:`Call` is the server's record of the call as its XML side sees it: the identifiers the
IVR and the switch gave it, its state in the table of :mod:`ivr_server.calls.machine`, who
receives its messages, and what a routing dialog or a ``CallInfoReq`` needs to remember.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Literal

from ivr_server.calls.machine import CallState
from ivr_server.logs import fields
from ivr_server.switch import EventEstablished, EventReleased, EventRinging, Switch
from ivr_server.wire import KvList, Message
from ivr_server.wire import messages as m

__all__ = ["Call", "CallSettings", "DialOutReportFn", "Owner", "PortTarget", "SendFn"]

Owner = Hashable
"""Whoever receives a call's messages (the service passes its ``Session`` objects)."""
SendFn = Callable[[Any, str, Message], None]
"""``send(owner, call_id, message)``."""
DialOutReportFn = Callable[[Any, str, str, str | None], None]
"""``report(dial_out, kind, call_id, cause)``: the progress of an outbound call."""


@dataclass(frozen=True, slots=True)
class CallSettings:
    """Timer durations in seconds and the release default (PROTOCOL.md §7, §3.3.6)."""

    router_timeout: float = 4.0
    call_timeout: float = 8 * 3600.0
    wait_for_ringing: float = 60.0
    orphan_call_timeout: float = 600.0
    active_release: bool = True


@dataclass(frozen=True, slots=True)
class PortTarget:
    """Where a new call lands: the result of the service's mode procedure (PROTOCOL.md §5.2)."""

    ivr: str
    """The IVR object's name."""
    port: str
    """The IVR port number (NewCall ``CalledNum``)."""
    dn: str
    """The port's DN."""
    switch: Switch
    """The switch carrying the DN."""
    mode: Literal["In-Front", "Behind"]
    """The call's mode."""
    encoding: str = "ISO-8859-1"
    """The output encoding of the IVR's sessions: the call's user data must fit one reply
    written in it (``wire.limits.USER_DATA_WIRE_LIMIT``)."""


class Call:
    """One call of an IVR port, as the server's XML side sees it."""

    __slots__ = (
        "ani",
        "answered",
        "call_id",
        "called_num",
        "conn_id",
        "dial_out",
        "dn",
        "dnis",
        "encoding",
        "held_route",
        "ivr",
        "last_event",
        "last_user_data",
        "legacy",
        "owner",
        "port",
        "route_dn",
        "route_started",
        "state",
        "switch",
        "switch_call_id",
        "treatment",
        "uuid",
    )

    def __init__(
        self,
        call_id: str,
        owner: Owner | None,
        target: PortTarget,
        called_num: str,
        ani: str | None = None,
        dnis: str | None = None,
        legacy: bool = False,
    ):
        self.call_id = call_id
        self.owner = owner
        self.ivr = target.ivr
        self.port = target.port
        self.dn = target.dn
        self.switch = target.switch
        self.encoding = target.encoding
        self.called_num = called_num
        self.ani = ani
        self.dnis = dnis
        self.legacy = legacy
        self.state = CallState.AWAIT_RINGING
        self.dial_out: Any = None
        """The predictive-call request an outbound call answers (reported to as it goes)."""
        self.answered = False
        self.conn_id: str | None = None
        self.switch_call_id: int | None = None
        self.last_event: str | None = None
        self.last_user_data: KvList = ()
        self.route_dn: str | None = None
        self.route_started = 0.0
        self.treatment: str | None = None
        self.held_route: m.RouteResponse | None = None
        self.uuid: str | None = None

    def __repr__(self) -> str:
        return f"<Call {self.call_id} {self.ivr}/{self.port} {self.state.value} {self.conn_id}>"

    def log_fields(self) -> dict[str, Any]:
        """The context fields of a log line about this call (docs/operations.md)."""
        return fields(
            call_id=self.call_id, conn_id=self.conn_id, ivr=self.ivr, port=self.port, dn=self.dn
        )

    def track(self, event: EventRinging | EventEstablished | EventReleased) -> None:
        """Note what a switch event at the port tells of the call (``CallInfoReq`` reports it)."""
        self.last_event = event.name
        if event.ani:
            self.ani = event.ani
        if event.dnis:
            self.dnis = event.dnis
