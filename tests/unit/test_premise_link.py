"""The premise switch's link: session start, monitors, snapshots, link up; refusal, loss, close;
requests while the link is down; garbage from the PBX; the registry."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_server.errors import LocalProtocolError
from ivr_server.switch import build_switch, link_of
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    EventAttachedDataChanged,
    EventDNBackInService,
    EventDNOutOfService,
    EventError,
    EventLinkConnected,
    EventLinkDisconnected,
    EventRegistered,
    EventRinging,
    EventRouteRequest,
    EventRouteUsed,
    EventUnregistered,
    RequestRouteCall,
)
from ivr_server.switch.premise import PremiseSwitch
from ivr_server.switch.requests import (
    TAgentLogin,
    TAnswerCall,
    TAttachUserData,
    TCallerHangUp,
    TCloseLink,
    TConfigureAddresses,
    TInboundCall,
    TOpenLink,
    TOutboundCall,
    TRegisterAddress,
    TReleaseCall,
    TRouteCall,
    TRouteRequest,
    TSetInService,
    TUnregisterAddress,
)
from ivr_server.wire.kv import str_node as KvPair
from tests.unit.premise_pbx import (
    AGENT_DN,
    CALLER,
    DNS,
    MONITORED,
    PORT,
    PORT2,
    QUEUE,
    RP,
    SETTINGS,
    SWITCH,
    TSERVER,
    VRP,
    Pbx,
    bring_up,
    new_switch,
    xref,
)

UP = EventLinkConnected(switch=SWITCH, tserver=TSERVER)
DOWN = EventLinkDisconnected(switch=SWITCH, tserver=TSERVER)


def test_the_registry_builds_a_premise_switch_and_it_is_a_linked_switch() -> None:
    switch = build_switch("premise-csta", SWITCH, TSERVER, DNS, premise=SETTINGS)
    assert isinstance(switch, PremiseSwitch)
    assert link_of(switch) is switch
    assert switch.target.host == "127.0.0.1" and switch.target.port == 3022
    with pytest.raises(LocalProtocolError, match="settings"):
        build_switch("premise-csta", SWITCH, TSERVER, DNS)


def test_the_password_never_shows_in_the_settings_repr() -> None:
    assert "s3cret" not in repr(SETTINGS)


def test_open_link_connects_monitors_snapshots_then_reports_the_link_up() -> None:
    switch, pbx = new_switch()
    assert not switch.link_wanted
    switch.request(TOpenLink(reference_id=0))
    assert switch.link_wanted and switch.drain_events() == []  # no event until it is usable
    switch.connection_made(0.0)
    [(start_id, start)] = pbx.sent()
    assert isinstance(start, m.StartApplicationSession)
    assert start.application_id == "ivr-server"
    assert start.requested_session_duration == 180
    pbx.send(
        m.StartApplicationSessionPosResponse(session_id="S1", actual_session_duration=180), start_id
    )
    monitors = pbx.sent()
    # ports, extensions and queues are the PBX's; routing points and VRPs are ours
    assert [r.device for _, r in monitors] == list(MONITORED)
    assert switch.drain_events() == [] and not switch.view.link_up
    for invoke_id, request in monitors:
        pbx.send(m.MonitorStartResponse(monitor_cross_ref_id=xref(request.device)), invoke_id)
    snapshots = pbx.sent()
    assert [r.snapshot_object for _, r in snapshots] == list(MONITORED)
    for invoke_id, _ in snapshots[:-1]:
        pbx.send(m.SnapshotDeviceResponse(), invoke_id)
    assert switch.drain_events() == []  # not before every snapshot is in
    pbx.send(m.SnapshotDeviceResponse(), snapshots[-1][0])
    assert switch.drain_events() == [UP]
    assert switch.view.link_up and not switch.closing


def test_a_dn_the_pbx_will_not_monitor_is_out_of_service_and_the_link_still_comes_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    switch, pbx = new_switch()
    with caplog.at_level(logging.WARNING, "ivr_server.switch.premise"):
        events = bring_up(switch, pbx, refuse_monitor=frozenset({PORT2}))
    assert events == [EventDNOutOfService(switch=SWITCH, dn=PORT2), UP]
    assert (
        "does not monitor DN 3002" in caplog.text and "invalidCstaDeviceIdentifier" in caplog.text
    )
    # the next connection monitors it: back in service
    switch.connection_lost("reset", 1.0)
    assert switch.drain_events() == [DOWN]
    events = bring_up(switch, pbx, open_link=False)
    assert events == [EventDNBackInService(switch=SWITCH, dn=PORT2), UP]


def test_a_refused_session_closes_the_connection_without_a_link_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    switch, pbx = new_switch()
    switch.request(TOpenLink(reference_id=0))
    switch.connection_made(0.0)
    [(invoke_id, _)] = pbx.sent()
    with caplog.at_level(logging.WARNING, "ivr_server.switch.premise"):
        pbx.send(m.CSTAErrorCode(category="security", value="securityViolation"), invoke_id)
    assert switch.closing and switch.drain_events() == []
    assert "refused the CSTA session" in caplog.text and "s3cret" not in caplog.text
    switch.connection_lost("closed", 0.5)
    assert not switch.closing and switch.link_wanted  # the adapter tries again


def test_link_loss_keeps_calls_refuses_waiting_requests_and_comes_back_with_a_resync() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    pbx.delivered("11", PORT)
    pbx.established("11", PORT)
    [ringing, _] = switch.drain_events()
    assert isinstance(ringing, EventRinging)
    conn = ringing.conn_id
    switch.request(
        TAttachUserData(reference_id=5, conn_id=conn, dn=PORT, user_data=(KvPair("k", "v"),))
    )
    switch.request(TReleaseCall(reference_id=6, conn_id=conn, dn=PORT))
    switch.drain_events()
    pbx.sent()
    switch.connection_lost("connection reset by peer", 2.0)
    down, refused = switch.drain_events()
    assert down == DOWN
    assert isinstance(refused, EventError) and refused.reference_id == 6
    assert refused.error_code == TErrorCode.TERR_NO_SWITCH
    assert switch.view.call(conn) is not None  # G13: the call is kept
    # while down: call control and agents refused with the link-down code ...
    switch.request(TReleaseCall(reference_id=7, conn_id=conn, dn=PORT))
    switch.request(TAgentLogin(reference_id=8, dn=AGENT_DN, queue=QUEUE, agent_id="a1"))
    codes = [(e.reference_id, e.error_code) for e in switch.drain_events()]  # type: ignore[attr-defined]
    assert codes == [(7, TErrorCode.TERR_NO_SWITCH), (8, TErrorCode.TERR_NO_SWITCH)]
    # ... user data and the routing dialog on a VRP keep working (G1, G17)
    switch.request(
        TAttachUserData(reference_id=9, conn_id=conn, dn=PORT, user_data=(KvPair("k2", "w"),))
    )
    switch.request(TRouteRequest(reference_id=10, conn_id=conn, dn=PORT, route_dn=VRP))
    switch.request(TRouteCall(reference_id=11, conn_id=conn, dn=VRP, dest=AGENT_DN))
    events = switch.drain_events()
    assert [type(e) for e in events] == [
        EventAttachedDataChanged,
        EventRouteRequest,
        RequestRouteCall,
        EventRouteUsed,
    ]
    call = switch.view.call(conn)
    assert call is not None and call.parties == (PORT,)  # routed, but it stays at the port
    # back: call 11 still there (kept), call 12 new and answered, nothing else
    events = bring_up(
        switch,
        pbx,
        open_link=False,
        snapshots={PORT: [("11", "connected")], PORT2: [("12", "connected")]},
    )
    assert [(type(e).__name__, getattr(e, "dn", None)) for e in events] == [
        ("EventRinging", PORT2),
        ("EventEstablished", PORT2),
        ("EventLinkConnected", None),
    ]
    kept = switch.view.call(conn)
    assert kept is not None and kept.user_data == (KvPair("k", "v"), KvPair("k2", "w"))


def test_resync_releases_calls_the_pbx_no_longer_has(caplog: pytest.LogCaptureFixture) -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    pbx.delivered("21", PORT)
    pbx.delivered("22", PORT2)
    [gone, kept] = switch.drain_events()
    switch.connection_lost("timeout", 1.0)
    switch.drain_events()
    with caplog.at_level(logging.INFO, "ivr_server.switch.premise"):
        events = bring_up(
            switch,
            pbx,
            open_link=False,
            snapshots={PORT2: [("22", "alerting"), ("23", "alerting")]},
        )
    assert [(type(e).__name__, getattr(e, "conn_id", None)) for e in events[:2]] == [
        ("EventReleased", gone.conn_id),  # type: ignore[attr-defined]
        ("EventRinging", f"{0x12:016x}"),
    ]
    assert events[0].reference_id is None and len(events) == 3
    assert "1 calls kept, 1 released, 1 new" in caplog.text
    assert switch.view.call(kept.conn_id) is not None  # type: ignore[attr-defined]


def test_a_call_reported_while_its_snapshot_is_awaited_is_not_released() -> None:
    switch, pbx = new_switch()
    switch.request(TOpenLink(reference_id=0))
    switch.connection_made(0.0)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.StartApplicationSessionPosResponse(session_id="S1"), invoke_id)
    for invoke_id, request in pbx.sent():
        pbx.send(m.MonitorStartResponse(monitor_cross_ref_id=xref(request.device)), invoke_id)  # type: ignore[attr-defined]
    snapshots = pbx.sent()
    pbx.delivered("31", PORT)  # after the PBX took the snapshot, before its answer came
    for invoke_id, _ in snapshots:
        pbx.send(m.SnapshotDeviceResponse(), invoke_id)
    assert [type(e) for e in switch.drain_events()] == [EventRinging, EventLinkConnected]


def test_a_missing_snapshot_keeps_the_dns_calls() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    pbx.delivered("41", PORT)
    switch.drain_events()
    switch.connection_lost("reset", 1.0)
    switch.drain_events()
    switch.connection_made(2.0)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.StartApplicationSessionPosResponse(session_id="S2"), invoke_id)
    for invoke_id, request in pbx.sent():
        pbx.send(m.MonitorStartResponse(monitor_cross_ref_id=xref(request.device)), invoke_id)  # type: ignore[attr-defined]
    for invoke_id, request in pbx.sent():
        if request.snapshot_object == PORT:  # type: ignore[attr-defined]
            pbx.send(m.CSTAErrorCode(category="operation", value="generic"), invoke_id)
        else:
            pbx.send(m.SnapshotDeviceResponse(), invoke_id)
    assert switch.drain_events() == [UP]
    assert len(list(switch.view.calls())) == 1


def test_close_link_stops_the_session_and_closes() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    switch.request(TCloseLink(reference_id=0))
    assert switch.drain_events() == [DOWN]
    assert not switch.link_wanted and switch.closing
    [(_, stop)] = pbx.sent()
    assert isinstance(stop, m.StopApplicationSession) and stop.session_id == "S1"
    switch.connection_lost("closed", 1.0)
    assert switch.drain_events() == []  # reported once


def test_a_pbx_that_stops_the_session_takes_the_link_down() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    pbx.send(m.StopApplicationSession(session_id="S1"), 5)
    assert switch.drain_events() == [DOWN] and switch.closing
    [(invoke_id, answer)] = pbx.sent()
    assert invoke_id == 5 and isinstance(answer, m.StopApplicationSessionPosResponse)


def test_the_heartbeat_is_the_sessions_timer() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    assert switch.next_deadline() == 60.0
    switch.handle_timer(60.0)
    [(_, reset)] = pbx.sent()
    assert isinstance(reset, m.ResetApplicationSessionTimer)
    assert switch.drain_events() == []


def test_unsupported_requests_are_refused_the_pbx_owns_its_network() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    for req in (
        TInboundCall(reference_id=1, dn=PORT),
        TAnswerCall(reference_id=2, dn=PORT, conn_id="0" * 16),
        TOutboundCall(reference_id=3, dn=PORT, dest="555"),
        TCallerHangUp(reference_id=4, conn_id="0" * 16),
        TSetInService(reference_id=5, dn=PORT, in_service=False),
    ):
        switch.request(req)
        [error] = switch.drain_events()
        assert isinstance(error, EventError) and error.error_code == TErrorCode.TERR_UNSUP_OPER
        assert "PBX owns its network" in error.error_message
    assert pbx.sent() == []


def test_register_and_unregister_are_monitor_start_and_stop() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    switch.request(TUnregisterAddress(reference_id=3, dn=PORT2))
    assert switch.drain_events() == []
    [(invoke_id, stop)] = pbx.sent()
    assert stop == m.MonitorStop(monitor_cross_ref_id=xref(PORT2))
    pbx.send(m.MonitorStopResponse(), invoke_id)
    assert switch.drain_events() == [EventUnregistered(switch=SWITCH, reference_id=3, dn=PORT2)]
    pbx.delivered("51", PORT2)  # its monitor is gone
    assert switch.drain_events() == []
    switch.request(TRegisterAddress(reference_id=4, dn=PORT2))
    [(invoke_id, start)] = pbx.sent()
    assert isinstance(start, m.MonitorStart) and start.device == PORT2
    pbx.send(m.MonitorStartResponse(monitor_cross_ref_id="y"), invoke_id)
    assert switch.drain_events() == [EventRegistered(switch=SWITCH, reference_id=4, dn=PORT2)]
    # routing points are ours: answered here, nothing to the PBX
    switch.request(TUnregisterAddress(reference_id=5, dn=RP))
    switch.request(TRegisterAddress(reference_id=6, dn=RP))
    assert [type(e) for e in switch.drain_events()] == [EventUnregistered, EventRegistered]
    assert pbx.sent() == []


def test_a_refused_monitor_start_fails_the_registration() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    switch.request(TUnregisterAddress(reference_id=3, dn=PORT2))
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.MonitorStopResponse(), invoke_id)
    switch.drain_events()
    switch.request(TRegisterAddress(reference_id=4, dn=PORT2))
    [(invoke_id, _)] = pbx.sent()
    pbx.send(
        m.CSTAErrorCode(
            category="subscribedResourceAvailability", value="objectMonitorLimitExceeded"
        ),
        invoke_id,
    )
    [error] = switch.drain_events()
    assert isinstance(error, EventError) and error.reference_id == 4
    assert error.error_code == TErrorCode.TERR_TOO_MANY_REQ
    assert "objectMonitorLimitExceeded" in error.error_message


def test_a_reload_monitors_added_dns_and_stops_removed_ones() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    dns = (*tuple(d for d in DNS if d[0] != PORT2), ("3003", DNS[0][1]))
    switch.request(TConfigureAddresses(reference_id=0, dns=dns))
    events = switch.drain_events()
    assert (type(events[0]), events[0].dn) == (EventUnregistered, PORT2)  # type: ignore[attr-defined]
    assert (type(events[-1]), events[-1].dn) == (EventRegistered, "3003")  # type: ignore[attr-defined]
    sent = pbx.sent()
    assert [type(r) for _, r in sent] == [m.MonitorStop, m.MonitorStart]
    assert sent[0][1] == m.MonitorStop(monitor_cross_ref_id=xref(PORT2))
    pbx.send(m.MonitorStopResponse(), sent[0][0])
    pbx.send(m.CSTAErrorCode(category="operation", value="objectNotKnown"), sent[1][0])
    assert switch.drain_events() == [EventDNOutOfService(switch=SWITCH, dn="3003")]


def test_an_event_on_an_unknown_monitor_is_ignored() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    pbx.send(
        m.DeliveredEvent(
            monitor_cross_ref_id="nobody",
            connection=m.ConnectionID(call_id="1", device_id=PORT),
            alerting_device=PORT,
            calling_device=CALLER,
        )
    )
    assert switch.drain_events() == []


def test_a_bad_document_in_a_good_frame_keeps_the_link(caplog: pytest.LogCaptureFixture) -> None:
    from ivr_server.switch.csta.framing import encode_frame

    switch, pbx = new_switch()
    bring_up(switch, pbx)
    with caplog.at_level(logging.WARNING, "ivr_server.switch.premise"):
        pbx.raw(encode_frame(9999, b"<DeliveredEvent><monitorCrossRefID>"))
        pbx.raw(encode_frame(9999, b'<!DOCTYPE x [<!ENTITY e "e">]><x>&e;</x>'))
    assert switch.drain_events() == [] and switch.view.link_up and not switch.closing
    assert "bad CSTA from the PBX" in caplog.text


def test_a_broken_frame_header_takes_the_link_down() -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    pbx.raw(b"\x00\x00\xff\xffgarbage")
    assert switch.drain_events() == [DOWN] and switch.closing


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=8))
def test_garbage_from_the_pbx_never_raises(chunks: list[bytes]) -> None:
    switch, pbx = new_switch()
    bring_up(switch, pbx)
    for chunk in chunks:
        pbx.raw(chunk)
    switch.handle_timer(1000.0)
    switch.drain_events()
    switch.data_to_send()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=64), min_size=1, max_size=8))
def test_garbage_during_the_links_start_never_raises(chunks: list[bytes]) -> None:
    switch = PremiseSwitch(SWITCH, TSERVER, DNS, SETTINGS)
    pbx = Pbx(switch)
    switch.request(TOpenLink(reference_id=0))
    switch.connection_made(0.0)
    for chunk in chunks:
        pbx.raw(chunk)
    switch.handle_timer(1000.0)
    switch.drain_events()


def test_unanswered_monitors_and_snapshots_do_not_hold_the_link_down() -> None:
    switch, pbx = new_switch()
    switch.request(TOpenLink(reference_id=0))
    switch.connection_made(0.0)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.StartApplicationSessionPosResponse(session_id="S1"), invoke_id)
    for invoke_id, request in pbx.sent():
        if request.device != PORT:  # type: ignore[attr-defined]
            pbx.send(m.MonitorStartResponse(monitor_cross_ref_id=xref(request.device)), invoke_id)  # type: ignore[attr-defined]
    assert switch.next_deadline() == 10.0  # the invoke timeout
    switch.handle_timer(10.0)
    assert switch.drain_events() == [EventDNOutOfService(switch=SWITCH, dn=PORT)]
    snapshots = pbx.sent()
    assert len(snapshots) == len(MONITORED) - 1
    pbx.now = 11.0
    for invoke_id, _ in snapshots[1:]:
        pbx.send(m.SnapshotDeviceResponse(), invoke_id)
    switch.handle_timer(20.0)  # the first snapshot never comes
    assert switch.drain_events() == [UP]


def test_close_link_while_the_link_comes_up() -> None:
    switch, pbx = new_switch()
    switch.request(TOpenLink(reference_id=0))
    switch.connection_made(0.0)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.StartApplicationSessionPosResponse(session_id="S1"), invoke_id)
    switch.request(TCloseLink(reference_id=0))
    assert switch.closing and not switch.link_wanted
    sent = pbx.sent()
    assert isinstance(sent[-1][1], m.StopApplicationSession)
    for invoke_id, request in sent[:-1]:
        pbx.send(m.MonitorStartResponse(monitor_cross_ref_id=xref(request.device)), invoke_id)  # type: ignore[attr-defined]
    switch.connection_lost("closed", 1.0)
    assert switch.drain_events() == [] and not switch.view.link_up
    switch.connection_made(2.0)  # the adapter raced: the link is not wanted
    assert switch.closing and pbx.sent() == []
