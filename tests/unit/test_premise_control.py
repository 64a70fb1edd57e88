"""Call control on the premise switch (issue 23): each T-Library request → its CSTA service, the
PBX's answers and events → THE CONTRACT's T-Library events in order with the right ConnIDs;
refusals restore the original call, busy is not an error, hang-ups mid-consultation, duplicate
and out-of-order events, the link dropping mid-transfer."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from ivr_server.errors import ConfigError
from ivr_server.switch import requests as rq
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import CallEvent, EventError, SwitchEvent
from ivr_server.switch.premise.placed import correlator
from ivr_server.wire.kv import str_node
from tests.unit.premise_pbx import AGENT_DN, CALLER, PORT, ControlPbx, bring_up, control_switch

DEST = "3999"
"""A destination off our monitors (an agent's phone elsewhere on the PBX)."""

Shape = tuple[str, int | None, str | None, str | None]


def shapes(events: Sequence[SwitchEvent]) -> list[Shape]:
    """(name, ReferenceID, ConnID or error code, OtherDN or the failed request) of each event."""
    out: list[Shape] = []
    for e in events:
        if e.name.startswith("EventLink"):
            continue
        if isinstance(e, EventError):
            out.append((e.name, e.reference_id, str(e.error_code), e.request))
        else:
            assert isinstance(e, CallEvent)
            out.append((e.name, e.reference_id, e.conn_id, e.other_dn))
    return out


def conn(n: int) -> str:
    return f"{n:016x}"


ORIG, NEW = conn(0x10), conn(0x11)
"""The ConnIDs the switch gives: the answered call, then the call a request places."""


def consulting(pbx: ControlPbx, req: rq.TInitiateTransfer, *, answer: bool = True) -> None:
    """``req`` sent and the consultation dialled (call 101), answered by DEST when ``answer``."""
    sw = pbx.switch
    sw.request(req)
    invoke_id, sent = pbx.request()
    assert sent == m.ConsultationCall(
        existing_call=m.ConnectionID(call_id="100", device_id=PORT), consulted_device=DEST
    )
    pbx.send(
        m.ConsultationCallResponse(initiated_call=m.ConnectionID(call_id="101", device_id=PORT)),
        invoke_id,
    )
    pbx.held("100")
    assert shapes(sw.drain_events()) == [
        ("EventHeld", req.reference_id, ORIG, CALLER),
        ("EventDialing", req.reference_id, NEW, DEST),
    ]
    if answer:
        pbx.far_alerting("101", DEST)
        pbx.far_answered("101", DEST)
        assert shapes(sw.drain_events()) == [("EventEstablished", None, NEW, DEST)]


def init_xfer(ref: int = 5) -> rq.TInitiateTransfer:
    return rq.TInitiateTransfer(reference_id=ref, conn_id=ORIG, dn=PORT, dest=DEST)


# -- TSingleStepTransfer -----------------------------------------------------------------------


def test_one_step_transfer_attaches_the_data_then_completes_on_the_answer() -> None:
    sw, pbx = control_switch(mirror_keys=("ticket",))
    assert pbx.answered("100") == ORIG
    data = (str_node("ticket", "T-42"),)
    sw.request(
        rq.TSingleStepTransfer(reference_id=3, conn_id=ORIG, dn=PORT, dest=DEST, user_data=data)
    )
    invoke_id, sent = pbx.request()
    assert sent == m.SingleStepTransferCall(
        active_call=m.ConnectionID(call_id="100", device_id=PORT),
        transferred_to=DEST,
        correlator_data="ticket=T-42",
    )
    [attached] = sw.drain_events()
    assert (attached.name, attached.reference_id, attached.user_data) == (  # type: ignore[attr-defined]
        "EventAttachedDataChanged",
        3,
        data,
    )
    pbx.send(m.SingleStepTransferCallResponse(), invoke_id)
    pbx.transfered("100", None, DEST)  # the PBX's event after its answer: nothing more
    pbx.cleared("100", PORT)
    assert shapes(sw.drain_events()) == [("EventReleased", 3, ORIG, CALLER)]
    assert sw.view.call(ORIG) is None and sw.calls == {}


def test_one_step_transfer_event_before_the_answer_completes_once() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(rq.TSingleStepTransfer(reference_id=4, conn_id=ORIG, dn=PORT, dest=DEST))
    invoke_id, _ = pbx.request()
    pbx.transfered("100", None, DEST)
    pbx.send(m.SingleStepTransferCallResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [("EventReleased", 4, ORIG, CALLER)]


def test_one_step_transfer_refused_leaves_the_call_on_the_port() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(rq.TSingleStepTransfer(reference_id=4, conn_id=ORIG, dn=PORT, dest=DEST))
    invoke_id, _ = pbx.request()
    pbx.send(m.CSTAErrorCode(category="operation", value="invalidDestination"), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventError", 4, str(int(TErrorCode.TERR_INV_CALD_DN)), "TSingleStepTransfer")
    ]
    pbx.cleared("100", PORT)  # a later release is the caller's, not the transfer's
    assert shapes(sw.drain_events()) == [("EventReleased", None, ORIG, CALLER)]


def test_emulated_one_step_transfer_on_answer() -> None:
    sw, pbx = control_switch(emulate_single_step="on-answer")
    pbx.answered("100")
    req = rq.TSingleStepTransfer(reference_id=6, conn_id=ORIG, dn=PORT, dest=DEST)
    consulting(pbx, req)  # type: ignore[arg-type]
    invoke_id, sent = pbx.request()
    assert sent == m.TransferCall(
        held_call=m.ConnectionID(call_id="100", device_id=PORT),
        active_call=m.ConnectionID(call_id="101", device_id=PORT),
    )
    pbx.send(m.TransferCallResponse(), invoke_id)
    pbx.transfered("100", "101", DEST)
    assert shapes(sw.drain_events()) == [
        ("EventReleased", 6, ORIG, CALLER),
        ("EventReleased", 6, NEW, DEST),
    ]
    assert sw.calls == {} and list(sw.view.calls()) == []


def test_emulated_one_step_transfer_on_alerting_and_busy() -> None:
    sw, pbx = control_switch(emulate_single_step="on-alerting")
    pbx.answered("100")
    req = rq.TSingleStepTransfer(reference_id=6, conn_id=ORIG, dn=PORT, dest=DEST)
    consulting(pbx, req, answer=False)  # type: ignore[arg-type]
    pbx.far_alerting("101", DEST)
    assert shapes(sw.drain_events()) == [("EventEstablished", None, NEW, DEST)]
    invoke_id, sent = pbx.request()
    assert isinstance(sent, m.TransferCall)
    pbx.transfered("101", "100", DEST)  # the event first, calls in the other order
    pbx.send(m.TransferCallResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventReleased", 6, ORIG, CALLER),
        ("EventReleased", 6, NEW, DEST),
    ]
    # busy: the original comes back, then the error
    pbx.answered("200")
    req = rq.TSingleStepTransfer(reference_id=7, conn_id=conn(0x12), dn=PORT, dest=DEST)
    sw.request(req)
    invoke_id, _ = pbx.request()
    pbx.send(
        m.ConsultationCallResponse(initiated_call=m.ConnectionID(call_id="201", device_id=PORT)),
        invoke_id,
    )
    sw.drain_events()
    pbx.failed("201", DEST, "busy")
    invoke_id, sent = pbx.request()
    assert sent == m.ReconnectCall(
        active_call=m.ConnectionID(call_id="201", device_id=PORT),
        held_call=m.ConnectionID(call_id="200", device_id=PORT),
    )
    pbx.send(m.ReconnectCallResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventReleased", 7, conn(0x13), DEST),
        ("EventRetrieved", 7, conn(0x12), CALLER),
        ("EventError", 7, str(int(TErrorCode.TERR_CONN_ATMPT_FAIL)), "TSingleStepTransfer"),
    ]


# -- consultations -------------------------------------------------------------------------------


def test_init_transfer_events_before_the_answer_then_complete_transfer() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(init_xfer())
    invoke_id, _ = pbx.request()
    pbx.held("100")  # the PBX's events come before its answer
    pbx.initiated("101")
    pbx.originated("101", DEST)
    pbx.far_alerting("101", DEST)
    pbx.far_answered("101", DEST)
    assert sw.drain_events() == []
    pbx.send(
        m.ConsultationCallResponse(initiated_call=m.ConnectionID(call_id="101", device_id=PORT)),
        invoke_id,
    )
    pbx.far_answered("101", DEST)  # duplicate
    assert shapes(sw.drain_events()) == [
        ("EventHeld", 5, ORIG, CALLER),
        ("EventDialing", 5, NEW, DEST),
        ("EventEstablished", None, NEW, DEST),
    ]
    sw.request(rq.TCompleteTransfer(reference_id=8, conn_id=ORIG, consult_conn_id=NEW, dn=PORT))
    invoke_id, sent = pbx.request()
    assert sent == m.TransferCall(
        held_call=m.ConnectionID(call_id="100", device_id=PORT),
        active_call=m.ConnectionID(call_id="101", device_id=PORT),
    )
    pbx.send(m.TransferCallResponse(), invoke_id)
    pbx.transfered("100", "101", DEST)
    assert shapes(sw.drain_events()) == [
        ("EventReleased", 8, NEW, DEST),
        ("EventReleased", 8, ORIG, CALLER),
    ]
    assert sw.calls == {} and sw.by_conn == {} and list(sw.view.calls()) == []


def test_consultation_busy_then_reconnect() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    req = rq.TInitiateConference(reference_id=5, conn_id=ORIG, dn=PORT, dest=DEST)
    consulting(pbx, req, answer=False)
    pbx.failed("101", DEST, "busy")
    pbx.failed("101", DEST, "busy")  # duplicate
    assert shapes(sw.drain_events()) == [("EventDestinationBusy", None, NEW, DEST)]
    sw.request(rq.TReconnectCall(reference_id=9, conn_id=NEW, held_conn_id=ORIG, dn=PORT))
    invoke_id, sent = pbx.request()
    assert isinstance(sent, m.ReconnectCall)
    pbx.cleared("101", PORT)  # the consultation's release first: it carries the request's id
    pbx.send(m.ReconnectCallResponse(), invoke_id)
    pbx.retrieved("100")
    assert shapes(sw.drain_events()) == [
        ("EventReleased", 9, NEW, DEST),
        ("EventRetrieved", 9, ORIG, CALLER),
    ]


def test_consultation_refused_after_the_hold_retrieves_then_errors() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(init_xfer())
    invoke_id, _ = pbx.request()
    pbx.held("100")
    pbx.send(m.CSTAErrorCode(category="operation", value="invalidDestination"), invoke_id)
    invoke_id, sent = pbx.request()
    assert sent == m.RetrieveCall(
        call_to_be_retrieved=m.ConnectionID(call_id="100", device_id=PORT)
    )
    assert sw.drain_events() == []
    pbx.send(m.RetrieveCallResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventRetrieved", 5, ORIG, CALLER),
        ("EventError", 5, str(int(TErrorCode.TERR_INV_CALD_DN)), "TInitiateTransfer"),
    ]
    # refused without a hold: only the error; the call can consult again
    sw.request(init_xfer(6))
    invoke_id, _ = pbx.request()
    pbx.send(
        m.CSTAErrorCode(category="systemResourceAvailability", value="resourceBusy"), invoke_id
    )
    assert shapes(sw.drain_events()) == [
        ("EventError", 6, str(int(TErrorCode.TERR_RES_UNAVAIL)), "TInitiateTransfer")
    ]
    sw.request(init_xfer(7))
    assert isinstance(pbx.request()[1], m.ConsultationCall)


def test_consultation_failing_after_dialing_is_restored_with_the_cause_code() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    consulting(pbx, init_xfer(), answer=False)
    pbx.failed("101", DEST, "destNotObtainable")
    invoke_id, sent = pbx.request()
    assert isinstance(sent, m.ReconnectCall)
    pbx.send(m.ReconnectCallResponse(), invoke_id)
    pbx.cleared("101", PORT)  # late: already released
    assert shapes(sw.drain_events()) == [
        ("EventReleased", 5, NEW, DEST),
        ("EventRetrieved", 5, ORIG, CALLER),
        ("EventError", 5, str(int(TErrorCode.TERR_INV_CALD_DN)), "TInitiateTransfer"),
    ]


def test_the_consulted_party_hangs_up_then_reconnect_only_retrieves() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    consulting(pbx, init_xfer())
    pbx.cleared("101", DEST)  # G5
    assert shapes(sw.drain_events()) == [("EventReleased", None, NEW, DEST)]
    sw.request(rq.TReconnectCall(reference_id=9, conn_id=NEW, held_conn_id=ORIG, dn=PORT))
    invoke_id, sent = pbx.request()
    assert sent == m.RetrieveCall(
        call_to_be_retrieved=m.ConnectionID(call_id="100", device_id=PORT)
    )
    pbx.send(m.RetrieveCallResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [("EventRetrieved", 9, ORIG, CALLER)]
    # nothing left to retrieve: refused
    sw.request(rq.TReconnectCall(reference_id=10, conn_id=NEW, held_conn_id=ORIG, dn=PORT))
    assert shapes(sw.drain_events()) == [
        ("EventError", 10, str(int(TErrorCode.TERR_SET_WRONG_STATE)), "TReconnectCall")
    ]


def test_the_caller_hangs_up_while_held_the_consultation_stays() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    consulting(pbx, init_xfer())
    pbx.cleared("100", CALLER)  # G6
    assert shapes(sw.drain_events()) == [("EventReleased", None, ORIG, CALLER)]
    assert sw.view.call(NEW) is not None and sw.call_of(NEW) is not None
    sw.request(rq.TReleaseCall(reference_id=11, conn_id=NEW, dn=PORT))
    invoke_id, sent = pbx.request()
    assert isinstance(sent, m.ClearConnection)
    pbx.send(m.ClearConnectionResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [("EventReleased", 11, NEW, DEST)]
    assert sw.calls == {}


def test_complete_transfer_refused_changes_nothing() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    consulting(pbx, init_xfer())
    sw.request(rq.TCompleteTransfer(reference_id=8, conn_id=ORIG, consult_conn_id=NEW, dn=PORT))
    invoke_id, _ = pbx.request()
    pbx.send(
        m.CSTAErrorCode(category="stateIncompatibility", value="invalidObjectState"), invoke_id
    )
    assert shapes(sw.drain_events()) == [
        ("EventError", 8, str(int(TErrorCode.TERR_SET_WRONG_STATE)), "TCompleteTransfer")
    ]
    pbx.cleared("101", DEST)  # the release that follows is the party's, not the request's
    assert shapes(sw.drain_events()) == [("EventReleased", None, NEW, DEST)]


def test_complete_conference_then_the_added_party_leaves() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    consulting(pbx, init_xfer())  # G9: CompleteConf after InitXfer
    sw.request(rq.TCompleteConference(reference_id=12, conn_id=ORIG, consult_conn_id=NEW, dn=PORT))
    invoke_id, sent = pbx.request()
    assert sent == m.ConferenceCall(
        held_call=m.ConnectionID(call_id="100", device_id=PORT),
        active_call=m.ConnectionID(call_id="101", device_id=PORT),
    )
    pbx.send(m.ConferenceCallResponse(), invoke_id)
    pbx.conferenced("100", "101", DEST)
    assert shapes(sw.drain_events()) == [
        ("EventReleased", 12, NEW, DEST),
        ("EventRetrieved", 12, ORIG, CALLER),
        ("EventPartyAdded", 12, ORIG, DEST),
    ]
    pbx.cleared("100", DEST)
    assert shapes(sw.drain_events()) == [("EventPartyDeleted", None, ORIG, DEST)]
    pbx.cleared("100", CALLER)
    assert shapes(sw.drain_events()) == [("EventReleased", None, ORIG, CALLER)]


def test_one_step_conference_event_first_then_party_deleted() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(rq.TSingleStepConference(reference_id=13, conn_id=ORIG, dn=PORT, dest=DEST))
    invoke_id, sent = pbx.request()
    assert sent == m.SingleStepConferenceCall(
        active_call=m.ConnectionID(call_id="100", device_id=PORT), device_to_join=DEST
    )
    pbx.conferenced("100", None, DEST)
    pbx.send(m.SingleStepConferenceCallResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [("EventPartyAdded", 13, ORIG, DEST)]
    pbx.cleared("100", DEST)
    pbx.cleared("100", DEST)  # duplicate
    assert shapes(sw.drain_events()) == [("EventPartyDeleted", None, ORIG, DEST)]
    sw.request(rq.TSingleStepConference(reference_id=14, conn_id=ORIG, dn=PORT, dest=AGENT_DN))
    invoke_id, _ = pbx.request()
    pbx.send(m.CSTAErrorCode(category="operation", value="invalidFeature"), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventError", 14, str(int(TErrorCode.TERR_UNSUP_OPER)), "TSingleStepConference")
    ]


# -- TMakeCall -----------------------------------------------------------------------------------


def make_call(sw: object, ref: int = 20) -> rq.TMakeCall:
    return rq.TMakeCall(
        reference_id=ref,
        dn=PORT,
        dest=DEST,
        user_data=(str_node("campaign", "c1"),),
    )


def test_make_call_dialing_then_established() -> None:
    sw, pbx = control_switch()
    sw.request(make_call(sw))
    invoke_id, sent = pbx.request()
    assert sent == m.MakeCall(calling_device=PORT, called_directory_number=DEST)
    pbx.send(
        m.MakeCallResponse(calling_device=m.ConnectionID(call_id="300", device_id=PORT)), invoke_id
    )
    pbx.initiated("300")  # after the answer: nothing new
    [dialing] = sw.drain_events()
    assert shapes([dialing]) == [("EventDialing", 20, ORIG, DEST)]
    assert dialing.user_data == (str_node("campaign", "c1"),)  # type: ignore[attr-defined]
    pbx.far_alerting("300", DEST)
    pbx.far_answered("300", DEST)
    assert shapes(sw.drain_events()) == [("EventEstablished", None, ORIG, DEST)]
    assert sw.view.user_data(ORIG) == (str_node("campaign", "c1"),)


def test_make_call_busy_refused_and_failed() -> None:
    sw, pbx = control_switch()
    sw.request(make_call(sw))
    invoke_id, _ = pbx.request()
    pbx.originated("300", DEST)  # named before the answer
    pbx.failed("300", DEST, "busy")
    pbx.send(
        m.MakeCallResponse(calling_device=m.ConnectionID(call_id="300", device_id=PORT)), invoke_id
    )
    assert shapes(sw.drain_events()) == [
        ("EventDialing", 20, ORIG, DEST),
        ("EventDestinationBusy", None, ORIG, DEST),
    ]
    sw.request(make_call(sw, 21))
    invoke_id, _ = pbx.request()
    pbx.send(m.CSTAErrorCode(category="operation", value="invalidCalledDevice"), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventError", 21, str(int(TErrorCode.TERR_INV_CALD_DN)), "TMakeCall")
    ]
    sw.request(make_call(sw, 22))
    invoke_id, _ = pbx.request()
    pbx.send(
        m.MakeCallResponse(calling_device=m.ConnectionID(call_id="301", device_id=PORT)), invoke_id
    )
    sw.drain_events()
    pbx.failed("301", DEST, "callNotAnswered")
    assert shapes(sw.drain_events()) == [
        ("EventError", 22, str(int(TErrorCode.TERR_DN_NO_ANSWER)), "TMakeCall")
    ]
    [(_, clear)] = pbx.sent()  # the failed call is cleared on the PBX
    assert clear == m.ClearConnection(
        connection_to_be_cleared=m.ConnectionID(call_id="301", device_id=PORT)
    )


# -- the link ------------------------------------------------------------------------------------


def test_call_control_while_the_link_is_down_and_a_drop_mid_transfer() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(init_xfer())
    pbx.request()
    sw.connection_lost("reset", 1.0)
    events = shapes(sw.drain_events())
    assert ("EventError", 5, str(int(TErrorCode.TERR_NO_SWITCH)), "TInitiateTransfer") in events
    sw.request(rq.TSingleStepTransfer(reference_id=6, conn_id=ORIG, dn=PORT, dest=DEST))
    sw.request(make_call(sw, 7))
    assert shapes(sw.drain_events()) == [
        ("EventError", 6, str(int(TErrorCode.TERR_NO_SWITCH)), "TSingleStepTransfer"),
        ("EventError", 7, str(int(TErrorCode.TERR_NO_SWITCH)), "TMakeCall"),
    ]
    bring_up(sw, pbx, snapshots={PORT: [("100", "connected")]}, open_link=False)
    sw.request(init_xfer(8))  # the dropped request left nothing behind
    assert isinstance(pbx.request()[1], m.ConsultationCall)


def test_no_answer_in_time_is_a_timeout_and_the_call_is_restored() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(init_xfer())
    pbx.request()
    pbx.held("100")
    sw.handle_timer(0.0)
    sw.handle_timer(11.0)
    invoke_id, sent = pbx.request()
    assert isinstance(sent, m.RetrieveCall)
    pbx.send(m.RetrieveCallResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventRetrieved", 5, ORIG, CALLER),
        ("EventError", 5, str(int(TErrorCode.TERR_TIMEOUT)), "TInitiateTransfer"),
    ]


def test_requests_on_an_unknown_call_or_a_busy_one_are_refused() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(rq.TCompleteTransfer(reference_id=1, conn_id=ORIG, consult_conn_id=NEW, dn=PORT))
    sw.request(init_xfer(2))
    pbx.request()
    sw.request(init_xfer(3))  # twice in a row
    assert shapes(sw.drain_events()) == [
        ("EventError", 1, str(int(TErrorCode.TERR_INV_CONNID)), "TCompleteTransfer"),
        ("EventError", 3, str(int(TErrorCode.TERR_SET_WRONG_STATE)), "TInitiateTransfer"),
    ]


def test_correlator_data_mirrors_chosen_keys_within_32_octets() -> None:
    data = (
        str_node("a", "1"),
        str_node("long", "x" * 40),
        str_node("b", "22"),
    )
    assert correlator((), data) is None
    assert correlator(("b", "a", "missing"), data) == "b=22;a=1"
    assert correlator(("long", "a"), data) == "a=1"  # a pair that does not fit is left out


def test_complete_transfer_while_the_consultation_rings_and_a_new_one_after_a_hang_up() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    consulting(pbx, init_xfer(), answer=False)
    sw.request(rq.TCompleteTransfer(reference_id=8, conn_id=ORIG, consult_conn_id=NEW, dn=PORT))
    invoke_id, sent = pbx.request()
    assert isinstance(sent, m.TransferCall)
    pbx.send(m.TransferCallResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventReleased", 8, NEW, DEST),
        ("EventReleased", 8, ORIG, CALLER),
    ]
    # the consulted party hangs up before answering: the original is free for a new request
    pbx.answered("200")
    sw.request(rq.TInitiateTransfer(reference_id=9, conn_id=conn(0x12), dn=PORT, dest=DEST))
    invoke_id, _ = pbx.request()
    pbx.send(
        m.ConsultationCallResponse(initiated_call=m.ConnectionID(call_id="201", device_id=PORT)),
        invoke_id,
    )
    sw.drain_events()
    pbx.cleared("201", DEST)
    assert shapes(sw.drain_events()) == [("EventReleased", None, conn(0x13), DEST)]
    sw.request(rq.TSingleStepTransfer(reference_id=10, conn_id=conn(0x12), dn=PORT, dest=DEST))
    assert isinstance(pbx.request()[1], m.SingleStepTransferCall)


def test_the_configuration_keys_reach_the_switch() -> None:
    from ivr_server.config import parse_config
    from ivr_server.service.switches import premise_settings
    from tests.unit.test_config_premise import premise_file

    config = parse_config(
        premise_file(
            'address = "127.0.0.1:3022"\nemulate-single-step = "on-alerting"\n'
            'mirror-keys = ["ticket", "lang"]\n'
        )
    )
    tserver = config.tserver_for_switch("PBX")
    assert tserver is not None and tserver.premise is not None
    settings = premise_settings(tserver.premise)
    assert (settings.emulate_single_step, settings.mirror_keys) == (
        "on-alerting",
        ("ticket", "lang"),
    )
    default = parse_config(premise_file()).tserver_for_switch("PBX")
    assert default is not None and default.premise is not None
    assert (default.premise.emulate_single_step, default.premise.mirror_keys) == ("off", ())
    with pytest.raises(ConfigError):
        parse_config(premise_file('address = "127.0.0.1:3022"\nemulate-single-step = "yes"\n'))


def test_a_call_transferred_to_a_dn_of_ours_keeps_its_conn_id_and_user_data_there() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    data = (str_node("ticket", "T-42"),)
    sw.request(
        rq.TSingleStepTransfer(reference_id=3, conn_id=ORIG, dn=PORT, dest=AGENT_DN, user_data=data)
    )
    invoke_id, _ = pbx.request()
    pbx.send(m.SingleStepTransferCallResponse(), invoke_id)
    pbx.delivered("100", AGENT_DN)  # the PBX rings the agent with the same call
    events = sw.drain_events()
    assert shapes(events) == [
        ("EventAttachedDataChanged", 3, ORIG, CALLER),
        ("EventReleased", 3, ORIG, CALLER),
        ("EventRinging", None, ORIG, CALLER),
    ]
    assert events[-1].dn == AGENT_DN  # type: ignore[attr-defined]
    assert sw.view.user_data(ORIG) == data and sw.handed == {}


def test_a_conference_with_a_monitored_agent_names_the_agent_and_sees_it_leave() -> None:
    """The agent's own monitor reports the consultation too (its Delivered names the port as
    the calling party): the port's events still name the agent, and its leaving is seen."""
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(rq.TInitiateConference(reference_id=5, conn_id=ORIG, dn=PORT, dest=AGENT_DN))
    invoke_id, _ = pbx.request()
    pbx.send(
        m.ConsultationCallResponse(initiated_call=m.ConnectionID(call_id="101", device_id=PORT)),
        invoke_id,
    )
    for dn in (AGENT_DN, PORT):
        pbx.far_alerting("101", AGENT_DN, dn=dn)
    for dn in (AGENT_DN, PORT):
        pbx.far_answered("101", AGENT_DN, dn=dn)
    at_port = [e for e in sw.drain_events() if getattr(e, "dn", None) == PORT]
    assert shapes(at_port) == [
        ("EventHeld", 5, ORIG, CALLER),
        ("EventDialing", 5, NEW, AGENT_DN),
        ("EventEstablished", None, NEW, AGENT_DN),
    ]
    sw.request(rq.TCompleteConference(reference_id=6, conn_id=ORIG, consult_conn_id=NEW, dn=PORT))
    invoke_id, _ = pbx.request()
    pbx.send(m.ConferenceCallResponse(), invoke_id)
    for dn in (PORT, AGENT_DN):
        pbx.conferenced("100", "101", AGENT_DN, dn=dn)
    events = [e for e in sw.drain_events() if getattr(e, "dn", None) == PORT]
    assert shapes(events) == [
        ("EventReleased", 6, NEW, AGENT_DN),
        ("EventRetrieved", 6, ORIG, CALLER),
        ("EventPartyAdded", 6, ORIG, AGENT_DN),
    ]
    assert {k: c.at for k, c in sw.calls.items()} == {
        "100": {PORT: "connected", AGENT_DN: "connected"}  # the consultation merged at the agent
    }
    for dn in (AGENT_DN, PORT):
        pbx.cleared("100", AGENT_DN, dn=dn)
    events = sw.drain_events()
    assert [(e.name, getattr(e, "dn", None)) for e in events] == [
        ("EventReleased", AGENT_DN),
        ("EventPartyDeleted", PORT),
    ]
    assert shapes(events[1:]) == [("EventPartyDeleted", None, ORIG, AGENT_DN)]


def test_a_real_pbx_s_transfered_event_completes_a_one_step_transfer() -> None:
    """OpenScape's TransferedEvent (golden document, ed4 namespace; its monitor is ours) ends
    the single-step transfer: the port's EventReleased with the request's ReferenceID."""
    from pathlib import Path

    from ivr_server.switch.csta.codec import CSTA_NAMESPACES
    from ivr_server.switch.csta.framing import encode_frame
    from ivr_server.switch.events import DnType
    from ivr_server.switch.premise import PremiseSwitch
    from tests.unit.premise_pbx import SETTINGS, SWITCH, TSERVER

    port, call_id = "+17867104700", "FF00010000000000CFB6706408000000"
    sw = PremiseSwitch(SWITCH, TSERVER, ((port, DnType.VOICE_TREATMENT_PORT),), SETTINGS)
    pbx = ControlPbx(sw, CSTA_NAMESPACES["ed4"])
    sw.request(rq.TOpenLink(reference_id=0))
    sw.connection_made(0.0)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.StartApplicationSessionPosResponse(session_id="S"), invoke_id)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.MonitorStartResponse(monitor_cross_ref_id="1184300014"), invoke_id)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.SnapshotDeviceResponse(), invoke_id)
    sw.drain_events()
    pbx.send(
        m.EstablishedEvent(
            monitor_cross_ref_id="1184300014",
            established_connection=m.ConnectionID(call_id=call_id, device_id=port),
            answering_device=port,
            calling_device="7868772298",
        )
    )
    conn_id = sw.drain_events()[0].conn_id  # type: ignore[attr-defined]
    sw.request(
        rq.TSingleStepTransfer(reference_id=3, conn_id=conn_id, dn=port, dest="+17867100001")
    )
    pbx.request()
    golden = Path(__file__).parent / "csta_golden" / "pyssimist_TransferedEvent.xml"
    pbx.raw(encode_frame(9999, golden.read_bytes()))
    [released] = sw.drain_events()
    assert (released.name, released.reference_id, released.conn_id) == (  # type: ignore[attr-defined]
        "EventReleased",
        3,
        conn_id,
    )
    assert sw.calls == {}


def test_the_caller_hanging_up_while_a_transfer_waits_is_no_transfer() -> None:
    sw, pbx = control_switch()
    pbx.answered("100")
    sw.request(rq.TSingleStepTransfer(reference_id=4, conn_id=ORIG, dn=PORT, dest=DEST))
    invoke_id, _ = pbx.request()
    pbx.cleared("100", CALLER)  # the caller leaves before the PBX answers
    pbx.send(m.CSTAErrorCode(category="operation", value="invalidDestination"), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventReleased", None, ORIG, CALLER),
        ("EventError", 4, str(int(TErrorCode.TERR_INV_CALD_DN)), "TSingleStepTransfer"),
    ]
    # the same while a TransferCall waits; the port's own connection cleared is the transfer
    pbx.answered("200")
    orig, consult = conn(0x11), conn(0x12)
    sw.request(rq.TInitiateTransfer(reference_id=5, conn_id=orig, dn=PORT, dest=DEST))
    invoke_id, _ = pbx.request()
    pbx.send(
        m.ConsultationCallResponse(initiated_call=m.ConnectionID(call_id="201", device_id=PORT)),
        invoke_id,
    )
    pbx.far_answered("201", DEST)
    sw.drain_events()
    sw.request(rq.TCompleteTransfer(reference_id=6, conn_id=orig, consult_conn_id=consult, dn=PORT))
    invoke_id, _ = pbx.request()
    pbx.cleared("200", CALLER)
    pbx.cleared("201", PORT)
    pbx.send(m.TransferCallResponse(), invoke_id)
    assert shapes(sw.drain_events()) == [
        ("EventReleased", None, orig, CALLER),
        ("EventReleased", 6, consult, DEST),
    ]
