"""Unit tests of the sans-IO virtual switch (ivr_server.switch): pure, no sockets, no clock."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_server.errors import LocalProtocolError
from ivr_server.switch import (
    AGENT_WRONG_STATE,
    READY_WORK_MODES,
    REQUEST_INPUTS,
    TRANSITIONS,
    AgentInput,
    AgentState,
    AgentStatus,
    DnType,
    EventAddressInfo,
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    EventDNBackInService,
    EventDNOutOfService,
    EventError,
    EventLinkConnected,
    EventLinkDisconnected,
    EventRegistered,
    EventUnregistered,
    SwitchEvent,
    SwitchRequest,
    SwitchView,
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TCloseLink,
    TConfigureAddresses,
    TErrorCode,
    TOpenLink,
    TQueryAddress,
    TRegisterAddress,
    TSetInService,
    TUnregisterAddress,
    WorkMode,
    agent_status,
)
from ivr_server.switch import events as events_module
from ivr_server.switch import requests as requests_module
from ivr_server.switch.virtual import AGENT_DN_TYPES, VirtualSwitch

SWITCH = "SW_IVR"
TSERVER = "TServer_IVR"
PORT = "5001"
PORT_VTP = "5002"
PORT_OTHER = "5003"
ROUTING_POINT = "7000"
VIRTUAL_RP = "7100"
QUEUE = "8000"
QUEUE_2 = "8001"
DNS: list[tuple[str, DnType]] = [
    (PORT, DnType.EXTENSION),
    (PORT_VTP, DnType.VOICE_TREATMENT_PORT),
    (PORT_OTHER, DnType.EXTENSION),
    (ROUTING_POINT, DnType.ROUTING_POINT),
    (VIRTUAL_RP, DnType.VIRTUAL_ROUTING_POINT),
    (QUEUE, DnType.ACD_QUEUE),
    (QUEUE_2, DnType.ACD_QUEUE),
]
NON_AGENT_DNS = [ROUTING_POINT, VIRTUAL_RP, QUEUE]
DOC = Path(__file__).resolve().parents[2] / "docs" / "switch.md"

_refs = itertools.count(1000)


def ref() -> int:
    return next(_refs)


def make_switch(*, link: bool = True) -> VirtualSwitch:
    switch = VirtualSwitch(SWITCH, TSERVER, DNS)
    if link:
        switch.request(TOpenLink(reference_id=0))
    switch.drain_events()
    return switch


def send(switch: VirtualSwitch, request: SwitchRequest) -> list[SwitchEvent]:
    switch.request(request)
    return switch.drain_events()


def names(events: list[SwitchEvent]) -> list[str]:
    return [event.name for event in events]


def only_error(events: list[SwitchEvent]) -> EventError:
    assert len(events) == 1, events
    error = events[0]
    assert isinstance(error, EventError), error
    return error


def login(
    switch: VirtualSwitch,
    dn: str = PORT,
    agent_id: str = "553",
    *,
    queue: str = QUEUE,
    work_mode: WorkMode = WorkMode.UNKNOWN,
) -> list[SwitchEvent]:
    return send(
        switch,
        TAgentLogin(reference_id=ref(), dn=dn, queue=queue, agent_id=agent_id, work_mode=work_mode),
    )


def state_of(switch: VirtualSwitch, dn: str) -> AgentState:
    snapshot = switch.view.dn(dn)
    assert snapshot is not None
    return snapshot.agent.state if snapshot.agent is not None else AgentState.LOGGED_OUT


def put_in_state(switch: VirtualSwitch, dn: str, state: AgentState) -> None:
    if state is AgentState.READY:
        login(switch, dn, "agent-setup", work_mode=WorkMode.AUTO_IN)
    elif state is AgentState.NOT_READY:
        login(switch, dn, "agent-setup", work_mode=WorkMode.UNKNOWN)
    assert state_of(switch, dn) is state


def request_for(agent_input: AgentInput, dn: str, reference_id: int) -> SwitchRequest:
    """A well-formed request that is ``agent_input`` for the agent table."""
    built: dict[AgentInput, SwitchRequest] = {
        AgentInput.QUERY: TQueryAddress(reference_id=reference_id, dn=dn),
        AgentInput.LOGIN_READY: TAgentLogin(
            reference_id=reference_id,
            dn=dn,
            queue=QUEUE,
            agent_id="553",
            work_mode=WorkMode.MANUAL_IN,
        ),
        AgentInput.LOGIN_NOT_READY: TAgentLogin(
            reference_id=reference_id, dn=dn, queue=QUEUE, agent_id="553"
        ),
        AgentInput.LOGOUT: TAgentLogout(reference_id=reference_id, dn=dn),
        AgentInput.SET_READY: TAgentSetReady(
            reference_id=reference_id, dn=dn, queue=QUEUE, work_mode=WorkMode.AUTO_IN
        ),
        AgentInput.SET_NOT_READY: TAgentSetNotReady(
            reference_id=reference_id, dn=dn, queue=QUEUE, work_mode=WorkMode.UNKNOWN
        ),
    }
    return built[agent_input]


# -- the agent table -----------------------------------------------------------------------------

S = AgentState
I = AgentInput  # noqa: E741
EXPECTED_TABLE: dict[tuple[AgentState, AgentInput], tuple[AgentState, tuple[str, ...]] | None] = {
    (S.LOGGED_OUT, I.QUERY): (S.LOGGED_OUT, ("EventAddressInfo",)),
    (S.LOGGED_OUT, I.LOGIN_READY): (S.READY, ("EventAgentLogin", "EventAgentReady")),
    (S.LOGGED_OUT, I.LOGIN_NOT_READY): (S.NOT_READY, ("EventAgentLogin", "EventAgentNotReady")),
    (S.LOGGED_OUT, I.LOGOUT): None,
    (S.LOGGED_OUT, I.SET_READY): None,
    (S.LOGGED_OUT, I.SET_NOT_READY): None,
    (S.READY, I.QUERY): (S.READY, ("EventAddressInfo",)),
    (S.READY, I.LOGIN_READY): None,
    (S.READY, I.LOGIN_NOT_READY): None,
    (S.READY, I.LOGOUT): (S.LOGGED_OUT, ("EventAgentLogout",)),
    (S.READY, I.SET_READY): (S.READY, ("EventAgentReady",)),
    (S.READY, I.SET_NOT_READY): (S.NOT_READY, ("EventAgentNotReady",)),
    (S.NOT_READY, I.QUERY): (S.NOT_READY, ("EventAddressInfo",)),
    (S.NOT_READY, I.LOGIN_READY): None,
    (S.NOT_READY, I.LOGIN_NOT_READY): None,
    (S.NOT_READY, I.LOGOUT): (S.LOGGED_OUT, ("EventAgentLogout",)),
    (S.NOT_READY, I.SET_READY): (S.READY, ("EventAgentReady",)),
    (S.NOT_READY, I.SET_NOT_READY): (S.NOT_READY, ("EventAgentNotReady",)),
}
"""The brief's rules written out by hand, independently of the code's table."""


def test_table_matches_the_rules() -> None:
    assert set(EXPECTED_TABLE) == set(itertools.product(AgentState, AgentInput))
    actual = {
        key: (step.next_state, tuple(event.name for event in step.emits))
        for key, step in TRANSITIONS.items()
    }
    expected = {key: value for key, value in EXPECTED_TABLE.items() if value is not None}
    assert actual == expected


def test_every_agent_request_type_has_inputs() -> None:
    assert set(REQUEST_INPUTS) == {
        TQueryAddress,
        TAgentLogin,
        TAgentLogout,
        TAgentSetReady,
        TAgentSetNotReady,
    }
    assert {i for inputs in REQUEST_INPUTS.values() for i in inputs} == set(AgentInput)


@pytest.mark.parametrize("dn", [PORT, PORT_VTP])
@pytest.mark.parametrize(("state", "agent_input"), list(EXPECTED_TABLE))
def test_agent_table_walked_exhaustively(
    dn: str, state: AgentState, agent_input: AgentInput
) -> None:
    switch = make_switch()
    put_in_state(switch, dn, state)
    switch.drain_events()
    before = switch.view.dn(dn)
    reference_id = ref()
    request = request_for(agent_input, dn, reference_id)
    assert agent_input in REQUEST_INPUTS[type(request)]

    events = send(switch, request)

    assert all(event.reference_id == reference_id for event in events)
    assert all(event.switch == SWITCH for event in events)
    expected = EXPECTED_TABLE[(state, agent_input)]
    if expected is None:
        error = only_error(events)
        assert error.error_code == AGENT_WRONG_STATE
        assert error.dn == dn
        assert error.request == request.name
        assert switch.view.dn(dn) == before
    else:
        next_state, event_names = expected
        assert tuple(names(events)) == event_names
        assert state_of(switch, dn) is next_state
        assert all(getattr(event, "dn", None) == dn for event in events)


def test_login_then_ready_not_ready_logout_like_the_guide() -> None:
    """PROTOCOL.md §6.5.6: query Unknown, login → LoggedIn + NotReady, Ready, NotReady, LoggedOut."""
    switch = make_switch()
    events = send(switch, TQueryAddress(reference_id=705, dn=PORT))
    assert events == [
        EventAddressInfo(
            switch=SWITCH,
            reference_id=705,
            dn=PORT,
            dn_type=DnType.EXTENSION,
            agent_status=AgentStatus.LOGGED_OUT,
            agent_id=None,
            queue=None,
            work_mode=WorkMode.UNKNOWN,
        )
    ]
    events = send(
        switch, TAgentLogin(reference_id=706, dn=PORT, queue=QUEUE, agent_id="553", password="x")
    )
    assert events == [
        EventAgentLogin(switch=SWITCH, reference_id=706, dn=PORT, agent_id="553", queue=QUEUE),
        EventAgentNotReady(
            switch=SWITCH,
            reference_id=706,
            dn=PORT,
            agent_id="553",
            queue=QUEUE,
            work_mode=WorkMode.UNKNOWN,
        ),
    ]
    events = send(
        switch,
        TAgentSetReady(reference_id=707, dn=PORT, queue=QUEUE, work_mode=WorkMode.MANUAL_IN),
    )
    assert events == [
        EventAgentReady(
            switch=SWITCH,
            reference_id=707,
            dn=PORT,
            agent_id="553",
            queue=QUEUE,
            work_mode=WorkMode.MANUAL_IN,
        )
    ]
    assert names(send(switch, TAgentSetNotReady(reference_id=708, dn=PORT, queue=QUEUE))) == [
        "EventAgentNotReady"
    ]
    assert send(switch, TAgentLogout(reference_id=709, dn=PORT, queue=QUEUE)) == [
        EventAgentLogout(switch=SWITCH, reference_id=709, dn=PORT, agent_id="553", queue=QUEUE)
    ]
    # The guide's error sample: AgentLogin of an agent already logged in → TlibErrCode 50.
    login(switch)
    error = only_error(login(switch))
    assert error.error_code == 50
    assert error.request == "TAgentLogin"


@pytest.mark.parametrize(
    ("work_mode", "state"),
    [
        (WorkMode.AUTO_IN, AgentState.READY),
        (WorkMode.MANUAL_IN, AgentState.READY),
        (WorkMode.UNKNOWN, AgentState.NOT_READY),
        (WorkMode.AFTER_CALL_WORK, AgentState.NOT_READY),
        (WorkMode.WALK_AWAY, AgentState.NOT_READY),
    ],
)
def test_login_ready_choice_follows_work_mode(work_mode: WorkMode, state: AgentState) -> None:
    switch = make_switch()
    events = login(switch, work_mode=work_mode)
    expected = "EventAgentReady" if state is AgentState.READY else "EventAgentNotReady"
    assert names(events) == ["EventAgentLogin", expected]
    snapshot = switch.view.dn(PORT)
    assert snapshot is not None and snapshot.agent is not None
    assert snapshot.agent.state is state
    assert snapshot.agent.work_mode is work_mode


def test_reference_ids_are_echoed_on_every_event() -> None:
    switch = make_switch()
    events = send(
        switch,
        TAgentLogin(
            reference_id=42, dn=PORT, queue=QUEUE, agent_id="a", work_mode=WorkMode.AUTO_IN
        ),
    )
    assert [event.reference_id for event in events] == [42, 42]
    assert only_error(send(switch, TAgentLogout(reference_id=43, dn="nope"))).reference_id == 43
    assert [e.reference_id for e in send(switch, TRegisterAddress(reference_id=44, dn=PORT))] == [
        44
    ]
    # unsolicited events carry no reference id
    switch.request(TCloseLink(reference_id=0))
    switch.request(TConfigureAddresses(reference_id=0, dns=tuple(DNS[1:])))
    assert all(event.reference_id is None for event in switch.drain_events())


# -- queries -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setup", "status"),
    [
        ((), AgentStatus.LOGGED_OUT),
        ((TAgentSetReady, WorkMode.AUTO_IN), AgentStatus.READY),
        ((TAgentSetReady, WorkMode.UNKNOWN), AgentStatus.READY),
        ((TAgentSetNotReady, WorkMode.UNKNOWN), AgentStatus.NOT_READY),
        ((TAgentSetNotReady, WorkMode.MANUAL_IN), AgentStatus.NOT_READY),
        ((TAgentSetNotReady, WorkMode.AFTER_CALL_WORK), AgentStatus.ACW),
        ((TAgentSetNotReady, WorkMode.WALK_AWAY), AgentStatus.WALK_AWAY),
    ],
)
def test_query_reports_agent_status(
    setup: tuple[type[TAgentSetReady] | type[TAgentSetNotReady], WorkMode] | tuple[()],
    status: AgentStatus,
) -> None:
    switch = make_switch()
    if setup:
        request_type, work_mode = setup
        login(switch, agent_id="77", queue=QUEUE_2)
        send(switch, request_type(reference_id=ref(), dn=PORT, queue=QUEUE_2, work_mode=work_mode))
    (info,) = send(switch, TQueryAddress(reference_id=9, dn=PORT))
    assert isinstance(info, EventAddressInfo)
    assert info.agent_status is status
    assert info.dn_type is DnType.EXTENSION
    if setup:
        assert (info.agent_id, info.queue, info.work_mode) == ("77", QUEUE_2, setup[1])
    else:
        assert (info.agent_id, info.queue, info.work_mode) == (None, None, WorkMode.UNKNOWN)


def test_agent_status_function_covers_every_state_and_mode() -> None:
    for state, work_mode in itertools.product(AgentState, WorkMode):
        status = agent_status(state, work_mode)
        if state is AgentState.LOGGED_OUT:
            assert status is AgentStatus.LOGGED_OUT
        elif state is AgentState.READY:
            assert status is AgentStatus.READY
        else:
            assert status in {AgentStatus.NOT_READY, AgentStatus.ACW, AgentStatus.WALK_AWAY}


def test_same_state_requests_re_emit_and_update_work_mode() -> None:
    switch = make_switch()
    login(switch, work_mode=WorkMode.AUTO_IN)
    events = send(
        switch,
        TAgentSetReady(reference_id=1, dn=PORT, queue=QUEUE, work_mode=WorkMode.MANUAL_IN),
    )
    assert names(events) == ["EventAgentReady"]
    snapshot = switch.view.dn(PORT)
    assert snapshot is not None and snapshot.agent is not None
    assert snapshot.agent.work_mode is WorkMode.MANUAL_IN
    send(
        switch,
        TAgentSetNotReady(reference_id=2, dn=PORT, queue="", work_mode=WorkMode.AFTER_CALL_WORK),
    )
    events = send(
        switch,
        TAgentSetNotReady(reference_id=3, dn=PORT, queue=QUEUE, work_mode=WorkMode.WALK_AWAY),
    )
    assert names(events) == ["EventAgentNotReady"]
    (info,) = send(switch, TQueryAddress(reference_id=4, dn=PORT))
    assert isinstance(info, EventAddressInfo)
    assert info.agent_status is AgentStatus.WALK_AWAY


# -- link ----------------------------------------------------------------------------------------


def test_link_starts_down_and_reports_changes_once() -> None:
    switch = VirtualSwitch(SWITCH, TSERVER, DNS)
    assert not switch.view.link_up
    assert switch.drain_events() == []
    switch.request(TOpenLink(reference_id=0))
    switch.request(TOpenLink(reference_id=0))
    assert switch.view.link_up
    assert switch.drain_events() == [EventLinkConnected(switch=SWITCH, tserver=TSERVER)]
    switch.request(TCloseLink(reference_id=0))
    switch.request(TCloseLink(reference_id=0))
    assert not switch.view.link_up
    assert switch.drain_events() == [EventLinkDisconnected(switch=SWITCH, tserver=TSERVER)]
    assert (switch.name, switch.tserver) == (SWITCH, TSERVER)


@pytest.mark.parametrize(
    "request_",
    [
        TQueryAddress(reference_id=1, dn=PORT),
        TAgentLogin(reference_id=1, dn=PORT, queue=QUEUE, agent_id="1"),
        TAgentLogout(reference_id=1, dn=PORT),
        TAgentSetReady(reference_id=1, dn=PORT, queue=QUEUE, work_mode=WorkMode.AUTO_IN),
        TAgentSetNotReady(reference_id=1, dn=PORT, queue=QUEUE, work_mode=WorkMode.UNKNOWN),
        TRegisterAddress(reference_id=1, dn=PORT),
        TUnregisterAddress(reference_id=1, dn=PORT),
        TQueryAddress(reference_id=1, dn="unknown"),
    ],
)
def test_requests_while_link_down_fail_with_no_switch(request_: SwitchRequest) -> None:
    switch = make_switch(link=False)
    before = list(switch.view.dns())
    error = only_error(send(switch, request_))
    assert error.error_code == TErrorCode.TERR_NO_SWITCH
    assert error.request == request_.name
    assert error.reference_id == 1
    assert list(switch.view.dns()) == before


def test_agent_survives_link_loss() -> None:
    switch = make_switch()
    login(switch, work_mode=WorkMode.AUTO_IN)
    switch.request(TCloseLink(reference_id=0))
    switch.request(TOpenLink(reference_id=0))
    switch.drain_events()
    assert state_of(switch, PORT) is AgentState.READY


# -- configuration -------------------------------------------------------------------------------


def test_update_dns_registers_new_and_unregisters_removed() -> None:
    switch = make_switch()
    login(switch, PORT, "553")
    switch.request(
        TConfigureAddresses(reference_id=0, dns=tuple([*DNS[1:], ("5010", DnType.EXTENSION)]))
    )
    assert switch.drain_events() == [
        EventAgentLogout(switch=SWITCH, dn=PORT, agent_id="553", queue=QUEUE),
        EventUnregistered(switch=SWITCH, dn=PORT),
        EventRegistered(switch=SWITCH, dn="5010"),
    ]
    assert switch.view.dn(PORT) is None
    added = switch.view.dn("5010")
    assert added is not None and added.registered and added.in_service and added.agent is None
    assert [d.number for d in switch.view.dns()] == [number for number, _ in DNS[1:]] + ["5010"]
    # the agent id is free again
    assert names(login(switch, PORT_OTHER, "553")) == ["EventAgentLogin", "EventAgentNotReady"]
    # requests on the removed DN: unknown
    assert only_error(send(switch, TQueryAddress(reference_id=1, dn=PORT))).error_code == 59


def test_update_dns_type_change_is_unregister_plus_register() -> None:
    switch = make_switch()
    login(switch, PORT, "553")
    changed = [(n, DnType.VOICE_TREATMENT_PORT if n == PORT else t) for n, t in DNS]
    switch.request(TConfigureAddresses(reference_id=0, dns=tuple(changed)))
    assert names(switch.drain_events()) == [
        "EventAgentLogout",
        "EventUnregistered",
        "EventRegistered",
    ]
    snapshot = switch.view.dn(PORT)
    assert snapshot is not None
    assert snapshot.type is DnType.VOICE_TREATMENT_PORT
    assert snapshot.agent is None


def test_update_dns_keeps_unchanged_dns_and_their_agents() -> None:
    switch = make_switch()
    login(switch, PORT_VTP, "9", work_mode=WorkMode.AUTO_IN)
    before = switch.view.dn(PORT_VTP)
    switch.request(TConfigureAddresses(reference_id=0, dns=tuple(list(reversed(DNS)))))
    assert switch.drain_events() == []
    assert switch.view.dn(PORT_VTP) == before
    assert [d.number for d in switch.view.dns()] == [number for number, _ in reversed(DNS)]


def test_removing_an_unregistered_dn_sends_no_unregistered() -> None:
    switch = make_switch()
    send(switch, TUnregisterAddress(reference_id=1, dn=PORT))
    switch.request(TConfigureAddresses(reference_id=0, dns=tuple(DNS[1:])))
    assert switch.drain_events() == []


@pytest.mark.parametrize(
    "dns",
    [
        [(PORT, DnType.EXTENSION), (PORT, DnType.EXTENSION)],
        [(PORT, DnType.EXTENSION), (PORT, DnType.ACD_QUEUE)],
        [("", DnType.EXTENSION)],
        [(PORT, cast(DnType, "phone"))],
    ],
)
def test_bad_dn_lists_are_our_bug(dns: list[tuple[str, DnType]]) -> None:
    with pytest.raises(LocalProtocolError):
        VirtualSwitch(SWITCH, TSERVER, dns)
    switch = make_switch()
    with pytest.raises(LocalProtocolError):
        switch.request(TConfigureAddresses(reference_id=0, dns=tuple(dns)))
    assert [d.number for d in switch.view.dns()] == [number for number, _ in DNS]


def test_out_of_service_blocks_control_but_not_queries() -> None:
    switch = make_switch()
    login(switch)
    switch.request(TSetInService(reference_id=0, dn=PORT, in_service=False))
    switch.request(TSetInService(reference_id=0, dn=PORT, in_service=False))
    assert switch.drain_events() == [EventDNOutOfService(switch=SWITCH, dn=PORT)]
    error = only_error(send(switch, TAgentLogout(reference_id=1, dn=PORT)))
    assert error.error_code == TErrorCode.TERR_OUT_OF_SERVICE
    assert names(send(switch, TQueryAddress(reference_id=2, dn=PORT))) == ["EventAddressInfo"]
    switch.request(TSetInService(reference_id=0, dn=PORT, in_service=True))
    assert switch.drain_events() == [EventDNBackInService(switch=SWITCH, dn=PORT)]
    assert names(send(switch, TAgentLogout(reference_id=3, dn=PORT))) == ["EventAgentLogout"]
    error = only_error(send(switch, TSetInService(reference_id=9, dn="nope", in_service=False)))
    assert (error.error_code, error.reference_id) == (TErrorCode.TERR_NOT_CONFIGURED, 9)


def test_register_and_unregister() -> None:
    switch = make_switch()
    assert send(switch, TUnregisterAddress(reference_id=1, dn=PORT)) == [
        EventUnregistered(switch=SWITCH, reference_id=1, dn=PORT)
    ]
    error = only_error(send(switch, TUnregisterAddress(reference_id=2, dn=PORT)))
    assert error.error_code == TErrorCode.TERR_NOT_REGISTERED
    for request_ in (
        TQueryAddress(reference_id=3, dn=PORT),
        TAgentLogin(reference_id=3, dn=PORT, queue=QUEUE, agent_id="1"),
    ):
        assert only_error(send(switch, request_)).error_code == 41
    for _ in range(2):  # registering twice is answered twice
        assert send(switch, TRegisterAddress(reference_id=4, dn=PORT)) == [
            EventRegistered(switch=SWITCH, reference_id=4, dn=PORT)
        ]
    # any DN type can be registered (routers register routing points)
    assert names(send(switch, TRegisterAddress(reference_id=5, dn=ROUTING_POINT))) == [
        "EventRegistered"
    ]
    assert only_error(send(switch, TRegisterAddress(reference_id=6, dn="9999"))).error_code == 59


def test_unregistering_keeps_the_agent_logged_in() -> None:
    switch = make_switch()
    login(switch, agent_id="553")
    send(switch, TUnregisterAddress(reference_id=1, dn=PORT))
    assert state_of(switch, PORT) is AgentState.NOT_READY
    # and the agent id stays taken
    assert only_error(login(switch, PORT_OTHER, "553")).error_code == 1704


# -- request errors ------------------------------------------------------------------------------


def agent_requests(dn: str) -> list[SwitchRequest]:
    return [request_for(agent_input, dn, 7) for agent_input in AgentInput]


@pytest.mark.parametrize("request_", agent_requests("4444"))
def test_unknown_dn(request_: SwitchRequest) -> None:
    error = only_error(send(make_switch(), request_))
    assert error.error_code == TErrorCode.TERR_NOT_CONFIGURED
    assert error.dn == "4444"


@pytest.mark.parametrize(
    "request_", [r for dn in NON_AGENT_DNS for r in agent_requests(dn)], ids=repr
)
def test_dn_type_that_cannot_hold_an_agent(request_: SwitchRequest) -> None:
    assert not {DnType(t) for n, t in DNS if n in NON_AGENT_DNS} & AGENT_DN_TYPES
    error = only_error(send(make_switch(), request_))
    assert error.error_code == TErrorCode.TERR_UNSUP_OPER


@pytest.mark.parametrize("queue", ["9999", PORT, ROUTING_POINT])
def test_login_with_a_queue_that_is_not_an_acd_queue(queue: str) -> None:
    switch = make_switch()
    assert only_error(login(switch, queue=queue)).error_code == TErrorCode.TERR_INVALID_ATTR
    assert state_of(switch, PORT) is AgentState.LOGGED_OUT


def test_login_without_queue_is_accepted() -> None:
    switch = make_switch()
    events = login(switch, queue="")
    assert names(events) == ["EventAgentLogin", "EventAgentNotReady"]
    assert isinstance(events[0], EventAgentLogin) and events[0].queue == ""


def test_login_with_empty_agent_id() -> None:
    switch = make_switch()
    assert only_error(login(switch, agent_id="")).error_code == 53


def test_agent_id_busy_on_another_dn() -> None:
    switch = make_switch()
    login(switch, PORT, "553")
    error = only_error(login(switch, PORT_VTP, "553"))
    assert error.error_code == TErrorCode.TERR_SOFT_AGENT_ID_IN_USE
    assert error.dn == PORT_VTP
    assert state_of(switch, PORT_VTP) is AgentState.LOGGED_OUT


@pytest.mark.parametrize("work_mode", [WorkMode.AFTER_CALL_WORK, WorkMode.WALK_AWAY])
def test_ready_with_a_not_ready_work_mode(work_mode: WorkMode) -> None:
    switch = make_switch()
    login(switch)
    events = send(switch, TAgentSetReady(reference_id=1, dn=PORT, queue=QUEUE, work_mode=work_mode))
    assert only_error(events).error_code == 53


@pytest.mark.parametrize(
    "request_",
    [
        TAgentLogout(reference_id=1, dn=PORT, queue=QUEUE_2),
        TAgentSetReady(reference_id=1, dn=PORT, queue=QUEUE_2, work_mode=WorkMode.UNKNOWN),
        TAgentSetNotReady(reference_id=1, dn=PORT, queue=QUEUE_2, work_mode=WorkMode.UNKNOWN),
    ],
)
def test_queue_other_than_the_logins(request_: SwitchRequest) -> None:
    switch = make_switch()
    login(switch, queue=QUEUE)
    before = switch.view.dn(PORT)
    assert only_error(send(switch, request_)).error_code == 53
    assert switch.view.dn(PORT) == before


@pytest.mark.parametrize("queue", [None, "", QUEUE])
def test_logout_queue_defaults_to_the_logins(queue: str | None) -> None:
    switch = make_switch()
    login(switch, queue=QUEUE)
    (event,) = send(switch, TAgentLogout(reference_id=1, dn=PORT, queue=queue))
    assert isinstance(event, EventAgentLogout)
    assert event.queue == QUEUE


def test_unknown_request_type_is_unsupported() -> None:
    class TMakeCall(SwitchRequest, frozen=True, kw_only=True):
        dn: str

    error = only_error(send(make_switch(), TMakeCall(reference_id=5, dn=PORT)))
    assert error.error_code == TErrorCode.TERR_UNSUP_OPER
    assert (error.request, error.dn, error.reference_id) == ("TMakeCall", PORT, 5)


def test_error_code_values_are_the_genesys_numbers() -> None:
    assert {code.name: code.value for code in TErrorCode} == {
        "TERR_NOT_REGISTERED": 41,
        "TERR_IN_SAME_STATE": 43,
        "TERR_UNKNOWN_ERROR": 50,
        "TERR_UNSUP_OPER": 51,
        "TERR_INVALID_ATTR": 53,
        "TERR_NO_SWITCH": 54,
        "TERR_INV_CONNID": 56,
        "TERR_TIMEOUT": 57,
        "TERR_OUT_OF_SERVICE": 58,
        "TERR_NOT_CONFIGURED": 59,
        "TERR_INV_CALL_DN": 61,
        "TERR_INV_CALD_DN": 71,
        "TERR_ORIG_DN_BUSY": 83,
        "TERR_UNKNOWN": 100,
        "TERR_TOO_MANY_REQ": 111,
        "TERR_ACCESS_RESTICT": 165,
        "TERR_RES_UNAVAIL": 166,
        "TERR_SET_WRONG_STATE": 185,
        "TERR_DN_NO_ANSWER": 232,
        "TERR_CONN_ATMPT_FAIL": 234,
        "TERR_SOFT_AGENT_ID_IN_USE": 1704,
    }
    assert AGENT_WRONG_STATE is TErrorCode.TERR_UNKNOWN_ERROR  # 50: the guide's sample (§3.2.3)


# -- queue, snapshots, names ---------------------------------------------------------------------


def test_drain_returns_everything_in_order_and_empties_the_queue() -> None:
    switch = VirtualSwitch(SWITCH, TSERVER, DNS)
    switch.request(TOpenLink(reference_id=0))
    switch.request(TAgentLogin(reference_id=1, dn=PORT, queue=QUEUE, agent_id="a"))
    switch.request(TAgentLogin(reference_id=2, dn=PORT, queue=QUEUE, agent_id="b"))
    switch.request(TAgentSetReady(reference_id=3, dn=PORT, queue=QUEUE, work_mode=WorkMode.AUTO_IN))
    switch.request(TSetInService(reference_id=0, dn=PORT_VTP, in_service=False))
    switch.request(TCloseLink(reference_id=0))
    events = switch.drain_events()
    assert [(e.name, e.reference_id) for e in events] == [
        ("EventLinkConnected", None),
        ("EventAgentLogin", 1),
        ("EventAgentNotReady", 1),
        ("EventError", 2),
        ("EventAgentReady", 3),
        ("EventDNOutOfService", None),
        ("EventLinkDisconnected", None),
    ]
    assert switch.drain_events() == []


def test_snapshots_are_immutable_values() -> None:
    switch = make_switch()
    login(switch)
    snapshot = switch.view.dn(PORT)
    assert snapshot is not None and snapshot.agent is not None
    with pytest.raises(AttributeError, match="immutable"):  # frozen msgspec.Structs
        snapshot.registered = False  # type: ignore[misc]
    with pytest.raises(AttributeError, match="immutable"):
        snapshot.agent.agent_id = "x"  # type: ignore[misc]
    send(switch, TAgentSetReady(reference_id=1, dn=PORT, queue=QUEUE, work_mode=WorkMode.AUTO_IN))
    assert snapshot.agent.state is AgentState.NOT_READY  # the old snapshot did not move
    assert state_of(switch, PORT) is AgentState.READY
    assert switch.view.dn("missing") is None


def _subclasses_in(
    module: object, base: type[SwitchEvent] | type[SwitchRequest]
) -> Iterator[type[SwitchEvent] | type[SwitchRequest]]:
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, base) and value is not base:
            yield value


def test_event_and_request_names_are_the_t_library_names() -> None:
    event_types = list(_subclasses_in(events_module, SwitchEvent))
    request_types = list(_subclasses_in(requests_module, SwitchRequest))
    assert len(event_types) == 34 and len(request_types) == 39
    for cls in [*event_types, *request_types]:
        assert cls.name == cls.__name__
        assert cls.__doc__
        assert cls.__struct_config__.frozen  # immutable msgspec structs, made in C
        assert cls.__match_args__ == ()  # every field keyword-only
        assert "__slots__" in vars(cls)


# -- docs stay in sync with the code -------------------------------------------------------------


def doc_rows() -> list[str]:
    rows = []
    for state, agent_input in itertools.product(AgentState, AgentInput):
        step = TRANSITIONS.get((state, agent_input))
        if step is None:
            next_state, emitted = "(unchanged)", f"EventError {int(AGENT_WRONG_STATE)}"
        else:
            next_state = step.next_state.value
            emitted = ", ".join(event.name for event in step.emits)
        rows.append(f"| {state.value} | {agent_input.value} | {next_state} | {emitted} |")
    return rows


def test_doc_lists_every_agent_table_row_and_error_code() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [row for row in doc_rows() if row not in text]
    assert not missing, "docs/switch.md is out of date; rows:\n" + "\n".join(doc_rows())
    for code in TErrorCode:
        assert f"| {code.value} | `{code.name}` |" in text


# -- property: random request sequences ----------------------------------------------------------

DN_POOL = [PORT, PORT_VTP, PORT_OTHER, ROUTING_POINT, QUEUE, QUEUE_2, "5999", "8999"]
dn_st = st.sampled_from([PORT, PORT, PORT_VTP, PORT_VTP, PORT_OTHER, *DN_POOL])
queue_st = st.sampled_from([QUEUE, QUEUE_2, "", PORT, "8999"])
agent_st = st.sampled_from(["a1", "a2", "a3", ""])
mode_st = st.sampled_from(WorkMode)
reference_st = st.integers(min_value=0, max_value=2**31 - 1)

request_st = st.one_of(
    st.builds(TQueryAddress, reference_id=reference_st, dn=dn_st),
    st.builds(
        TAgentLogin,
        reference_id=reference_st,
        dn=dn_st,
        queue=queue_st,
        agent_id=agent_st,
        password=st.just(""),
        work_mode=mode_st,
    ),
    st.builds(
        TAgentLogout, reference_id=reference_st, dn=dn_st, queue=st.one_of(st.none(), queue_st)
    ),
    st.builds(
        TAgentSetReady, reference_id=reference_st, dn=dn_st, queue=queue_st, work_mode=mode_st
    ),
    st.builds(
        TAgentSetNotReady, reference_id=reference_st, dn=dn_st, queue=queue_st, work_mode=mode_st
    ),
    st.builds(TRegisterAddress, reference_id=reference_st, dn=dn_st),
    st.builds(TUnregisterAddress, reference_id=reference_st, dn=st.sampled_from(DN_POOL)),
)
CONFIG_POOL = [
    *DNS,
    (PORT, DnType.VOICE_TREATMENT_PORT),
    (QUEUE, DnType.EXTENSION),
    ("5999", DnType.EXTENSION),
    ("8999", DnType.ACD_QUEUE),
]
port_st = st.sampled_from([PORT, PORT_VTP, PORT_OTHER])
good_queue_st = st.sampled_from([QUEUE, QUEUE_2, ""])
likely_request_st = st.one_of(
    st.builds(
        TAgentLogin,
        reference_id=reference_st,
        dn=port_st,
        queue=good_queue_st,
        agent_id=st.sampled_from(["a1", "a2", "a3"]),
        password=st.just(""),
        work_mode=mode_st,
    ),
    st.builds(TAgentLogout, reference_id=reference_st, dn=port_st),
    st.builds(
        TAgentSetReady,
        reference_id=reference_st,
        dn=port_st,
        queue=st.just(""),
        work_mode=st.sampled_from(sorted(READY_WORK_MODES)),
    ),
    st.builds(
        TAgentSetNotReady,
        reference_id=reference_st,
        dn=port_st,
        queue=st.just(""),
        work_mode=mode_st,
    ),
    st.builds(TQueryAddress, reference_id=reference_st, dn=port_st),
)
config_st = st.lists(st.sampled_from(CONFIG_POOL), min_size=5, unique_by=lambda entry: entry[0])
operation_st = st.one_of(
    *[request_st] * 8,
    *[likely_request_st] * 8,
    st.just("connect"),
    st.just("disconnect"),
    config_st,
    st.tuples(dn_st, st.booleans()),
)


def check_invariants(switch: VirtualSwitch) -> None:
    agent_ids = []
    for snapshot in switch.view.dns():
        if snapshot.agent is None:
            continue
        assert snapshot.type in AGENT_DN_TYPES
        assert snapshot.agent.state in {AgentState.READY, AgentState.NOT_READY}
        assert snapshot.agent.agent_id
        agent_ids.append(snapshot.agent.agent_id)
    assert len(agent_ids) == len(set(agent_ids)), "an agent id is logged in on two DNs"


@settings(max_examples=300, deadline=None)
@given(st.lists(operation_st, max_size=40))
def test_random_sequences_never_raise_and_keep_invariants(operations: list[object]) -> None:
    switch = VirtualSwitch(SWITCH, TSERVER, DNS)
    # a view fed only with the configuration and the events drained answers as the switch's does
    shadow = SwitchView(DNS)

    def drain() -> list[SwitchEvent]:
        events = switch.drain_events()
        for event in events:
            shadow.apply(event)
        return events

    switch.request(TOpenLink(reference_id=0))
    drain()
    for operation in operations:
        if isinstance(operation, SwitchRequest):
            before = list(switch.view.dns())
            switch.request(operation)
            events = drain()
            assert events, "every request is answered"
            assert all(e.reference_id == operation.reference_id for e in events)
            if any(isinstance(e, EventError) for e in events):
                assert len(events) == 1
                assert list(switch.view.dns()) == before, "a failed request changes nothing"
        elif operation == "connect":
            switch.request(TOpenLink(reference_id=0))
        elif operation == "disconnect":
            switch.request(TCloseLink(reference_id=0))
        elif isinstance(operation, list):
            switch.request(TConfigureAddresses(reference_id=0, dns=tuple(operation)))
            shadow.configure(operation)
        else:
            assert isinstance(operation, tuple)
            number, flag = operation
            if switch.view.dn(number) is not None:
                switch.request(TSetInService(reference_id=0, dn=number, in_service=flag))
        drain()
        check_invariants(switch)
        assert list(shadow.dns()) == list(switch.view.dns())
        assert shadow.ready_agents() == switch.view.ready_agents()
        assert shadow.link_up == switch.view.link_up
