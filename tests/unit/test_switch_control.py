"""Unit tests of the virtual switch's call control (issue 23, docs/switch.md "Call control"):
every request of the call-control contract, its events in order (which carry the request's
ReferenceID, which are unsolicited), what the view holds after each step, and every refusal.

Expected sequences are written out from the contract (the helpers' brief, MODES-AND-HA G2-G10),
not derived from the code.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from ivr_server.switch import (
    DnType,
    EventError,
    SwitchEvent,
    SwitchRequest,
    TAgentLogin,
    TCallerHangUp,
    TCloseLink,
    TCompleteConference,
    TCompleteTransfer,
    TErrorCode,
    TInboundCall,
    TInitiateConference,
    TInitiateTransfer,
    TMakeCall,
    TOpenLink,
    TReconnectCall,
    TReleaseCall,
    TSetInService,
    TSingleStepConference,
    TSingleStepTransfer,
    WorkMode,
)
from ivr_server.switch.requests import TAnswerCall
from ivr_server.switch.virtual import VirtualSwitch
from ivr_server.wire.kv import str_node

PORT = "7001"
PORT2 = "7002"
AGENT = "5001"
AGENT2 = "5002"
RP = "8000"
DNS = [
    (PORT, DnType.VOICE_TREATMENT_PORT),
    (PORT2, DnType.VOICE_TREATMENT_PORT),
    (AGENT, DnType.EXTENSION),
    (AGENT2, DnType.EXTENSION),
    (RP, DnType.ROUTING_POINT),
    ("q1", DnType.ACD_QUEUE),
]

_refs = itertools.count(100)

Row = tuple[str, int | None, str, str]
"""An event as the tests compare it: name, ReferenceID, DN, ConnID."""


def ref() -> int:
    return next(_refs)


def make_switch() -> VirtualSwitch:
    switch = VirtualSwitch("sw", "ts", DNS)
    switch.request(TOpenLink(reference_id=0))
    switch.drain_events()
    return switch


def send(switch: VirtualSwitch, request: SwitchRequest) -> list[SwitchEvent]:
    switch.request(request)
    return switch.drain_events()


def rows(events: list[SwitchEvent]) -> list[Row]:
    out = []
    for event in events:
        dn = getattr(event, "dn", "")
        conn = getattr(event, "conn_id", "")
        out.append((event.name, event.reference_id, dn, conn))
    return out


def inbound(switch: VirtualSwitch, dn: str = PORT, data: tuple[str, str] = ("k", "v")) -> str:
    events = send(
        switch,
        TInboundCall(reference_id=ref(), dn=dn, ani="5550100", user_data=(str_node(*data),)),
    )
    conn_id: str = events[-1].conn_id  # type: ignore[attr-defined]
    return conn_id


def error(events: list[SwitchEvent], code: TErrorCode) -> EventError:
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, EventError), event
    assert event.error_code == code, event
    return event


def login_ready(switch: VirtualSwitch, dn: str) -> None:
    send(
        switch,
        TAgentLogin(
            reference_id=ref(), dn=dn, queue="q1", agent_id=f"a{dn}", work_mode=WorkMode.AUTO_IN
        ),
    )


def parties(switch: VirtualSwitch, conn_id: str) -> tuple[str, ...]:
    call = switch.view.call(conn_id)
    assert call is not None, conn_id
    return call.parties


def consult(switch: VirtualSwitch, orig: str, dest: str = AGENT, *, conf: bool = False) -> str:
    """InitXfer/InitConf from the port to ``dest``, answered there: the consultation ConnID."""
    cls = TInitiateConference if conf else TInitiateTransfer
    r = ref()
    events = send(switch, cls(reference_id=r, conn_id=orig, dn=PORT, dest=dest))
    consult_id: str = events[1].conn_id  # type: ignore[attr-defined]
    assert rows(events) == [
        ("EventHeld", r, PORT, orig),
        ("EventDialing", r, PORT, consult_id),
        ("EventRinging", None, dest, consult_id),
    ]
    a = ref()
    events = send(switch, TAnswerCall(reference_id=a, conn_id=consult_id, dn=dest))
    assert rows(events) == [
        ("EventEstablished", a, dest, consult_id),
        ("EventEstablished", None, PORT, consult_id),
    ]
    assert events[1].other_dn == dest  # type: ignore[attr-defined]
    return consult_id


# -- single-step transfer ------------------------------------------------------------------------


def test_single_step_transfer_moves_the_call_with_its_data_to_the_agent() -> None:
    switch = make_switch()
    login_ready(switch, AGENT)
    orig = inbound(switch)
    r = ref()
    events = send(
        switch,
        TSingleStepTransfer(
            reference_id=r, conn_id=orig, dn=PORT, dest=AGENT, user_data=(str_node("x", "1"),)
        ),
    )
    assert rows(events) == [
        ("EventAttachedDataChanged", r, PORT, orig),
        ("EventRinging", None, AGENT, orig),
        ("EventReleased", r, PORT, orig),
    ]
    ringing = events[1]
    assert ringing.user_data == (str_node("k", "v"), str_node("x", "1"))  # type: ignore[attr-defined]
    assert parties(switch, orig) == (AGENT,)
    assert switch.view.ready_agents() == []  # the agent has the call
    a = ref()
    events = send(switch, TAnswerCall(reference_id=a, conn_id=orig, dn=AGENT))
    assert rows(events) == [("EventEstablished", a, AGENT, orig)]
    send(switch, TReleaseCall(reference_id=ref(), conn_id=orig, dn=AGENT))
    assert switch.view.call(orig) is None
    assert [agent.dn for agent in switch.view.ready_agents()] == [AGENT]


def test_single_step_transfer_to_another_port() -> None:
    switch = make_switch()
    orig = inbound(switch)
    r = ref()
    events = send(switch, TSingleStepTransfer(reference_id=r, conn_id=orig, dn=PORT, dest=PORT2))
    assert rows(events) == [("EventRinging", None, PORT2, orig), ("EventReleased", r, PORT, orig)]


@pytest.mark.parametrize(
    ("dest", "code"),
    [
        ("9999", TErrorCode.TERR_INV_CALD_DN),  # not configured
        (RP, TErrorCode.TERR_INV_CALD_DN),  # cannot take a call
        ("q1", TErrorCode.TERR_INV_CALD_DN),
        (PORT, TErrorCode.TERR_INV_CALD_DN),  # itself
        (PORT2, TErrorCode.TERR_RES_UNAVAIL),  # in a call
        (AGENT2, TErrorCode.TERR_OUT_OF_SERVICE),
    ],
)
def test_single_step_transfer_refused_leaves_the_call_untouched(
    dest: str, code: TErrorCode
) -> None:
    switch = make_switch()
    inbound(switch, PORT2)
    send(switch, TSetInService(reference_id=ref(), dn=AGENT2, in_service=False))
    orig = inbound(switch)
    before = switch.view.call(orig)
    r = ref()
    events = send(
        switch,
        TSingleStepTransfer(
            reference_id=r, conn_id=orig, dn=PORT, dest=dest, user_data=(str_node("x", "1"),)
        ),
    )
    assert error(events, code).reference_id == r
    assert switch.view.call(orig) == before


def test_requests_on_an_unknown_call_or_with_the_link_down() -> None:
    switch = make_switch()
    events = send(
        switch, TSingleStepTransfer(reference_id=ref(), conn_id="00ff", dn=PORT, dest=AGENT)
    )
    error(events, TErrorCode.TERR_INVALID_ATTR)
    orig = inbound(switch)
    events = send(
        switch,
        TCompleteTransfer(reference_id=ref(), conn_id=orig, consult_conn_id="00ff", dn=PORT),
    )
    error(events, TErrorCode.TERR_SET_WRONG_STATE)  # nothing is held
    switch.request(TOpenLink(reference_id=0))
    send(switch, TCloseLink(reference_id=0))
    events = send(switch, TMakeCall(reference_id=ref(), dn=PORT, dest=AGENT))
    error(events, TErrorCode.TERR_NO_SWITCH)


# -- consultation, complete, reconnect -----------------------------------------------------------


def test_consultation_transfer() -> None:
    switch = make_switch()
    orig = inbound(switch)
    cid = consult(switch, orig)
    call = switch.view.call(orig)
    assert call is not None and call.held == (PORT,)
    assert parties(switch, cid) == (PORT, AGENT)
    assert switch.view.user_data(cid) == (str_node("k", "v"),)  # the consultation inherits it
    r = ref()
    events = send(
        switch, TCompleteTransfer(reference_id=r, conn_id=orig, consult_conn_id=cid, dn=PORT)
    )
    assert rows(events) == [
        ("EventEstablished", None, AGENT, orig),
        ("EventReleased", r, PORT, cid),
        ("EventReleased", None, AGENT, cid),
        ("EventReleased", r, PORT, orig),
    ]
    assert switch.view.call(cid) is None
    assert parties(switch, orig) == (AGENT,)
    assert switch.view.user_data(orig) == (str_node("k", "v"),)
    call = switch.view.call(orig)
    assert call is not None and call.held == ()


def test_consultation_conference_then_a_party_leaves() -> None:
    switch = make_switch()
    orig = inbound(switch)
    cid = consult(switch, orig, conf=True)
    r = ref()
    events = send(
        switch, TCompleteConference(reference_id=r, conn_id=orig, consult_conn_id=cid, dn=PORT)
    )
    assert rows(events) == [
        ("EventReleased", r, PORT, cid),
        ("EventReleased", None, AGENT, cid),
        ("EventRetrieved", r, PORT, orig),
        ("EventPartyAdded", r, PORT, orig),
    ]
    assert events[3].other_dn == AGENT  # type: ignore[attr-defined]
    assert parties(switch, orig) == (PORT, AGENT)
    # the agent leaves: the conference shrinks, the port and the caller stay
    a = ref()
    events = send(switch, TReleaseCall(reference_id=a, conn_id=orig, dn=AGENT))
    assert rows(events) == [
        ("EventReleased", a, AGENT, orig),
        ("EventPartyDeleted", None, PORT, orig),
    ]
    assert events[1].other_dn == AGENT  # type: ignore[attr-defined]
    assert parties(switch, orig) == (PORT,)


def test_conference_port_leaves_and_the_agent_keeps_the_caller() -> None:
    switch = make_switch()
    orig = inbound(switch)
    send(switch, TSingleStepConference(reference_id=ref(), conn_id=orig, dn=PORT, dest=AGENT))
    r = ref()
    events = send(switch, TReleaseCall(reference_id=r, conn_id=orig, dn=PORT))
    assert rows(events) == [
        ("EventReleased", r, PORT, orig),
        ("EventPartyDeleted", None, AGENT, orig),
    ]
    assert parties(switch, orig) == (AGENT,)


def test_single_step_conference() -> None:
    switch = make_switch()
    orig = inbound(switch)
    r = ref()
    events = send(
        switch,
        TSingleStepConference(
            reference_id=r, conn_id=orig, dn=PORT, dest=AGENT, user_data=(str_node("c", "1"),)
        ),
    )
    assert rows(events) == [
        ("EventAttachedDataChanged", r, PORT, orig),
        ("EventPartyAdded", r, PORT, orig),
    ]
    assert events[1].other_dn == AGENT  # type: ignore[attr-defined]
    assert parties(switch, orig) == (PORT, AGENT)
    events = send(
        switch, TSingleStepConference(reference_id=ref(), conn_id=orig, dn=PORT, dest=AGENT)
    )
    error(events, TErrorCode.TERR_RES_UNAVAIL)  # already in a call (this one)


def test_reconnect_releases_the_consultation_and_retrieves() -> None:
    switch = make_switch()
    orig = inbound(switch)
    cid = consult(switch, orig)
    r = ref()
    events = send(switch, TReconnectCall(reference_id=r, conn_id=cid, held_conn_id=orig, dn=PORT))
    assert rows(events) == [
        ("EventReleased", r, PORT, cid),
        ("EventReleased", None, AGENT, cid),
        ("EventRetrieved", r, PORT, orig),
    ]
    assert switch.view.call(cid) is None
    call = switch.view.call(orig)
    assert call is not None and call.held == () and call.parties == (PORT,)
    # twice: nothing is held any more
    events = send(
        switch, TReconnectCall(reference_id=ref(), conn_id=cid, held_conn_id=orig, dn=PORT)
    )
    error(events, TErrorCode.TERR_SET_WRONG_STATE)


def test_consulted_party_hangs_up_then_reconnect_only_retrieves() -> None:
    switch = make_switch()
    orig = inbound(switch)
    cid = consult(switch, orig)
    a = ref()
    events = send(switch, TReleaseCall(reference_id=a, conn_id=cid, dn=AGENT))
    assert rows(events) == [("EventReleased", a, AGENT, cid), ("EventReleased", None, PORT, cid)]
    r = ref()
    events = send(switch, TReconnectCall(reference_id=r, conn_id=cid, held_conn_id=orig, dn=PORT))
    assert rows(events) == [("EventRetrieved", r, PORT, orig)]


def test_caller_hangs_up_while_held_the_consultation_stays() -> None:
    switch = make_switch()
    orig = inbound(switch)
    cid = consult(switch, orig)
    switch.request(TCallerHangUp(reference_id=0, conn_id=orig))
    assert rows(switch.drain_events()) == [("EventReleased", None, PORT, orig)]
    assert parties(switch, cid) == (PORT, AGENT)


def test_consultation_to_a_busy_destination() -> None:
    switch = make_switch()
    inbound(switch, PORT2)
    orig = inbound(switch)
    r = ref()
    events = send(switch, TInitiateTransfer(reference_id=r, conn_id=orig, dn=PORT, dest=PORT2))
    cid = events[1].conn_id  # type: ignore[attr-defined]
    assert rows(events) == [
        ("EventHeld", r, PORT, orig),
        ("EventDialing", r, PORT, cid),
        ("EventDestinationBusy", None, PORT, cid),
    ]
    events = send(switch, TInitiateTransfer(reference_id=ref(), conn_id=orig, dn=PORT, dest=AGENT))
    error(events, TErrorCode.TERR_SET_WRONG_STATE)  # already held
    events = send(
        switch,
        TCompleteTransfer(reference_id=ref(), conn_id=orig, consult_conn_id=cid, dn=PORT),
    )
    error(events, TErrorCode.TERR_INV_CONNID)  # nobody to transfer to
    r = ref()
    events = send(switch, TReconnectCall(reference_id=r, conn_id=cid, held_conn_id=orig, dn=PORT))
    assert rows(events) == [("EventReleased", r, PORT, cid), ("EventRetrieved", r, PORT, orig)]


def test_consultation_to_an_unknown_number_is_refused_before_holding() -> None:
    switch = make_switch()
    orig = inbound(switch)
    events = send(switch, TInitiateConference(reference_id=ref(), conn_id=orig, dn=PORT, dest="77"))
    error(events, TErrorCode.TERR_INV_CALD_DN)
    call = switch.view.call(orig)
    assert call is not None and call.held == ()


# -- MakeCall ------------------------------------------------------------------------------------


def test_make_call_to_an_agent() -> None:
    switch = make_switch()
    r = ref()
    events = send(switch, TMakeCall(reference_id=r, dn=PORT, dest=AGENT))
    new = events[0].conn_id  # type: ignore[attr-defined]
    assert rows(events) == [("EventDialing", r, PORT, new), ("EventRinging", None, AGENT, new)]
    assert events[0].other_dn == AGENT  # type: ignore[attr-defined]
    a = ref()
    events = send(switch, TAnswerCall(reference_id=a, conn_id=new, dn=AGENT))
    assert rows(events) == [
        ("EventEstablished", a, AGENT, new),
        ("EventEstablished", None, PORT, new),
    ]


def test_make_call_to_an_outside_number_is_answered_by_the_network() -> None:
    switch = make_switch()
    r = ref()
    events = send(switch, TMakeCall(reference_id=r, dn=PORT, dest="0612345678"))
    new = events[0].conn_id  # type: ignore[attr-defined]
    assert rows(events) == [("EventDialing", r, PORT, new), ("EventEstablished", None, PORT, new)]
    r = ref()
    events = send(switch, TReleaseCall(reference_id=r, conn_id=new, dn=PORT))
    assert rows(events) == [("EventReleased", r, PORT, new)]
    assert switch.view.call(new) is None


def test_make_call_busy_and_refusals() -> None:
    switch = make_switch()
    send(switch, TSetInService(reference_id=ref(), dn=AGENT2, in_service=False))
    r = ref()
    events = send(switch, TMakeCall(reference_id=r, dn=PORT, dest=AGENT2))
    new = events[0].conn_id  # type: ignore[attr-defined]
    assert rows(events) == [
        ("EventDialing", r, PORT, new),
        ("EventDestinationBusy", None, PORT, new),
    ]
    error(
        send(switch, TMakeCall(reference_id=ref(), dn=PORT, dest=RP)), TErrorCode.TERR_INV_CALD_DN
    )
    error(
        send(switch, TMakeCall(reference_id=ref(), dn=RP, dest=AGENT)), TErrorCode.TERR_UNSUP_OPER
    )
    error(
        send(switch, TMakeCall(reference_id=ref(), dn="1", dest=AGENT)),
        TErrorCode.TERR_NOT_CONFIGURED,
    )


# -- the view, fed as a premise switch feeds it --------------------------------------------------


def test_view_follows_held_parties_and_conference_parties() -> None:
    from ivr_server.switch import (
        EventHeld,
        EventPartyAdded,
        EventPartyDeleted,
        EventRetrieved,
        EventRinging,
        SwitchView,
    )

    view = SwitchView([(PORT, DnType.VOICE_TREATMENT_PORT)])
    common: dict[str, Any] = {"switch": "sw", "conn_id": "01", "call_id": 1}
    view.apply(EventRinging(reference_id=None, dn=PORT, **common))
    view.apply(EventHeld(reference_id=1, dn=PORT, **common))
    view.apply(EventHeld(reference_id=1, dn="elsewhere", **common))  # not a party: ignored
    assert (view.call("01") or pytest.fail()).held == (PORT,)
    view.apply(EventRetrieved(reference_id=1, dn=PORT, **common))
    view.apply(EventPartyAdded(reference_id=2, dn=PORT, other_dn="4455", **common))
    call = view.call("01") or pytest.fail()
    assert call.held == () and call.parties == (PORT, "4455")
    view.apply(EventPartyDeleted(reference_id=None, dn=PORT, other_dn="4455", **common))
    assert (view.call("01") or pytest.fail()).parties == (PORT,)
    view.apply(EventPartyDeleted(reference_id=None, dn="4455", other_dn=PORT, **common))
    assert view.call("01") is None  # its last party left
