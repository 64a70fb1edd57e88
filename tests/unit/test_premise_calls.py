"""Premise calls: CSTA call events as T-Library events, identity, release by request, the error
table; golden documents shaped as a real PBX sends them."""

from __future__ import annotations

from pathlib import Path

import pytest

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import CSTA_NAMESPACES
from ivr_server.switch.csta.framing import encode_frame
from ivr_server.switch.errors import AGENT_WRONG_STATE, TErrorCode
from ivr_server.switch.events import (
    DnType,
    EventDNBackInService,
    EventDNOutOfService,
    EventError,
    EventEstablished,
    EventReleased,
    EventRinging,
    EventRouteRequest,
    EventRouteUsed,
)
from ivr_server.switch.premise import PremiseSwitch
from ivr_server.switch.premise.calls import device_number
from ivr_server.switch.premise.core import ts_call_id
from ivr_server.switch.premise.errors import describe, tlib_error
from ivr_server.switch.requests import TAbandonCall, TReleaseCall, TRouteRequest
from tests.unit.premise_pbx import (
    AGENT_DN,
    CALLER,
    PORT,
    PORT2,
    QUEUE,
    SETTINGS,
    SWITCH,
    TSERVER,
    VRP,
    Pbx,
    bring_up,
    new_switch,
    xref,
)

GOLDEN = Path(__file__).parent / "csta_golden"


def up() -> tuple[PremiseSwitch, Pbx]:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    return switch, pbx


def test_delivered_then_established_at_a_port_through_a_queue() -> None:
    switch, pbx = up()
    pbx.delivered(
        "2053",
        called="8005550100",
        last_redirection_device=QUEUE,
        cause="distributed",
    )
    [ringing] = switch.drain_events()
    assert ringing == EventRinging(
        switch=SWITCH,
        dn=PORT,
        conn_id=f"{0x10:016x}",
        call_id=2053,  # the premise call id is numeric: it is the TSCallId
        ani=CALLER,
        dnis="8005550100",
        this_queue=QUEUE,
        other_dn=CALLER,
    )
    pbx.established("2053", called_device="8005550100")
    [established] = switch.drain_events()
    assert isinstance(established, EventEstablished)
    assert (established.conn_id, established.call_id, established.this_queue) == (
        ringing.conn_id,
        2053,
        QUEUE,
    )
    assert established.name == "EventEstablished"  # the calls side's LastEvent


def test_a_duplicate_delivered_is_ignored_and_established_without_delivered_rings_first() -> None:
    switch, pbx = up()
    pbx.delivered("1")
    pbx.delivered("1")
    assert len(switch.drain_events()) == 1
    pbx.established("2", PORT2)
    assert [type(e) for e in switch.drain_events()] == [EventRinging, EventEstablished]
    pbx.established("2", PORT2)  # duplicate
    assert switch.drain_events() == []


def test_the_caller_hangs_up_released_once() -> None:
    switch, pbx = up()
    pbx.delivered("7")
    pbx.established("7")
    [ringing, _] = switch.drain_events()
    pbx.cleared("7", CALLER)  # the other party left: only the port is left
    pbx.call_cleared("7")
    pbx.cleared("7", PORT)  # late duplicates: the call is gone
    [released] = switch.drain_events()
    assert isinstance(released, EventReleased) and released.reference_id is None
    assert (released.dn, released.conn_id) == (PORT, ringing.conn_id)  # type: ignore[attr-defined]
    assert switch.view.call(ringing.conn_id) is None  # type: ignore[attr-defined]
    assert switch.calls == {} and switch.by_conn == {}  # the identity map is bounded


def test_call_cleared_alone_releases() -> None:
    switch, pbx = up()
    pbx.delivered("8")
    switch.drain_events()
    pbx.call_cleared("8")
    assert [type(e) for e in switch.drain_events()] == [EventReleased]


def test_a_conference_party_leaving_does_not_release_the_port() -> None:
    switch, pbx = up()
    pbx.delivered("9")
    pbx.established("9")
    pbx.send(
        m.ConferencedEvent(
            monitor_cross_ref_id=xref(PORT),
            primary_old_call=m.ConnectionID(call_id="9", device_id=PORT),
            added_party="3999",
        )
    )
    switch.drain_events()
    pbx.cleared("9", CALLER)
    assert switch.drain_events() == []
    pbx.cleared("9", "3999")
    assert [type(e) for e in switch.drain_events()] == [EventReleased]


def test_events_for_unknown_calls_never_raise() -> None:
    switch, pbx = up()
    pbx.cleared("404", PORT)
    pbx.call_cleared("404")
    pbx.send(
        m.HeldEvent(monitor_cross_ref_id=xref(PORT), held_connection=m.ConnectionID(call_id="404"))
    )
    pbx.send(
        m.RetrievedEvent(monitor_cross_ref_id=xref(PORT), retrieved_connection=m.ConnectionID())
    )
    pbx.send(m.FailedEvent(monitor_cross_ref_id=xref(PORT), failed_connection=m.ConnectionID()))
    pbx.send(
        m.QueuedEvent(
            monitor_cross_ref_id=xref(QUEUE), queued_connection=m.ConnectionID(call_id="1")
        )
    )
    pbx.send(
        m.TransferedEvent(
            monitor_cross_ref_id=xref(PORT), primary_old_call=m.ConnectionID(call_id="404")
        )
    )
    assert switch.drain_events() == []


def test_a_call_diverted_or_transferred_away_from_the_port_is_released_there() -> None:
    switch, pbx = up()
    pbx.delivered("61")
    pbx.delivered("62", PORT2)
    switch.drain_events()
    pbx.send(
        m.DivertedEvent(
            monitor_cross_ref_id=xref(PORT),
            connection=m.ConnectionID(call_id="61", device_id=PORT),
            diverting_device=PORT,
            new_destination=AGENT_DN,
        )
    )
    pbx.send(
        m.TransferedEvent(
            monitor_cross_ref_id=xref(PORT2),
            primary_old_call=m.ConnectionID(call_id="62", device_id=PORT2),
            transferring_device=PORT2,
            transferred_to_device=AGENT_DN,
        )
    )
    events = switch.drain_events()
    assert [(type(e), e.dn) for e in events] == [(EventReleased, PORT), (EventReleased, PORT2)]  # type: ignore[attr-defined]


def test_a_transfer_to_a_new_call_id_keeps_the_conn_id() -> None:
    switch, pbx = up()
    pbx.delivered("71")
    [ringing] = switch.drain_events()
    pbx.send(
        m.TransferedEvent(
            monitor_cross_ref_id=xref(PORT),
            primary_old_call=m.ConnectionID(call_id="71", device_id=PORT),
            transferring_device="3999",
            transferred_connections=(
                m.ConnectionListItem(
                    new_connection=m.ConnectionID(call_id="72", device_id=PORT),
                    old_connection=m.ConnectionID(call_id="71", device_id=PORT),
                ),
            ),
        )
    )
    pbx.call_cleared("72")
    [released] = switch.drain_events()
    assert isinstance(released, EventReleased) and released.conn_id == ringing.conn_id  # type: ignore[attr-defined]


def test_out_of_service_and_back() -> None:
    switch, pbx = up()
    pbx.send(m.OutOfServiceEvent(monitor_cross_ref_id=xref(PORT), device=PORT))
    pbx.send(m.OutOfServiceEvent(monitor_cross_ref_id=xref(PORT), device=PORT))
    pbx.send(m.BackInServiceEvent(monitor_cross_ref_id=xref(PORT), device=PORT))
    assert switch.drain_events() == [
        EventDNOutOfService(switch=SWITCH, dn=PORT),
        EventDNBackInService(switch=SWITCH, dn=PORT),
    ]


def test_release_call_clears_the_ports_connection() -> None:
    switch, pbx = up()
    pbx.delivered("81")
    pbx.established("81")
    [ringing, _] = switch.drain_events()
    conn = ringing.conn_id  # type: ignore[attr-defined]
    switch.request(TReleaseCall(reference_id=42, conn_id=conn, dn=PORT))
    assert switch.drain_events() == []
    [(invoke_id, clear)] = pbx.sent()
    assert clear == m.ClearConnection(
        connection_to_be_cleared=m.ConnectionID(call_id="81", device_id=PORT)
    )
    pbx.cleared("81", PORT)
    pbx.send(m.ClearConnectionResponse(), invoke_id)
    pbx.call_cleared("81")
    [released] = switch.drain_events()
    assert isinstance(released, EventReleased) and released.reference_id == 42


def test_the_positive_answer_releases_when_no_connection_cleared_came_first() -> None:
    switch, pbx = up()
    pbx.delivered("82")
    [ringing] = switch.drain_events()
    switch.request(TAbandonCall(reference_id=43, conn_id=ringing.conn_id, dn=PORT))  # type: ignore[attr-defined]
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.ClearConnectionResponse(), invoke_id)
    pbx.cleared("82", PORT)
    [released] = switch.drain_events()
    assert isinstance(released, EventReleased) and released.reference_id == 43


def test_a_refused_release_is_an_event_error_with_the_mapped_code() -> None:
    switch, pbx = up()
    pbx.delivered("83")
    [ringing] = switch.drain_events()
    conn = ringing.conn_id  # type: ignore[attr-defined]
    switch.request(TReleaseCall(reference_id=44, conn_id=conn, dn=PORT))
    [(invoke_id, _)] = pbx.sent()
    pbx.send(
        m.CSTAErrorCode(category="operation", value="invalidCstaConnectionIdentifier"), invoke_id
    )
    [error] = switch.drain_events()
    assert error == EventError(
        switch=SWITCH,
        reference_id=44,
        dn=PORT,
        error_code=TErrorCode.TERR_INV_CONNID,
        error_message="CSTA error operation/invalidCstaConnectionIdentifier",
        request="TReleaseCall",
        conn_id=conn,
    )
    assert switch.view.call(conn) is not None  # the call stays
    pbx.cleared("83", PORT)  # later cleared by someone else: unsolicited
    [released] = switch.drain_events()
    assert isinstance(released, EventReleased) and released.reference_id is None


def test_an_unanswered_release_times_out() -> None:
    switch, pbx = up()
    pbx.now = 10.0
    pbx.delivered("84")
    [ringing] = switch.drain_events()
    switch.request(TReleaseCall(reference_id=45, conn_id=ringing.conn_id, dn=PORT))  # type: ignore[attr-defined]
    [(invoke_id, _)] = pbx.sent()
    # the request came without the time: the switch asks for a door at once, then times it
    assert switch.next_deadline() == 10.0
    switch.handle_timer(13.0)
    assert switch.next_deadline() == 23.0 and switch.drain_events() == []
    switch.handle_timer(23.0)
    [error] = switch.drain_events()
    assert isinstance(error, EventError) and error.reference_id == 45
    assert error.error_code == TErrorCode.TERR_TIMEOUT
    # a late answer changes nothing
    pbx.now = 24.0
    pbx.send(m.ClearConnectionResponse(), invoke_id)
    assert switch.drain_events() == []
    assert switch.view.call(ringing.conn_id) is not None  # type: ignore[attr-defined]


def test_release_of_an_unknown_call_is_refused_locally() -> None:
    switch, pbx = up()
    switch.request(TReleaseCall(reference_id=46, conn_id="f" * 16, dn=PORT))
    [error] = switch.drain_events()
    assert isinstance(error, EventError) and error.error_code == TErrorCode.TERR_INVALID_ATTR
    assert pbx.sent() == []


def test_the_routing_dialog_ends_when_the_call_is_released() -> None:
    switch, pbx = up()
    pbx.delivered("91")
    [ringing] = switch.drain_events()
    switch.request(TRouteRequest(reference_id=1, conn_id=ringing.conn_id, dn=PORT, route_dn=VRP))  # type: ignore[attr-defined]
    assert [type(e) for e in switch.drain_events()] == [EventRouteRequest]
    pbx.call_cleared("91")
    assert [(type(e), e.dn) for e in switch.drain_events()] == [  # type: ignore[attr-defined]
        (EventRouteUsed, VRP),
        (EventReleased, PORT),
    ]


# -- identity --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("premise_id", "expected"),
    [
        ("2053", 2053),
        ("0", 0),
        ("4294967295", 4294967295),
        ("4294967296", None),
        ("12a", None),
        ("FF00010000000000EC6114647E570000", None),
        ("٣", None),
        ("", None),
    ],
)
def test_ts_call_id_is_the_premise_id_when_it_is_a_32_bit_number(
    premise_id: str, expected: int | None
) -> None:
    assert ts_call_id(premise_id) == expected


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("N<3021061290002>;noa=nk", "3021061290002"),
        ("N<7868772298>Line71001;displayNumber=7868772298", "7868772298"),
        ("3001", "3001"),
        ("3001;phys=x", "3001"),
        (";x", None),
        (None, None),
    ],
)
def test_device_numbers(raw: str | None, number: str | None) -> None:
    assert device_number(raw) == number


# -- golden documents ----------------------------------------------------------------------------


def test_openscape_delivered_maps_to_ringing() -> None:
    osv_port = "3021061290002"
    dns = ((osv_port, DnType.VOICE_TREATMENT_PORT),)
    switch = PremiseSwitch(SWITCH, TSERVER, dns, SETTINGS, first_call_id=500)
    pbx = Pbx(switch, CSTA_NAMESPACES["ed4"])
    switch.request(
        __import__("ivr_server.switch.requests", fromlist=["TOpenLink"]).TOpenLink(reference_id=0)
    )
    switch.connection_made(0.0)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.StartApplicationSessionPosResponse(session_id="S"), invoke_id)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.MonitorStartResponse(monitor_cross_ref_id="1173673890"), invoke_id)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.SnapshotDeviceResponse(), invoke_id)
    switch.drain_events()
    pbx.raw(encode_frame(9999, (GOLDEN / "pyssimist_DeliveredEvent.xml").read_bytes()))
    [ringing] = switch.drain_events()
    assert isinstance(ringing, EventRinging)
    assert (ringing.dn, ringing.ani, ringing.dnis, ringing.other_dn) == (
        osv_port,
        "7868772298",
        osv_port,
        "7868772298",
    )
    assert ringing.call_id == 500  # a 32-hex OpenScape call id: a counter
    assert ringing.this_queue is None  # lastRedirectionDevice notRequired


def test_ed2_established_and_connection_cleared_without_call_ids() -> None:
    """Documents from a PBX that names connections by device only (``pool_*`` golden files,
    monitor cross-reference id 7)."""
    switch, pbx = new_switch()
    switch.request(
        __import__("ivr_server.switch.requests", fromlist=["TOpenLink"]).TOpenLink(reference_id=0)
    )
    switch.connection_made(0.0)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.StartApplicationSessionPosResponse(session_id="S"), invoke_id)
    for invoke_id, request in pbx.sent():
        device = request.device  # type: ignore[attr-defined]
        pbx.send(
            m.MonitorStartResponse(monitor_cross_ref_id="7" if device == PORT else device),
            invoke_id,
        )
    for invoke_id, _ in pbx.sent():
        pbx.send(m.SnapshotDeviceResponse(), invoke_id)
    switch.drain_events()
    pbx.raw(encode_frame(9999, (GOLDEN / "pool_EstablishedEvent_ed2.xml").read_bytes()))
    ringing, established = switch.drain_events()
    assert isinstance(ringing, EventRinging) and isinstance(established, EventEstablished)
    assert (established.ani, established.dnis, established.this_queue) == (CALLER, PORT, QUEUE)
    pbx.raw(encode_frame(9999, (GOLDEN / "pool_ConnectionClearedEvent.xml").read_bytes()))
    [released] = switch.drain_events()
    assert isinstance(released, EventReleased) and released.conn_id == ringing.conn_id


# -- the error table (G12) --------------------------------------------------------------------------


def test_csta_errors_map_to_t_library_codes() -> None:
    e = m.CSTAErrorCode
    assert (
        tlib_error(e(category="operation", value="invalidDestination"))
        is TErrorCode.TERR_INV_CALD_DN
    )
    assert (
        tlib_error(e(category="systemResourceAvailability", value="somethingNew"))
        is TErrorCode.TERR_RES_UNAVAIL
    )
    assert tlib_error(e(category="unspecified", value="unspecified")) is TErrorCode.TERR_UNKNOWN
    assert (
        tlib_error(e(category="stateIncompatibility", value="invalidObjectState"))
        is TErrorCode.TERR_SET_WRONG_STATE
    )
    assert (
        tlib_error(e(category="stateIncompatibility", value="x"), agent=True) is AGENT_WRONG_STATE
    )
    assert tlib_error(m.StartApplicationSessionNegResponse()) is TErrorCode.TERR_UNKNOWN
    assert describe(e(category="operation", value="generic")) == "CSTA error operation/generic"
