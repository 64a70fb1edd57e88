"""The CSTA services the simulated PBX answers itself beyond the session's (ClearConnection,
SnapshotDevice, SetAgentState, GetAgentState), and how its virtual switch's agent and DN events
and errors are written in CSTA.

A service returns the negative response, or the positive one and what follows it (the events go
out after the response, as a PBX sends them). The call-control services are :mod:`.control`'s;
any other request is refused ``operation``/``serviceNotSupported``.
"""

from __future__ import annotations

__all__ = ["NOT_SERVED", "SERVICES", "SWITCH_TO_CSTA", "Outcome", "error_text"]

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final

from ivr_server.sim.model import LIVE
from ivr_server.switch import requests as rq
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    EventDNBackInService,
    EventDNOutOfService,
    EventError,
    SwitchEvent,
    WorkMode,
)

if TYPE_CHECKING:
    from ivr_server.sim.pbx import SimPbx

NOT_SERVED: Final = m.CSTAErrorCode(category="operation", value="serviceNotSupported")

Outcome = m.NegativeResponse | tuple[m.CstaMessage, Callable[[], None]]


def clear_connection(pbx: SimPbx, request: m.ClearConnection) -> Outcome:
    connection = request.connection_to_be_cleared
    call = pbx.calls.get(connection.call_id or "")
    if call is None or call.state not in LIVE:
        return m.CSTAErrorCode(category="operation", value="invalidCallID")
    device = connection.device_id
    if device not in (call.dn, call.ani, *call.joined):
        return m.CSTAErrorCode(category="operation", value="invalidConnectionID")
    assert device is not None
    return m.ClearConnectionResponse(), lambda: pbx.clear(call, device)


def snapshot_device(pbx: SimPbx, request: m.SnapshotDevice) -> Outcome:
    dn = request.snapshot_object
    if not pbx.device_known(dn):
        return m.CSTAErrorCode(category="operation", value="invalidDeviceID")
    calls = tuple(
        m.SnapshotDeviceInfo(
            connection=m.ConnectionID(call_id=call.id, device_id=dn),
            local_connection_state=call.state if dn == call.dn else "connected",
        )
        for call in pbx.calls.values()
        if call.state in LIVE and dn in (call.dn, call.ani)
    )
    return m.SnapshotDeviceResponse(calls=calls), _nothing


def set_agent_state(pbx: SimPbx, request: m.SetAgentState) -> Outcome:
    dn, ref = request.device, pbx.next_ref()
    wanted = request.requested_agent_state
    agent_request: rq.SwitchRequest
    if wanted == "loggedOn":
        agent_request = rq.TAgentLogin(
            reference_id=ref,
            dn=dn,
            queue=request.group or "",
            agent_id=request.agent_id or dn,
            password=request.password or "",
        )
    elif wanted == "loggedOff":
        agent_request = rq.TAgentLogout(reference_id=ref, dn=dn)
    elif wanted == "ready":
        agent_request = rq.TAgentSetReady(reference_id=ref, dn=dn, queue="")
    elif wanted in ("notReady", "workingAfterCall"):
        mode = WorkMode.AFTER_CALL_WORK if wanted == "workingAfterCall" else WorkMode.UNKNOWN
        agent_request = rq.TAgentSetNotReady(reference_id=ref, dn=dn, queue="", work_mode=mode)
    else:
        return m.CSTAErrorCode(category="operation", value="invalidAgentState")
    events = pbx.ask(agent_request)
    error = next((e for e in events if isinstance(e, EventError)), None)
    if error is not None:
        return _agent_error(error)
    return m.SetAgentStateResponse(), lambda: pbx.publish(events)


def get_agent_state(pbx: SimPbx, request: m.GetAgentState) -> Outcome:
    snapshot = pbx.switch.view.dn(request.device)
    if snapshot is None:
        return m.CSTAErrorCode(category="operation", value="invalidDeviceID")
    agent = snapshot.agent
    if agent is None:
        entry = m.AgentStateEntry(logged_on_state=False, agent_state="agentNull")
    else:
        if agent.state.value == "Ready":
            state = "agentReady"
        elif agent.work_mode is WorkMode.AFTER_CALL_WORK:
            state = "agentWorkingAfterCall"
        else:
            state = "agentNotReady"
        entry = m.AgentStateEntry(agent_id=agent.agent_id, logged_on_state=True, agent_state=state)
    return m.GetAgentStateResponse(agents=(entry,)), _nothing


def _nothing() -> None:
    """Nothing follows the response."""


SERVICES: Final[dict[type[m.CstaRequest], Callable[[SimPbx, Any], Outcome]]] = {
    m.ClearConnection: clear_connection,
    m.SnapshotDevice: snapshot_device,
    m.SetAgentState: set_agent_state,
    m.GetAgentState: get_agent_state,
}
"""The services the PBX offers beyond the session's and call control (:mod:`.control`); any
other request is refused ``operation``/``serviceNotSupported``."""


def _agent_event(cls: type[m.CstaEvent]) -> Callable[[Any], m.CstaEvent]:
    def made(event: Any) -> m.CstaEvent:
        return cls(  # type: ignore[call-arg]
            monitor_cross_ref_id="",
            agent_device=event.dn,
            agent_id=event.agent_id,
            acd_group=event.queue or None,
        )

    return made


def _not_ready(event: Any) -> m.CstaEvent:
    after_call = event.work_mode is WorkMode.AFTER_CALL_WORK
    return _agent_event(m.AgentWorkingAfterCallEvent if after_call else m.AgentNotReadyEvent)(event)


SWITCH_TO_CSTA: Final[dict[type[SwitchEvent], Callable[[Any], m.CstaEvent]]] = {
    EventAgentLogin: _agent_event(m.AgentLoggedOnEvent),
    EventAgentLogout: _agent_event(m.AgentLoggedOffEvent),
    EventAgentReady: _agent_event(m.AgentReadyEvent),
    EventAgentNotReady: _not_ready,
    EventDNOutOfService: lambda e: m.OutOfServiceEvent(monitor_cross_ref_id="", device=e.dn),
    EventDNBackInService: lambda e: m.BackInServiceEvent(monitor_cross_ref_id="", device=e.dn),
}
"""Switch event → the CSTA event the DN's monitors get."""

_AGENT_ERRORS: Final[dict[int, tuple[str, str]]] = {
    TErrorCode.TERR_NOT_CONFIGURED: ("operation", "invalidDeviceID"),
    TErrorCode.TERR_NOT_REGISTERED: ("operation", "invalidDeviceID"),
    TErrorCode.TERR_UNSUP_OPER: ("operation", "requestIncompatibleWithObject"),
    TErrorCode.TERR_OUT_OF_SERVICE: ("systemResourceAvailability", "resourceOutOfService"),
    TErrorCode.TERR_NO_SWITCH: ("systemResourceAvailability", "resourceOutOfService"),
    TErrorCode.TERR_INVALID_ATTR: ("operation", "invalidAgentIdentifier"),
    TErrorCode.TERR_UNKNOWN_ERROR: ("operation", "invalidAgentState"),
    TErrorCode.TERR_IN_SAME_STATE: ("operation", "invalidAgentState"),
}
"""A refused agent request's T-Library error → the CSTA error (AGENT_WRONG_STATE is 50)."""


def _agent_error(error: EventError) -> m.CSTAErrorCode:
    category, value = _AGENT_ERRORS.get(int(error.error_code), ("operation", "generic"))
    return m.CSTAErrorCode(category=category, value=value)


def error_text(error: m.NegativeResponse) -> str:
    if isinstance(error, m.CSTAErrorCode):
        return f"{error.category}/{error.value}"
    return type(error).__name__
