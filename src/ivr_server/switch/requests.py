"""T-Library-style requests a client sends to a switch (PROTOCOL.md §10.2).

Class names are the T-Library function names (``TAgentLogin``), so a grep goes from the spec to
the code; ``name`` repeats it for error reports. A request is plain data: frozen, slotted,
keyword-only. The switch checks it and answers with events carrying ``reference_id``; a request
is never rejected by raising (a bad request becomes an EventError).

Call requests name the call by ``conn_id`` and the DN acting (``dn``). Two requests have no
T-Library function of their own because the original does them inside its own T-Server:
:class:`TInboundCall` (the network delivers a call to a DN) and :class:`TRouteRequest` (present a
call on a routing point for a router). The router's requests are :class:`TRouteCall` and
:class:`TApplyTreatment`; the IVR side reports treatments with :class:`TTreatmentStatus` and ends
a routing dialog with :class:`TRouteAbort` or :class:`TRouteFailed`.

Requests about the switch itself rather than a DN's or a call's T-Library dialog (the link, a DN
in or out of service, the DN set, a caller hanging up) are how the server drives the virtual
switch, which is its own network and PBX: :class:`TOpenLink`, :class:`TCloseLink`,
:class:`TSetInService`, :class:`TConfigureAddresses`, :class:`TCallerHangUp`. What they change is
reported as the switch reports such changes whatever caused them, by unsolicited events
(``reference_id`` ``None``), and nothing when nothing changes; only a refusal carries the
request's ReferenceID (an EventError). A switch that cannot do one refuses it with
``TERR_UNSUP_OPER``.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec

from ivr_server.switch.events import DnType, RouteType, WorkMode
from ivr_server.vocabulary import TreatStatus
from ivr_server.wire.kv import KvList

__all__ = [
    "CallRequest",
    "SwitchRequest",
    "TAbandonCall",
    "TAgentLogin",
    "TAgentLogout",
    "TAgentSetNotReady",
    "TAgentSetReady",
    "TAnswerCall",
    "TApplyTreatment",
    "TAttachUserData",
    "TCallerHangUp",
    "TCloseLink",
    "TCompleteConference",
    "TCompleteTransfer",
    "TConfigureAddresses",
    "TDeleteAllUserData",
    "TDeleteUserData",
    "TInboundCall",
    "TInitiateConference",
    "TInitiateTransfer",
    "TMakeCall",
    "TNetworkCall",
    "TNetworkConnected",
    "TOpenLink",
    "TOutboundAnswered",
    "TOutboundCall",
    "TQueryAddress",
    "TReconnectCall",
    "TRegisterAddress",
    "TReleaseCall",
    "TRouteAbort",
    "TRouteCall",
    "TRouteFailed",
    "TRouteRequest",
    "TSetInService",
    "TSingleStepConference",
    "TSingleStepTransfer",
    "TTreatmentStatus",
    "TUnregisterAddress",
    "TUpdateUserData",
]


class SwitchRequest(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Base of every request a T-Library client sends to a switch."""

    name: ClassVar[str]
    """The T-Library request name, e.g. ``TAgentLogin``."""

    reference_id: int
    """The client's ReferenceID; echoed on every event the request causes."""


class TQueryAddress(SwitchRequest, frozen=True, kw_only=True):
    """Ask for a DN's state; answered by EventAddressInfo (AgentQuery, PROTOCOL.md §3.2.2)."""

    name: ClassVar[str] = "TQueryAddress"

    dn: str
    """The DN queried (AttributeThisDN)."""


class TAgentLogin(SwitchRequest, frozen=True, kw_only=True):
    """Log an agent in on a DN (AgentLogin, PROTOCOL.md §3.2.3)."""

    name: ClassVar[str] = "TAgentLogin"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    queue: str
    """ACD queue to log into (AttributeThisQueue); empty = no queue."""
    agent_id: str
    """Agent login id (AttributeAgentID); must not be empty."""
    password: str = ""
    """Agent password (AttributePassword); the virtual switch does not check it."""
    work_mode: WorkMode = WorkMode.UNKNOWN
    """AttributeWorkMode: ``AutoIn``/``ManualIn`` end the login in Ready, anything else in NotReady."""


class TAgentLogout(SwitchRequest, frozen=True, kw_only=True):
    """Log the agent on a DN out (AgentLogout, PROTOCOL.md §3.2.4)."""

    name: ClassVar[str] = "TAgentLogout"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    queue: str | None = None
    """Queue to log out of; ``None`` = the queue of the current login (PROTOCOL.md §9.4.5)."""


class TAgentSetReady(SwitchRequest, frozen=True, kw_only=True):
    """Make the agent on a DN ready (AgentReady, PROTOCOL.md §3.2.5)."""

    name: ClassVar[str] = "TAgentSetReady"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    queue: str
    """The agent's queue (AttributeThisQueue); empty = the queue of the current login."""
    work_mode: WorkMode = WorkMode.UNKNOWN
    """AttributeWorkMode: ``Unknown``, ``AutoIn`` or ``ManualIn``."""


class TAgentSetNotReady(SwitchRequest, frozen=True, kw_only=True):
    """Make the agent on a DN not ready (AgentNotReady, PROTOCOL.md §3.2.6)."""

    name: ClassVar[str] = "TAgentSetNotReady"

    dn: str
    """The agent's DN (AttributeThisDN)."""
    queue: str
    """The agent's queue (AttributeThisQueue); empty = the queue of the current login."""
    work_mode: WorkMode = WorkMode.UNKNOWN
    """AttributeWorkMode; ``AfterCallWork`` and ``WalkAway`` are reported as ACW / WALK_AWAY."""


class TRegisterAddress(SwitchRequest, frozen=True, kw_only=True):
    """Register a DN: the client receives its events (PROTOCOL.md §10.2)."""

    name: ClassVar[str] = "TRegisterAddress"

    dn: str
    """The DN to register (AttributeThisDN)."""


class TUnregisterAddress(SwitchRequest, frozen=True, kw_only=True):
    """Unregister a DN (PROTOCOL.md §10.2)."""

    name: ClassVar[str] = "TUnregisterAddress"

    dn: str
    """The DN to unregister (AttributeThisDN)."""


class TInboundCall(SwitchRequest, frozen=True, kw_only=True):
    """The network delivers a new call to ``dn``: EventRinging, then EventEstablished (In-Front
    NewCall, PROTOCOL.md §3.3.1). Not a T-Library function: the original does it internally."""

    name: ClassVar[str] = "TInboundCall"

    dn: str
    """The DN the call arrives at (the IVR port's DN)."""
    ani: str | None = None
    """AttributeANI."""
    dnis: str | None = None
    """AttributeDNIS."""
    user_data: KvList = ()
    """Initial AttributeUserData."""
    extensions: KvList = ()
    """AttributeExtensions of the first event."""
    answer: bool = True
    """``False``: the call only rings (EventRinging); :class:`TAnswerCall` answers it later (a
    PBX that delivers a call and lets the DN answer it)."""


class TNetworkCall(SwitchRequest, frozen=True, kw_only=True):
    """A network IVR's new call waits at routing DN ``dn`` for a router (Network mode,
    PROTOCOL.md §6.3 N1-N2): EventQueued at ``dn`` (``CallControlMode='Network'``: the IVR asks
    for routing later, :class:`TRouteRequest` with ``route_dn`` = ``dn``), or with ``route_now``
    at once EventRouteRequest and no EventQueued (``CallControlMode='Genesys'``). The call's one
    party is the routing DN. Not a T-Library function: the server is the Network T-Server."""

    name: ClassVar[str] = "TNetworkCall"

    dn: str
    """The routing DN (``NewCall/CalledNum``, after ``called-num-subset``)."""
    ani: str | None = None
    """AttributeANI."""
    dnis: str | None = None
    """AttributeDNIS."""
    user_data: KvList = ()
    """Initial AttributeUserData."""
    extensions: KvList = ()
    """AttributeExtensions of the first event."""
    route_now: bool = False
    """``True`` (Genesys control): the call is presented to the router at once."""


class TOutboundCall(SwitchRequest, frozen=True, kw_only=True):
    """The IVR dials ``dest`` from ``dn`` (DialOutInit, PROTOCOL.md §3.10.5): EventDialing. Not a
    T-Library function: the IVR dials on the network, the switch only learns of it."""

    name: ClassVar[str] = "TOutboundCall"

    dn: str
    """The DN of the IVR port that dials."""
    dest: str
    """The number dialled (AttributeOtherDN)."""
    user_data: KvList = ()
    """AttributeUserData of the predictive-call request."""
    extensions: KvList = ()
    """AttributeExtensions of EventDialing."""


class CallRequest(SwitchRequest, frozen=True, kw_only=True):
    """A request about an existing call."""

    name: ClassVar[str] = "CallRequest"

    conn_id: str
    """AttributeConnID of the call."""
    dn: str
    """AttributeThisDN: the DN on whose behalf the request is made."""


class TOutboundAnswered(CallRequest, frozen=True, kw_only=True):
    """The party an outbound call dialled answered (IVR ``CallStatus Established``): EventRinging,
    EventEstablished at ``dn``."""

    name: ClassVar[str] = "TOutboundAnswered"


class TAnswerCall(CallRequest, frozen=True, kw_only=True):
    """The DN answers a call ringing there (a :class:`TInboundCall` with ``answer`` off):
    EventEstablished at ``dn``."""

    name: ClassVar[str] = "TAnswerCall"


class TAbandonCall(CallRequest, frozen=True, kw_only=True):
    """An outbound call failed before it was answered (IVR ``Failure``): EventAbandoned."""

    name: ClassVar[str] = "TAbandonCall"


class TReleaseCall(CallRequest, frozen=True, kw_only=True):
    """Release the call at ``dn``: EventReleased (EndCall with active release)."""

    name: ClassVar[str] = "TReleaseCall"


class TAttachUserData(CallRequest, frozen=True, kw_only=True):
    """Append pairs to the call's user data, duplicates kept (UDataSet Add)."""

    name: ClassVar[str] = "TAttachUserData"

    user_data: KvList
    """The pairs to append."""


class TUpdateUserData(CallRequest, frozen=True, kw_only=True):
    """Overwrite existing keys in place, append the others (UDataSet Replace, PROTOCOL.md §4.3)."""

    name: ClassVar[str] = "TUpdateUserData"

    user_data: KvList
    """The pairs to write."""


class TDeleteUserData(CallRequest, frozen=True, kw_only=True):
    """Remove every pair with key ``key`` (UDataDel DeleteKey)."""

    name: ClassVar[str] = "TDeleteUserData"

    key: str
    """The key to remove."""


class TDeleteAllUserData(CallRequest, frozen=True, kw_only=True):
    """Remove every pair (UDataDel DeleteAll)."""

    name: ClassVar[str] = "TDeleteAllUserData"


class TRouteRequest(CallRequest, frozen=True, kw_only=True):
    """Present the call at ``dn`` (the port) on routing point ``route_dn``: EventRouteRequest
    (RouteRequest, PROTOCOL.md §3.3.2). Also re-opens the dialog after a routing failure."""

    name: ClassVar[str] = "TRouteRequest"

    route_dn: str
    """The routing point."""
    collected_digits: str | None = None
    """AttributeCollectedDigits (``CED``)."""
    extensions: KvList = ()
    """AttributeExtensions of EventRouteRequest."""


class TRouteCall(CallRequest, frozen=True, kw_only=True):
    """The router's answer: route the call waiting at routing point ``dn``."""

    name: ClassVar[str] = "TRouteCall"

    route_type: RouteType = "Normal"
    """AttributeRouteType."""
    dest: str | None = None
    """AttributeOtherDN: the destination."""
    extensions: KvList = ()
    """AttributeExtensions for the IVR (``RouteResponse/ExtnsEx``)."""


class TApplyTreatment(CallRequest, frozen=True, kw_only=True):
    """The router asks for a treatment of the call waiting at routing point ``dn``."""

    name: ClassVar[str] = "TApplyTreatment"

    treatment_type: str
    """AttributeTreatmentType (a ``TreatCall/@Type`` value)."""
    parameters: KvList = ()
    """AttributeTreatmentParms."""
    extensions: KvList = ()
    """AttributeExtensions."""


class TTreatmentStatus(CallRequest, frozen=True, kw_only=True):
    """The IVR side reports a treatment of the call at routing point ``dn`` (TreatStatus):
    EventTreatmentApplied / EventTreatmentNotApplied / EventTreatmentEnd."""

    name: ClassVar[str] = "TTreatmentStatus"

    status: TreatStatus
    """The ``TreatStatus/@Status``."""
    treatment_type: str
    """The treatment's type."""
    collected_digits: str | None = None
    """``CED`` of a completed treatment."""
    extensions: KvList = ()
    """AttributeExtensions of the event."""


class TNetworkConnected(CallRequest, frozen=True, kw_only=True):
    """The network IVR reached the destination of the router's latest route (``Connected``,
    PROTOCOL.md §6.3 N8): EventDiverted at routing DN ``dn`` (a call that was queued there:
    ``CallControlMode='Network'``, first connection only), then EventRouteUsed, which ends the
    router's strategy. The call stays on the switch until the IVR ends it."""

    name: ClassVar[str] = "TNetworkConnected"

    extensions: KvList = ()
    """AttributeExtensions of EventRouteUsed (``Connected/ExtnsEx``)."""


class TRouteAbort(CallRequest, frozen=True, kw_only=True):
    """End the call's routing dialog at routing point ``dn`` without a route (Connected, router
    timeout, EndCall): EventRouteUsed."""

    name: ClassVar[str] = "TRouteAbort"


class TRouteFailed(CallRequest, frozen=True, kw_only=True):
    """Connecting to the routed destination failed (Failure): EventError with ``error_code`` to
    the router on routing point ``dn``, and the call waits there again for instructions."""

    name: ClassVar[str] = "TRouteFailed"

    error_code: int
    """83 (Busy), 232 (NoAnswer) or 234 (ConnectFailed)."""


class TOpenLink(SwitchRequest, frozen=True, kw_only=True):
    """Bring the link to the switch up: EventLinkConnected once it is (PROTOCOL.md §8.3)."""

    name: ClassVar[str] = "TOpenLink"


class TCloseLink(SwitchRequest, frozen=True, kw_only=True):
    """Take the link to the switch down: EventLinkDisconnected. Agents, registrations and calls
    are kept; requests fail with ``TERR_NO_SWITCH`` until the link is up again."""

    name: ClassVar[str] = "TCloseLink"


class TSetInService(SwitchRequest, frozen=True, kw_only=True):
    """Put a DN in or out of service: EventDNBackInService / EventDNOutOfService
    (``report-dn-status``, PROTOCOL.md §8.3)."""

    name: ClassVar[str] = "TSetInService"

    dn: str
    """The DN."""
    in_service: bool
    """``True``: in service; ``False``: out of service."""


class TConfigureAddresses(SwitchRequest, frozen=True, kw_only=True):
    """The switch's DN set is now ``dns`` (a configuration reload): a removed DN loses its agent
    (EventAgentLogout) and its registration (EventUnregistered); a new one is registered
    (EventRegistered); a changed type is a removal and an addition; the others keep their state."""

    name: ClassVar[str] = "TConfigureAddresses"

    dns: tuple[tuple[str, DnType], ...]
    """Every DN of the switch with its type, in configuration order."""


class TCallerHangUp(SwitchRequest, frozen=True, kw_only=True):
    """The far end of a call hangs up (the API's release): every party gets EventReleased (the
    routing point first EventRouteUsed) and the call is gone."""

    name: ClassVar[str] = "TCallerHangUp"

    conn_id: str
    """AttributeConnID of the call."""


class TMakeCall(SwitchRequest, frozen=True, kw_only=True):
    """``dn`` places a call to ``dest`` (IVR ``MakeCall``): EventDialing (the new call's ConnID),
    then EventEstablished when ``dest`` answers, or EventDestinationBusy; a refusal is an
    EventError."""

    name: ClassVar[str] = "TMakeCall"

    dn: str
    """AttributeThisDN: the port's DN (``OrigNum``'s)."""
    dest: str
    """AttributeOtherDN: the number to call (``DestNum``)."""
    user_data: KvList = ()
    """AttributeUserData of the new call."""
    extensions: KvList = ()
    """AttributeExtensions."""


class TSingleStepTransfer(CallRequest, frozen=True, kw_only=True):
    """Transfer the call at ``dn`` to ``dest`` in one step (``OneStepXfer``): the port's
    EventReleased with this ReferenceID when it is done; an EventError when refused."""

    name: ClassVar[str] = "TSingleStepTransfer"

    dest: str
    """AttributeOtherDN: where the call goes."""
    user_data: KvList = ()
    """AttributeUserData attached to the call first (``UDataEx``)."""
    extensions: KvList = ()
    """AttributeExtensions."""


class TInitiateTransfer(CallRequest, frozen=True, kw_only=True):
    """Put the call at ``dn`` on hold and dial ``dest`` for a consultation (``InitXfer``):
    EventHeld (this call), EventDialing (the consultation call's own ConnID), then
    EventEstablished or EventDestinationBusy on the consultation call."""

    name: ClassVar[str] = "TInitiateTransfer"

    dest: str
    """AttributeOtherDN: the party to consult."""
    user_data: KvList = ()
    """AttributeUserData (``UDataEx``)."""
    extensions: KvList = ()
    """AttributeExtensions."""


class TInitiateConference(TInitiateTransfer, frozen=True, kw_only=True):
    """As :class:`TInitiateTransfer`, for a conference to come (``InitConf``)."""

    name: ClassVar[str] = "TInitiateConference"


class TCompleteTransfer(CallRequest, frozen=True, kw_only=True):
    """Join the held call (``conn_id``) and the consultation call (``consult_conn_id``) and leave
    both (``CompleteXfer``): the port's EventReleased with this ReferenceID."""

    name: ClassVar[str] = "TCompleteTransfer"

    consult_conn_id: str
    """AttributeTransferConnID: the consultation call."""
    extensions: KvList = ()
    """AttributeExtensions."""


class TCompleteConference(TCompleteTransfer, frozen=True, kw_only=True):
    """Join the held call and the consultation call into one conference the port stays in
    (``CompleteConf``): EventRetrieved then EventPartyAdded on the original call."""

    name: ClassVar[str] = "TCompleteConference"


class TSingleStepConference(CallRequest, frozen=True, kw_only=True):
    """Add ``dest`` to the call at ``dn`` in one step (``OneStepConf``): EventPartyAdded, later
    EventPartyDeleted when it leaves."""

    name: ClassVar[str] = "TSingleStepConference"

    dest: str
    """AttributeOtherDN: the party to add."""
    user_data: KvList = ()
    """AttributeUserData (``UDataEx``)."""
    extensions: KvList = ()
    """AttributeExtensions."""


class TReconnectCall(CallRequest, frozen=True, kw_only=True):
    """Release the consultation call (``conn_id``) and retrieve the held one
    (``held_conn_id``) (``RetrieveCall``): EventReleased (consultation), EventRetrieved."""

    name: ClassVar[str] = "TReconnectCall"

    held_conn_id: str
    """AttributeTransferConnID: the held original call."""
    extensions: KvList = ()
    """AttributeExtensions."""
