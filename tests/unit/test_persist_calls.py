"""The call record of HA (issue 25, ``calls/persist.py``) and the switch view's records
(``switch/persist.py``): round trips, and Behind calls carried to another call manager."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from ivr_server.calls.persist import decode_call, encode_call, restore_calls, state_of
from ivr_server.switch import DnType, EventEstablished, EventReleased, EventRinging, SwitchView
from ivr_server.switch.agent import AgentState
from ivr_server.switch.events import EventAgentLogin, EventAgentReady, WorkMode
from ivr_server.switch.persist import (
    counters_of,
    decode_counters,
    decode_dn,
    encode_counters,
    encode_dn,
    kv_in,
    kv_out,
    restore_counters,
    restore_dn,
)
from ivr_server.switch.persist import decode_call as decode_switch_call
from ivr_server.switch.persist import encode_call as encode_switch_call
from ivr_server.switch.persist import restore_call as restore_switch_call
from ivr_server.switch.snapshots import AgentSnapshot
from ivr_server.wire import List, Node, NVPair
from ivr_server.wire import messages as m
from tests.unit.test_calls_behind import OWNER, PBX, Behind, premise_event

# ---------------------------------------------------------------------------------------------
# key/value lists

names = st.text(min_size=1, max_size=5)
nodes = st.builds(
    Node, Name=names, Type=st.sampled_from(["Str", "Int", "Bin"]), Val=st.text(max_size=5)
)
items = st.recursive(
    nodes,
    lambda children: st.builds(List, Name=names, items=st.lists(children, max_size=3).map(tuple)),
    max_leaves=8,
)


@given(st.lists(items, max_size=6).map(tuple))
def test_a_kv_list_round_trips_through_msgpack(data: Any) -> None:
    raw = msgspec.msgpack.decode(msgspec.msgpack.encode(kv_out(data)))
    assert kv_in(raw) == data


# ---------------------------------------------------------------------------------------------
# switch view records


def test_switch_records_round_trip_without_events() -> None:
    view = SwitchView([("4001", DnType.VOICE_TREATMENT_PORT), ("7001", DnType.EXTENSION)])
    view.apply(
        EventRinging(
            switch="S",
            dn="4001",
            conn_id="00000000000000aa",
            call_id=7,
            ani="1",
            dnis="2",
            user_data=(Node(Name="a", Type="Str", Val="b"),),
        )
    )
    view.apply(EventAgentLogin(switch="S", dn="7001", agent_id="9", queue="6000"))
    view.apply(
        EventAgentReady(
            switch="S", dn="7001", agent_id="9", queue="6000", work_mode=WorkMode.MANUAL_IN
        )
    )
    other = SwitchView([("4001", DnType.VOICE_TREATMENT_PORT), ("7001", DnType.EXTENSION)])
    record = view.call_record("00000000000000aa")
    assert record is not None
    restore_switch_call(other, decode_switch_call(encode_switch_call(record)))
    for number in ("4001", "7001"):
        data = encode_dn(view, number)
        assert data is not None
        assert restore_dn(other, decode_dn(data))
    assert list(other.calls()) == list(view.calls())
    assert list(other.dns()) == list(view.dns())
    assert other.agent_dn("9") == "7001"
    assert encode_dn(view, "9999") is None


def test_a_dn_of_another_type_or_unknown_here_keeps_its_own_state() -> None:
    view = SwitchView([("7001", DnType.EXTENSION)])
    view.apply(EventAgentLogin(switch="S", dn="7001", agent_id="9", queue="6000"))
    data = encode_dn(view, "7001")
    assert data is not None
    elsewhere = SwitchView([("7001", DnType.ROUTING_POINT)])
    assert not restore_dn(elsewhere, decode_dn(data))
    assert not restore_dn(SwitchView([]), decode_dn(data))


def test_counters_never_go_back() -> None:
    class Numbered:
        def __init__(self, next_conn: int) -> None:
            self.name = "S"
            self.view = SwitchView([])
            self.next_conn = next_conn
            self.next_call_id = next_conn

    ahead, behind = Numbered(50), Numbered(10)
    counters = decode_counters(encode_counters(counters_of(ahead)))  # type: ignore[arg-type]
    restore_counters(behind, counters)  # type: ignore[arg-type]
    assert (behind.next_conn, behind.next_call_id) == (50, 50)
    restore_counters(ahead, decode_counters(encode_counters(counters_of(Numbered(5)))))  # type: ignore[arg-type]
    assert ahead.next_conn == 50


def test_the_tracking_of_a_view_notes_calls_and_dns() -> None:
    view = SwitchView([("4001", DnType.VOICE_TREATMENT_PORT), ("7001", DnType.EXTENSION)])
    view.apply(EventAgentLogin(switch="S", dn="7001", agent_id="9", queue="6000"))
    assert view.changed_calls is None and view.changed_dns is None  # off: nothing noted
    view.changed_calls, view.changed_dns = set(), set()
    view.apply(
        EventAgentReady(
            switch="S", dn="7001", agent_id="9", queue="6000", work_mode=WorkMode.MANUAL_IN
        )
    )
    view.apply(EventRinging(switch="S", dn="4001", conn_id="c1", call_id=1))
    assert view.changed_calls == {"c1"} and view.changed_dns == {"7001"}
    view.changed_dns.clear()
    view.apply(EventEstablished(switch="S", dn="7001", conn_id="c1", call_id=1))
    assert view.changed_dns == {"7001"}  # the Ready agent was given a call: the idle order


# ---------------------------------------------------------------------------------------------
# Behind calls (the scripted premise switch of test_calls_behind)


def carried(a: Behind, *, later: float = 0.0) -> Behind:
    """B: another call manager on its own premise switch, with A's calls and A's premise view
    records restored, its clock ``later`` s ahead (same wall clock), the calls given back to
    the owner."""
    b = Behind()
    b.now = a.now + later
    for record in a.switch.view.call_records():
        restore_switch_call(b.switch.view, decode_switch_call(encode_switch_call(record)))
    ctx = a.mgr.context
    states = [decode_call(encode_call(ctx, call, 0.0)) for call in a.mgr.calls.values()]
    offset = a.now - b.now  # wall minus loop at B: A's loop clock is the wall clock here
    assert restore_calls(b.mgr.context, states, {PBX: b.switch}, b.now, offset) == len(states)
    b.mgr.adopt("IVR", OWNER)
    return b


def test_a_behind_call_waiting_for_the_pbx_is_reported_on_the_other_node() -> None:
    a = Behind()
    assert a.new_call() == []
    a.tick(10.0)
    b = carried(a, later=1000.0)
    events = (premise_event(EventRinging), premise_event(EventEstablished))
    assert a.push(*events) == b.push(*events)
    assert b.call_info() == a.call_info()
    assert b.call_info().ConnId is not None


def test_a_behind_call_waiting_for_ringing_times_out_at_its_deadline() -> None:
    a = Behind(wait_for_ringing=60.0)
    a.new_call()
    a.tick(50.0)
    b = carried(a, later=1000.0)
    assert a.tick(9.9) == b.tick(9.9) == []
    assert a.tick(0.1) == b.tick(0.1) == [m.EndCall(EndCause="Timeout")]


def test_an_answered_behind_call_is_released_on_the_other_node() -> None:
    a = Behind()
    a.answered_call()
    b = carried(a)
    assert b.call_info() == a.call_info()
    released = premise_event(EventReleased)
    assert a.push(released) == b.push(released) == [m.CallStatus(Event="Released")]


# ---------------------------------------------------------------------------------------------
# fields no scenario reaches easily


def test_a_held_route_response_and_a_refusal_round_trip() -> None:
    a = Behind()
    a.answered_call()
    call = a.mgr.find("C1")[0]
    call.held_route = m.RouteResponse(
        RouteType="Normal",
        Dest="7001",
        Extensions=(NVPair(NVName="x", NVVal="y"),),
        ExtnsEx=(List(Name="l", items=(Node(Name="n", Type="Int", Val="1"),)),),
    )
    call.control_error = ("OneStepXfer", 1183, "refused")
    call.parties = ("7001", "7002")
    call.treatment = "PlayAnnouncement"
    b = carried(a)
    other = b.mgr.find("C1")[0]
    assert other.held_route == call.held_route
    assert other.control_error == call.control_error
    assert other.parties == call.parties and other.treatment == call.treatment
    assert state_of(b.mgr.context, other, 0.0) == state_of(a.mgr.context, call, 0.0)


def test_agent_snapshots_travel_whole() -> None:
    agent = AgentSnapshot(
        agent_id="9", queue="q", state=AgentState.READY, work_mode=WorkMode.AUTO_IN, ready_since=4
    )
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(agent), type=AgentSnapshot) == agent
