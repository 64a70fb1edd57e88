"""The CSTA simulator's call control as a process (issue 23, docs/csta-sim.md "Call control"): the
services over a real CSTA link, hang-ups of any party through the HTTP API, and the setting of a
PBX without single-step transfer."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.events import RequestFailed, ResponseReceived
from tests.integration.test_csta_sim import PBX, Sim, kinds, started

pytestmark = pytest.mark.xdist_group("csta-sim")

PORT, EXT = "3001", "3081"


@pytest.fixture
def sim() -> Iterator[Sim]:
    sim = Sim("--config", str(PBX))
    yield sim
    if sim.proc.poll() is None:
        sim.stop()


def delivered(sim: Sim) -> str:
    status, call = sim.call("POST", "/calls", {"from": "5551234", "to": PORT, "dnis": "8000"})
    assert (status, call["state"]) == (201, "connected")
    call_id: str = call["id"]
    return call_id


def test_single_step_transfer_then_the_agent_answers_and_hangs_up(sim: Sim) -> None:
    app = started(sim, PORT, EXT)
    call_id = delivered(sim)
    assert kinds(app.read(until=2)) == ["DeliveredEvent", "EstablishedEvent"]
    active = m.ConnectionID(call_id=call_id, device_id=PORT)
    app.ask(m.SingleStepTransferCall(active_call=active, transferred_to=EXT))
    events = app.read(until=4)
    assert isinstance(events[0], ResponseReceived)
    assert kinds(events) == ["TransferedEvent", "TransferedEvent", "DeliveredEvent"]
    call = sim.call("GET", f"/calls/{call_id}")[1]
    assert (call["to"], call["state"]) == (EXT, "alerting")
    assert sim.call("POST", f"/calls/{call_id}/answer", {})[1]["state"] == "connected"
    status, hung = sim.call("POST", f"/calls/{call_id}/hangup", {"party": EXT})
    assert (status, hung["state"], hung["cleared_by"]) == (200, "cleared", EXT)
    assert kinds(app.read(until=3)) == [
        "EstablishedEvent",
        "ConnectionClearedEvent",
        "CallClearedEvent",
    ]


def test_consultation_the_consulted_party_hangs_up_then_retrieve(sim: Sim) -> None:
    app = started(sim, PORT)
    call_id = delivered(sim)
    app.read(until=2)
    held = m.ConnectionID(call_id=call_id, device_id=PORT)
    app.ask(m.ConsultationCall(existing_call=held, consulted_device=EXT))
    events = app.read(until=5)
    [response] = [e for e in events if isinstance(e, ResponseReceived)]
    assert isinstance(response.response, m.ConsultationCallResponse)
    assert kinds(events) == [
        "HeldEvent",
        "ServiceInitiatedEvent",
        "OriginatedEvent",
        "DeliveredEvent",
    ]
    consult = response.response.initiated_call.call_id
    status, listed = sim.call("GET", f"/calls/{call_id}")
    assert (status, listed["held"]) == (200, True)
    assert sim.call("POST", f"/calls/{consult}/hangup", {"party": "3099"})[0] == 422
    assert sim.call("POST", f"/calls/{consult}/hangup", {"party": EXT})[0] == 200
    assert kinds(app.read(until=2)) == ["ConnectionClearedEvent", "CallClearedEvent"]
    app.ask(m.RetrieveCall(call_to_be_retrieved=held))
    events = app.read(until=2)
    assert isinstance(events[0], ResponseReceived)
    assert kinds(events) == ["RetrievedEvent"]
    assert sim.call("GET", f"/calls/{call_id}")[1]["held"] is False


def test_a_pbx_without_single_step_transfer(tmp_path: Path) -> None:
    config = tmp_path / "pbx.toml"
    text = PBX.read_text(encoding="utf-8").replace(
        "single-step-transfer = true", "single-step-transfer = false"
    )
    assert "single-step-transfer = false" in text
    config.write_text(text, encoding="utf-8")
    sim = Sim("--config", str(config))
    try:
        app = started(sim, PORT)
        call_id = delivered(sim)
        app.read(until=2)
        active = m.ConnectionID(call_id=call_id, device_id=PORT)
        app.ask(m.SingleStepTransferCall(active_call=active, transferred_to=EXT))
        [refused] = app.read(until=1)
        assert isinstance(refused, RequestFailed)
        assert refused.error == m.CSTAErrorCode(category="operation", value="serviceNotSupported")
    finally:
        sim.stop()
