"""Premise agents: TAgent* as SetAgentState, TQueryAddress as GetAgentState, the PBX's agent
events reported only when they change what was reported."""

from __future__ import annotations

import pytest

from ivr_server.switch.agent import AgentState
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import AGENT_WRONG_STATE, TErrorCode
from ivr_server.switch.events import (
    AgentStatus,
    EventAddressInfo,
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    EventError,
    WorkMode,
)
from ivr_server.switch.premise import PremiseSwitch
from ivr_server.switch.requests import (
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TQueryAddress,
)
from tests.unit.premise_pbx import AGENT_DN, QUEUE, SWITCH, VRP, Pbx, bring_up, new_switch, xref


def up() -> tuple[PremiseSwitch, Pbx]:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    return switch, pbx


def logged_in(switch: PremiseSwitch, pbx: Pbx, work_mode: WorkMode = WorkMode.AUTO_IN) -> None:
    switch.request(
        TAgentLogin(
            reference_id=1,
            dn=AGENT_DN,
            queue=QUEUE,
            agent_id="a1",
            password="pw",
            work_mode=work_mode,
        )
    )
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.SetAgentStateResponse(), invoke_id)
    switch.drain_events()
    for invoke_id, _ in pbx.sent():  # the follow-up "ready"
        pbx.send(m.SetAgentStateResponse(), invoke_id)


def agent_event(cls: type[m.CstaEvent], **kw: object) -> m.CstaEvent:
    return cls(monitor_cross_ref_id=xref(AGENT_DN), agent_device=AGENT_DN, **kw)  # type: ignore[call-arg]


def test_login_is_set_agent_state_and_answers_as_the_virtual_switch() -> None:
    switch, pbx = up()
    switch.request(
        TAgentLogin(
            reference_id=1,
            dn=AGENT_DN,
            queue=QUEUE,
            agent_id="a1",
            password="pw",
            work_mode=WorkMode.AUTO_IN,
        )
    )
    assert switch.drain_events() == []
    [(invoke_id, request)] = pbx.sent()
    assert request == m.SetAgentState(
        device=AGENT_DN, requested_agent_state="loggedOn", agent_id="a1", password="pw", group=QUEUE
    )
    pbx.send(m.SetAgentStateResponse(), invoke_id)
    assert switch.drain_events() == [
        EventAgentLogin(switch=SWITCH, reference_id=1, dn=AGENT_DN, agent_id="a1", queue=QUEUE),
        EventAgentReady(
            switch=SWITCH,
            reference_id=1,
            dn=AGENT_DN,
            agent_id="a1",
            queue=QUEUE,
            work_mode=WorkMode.AUTO_IN,
        ),
    ]
    [(_, ready)] = pbx.sent()  # AutoIn: the PBX is asked for ready too
    assert ready == m.SetAgentState(device=AGENT_DN, requested_agent_state="ready")
    # the PBX's echo of what was reported is not reported again
    pbx.send(agent_event(m.AgentLoggedOnEvent, agent_id="a1"))
    pbx.send(agent_event(m.AgentReadyEvent, agent_id="a1"))
    assert switch.drain_events() == []


def test_not_ready_after_call_work_and_logout() -> None:
    switch, pbx = up()
    logged_in(switch, pbx)
    switch.request(
        TAgentSetNotReady(reference_id=2, dn=AGENT_DN, queue="", work_mode=WorkMode.AFTER_CALL_WORK)
    )
    [(invoke_id, request)] = pbx.sent()
    assert request == m.SetAgentState(
        device=AGENT_DN, requested_agent_state="workingAfterCall", agent_id="a1"
    )
    pbx.send(m.SetAgentStateResponse(), invoke_id)
    [not_ready] = switch.drain_events()
    assert isinstance(not_ready, EventAgentNotReady) and not_ready.reference_id == 2
    assert not_ready.work_mode is WorkMode.AFTER_CALL_WORK
    pbx.send(agent_event(m.AgentWorkingAfterCallEvent, agent_id="a1"))
    assert switch.drain_events() == []
    switch.request(TAgentSetReady(reference_id=3, dn=AGENT_DN, queue=QUEUE))
    [(invoke_id, request)] = pbx.sent()
    assert request.requested_agent_state == "ready"  # type: ignore[attr-defined]
    pbx.send(m.SetAgentStateResponse(), invoke_id)
    assert [type(e) for e in switch.drain_events()] == [EventAgentReady]
    switch.request(TAgentLogout(reference_id=4, dn=AGENT_DN))
    [(invoke_id, request)] = pbx.sent()
    assert request.requested_agent_state == "loggedOff"  # type: ignore[attr-defined]
    pbx.send(m.SetAgentStateResponse(), invoke_id)
    assert switch.drain_events() == [
        EventAgentLogout(switch=SWITCH, reference_id=4, dn=AGENT_DN, agent_id="a1", queue=QUEUE)
    ]
    record = switch.view.record(AGENT_DN)
    assert record is not None and record.state is AgentState.LOGGED_OUT


def test_the_pbxs_own_agent_changes_are_reported_unsolicited() -> None:
    switch, pbx = up()
    pbx.send(agent_event(m.AgentLoggedOnEvent, agent_id="b2", acd_group=QUEUE))
    assert switch.drain_events() == [
        EventAgentLogin(switch=SWITCH, dn=AGENT_DN, agent_id="b2", queue=QUEUE),
        EventAgentNotReady(
            switch=SWITCH, dn=AGENT_DN, agent_id="b2", queue=QUEUE, work_mode=WorkMode.UNKNOWN
        ),
    ]
    pbx.send(agent_event(m.AgentNotReadyEvent))
    assert switch.drain_events() == []
    pbx.send(agent_event(m.AgentReadyEvent))
    pbx.send(agent_event(m.AgentWorkingAfterCallEvent))
    pbx.send(agent_event(m.AgentNotReadyEvent))
    pbx.send(agent_event(m.AgentLoggedOffEvent))
    pbx.send(agent_event(m.AgentLoggedOffEvent))
    events = switch.drain_events()
    assert [(type(e), getattr(e, "work_mode", None)) for e in events] == [
        (EventAgentReady, WorkMode.UNKNOWN),
        (EventAgentNotReady, WorkMode.AFTER_CALL_WORK),
        (EventAgentNotReady, WorkMode.UNKNOWN),
        (EventAgentLogout, None),
    ]
    assert all(e.reference_id is None for e in events)
    # a Ready for an agent never seen logging in: login first
    pbx.send(agent_event(m.AgentReadyEvent, agent_id="c3"))
    assert [type(e) for e in switch.drain_events()] == [EventAgentLogin, EventAgentReady]


def test_a_refused_agent_request_is_an_event_error() -> None:
    switch, pbx = up()
    switch.request(TAgentLogin(reference_id=5, dn=AGENT_DN, queue=QUEUE, agent_id="a1"))
    [(invoke_id, _)] = pbx.sent()
    pbx.send(
        m.CSTAErrorCode(category="stateIncompatibility", value="invalidObjectState"), invoke_id
    )
    [error] = switch.drain_events()
    assert isinstance(error, EventError)
    assert (error.reference_id, error.error_code, error.request) == (
        5,
        AGENT_WRONG_STATE,
        "TAgentLogin",
    )
    assert "invalidObjectState" in error.error_message
    switch.request(TAgentLogin(reference_id=6, dn=AGENT_DN, queue=QUEUE, agent_id="a1"))
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.CSTAErrorCode(category="operation", value="invalidCstaDeviceIdentifier"), invoke_id)
    [error] = switch.drain_events()
    assert isinstance(error, EventError) and error.error_code == TErrorCode.TERR_INVALID_ATTR


def test_agent_requests_checked_locally_first() -> None:
    switch, pbx = up()
    switch.request(TAgentSetReady(reference_id=7, dn=AGENT_DN, queue=""))  # nobody logged in
    switch.request(TAgentLogin(reference_id=8, dn=AGENT_DN, queue=QUEUE, agent_id=""))
    switch.request(TAgentLogin(reference_id=9, dn=VRP, queue=QUEUE, agent_id="a"))
    switch.request(TAgentLogin(reference_id=10, dn="nope", queue=QUEUE, agent_id="a"))
    switch.request(TAgentLogin(reference_id=11, dn=AGENT_DN, queue=AGENT_DN, agent_id="a"))
    codes = [(e.reference_id, e.error_code) for e in switch.drain_events()]  # type: ignore[attr-defined]
    assert codes == [
        (7, AGENT_WRONG_STATE),
        (8, TErrorCode.TERR_INVALID_ATTR),
        (9, TErrorCode.TERR_UNSUP_OPER),
        (10, TErrorCode.TERR_NOT_CONFIGURED),
        (11, TErrorCode.TERR_INVALID_ATTR),
    ]
    assert pbx.sent() == []
    logged_in(switch, pbx)
    switch.request(TAgentSetReady(reference_id=12, dn=AGENT_DN, queue="9999"))
    [error] = switch.drain_events()
    assert isinstance(error, EventError) and error.error_code == TErrorCode.TERR_INVALID_ATTR


def test_an_unanswered_agent_request_times_out() -> None:
    switch, pbx = up()
    switch.request(TAgentLogin(reference_id=13, dn=AGENT_DN, queue=QUEUE, agent_id="a1"))
    pbx.sent()
    switch.handle_timer(1.0)
    switch.handle_timer(11.0)
    [error] = switch.drain_events()
    assert isinstance(error, EventError) and error.error_code == TErrorCode.TERR_TIMEOUT


def test_query_address_is_get_agent_state() -> None:
    switch, pbx = up()
    logged_in(switch, pbx, WorkMode.MANUAL_IN)
    switch.request(TQueryAddress(reference_id=14, dn=AGENT_DN))
    [(invoke_id, request)] = pbx.sent()
    assert request == m.GetAgentState(device=AGENT_DN)
    pbx.send(
        m.GetAgentStateResponse(
            agents=(
                m.AgentStateEntry(
                    agent_id="a1", logged_on_state=True, agent_state="workingAfterCall"
                ),
            )
        ),
        invoke_id,
    )
    assert switch.drain_events() == [
        EventAddressInfo(
            switch=SWITCH,
            reference_id=14,
            dn=AGENT_DN,
            dn_type=switch.view.record(AGENT_DN).type,  # type: ignore[union-attr]
            agent_status=AgentStatus.ACW,
            agent_id="a1",
            queue=QUEUE,
            work_mode=WorkMode.AFTER_CALL_WORK,
        )
    ]
    switch.request(TQueryAddress(reference_id=15, dn=AGENT_DN))
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.GetAgentStateResponse(), invoke_id)
    [info] = switch.drain_events()
    assert isinstance(info, EventAddressInfo)
    assert (info.agent_status, info.agent_id, info.queue) == (AgentStatus.LOGGED_OUT, None, None)


@pytest.mark.parametrize(
    ("agent_state", "logged_on", "status"),
    [
        ("agentReady", True, AgentStatus.READY),
        ("agentNotReady", True, AgentStatus.NOT_READY),
        ("agentWorkingAfterCall", True, AgentStatus.ACW),
        ("agentNull", True, AgentStatus.LOGGED_OUT),
        ("agentNull", False, AgentStatus.LOGGED_OUT),
    ],
)
def test_query_address_reads_ecma_323_agent_states(
    agent_state: str, logged_on: bool, status: AgentStatus
) -> None:
    """GetAgentStateResponse's agentState values as ECMA-323 spells them (the simulator's too)."""
    switch, pbx = up()
    logged_in(switch, pbx, WorkMode.MANUAL_IN)
    switch.request(TQueryAddress(reference_id=16, dn=AGENT_DN))
    [(invoke_id, _)] = pbx.sent()
    entry = m.AgentStateEntry(agent_id="a1", logged_on_state=logged_on, agent_state=agent_state)
    pbx.send(m.GetAgentStateResponse(agents=(entry,)), invoke_id)
    [info] = switch.drain_events()
    assert isinstance(info, EventAddressInfo)
    assert info.agent_status == status
