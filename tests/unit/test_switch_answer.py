"""The virtual switch's ring-only delivery: TInboundCall with ``answer`` off, then TAnswerCall."""

from __future__ import annotations

from ivr_server.switch import EventError, EventEstablished, EventRinging, SwitchEvent
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.requests import (
    SwitchRequest,
    TAnswerCall,
    TCallerHangUp,
    TInboundCall,
    TOpenLink,
)
from ivr_server.switch.virtual import VirtualSwitch
from ivr_server.vocabulary import DnType

PORT = "3001"
EXT = "3081"


def make_switch() -> VirtualSwitch:
    switch = VirtualSwitch(
        "SW", "TS", [(PORT, DnType.VOICE_TREATMENT_PORT), (EXT, DnType.EXTENSION)]
    )
    switch.request(TOpenLink(reference_id=0))
    switch.drain_events()
    return switch


def send(switch: VirtualSwitch, request: SwitchRequest) -> list[SwitchEvent]:
    switch.request(request)
    return switch.drain_events()


def test_a_call_delivered_without_answer_only_rings() -> None:
    switch = make_switch()
    events = send(switch, TInboundCall(reference_id=1, dn=PORT, ani="5551234", answer=False))
    assert [type(e) for e in events] == [EventRinging]
    ringing = events[0]
    assert isinstance(ringing, EventRinging)
    assert switch.view.call(ringing.conn_id) is not None


def test_answer_establishes_the_ringing_call_at_the_dn() -> None:
    switch = make_switch()
    ringing = send(switch, TInboundCall(reference_id=1, dn=PORT, ani="5551234", answer=False))[0]
    assert isinstance(ringing, EventRinging)
    events = send(switch, TAnswerCall(reference_id=2, conn_id=ringing.conn_id, dn=PORT))
    assert len(events) == 1
    established = events[0]
    assert isinstance(established, EventEstablished)
    assert (established.reference_id, established.dn, established.conn_id) == (
        2,
        PORT,
        ringing.conn_id,
    )
    assert (established.call_id, established.ani) == (ringing.call_id, "5551234")


def test_answer_of_an_unknown_call_or_at_another_dn_is_an_error() -> None:
    switch = make_switch()
    ringing = send(switch, TInboundCall(reference_id=1, dn=PORT, answer=False))[0]
    assert isinstance(ringing, EventRinging)
    for request in (
        TAnswerCall(reference_id=2, conn_id="00000000000000ff", dn=PORT),
        TAnswerCall(reference_id=3, conn_id=ringing.conn_id, dn=EXT),
    ):
        (error,) = send(switch, request)
        assert isinstance(error, EventError)
        assert error.error_code is TErrorCode.TERR_INVALID_ATTR
        assert error.reference_id == request.reference_id


def test_a_ringing_call_can_be_hung_up_by_the_caller() -> None:
    switch = make_switch()
    ringing = send(switch, TInboundCall(reference_id=1, dn=PORT, answer=False))[0]
    assert isinstance(ringing, EventRinging)
    send(switch, TCallerHangUp(reference_id=2, conn_id=ringing.conn_id))
    assert switch.view.call(ringing.conn_id) is None
