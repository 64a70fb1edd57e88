"""A call's record (:class:`Call`), where a new call lands, and the timer settings of calls.

:class:`PortTarget` is the port the service's mode procedure found; :class:`CallSettings` the
timer durations every call runs with, and which port DNs of premise switches are Behind ports
(:class:`DeferPolicy`: how the premise events that come before a ``NewCall`` are kept there).

A :class:`Call` is the server's record of the call as its XML side sees it: the identifiers the
IVR and the switch gave it, its state in the table of :mod:`ivr_server.calls.machine`, who
receives its messages, and what a routing dialog or a ``CallInfoReq`` needs to remember.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from ivr_server.calls.machine import CallState
from ivr_server.calls.timeline import TimelineLimits
from ivr_server.logs import fields
from ivr_server.switch import EventEstablished, EventReleased, EventRinging, Switch
from ivr_server.wire import KvList, Message
from ivr_server.wire import messages as m

__all__ = [
    "AccessNumbersFn",
    "Call",
    "CallSettings",
    "DeferPolicy",
    "DialOutReportFn",
    "Owner",
    "PortKey",
    "PortSlot",
    "PortTarget",
    "SendFn",
    "call_id_of",
    "call_key",
    "scope_of",
]

Owner = Hashable
"""Whoever receives a call's messages (the service passes its ``Session`` objects)."""
SendFn = Callable[[Any, str, Message], None]
"""``send(owner, call_id, message)``."""
DialOutReportFn = Callable[[Any, str, str, str | None], None]
"""``report(dial_out, kind, call_id, cause)``: the progress of an outbound call."""
AccessNumbersFn = Callable[[Any, Any, float], Any]
"""``access_numbers(call, msg, now)``: the service's answer to an ``AccessNumGet`` or
``AccessNumCancel`` of an In-Front/Behind call (MODES-AND-HA X1-X2, G24), an
``m.AccessNumResp`` to send at once, or ``None`` when it answers later through
:meth:`~ivr_server.calls.CallManager.answer_access_num` (a peer server asked over HTTP)."""
PortKey = tuple[str, str]
"""(switch name, DN): a port DN of a premise switch."""


def scope_of(ivr: str | None, owner: Owner | None) -> str:
    """Whose CallIds a request names: its IVR's (the ``ClientName`` it logged in as), or, for a
    session that never logged in (Network mode, G23), that session's own. CallIds are unique per
    IVR, not per server (docs/decisions.md, issue 26): no IVR can refuse or detect another's."""
    return ivr if ivr else f"\x00{id(owner):x}"


def call_key(scope: str, call_id: str) -> str:
    """The key of a call in the server's tables: its CallId within its scope
    (:func:`scope_of`)."""
    return f"{scope}\x1f{call_id}"


def call_id_of(key: str) -> str:
    """The CallId of a call's key (:func:`call_key`), for logs and answers."""
    return key.rpartition("\x1f")[2]


@dataclass(frozen=True, slots=True)
class DeferPolicy:
    """How a premise switch's events at a Behind port DN that come before the IVR's ``NewCall``
    are kept (MODES-AND-HA G14; the premise T-Server's ``defer-tlib-events`` and
    ``waiting-for-newcall-timeout``)."""

    defer: bool = True
    """Keep them (the latest premise call of the DN); ``False``: drop them."""
    timeout: float = 30.0
    """Seconds they are kept for a ``NewCall`` before they are dropped."""


@dataclass(frozen=True, slots=True)
class CallSettings:
    """Timer durations in seconds, the release default (PROTOCOL.md §7, §3.3.6), and the Behind
    ports of premise switches."""

    router_timeout: float = 4.0
    call_timeout: float = 8 * 3600.0
    wait_for_ringing: float = 60.0
    orphan_call_timeout: float = 600.0
    active_release: bool = True
    make_call_timeout: float = 60.0
    """How long a ``MakeCall`` waits for the destination to answer (MODES-AND-HA G10)."""
    behind_ports: Mapping[PortKey, DeferPolicy] = field(default_factory=dict)
    """Every IVR port DN of a premise switch, with how the events there that come before the
    ``NewCall`` are kept. A Behind call on a DN missing here is still correlated; only nothing is
    kept for it beforehand."""
    timeline: TimelineLimits = field(default_factory=TimelineLimits)
    """How much of each call's timeline is kept, and for how long after it ended."""


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
    mode: Literal["In-Front", "Behind", "Network"]
    """The call's mode (Network: ``dn`` is the routing DN the call waits at, ``port`` the
    ``CalledNum`` as sent; MODES-AND-HA §1.3)."""
    encoding: str = "ISO-8859-1"
    """The output encoding of the IVR's sessions: the call's user data must fit one reply
    written in it (``wire.limits.USER_DATA_WIRE_LIMIT``)."""


class Call:
    """One call of an IVR port, as the server's XML side sees it."""

    __slots__ = (
        "ani",
        "answered",
        "behind",
        "call_id",
        "called_num",
        "conn_id",
        "consult_conn_id",
        "control",
        "control_error",
        "dial_out",
        "dn",
        "dnis",
        "encoding",
        "held",
        "held_route",
        "ivr",
        "key",
        "last_event",
        "last_user_data",
        "legacy",
        "network",
        "other_dn",
        "owner",
        "parties",
        "port",
        "queue",
        "resume",
        "route_dn",
        "route_started",
        "state",
        "switch",
        "switch_call_id",
        "treatment",
        "uuid",
        "version",
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
        self.key = call_key(scope_of(target.ivr, owner), call_id)
        """The call's key in every table of the call side: its CallId within its IVR's scope
        (:func:`call_key`); ``call_id`` is what goes on the wire."""
        self.port = target.port
        self.dn = target.dn
        self.switch = target.switch
        self.encoding = target.encoding
        self.behind = target.mode == "Behind"
        """A call on a premise switch's port (Behind mode): the PBX reports it at the port."""
        self.network = target.mode == "Network"
        """A Network-mode call (MODES-AND-HA §1.3): it waits at a routing DN, not at a port, and
        runs the table of :mod:`ivr_server.calls.network_table`. ``dn`` is that routing DN (the
        ``CalledNum`` after ``called-num-subset``: ThisDN), ``port`` and ``called_num`` the
        ``CalledNum`` as sent, ``ivr`` the session's IVR, or ``""`` for a session that never
        logged in (G23: the session itself owns the call)."""
        self.called_num = called_num
        self.ani = ani
        self.dnis = dnis
        self.legacy = legacy
        self.version = "1.0" if legacy else "2.0"
        """The call's protocol version (``NewCall/@Version``) where it matters: a Network call's
        ``CallInfoResp`` has ``FirstHomeLocation`` from 3.0 on."""
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
        self.other_dn: str | None = None
        """Behind: the other party, from the port's latest premise event (``OtherDN``)."""
        self.queue: str | None = None
        """Behind: the ACD queue the call came through, if it did (``PortQueue``)."""
        # call control (calls.control)
        self.control: str | None = None
        """The call-control request outstanding (``OneStepXfer``, ``MakeCall``...): a refusal
        answers it ``CallError FailedReq=<it>``."""
        self.resume = CallState.STARTED
        """The state a refused call-control request goes back to (the one it came in)."""
        self.consult_conn_id: str | None = None
        """The consultation call's ConnID (InitXfer/InitConf) while the switch has it."""
        self.held = False
        """The port's call is on hold (a consultation is in progress)."""
        self.parties: tuple[str, ...] = ()
        """The DNs added to the call by a conference, in order."""
        self.control_error: tuple[str, int, str] | None = None
        """The latest switch refusal of a call-control request: (request, code, the switch's own
        message), for logs and the API (G12)."""

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
        if self.behind:
            if event.other_dn:
                self.other_dn = event.other_dn
            if event.this_queue:
                self.queue = event.this_queue


class PortSlot:
    """A Behind port DN of a premise switch as the call side sees it: the call waiting there for
    the PBX to report it (``AWAIT_RINGING``), or, before any ``NewCall``, the premise call whose
    events are kept for one (:mod:`ivr_server.calls.behind`). At most one of each."""

    __slots__ = ("conn_id", "events", "key", "policy", "waiting")

    def __init__(self, key: PortKey, policy: DeferPolicy | None) -> None:
        self.key: Final = key
        self.policy = policy
        """How early events are kept; ``None``: the DN is not a configured Behind port (the slot
        lives while a call waits there, and keeps nothing)."""
        self.waiting: Call | None = None
        """The call waiting for the PBX to report it at the DN."""
        self.conn_id: str | None = None
        """The ConnID of the premise call whose events are kept."""
        self.events: list[EventRinging | EventEstablished] = []
        """Its events, oldest first (at most one of each kind)."""

    def keeps(self) -> bool:
        """Whether events of a premise call are kept here."""
        return self.conn_id is not None

    def drop(self) -> None:
        """Forget the kept events."""
        self.conn_id = None
        self.events = []
