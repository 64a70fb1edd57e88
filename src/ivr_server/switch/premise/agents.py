"""Premise agents: agent requests as CSTA SetAgentState / GetAgentState, and the PBX's agent
events as T-Library agent events.

A request is checked as the virtual switch checks it (link, DN, DN type, registration, service,
attributes, the agent table of :mod:`ivr_server.switch.agent` against the state the view holds),
then sent to the PBX, which has the last word: on its positive answer the switch publishes the
events the virtual switch would (same types, same order, the request's ReferenceID); on a
negative one, an EventError with the mapped code (a refusal for the agent's state is
``AGENT_WRONG_STATE``, 50, as the virtual switch answers it). A login in ``AutoIn``/``ManualIn``
asks the PBX for ``ready`` as soon as the login is accepted.

The PBX's own agent events (an agent at the phone, or the echo of our request) are reported
unsolicited only when they change what the view holds: an event that matches the state already
reported is not reported again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ivr_server.switch.agent import (
    LOGIN_INPUT,
    READY_WORK_MODES,
    TRANSITIONS,
    AgentInput,
    AgentState,
    agent_status,
)
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import AGENT_WRONG_STATE, TErrorCode
from ivr_server.switch.events import (
    DnType,
    EventAddressInfo,
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    SwitchEvent,
    WorkMode,
)
from ivr_server.switch.premise.calls import device_number
from ivr_server.switch.premise.core import LOG, PremiseCore
from ivr_server.switch.requests import (
    SwitchRequest,
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TQueryAddress,
)
from ivr_server.switch.snapshots import AgentSnapshot
from ivr_server.switch.view import DnRecord
from ivr_server.switch.virtual.core import AGENT_DN_TYPES

__all__ = ["AGENT_EVENTS", "AGENT_REQUESTS", "on_address_answered", "on_agent_answered"]

AgentRequest = TAgentLogin | TAgentLogout | TAgentSetReady | TAgentSetNotReady

_EMITS: Final[Mapping[AgentInput, tuple[type[SwitchEvent], ...]]] = {
    agent_input: step.emits for (_, agent_input), step in TRANSITIONS.items()
}
"""What each agent input publishes (the same from every state that allows it)."""

_NOT_READY_STATES: Final[Mapping[WorkMode, str]] = {
    WorkMode.AFTER_CALL_WORK: "workingAfterCall",
}
"""TAgentSetNotReady's work mode → the CSTA state asked for (default ``notReady``)."""


def _input(req: AgentRequest) -> AgentInput:
    if isinstance(req, TAgentLogin):
        return LOGIN_INPUT.get(req.work_mode, AgentInput.LOGIN_NOT_READY)
    if isinstance(req, TAgentLogout):
        return AgentInput.LOGOUT
    if isinstance(req, TAgentSetReady):
        return AgentInput.SET_READY
    return AgentInput.SET_NOT_READY


def _checked(sw: PremiseCore, req: SwitchRequest, dn: str, *, control: bool) -> DnRecord | None:
    """The virtual switch's checks 1-3 for an agent request; EventError on the first failure."""
    if sw.linked(req, dn) is None:
        return None
    record = sw.address(req, dn)
    if record is None:
        return None
    if record.type not in AGENT_DN_TYPES:
        sw.fail(req, dn, TErrorCode.TERR_UNSUP_OPER, f"DN {dn} is a {record.type}: no agent")
        return None
    if not record.registered:
        sw.fail(req, dn, TErrorCode.TERR_NOT_REGISTERED, f"DN {dn} is not registered")
        return None
    if control and not record.in_service:
        sw.fail(req, dn, TErrorCode.TERR_OUT_OF_SERVICE, f"DN {dn} is out of service")
        return None
    return record


def _attributes_wrong(sw: PremiseCore, req: AgentRequest) -> str | None:
    """Check 4: what is wrong with the request's own attributes."""
    if isinstance(req, TAgentLogin):
        if not req.agent_id:
            return "AgentID is empty"
        queue = sw.view.record(req.queue) if req.queue else None
        if req.queue and (queue is None or queue.type is not DnType.ACD_QUEUE):
            return f"queue {req.queue} is not an ACD queue of switch {sw.name}"
    elif isinstance(req, TAgentSetReady) and req.work_mode not in READY_WORK_MODES:
        return f"WorkMode {req.work_mode} is not valid for {req.name}"
    return None


def _other_queue(req: AgentRequest, record: DnRecord) -> str | None:
    """Check 6: a queue named by a request on a logged-in agent must be the login's."""
    agent = record.agent
    if isinstance(req, TAgentLogin) or not req.queue or agent is None:
        return None
    if req.queue != agent.queue:
        return f"agent {agent.agent_id} on DN {record.number} is not logged in to queue {req.queue}"
    return None


def on_agent_request(sw: PremiseCore, req: AgentRequest) -> None:
    record = _checked(sw, req, req.dn, control=True)
    if record is None:
        return
    wrong = _attributes_wrong(sw, req)
    if wrong is not None:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, wrong)
        return
    if (record.state, _input(req)) not in TRANSITIONS:
        sw.fail(
            req,
            req.dn,
            AGENT_WRONG_STATE,
            f"{req.name} is not allowed: the agent on DN {req.dn} is {record.state.value}",
        )
        return
    wrong = _other_queue(req, record)
    if wrong is not None:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, wrong)
        return
    session = sw.session
    assert session is not None  # checked by _checked
    sw.send_for(req, session, _set_agent_state(req, record), req.dn)


def _set_agent_state(req: AgentRequest, record: DnRecord) -> m.SetAgentState:
    agent = record.agent
    if isinstance(req, TAgentLogin):
        return m.SetAgentState(
            device=req.dn,
            requested_agent_state="loggedOn",
            agent_id=req.agent_id,
            password=req.password or None,
            group=req.queue or None,
        )
    agent_id = agent.agent_id if agent is not None else None
    if isinstance(req, TAgentLogout):
        state = "loggedOff"
    elif isinstance(req, TAgentSetReady):
        state = "ready"
    else:
        state = _NOT_READY_STATES.get(req.work_mode, "notReady")
    return m.SetAgentState(device=req.dn, requested_agent_state=state, agent_id=agent_id)


def on_agent_answered(sw: PremiseCore, req: AgentRequest) -> None:
    """The PBX accepted the request: the virtual switch's events, with its ReferenceID."""
    record = sw.view.record(req.dn)
    if record is None:
        return
    agent_input = _input(req)
    current = record.agent
    if isinstance(req, TAgentLogin):
        ready = agent_input is AgentInput.LOGIN_READY
        agent = AgentSnapshot(
            agent_id=req.agent_id,
            queue=req.queue,
            state=AgentState.READY if ready else AgentState.NOT_READY,
            work_mode=req.work_mode,
        )
        if ready and sw.session is not None:
            follow = m.SetAgentState(device=req.dn, requested_agent_state="ready")
            sw.session.send_request(follow, sw.now, dn=req.dn)
    elif isinstance(req, TAgentLogout):
        agent = current if current is not None else _nobody(sw, req.dn)
    else:
        base = current if current is not None else _nobody(sw, req.dn)
        agent = AgentSnapshot(
            agent_id=base.agent_id, queue=base.queue, state=base.state, work_mode=req.work_mode
        )
    for cls in _EMITS[agent_input]:
        sw.emit(_agent_event(cls, sw.name, req.dn, agent, req.reference_id))


def _nobody(sw: PremiseCore, dn: str) -> AgentSnapshot:
    LOG.debug("switch %s: agent answer for DN %s, which has no agent any more", sw.name, dn)
    return AgentSnapshot(
        agent_id="", queue="", state=AgentState.LOGGED_OUT, work_mode=WorkMode.UNKNOWN
    )


def _agent_event(
    cls: type[SwitchEvent], switch: str, dn: str, agent: AgentSnapshot, ref: int | None
) -> SwitchEvent:
    if cls is EventAgentReady or cls is EventAgentNotReady:
        return cls(
            switch=switch,
            reference_id=ref,
            dn=dn,
            agent_id=agent.agent_id,
            queue=agent.queue,
            work_mode=agent.work_mode,
        )
    return cls(  # type: ignore[call-arg]
        switch=switch, reference_id=ref, dn=dn, agent_id=agent.agent_id, queue=agent.queue
    )


def on_query_address(sw: PremiseCore, req: TQueryAddress) -> None:
    if _checked(sw, req, req.dn, control=False) is not None:
        session = sw.session
        assert session is not None
        sw.send_for(req, session, m.GetAgentState(device=req.dn), req.dn)


_CSTA_STATES: Final[Mapping[str, tuple[AgentState, WorkMode | None]]] = {
    "agentReady": (AgentState.READY, None),
    "agentNotReady": (AgentState.NOT_READY, None),
    "agentWorkingAfterCall": (AgentState.NOT_READY, WorkMode.AFTER_CALL_WORK),
    # SetAgentState's requestedAgentState spellings, which some PBXs echo in GetAgentState
    "ready": (AgentState.READY, None),
    "notReady": (AgentState.NOT_READY, None),
    "workingAfterCall": (AgentState.NOT_READY, WorkMode.AFTER_CALL_WORK),
}
"""CSTA agentState → (state, work mode; ``None``: the one the view holds). ECMA-323's
GetAgentStateResponse says ``agentReady``/``agentNotReady``/``agentWorkingAfterCall``/
``agentNull``/``agentBusy``; ``agentBusy`` (on a call) keeps the state the view holds, and
``agentNull`` is no agent (:func:`on_address_answered`)."""


def on_address_answered(sw: PremiseCore, req: TQueryAddress, answer: m.CstaMessage) -> None:
    """GetAgentState's answer as EventAddressInfo (the PBX's state, the view's work mode and
    queue where the PBX says nothing of them)."""
    record = sw.view.record(req.dn)
    if record is None:
        return
    entries = answer.agents if isinstance(answer, m.GetAgentStateResponse) else ()
    entry = entries[0] if entries else None
    held = record.agent
    if entry is None or entry.logged_on_state is False or entry.agent_state == "agentNull":
        state, agent_id, work_mode = AgentState.LOGGED_OUT, None, WorkMode.UNKNOWN
    else:
        default = held.state if held is not None else AgentState.NOT_READY
        state, mode = _CSTA_STATES.get(entry.agent_state or "", (default, None))
        held_mode = held.work_mode if held is not None else WorkMode.UNKNOWN
        work_mode = mode if mode is not None else held_mode
        agent_id = entry.agent_id or (held.agent_id if held is not None else "")
    logged_in = state is not AgentState.LOGGED_OUT
    sw.emit(
        EventAddressInfo(
            switch=sw.name,
            reference_id=req.reference_id,
            dn=req.dn,
            dn_type=record.type,
            agent_status=agent_status(state, work_mode),
            agent_id=agent_id,
            queue=(held.queue if held is not None else "") if logged_in else None,
            work_mode=work_mode,
        )
    )


AGENT_REQUESTS: Final[Mapping[type[SwitchRequest], Callable[[PremiseCore, Any], None]]] = {
    TAgentLogin: on_agent_request,
    TAgentLogout: on_agent_request,
    TAgentSetReady: on_agent_request,
    TAgentSetNotReady: on_agent_request,
    TQueryAddress: on_query_address,
}
"""Agent request type → handler."""


# -- the PBX's agent events --------------------------------------------------------------------

_TARGETS: Final[Mapping[type[m.CstaEvent], tuple[AgentState, WorkMode | None]]] = {
    m.AgentLoggedOnEvent: (AgentState.NOT_READY, None),
    m.AgentLoggedOffEvent: (AgentState.LOGGED_OUT, None),
    m.AgentReadyEvent: (AgentState.READY, None),
    m.AgentNotReadyEvent: (AgentState.NOT_READY, None),
    m.AgentWorkingAfterCallEvent: (AgentState.NOT_READY, WorkMode.AFTER_CALL_WORK),
}
"""CSTA agent event → the state it reports (work mode ``None``: any but after-call work)."""


def on_agent_event(sw: PremiseCore, dn: str, event: Any) -> None:
    """Report a change the PBX made to the agent at ``dn``; nothing when the view has it."""
    record = sw.view.record(dn)
    if record is None or record.type not in AGENT_DN_TYPES:
        return
    state, mode = _TARGETS[type(event)]
    held = record.agent
    if state is AgentState.LOGGED_OUT:
        if held is not None:
            sw.emit(_agent_event(EventAgentLogout, sw.name, dn, held, None))
        return
    logon = isinstance(event, m.AgentLoggedOnEvent)
    if held is not None and (logon or _matches(held, state, mode)):
        return
    if held is None:
        held = AgentSnapshot(
            agent_id=event.agent_id or "",
            queue=device_number(event.acd_group) or "",
            state=state,
            work_mode=WorkMode.UNKNOWN,
        )
        sw.emit(_agent_event(EventAgentLogin, sw.name, dn, held, None))
    if mode is None:
        kept = held.state is state and held.work_mode is not WorkMode.AFTER_CALL_WORK
        mode = held.work_mode if kept else WorkMode.UNKNOWN
    agent = AgentSnapshot(agent_id=held.agent_id, queue=held.queue, state=state, work_mode=mode)
    cls = EventAgentReady if state is AgentState.READY else EventAgentNotReady
    sw.emit(_agent_event(cls, sw.name, dn, agent, None))


def _matches(agent: AgentSnapshot, state: AgentState, mode: WorkMode | None) -> bool:
    if agent.state is not state:
        return False
    after_call = agent.work_mode is WorkMode.AFTER_CALL_WORK
    return after_call if mode is WorkMode.AFTER_CALL_WORK else not after_call


AGENT_EVENTS: Final[Mapping[type[m.CstaEvent], Callable[[PremiseCore, str, Any], None]]] = {
    event_type: on_agent_event for event_type in _TARGETS
}
"""CSTA agent event type → handler."""
