"""The CSTA documents of the minimal set (MODES-AND-HA §2.3), as typed frozen structs.

Class names are the documents' root element names (ECMA-323 / ECMA-354), so a grep goes from the
standard to the code; field names are the elements' names in snake case (``monitor_cross_ref_id``
is ``<monitorCrossRefID>``: a trailing ``_id`` is ``ID``). A field's type says how it is written:

- ``str`` / ``int`` / ``bool``: the element's text (``true``/``false`` for booleans);
- :class:`ConnectionID` and other :class:`Part` structs: an element holding their own fields;
- ``Annotated[str | None, DEVICE]``: a device as the events carry it — ``<deviceIdentifier>``
  (or ``<numberDialed>`` …) inside the element; ``None`` for ``notKnown``/``notRequired``/
  ``restricted``;
- ``tuple[Part, ...]`` with :class:`Xml` ``item``: a list of elements under one container.

:class:`Xml` metadata sets a path under the element when it is not the field's own name. Elements a
struct does not name (``extensions``, private data such as OpenScape's ``scx:``, newer optional
elements) are skipped when decoding; ``codec.py`` does the reading and writing from these
declarations, so each document costs one class here. Fields are written in their declaration
order, which follows the schema's sequence; that is why the call events spell out their shared
fields (``localConnectionInfo``, ``cause``) rather than inherit them (inherited fields come first).
"""

from __future__ import annotations

__all__ = [
    "DEVICE",
    "ERROR_CATEGORIES",
    "AgentLoggedOffEvent",
    "AgentLoggedOnEvent",
    "AgentNotReadyEvent",
    "AgentReadyEvent",
    "AgentStateEntry",
    "AgentWorkingAfterCallEvent",
    "BackInServiceEvent",
    "CSTAErrorCode",
    "CallClearedEvent",
    "ClearConnection",
    "ClearConnectionResponse",
    "ConferenceCall",
    "ConferenceCallResponse",
    "ConferencedEvent",
    "ConnectionClearedEvent",
    "ConnectionID",
    "ConnectionListItem",
    "ConsultationCall",
    "ConsultationCallResponse",
    "CstaEvent",
    "CstaMessage",
    "CstaRequest",
    "CstaResponse",
    "DeliveredEvent",
    "DivertedEvent",
    "EstablishedEvent",
    "FailedEvent",
    "GetAgentState",
    "GetAgentStateResponse",
    "HeldEvent",
    "MakeCall",
    "MakeCallResponse",
    "MonitorStart",
    "MonitorStartResponse",
    "MonitorStop",
    "MonitorStopResponse",
    "NegativeResponse",
    "NetworkReachedEvent",
    "OriginatedEvent",
    "OutOfServiceEvent",
    "Part",
    "QueuedEvent",
    "ReconnectCall",
    "ReconnectCallResponse",
    "ResetApplicationSessionTimer",
    "ResetApplicationSessionTimerNegResponse",
    "ResetApplicationSessionTimerPosResponse",
    "RetrieveCall",
    "RetrieveCallResponse",
    "RetrievedEvent",
    "ServiceInitiatedEvent",
    "SetAgentState",
    "SetAgentStateResponse",
    "SingleStepConferenceCall",
    "SingleStepConferenceCallResponse",
    "SingleStepTransferCall",
    "SingleStepTransferCallResponse",
    "SnapshotDevice",
    "SnapshotDeviceInfo",
    "SnapshotDeviceResponse",
    "StartApplicationSession",
    "StartApplicationSessionNegResponse",
    "StartApplicationSessionPosResponse",
    "StopApplicationSession",
    "StopApplicationSessionPosResponse",
    "SystemStatus",
    "SystemStatusResponse",
    "TransferCall",
    "TransferCallResponse",
    "TransferedEvent",
    "UnknownDocument",
    "Xml",
]

from dataclasses import dataclass
from typing import Annotated, ClassVar, Final

import msgspec


@dataclass(frozen=True, slots=True)
class Xml:
    """How a field is written when its element is not simply its own camelCase name."""

    path: str | None = None
    """Slash-separated element path under the parent (default: the field's element name)."""
    item: str | None = None
    """For a tuple field: the element name of each item under the container."""
    device: bool = False
    """A CSTA device choice (``<deviceIdentifier>`` …) rather than plain text."""
    device_tag: str = "deviceIdentifier"
    """The inner element written for a device (``numberDialed`` for redirection devices)."""


DEVICE: Final = Xml(device=True)
REDIRECTION_DEVICE: Final = Xml(device=True, device_tag="numberDialed")

ERROR_CATEGORIES: Final = frozenset(
    {
        "operation",
        "security",
        "stateIncompatibility",
        "systemResourceAvailability",
        "subscribedResourceAvailability",
        "performanceManagement",
        "privateData",
        "unspecified",
    }
)
"""The CSTAErrorCode choices of ECMA-269 §12 (the element that holds the error value)."""

Device = Annotated[str | None, DEVICE]
RedirectionDevice = Annotated[str | None, REDIRECTION_DEVICE]


class Part(msgspec.Struct, frozen=True, kw_only=True):
    """A structured element inside a document."""


class ConnectionID(Part, frozen=True, kw_only=True):
    """A connection: a call at a device (ECMA-269 ConnectionID)."""

    call_id: str | None = None
    device_id: str | None = None


class CstaMessage(msgspec.Struct, frozen=True, kw_only=True):
    """A whole CSTA document; the class name is its root element."""

    session_family: ClassVar[bool] = False
    """ECMA-354 application-session documents (their own namespace)."""


class CstaRequest(CstaMessage, frozen=True, kw_only=True):
    """A service request; answered by its response class or a negative response."""


class CstaResponse(CstaMessage, frozen=True, kw_only=True):
    """A positive response to a request."""


class NegativeResponse(CstaMessage, frozen=True, kw_only=True):
    """A negative response to a request."""


class CstaEvent(CstaMessage, frozen=True, kw_only=True):
    """An event report for a monitor; ``monitor_cross_ref_id`` names the monitor."""

    monitor_cross_ref_id: str


class UnknownDocument(CstaMessage, frozen=True, kw_only=True):
    """A well-formed document of a type this codec does not know (kept, never an exception)."""

    tag: str
    namespace: str | None = None


# -- ECMA-354 application session -------------------------------------------------------------


class StartApplicationSession(CstaRequest, frozen=True, kw_only=True):
    session_family: ClassVar[bool] = True
    application_id: Annotated[str, Xml("applicationInfo/applicationID")]
    user_name: Annotated[
        str | None, Xml("applicationInfo/applicationSpecificInfo/SessionLoginInfo/userName")
    ] = None
    password: Annotated[
        str | None, Xml("applicationInfo/applicationSpecificInfo/SessionLoginInfo/password")
    ] = None
    requested_protocol_versions: Annotated[tuple[str, ...], Xml(item="protocolVersion")] = ()
    requested_session_duration: int | None = None


class StartApplicationSessionPosResponse(CstaResponse, frozen=True, kw_only=True):
    session_family: ClassVar[bool] = True
    session_id: str
    actual_protocol_version: str | None = None
    actual_session_duration: int | None = None


class StartApplicationSessionNegResponse(NegativeResponse, frozen=True, kw_only=True):
    session_family: ClassVar[bool] = True
    defined_error: Annotated[str | None, Xml("errorCode/definedError")] = None
    application_error: Annotated[str | None, Xml("errorCode/applError")] = None


class StopApplicationSession(CstaRequest, frozen=True, kw_only=True):
    session_family: ClassVar[bool] = True
    session_id: str
    defined_end_reason: Annotated[str | None, Xml("sessionEndReason/definedEndReason")] = None


class StopApplicationSessionPosResponse(CstaResponse, frozen=True, kw_only=True):
    session_family: ClassVar[bool] = True


class ResetApplicationSessionTimer(CstaRequest, frozen=True, kw_only=True):
    session_family: ClassVar[bool] = True
    session_id: str
    requested_session_duration: int | None = None


class ResetApplicationSessionTimerPosResponse(CstaResponse, frozen=True, kw_only=True):
    session_family: ClassVar[bool] = True
    actual_session_duration: int | None = None


class ResetApplicationSessionTimerNegResponse(NegativeResponse, frozen=True, kw_only=True):
    session_family: ClassVar[bool] = True
    defined_error: Annotated[str | None, Xml("errorCode/definedError")] = None


# -- negative response, system status, monitoring, snapshot ----------------------------------


class CSTAErrorCode(NegativeResponse, frozen=True, kw_only=True):
    """ECMA-269 negative response: the error's category element and its value."""

    category: str
    """One of :data:`ERROR_CATEGORIES` (e.g. ``operation``, ``stateIncompatibility``)."""
    value: str
    """The error value, e.g. ``invalidCallID``, ``invalidDestination``."""


class SystemStatus(CstaRequest, frozen=True, kw_only=True):
    system_status: str | None = None


class SystemStatusResponse(CstaResponse, frozen=True, kw_only=True):
    pass


class MonitorStart(CstaRequest, frozen=True, kw_only=True):
    device: Annotated[str, Xml("monitorObject/deviceObject")]
    monitor_type: str | None = None


class MonitorStartResponse(CstaResponse, frozen=True, kw_only=True):
    monitor_cross_ref_id: str


class MonitorStop(CstaRequest, frozen=True, kw_only=True):
    monitor_cross_ref_id: str


class MonitorStopResponse(CstaResponse, frozen=True, kw_only=True):
    pass


class SnapshotDevice(CstaRequest, frozen=True, kw_only=True):
    snapshot_object: str


class SnapshotDeviceInfo(Part, frozen=True, kw_only=True):
    """One call at the device in a snapshot."""

    connection: Annotated[ConnectionID, Xml("connectionIdentifier")]
    local_connection_state: Annotated[
        str | None, Xml("localCallState/compoundCallState/localConnectionState")
    ] = None


class SnapshotDeviceResponse(CstaResponse, frozen=True, kw_only=True):
    calls: Annotated[
        tuple[SnapshotDeviceInfo, ...],
        Xml("crossRefIDorSnapshotData/snapshotData", item="snapshotDeviceResponseInfo"),
    ] = ()


# -- call control (ECMA-269 §17) ------------------------------------------------------------


class MakeCall(CstaRequest, frozen=True, kw_only=True):
    calling_device: str
    called_directory_number: str
    correlator_data: Annotated[str | None, Xml("correlatorData/string")] = None


class MakeCallResponse(CstaResponse, frozen=True, kw_only=True):
    calling_device: ConnectionID


class SingleStepTransferCall(CstaRequest, frozen=True, kw_only=True):
    active_call: ConnectionID
    transferred_to: str
    correlator_data: Annotated[str | None, Xml("correlatorData/string")] = None


class SingleStepTransferCallResponse(CstaResponse, frozen=True, kw_only=True):
    transferred_call: ConnectionID | None = None


class ConsultationCall(CstaRequest, frozen=True, kw_only=True):
    existing_call: ConnectionID
    consulted_device: str
    correlator_data: Annotated[str | None, Xml("correlatorData/string")] = None


class ConsultationCallResponse(CstaResponse, frozen=True, kw_only=True):
    initiated_call: ConnectionID


class TransferCall(CstaRequest, frozen=True, kw_only=True):
    held_call: ConnectionID
    active_call: ConnectionID


class TransferCallResponse(CstaResponse, frozen=True, kw_only=True):
    transferred_call: ConnectionID | None = None


class ConferenceCall(CstaRequest, frozen=True, kw_only=True):
    held_call: ConnectionID
    active_call: ConnectionID


class ConferenceCallResponse(CstaResponse, frozen=True, kw_only=True):
    conference_call: ConnectionID | None = None


class SingleStepConferenceCall(CstaRequest, frozen=True, kw_only=True):
    active_call: ConnectionID
    device_to_join: str


class SingleStepConferenceCallResponse(CstaResponse, frozen=True, kw_only=True):
    conference_call: ConnectionID | None = None


class ReconnectCall(CstaRequest, frozen=True, kw_only=True):
    active_call: ConnectionID
    held_call: ConnectionID


class ReconnectCallResponse(CstaResponse, frozen=True, kw_only=True):
    pass


class RetrieveCall(CstaRequest, frozen=True, kw_only=True):
    call_to_be_retrieved: ConnectionID


class RetrieveCallResponse(CstaResponse, frozen=True, kw_only=True):
    pass


class ClearConnection(CstaRequest, frozen=True, kw_only=True):
    connection_to_be_cleared: ConnectionID


class ClearConnectionResponse(CstaResponse, frozen=True, kw_only=True):
    pass


# -- agents (ECMA-269 §23 logical device features) --------------------------------------------


class SetAgentState(CstaRequest, frozen=True, kw_only=True):
    device: str
    requested_agent_state: str
    """``loggedOn``, ``loggedOff``, ``ready``, ``notReady``, ``workingAfterCall``."""
    agent_id: str | None = None
    password: str | None = None
    group: str | None = None


class SetAgentStateResponse(CstaResponse, frozen=True, kw_only=True):
    pass


class GetAgentState(CstaRequest, frozen=True, kw_only=True):
    device: str


class AgentStateEntry(Part, frozen=True, kw_only=True):
    """One agent at the device."""

    agent_id: str | None = None
    logged_on_state: bool | None = None
    agent_state: Annotated[str | None, Xml("agentInfo/agentInfoItem/agentState")] = None


class GetAgentStateResponse(CstaResponse, frozen=True, kw_only=True):
    agents: Annotated[
        tuple[AgentStateEntry, ...], Xml("agentStateList", item="agentStateEntry")
    ] = ()


# -- call events (ECMA-269 §17.2) -------------------------------------------------------------


class ServiceInitiatedEvent(CstaEvent, frozen=True, kw_only=True):
    initiated_connection: ConnectionID
    initiating_device: Device = None
    local_connection_info: str | None = None
    cause: str | None = None


class OriginatedEvent(CstaEvent, frozen=True, kw_only=True):
    originated_connection: ConnectionID
    calling_device: Device = None
    called_device: Device = None
    local_connection_info: str | None = None
    cause: str | None = None


class DeliveredEvent(CstaEvent, frozen=True, kw_only=True):
    connection: ConnectionID
    alerting_device: Device = None
    calling_device: Device = None
    called_device: Device = None
    last_redirection_device: RedirectionDevice = None
    local_connection_info: str | None = None
    cause: str | None = None
    network_calling_device: Device = None
    network_called_device: Device = None


class EstablishedEvent(CstaEvent, frozen=True, kw_only=True):
    established_connection: ConnectionID
    answering_device: Device = None
    calling_device: Device = None
    called_device: Device = None
    last_redirection_device: RedirectionDevice = None
    local_connection_info: str | None = None
    cause: str | None = None
    network_calling_device: Device = None
    network_called_device: Device = None


class HeldEvent(CstaEvent, frozen=True, kw_only=True):
    held_connection: ConnectionID
    holding_device: Device = None
    local_connection_info: str | None = None
    cause: str | None = None


class RetrievedEvent(CstaEvent, frozen=True, kw_only=True):
    retrieved_connection: ConnectionID
    retrieving_device: Device = None
    local_connection_info: str | None = None
    cause: str | None = None


class ConnectionClearedEvent(CstaEvent, frozen=True, kw_only=True):
    dropped_connection: ConnectionID
    releasing_device: Device = None
    local_connection_info: str | None = None
    cause: str | None = None


class CallClearedEvent(CstaEvent, frozen=True, kw_only=True):
    cleared_call: ConnectionID
    local_connection_info: str | None = None
    cause: str | None = None


class FailedEvent(CstaEvent, frozen=True, kw_only=True):
    failed_connection: ConnectionID
    failing_device: Device = None
    called_device: Device = None
    local_connection_info: str | None = None
    cause: str | None = None


class ConnectionListItem(Part, frozen=True, kw_only=True):
    """A connection that a transfer or conference created or changed."""

    new_connection: ConnectionID | None = None
    old_connection: ConnectionID | None = None
    endpoint: Annotated[str | None, Xml("endpoint/deviceID")] = None


class TransferedEvent(CstaEvent, frozen=True, kw_only=True):
    """ECMA-323 spells it with one "r"."""

    primary_old_call: ConnectionID
    secondary_old_call: ConnectionID | None = None
    transferring_device: Device = None
    transferred_to_device: Device = None
    transferred_connections: Annotated[
        tuple[ConnectionListItem, ...], Xml(item="connectionListItem")
    ] = ()
    local_connection_info: str | None = None
    cause: str | None = None


class ConferencedEvent(CstaEvent, frozen=True, kw_only=True):
    primary_old_call: ConnectionID
    secondary_old_call: ConnectionID | None = None
    conferencing_device: Device = None
    added_party: Device = None
    conference_connections: Annotated[
        tuple[ConnectionListItem, ...], Xml(item="connectionListItem")
    ] = ()
    local_connection_info: str | None = None
    cause: str | None = None


class DivertedEvent(CstaEvent, frozen=True, kw_only=True):
    connection: ConnectionID
    diverting_device: Device = None
    new_destination: Device = None
    calling_device: Device = None
    called_device: Device = None
    last_redirection_device: RedirectionDevice = None
    local_connection_info: str | None = None
    cause: str | None = None


class QueuedEvent(CstaEvent, frozen=True, kw_only=True):
    queued_connection: ConnectionID
    queue: Device = None
    calling_device: Device = None
    called_device: Device = None
    last_redirection_device: RedirectionDevice = None
    number_queued: int | None = None
    local_connection_info: str | None = None
    cause: str | None = None


class NetworkReachedEvent(CstaEvent, frozen=True, kw_only=True):
    outbound_connection: ConnectionID
    network_interface_used: Device = None
    calling_device: Device = None
    called_device: Device = None
    last_redirection_device: RedirectionDevice = None
    local_connection_info: str | None = None
    cause: str | None = None


# -- device and agent events ------------------------------------------------------------------


class _DeviceServiceEvent(CstaEvent, frozen=True, kw_only=True):
    """A device went out of or came back into service."""

    device: Device = None
    cause: str | None = None


class OutOfServiceEvent(_DeviceServiceEvent, frozen=True, kw_only=True):
    pass


class BackInServiceEvent(_DeviceServiceEvent, frozen=True, kw_only=True):
    pass


class _AgentEvent(CstaEvent, frozen=True, kw_only=True):
    """An agent's state changed at a device."""

    agent_device: Device = None
    agent_id: str | None = None
    acd_group: Device = None


class AgentLoggedOnEvent(_AgentEvent, frozen=True, kw_only=True):
    pass


class AgentLoggedOffEvent(_AgentEvent, frozen=True, kw_only=True):
    pass


class AgentReadyEvent(_AgentEvent, frozen=True, kw_only=True):
    pass


class AgentNotReadyEvent(_AgentEvent, frozen=True, kw_only=True):
    pass


class AgentWorkingAfterCallEvent(_AgentEvent, frozen=True, kw_only=True):
    pass
