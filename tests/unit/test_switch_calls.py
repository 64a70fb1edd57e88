"""Unit tests of the calls of the sans-IO virtual switch: call lifetime, user data, routing points.

PROTOCOL.md §4 (typed key/value lists: order, duplicates, Replace, the 16 KB limit), §6.2 (the
routing-point dialog) and §10.2-10.4 (T-Library mapping, ConnID / CallID, the switch model).
Expected values are written out independently of the code: the 16 KB measure is checked against a
tiny serializer of the documented template, Replace against a declarative reference model.
"""

from __future__ import annotations

import itertools
import re
from typing import Literal, TypedDict, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_server.switch import (
    USER_DATA_LIMIT,
    CallRequest,
    CallSnapshot,
    DnType,
    EventAgentNotReady,
    EventAgentReady,
    EventAttachedDataChanged,
    EventError,
    EventEstablished,
    EventLinkConnected,
    EventReleased,
    EventRinging,
    EventRouteRequest,
    EventRouteUsed,
    EventTreatmentApplied,
    EventTreatmentEnd,
    EventTreatmentNotApplied,
    RequestApplyTreatment,
    RequestRouteCall,
    RouteType,
    SwitchEvent,
    SwitchRequest,
    SwitchView,
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TApplyTreatment,
    TAttachUserData,
    TCallerHangUp,
    TCloseLink,
    TDeleteAllUserData,
    TDeleteUserData,
    TErrorCode,
    TInboundCall,
    TOpenLink,
    TReleaseCall,
    TRouteAbort,
    TRouteCall,
    TRouteFailed,
    TRouteRequest,
    TSetInService,
    TTreatmentStatus,
    TUpdateUserData,
    WorkMode,
    kv_size,
    kv_update,
)
from ivr_server.switch.virtual import VirtualSwitch
from ivr_server.wire.kv import Item, KvList, List, Node, int_node, str_node
from tests.strategies import kv_lists

SWITCH = "SW_IVR"
TSERVER = "TServer_IVR"
PORT = "5001"
PORT_VTP = "5002"
PORT_OTHER = "5003"
PORT_4 = "5004"
RP = "7000"
RP_2 = "7001"
VIRTUAL_RP = "7100"
QUEUE = "8000"
UNKNOWN_DN = "9999"
UNKNOWN_CONN = "ffffffffffffffff"
PORTS = [PORT, PORT_VTP, PORT_OTHER, PORT_4]
DNS: list[tuple[str, DnType]] = [
    (PORT, DnType.EXTENSION),
    (PORT_VTP, DnType.VOICE_TREATMENT_PORT),
    (PORT_OTHER, DnType.EXTENSION),
    (PORT_4, DnType.EXTENSION),
    (RP, DnType.ROUTING_POINT),
    (RP_2, DnType.ROUTING_POINT),
    (VIRTUAL_RP, DnType.VIRTUAL_ROUTING_POINT),
    (QUEUE, DnType.ACD_QUEUE),
]
CONN_ID_RE = re.compile(r"^[0-9a-f]{16}$")

E = TypeVar("E", bound=SwitchEvent)


class CallAttrs(TypedDict):
    """The attributes every call event carries (events.CallEvent), for building expected events."""

    switch: str
    reference_id: int | None
    dn: str
    conn_id: str
    call_id: int
    ani: str | None
    dnis: str | None
    user_data: KvList


_refs = itertools.count(5000)


def ref() -> int:
    return next(_refs)


def conn(n: int) -> str:
    """The ConnID the n-th call of a default switch gets (PROTOCOL.md §10.4)."""
    return f"{n:016x}"


def make_switch(
    *, link: bool = True, first_conn_id: int = 1, first_call_id: int = 1
) -> VirtualSwitch:
    switch = VirtualSwitch(
        SWITCH, TSERVER, DNS, first_conn_id=first_conn_id, first_call_id=first_call_id
    )
    if link:
        switch.request(TOpenLink(reference_id=0))
    switch.drain_events()
    return switch


def send(switch: VirtualSwitch, request: SwitchRequest) -> list[SwitchEvent]:
    switch.request(request)
    return switch.drain_events()


def names(events: list[SwitchEvent]) -> list[str]:
    return [event.name for event in events]


def one(events: list[SwitchEvent], cls: type[E]) -> E:
    assert len(events) == 1, events
    event = events[0]
    assert isinstance(event, cls), event
    return event


def only_error(events: list[SwitchEvent]) -> EventError:
    return one(events, EventError)


def snapshot(switch: VirtualSwitch, conn_id: str) -> CallSnapshot:
    call = switch.view.call(conn_id)
    assert call is not None, conn_id
    return call


def new_call(
    switch: VirtualSwitch,
    dn: str = PORT,
    *,
    user_data: KvList = (),
    ani: str | None = "5551234",
    dnis: str | None = "8005550000",
) -> str:
    events = send(
        switch, TInboundCall(reference_id=ref(), dn=dn, ani=ani, dnis=dnis, user_data=user_data)
    )
    assert names(events) == ["EventRinging", "EventEstablished"], events
    established = events[1]
    assert isinstance(established, EventEstablished)
    return established.conn_id


def route_request(switch: VirtualSwitch, conn_id: str, rp: str = RP, dn: str = PORT) -> None:
    events = send(switch, TRouteRequest(reference_id=ref(), conn_id=conn_id, dn=dn, route_dn=rp))
    one(events, EventRouteRequest)


def route_call(switch: VirtualSwitch, conn_id: str, rp: str = RP, dest: str = "6001") -> None:
    events = send(switch, TRouteCall(reference_id=ref(), conn_id=conn_id, dn=rp, dest=dest))
    assert names(events) == ["RequestRouteCall", "EventRouteUsed"], events


def hang_up(switch: VirtualSwitch, conn_id: str) -> None:
    switch.request(TCallerHangUp(reference_id=0, conn_id=conn_id))
    assert "EventReleased" in names(switch.drain_events())


def login(
    switch: VirtualSwitch, dn: str, *, ready: bool = True, agent_id: str | None = None
) -> None:
    work_mode = WorkMode.AUTO_IN if ready else WorkMode.UNKNOWN
    events = send(
        switch,
        TAgentLogin(
            reference_id=ref(),
            dn=dn,
            queue=QUEUE,
            agent_id=agent_id or f"agent-{dn}",
            work_mode=work_mode,
        ),
    )
    assert names(events)[0] == "EventAgentLogin", events


def set_ready(switch: VirtualSwitch, dn: str) -> None:
    one(send(switch, TAgentSetReady(reference_id=ref(), dn=dn, queue="")), EventAgentReady)


def set_not_ready(switch: VirtualSwitch, dn: str) -> None:
    one(send(switch, TAgentSetNotReady(reference_id=ref(), dn=dn, queue="")), EventAgentNotReady)


def ready_dns(switch: VirtualSwitch) -> list[str]:
    return [agent.dn for agent in switch.view.ready_agents()]


def s(name: str, value: str) -> Node:
    return str_node(name, value)


def i(name: str, value: int) -> Node:
    return int_node(name, value)


# -- an independent measure of the 16 KB limit ---------------------------------------------------


def xml_text(items: KvList) -> str:
    """The unescaped XML text of ``items``: the template the USER_DATA_LIMIT docstring names."""
    parts = []
    for item in items:
        if isinstance(item, Node):
            parts.append(f"<Node Name='{item.Name}' Type='{item.Type}' Val='{item.Val}'/>")
        else:
            parts.append(f"<List Name='{item.Name}'>{xml_text(item.items)}</List>")
    return "".join(parts)


def xml_size(items: KvList) -> int:
    return len(xml_text(items))


def pad(size: int, name: str = "pad") -> Node:
    """A ``Str`` node whose measure is exactly ``size``."""
    value_len = size - xml_size((s(name, ""),))
    assert value_len >= 0
    return s(name, "x" * value_len)


# -- Replace: a declarative reference model ------------------------------------------------------


def reference_update(current: KvList, new: KvList) -> KvList:
    """PROTOCOL.md §4.3 written as a description rather than a procedure.

    Each key of ``new`` ends up exactly once, holding its last value in ``new`` (the pairs of a
    Replace are applied one after the other). A key that existed keeps the position of its first
    occurrence and loses its other occurrences; a new key is appended in order of first appearance
    in ``new``. Every other pair is untouched, duplicates and order included.
    """
    last: dict[str, Item] = {}
    for item in new:
        last[item.Name] = item  # re-assigning keeps the first-appearance position
    existing = {item.Name for item in current}
    kept: list[Item] = []
    written: set[str] = set()
    for item in current:
        if item.Name not in last:
            kept.append(item)
        elif item.Name not in written:
            written.add(item.Name)
            kept.append(last[item.Name])
    appended = [item for name, item in last.items() if name not in existing]
    return (*kept, *appended)


def model_user_data(current: KvList, request: CallRequest) -> KvList:
    if isinstance(request, TAttachUserData):
        return current + request.user_data
    if isinstance(request, TUpdateUserData):
        return reference_update(current, request.user_data)
    if isinstance(request, TDeleteUserData):
        return tuple(item for item in current if item.Name != request.key)
    assert isinstance(request, TDeleteAllUserData)
    return ()


# -- strategies ----------------------------------------------------------------------------------

key_st = st.sampled_from(["a", "b", "c", "A", "UEI", "a b"])
small_value_st = st.text(alphabet="0123456789xyz&<'é", max_size=8)
big_value_st = st.integers(min_value=0, max_value=9000).map(lambda n: "v" * n)
value_st = st.one_of(small_value_st, small_value_st, big_value_st)
node_st = st.one_of(
    st.builds(Node, Name=key_st, Type=st.sampled_from(["Str", "Bin"]), Val=value_st),
    st.builds(int_node, key_st, st.integers(min_value=-(2**31), max_value=2**31 - 1)),
)
item_st = st.recursive(
    node_st,
    lambda inner: st.builds(List, Name=key_st, items=st.lists(inner, min_size=1).map(tuple)),
    max_leaves=5,
)
kv_st = st.lists(item_st, max_size=5).map(tuple)
small_kv_st = st.lists(
    st.builds(Node, Name=key_st, Type=st.just("Str"), Val=small_value_st), max_size=4
).map(tuple)
reference_st = st.integers(min_value=0, max_value=2**31 - 1)


# -- call start ----------------------------------------------------------------------------------


def test_inbound_call_rings_then_establishes() -> None:
    switch = make_switch()
    data = (s("AccountNo", "12345"), i("Tries", 3))
    extensions = (s("ext", "1"),)
    events = send(
        switch,
        TInboundCall(
            reference_id=77,
            dn=PORT,
            ani="5551234",
            dnis="8005550000",
            user_data=data,
            extensions=extensions,
        ),
    )
    common = CallAttrs(
        switch=SWITCH,
        reference_id=77,
        dn=PORT,
        conn_id="0000000000000001",
        call_id=1,
        ani="5551234",
        dnis="8005550000",
        user_data=data,
    )
    assert events == [
        EventRinging(**common, extensions=extensions),
        EventEstablished(**common, extensions=extensions),
    ]
    assert switch.view.call("0000000000000001") == CallSnapshot(
        conn_id="0000000000000001",
        call_id=1,
        ani="5551234",
        dnis="8005550000",
        parties=(PORT,),
        user_data=data,
        routing_point=None,
        treatment=None,
    )
    assert switch.view.user_data("0000000000000001") == data
    assert [c.conn_id for c in switch.view.calls()] == ["0000000000000001"]


def test_inbound_call_without_ani_dnis_or_data() -> None:
    switch = make_switch()
    events = send(switch, TInboundCall(reference_id=1, dn=PORT_VTP))
    ringing, established = events
    assert isinstance(ringing, EventRinging) and isinstance(established, EventEstablished)
    for event in (ringing, established):
        assert (event.ani, event.dnis, event.user_data, event.extensions) == (None, None, (), ())
        assert event.dn == PORT_VTP
    assert snapshot(switch, established.conn_id).parties == (PORT_VTP,)


def test_conn_ids_follow_the_counter_in_lower_case_hex() -> None:
    """PROTOCOL.md §10.3: `0079020eaf04c019`, `…c02b`… and CallIDs 2053, … increasing."""
    switch = make_switch(first_conn_id=0x0079020EAF04C019, first_call_id=2053)
    ids = [new_call(switch, port) for port in PORTS]
    assert ids == [
        "0079020eaf04c019",
        "0079020eaf04c01a",
        "0079020eaf04c01b",
        "0079020eaf04c01c",
    ]
    assert [snapshot(switch, conn_id).call_id for conn_id in ids] == [2053, 2054, 2055, 2056]
    assert all(CONN_ID_RE.match(conn_id) for conn_id in ids)


def test_conn_ids_are_never_reused_and_failures_consume_none() -> None:
    switch = make_switch()
    first = new_call(switch)
    send(switch, TReleaseCall(reference_id=ref(), conn_id=first, dn=PORT))
    only_error(send(switch, TInboundCall(reference_id=ref(), dn=RP)))
    only_error(send(switch, TInboundCall(reference_id=ref(), dn=UNKNOWN_DN)))
    second = new_call(switch)
    switch.request(TCallerHangUp(reference_id=0, conn_id=second))
    switch.drain_events()
    third = new_call(switch, PORT_OTHER)
    assert [first, second, third] == [conn(1), conn(2), conn(3)]
    assert snapshot(switch, third).call_id == 3


def test_several_calls_are_listed_oldest_first() -> None:
    switch = make_switch()
    ids = [new_call(switch, dn) for dn in (PORT_OTHER, PORT, PORT_VTP)]
    assert [c.conn_id for c in switch.view.calls()] == ids
    assert [c.parties for c in switch.view.calls()] == [(PORT_OTHER,), (PORT,), (PORT_VTP,)]
    switch.request(TCallerHangUp(reference_id=0, conn_id=ids[1]))
    switch.drain_events()
    assert [c.conn_id for c in switch.view.calls()] == [ids[0], ids[2]]


@pytest.mark.parametrize(
    ("dn", "code"),
    [
        (UNKNOWN_DN, TErrorCode.TERR_NOT_CONFIGURED),
        (RP, TErrorCode.TERR_UNSUP_OPER),
        (VIRTUAL_RP, TErrorCode.TERR_UNSUP_OPER),
        (QUEUE, TErrorCode.TERR_UNSUP_OPER),
    ],
)
def test_inbound_call_on_a_dn_that_cannot_take_it(dn: str, code: TErrorCode) -> None:
    switch = make_switch()
    error = only_error(send(switch, TInboundCall(reference_id=31, dn=dn)))
    assert (error.error_code, error.dn, error.request, error.reference_id) == (
        code,
        dn,
        "TInboundCall",
        31,
    )
    assert list(switch.view.calls()) == []


def test_inbound_call_on_an_out_of_service_dn() -> None:
    switch = make_switch()
    switch.request(TSetInService(reference_id=0, dn=PORT, in_service=False))
    switch.drain_events()
    error = only_error(send(switch, TInboundCall(reference_id=1, dn=PORT)))
    assert error.error_code == TErrorCode.TERR_OUT_OF_SERVICE
    assert list(switch.view.calls()) == []
    switch.request(TSetInService(reference_id=0, dn=PORT, in_service=True))
    switch.drain_events()
    assert new_call(switch) == conn(1)


def test_inbound_call_while_the_link_is_down() -> None:
    switch = make_switch(link=False)
    error = only_error(send(switch, TInboundCall(reference_id=1, dn=PORT)))
    assert error.error_code == TErrorCode.TERR_NO_SWITCH
    assert list(switch.view.calls()) == []


# -- release -------------------------------------------------------------------------------------


def test_release_call() -> None:
    switch = make_switch()
    data = (s("k", "v"),)
    conn_id = new_call(switch, user_data=data)
    events = send(switch, TReleaseCall(reference_id=12, conn_id=conn_id, dn=PORT))
    assert events == [
        EventReleased(
            switch=SWITCH,
            reference_id=12,
            dn=PORT,
            conn_id=conn_id,
            call_id=1,
            ani="5551234",
            dnis="8005550000",
            user_data=data,
        )
    ]
    assert switch.view.call(conn_id) is None
    assert switch.view.user_data(conn_id) is None
    assert list(switch.view.calls()) == []
    error = only_error(send(switch, TReleaseCall(reference_id=13, conn_id=conn_id, dn=PORT)))
    assert error.error_code == TErrorCode.TERR_INVALID_ATTR


def test_hang_up_is_unsolicited() -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    switch.request(TCallerHangUp(reference_id=0, conn_id=conn_id))
    (released,) = switch.drain_events()
    assert isinstance(released, EventReleased)
    assert (released.reference_id, released.dn, released.conn_id) == (None, PORT, conn_id)
    assert switch.view.call(conn_id) is None
    for gone in (conn_id, UNKNOWN_CONN):  # no such call: refused, nothing else happens
        error = only_error(send(switch, TCallerHangUp(reference_id=14, conn_id=gone)))
        assert (error.error_code, error.reference_id) == (TErrorCode.TERR_INVALID_ATTR, 14)


@pytest.mark.parametrize("by_request", [True, False])
@pytest.mark.parametrize("with_treatment", [False, True])
def test_release_while_waiting_at_a_routing_point_ends_the_dialog_first(
    by_request: bool, with_treatment: bool
) -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id)
    if with_treatment:
        send(
            switch,
            TApplyTreatment(reference_id=ref(), conn_id=conn_id, dn=RP, treatment_type="Music"),
        )
    if by_request:
        events = send(switch, TReleaseCall(reference_id=3, conn_id=conn_id, dn=PORT))
        expected_ref: int | None = 3
    else:
        switch.request(TCallerHangUp(reference_id=0, conn_id=conn_id))
        events = switch.drain_events()
        expected_ref = None
    used, released = events
    assert isinstance(used, EventRouteUsed) and isinstance(released, EventReleased)
    assert (used.dn, used.dest, used.other_dn, used.conn_id) == (RP, None, None, conn_id)
    assert (released.dn, released.conn_id) == (PORT, conn_id)
    assert used.reference_id == released.reference_id == expected_ref
    assert switch.view.waiting_calls(RP) == []
    assert switch.view.call(conn_id) is None


# -- request errors common to every call request -------------------------------------------------


def call_requests(conn_id: str, port: str, rp: str) -> list[CallRequest]:
    """One well-formed request of every call request type (``port``: the party, ``rp``: where the
    call waits)."""
    r = ref()
    return [
        TReleaseCall(reference_id=r, conn_id=conn_id, dn=port),
        TAttachUserData(reference_id=r, conn_id=conn_id, dn=port, user_data=(s("k", "v"),)),
        TUpdateUserData(reference_id=r, conn_id=conn_id, dn=port, user_data=(s("k", "v"),)),
        TDeleteUserData(reference_id=r, conn_id=conn_id, dn=port, key="k"),
        TDeleteAllUserData(reference_id=r, conn_id=conn_id, dn=port),
        TRouteRequest(reference_id=r, conn_id=conn_id, dn=port, route_dn=RP_2),
        TRouteCall(reference_id=r, conn_id=conn_id, dn=rp, dest="6001"),
        TApplyTreatment(reference_id=r, conn_id=conn_id, dn=rp, treatment_type="Music"),
        TTreatmentStatus(
            reference_id=r, conn_id=conn_id, dn=rp, status="Started", treatment_type="Music"
        ),
        TRouteAbort(reference_id=r, conn_id=conn_id, dn=rp),
    ]


def waiting_call(switch: VirtualSwitch) -> str:
    """A call at PORT, waiting at RP, with some user data."""
    conn_id = new_call(switch, user_data=(s("k", "v"), s("k", "w")))
    route_request(switch, conn_id)
    return conn_id


CALL_REQUEST_TYPES = [type(r) for r in call_requests(conn(1), PORT, RP)]


@pytest.mark.parametrize(
    "index", range(len(CALL_REQUEST_TYPES)), ids=lambda n: CALL_REQUEST_TYPES[n].name
)
def test_call_requests_while_the_link_is_down(index: int) -> None:
    switch = make_switch()
    conn_id = waiting_call(switch)
    switch.request(TCloseLink(reference_id=0))
    switch.drain_events()
    before = snapshot(switch, conn_id)
    request = call_requests(conn_id, PORT, RP)[index]
    error = only_error(send(switch, request))
    assert error.error_code == TErrorCode.TERR_NO_SWITCH
    assert (error.request, error.reference_id) == (request.name, request.reference_id)
    assert switch.view.call(conn_id) == before


def test_route_failed_while_the_link_is_down() -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id)
    route_call(switch, conn_id)
    switch.request(TCloseLink(reference_id=0))
    switch.drain_events()
    before = snapshot(switch, conn_id)
    for conn_id_ in (conn_id, UNKNOWN_CONN):
        request = TRouteFailed(reference_id=4, conn_id=conn_id_, dn=RP, error_code=83)
        error = only_error(send(switch, request))
        assert (error.error_code, error.request) == (TErrorCode.TERR_NO_SWITCH, "TRouteFailed")
    assert switch.view.call(conn_id) == before


@pytest.mark.parametrize(
    "index", range(len(CALL_REQUEST_TYPES)), ids=lambda n: CALL_REQUEST_TYPES[n].name
)
def test_call_requests_on_an_unknown_dn(index: int) -> None:
    switch = make_switch()
    conn_id = waiting_call(switch)
    before = snapshot(switch, conn_id)
    request = call_requests(conn_id, UNKNOWN_DN, UNKNOWN_DN)[index]
    error = only_error(send(switch, request))
    assert error.error_code == TErrorCode.TERR_NOT_CONFIGURED
    assert (error.dn, error.request) == (UNKNOWN_DN, request.name)
    assert switch.view.call(conn_id) == before


@pytest.mark.parametrize(
    "index", range(len(CALL_REQUEST_TYPES)), ids=lambda n: CALL_REQUEST_TYPES[n].name
)
def test_call_requests_on_an_unknown_call(index: int) -> None:
    switch = make_switch()
    conn_id = waiting_call(switch)
    before = snapshot(switch, conn_id)
    request = call_requests(UNKNOWN_CONN, PORT, RP)[index]
    error = only_error(send(switch, request))
    assert error.error_code == TErrorCode.TERR_INVALID_ATTR
    assert (error.request, error.reference_id) == (request.name, request.reference_id)
    assert switch.view.call(conn_id) == before


@pytest.mark.parametrize(
    "index", range(len(CALL_REQUEST_TYPES)), ids=lambda n: CALL_REQUEST_TYPES[n].name
)
@pytest.mark.parametrize("wrong_dn", [PORT_OTHER, QUEUE, RP_2])
def test_call_requests_from_a_dn_that_is_not_in_the_call(index: int, wrong_dn: str) -> None:
    """Port requests from a DN that is not a party, router requests from a DN where the call does
    not wait: TERR_INVALID_ATTR, nothing changes."""
    switch = make_switch()
    conn_id = waiting_call(switch)
    other = new_call(switch, PORT_OTHER)
    before = list(switch.view.calls())
    request = call_requests(conn_id, wrong_dn, wrong_dn)[index]
    error = only_error(send(switch, request))
    assert error.error_code == TErrorCode.TERR_INVALID_ATTR
    assert (error.dn, error.request) == (wrong_dn, request.name)
    assert list(switch.view.calls()) == before
    assert other in {c.conn_id for c in switch.view.calls()}


# -- user data -----------------------------------------------------------------------------------


def data_changed(events: list[SwitchEvent]) -> EventAttachedDataChanged:
    return one(events, EventAttachedDataChanged)


def test_attach_appends_keeps_duplicates_and_nesting() -> None:
    switch = make_switch()
    conn_id = new_call(switch, user_data=(s("AccountNo", "12345"),))
    nested = List(
        Name="Order",
        items=(s("Item", "A&B"), List(Name="Price", items=(i("Amount", 100),))),
    )
    event = data_changed(
        send(
            switch,
            TAttachUserData(
                reference_id=21,
                conn_id=conn_id,
                dn=PORT,
                user_data=(i("Tries", 3), nested, s("AccountNo", "999")),
            ),
        )
    )
    expected = (s("AccountNo", "12345"), i("Tries", 3), nested, s("AccountNo", "999"))
    assert event == EventAttachedDataChanged(
        switch=SWITCH,
        reference_id=21,
        dn=PORT,
        conn_id=conn_id,
        call_id=1,
        ani="5551234",
        dnis="8005550000",
        user_data=expected,
    )
    assert switch.view.user_data(conn_id) == expected
    assert snapshot(switch, conn_id).user_data == expected
    # the very same pair again: still appended
    again = data_changed(
        send(
            switch,
            TAttachUserData(reference_id=22, conn_id=conn_id, dn=PORT, user_data=(i("Tries", 3),)),
        )
    )
    assert again.user_data == (*expected, i("Tries", 3))


def test_attach_nothing_still_answers() -> None:
    switch = make_switch()
    conn_id = new_call(switch, user_data=(s("a", "1"),))
    event = data_changed(
        send(switch, TAttachUserData(reference_id=1, conn_id=conn_id, dn=PORT, user_data=()))
    )
    assert event.user_data == (s("a", "1"),)


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        pytest.param(
            (s("a", "1"), s("b", "2"), s("a", "3"), s("c", "4")),
            (s("a", "9"),),
            (s("a", "9"), s("b", "2"), s("c", "4")),
            id="first-occurrence-overwritten-later-removed",
        ),
        pytest.param((s("a", "1"),), (s("b", "2"),), (s("a", "1"), s("b", "2")), id="new-key"),
        pytest.param(
            (s("a", "1"),), (s("A", "2"),), (s("a", "1"), s("A", "2")), id="case-sensitive"
        ),
        pytest.param(
            (s("a", "1"), s("b", "2")),
            (i("b", 7), s("z", "new"), s("a", "8")),
            (s("a", "8"), i("b", 7), s("z", "new")),
            id="in-place-and-appended",
        ),
        pytest.param(
            (s("a", "1"), s("b", "2")),
            (List(Name="a", items=(s("x", "1"),)),),
            (List(Name="a", items=(s("x", "1"),)), s("b", "2")),
            id="node-replaced-by-list",
        ),
        pytest.param(
            (List(Name="L", items=(s("a", "1"),)),),
            (s("a", "2"),),
            (List(Name="L", items=(s("a", "1"),)), s("a", "2")),
            id="only-top-level-keys",
        ),
        pytest.param((), (s("a", "1"), s("a", "2")), (s("a", "2"),), id="duplicates-in-new"),
        pytest.param(
            (s("b", "1"), s("a", "1"), s("b", "2"), s("a", "2")),
            (s("a", "x"), s("b", "y")),
            (s("b", "y"), s("a", "x")),
            id="stored-order-wins",
        ),
        pytest.param((s("a", "1"), s("a", "1")), (), (s("a", "1"), s("a", "1")), id="nothing"),
    ],
)
def test_update_replaces_in_place(current: KvList, new: KvList, expected: KvList) -> None:
    assert reference_update(current, new) == expected  # the model agrees with the examples
    assert kv_update(current, new) == expected
    switch = make_switch()
    conn_id = new_call(switch, user_data=current)
    event = data_changed(
        send(switch, TUpdateUserData(reference_id=8, conn_id=conn_id, dn=PORT, user_data=new))
    )
    assert (event.user_data, event.reference_id, event.dn) == (expected, 8, PORT)
    assert switch.view.user_data(conn_id) == expected


@settings(max_examples=300, deadline=None)
@given(current=kv_st, new=kv_st)
def test_kv_update_matches_the_reference_model(current: KvList, new: KvList) -> None:
    result = kv_update(current, new)
    assert result == reference_update(current, new)
    assert kv_update(result, new) == result  # replacing twice is replacing once
    new_names = {item.Name for item in new}
    for name in new_names:
        assert [item.Name for item in result].count(name) == 1
    untouched = [item for item in current if item.Name not in new_names]
    assert [item for item in result if item.Name not in new_names] == untouched


def test_delete_key_removes_every_top_level_occurrence() -> None:
    switch = make_switch()
    nested = List(Name="L", items=(s("a", "inner"),))
    conn_id = new_call(
        switch,
        user_data=(
            s("a", "1"),
            s("b", "2"),
            nested,
            s("a", "3"),
            List(Name="a", items=(s("x", "y"),)),
        ),
    )
    event = data_changed(
        send(switch, TDeleteUserData(reference_id=5, conn_id=conn_id, dn=PORT, key="a"))
    )
    assert event.user_data == (s("b", "2"), nested)
    assert event.reference_id == 5
    # exact (case-sensitive) comparison; a key that is not there changes nothing
    event = data_changed(
        send(switch, TDeleteUserData(reference_id=6, conn_id=conn_id, dn=PORT, key="B"))
    )
    assert event.user_data == (s("b", "2"), nested)
    assert switch.view.user_data(conn_id) == (s("b", "2"), nested)


def test_delete_all() -> None:
    switch = make_switch()
    conn_id = new_call(switch, user_data=(s("a", "1"), List(Name="L", items=(s("b", "2"),))))
    event = data_changed(send(switch, TDeleteAllUserData(reference_id=9, conn_id=conn_id, dn=PORT)))
    assert (event.user_data, event.reference_id, event.conn_id) == ((), 9, conn_id)
    assert switch.view.user_data(conn_id) == ()
    # and the call goes on: data can be attached again
    event = data_changed(
        send(
            switch,
            TAttachUserData(reference_id=10, conn_id=conn_id, dn=PORT, user_data=(s("c", "3"),)),
        )
    )
    assert event.user_data == (s("c", "3"),)


def test_user_data_rides_on_later_call_events() -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    send(
        switch, TAttachUserData(reference_id=1, conn_id=conn_id, dn=PORT, user_data=(s("a", "1"),))
    )
    (request,) = send(switch, TRouteRequest(reference_id=2, conn_id=conn_id, dn=PORT, route_dn=RP))
    assert isinstance(request, EventRouteRequest)
    assert request.user_data == (s("a", "1"),)
    send(
        switch, TUpdateUserData(reference_id=3, conn_id=conn_id, dn=PORT, user_data=(s("a", "2"),))
    )
    used, released = send(switch, TReleaseCall(reference_id=4, conn_id=conn_id, dn=PORT))
    assert isinstance(used, EventRouteUsed) and isinstance(released, EventReleased)
    assert used.user_data == released.user_data == (s("a", "2"),)


def test_call_snapshots_are_immutable_values() -> None:
    switch = make_switch()
    conn_id = new_call(switch, user_data=(s("a", "1"),))
    before = snapshot(switch, conn_id)
    with pytest.raises(AttributeError, match="immutable"):  # a frozen msgspec.Struct
        before.routing_point = RP  # type: ignore[misc]
    send(
        switch, TAttachUserData(reference_id=1, conn_id=conn_id, dn=PORT, user_data=(s("b", "2"),))
    )
    route_request(switch, conn_id)
    assert before.user_data == (s("a", "1"),)
    assert before.routing_point is None
    assert snapshot(switch, conn_id).user_data == (s("a", "1"), s("b", "2"))
    assert switch.view.call(UNKNOWN_CONN) is None
    assert switch.view.user_data(UNKNOWN_CONN) is None


# -- the 16 KB limit -----------------------------------------------------------------------------


def test_limit_is_16_kb_measured_on_the_documented_template() -> None:
    assert USER_DATA_LIMIT == 16_384
    assert kv_size(()) == 0
    assert kv_size((s("", ""),)) == len("<Node Name='' Type='Str' Val=''/>") == 33
    assert kv_size((List(Name="", items=()),)) == len("<List Name=''></List>") == 21
    sample = (
        s("AccountNo", "12345"),
        i("Tries", 3),
        List(Name="Order", items=(s("Item", "A&B"), List(Name="Price", items=(i("Amount", 100),)))),
        Node(Name="blob", Type="Bin", Val="00ff"),
    )
    assert kv_size(sample) == xml_size(sample)
    assert kv_size((pad(USER_DATA_LIMIT),)) == USER_DATA_LIMIT


@settings(max_examples=200, deadline=None)
@given(items=st.one_of(kv_lists, kv_st))
def test_kv_size_is_the_length_of_the_unescaped_text(items: KvList) -> None:
    assert kv_size(items) == xml_size(items)


Growth = Literal["inbound", "attach", "update", "nested"]


@pytest.mark.parametrize("how", ["inbound", "attach", "update", "nested"])
@pytest.mark.parametrize("over", [0, 1])
def test_limit_boundary_exactly(how: Growth, over: int) -> None:
    """At the limit: accepted. One byte over: EventError TERR_INVALID_ATTR and nothing changed."""
    switch = make_switch()
    target = USER_DATA_LIMIT + over
    first = (s("AccountNo", "12345"), i("Tries", 3))
    rest = target - xml_size(first)
    if how == "inbound":
        events = send(switch, TInboundCall(reference_id=40, dn=PORT, user_data=(*first, pad(rest))))
        if over:
            assert only_error(events).error_code == TErrorCode.TERR_INVALID_ATTR
            assert list(switch.view.calls()) == []
        else:
            assert names(events) == ["EventRinging", "EventEstablished"]
            assert kv_size(snapshot(switch, conn(1)).user_data) == USER_DATA_LIMIT
        return
    conn_id = new_call(switch, user_data=first)
    request: CallRequest
    if how == "attach":
        request = TAttachUserData(reference_id=40, conn_id=conn_id, dn=PORT, user_data=(pad(rest),))
    elif how == "nested":
        wrapper = xml_size((List(Name="L", items=()),))
        request = TAttachUserData(
            reference_id=40,
            conn_id=conn_id,
            dn=PORT,
            user_data=(List(Name="L", items=(pad(rest - wrapper),)),),
        )
    else:
        # grow the existing "Tries" value in place: Int → Str of the right length
        tries_size = xml_size((i("Tries", 3),))
        value = "y" * (rest + tries_size - xml_size((s("Tries", ""),)))
        request = TUpdateUserData(
            reference_id=40, conn_id=conn_id, dn=PORT, user_data=(s("Tries", value),)
        )
    events = send(switch, request)
    if over:
        error = only_error(events)
        assert (error.error_code, error.reference_id, error.dn, error.request) == (
            TErrorCode.TERR_INVALID_ATTR,
            40,
            PORT,
            request.name,
        )
        assert switch.view.user_data(conn_id) == first
    else:
        event = data_changed(events)
        assert kv_size(event.user_data) == xml_size(event.user_data) == USER_DATA_LIMIT
        assert switch.view.user_data(conn_id) == event.user_data


def test_at_the_limit_shrinking_and_deleting_still_work() -> None:
    switch = make_switch()
    full = (s("a", "1"), pad(USER_DATA_LIMIT - xml_size((s("a", "1"),))))
    conn_id = new_call(switch, user_data=full)
    assert kv_size(full) == USER_DATA_LIMIT
    # one more pair of any size is refused
    only_error(
        send(
            switch,
            TAttachUserData(reference_id=1, conn_id=conn_id, dn=PORT, user_data=(s("", ""),)),
        )
    )
    # replacing a value by one of the same length is fine; one longer is not
    same = data_changed(
        send(
            switch,
            TUpdateUserData(reference_id=2, conn_id=conn_id, dn=PORT, user_data=(s("a", "2"),)),
        )
    )
    assert kv_size(same.user_data) == USER_DATA_LIMIT
    only_error(
        send(
            switch,
            TUpdateUserData(reference_id=3, conn_id=conn_id, dn=PORT, user_data=(s("a", "22"),)),
        )
    )
    # replacing the big value by a short one makes room again
    shrunk = data_changed(
        send(
            switch,
            TUpdateUserData(reference_id=4, conn_id=conn_id, dn=PORT, user_data=(s("pad", ""),)),
        )
    )
    assert shrunk.user_data == (s("a", "2"), s("pad", ""))
    data_changed(
        send(
            switch,
            TAttachUserData(reference_id=5, conn_id=conn_id, dn=PORT, user_data=(pad(100, "b"),)),
        )
    )
    data_changed(send(switch, TDeleteUserData(reference_id=6, conn_id=conn_id, dn=PORT, key="b")))
    assert switch.view.user_data(conn_id) == (s("a", "2"), s("pad", ""))


def test_the_limit_applies_to_the_result_not_to_the_request() -> None:
    """Replace removing duplicates can end under the limit even when its new value is longer."""
    switch = make_switch()
    half = USER_DATA_LIMIT // 2
    conn_id = new_call(switch, user_data=(pad(half, "k"), pad(USER_DATA_LIMIT - half, "k")))
    assert kv_size(snapshot(switch, conn_id).user_data) == USER_DATA_LIMIT
    longer = pad(half + 100, "k")
    event = data_changed(
        send(switch, TUpdateUserData(reference_id=1, conn_id=conn_id, dn=PORT, user_data=(longer,)))
    )
    assert event.user_data == (longer,)
    # and an Add of a pair that alone fits, but not on top of the rest, is refused
    error = only_error(
        send(
            switch,
            TAttachUserData(
                reference_id=2,
                conn_id=conn_id,
                dn=PORT,
                user_data=(pad(USER_DATA_LIMIT - kv_size((longer,)) + 1, "x"),),
            ),
        )
    )
    assert error.error_code == TErrorCode.TERR_INVALID_ATTR
    assert switch.view.user_data(conn_id) == (longer,)


user_data_request_st = st.one_of(
    st.builds(
        TAttachUserData,
        reference_id=reference_st,
        conn_id=st.just(conn(1)),
        dn=st.just(PORT),
        user_data=kv_st,
    ),
    st.builds(
        TUpdateUserData,
        reference_id=reference_st,
        conn_id=st.just(conn(1)),
        dn=st.just(PORT),
        user_data=kv_st,
    ),
    st.builds(
        TDeleteUserData,
        reference_id=reference_st,
        conn_id=st.just(conn(1)),
        dn=st.just(PORT),
        key=key_st,
    ),
    st.builds(
        TDeleteAllUserData, reference_id=reference_st, conn_id=st.just(conn(1)), dn=st.just(PORT)
    ),
)


@settings(max_examples=200, deadline=None)
@given(initial=kv_st, requests=st.lists(user_data_request_st, max_size=25))
def test_random_user_data_requests_follow_the_model_and_never_exceed_the_limit(
    initial: KvList, requests: list[CallRequest]
) -> None:
    switch = make_switch()
    events = send(switch, TInboundCall(reference_id=1, dn=PORT, user_data=initial))
    if xml_size(initial) > USER_DATA_LIMIT:
        assert only_error(events).error_code == TErrorCode.TERR_INVALID_ATTR
        return
    model = initial
    for request in requests:
        events = send(switch, request)
        expected = model_user_data(model, request)
        assert all(event.reference_id == request.reference_id for event in events)
        if xml_size(expected) > USER_DATA_LIMIT:
            error = only_error(events)
            assert error.error_code == TErrorCode.TERR_INVALID_ATTR
        else:
            assert data_changed(events).user_data == expected
            model = expected
        assert switch.view.user_data(conn(1)) == model
        assert kv_size(model) <= USER_DATA_LIMIT


# -- routing points ------------------------------------------------------------------------------


def test_route_request_presents_the_call_on_the_routing_point() -> None:
    switch = make_switch()
    data = (s("a", "1"),)
    conn_id = new_call(switch, user_data=data)
    extensions = (s("x", "1"),)
    events = send(
        switch,
        TRouteRequest(
            reference_id=61,
            conn_id=conn_id,
            dn=PORT,
            route_dn=RP,
            collected_digits="1234",
            extensions=extensions,
        ),
    )
    assert events == [
        EventRouteRequest(
            switch=SWITCH,
            reference_id=61,
            dn=RP,
            conn_id=conn_id,
            call_id=1,
            ani="5551234",
            dnis="8005550000",
            other_dn=PORT,
            user_data=data,
            extensions=extensions,
            collected_digits="1234",
        )
    ]
    call = snapshot(switch, conn_id)
    assert (call.routing_point, call.treatment, call.parties) == (RP, None, (PORT,))
    assert switch.view.waiting_calls(RP) == [call]
    assert switch.view.waiting_calls(RP_2) == []
    assert switch.view.waiting_calls(PORT) == []


def test_waiting_calls_are_listed_oldest_first_per_routing_point() -> None:
    switch = make_switch()
    a = new_call(switch, PORT)
    b = new_call(switch, PORT_VTP)
    c = new_call(switch, PORT_OTHER)
    route_request(switch, c, RP, PORT_OTHER)
    route_request(switch, a, RP, PORT)
    route_request(switch, b, RP_2, PORT_VTP)
    assert [w.conn_id for w in switch.view.waiting_calls(RP)] == [a, c]
    assert [w.conn_id for w in switch.view.waiting_calls(RP_2)] == [b]


@pytest.mark.parametrize(
    ("route_dn", "code"),
    [
        (UNKNOWN_DN, TErrorCode.TERR_NOT_CONFIGURED),
        (PORT, TErrorCode.TERR_INVALID_ATTR),
        (PORT_OTHER, TErrorCode.TERR_INVALID_ATTR),
        (QUEUE, TErrorCode.TERR_INVALID_ATTR),
    ],
)
def test_route_request_to_a_dn_that_is_not_a_routing_point(route_dn: str, code: TErrorCode) -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    before = snapshot(switch, conn_id)
    error = only_error(
        send(switch, TRouteRequest(reference_id=2, conn_id=conn_id, dn=PORT, route_dn=route_dn))
    )
    assert (error.error_code, error.dn, error.request) == (code, route_dn, "TRouteRequest")
    assert switch.view.call(conn_id) == before


@pytest.mark.parametrize("second_rp", [RP, RP_2])
def test_second_route_request_while_waiting_is_refused(second_rp: str) -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id, RP)
    before = snapshot(switch, conn_id)
    error = only_error(
        send(switch, TRouteRequest(reference_id=3, conn_id=conn_id, dn=PORT, route_dn=second_rp))
    )
    assert (error.error_code, error.dn) == (TErrorCode.TERR_INVALID_ATTR, PORT)
    assert switch.view.call(conn_id) == before
    assert switch.view.waiting_calls(RP_2) == []


@pytest.mark.parametrize(
    "route_type", ["Default", "Normal", "Reroute", "RerouteAttended", "RerouteConferenced"]
)
def test_route_call_answers_the_owner_and_ends_the_dialog(route_type: RouteType) -> None:
    switch = make_switch()
    conn_id = new_call(switch, user_data=(s("a", "1"),))
    route_request(switch, conn_id)
    extensions = (s("e", "1"),)
    events = send(
        switch,
        TRouteCall(
            reference_id=71,
            conn_id=conn_id,
            dn=RP,
            route_type=route_type,
            dest="6001",
            extensions=extensions,
        ),
    )
    common = CallAttrs(
        switch=SWITCH,
        reference_id=71,
        dn=RP,
        conn_id=conn_id,
        call_id=1,
        ani="5551234",
        dnis="8005550000",
        user_data=(s("a", "1"),),
    )
    assert events == [
        RequestRouteCall(
            **common,
            other_dn=PORT,
            route_type=route_type,
            dest="6001",
            route_extensions=extensions,
        ),
        EventRouteUsed(**common, dest="6001"),
    ]
    call = snapshot(switch, conn_id)
    assert (call.routing_point, call.treatment, call.parties) == (None, None, (PORT,))
    assert switch.view.waiting_calls(RP) == []
    # routed: a second answer is refused; a new route request is allowed (§6.2 row 12)
    error = only_error(send(switch, TRouteCall(reference_id=72, conn_id=conn_id, dn=RP)))
    assert error.error_code == TErrorCode.TERR_INVALID_ATTR
    route_request(switch, conn_id, RP_2)
    assert snapshot(switch, conn_id).routing_point == RP_2


def test_route_call_without_destination() -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id)
    routed, used = send(
        switch, TRouteCall(reference_id=1, conn_id=conn_id, dn=RP, route_type="Default")
    )
    assert isinstance(routed, RequestRouteCall) and isinstance(used, EventRouteUsed)
    assert (routed.route_type, routed.dest, used.dest) == ("Default", None, None)


@pytest.mark.parametrize("at", [RP_2, PORT, QUEUE, VIRTUAL_RP])
def test_router_requests_where_the_call_does_not_wait(at: str) -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id, RP)
    before = snapshot(switch, conn_id)
    for request in call_requests(conn_id, PORT, at)[6:]:
        error = only_error(send(switch, request))
        assert (error.error_code, error.dn, error.request) == (
            TErrorCode.TERR_INVALID_ATTR,
            at,
            request.name,
        )
    assert switch.view.call(conn_id) == before


def test_router_requests_on_a_call_that_never_waited() -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    before = snapshot(switch, conn_id)
    for request in call_requests(conn_id, PORT, RP)[6:]:
        assert only_error(send(switch, request)).error_code == TErrorCode.TERR_INVALID_ATTR
    assert switch.view.call(conn_id) == before


def test_apply_treatment_and_its_statuses() -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id)
    parameters = (s("Music", "jazz"), i("Duration", 30))
    extensions = (s("e", "1"),)
    (asked,) = send(
        switch,
        TApplyTreatment(
            reference_id=81,
            conn_id=conn_id,
            dn=RP,
            treatment_type="PlayAnnouncement",
            parameters=parameters,
            extensions=extensions,
        ),
    )
    assert isinstance(asked, RequestApplyTreatment)
    assert (asked.reference_id, asked.dn, asked.other_dn, asked.conn_id) == (81, RP, PORT, conn_id)
    assert (asked.treatment_type, asked.parameters, asked.treatment_extensions) == (
        "PlayAnnouncement",
        parameters,
        extensions,
    )
    call = snapshot(switch, conn_id)
    assert (call.routing_point, call.treatment) == (RP, "PlayAnnouncement")

    applied = one(
        send(
            switch,
            TTreatmentStatus(
                reference_id=82,
                conn_id=conn_id,
                dn=RP,
                status="Started",
                treatment_type="PlayAnnouncement",
                extensions=extensions,
            ),
        ),
        EventTreatmentApplied,
    )
    assert (applied.reference_id, applied.dn, applied.other_dn) == (82, RP, PORT)
    assert (applied.treatment_type, applied.extensions) == ("PlayAnnouncement", extensions)
    assert snapshot(switch, conn_id).treatment == "PlayAnnouncement"

    end = one(
        send(
            switch,
            TTreatmentStatus(
                reference_id=83,
                conn_id=conn_id,
                dn=RP,
                status="Completed",
                treatment_type="PlayAnnouncement",
                collected_digits="42",
            ),
        ),
        EventTreatmentEnd,
    )
    assert (end.reference_id, end.dn, end.treatment_type, end.collected_digits) == (
        83,
        RP,
        "PlayAnnouncement",
        "42",
    )
    call = snapshot(switch, conn_id)
    assert (call.routing_point, call.treatment) == (RP, None)  # back to ROUTING (§6.2 row 18)

    send(switch, TApplyTreatment(reference_id=84, conn_id=conn_id, dn=RP, treatment_type="Busy"))
    not_applied = one(
        send(
            switch,
            TTreatmentStatus(
                reference_id=85, conn_id=conn_id, dn=RP, status="NotStarted", treatment_type="Busy"
            ),
        ),
        EventTreatmentNotApplied,
    )
    assert (not_applied.reference_id, not_applied.treatment_type) == (85, "Busy")
    call = snapshot(switch, conn_id)
    assert (call.routing_point, call.treatment) == (RP, None)  # row 17
    assert switch.view.waiting_calls(RP) == [call]


def test_new_treatment_replaces_the_running_one_and_routing_ends_it() -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id)
    send(switch, TApplyTreatment(reference_id=1, conn_id=conn_id, dn=RP, treatment_type="Music"))
    send(
        switch,
        TTreatmentStatus(
            reference_id=2, conn_id=conn_id, dn=RP, status="Started", treatment_type="Music"
        ),
    )
    (asked,) = send(
        switch, TApplyTreatment(reference_id=3, conn_id=conn_id, dn=RP, treatment_type="Silence")
    )
    assert isinstance(asked, RequestApplyTreatment)
    assert snapshot(switch, conn_id).treatment == "Silence"  # row 19: no Cancel from the switch
    route_call(switch, conn_id)  # row 20: the owner cancels; the switch ends the dialog
    call = snapshot(switch, conn_id)
    assert (call.routing_point, call.treatment) == (None, None)


def test_route_abort_ends_the_dialog_without_a_route() -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id)
    send(switch, TApplyTreatment(reference_id=1, conn_id=conn_id, dn=RP, treatment_type="Music"))
    used = one(send(switch, TRouteAbort(reference_id=91, conn_id=conn_id, dn=RP)), EventRouteUsed)
    assert (used.reference_id, used.dn, used.dest, used.conn_id) == (91, RP, None, conn_id)
    call = snapshot(switch, conn_id)
    assert (call.routing_point, call.treatment) == (None, None)
    assert switch.view.waiting_calls(RP) == []
    error = only_error(send(switch, TRouteAbort(reference_id=92, conn_id=conn_id, dn=RP)))
    assert (error.error_code, error.request) == (TErrorCode.TERR_INVALID_ATTR, "TRouteAbort")


@pytest.mark.parametrize(
    "code",
    [TErrorCode.TERR_ORIG_DN_BUSY, TErrorCode.TERR_DN_NO_ANSWER, TErrorCode.TERR_CONN_ATMPT_FAIL],
)
def test_route_failed_tells_the_router_and_the_call_waits_again(code: TErrorCode) -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id)
    route_call(switch, conn_id)
    error = only_error(
        send(switch, TRouteFailed(reference_id=101, conn_id=conn_id, dn=RP, error_code=code))
    )
    assert error == EventError(
        switch=SWITCH,
        reference_id=101,
        dn=RP,
        error_code=code,
        error_message=error.error_message,
        request="TRouteCall",
        conn_id=conn_id,
    )
    assert error.error_message
    call = snapshot(switch, conn_id)
    assert (call.routing_point, call.treatment) == (RP, None)
    assert switch.view.waiting_calls(RP) == [call]
    # it waits already: a new route request is refused, the router may answer again
    assert (
        only_error(
            send(switch, TRouteRequest(reference_id=102, conn_id=conn_id, dn=PORT, route_dn=RP))
        ).request
        == "TRouteRequest"
    )
    route_call(switch, conn_id, dest="6002")
    assert switch.view.waiting_calls(RP) == []


def test_route_failed_errors() -> None:
    switch = make_switch()
    conn_id = new_call(switch)
    route_request(switch, conn_id)
    waiting = snapshot(switch, conn_id)
    # the call still waits: nothing was routed
    error = only_error(
        send(switch, TRouteFailed(reference_id=1, conn_id=conn_id, dn=RP, error_code=83))
    )
    assert (error.error_code, error.request, error.dn) == (
        TErrorCode.TERR_INVALID_ATTR,
        "TRouteFailed",
        RP,
    )
    assert switch.view.call(conn_id) == waiting
    route_call(switch, conn_id)
    routed = snapshot(switch, conn_id)
    for dn, code in [
        (UNKNOWN_DN, TErrorCode.TERR_NOT_CONFIGURED),
        (PORT, TErrorCode.TERR_INVALID_ATTR),
        (QUEUE, TErrorCode.TERR_INVALID_ATTR),
    ]:
        error = only_error(
            send(switch, TRouteFailed(reference_id=2, conn_id=conn_id, dn=dn, error_code=83))
        )
        assert (error.error_code, error.request, error.dn) == (code, "TRouteFailed", dn)
        assert switch.view.call(conn_id) == routed
    error = only_error(
        send(switch, TRouteFailed(reference_id=3, conn_id=UNKNOWN_CONN, dn=RP, error_code=83))
    )
    assert (error.error_code, error.request) == (TErrorCode.TERR_INVALID_ATTR, "TRouteFailed")
    assert switch.view.waiting_calls(RP) == []


def test_a_whole_routing_dialog_in_order() -> None:
    """PROTOCOL.md §6.2 rows 12-24 as seen on the switch, every event echoing its request."""
    switch = make_switch()
    steps: list[tuple[SwitchRequest, list[str]]] = [
        (TInboundCall(reference_id=1, dn=PORT, ani="1"), ["EventRinging", "EventEstablished"]),
        (
            TAttachUserData(reference_id=2, conn_id=conn(1), dn=PORT, user_data=(s("a", "1"),)),
            ["EventAttachedDataChanged"],
        ),
        (
            TRouteRequest(reference_id=3, conn_id=conn(1), dn=PORT, route_dn=RP),
            ["EventRouteRequest"],
        ),
        (
            TApplyTreatment(reference_id=4, conn_id=conn(1), dn=RP, treatment_type="CollectDigits"),
            ["RequestApplyTreatment"],
        ),
        (
            TTreatmentStatus(
                reference_id=5,
                conn_id=conn(1),
                dn=RP,
                status="Started",
                treatment_type="CollectDigits",
            ),
            ["EventTreatmentApplied"],
        ),
        (
            TTreatmentStatus(
                reference_id=6,
                conn_id=conn(1),
                dn=RP,
                status="Completed",
                treatment_type="CollectDigits",
                collected_digits="9",
            ),
            ["EventTreatmentEnd"],
        ),
        (
            TUpdateUserData(reference_id=7, conn_id=conn(1), dn=PORT, user_data=(s("a", "2"),)),
            ["EventAttachedDataChanged"],
        ),
        (
            TRouteCall(reference_id=8, conn_id=conn(1), dn=RP, dest="6001"),
            ["RequestRouteCall", "EventRouteUsed"],
        ),
        (TRouteFailed(reference_id=9, conn_id=conn(1), dn=RP, error_code=232), ["EventError"]),
        (
            TRouteCall(reference_id=10, conn_id=conn(1), dn=RP, dest="6002"),
            ["RequestRouteCall", "EventRouteUsed"],
        ),
        (
            TRouteRequest(reference_id=11, conn_id=conn(1), dn=PORT, route_dn=RP_2),
            ["EventRouteRequest"],
        ),
        (TRouteAbort(reference_id=12, conn_id=conn(1), dn=RP_2), ["EventRouteUsed"]),
        (TReleaseCall(reference_id=13, conn_id=conn(1), dn=PORT), ["EventReleased"]),
    ]
    for request, _ in steps:
        switch.request(request)
    events = switch.drain_events()
    assert names(events) == [name for _, expected in steps for name in expected]
    assert [e.reference_id for e in events] == [
        request.reference_id for request, expected in steps for _ in expected
    ]
    assert all(e.switch == SWITCH for e in events)
    assert all(getattr(e, "conn_id", None) == conn(1) for e in events)
    assert list(switch.view.calls()) == []


# -- ready agents --------------------------------------------------------------------------------


def test_ready_agents_longest_idle_first() -> None:
    switch = make_switch()
    login(switch, PORT_OTHER)
    login(switch, PORT)
    login(switch, PORT_VTP, ready=False)
    login(switch, PORT_4)
    agents = switch.view.ready_agents()
    assert [(a.dn, a.agent_id, a.queue) for a in agents] == [
        (PORT_OTHER, f"agent-{PORT_OTHER}", QUEUE),
        (PORT, f"agent-{PORT}", QUEUE),
        (PORT_4, f"agent-{PORT_4}", QUEUE),
    ]
    since = [a.ready_since for a in agents]
    assert since == sorted(since) and len(set(since)) == 3 and min(since) > 0
    for agent in agents:
        dn_snapshot = switch.view.dn(agent.dn)
        assert dn_snapshot is not None and dn_snapshot.agent is not None
        assert dn_snapshot.agent.ready_since == agent.ready_since

    set_ready(switch, PORT_VTP)  # NotReady → Ready: the newest
    assert ready_dns(switch) == [PORT_OTHER, PORT, PORT_4, PORT_VTP]
    set_ready(switch, PORT_OTHER)  # Ready → Ready: keeps its place
    assert ready_dns(switch) == [PORT_OTHER, PORT, PORT_4, PORT_VTP]
    set_not_ready(switch, PORT_OTHER)  # Ready → NotReady → Ready: to the back
    assert ready_dns(switch) == [PORT, PORT_4, PORT_VTP]
    set_ready(switch, PORT_OTHER)
    assert ready_dns(switch) == [PORT, PORT_4, PORT_VTP, PORT_OTHER]
    set_not_ready(switch, PORT)
    set_not_ready(switch, PORT)
    set_ready(switch, PORT)
    assert ready_dns(switch) == [PORT_4, PORT_VTP, PORT_OTHER, PORT]
    send(switch, TAgentLogout(reference_id=ref(), dn=PORT_4))
    assert ready_dns(switch) == [PORT_VTP, PORT_OTHER, PORT]
    login(switch, PORT_4)  # a new login is ready last
    assert ready_dns(switch) == [PORT_VTP, PORT_OTHER, PORT, PORT_4]


def test_ready_agents_exclude_dns_with_a_call() -> None:
    switch = make_switch()
    for dn in PORTS:
        login(switch, dn)
    a = new_call(switch, PORT)
    b = new_call(switch, PORT_OTHER)
    assert ready_dns(switch) == [PORT_VTP, PORT_4]
    route_request(switch, a)  # waiting at a routing point: still on the port
    assert ready_dns(switch) == [PORT_VTP, PORT_4]
    route_call(switch, a)
    assert ready_dns(switch) == [PORT_VTP, PORT_4]
    send(switch, TReleaseCall(reference_id=ref(), conn_id=a, dn=PORT))
    assert set(ready_dns(switch)) == {PORT_VTP, PORT_4, PORT}
    hang_up(switch, b)
    assert set(ready_dns(switch)) == set(PORTS)
    # two calls on one DN: busy until both are gone
    c = new_call(switch, PORT_VTP)
    d = new_call(switch, PORT_VTP)
    hang_up(switch, c)
    assert PORT_VTP not in ready_dns(switch)
    hang_up(switch, d)
    assert PORT_VTP in ready_dns(switch)


def test_ready_agents_exclude_out_of_service_dns() -> None:
    switch = make_switch()
    login(switch, PORT)
    login(switch, PORT_OTHER)
    switch.request(TSetInService(reference_id=0, dn=PORT, in_service=False))
    assert ready_dns(switch) == [PORT_OTHER]
    switch.request(TSetInService(reference_id=0, dn=PORT, in_service=True))
    assert ready_dns(switch) == [PORT, PORT_OTHER]


AgentOp = tuple[str, str]
agent_op_st = st.tuples(
    st.sampled_from(
        [
            "login_ready",
            "login_not_ready",
            "ready",
            "not_ready",
            "logout",
            "call",
            "release",
            "oos",
            "ins",
        ]
    ),
    st.sampled_from(PORTS),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(agent_op_st, max_size=40))
def test_ready_agents_match_a_model(operations: list[AgentOp]) -> None:
    """Model: a DN's place in the queue is the moment its agent last went from not-ready (or
    logged out) to ready; DNs that have a call, are out of service or not ready are left out."""
    switch = make_switch()
    state: dict[str, str | None] = dict.fromkeys(PORTS)
    became_ready: dict[str, int] = {}
    calls: dict[str, list[str]] = {dn: [] for dn in PORTS}
    in_service = dict.fromkeys(PORTS, True)
    clock = itertools.count()
    conn_ids = itertools.count(1)
    for op, dn in operations:
        can_control = in_service[dn]
        if op.startswith("login"):
            ready = op == "login_ready"
            switch.request(
                TAgentLogin(
                    reference_id=1,
                    dn=dn,
                    queue="",
                    agent_id=f"agent-{dn}",
                    work_mode=WorkMode.AUTO_IN if ready else WorkMode.UNKNOWN,
                )
            )
            if can_control and state[dn] is None:
                state[dn] = "ready" if ready else "not_ready"
                if ready:
                    became_ready[dn] = next(clock)
        elif op == "ready":
            switch.request(TAgentSetReady(reference_id=1, dn=dn, queue=""))
            if can_control and state[dn] is not None:
                if state[dn] != "ready":
                    became_ready[dn] = next(clock)
                state[dn] = "ready"
        elif op == "not_ready":
            switch.request(TAgentSetNotReady(reference_id=1, dn=dn, queue=""))
            if can_control and state[dn] is not None:
                state[dn] = "not_ready"
        elif op == "logout":
            switch.request(TAgentLogout(reference_id=1, dn=dn))
            if can_control and state[dn] is not None:
                state[dn] = None
        elif op == "call":
            switch.request(TInboundCall(reference_id=1, dn=dn))
            if can_control:
                calls[dn].append(conn(next(conn_ids)))
        elif op == "release":
            if calls[dn]:
                released = send(switch, TCallerHangUp(reference_id=1, conn_id=calls[dn].pop(0)))
                assert "EventReleased" in names(released)
        else:
            switch.request(TSetInService(reference_id=0, dn=dn, in_service=op == "ins"))
            in_service[dn] = op == "ins"
        switch.drain_events()
        expected = sorted(
            (dn_ for dn_ in PORTS if state[dn_] == "ready" and not calls[dn_] and in_service[dn_]),
            key=lambda dn_: became_ready[dn_],
        )
        agents = switch.view.ready_agents()
        assert [a.dn for a in agents] == expected
        assert [a.agent_id for a in agents] == [f"agent-{dn_}" for dn_ in expected]
        assert len({a.ready_since for a in agents}) == len(agents)


def test_no_state_is_left_behind_when_calls_end() -> None:
    switch = make_switch()
    for dn in PORTS:
        login(switch, dn)
    dns_before = list(switch.view.dns())
    plain = new_call(switch, PORT, user_data=(s("a", "1"),))
    treated = new_call(switch, PORT_VTP)
    route_request(switch, treated, RP, PORT_VTP)
    send(switch, TApplyTreatment(reference_id=1, conn_id=treated, dn=RP, treatment_type="Music"))
    routed = new_call(switch, PORT_OTHER)
    route_request(switch, routed, RP_2, PORT_OTHER)
    route_call(switch, routed, RP_2)
    failed = new_call(switch, PORT_4)
    route_request(switch, failed, RP, PORT_4)
    route_call(switch, failed, RP)
    send(switch, TRouteFailed(reference_id=2, conn_id=failed, dn=RP, error_code=234))
    assert [c.conn_id for c in switch.view.waiting_calls(RP)] == [treated, failed]
    assert ready_dns(switch) == []

    send(switch, TReleaseCall(reference_id=3, conn_id=plain, dn=PORT))
    send(switch, TReleaseCall(reference_id=4, conn_id=treated, dn=PORT_VTP))
    hang_up(switch, routed)
    hang_up(switch, failed)

    assert list(switch.view.calls()) == []
    assert switch.view.waiting_calls(RP) == switch.view.waiting_calls(RP_2) == []
    for conn_id, dn in ((plain, PORT), (treated, PORT_VTP), (routed, PORT_OTHER), (failed, PORT_4)):
        assert switch.view.call(conn_id) is None and switch.view.user_data(conn_id) is None
        for request in call_requests(conn_id, dn, RP):
            assert only_error(send(switch, request)).error_code == TErrorCode.TERR_INVALID_ATTR
    assert set(ready_dns(switch)) == set(PORTS)
    assert list(switch.view.dns()) == dns_before  # calls never touch DN or agent state
    assert new_call(switch) == conn(5)
    assert snapshot(switch, conn(5)).user_data == ()


# -- random call sequences: no leftovers, failures change nothing --------------------------------

TreatStatus = Literal["Started", "NotStarted", "Completed"]
STATUSES: list[TreatStatus] = ["Started", "NotStarted", "Completed"]
REQUEST_KINDS = [
    "inbound",
    "release",
    "attach",
    "update",
    "delete",
    "delete_all",
    "route_request",
    "route_call",
    "treatment",
    "treatment_status",
    "abort",
    "failed",
]

ROUTING_KINDS = ["route_request"] * 3 + ["route_call", "treatment", "treatment_status"] * 2


def draw_operation(data: st.DataObject, switch: VirtualSwitch) -> object:
    """Mostly a request about one of the live calls, from the DN that can make it (so that the
    dialog is walked deep); sometimes a wrong call or DN, a link change or the caller hanging up."""
    choice = data.draw(st.integers(min_value=0, max_value=99), label="choice")
    if choice < 2:
        return "disconnect"
    if choice < 10:
        return "connect"
    calls = list(switch.view.calls())
    call = None
    if calls and data.draw(st.integers(min_value=0, max_value=9)) > 0:
        call = data.draw(st.sampled_from(calls))
    conn_id = call.conn_id if call is not None else UNKNOWN_CONN
    if choice < 15:
        return conn_id  # hang up
    party = call.parties[0] if call is not None else PORT
    rp = (call.routing_point if call is not None else None) or RP
    port = data.draw(st.sampled_from([*[party] * 6, PORT_OTHER, RP, UNKNOWN_DN]), label="port")
    at = data.draw(st.sampled_from([*[rp] * 6, RP_2, PORT, UNKNOWN_DN]), label="at")
    reference_id = data.draw(reference_st, label="reference_id")
    kinds = [*REQUEST_KINDS, *ROUTING_KINDS]
    if len(calls) < 2:
        kinds += ["inbound"] * 6
    kind = data.draw(st.sampled_from(kinds), label="kind")
    if kind == "inbound":
        dn = data.draw(st.sampled_from([PORT, PORT, PORT_OTHER, RP]))
        return TInboundCall(reference_id=reference_id, dn=dn)
    if kind == "release":
        return TReleaseCall(reference_id=reference_id, conn_id=conn_id, dn=port)
    if kind in ("attach", "update"):
        user_data = data.draw(small_kv_st, label="user_data")
        cls = TAttachUserData if kind == "attach" else TUpdateUserData
        return cls(reference_id=reference_id, conn_id=conn_id, dn=port, user_data=user_data)
    if kind == "delete":
        return TDeleteUserData(
            reference_id=reference_id, conn_id=conn_id, dn=port, key=data.draw(key_st)
        )
    if kind == "delete_all":
        return TDeleteAllUserData(reference_id=reference_id, conn_id=conn_id, dn=port)
    if kind == "route_request":
        route_dn = data.draw(st.sampled_from([RP, RP, RP, RP_2, PORT, UNKNOWN_DN]))
        return TRouteRequest(reference_id=reference_id, conn_id=conn_id, dn=port, route_dn=route_dn)
    if kind == "route_call":
        return TRouteCall(reference_id=reference_id, conn_id=conn_id, dn=at, dest="6001")
    if kind == "treatment":
        return TApplyTreatment(
            reference_id=reference_id, conn_id=conn_id, dn=at, treatment_type="Music"
        )
    if kind == "treatment_status":
        status = data.draw(st.sampled_from(STATUSES))
        return TTreatmentStatus(
            reference_id=reference_id,
            conn_id=conn_id,
            dn=at,
            status=status,
            treatment_type="Music",
        )
    if kind == "abort":
        return TRouteAbort(reference_id=reference_id, conn_id=conn_id, dn=at)
    assert kind == "failed"
    return TRouteFailed(reference_id=reference_id, conn_id=conn_id, dn=at, error_code=83)


def check_call_invariants(switch: VirtualSwitch) -> None:
    calls = list(switch.view.calls())
    ids = [c.conn_id for c in calls]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(CONN_ID_RE.match(conn_id) for conn_id in ids)
    for call in calls:
        assert call.parties and all(p in (PORT, PORT_OTHER) for p in call.parties)
        assert call.routing_point in (None, RP, RP_2)
        assert call.treatment is None or call.routing_point is not None
        assert kv_size(call.user_data) <= USER_DATA_LIMIT
        assert switch.view.user_data(call.conn_id) == call.user_data
    for rp in (RP, RP_2):
        assert switch.view.waiting_calls(rp) == [c for c in calls if c.routing_point == rp]


def same_answers(a: SwitchView, b: SwitchView) -> bool:
    """Whether two views answer every reader alike."""
    waiting = [(rp, a.waiting_calls(rp), b.waiting_calls(rp)) for rp in (RP, RP_2)]
    return (
        a.link_up == b.link_up
        and list(a.dns()) == list(b.dns())
        and list(a.calls()) == list(b.calls())
        and a.ready_agents() == b.ready_agents()
        and all(x == y for _, x, y in waiting)
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), steps=st.integers(min_value=0, max_value=50))
def test_random_call_sequences_keep_invariants_and_leave_nothing_behind(
    data: st.DataObject, steps: int
) -> None:
    switch = make_switch()
    # a view of its own, fed only with the events drained: the switch's view gives the same answers
    shadow = SwitchView(DNS)
    shadow.apply(EventLinkConnected(switch=SWITCH, tserver=TSERVER))

    def drain() -> list[SwitchEvent]:
        events = switch.drain_events()
        for event in events:
            shadow.apply(event)
        return events

    for _ in range(steps):
        operation = draw_operation(data, switch)
        if isinstance(operation, SwitchRequest):
            before = list(switch.view.calls())
            link_up = switch.view.link_up
            switch.request(operation)
            events = drain()
            assert events, "every request is answered"
            assert all(e.reference_id == operation.reference_id for e in events)
            assert all(e.switch == SWITCH for e in events)
            failed = [
                e for e in events if isinstance(e, EventError) and e.request == operation.name
            ]
            if failed:
                assert len(events) == 1
                assert list(switch.view.calls()) == before, "a failed request changes nothing"
            if not link_up:
                assert failed and failed[0].error_code == TErrorCode.TERR_NO_SWITCH
        elif operation == "connect":
            switch.request(TOpenLink(reference_id=0))
        elif operation == "disconnect":
            switch.request(TCloseLink(reference_id=0))
        else:
            assert isinstance(operation, str)
            existed = switch.view.call(operation) is not None
            switch.request(TCallerHangUp(reference_id=0, conn_id=operation))
            events = drain()
            assert (names(events) == ["EventError"]) is not existed
        drain()
        check_call_invariants(switch)
        assert same_answers(shadow, switch.view)

    # everything ends: each call reports its route-point dialog (if any) ended, then its release
    remaining = list(switch.view.calls())
    for call in remaining:
        switch.request(TCallerHangUp(reference_id=0, conn_id=call.conn_id))
        events = drain()
        expected = ["EventRouteUsed"] if call.routing_point is not None else []
        expected += ["EventReleased"] * len(call.parties)
        assert names(events) == expected
        assert all(e.reference_id is None for e in events)
    assert list(switch.view.calls()) == []
    for dn in (RP, RP_2, PORT):
        assert switch.view.waiting_calls(dn) == []
    for call in remaining:
        assert switch.view.call(call.conn_id) is None
        assert switch.view.user_data(call.conn_id) is None
