"""The virtual switch's agent and DN requests: TQueryAddress, TAgentLogin, TAgentLogout,
TAgentSetReady, TAgentSetNotReady, TRegisterAddress, TUnregisterAddress.

An agent request is checked in this order, the first failure becoming the EventError (the rest of
docs/switch.md's order: link and DN in :class:`~ivr_server.switch.virtual.core.SwitchCore`):

3. the DN can hold an agent (``TERR_UNSUP_OPER``), it is registered (``TERR_NOT_REGISTERED``)
   and, for control requests, in service (``TERR_OUT_OF_SERVICE``);
4. the request's own attributes (``TERR_INVALID_ATTR``);
5. the agent table of :mod:`ivr_server.switch.agent` (``AGENT_WRONG_STATE``, 50);
6. what depends on other DNs or the current login: the agent id is free
   (``TERR_SOFT_AGENT_ID_IN_USE``), the queue is the login's (``TERR_INVALID_ATTR``).

A transition's events are built from the agent the DN ends with (or had, for a logout) and
published in the table's order; the view applies them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from msgspec.structs import replace

from ivr_server.switch.agent import (
    LOGIN_INPUT,
    READY_WORK_MODES,
    TRANSITIONS,
    AgentInput,
    AgentState,
    AgentTransition,
    agent_status,
)
from ivr_server.switch.errors import AGENT_WRONG_STATE, TErrorCode
from ivr_server.switch.events import (
    DnType,
    EventAddressInfo,
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    EventRegistered,
    EventUnregistered,
    SwitchEvent,
    WorkMode,
)
from ivr_server.switch.requests import (
    SwitchRequest,
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TQueryAddress,
    TRegisterAddress,
    TUnregisterAddress,
)
from ivr_server.switch.snapshots import AgentSnapshot
from ivr_server.switch.view import DnRecord
from ivr_server.switch.virtual.core import AGENT_DN_TYPES, SwitchCore, request_name

__all__ = [
    "agent_logout_event",
    "on_agent_login",
    "on_agent_logout",
    "on_agent_set_not_ready",
    "on_agent_set_ready",
    "on_query_address",
    "on_register_address",
    "on_unregister_address",
]


def on_query_address(sw: SwitchCore, req: TQueryAddress) -> None:
    record = _agent_dn_checked(sw, req, req.dn, control=False)
    if record is None:
        return
    step = _step(sw, req, record, AgentInput.QUERY)
    if step is not None:
        _apply(sw, req, record, step, record.agent)


def on_agent_login(sw: SwitchCore, req: TAgentLogin) -> None:
    record = _agent_dn_checked(sw, req, req.dn, control=True)
    if record is None:
        return
    if not req.agent_id:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, "AgentID is empty")
        return
    if req.queue and not _is_queue(sw, req.queue):
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_INVALID_ATTR,
            f"queue {req.queue} is not an ACD queue of switch {sw.name}",
        )
        return
    login_input = LOGIN_INPUT.get(req.work_mode)
    if login_input is None:
        sw.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"bad WorkMode {req.work_mode!r}")
        return
    step = _step(sw, req, record, login_input)
    if step is None:
        return
    elsewhere = sw.view.agent_dn(req.agent_id)
    if elsewhere is not None:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_SOFT_AGENT_ID_IN_USE,
            f"agent {req.agent_id} is already logged in on DN {elsewhere}",
        )
        return
    agent = AgentSnapshot(
        agent_id=req.agent_id, queue=req.queue, state=step.next_state, work_mode=req.work_mode
    )
    _apply(sw, req, record, step, agent)


def on_agent_logout(sw: SwitchCore, req: TAgentLogout) -> None:
    record = _agent_dn_checked(sw, req, req.dn, control=True)
    if record is None:
        return
    step = _step(sw, req, record, AgentInput.LOGOUT)
    if step is not None and _queue_matches(sw, req, record, req.queue):
        _apply(sw, req, record, step, None)


def on_agent_set_ready(sw: SwitchCore, req: TAgentSetReady) -> None:
    record = _agent_dn_checked(sw, req, req.dn, control=True)
    if record is None:
        return
    if req.work_mode not in READY_WORK_MODES:
        sw.fail(
            req,
            req.dn,
            TErrorCode.TERR_INVALID_ATTR,
            f"WorkMode {req.work_mode} is not valid for {req.name}",
        )
        return
    _set_work_state(sw, req, record, AgentInput.SET_READY, req.queue, req.work_mode)


def on_agent_set_not_ready(sw: SwitchCore, req: TAgentSetNotReady) -> None:
    record = _agent_dn_checked(sw, req, req.dn, control=True)
    if record is not None:
        _set_work_state(sw, req, record, AgentInput.SET_NOT_READY, req.queue, req.work_mode)


def _set_work_state(
    sw: SwitchCore,
    req: SwitchRequest,
    record: DnRecord,
    agent_input: AgentInput,
    queue: str,
    work_mode: WorkMode,
) -> None:
    step = _step(sw, req, record, agent_input)
    if step is None or not _queue_matches(sw, req, record, queue):
        return
    assert record.agent is not None  # the table allows Ready/NotReady only when logged in
    _apply(sw, req, record, step, replace(record.agent, state=step.next_state, work_mode=work_mode))


def on_register_address(sw: SwitchCore, req: TRegisterAddress) -> None:
    if sw.address(req, req.dn) is not None:
        # registering again is harmless and answered again
        sw.emit(EventRegistered(switch=sw.name, reference_id=req.reference_id, dn=req.dn))


def on_unregister_address(sw: SwitchCore, req: TUnregisterAddress) -> None:
    record = sw.address(req, req.dn)
    if record is None:
        return
    if not record.registered:
        sw.fail(req, req.dn, TErrorCode.TERR_NOT_REGISTERED, f"DN {req.dn} is not registered")
        return
    # the agent, if any, stays logged in on the switch
    sw.emit(EventUnregistered(switch=sw.name, reference_id=req.reference_id, dn=req.dn))


def agent_logout_event(sw: SwitchCore, record: DnRecord) -> SwitchEvent:
    """The unsolicited EventAgentLogout of the agent on ``record`` (its DN leaves the switch)."""
    return _BUILDERS[EventAgentLogout](sw.name, record, record.agent, None)


# -- checks ----------------------------------------------------------------------------------------


def _agent_dn_checked(
    sw: SwitchCore, req: SwitchRequest, number: str, *, control: bool
) -> DnRecord | None:
    """Checks 1-3 for an agent request; on failure an EventError is queued."""
    record = sw.address(req, number)
    if record is None:
        return None
    if record.type not in AGENT_DN_TYPES:
        sw.fail(
            req,
            number,
            TErrorCode.TERR_UNSUP_OPER,
            f"DN {number} is a {record.type}: it cannot hold an agent",
        )
        return None
    if not record.registered:
        sw.fail(req, number, TErrorCode.TERR_NOT_REGISTERED, f"DN {number} is not registered")
        return None
    if control and not record.in_service:
        sw.fail(req, number, TErrorCode.TERR_OUT_OF_SERVICE, f"DN {number} is out of service")
        return None
    return record


def _is_queue(sw: SwitchCore, number: str) -> bool:
    record = sw.view.record(number)
    return record is not None and record.type is DnType.ACD_QUEUE


def _queue_matches(sw: SwitchCore, req: SwitchRequest, record: DnRecord, queue: str | None) -> bool:
    """A named queue must be the login's queue (empty or ``None`` = the login's queue)."""
    assert record.agent is not None
    if queue and queue != record.agent.queue:
        sw.fail(
            req,
            record.number,
            TErrorCode.TERR_INVALID_ATTR,
            f"agent {record.agent.agent_id} on DN {record.number} is not logged in to "
            f"queue {queue}",
        )
        return False
    return True


def _step(
    sw: SwitchCore, req: SwitchRequest, record: DnRecord, agent_input: AgentInput
) -> AgentTransition | None:
    """Check 5: the agent table; a missing pair queues EventError(AGENT_WRONG_STATE)."""
    step = TRANSITIONS.get((record.state, agent_input))
    if step is None:
        sw.fail(
            req,
            record.number,
            AGENT_WRONG_STATE,
            f"{request_name(req)} is not allowed: the agent on DN {record.number} is "
            f"{record.state.value}",
        )
    return step


def _apply(
    sw: SwitchCore,
    req: SwitchRequest,
    record: DnRecord,
    step: AgentTransition,
    agent: AgentSnapshot | None,
) -> None:
    """Publish ``step.emits`` for ``record`` ending with ``agent``, with the request's
    ReferenceID (built first: the view changes the record as each event is published)."""
    assert (agent.state if agent is not None else AgentState.LOGGED_OUT) is step.next_state
    subject = agent if agent is not None else record.agent
    events = [
        _BUILDERS[event_type](sw.name, record, subject, req.reference_id)
        for event_type in step.emits
    ]
    for event in events:
        sw.emit(event)


# -- event builders: event type → constructor from (switch, DN, agent, ReferenceID) -------------

_Builder = Callable[[str, DnRecord, AgentSnapshot | None, int | None], SwitchEvent]


def _build_address_info(
    switch: str, record: DnRecord, agent: AgentSnapshot | None, reference_id: int | None
) -> EventAddressInfo:
    if agent is None:
        return EventAddressInfo(
            switch=switch,
            reference_id=reference_id,
            dn=record.number,
            dn_type=record.type,
            agent_status=agent_status(AgentState.LOGGED_OUT, WorkMode.UNKNOWN),
            agent_id=None,
            queue=None,
            work_mode=WorkMode.UNKNOWN,
        )
    return EventAddressInfo(
        switch=switch,
        reference_id=reference_id,
        dn=record.number,
        dn_type=record.type,
        agent_status=agent_status(agent.state, agent.work_mode),
        agent_id=agent.agent_id,
        queue=agent.queue,
        work_mode=agent.work_mode,
    )


def _agent_of(agent: AgentSnapshot | None) -> AgentSnapshot:
    assert agent is not None, "agent events always have an agent"
    return agent


def _agent_event_builder(cls: type[SwitchEvent], *, with_work_mode: bool) -> _Builder:
    """A builder for one agent event class; Ready/NotReady also carry the work mode."""

    def build(
        switch: str, record: DnRecord, agent: AgentSnapshot | None, reference_id: int | None
    ) -> SwitchEvent:
        a = _agent_of(agent)
        extra: dict[str, Any] = {"work_mode": a.work_mode} if with_work_mode else {}
        return cls(  # type: ignore[call-arg]
            switch=switch,
            reference_id=reference_id,
            dn=record.number,
            agent_id=a.agent_id,
            queue=a.queue,
            **extra,
        )

    return build


_BUILDERS: Final[Mapping[type[SwitchEvent], _Builder]] = {
    EventAddressInfo: _build_address_info,
    EventAgentLogin: _agent_event_builder(EventAgentLogin, with_work_mode=False),
    EventAgentLogout: _agent_event_builder(EventAgentLogout, with_work_mode=False),
    EventAgentReady: _agent_event_builder(EventAgentReady, with_work_mode=True),
    EventAgentNotReady: _agent_event_builder(EventAgentNotReady, with_work_mode=True),
}
