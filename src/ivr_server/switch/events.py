"""T-Library-style events published by a switch, and the value types they carry (PROTOCOL.md §10).

An event is a fact that already happened on the switch, so every class is named as T-Library names
it (``EventAgentLogin``) and its ``name`` class attribute holds that name for printing and logs.
Events are frozen, slotted and keyword-only. ``reference_id`` is the T-Library ReferenceID of the
request that caused the event (echoed unchanged); unsolicited events carry ``None``.

Call events (:class:`CallEvent` and its subclasses) carry the call's identity and the attributes a
T-Server puts on every call event (ConnID, CallID, ANI, DNIS, ThisDN, OtherDN, queues, user data).
Routing events follow the routing-point dialog of PROTOCOL.md §6.2; :class:`RequestRouteCall` and
:class:`RequestApplyTreatment` are the router's requests as the T-Server side receives them, handed
to the call's owner through the same queue.
"""

from __future__ import annotations

from enum import IntEnum
from typing import ClassVar

import msgspec

from ivr_server.vocabulary import DnType, RouteType, WorkMode
from ivr_server.wire.kv import KvList

__all__ = [
    "AgentStatus",
    "CallEvent",
    "DnType",
    "EventAbandoned",
    "EventAddressInfo",
    "EventAgentLogin",
    "EventAgentLogout",
    "EventAgentNotReady",
    "EventAgentReady",
    "EventAttachedDataChanged",
    "EventDNBackInService",
    "EventDNOutOfService",
    "EventDestinationBusy",
    "EventDialing",
    "EventDiverted",
    "EventError",
    "EventEstablished",
    "EventHeld",
    "EventLinkConnected",
    "EventLinkDisconnected",
    "EventPartyAdded",
    "EventPartyDeleted",
    "EventQueued",
    "EventRegistered",
    "EventReleased",
    "EventRetrieved",
    "EventRinging",
    "EventRouteRequest",
    "EventRouteUsed",
    "EventTreatmentApplied",
    "EventTreatmentEnd",
    "EventTreatmentNotApplied",
    "EventUnregistered",
    "RequestApplyTreatment",
    "RequestRouteCall",
    "RouteType",
    "RoutingEvent",
    "SwitchEvent",
    "WorkMode",
]


class AgentStatus(IntEnum):
    """The ``AgentStatus`` extension of EventAddressInfo (PROTOCOL.md §3.2.1, XMLG p.69 Table 16)."""

    UNKNOWN = -1
    LOGGED_OUT = 0
    LOGGED_IN = 1
    READY = 2
    NOT_READY = 3
    ACW = 4
    WALK_AWAY = 5


class SwitchEvent(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Base of every event a switch publishes."""

    name: ClassVar[str]
    """The T-Library event name, e.g. ``EventAgentLogin``."""

    switch: str
    """Name of the switch that published the event."""
    reference_id: int | None = None
    """ReferenceID of the request that caused the event; ``None`` for unsolicited events."""


class EventLinkConnected(SwitchEvent, frozen=True, kw_only=True):
    """The link between the T-Server and the switch is up."""

    name: ClassVar[str] = "EventLinkConnected"

    tserver: str
    """Application name of the T-Server whose link came up (``MonitorInfo/Server/@Name``)."""


class EventLinkDisconnected(SwitchEvent, frozen=True, kw_only=True):
    """The link between the T-Server and the switch is down."""

    name: ClassVar[str] = "EventLinkDisconnected"

    tserver: str
    """Application name of the T-Server whose link went down."""


class EventRegistered(SwitchEvent, frozen=True, kw_only=True):
    """A DN is registered: its events are delivered to the T-Library client."""

    name: ClassVar[str] = "EventRegistered"

    dn: str
    """The registered DN."""


class EventUnregistered(SwitchEvent, frozen=True, kw_only=True):
    """A DN is no longer registered (unregistered by request, or removed from the configuration)."""

    name: ClassVar[str] = "EventUnregistered"

    dn: str
    """The unregistered DN."""


class EventDNOutOfService(SwitchEvent, frozen=True, kw_only=True):
    """A DN went out of service."""

    name: ClassVar[str] = "EventDNOutOfService"

    dn: str
    """The DN now out of service."""


class EventDNBackInService(SwitchEvent, frozen=True, kw_only=True):
    """A DN is back in service."""

    name: ClassVar[str] = "EventDNBackInService"

    dn: str
    """The DN now in service again."""


class EventAgentLogin(SwitchEvent, frozen=True, kw_only=True):
    """An agent logged in on a DN (always followed by EventAgentReady or EventAgentNotReady)."""

    name: ClassVar[str] = "EventAgentLogin"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    agent_id: str
    """The agent login id (AttributeAgentID)."""
    queue: str
    """The ACD queue logged into (AttributeThisQueue); empty when none was given."""


class EventAgentLogout(SwitchEvent, frozen=True, kw_only=True):
    """An agent logged out of a DN."""

    name: ClassVar[str] = "EventAgentLogout"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    agent_id: str
    """The agent that logged out (AttributeAgentID)."""
    queue: str
    """The queue logged out of (AttributeThisQueue)."""


class EventAgentReady(SwitchEvent, frozen=True, kw_only=True):
    """An agent is ready."""

    name: ClassVar[str] = "EventAgentReady"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    agent_id: str
    """The agent (AttributeAgentID)."""
    queue: str
    """The agent's queue (AttributeThisQueue)."""
    work_mode: WorkMode
    """The work mode now in effect (AttributeWorkMode)."""


class EventAgentNotReady(SwitchEvent, frozen=True, kw_only=True):
    """An agent is not ready."""

    name: ClassVar[str] = "EventAgentNotReady"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    agent_id: str
    """The agent (AttributeAgentID)."""
    queue: str
    """The agent's queue (AttributeThisQueue)."""
    work_mode: WorkMode
    """The work mode now in effect (AttributeWorkMode); AfterCallWork / WalkAway refine NotReady."""


class EventAddressInfo(SwitchEvent, frozen=True, kw_only=True):
    """Answer to TQueryAddress: the DN and the state of its agent."""

    name: ClassVar[str] = "EventAddressInfo"

    dn: str
    """The queried DN (AttributeThisDN)."""
    dn_type: DnType
    """The DN's configured type."""
    agent_status: AgentStatus
    """The ``AgentStatus`` extension (PROTOCOL.md §3.2.1); ``LOGGED_OUT`` when no agent is there."""
    agent_id: str | None
    """The logged-in agent, or ``None``."""
    queue: str | None
    """The logged-in agent's queue, or ``None``."""
    work_mode: WorkMode
    """The agent's work mode; ``UNKNOWN`` when no agent is there."""


class EventError(SwitchEvent, frozen=True, kw_only=True):
    """A request failed; nothing changed on the switch."""

    name: ClassVar[str] = "EventError"

    dn: str | None
    """The request's DN (AttributeThisDN), if it had one."""
    error_code: int
    """AttributeErrorCode: a :class:`~ivr_server.switch.errors.TErrorCode` value (decimal on the wire)."""
    error_message: str
    """Human-readable reason (AttributeErrorMessage); for logs, never for decisions."""
    request: str
    """T-Library name of the failed request, e.g. ``TAgentLogin``."""
    conn_id: str | None = None
    """AttributeConnID of the call the failed request was about, if any."""


class CallEvent(SwitchEvent, frozen=True, kw_only=True):
    """An event about one call at one DN, with the attributes every call event carries."""

    name: ClassVar[str] = "CallEvent"

    dn: str
    """AttributeThisDN: the DN the event is about."""
    conn_id: str
    """AttributeConnID: 16 lower-case hex digits."""
    call_id: int
    """AttributeCallID: the switch's call number."""
    ani: str | None = None
    """AttributeANI."""
    dnis: str | None = None
    """AttributeDNIS."""
    this_queue: str | None = None
    """AttributeThisQueue."""
    other_dn: str | None = None
    """AttributeOtherDN."""
    other_queue: str | None = None
    """AttributeOtherQueue."""
    user_data: KvList = ()
    """AttributeUserData: the call's whole attached data after the event."""
    extensions: KvList = ()
    """AttributeExtensions of the event."""


class EventRinging(CallEvent, frozen=True, kw_only=True):
    """A call is alerting at ``dn``."""

    name: ClassVar[str] = "EventRinging"


class EventEstablished(CallEvent, frozen=True, kw_only=True):
    """A call is connected at ``dn``."""

    name: ClassVar[str] = "EventEstablished"


class EventDialing(CallEvent, frozen=True, kw_only=True):
    """``dn`` is dialing ``other_dn`` (an outbound call placed by the IVR, DialOutInit; a call
    placed by TMakeCall; the consultation call of TInitiateTransfer/TInitiateConference)."""

    name: ClassVar[str] = "EventDialing"


class EventAbandoned(CallEvent, frozen=True, kw_only=True):
    """The call ended before it was established (an outbound call that failed)."""

    name: ClassVar[str] = "EventAbandoned"


class EventReleased(CallEvent, frozen=True, kw_only=True):
    """``dn`` left the call (released by request, or the caller hung up: ``reference_id`` None).
    After TSingleStepTransfer or TCompleteTransfer the port's EventReleased carries that
    request's ReferenceID: the transfer is complete (``CallStatus XferComplete``)."""

    name: ClassVar[str] = "EventReleased"


class EventHeld(CallEvent, frozen=True, kw_only=True):
    """``dn`` put the call on hold (the original call of a consultation: InitXfer, InitConf,
    an emulated single-step transfer)."""

    name: ClassVar[str] = "EventHeld"


class EventRetrieved(CallEvent, frozen=True, kw_only=True):
    """``dn`` took the held call back (RetrieveCall, CompleteConf, a failed or ended
    consultation)."""

    name: ClassVar[str] = "EventRetrieved"


class EventDestinationBusy(CallEvent, frozen=True, kw_only=True):
    """The party ``dn`` dialled (``other_dn``) is busy: the call placed (MakeCall, a
    consultation) did not reach it."""

    name: ClassVar[str] = "EventDestinationBusy"


class EventPartyAdded(CallEvent, frozen=True, kw_only=True):
    """``other_dn`` joined the call of ``dn`` (a conference: CompleteConf, OneStepConf)."""

    name: ClassVar[str] = "EventPartyAdded"


class EventPartyDeleted(CallEvent, frozen=True, kw_only=True):
    """``other_dn`` left the conference call of ``dn``."""

    name: ClassVar[str] = "EventPartyDeleted"


class EventAttachedDataChanged(CallEvent, frozen=True, kw_only=True):
    """The call's user data changed; ``user_data`` is the whole new list."""

    name: ClassVar[str] = "EventAttachedDataChanged"


class RoutingEvent(CallEvent, frozen=True, kw_only=True):
    """A call event on a routing point (``dn`` is the routing point)."""

    name: ClassVar[str] = "RoutingEvent"


class EventRouteRequest(RoutingEvent, frozen=True, kw_only=True):
    """The call waits for routing instructions at routing point ``dn`` (``other_dn``: the port)."""

    name: ClassVar[str] = "EventRouteRequest"

    collected_digits: str | None = None
    """AttributeCollectedDigits (RouteRequest ``CED``)."""


class EventQueued(RoutingEvent, frozen=True, kw_only=True):
    """A Network-mode call arrived and waits at routing DN ``dn`` (``NewCall
    CallControlMode='Network'``, PROTOCOL.md §6.3 N2); the IVR may ask for routing later."""

    name: ClassVar[str] = "EventQueued"


class EventDiverted(RoutingEvent, frozen=True, kw_only=True):
    """A queued Network-mode call left routing DN ``dn`` for the destination it was routed to
    (``other_dn``): the network IVR reported ``Connected`` (PROTOCOL.md §6.3 N8)."""

    name: ClassVar[str] = "EventDiverted"


class EventRouteUsed(RoutingEvent, frozen=True, kw_only=True):
    """The routing dialog of the call at ``dn`` is over (routed, aborted, timed out, released)."""

    name: ClassVar[str] = "EventRouteUsed"

    dest: str | None = None
    """Where the call was routed (AttributeOtherDN of the router's request), if it was."""


class EventTreatmentApplied(RoutingEvent, frozen=True, kw_only=True):
    """The IVR started the treatment the router asked for (TreatStatus Started)."""

    name: ClassVar[str] = "EventTreatmentApplied"

    treatment_type: str
    """AttributeTreatmentType of the treatment."""


class EventTreatmentNotApplied(RoutingEvent, frozen=True, kw_only=True):
    """The IVR could not start the treatment (TreatStatus NotStarted)."""

    name: ClassVar[str] = "EventTreatmentNotApplied"

    treatment_type: str
    """AttributeTreatmentType of the treatment."""


class EventTreatmentEnd(RoutingEvent, frozen=True, kw_only=True):
    """The treatment is over (TreatStatus Completed); ``collected_digits`` from its ``CED``."""

    name: ClassVar[str] = "EventTreatmentEnd"

    treatment_type: str
    """AttributeTreatmentType of the treatment."""
    collected_digits: str | None = None
    """AttributeCollectedDigits (TreatStatus ``CED``)."""


class RequestRouteCall(RoutingEvent, frozen=True, kw_only=True):
    """The router routed the call waiting at ``dn`` (TRouteCall), for the call's owner to answer."""

    name: ClassVar[str] = "RequestRouteCall"

    route_type: RouteType
    """AttributeRouteType."""
    dest: str | None
    """AttributeOtherDN: the destination (``RouteResponse/Dest``)."""
    route_extensions: KvList = ()
    """AttributeExtensions of the router's request (``RouteResponse/ExtnsEx``)."""


class RequestApplyTreatment(RoutingEvent, frozen=True, kw_only=True):
    """The router asks for a treatment of the call waiting at ``dn`` (TApplyTreatment)."""

    name: ClassVar[str] = "RequestApplyTreatment"

    treatment_type: str
    """AttributeTreatmentType (``TreatCall/@Type``)."""
    parameters: KvList = ()
    """AttributeTreatmentParms (``TreatCall/Parameters``)."""
    treatment_extensions: KvList = ()
    """AttributeExtensions of the router's request (``TreatCall/ExtnsEx``)."""
