"""The PBX side of a CSTA application session: our own client session against it byte for byte,
golden requests written by others fed to it, and bad input."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import CSTA_NAMESPACES, decode, encode
from ivr_server.switch.csta.dialects import DIALECTS
from ivr_server.switch.csta.events import (
    DocumentIgnored,
    EventReceived,
    RequestFailed,
    ResponseReceived,
    SessionEvent,
    SessionLost,
    SessionRefused,
    SessionStarted,
)
from ivr_server.switch.csta.framing import FrameDecoder, encode_frame
from ivr_server.switch.csta.server import (
    EVENT_INVOKE_ID,
    ApplicationSessionEnded,
    ApplicationSessionStarted,
    CstaServerSession,
    MonitorStarted,
    MonitorStopped,
    Refusal,
    Refusals,
    RequestReceived,
    RequestRefused,
    ServerEvent,
    ServerProtocolError,
    ServerState,
    csta_error,
)
from ivr_server.switch.csta.session import CstaSession, SessionState

GOLDEN = Path(__file__).parent / "csta_golden"
DEVICES = frozenset({"3001", "3002", "12313213"})
DELIVERED = m.DeliveredEvent(
    monitor_cross_ref_id="",
    connection=m.ConnectionID(call_id="7", device_id="3001"),
    alerting_device="3001",
    calling_device="5551234",
    called_device="8000",
    last_redirection_device="3085",
    local_connection_info="alerting",
    cause="distributed",
)


class Link:
    """Our client session and a server session joined by an in-memory link."""

    def __init__(self, client: CstaSession | None = None, **server: object) -> None:
        self.client = client or CstaSession(application_id="ivr-server")
        options: dict[str, object] = {"device_known": DEVICES.__contains__, **server}
        self.server = CstaServerSession(session_id="S1", **options)  # type: ignore[arg-type]
        self.server_events: list[ServerEvent] = []

    def pump(self, now: float = 0.0) -> list[SessionEvent]:
        """Shuttle bytes both ways until both sides are quiet; the client's events."""
        events: list[SessionEvent] = []
        while True:
            up = self.client.data_to_send()
            if up:
                self.server_events += self.server.receive_data(up, now)
            down = self.server.data_to_send()
            if down:
                events += self.client.receive_data(down, now)
            if not up and not down:
                return events

    def start(self, now: float = 0.0) -> list[SessionEvent]:
        self.client.connect(now)
        return self.pump(now)


def started(**server: object) -> Link:
    link = Link(None, **server)
    [event] = link.start()
    assert isinstance(event, SessionStarted)
    return link


def server_reply(
    server: CstaServerSession, document: bytes, invoke_id: int = 5
) -> tuple[list[ServerEvent], list[tuple[int, m.CstaMessage]]]:
    """Feed one document in a frame; the server's facts and the frames it wrote."""
    events = server.receive_data(encode_frame(invoke_id, document), 0.0)
    frames = FrameDecoder().feed(server.data_to_send())
    return events, [(f.invoke_id, decode(f.body)) for f in frames]


def test_start_is_accepted_with_the_granted_duration_and_version() -> None:
    link = Link(max_duration_s=120)
    assert link.start(10.0) == [
        SessionStarted(
            session_id="S1", protocol_version=CSTA_NAMESPACES["ed3"], session_duration_s=120
        )
    ]
    assert link.server_events == [
        ApplicationSessionStarted(session_id="S1", application_id="ivr-server", duration_s=120)
    ]
    assert link.server.state is ServerState.ACTIVE
    assert link.server.next_deadline() == 130.0


def test_a_wrong_application_id_or_password_is_refused() -> None:
    link = Link(application_id="other")
    assert link.start() == [SessionRefused(error="invalidApplicationInfo")]
    assert link.server.state is ServerState.AWAITING_START
    client = CstaSession(
        application_id="ivr-server",
        dialect=DIALECTS["avaya-dmcc"],
        user_name="ivr",
        password="wrong",
    )
    link = Link(client, user_name="ivr", password="secret")
    assert link.start() == [SessionRefused(error="invalidApplicationInfo")]
    client = CstaSession(
        application_id="ivr-server", dialect=DIALECTS["avaya-dmcc"], user_name="ivr", password="s"
    )
    link = Link(client, user_name="ivr", password="s")
    assert isinstance(link.start()[0], SessionStarted)


def test_a_second_start_or_an_unknown_protocol_version_is_refused() -> None:
    link = started()
    _, frames = server_reply(link.server, encode(m.StartApplicationSession(application_id="x")), 8)
    assert frames == [
        (8, m.StartApplicationSessionNegResponse(defined_error="invalidApplicationInfo"))
    ]
    server = CstaServerSession(session_id="S2", device_known=DEVICES.__contains__)
    request = m.StartApplicationSession(
        application_id="x", requested_protocol_versions=("urn:nothing",)
    )
    _, frames = server_reply(server, encode(request))
    assert frames == [
        (5, m.StartApplicationSessionNegResponse(defined_error="nonSupportedProtocolVersion"))
    ]
    assert server.state is ServerState.AWAITING_START


def test_a_request_before_the_session_starts_is_refused() -> None:
    server = CstaServerSession(session_id="S1", device_known=DEVICES.__contains__)
    events, frames = server_reply(server, encode(m.MonitorStart(device="3001")))
    assert frames == [(5, m.CSTAErrorCode(category="operation", value="securityViolation"))]
    assert isinstance(events[0], ServerProtocolError)
    assert server.monitors == {}


def test_monitors_get_cross_reference_ids_and_the_events_of_their_device() -> None:
    link = started()
    link.client.monitor_start("3001", 0.0)
    link.client.monitor_start("3001", 0.0)
    link.client.monitor_start("3002", 0.0)
    events = link.pump()
    assert [e.response for e in events if isinstance(e, ResponseReceived)] == [
        m.MonitorStartResponse(monitor_cross_ref_id=x) for x in ("1", "2", "3")
    ]
    assert [e for e in link.server_events if isinstance(e, MonitorStarted)] == [
        MonitorStarted(dn="3001", cross_ref_id="1"),
        MonitorStarted(dn="3001", cross_ref_id="2"),
        MonitorStarted(dn="3002", cross_ref_id="3"),
    ]
    assert link.server.send_event("3001", DELIVERED) == 2
    assert link.server.send_event("3003", DELIVERED) == 0
    frames = FrameDecoder().feed(link.server.data_to_send())
    assert {f.invoke_id for f in frames} == {EVENT_INVOKE_ID}
    received = [decode(f.body) for f in frames]
    assert [e.monitor_cross_ref_id for e in received if isinstance(e, m.CstaEvent)] == ["1", "2"]
    events = link.client.receive_data(b"".join(encode_frame(9999, encode(e)) for e in received), 0)
    assert [e.dn for e in events if isinstance(e, EventReceived)] == ["3001", "3001"]


def test_monitor_start_on_an_unknown_device_and_stop_of_an_unknown_monitor_fail() -> None:
    link = started()
    link.client.monitor_start("9999", 0.0)
    [failed] = link.pump()
    assert isinstance(failed, RequestFailed)
    assert failed.error == m.CSTAErrorCode(category="operation", value="invalidDeviceID")
    _, frames = server_reply(link.server, encode(m.MonitorStop(monitor_cross_ref_id="77")))
    assert frames == [(5, m.CSTAErrorCode(category="operation", value="invalidMonitorCrossRefID"))]


def test_monitor_stop_ends_the_events() -> None:
    link = started()
    link.client.monitor_start("3001", 0.0)
    link.pump()
    link.client.monitor_stop("3001", 0.0)
    [stopped] = link.pump()
    assert isinstance(stopped, ResponseReceived)
    assert stopped.response == m.MonitorStopResponse()
    assert MonitorStopped(dn="3001", cross_ref_id="1") in link.server_events
    assert link.server.send_event("3001", DELIVERED) == 0


def test_the_heartbeat_keeps_the_session_and_its_absence_expires_it() -> None:
    link = started(max_duration_s=60)
    assert link.client.handle_timer(30.0) == []  # the heartbeat goes out at half the duration
    assert link.pump(30.0) == []
    assert link.server.next_deadline() == 90.0
    assert link.server.handle_timer(89.0) == []
    assert link.server.handle_timer(90.0) == [
        ApplicationSessionEnded(reason="the session expired: no heartbeat")
    ]
    assert link.server.closing
    assert link.server.send_event("3001", DELIVERED) == 0


def test_a_heartbeat_for_another_session_is_refused() -> None:
    link = started()
    request = m.ResetApplicationSessionTimer(session_id="other", requested_session_duration=60)
    _, frames = server_reply(link.server, encode(request))
    assert frames == [
        (5, m.ResetApplicationSessionTimerNegResponse(defined_error="invalidSessionID"))
    ]


def test_stop_and_system_status_are_answered() -> None:
    link = started()
    events, frames = server_reply(link.server, encode(m.SystemStatus(system_status="normal")))
    assert frames == [(5, m.SystemStatusResponse())] and events == []
    link.client.stop(0.0)
    assert link.pump() == [SessionLost(reason="application session stopped")]
    assert link.server.closing
    assert link.server_events[-1] == ApplicationSessionEnded(
        reason="the application stopped the session"
    )


def test_other_requests_are_handed_up_and_answered_now_or_later() -> None:
    link = started()
    link.client.snapshot_device("3001", 0.0)
    link.client.send_request(m.MakeCall(calling_device="3001", called_directory_number="8000"), 0.0)
    assert link.pump() == []
    handed = [e for e in link.server_events if isinstance(e, RequestReceived)]
    assert [type(e.request) for e in handed] == [m.SnapshotDevice, m.MakeCall]
    link.server.respond(handed[0].invoke_id, m.SnapshotDeviceResponse())
    error = m.CSTAErrorCode(category="operation", value="invalidDestination")
    link.server.refuse(handed[1].invoke_id, error, at=4.5)
    [answered] = link.pump(0.0)
    assert isinstance(answered, ResponseReceived)
    assert link.server.next_deadline() == 4.5
    link.server.handle_timer(4.4)
    assert link.pump(4.4) == []
    link.server.handle_timer(4.5)
    [failed] = link.pump(4.5)
    assert isinstance(failed, RequestFailed) and failed.error == error


def test_refusal_rules_refuse_any_request_kind_after_their_delay() -> None:
    refusals = Refusals()
    error = csta_error("invalidDestination")
    refusals.add(Refusal(request="MonitorStart", error=error, delay=0.0, count=2))
    link = started(refusals=refusals)
    for _ in range(3):
        link.client.monitor_start("3001", 0.0)
    events = link.pump()
    assert [type(e).__name__ for e in events] == [
        "RequestFailed",
        "RequestFailed",
        "ResponseReceived",
    ]
    refused = [e for e in link.server_events if isinstance(e, RequestRefused)]
    assert len(refused) == 2 and refusals.rules == []
    refusals.add(Refusal(request="SingleStepTransferCall", error=error, delay=4.2))
    transfer = m.SingleStepTransferCall(
        active_call=m.ConnectionID(call_id="1", device_id="3001"), transferred_to="3081"
    )
    link.client.send_request(transfer, 10.0)
    assert link.pump(10.0) == []
    assert not any(isinstance(e, RequestReceived) for e in link.server_events)
    link.server.handle_timer(14.2)
    [failed] = link.pump(14.2)
    assert isinstance(failed, RequestFailed) and failed.error == error


def test_a_refused_session_start_gets_the_session_negative_response() -> None:
    refusals = Refusals([Refusal(request="StartApplicationSession", error=csta_error("generic"))])
    link = Link(refusals=refusals)
    assert link.start() == [SessionRefused(error="generic")]


def test_bad_frames_close_the_link() -> None:
    server = CstaServerSession(session_id="S1", device_known=DEVICES.__contains__)
    events = server.receive_data(b"\x01\x00\x00\x10garbage!", 0.0)
    assert isinstance(events[0], ServerProtocolError) and events[0].fatal
    assert isinstance(events[1], ApplicationSessionEnded)
    assert server.closing
    assert server.receive_data(b"more", 0.0) == []


def test_a_request_before_a_bad_header_in_the_same_read_is_answered_first() -> None:
    link = started()
    link.client.monitor_start("3001", 0.0)
    request = link.client.data_to_send()
    events = link.server.receive_data(request + b"\x01\x00\x00\x10garbage!", 0.0)
    assert isinstance(events[-2], ServerProtocolError) and events[-2].fatal
    assert isinstance(events[-1], ApplicationSessionEnded)
    [answer] = FrameDecoder().feed(link.server.data_to_send())
    assert isinstance(decode(answer.body), m.MonitorStartResponse)


@pytest.mark.parametrize(
    "document",
    [
        b"not xml at all",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><MonitorStart/>',
        b"<MonitorStart>" + b"<a>" * 100 + b"</a>" * 100 + b"</MonitorStart>",
        b"<MonitorStart><monitorObject/></MonitorStart>",
    ],
)
def test_a_broken_or_hostile_document_gets_a_generic_error_and_the_link_goes_on(
    document: bytes,
) -> None:
    link = started()
    events, frames = server_reply(link.server, document)
    assert frames == [(5, m.CSTAErrorCode(category="operation", value="generic"))]
    assert isinstance(events[0], ServerProtocolError) and not events[0].fatal
    link.client.monitor_start("3001", 0.0)
    assert isinstance(link.pump()[0], ResponseReceived)


def test_an_unknown_service_and_an_unexpected_document_are_answered_or_ignored() -> None:
    link = started()
    events, frames = server_reply(link.server, (GOLDEN / "pyssimist_DeflectCall.xml").read_bytes())
    assert frames == [(5, m.CSTAErrorCode(category="operation", value="serviceNotSupported"))]
    events, frames = server_reply(link.server, encode(DELIVERED))
    assert frames == [] and isinstance(events[0], ServerProtocolError)
    events, frames = server_reply(link.server, encode(m.SystemStatusResponse()))
    assert (events, frames) == ([], [])


def test_events_for_a_monitor_reach_a_client_that_reads_them_one_byte_at_a_time() -> None:
    link = started()
    link.client.monitor_start("3001", 0.0)
    link.pump()
    link.server.send_event("3001", DELIVERED)
    events: list[SessionEvent] = []
    for byte in link.server.data_to_send():
        events += link.client.receive_data(bytes([byte]), 0.0)
    [event] = events
    assert isinstance(event, EventReceived)
    assert event.event == replace(DELIVERED, monitor_cross_ref_id="1")
    assert link.client.state is SessionState.ACTIVE
    assert not isinstance(event, DocumentIgnored)


# -- golden requests written by others --------------------------------------------------------


def test_the_openscape_start_is_accepted_in_its_edition_with_the_duration_capped() -> None:
    server = CstaServerSession(session_id="S9", device_known=DEVICES.__contains__)
    document = (GOLDEN / "pyssimist_StartApplicationSession.xml").read_bytes()
    events, frames = server_reply(server, document)
    assert events == [
        ApplicationSessionStarted(session_id="S9", application_id="pythontsm", duration_s=300)
    ]
    assert frames == [
        (
            5,
            m.StartApplicationSessionPosResponse(
                session_id="S9",
                actual_protocol_version=CSTA_NAMESPACES["ed4"],
                actual_session_duration=300,
            ),
        )
    ]
    events, frames = server_reply(server, (GOLDEN / "pyssimist_MonitorStart.xml").read_bytes(), 6)
    assert events == [MonitorStarted(dn="12313213", cross_ref_id="1")]
    raw = FrameDecoder()
    server.send_event("12313213", DELIVERED)
    [frame] = raw.feed(server.data_to_send())
    assert CSTA_NAMESPACES["ed4"].encode() in frame.body  # written in the negotiated edition


@pytest.mark.parametrize(
    ("name", "answer"),
    [
        ("pyssimist_MonitorStart.xml", m.MonitorStartResponse(monitor_cross_ref_id="1")),
        ("pyssimist_MonitorStart_prefixed.xml", m.MonitorStartResponse(monitor_cross_ref_id="1")),
        ("sipe_MonitorStart.xml", None),
        (
            "pyssimist_MonitorStop.xml",
            m.CSTAErrorCode(category="operation", value="invalidMonitorCrossRefID"),
        ),
        ("pyssimist_SystemStatus_ed2.xml", m.SystemStatusResponse()),
        ("pyssimist_SystemStatus_prefixed.xml", m.SystemStatusResponse()),
        (
            "sipe_RequestSystemStatus.xml",
            m.CSTAErrorCode(category="operation", value="serviceNotSupported"),
        ),
    ],
)
def test_golden_session_and_monitor_requests_are_answered(
    name: str, answer: m.CstaMessage | None
) -> None:
    server = CstaServerSession(session_id="S1", device_known=lambda dn: dn != "unknown")
    server_reply(server, encode(m.StartApplicationSession(application_id="x")), 1)
    _, frames = server_reply(server, (GOLDEN / name).read_bytes(), 42)
    if answer is None:  # the device is whatever sipe names: answered either way
        assert len(frames) == 1 and frames[0][0] == 42
    else:
        assert frames == [(42, answer)]


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("pool_SnapshotDevice.xml", m.SnapshotDevice),
        ("pool_ClearConnection_ed2.xml", m.ClearConnection),
        ("sipe_ClearConnection.xml", m.ClearConnection),
        ("pool_MakeCall.xml", m.MakeCall),
        ("sipe_MakeCall.xml", m.MakeCall),
    ],
)
def test_golden_service_requests_are_handed_up_typed(name: str, kind: type[m.CstaRequest]) -> None:
    server = CstaServerSession(session_id="S1", device_known=DEVICES.__contains__)
    server_reply(server, encode(m.StartApplicationSession(application_id="x")), 1)
    events, frames = server_reply(server, (GOLDEN / name).read_bytes(), 42)
    assert frames == []
    [event] = events
    assert isinstance(event, RequestReceived) and event.invoke_id == 42
    assert type(event.request) is kind


# -- what the server writes has the shapes of real PBX documents ------------------------------


def _children(document: bytes) -> list[str]:
    root = ET.fromstring(document)
    return [child.tag.rpartition("}")[2] for child in root]


def _in_order(ours: list[str], theirs: list[str]) -> bool:
    remaining = iter(theirs)
    return all(tag in remaining for tag in ours)


@pytest.mark.parametrize(
    ("golden", "message"),
    [
        ("pyssimist_DeliveredEvent.xml", replace(DELIVERED, monitor_cross_ref_id="1")),
        (
            "pool_EstablishedEvent_ed2.xml",
            m.EstablishedEvent(
                monitor_cross_ref_id="1",
                established_connection=m.ConnectionID(call_id="7", device_id="3001"),
                answering_device="3001",
                calling_device="5551234",
                called_device="3001",
                last_redirection_device="3085",
                local_connection_info="connected",
                cause="newCall",
            ),
        ),
        (
            "pool_ConnectionClearedEvent.xml",
            m.ConnectionClearedEvent(
                monitor_cross_ref_id="1",
                dropped_connection=m.ConnectionID(call_id="7", device_id="5551234"),
                releasing_device="5551234",
                local_connection_info="null",
                cause="normalClearing",
            ),
        ),
        (
            "pyssimist_StartApplicationSessionPosResponse.xml",
            m.StartApplicationSessionPosResponse(
                session_id="S1",
                actual_protocol_version=CSTA_NAMESPACES["ed4"],
                actual_session_duration=600,
            ),
        ),
        ("pyssimist_MonitorStartResponse.xml", m.MonitorStartResponse(monitor_cross_ref_id="1")),
        ("pool_SnapshotDeviceResponse.xml", m.SnapshotDeviceResponse()),
        ("pool_SystemStatusResponse.xml", m.SystemStatusResponse()),
    ],
)
def test_documents_written_have_the_golden_documents_shape(
    golden: str, message: m.CstaMessage
) -> None:
    ours = encode(message)
    theirs = (GOLDEN / golden).read_bytes()
    assert _in_order(_children(ours), _children(theirs)), (_children(ours), _children(theirs))
    assert decode(ours) == message
    for device in ("alertingDevice", "callingDevice", "answeringDevice", "releasingDevice"):
        ours_el = ET.fromstring(ours).find(f"{{*}}{device}")
        theirs_el = ET.fromstring(theirs).find(f"{{*}}{device}")
        if ours_el is not None and theirs_el is not None:
            assert [c.tag.rpartition("}")[2] for c in ours_el] == [
                c.tag.rpartition("}")[2] for c in theirs_el
            ]


def test_csta_error_reads_a_value_or_a_category_and_value() -> None:
    assert csta_error("invalidDestination") == m.CSTAErrorCode(
        category="operation", value="invalidDestination"
    )
    assert csta_error("stateIncompatibility/invalidObjectState") == m.CSTAErrorCode(
        category="stateIncompatibility", value="invalidObjectState"
    )
    assert csta_error(" resourceBusy ").category == "systemResourceAvailability"
    for bad in ("noSuchValue", "nowhere/x", "operation/"):
        with pytest.raises(ValueError):
            csta_error(bad)


# -- anything at all ----------------------------------------------------------------------------

_DOCUMENTS = [
    (GOLDEN / name).read_bytes()
    for name in ("pyssimist_MonitorStart.xml", "pool_SnapshotDevice.xml", "sipe_MakeCall.xml")
]


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(
        st.one_of(
            st.binary(max_size=64),
            st.sampled_from(_DOCUMENTS).map(lambda d: encode_frame(3, d)),
            st.sampled_from(_DOCUMENTS).map(lambda d: encode_frame(4, d[: len(d) // 2])),
        ),
        max_size=8,
    ),
    start=st.booleans(),
)
def test_any_bytes_give_facts_never_an_exception(chunks: list[bytes], start: bool) -> None:
    server = CstaServerSession(session_id="S1", device_known=DEVICES.__contains__)
    if start:
        server_reply(server, encode(m.StartApplicationSession(application_id="x")), 1)
    for chunk in chunks:
        for event in server.receive_data(chunk, 0.0):
            assert isinstance(event, ServerEvent)
        server.data_to_send()
    server.handle_timer(1e9)
    assert server.closing or server.state is ServerState.AWAITING_START
