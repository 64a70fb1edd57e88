"""Unit tests of the CSTA simulator's call-control services (issue 23, docs/csta-sim.md "Call
control"): each service's response and the CSTA events on the monitors of the devices involved,
busy, no answer, refusals, hang-ups of any party, and a PBX without single-step transfer.

The expected event sequences are the ECMA-269 call flows written out, not taken from the code.
"""

from __future__ import annotations

import pytest

import tests.unit.test_sim_pbx as base
from ivr_server.sim.model import SimCall, SimError
from ivr_server.sim.pbx import SimPbx
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.events import RequestFailed, ResponseReceived, SessionEvent
from ivr_server.switch.csta.server import Refusal, csta_error

PORT, PORT2, EXT, EXT2 = base.PORT, base.PORT2, base.EXT, base.EXT2
CALLER = "5551234"


@pytest.fixture
def pbx() -> SimPbx:
    return SimPbx(base.config(), 0.0)


@pytest.fixture
def app(pbx: SimPbx) -> base.App:
    app = base.App(pbx)
    app.monitor(PORT, EXT, EXT2)
    return app


def conn(call: SimCall | str, device: str) -> m.ConnectionID:
    return m.ConnectionID(call_id=call if isinstance(call, str) else call.id, device_id=device)


def answered(pbx: SimPbx, app: base.App) -> SimCall:
    call = pbx.deliver(CALLER, PORT, 0.0)
    app.pump()
    assert call.state == "connected"
    return call


def served(events: list[SessionEvent]) -> m.CstaMessage:
    [response] = [e for e in events if isinstance(e, ResponseReceived | RequestFailed)]
    assert isinstance(response, ResponseReceived), response
    return response.response


def refused(events: list[SessionEvent]) -> m.NegativeResponse:
    [response] = [e for e in events if isinstance(e, ResponseReceived | RequestFailed)]
    assert isinstance(response, RequestFailed), response
    return response.error


def seen(events: list[SessionEvent]) -> list[tuple[str | None, str]]:
    return [(dn, type(event).__name__) for dn, event in base.csta_events(events)]


def parties(pbx: SimPbx, call: SimCall) -> tuple[str, ...]:
    assert call.conn_id is not None
    snapshot = pbx.switch.view.call(call.conn_id)
    return snapshot.parties if snapshot is not None else ()


def test_single_step_transfer_delivers_the_call_at_the_destination(
    pbx: SimPbx, app: base.App
) -> None:
    call = answered(pbx, app)
    events = app.ask(m.SingleStepTransferCall(active_call=conn(call, PORT), transferred_to=EXT))
    assert served(events) == m.SingleStepTransferCallResponse(transferred_call=conn(call, EXT))
    assert seen(events) == [
        (PORT, "TransferedEvent"),
        (EXT, "TransferedEvent"),
        (EXT, "DeliveredEvent"),
    ]
    delivered = base.csta_events(events)[-1][1]
    assert isinstance(delivered, m.DeliveredEvent)
    assert delivered.calling_device == CALLER and delivered.cause == "singleStepTransfer"
    assert (call.dn, call.state) == (EXT, "alerting")  # an extension rings until answered
    assert parties(pbx, call) == (EXT,)
    pbx.answer(call.id, 1.0)
    assert seen(app.pump()) == [(EXT, "EstablishedEvent")]
    assert pbx.switch.view.dn(EXT) is not None


def test_single_step_transfer_refusals(pbx: SimPbx, app: base.App) -> None:
    call = answered(pbx, app)
    pbx.set_dn(EXT, busy=True)
    transfer = m.SingleStepTransferCall(active_call=conn(call, PORT), transferred_to=EXT)
    assert refused(app.ask(transfer)) == csta_error("resourceBusy")
    unknown = m.SingleStepTransferCall(active_call=conn(call, PORT), transferred_to="999")
    assert refused(app.ask(unknown)) == csta_error("invalidDestination")
    gone = m.SingleStepTransferCall(active_call=conn("77", PORT), transferred_to=EXT2)
    assert refused(app.ask(gone)) == csta_error("invalidCallID")
    assert (call.dn, call.state) == (PORT, "connected")


def test_a_pbx_without_single_step_transfer() -> None:
    pbx = SimPbx(base.config(single_step_transfer=False), 0.0)
    app = base.App(pbx)
    app.monitor(PORT)
    call = answered(pbx, app)
    transfer = m.SingleStepTransferCall(active_call=conn(call, PORT), transferred_to=EXT)
    assert refused(app.ask(transfer)) == csta_error("serviceNotSupported")
    # the emulation's services are there
    events = app.ask(m.ConsultationCall(existing_call=conn(call, PORT), consulted_device=EXT))
    assert isinstance(served(events), m.ConsultationCallResponse)


def consultation(pbx: SimPbx, app: base.App, call: SimCall, dest: str = EXT) -> SimCall:
    events = app.ask(m.ConsultationCall(existing_call=conn(call, PORT), consulted_device=dest))
    response = served(events)
    assert isinstance(response, m.ConsultationCallResponse)
    consult = pbx.call(response.initiated_call.call_id or "")
    assert (consult.ani, consult.dn) == (PORT, dest)
    assert call.held
    return consult


def test_consultation_then_transfer(pbx: SimPbx, app: base.App) -> None:
    call = answered(pbx, app)
    events = app.ask(m.ConsultationCall(existing_call=conn(call, PORT), consulted_device=EXT))
    assert seen(events) == [
        (PORT, "HeldEvent"),
        (PORT, "ServiceInitiatedEvent"),
        (PORT, "OriginatedEvent"),
        (EXT, "DeliveredEvent"),
        (PORT, "DeliveredEvent"),
    ]
    response = served(events)
    assert isinstance(response, m.ConsultationCallResponse)
    consult = pbx.call(response.initiated_call.call_id or "")
    pbx.answer(consult.id, 1.0)
    assert seen(app.pump()) == [(EXT, "EstablishedEvent"), (PORT, "EstablishedEvent")]
    events = app.ask(m.TransferCall(held_call=conn(call, PORT), active_call=conn(consult, PORT)))
    assert served(events) == m.TransferCallResponse(transferred_call=conn(call, EXT))
    assert seen(events) == [(PORT, "TransferedEvent"), (EXT, "TransferedEvent")]
    assert (call.dn, call.state, call.held) == (EXT, "connected", False)
    assert consult.state == "cleared"
    assert parties(pbx, call) == (EXT,)
    assert consult.conn_id is not None and pbx.switch.view.call(consult.conn_id) is None


def test_consultation_to_a_busy_destination_then_reconnect(pbx: SimPbx, app: base.App) -> None:
    call = answered(pbx, app)
    pbx.set_dn(EXT, busy=True)
    events = app.ask(m.ConsultationCall(existing_call=conn(call, PORT), consulted_device=EXT))
    assert seen(events)[-1] == (PORT, "FailedEvent")
    failed = base.csta_events(events)[-1][1]
    assert isinstance(failed, m.FailedEvent) and failed.cause == "busy"
    response = served(events)
    assert isinstance(response, m.ConsultationCallResponse)
    consult_id = response.initiated_call.call_id or ""
    transfer = m.TransferCall(held_call=conn(call, PORT), active_call=conn(consult_id, PORT))
    assert refused(app.ask(transfer)) == csta_error("stateIncompatibility/invalidObjectState")
    reconnect = m.ReconnectCall(active_call=conn(consult_id, PORT), held_call=conn(call, PORT))
    events = app.ask(reconnect)
    assert served(events) == m.ReconnectCallResponse()
    assert seen(events) == [
        (PORT, "ConnectionClearedEvent"),
        (PORT, "CallClearedEvent"),
        (PORT, "RetrievedEvent"),
    ]
    assert not call.held and pbx.call(consult_id).state == "cleared"
    assert pbx.switch.view.call(call.conn_id or "") is not None


def test_consulted_party_hangs_up_then_retrieve(pbx: SimPbx, app: base.App) -> None:
    call = answered(pbx, app)
    consult = consultation(pbx, app, call)
    pbx.answer(consult.id, 1.0)
    app.pump()
    pbx.hangup(consult.id, 2.0, party=EXT)
    assert seen(app.pump()) == [
        (EXT, "ConnectionClearedEvent"),
        (PORT, "ConnectionClearedEvent"),
        (EXT, "CallClearedEvent"),
        (PORT, "CallClearedEvent"),
    ]
    events = app.ask(m.RetrieveCall(call_to_be_retrieved=conn(call, PORT)))
    assert served(events) == m.RetrieveCallResponse()
    assert seen(events) == [(PORT, "RetrievedEvent")]
    assert not call.held


def test_consultation_then_conference_and_a_party_leaves(pbx: SimPbx, app: base.App) -> None:
    call = answered(pbx, app)
    consult = consultation(pbx, app, call)
    pbx.answer(consult.id, 1.0)
    app.pump()
    events = app.ask(m.ConferenceCall(held_call=conn(call, PORT), active_call=conn(consult, PORT)))
    assert served(events) == m.ConferenceCallResponse(conference_call=conn(call, PORT))
    assert seen(events) == [(PORT, "ConferencedEvent"), (EXT, "ConferencedEvent")]
    assert call.joined == [EXT] and not call.held
    assert parties(pbx, call) == (PORT, EXT)
    pbx.hangup(call.id, 2.0, party=EXT)
    assert seen(app.pump()) == [(PORT, "ConnectionClearedEvent"), (EXT, "ConnectionClearedEvent")]
    assert call.state == "connected" and call.joined == []
    assert parties(pbx, call) == (PORT,)
    with pytest.raises(SimError):
        pbx.hangup(call.id, 3.0, party=EXT2)


def test_single_step_conference_and_the_port_leaving(pbx: SimPbx, app: base.App) -> None:
    call = answered(pbx, app)
    events = app.ask(m.SingleStepConferenceCall(active_call=conn(call, PORT), device_to_join=EXT))
    assert isinstance(served(events), m.SingleStepConferenceCallResponse)
    assert seen(events) == [(PORT, "ConferencedEvent"), (EXT, "ConferencedEvent")]
    events = app.ask(m.ClearConnection(connection_to_be_cleared=conn(call, PORT)))
    assert seen(events) == [(PORT, "ConnectionClearedEvent"), (EXT, "ConnectionClearedEvent")]
    assert (call.dn, call.joined, call.state) == (EXT, [], "connected")  # the agent keeps it
    assert parties(pbx, call) == (EXT,)


def test_make_call_rings_until_answered_or_hung_up(pbx: SimPbx, app: base.App) -> None:
    events = app.ask(m.MakeCall(calling_device=PORT, called_directory_number=EXT))
    response = served(events)
    assert isinstance(response, m.MakeCallResponse)
    assert seen(events) == [
        (PORT, "ServiceInitiatedEvent"),
        (PORT, "OriginatedEvent"),
        (EXT, "DeliveredEvent"),
        (PORT, "DeliveredEvent"),
    ]
    call = pbx.call(response.calling_device.call_id or "")
    assert call.state == "alerting"
    pbx.handle_timer(60.0)
    assert call.state == "alerting"  # an extension without answer delay: never by itself
    pbx.hangup(call.id, 5.0)  # the port gives up
    assert call.state == "cleared"
    assert pbx.switch.view.call(call.conn_id or "") is None


def test_make_call_answered_after_the_dn_delay_or_busy(pbx: SimPbx, app: base.App) -> None:
    pbx.set_dn(EXT, answer_delay=2.0)
    response = served(app.ask(m.MakeCall(calling_device=PORT, called_directory_number=EXT)))
    assert isinstance(response, m.MakeCallResponse)
    call = pbx.call(response.calling_device.call_id or "")
    assert pbx.next_deadline() == 2.0
    pbx.handle_timer(2.0)
    assert call.state == "connected"
    assert seen(app.pump(2.0)) == [(EXT, "EstablishedEvent"), (PORT, "EstablishedEvent")]
    events = app.ask(m.MakeCall(calling_device=PORT2, called_directory_number=EXT))
    assert seen(events) == []  # PORT2 is not monitored: EXT's monitor sees nothing of a failure
    response = served(events)
    assert isinstance(response, m.MakeCallResponse)
    busy = pbx.call(response.calling_device.call_id or "")
    assert busy.state == "dialing"
    events = app.ask(m.ClearConnection(connection_to_be_cleared=conn(busy, PORT2)))
    assert isinstance(served(events), m.ClearConnectionResponse)
    assert busy.state == "cleared"
    assert refused(
        app.ask(m.MakeCall(calling_device=PORT, called_directory_number="0612345678"))
    ) == csta_error("invalidDestination")


@pytest.mark.parametrize(
    "request_name", ["ConsultationCall", "MakeCall", "SingleStepConferenceCall"]
)
def test_a_refusal_rule_delays_and_refuses_every_kind(
    pbx: SimPbx, app: base.App, request_name: str
) -> None:
    call = answered(pbx, app)
    requests: dict[str, m.CstaRequest] = {
        "ConsultationCall": m.ConsultationCall(
            existing_call=conn(call, PORT), consulted_device=EXT
        ),
        "MakeCall": m.MakeCall(calling_device=PORT2, called_directory_number=EXT),
        "SingleStepConferenceCall": m.SingleStepConferenceCall(
            active_call=conn(call, PORT), device_to_join=EXT
        ),
    }
    error = csta_error("invalidDestination")
    pbx.add_refusal(Refusal(request=request_name, error=error, delay=4.2))
    assert app.ask(requests[request_name], 1.0) == []
    pbx.handle_timer(5.2)
    assert refused(app.pump(5.2)) == error
    assert (call.dn, call.state, call.held, call.joined) == (PORT, "connected", False, [])


def test_a_scenario_hangs_up_a_named_party() -> None:
    from ivr_server.sim.operations import Hangup
    from ivr_server.sim.scenario import parse_scenario

    [step] = parse_scenario('[[step]]\nat = 3\nop = "hangup"\ncall = "first"\nparty = "3081"\n')
    assert step.op == Hangup(call="first", party="3081")
