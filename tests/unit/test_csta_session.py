"""The CSTA application session: start, refusal, heartbeat, invoke timeouts, monitors, events."""

from __future__ import annotations

import pytest

from ivr_server.errors import LocalProtocolError
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import CSTA_NAMESPACES, decode, encode
from ivr_server.switch.csta.dialects import DIALECTS
from ivr_server.switch.csta.events import (
    DocumentIgnored,
    EventReceived,
    InvokeTimedOut,
    ProtocolError,
    RequestFailed,
    ResponseReceived,
    SessionLost,
    SessionRefused,
    SessionStarted,
    SystemStatusReceived,
)
from ivr_server.switch.csta.framing import FrameDecoder, encode_frame
from ivr_server.switch.csta.session import CstaSession, SessionState


class Pbx:
    """The PBX side of the test: reads what the session sent, answers with frames."""

    def __init__(self, session: CstaSession) -> None:
        self.session = session
        self.decoder = FrameDecoder()

    def sent(self) -> list[tuple[int, m.CstaMessage]]:
        return [
            (f.invoke_id, decode(f.body)) for f in self.decoder.feed(self.session.data_to_send())
        ]

    def answer(self, invoke_id: int, message: m.CstaMessage, now: float = 0.0) -> list[object]:
        frame = encode_frame(invoke_id, encode(message))
        return list(self.session.receive_data(frame, now))


def started(duration: int | None = 180, **kwargs: object) -> tuple[CstaSession, Pbx]:
    session = CstaSession(application_id="ivr-server", **kwargs)  # type: ignore[arg-type]
    pbx = Pbx(session)
    session.connect(0.0)
    [(invoke_id, start)] = pbx.sent()
    assert isinstance(start, m.StartApplicationSession)
    events = pbx.answer(
        invoke_id,
        m.StartApplicationSessionPosResponse(session_id="S1", actual_session_duration=duration),
    )
    assert events == [
        SessionStarted(session_id="S1", protocol_version=None, session_duration_s=duration)
    ]
    return session, pbx


def test_start_sends_the_dialects_session_parameters() -> None:
    session = CstaSession(
        application_id="ivr", dialect=DIALECTS["avaya-dmcc"], user_name="u", password="p"
    )
    session.connect(0.0)
    [(invoke_id, start)] = Pbx(session).sent()
    assert invoke_id == 1
    assert start == m.StartApplicationSession(
        application_id="ivr",
        user_name="u",
        password="p",
        requested_protocol_versions=(CSTA_NAMESPACES["ed3"],),
        requested_session_duration=180,
    )
    assert session.state is SessionState.STARTING
    with pytest.raises(LocalProtocolError, match="not active"):
        session.monitor_start("3001", 0.0)


def test_connecting_twice_is_our_error() -> None:
    session, _ = started()
    assert session.session_id == "S1"
    with pytest.raises(LocalProtocolError, match="cannot go from active to starting"):
        session.connect(1.0)


def test_a_monitor_stopped_by_cross_ref_id_alone() -> None:
    session, pbx = started()
    pbx.answer(
        session.monitor_start("3001", 1.0), m.MonitorStartResponse(monitor_cross_ref_id="X1")
    )
    invoke_id = session.send_request(m.MonitorStop(monitor_cross_ref_id="X1"), 2.0)
    pbx.answer(invoke_id, m.MonitorStopResponse())
    delivered = m.HeldEvent(monitor_cross_ref_id="X1", held_connection=m.ConnectionID())
    assert pbx.answer(9999, delivered) == [EventReceived(dn=None, event=delivered)]


def test_generic_dialect_keeps_credentials_out_of_the_session_start() -> None:
    session = CstaSession(application_id="ivr", user_name="u", password="p")
    session.connect(0.0)
    [(_, start)] = Pbx(session).sent()
    assert isinstance(start, m.StartApplicationSession)
    assert start.user_name is None


def test_session_refused() -> None:
    session = CstaSession(application_id="ivr")
    pbx = Pbx(session)
    session.connect(0.0)
    [(invoke_id, _)] = pbx.sent()
    refusal = m.StartApplicationSessionNegResponse(defined_error="invalidApplicationInfo")
    assert pbx.answer(invoke_id, refusal) == [SessionRefused(error="invalidApplicationInfo")]
    assert session.state is SessionState.CLOSED
    assert session.receive_data(b"anything", 1.0) == []


def test_session_refused_with_a_csta_error() -> None:
    session = CstaSession(application_id="ivr")
    pbx = Pbx(session)
    session.connect(0.0)
    [(invoke_id, _)] = pbx.sent()
    error = m.CSTAErrorCode(category="security", value="requestIncompatibleWithObject")
    assert pbx.answer(invoke_id, error) == [
        SessionRefused(error="security: requestIncompatibleWithObject")
    ]


def test_no_answer_to_the_session_start_loses_the_session() -> None:
    session = CstaSession(application_id="ivr", invoke_timeout_s=5.0)
    session.connect(0.0)
    assert session.next_deadline() == 5.0
    assert session.handle_timer(4.9) == []
    assert session.handle_timer(5.0) == [SessionLost(reason="no answer to StartApplicationSession")]


def test_heartbeat_within_the_negotiated_duration() -> None:
    session, pbx = started(duration=60)
    assert session.next_deadline() == 30.0
    assert session.handle_timer(30.0) == []
    [(invoke_id, reset)] = pbx.sent()
    assert reset == m.ResetApplicationSessionTimer(session_id="S1", requested_session_duration=60)
    assert (
        pbx.answer(
            invoke_id, m.ResetApplicationSessionTimerPosResponse(actual_session_duration=40), 31.0
        )
        == []
    )
    assert session.next_deadline() == 51.0  # the new duration's half, from the answer


def test_configured_heartbeat_capped_at_half_the_duration() -> None:
    session, pbx = started(duration=60, heartbeat_s=20.0)
    assert session.next_deadline() == 20.0
    session.handle_timer(20.0)
    [(invoke_id, _)] = pbx.sent()
    pbx.answer(
        invoke_id, m.ResetApplicationSessionTimerPosResponse(actual_session_duration=10), 21.0
    )
    assert session.next_deadline() == 26.0


def test_unanswered_heartbeat_expires_the_session() -> None:
    session, pbx = started(duration=60)
    session.handle_timer(30.0)
    pbx.sent()
    assert session.handle_timer(40.0) == []  # the reset's own timeout: no report
    assert session.handle_timer(60.0) == [
        SessionLost(reason="the session expired: no heartbeat answered")
    ]
    assert session.state is SessionState.CLOSED
    assert session.next_deadline() is None


def test_refused_heartbeat_loses_the_session() -> None:
    session, pbx = started(duration=60)
    session.handle_timer(30.0)
    [(invoke_id, _)] = pbx.sent()
    events = pbx.answer(
        invoke_id, m.ResetApplicationSessionTimerNegResponse(defined_error="invalidSessionID")
    )
    assert events == [SessionLost(reason="the PBX refused the session heartbeat")]


def test_no_duration_means_no_heartbeat() -> None:
    session, _ = started(duration=None, session_duration_s=0)
    assert session.next_deadline() is None


def test_monitor_start_per_dn_and_events_routed_by_cross_ref_id() -> None:
    session, pbx = started()
    session.monitor_start("3001", 1.0)
    session.monitor_start("3002", 1.0)
    (id1, start1), (id2, _start2) = pbx.sent()
    assert start1 == m.MonitorStart(device="3001", monitor_type="device")
    assert (id1, id2) == (2, 3)
    [response] = pbx.answer(id1, m.MonitorStartResponse(monitor_cross_ref_id="X1"))
    assert response == ResponseReceived(
        invoke_id=id1,
        request=start1,
        response=m.MonitorStartResponse(monitor_cross_ref_id="X1"),
        dn="3001",
    )
    pbx.answer(id2, m.MonitorStartResponse(monitor_cross_ref_id="X2"))
    assert session.monitor_of("3002") == "X2"
    delivered = m.DeliveredEvent(
        monitor_cross_ref_id="X2",
        connection=m.ConnectionID(call_id="C1", device_id="3002"),
        alerting_device="3002",
        calling_device="5551234",
    )
    assert pbx.answer(9999, delivered) == [EventReceived(dn="3002", event=delivered)]
    stray = m.CallClearedEvent(monitor_cross_ref_id="X9", cleared_call=m.ConnectionID(call_id="C1"))
    assert pbx.answer(9999, stray) == [EventReceived(dn=None, event=stray)]
    session.monitor_stop("3002", 2.0)
    [(id3, stop)] = pbx.sent()
    assert stop == m.MonitorStop(monitor_cross_ref_id="X2")
    pbx.answer(id3, m.MonitorStopResponse())
    assert session.monitor_of("3002") is None
    assert pbx.answer(9999, delivered) == [EventReceived(dn=None, event=delivered)]
    with pytest.raises(LocalProtocolError, match="not monitored"):
        session.monitor_stop("3002", 3.0)


def test_snapshot_device_response_matched_to_its_dn() -> None:
    session, pbx = started()
    session.snapshot_device("3001", 1.0)
    [(invoke_id, request)] = pbx.sent()
    snapshot = m.SnapshotDeviceResponse(
        calls=(
            m.SnapshotDeviceInfo(
                connection=m.ConnectionID(call_id="C1", device_id="3001"),
                local_connection_state="alerting",
            ),
        )
    )
    [event] = pbx.answer(invoke_id, snapshot)
    assert isinstance(request, m.SnapshotDevice)
    assert event == ResponseReceived(
        invoke_id=invoke_id, request=request, response=snapshot, dn="3001"
    )


def test_negative_response_keeps_the_csta_error() -> None:
    session, pbx = started()
    request = m.SingleStepTransferCall(
        active_call=m.ConnectionID(call_id="C1", device_id="3001"), transferred_to="3081"
    )
    invoke_id = session.send_request(request, 1.0, dn="3001")
    pbx.sent()
    error = m.CSTAErrorCode(category="operation", value="invalidDestination")
    assert pbx.answer(invoke_id, error) == [
        RequestFailed(invoke_id=invoke_id, request=request, error=error, dn="3001")
    ]
    assert session.pending() == 0


def test_invoke_timeout() -> None:
    session, pbx = started(duration=600, invoke_timeout_s=5.0)
    request = m.ClearConnection(
        connection_to_be_cleared=m.ConnectionID(call_id="C1", device_id="3001")
    )
    invoke_id = session.send_request(request, 10.0, dn="3001")
    assert session.next_deadline() == 15.0
    assert session.handle_timer(15.0) == [
        InvokeTimedOut(invoke_id=invoke_id, request=request, dn="3001")
    ]
    late = pbx.answer(invoke_id, m.ClearConnectionResponse())
    assert late == [
        ProtocolError(
            reason="ClearConnectionResponse answers no pending invoke", invoke_id=invoke_id
        )
    ]


def test_wrong_response_type_is_a_protocol_error_and_the_invoke_stays() -> None:
    session, pbx = started()
    invoke_id = session.snapshot_device("3001", 1.0)
    events = pbx.answer(invoke_id, m.MakeCallResponse(calling_device=m.ConnectionID()))
    assert events == [
        ProtocolError(reason="MakeCallResponse does not answer SnapshotDevice", invoke_id=invoke_id)
    ]
    assert session.pending() == 1


def test_invoke_ids_wrap_and_skip_pending_and_event_ids() -> None:
    session, pbx = started(dialect=DIALECTS["openscape"])
    session._next_invoke_id = 9998  # the allocator's cursor, moved to test the wrap
    ids = [session.snapshot_device("3001", 1.0) for _ in range(3)]
    assert ids == [9998, 1, 2]  # 9999 is the PBX's event id
    pbx.answer(1, m.SnapshotDeviceResponse())
    session._next_invoke_id = 9998
    assert session.snapshot_device("3001", 1.0) == 1  # 9998 and 2 pending, 9999 reserved


def test_all_invoke_ids_pending_is_our_error() -> None:
    session, _ = started()
    for _ in range(9999):  # the generic dialect reserves none
        session.snapshot_device("3001", 1.0)
    with pytest.raises(LocalProtocolError, match="no free CSTA invoke id"):
        session.snapshot_device("3001", 1.0)


def test_system_status_from_the_pbx_is_answered() -> None:
    _session, pbx = started()
    assert pbx.answer(42, m.SystemStatus(system_status="normal")) == [
        SystemStatusReceived(status="normal")
    ]
    assert pbx.sent() == [(42, m.SystemStatusResponse())]


def test_pbx_stops_the_session() -> None:
    _session, pbx = started()
    events = pbx.answer(7, m.StopApplicationSession(session_id="S1"))
    assert events == [SessionLost(reason="the PBX stopped the application session")]
    assert pbx.sent() == [(7, m.StopApplicationSessionPosResponse())]


def test_we_stop_the_session() -> None:
    session, pbx = started()
    invoke_id = session.stop(1.0)
    assert session.state is SessionState.STOPPING
    pbx.sent()
    assert pbx.answer(invoke_id, m.StopApplicationSessionPosResponse()) == [
        SessionLost(reason="application session stopped")
    ]


def test_link_lost() -> None:
    session, _ = started()
    session.snapshot_device("3001", 1.0)
    assert session.receive_data(b"", 2.0) == [SessionLost(reason="the PBX closed the link")]
    assert session.state is SessionState.CLOSED
    assert session.pending() == 0
    assert session.handle_timer(100.0) == []


def test_bad_frame_header_breaks_the_link() -> None:
    session, _ = started()
    events = session.receive_data(b"\x01\x02\x03\x04\x05\x06\x07\x08", 1.0)
    assert isinstance(events[0], ProtocolError) and events[0].fatal
    assert isinstance(events[1], SessionLost)
    assert session.state is SessionState.CLOSED


def test_frames_before_a_bad_header_in_the_same_read_are_handled_first() -> None:
    session, _ = started()
    good = encode_frame(9999, b"<CallInformationEvent/>")
    events = session.receive_data(good + b"\x01\x02\x03\x04\x05\x06\x07\x08", 1.0)
    assert events[0] == DocumentIgnored(invoke_id=9999, tag="CallInformationEvent")
    assert isinstance(events[1], ProtocolError) and events[1].fatal
    assert isinstance(events[2], SessionLost)
    assert session.state is SessionState.CLOSED


def test_bad_document_in_a_good_frame_keeps_the_link() -> None:
    session, pbx = started()
    events = session.receive_data(encode_frame(9999, b"<DeliveredEvent><oops"), 1.0)
    assert len(events) == 1 and isinstance(events[0], ProtocolError) and not events[0].fatal
    assert session.state is SessionState.ACTIVE
    unknown = session.receive_data(encode_frame(9999, b"<CallInformationEvent/>"), 1.0)
    assert unknown == [DocumentIgnored(invoke_id=9999, tag="CallInformationEvent")]
    odd = pbx.answer(5, m.MakeCall(calling_device="1", called_directory_number="2"))
    assert odd == [ProtocolError(reason="unexpected MakeCall", invoke_id=5)]


def test_several_frames_in_one_read_and_frames_split_across_reads() -> None:
    session, _ = started()
    event = m.HeldEvent(monitor_cross_ref_id="X", held_connection=m.ConnectionID(call_id="1"))
    stream = encode_frame(9999, encode(event)) * 2
    assert session.receive_data(stream[:10], 1.0) == []
    assert session.receive_data(stream[10:], 1.0) == [EventReceived(dn=None, event=event)] * 2
