"""The simulated PBX, sans-IO: our CSTA client session against it, the canonical call flows,
agents, busy / no-answer / out-of-service DNs, refusals and link drops."""

from __future__ import annotations

import pytest

from ivr_server.sim.config import AgentConfig, DnConfig, SimConfig, SimulatorOptions
from ivr_server.sim.model import SimError
from ivr_server.sim.pbx import ENDED_KEPT, SimPbx
from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.events import (
    EventReceived,
    RequestFailed,
    ResponseReceived,
    SessionEvent,
    SessionLost,
    SessionStarted,
)
from ivr_server.switch.csta.server import Refusal, csta_error
from ivr_server.switch.csta.session import CstaSession
from ivr_server.vocabulary import DnType

PORT, PORT2, EXT, EXT2, QUEUE = "3001", "3002", "3081", "3082", "3085"


def config(**options: object) -> SimConfig:
    dns = (
        DnConfig(number=PORT, type=DnType.VOICE_TREATMENT_PORT),
        DnConfig(number=PORT2, type=DnType.VOICE_TREATMENT_PORT),
        DnConfig(number=EXT, type=DnType.EXTENSION),
        DnConfig(number=EXT2, type=DnType.EXTENSION),
        DnConfig(number=QUEUE, type=DnType.ACD_QUEUE),
    )
    return SimConfig(simulator=SimulatorOptions(**options), dns=dns)


_INBOXES: dict[int, dict[int, tuple[bytes, bool]]] = {}
"""What the PBX wrote to each link and not yet read by its App (by PBX, by link)."""


class App:
    """An application connected to the PBX: our client session on one link."""

    def __init__(self, pbx: SimPbx, now: float = 0.0, application_id: str = "ivr-server") -> None:
        self.pbx = pbx
        link = pbx.open_link("test", now)
        assert link is not None
        self.link = link
        self.session = CstaSession(application_id=application_id)
        self.closed = False
        self.session.connect(now)
        [started] = self.pump(now)
        assert isinstance(started, SessionStarted)

    def pump(self, now: float = 0.0) -> list[SessionEvent]:
        events: list[SessionEvent] = []
        while True:
            up = self.session.data_to_send()
            if up:
                self.pbx.link_data(self.link, up, now)
            inbox = _INBOXES.setdefault(id(self.pbx), {})
            for link, data, close in self.pbx.outgoing():
                got, was_closed = inbox.get(link, (b"", False))
                inbox[link] = (got + data, was_closed or close)
            down, close = inbox.pop(self.link, (b"", False))
            self.closed = self.closed or close
            if down:
                events += self.session.receive_data(down, now)
            if self.closed:
                events += self.session.receive_data(b"", now)
            if not up and not down:
                return events

    def monitor(self, *dns: str) -> None:
        for dn in dns:
            self.session.monitor_start(dn, 0.0)
        self.pump()

    def ask(self, request: m.CstaRequest, now: float = 0.0) -> list[SessionEvent]:
        self.session.send_request(request, now)
        return self.pump(now)


def csta_events(events: list[SessionEvent]) -> list[tuple[str | None, m.CstaEvent]]:
    return [(e.dn, e.event) for e in events if isinstance(e, EventReceived)]


def names(events: list[SessionEvent]) -> list[str]:
    return [type(e.event).__name__ for e in events if isinstance(e, EventReceived)]


@pytest.fixture
def pbx() -> SimPbx:
    return SimPbx(config(), 0.0)


@pytest.fixture
def app(pbx: SimPbx) -> App:
    app = App(pbx)
    app.monitor(PORT, EXT)
    return app


def test_a_call_to_a_port_is_delivered_then_answered_at_once(pbx: SimPbx, app: App) -> None:
    call = pbx.deliver("5551234", PORT, 0.0, dnis="8000")
    assert call.state == "connected"
    events = csta_events(app.pump())
    assert events == [
        (
            PORT,
            m.DeliveredEvent(
                monitor_cross_ref_id="1",
                connection=m.ConnectionID(call_id=call.id, device_id=PORT),
                alerting_device=PORT,
                calling_device="5551234",
                called_device="8000",
                local_connection_info="alerting",
                cause="newCall",
            ),
        ),
        (
            PORT,
            m.EstablishedEvent(
                monitor_cross_ref_id="1",
                established_connection=m.ConnectionID(call_id=call.id, device_id=PORT),
                answering_device=PORT,
                calling_device="5551234",
                called_device="8000",
                local_connection_info="connected",
                cause="newCall",
            ),
        ),
    ]
    assert call.as_json()["parties"] == ["5551234", PORT]


def test_a_call_through_a_queue_names_it(pbx: SimPbx, app: App) -> None:
    call = pbx.deliver("5551234", PORT, 0.0, queue=QUEUE, dnis="8000")
    [(_, delivered), (_, established)] = csta_events(app.pump())
    assert isinstance(delivered, m.DeliveredEvent) and isinstance(established, m.EstablishedEvent)
    assert (delivered.last_redirection_device, delivered.cause) == (QUEUE, "distributed")
    assert established.last_redirection_device == QUEUE
    assert call.as_json()["queue"] == QUEUE


def test_an_extension_rings_until_answered(pbx: SimPbx, app: App) -> None:
    call = pbx.deliver("5551234", EXT, 0.0)
    assert call.state == "alerting"
    assert names(app.pump()) == ["DeliveredEvent"]
    assert pbx.next_deadline() is not None  # only the session's expiry
    pbx.handle_timer(100.0)
    assert call.state == "alerting"
    pbx.answer(call.id, 100.0)
    assert names(app.pump()) == ["EstablishedEvent"]
    with pytest.raises(SimError) as again:
        pbx.answer(call.id, 100.0)
    assert again.value.status == 409


def test_answer_delays_come_from_the_call_the_dn_or_the_simulator() -> None:
    pbx = SimPbx(config(answer_delay=1.5), 0.0)
    app = App(pbx)
    app.monitor(PORT, PORT2, EXT)
    default = pbx.deliver("1", PORT, 0.0)
    given = pbx.deliver("2", EXT, 0.0, answer_after=0.5)
    pbx.set_dn(PORT2, answer_delay=3.0)
    per_dn = pbx.deliver("3", PORT2, 0.0)
    assert pbx.next_deadline() == 0.5
    pbx.handle_timer(0.5)
    assert (given.state, default.state) == ("connected", "alerting")
    assert pbx.next_deadline() == 1.5
    pbx.handle_timer(1.5)
    assert (default.state, per_dn.state) == ("connected", "alerting")
    pbx.handle_timer(3.0)
    assert per_dn.state == "connected"
    assert names(app.pump()).count("EstablishedEvent") == 3


def test_the_caller_hangs_up(pbx: SimPbx, app: App) -> None:
    call = pbx.deliver("5551234", PORT, 0.0)
    app.pump()
    pbx.hangup(call.id, 1.0)
    events = csta_events(app.pump())
    assert [e for _, e in events] == [
        m.ConnectionClearedEvent(
            monitor_cross_ref_id="1",
            dropped_connection=m.ConnectionID(call_id=call.id, device_id="5551234"),
            releasing_device="5551234",
            local_connection_info="null",
            cause="normalClearing",
        ),
        m.CallClearedEvent(
            monitor_cross_ref_id="1",
            cleared_call=m.ConnectionID(call_id=call.id),
            local_connection_info="null",
            cause="normalClearing",
        ),
    ]
    assert (call.state, call.cleared_by) == ("cleared", "5551234")
    assert pbx.switch.view.calls() is not None and list(pbx.switch.view.calls()) == []
    with pytest.raises(SimError):
        pbx.hangup(call.id, 2.0)


def test_the_application_clears_the_port(pbx: SimPbx, app: App) -> None:
    call = pbx.deliver("5551234", PORT, 0.0)
    app.pump()
    clear = m.ClearConnection(
        connection_to_be_cleared=m.ConnectionID(call_id=call.id, device_id=PORT)
    )
    events = app.ask(clear)
    assert isinstance(events[0], ResponseReceived)
    assert events[0].response == m.ClearConnectionResponse()
    assert [(dn, type(e).__name__) for dn, e in csta_events(events)] == [
        (PORT, "ConnectionClearedEvent"),
        (PORT, "CallClearedEvent"),
    ]
    cleared = csta_events(events)[0][1]
    assert isinstance(cleared, m.ConnectionClearedEvent)
    assert cleared.dropped_connection == m.ConnectionID(call_id=call.id, device_id=PORT)
    assert cleared.releasing_device == PORT
    assert (call.state, call.cleared_by) == ("cleared", PORT)
    [failed] = app.ask(clear)
    assert isinstance(failed, RequestFailed)
    assert failed.error == m.CSTAErrorCode(category="operation", value="invalidCallID")


def test_clear_connection_of_a_device_not_in_the_call_fails(pbx: SimPbx, app: App) -> None:
    call = pbx.deliver("5551234", PORT, 0.0)
    app.pump()
    connection = m.ConnectionID(call_id=call.id, device_id=EXT)
    [failed] = app.ask(m.ClearConnection(connection_to_be_cleared=connection))
    assert isinstance(failed, RequestFailed)
    assert failed.error == m.CSTAErrorCode(category="operation", value="invalidConnectionID")
    assert call.state == "connected"


def test_busy_dns_fail_the_call_on_the_callers_side(pbx: SimPbx, app: App) -> None:
    pbx.set_dn(PORT2, busy=True)
    call = pbx.deliver(EXT, PORT2, 0.0)
    assert call.state == "busy"
    [(dn, failed)] = csta_events(app.pump())
    assert dn == EXT and isinstance(failed, m.FailedEvent)
    assert (failed.cause, failed.failing_device) == ("busy", PORT2)
    first = pbx.deliver("5551234", PORT, 0.0)
    assert pbx.deliver("5551235", PORT, 0.0).state == "busy"  # one call per DN
    app.pump()
    pbx.hangup(first.id, 1.0)
    assert pbx.deliver("5551235", PORT, 1.0).state == "connected"


def test_no_answer_dns_ring_and_are_answered_only_by_hand(pbx: SimPbx, app: App) -> None:
    pbx.set_dn(PORT, no_answer=True)
    call = pbx.deliver("5551234", PORT, 0.0)
    assert call.state == "alerting"
    pbx.handle_timer(60.0)
    assert names(app.pump()) == ["DeliveredEvent"]
    pbx.answer(call.id, 61.0)
    assert call.state == "connected"


def test_unknown_dns_and_queues_cannot_be_called(pbx: SimPbx) -> None:
    with pytest.raises(SimError) as unknown:
        pbx.deliver("1", "9999", 0.0)
    assert unknown.value.status == 404
    with pytest.raises(SimError) as queue:
        pbx.deliver("1", QUEUE, 0.0)
    assert queue.value.status == 422
    with pytest.raises(SimError) as no_call:
        pbx.call("77")
    assert no_call.value.status == 404
    with pytest.raises(SimError):
        pbx.set_dn("9999", busy=True)


def test_out_of_service_and_back(pbx: SimPbx, app: App) -> None:
    pbx.set_dn(PORT, in_service=False)
    assert csta_events(app.pump()) == [
        (PORT, m.OutOfServiceEvent(monitor_cross_ref_id="1", device=PORT))
    ]
    assert pbx.deliver("1", PORT, 0.0).state == "out-of-service"
    assert pbx.dn_json(PORT)["in_service"] is False
    pbx.set_dn(PORT, in_service=True)
    assert names(app.pump()) == ["BackInServiceEvent"]
    assert pbx.deliver("1", PORT, 0.0).state == "connected"


def test_snapshot_device_lists_the_calls_and_their_states(pbx: SimPbx, app: App) -> None:
    connected = pbx.deliver("5551234", PORT, 0.0)
    alerting = pbx.deliver("5551235", EXT, 0.0)
    app.pump()
    for dn, call, state in ((PORT, connected, "connected"), (EXT, alerting, "alerting")):
        [answer] = app.ask(m.SnapshotDevice(snapshot_object=dn))
        assert isinstance(answer, ResponseReceived)
        assert answer.response == m.SnapshotDeviceResponse(
            calls=(
                m.SnapshotDeviceInfo(
                    connection=m.ConnectionID(call_id=call.id, device_id=dn),
                    local_connection_state=state,
                ),
            )
        )
    [empty] = app.ask(m.SnapshotDevice(snapshot_object=PORT2))
    assert isinstance(empty, ResponseReceived) and empty.response == m.SnapshotDeviceResponse()
    [unknown] = app.ask(m.SnapshotDevice(snapshot_object="9999"))
    assert isinstance(unknown, RequestFailed)


def test_agents_log_on_change_state_and_log_off(pbx: SimPbx, app: App) -> None:
    def set_state(state: str, **extra: str) -> list[SessionEvent]:
        return app.ask(m.SetAgentState(device=EXT, requested_agent_state=state, **extra))

    def state_now() -> m.AgentStateEntry:
        [answer] = app.ask(m.GetAgentState(device=EXT))
        assert isinstance(answer, ResponseReceived)
        assert isinstance(answer.response, m.GetAgentStateResponse)
        return answer.response.agents[0]

    assert state_now() == m.AgentStateEntry(logged_on_state=False, agent_state="agentNull")
    events = set_state("loggedOn", agent_id="A1", group=QUEUE)
    assert isinstance(events[0], ResponseReceived)
    logged_on = csta_events(events)[0][1]
    assert logged_on == m.AgentLoggedOnEvent(
        monitor_cross_ref_id="2", agent_device=EXT, agent_id="A1", acd_group=QUEUE
    )
    assert "AgentReadyEvent" in names(set_state("ready"))
    assert state_now() == m.AgentStateEntry(
        agent_id="A1", logged_on_state=True, agent_state="agentReady"
    )
    assert names(set_state("workingAfterCall")) == ["AgentWorkingAfterCallEvent"]
    assert state_now().agent_state == "agentWorkingAfterCall"
    assert names(set_state("notReady")) == ["AgentNotReadyEvent"]
    assert state_now().agent_state == "agentNotReady"
    [again] = set_state("loggedOn", agent_id="A1")
    assert isinstance(again, RequestFailed)
    assert names(set_state("loggedOff")) == ["AgentLoggedOffEvent"]
    [bad] = set_state("onBreak")
    assert isinstance(bad, RequestFailed)
    assert bad.error == m.CSTAErrorCode(category="operation", value="invalidAgentState")
    [queue] = app.ask(m.SetAgentState(device=QUEUE, requested_agent_state="loggedOn"))
    assert isinstance(queue, RequestFailed)


def test_agents_of_the_configuration_start_logged_in() -> None:
    base = config()
    agents = (AgentConfig(dn=EXT, agent_id="A7", queue=QUEUE, ready=True),)
    pbx = SimPbx(SimConfig(simulator=base.simulator, dns=base.dns, agents=agents), 0.0)
    agent = pbx.dn_json(EXT)["agent"]
    assert agent == {"agent_id": "A7", "queue": QUEUE, "state": "Ready"}


def test_a_pbx_without_single_step_transfer_refuses_it_and_refusal_rules_still_apply() -> None:
    pbx = SimPbx(config(single_step_transfer=False), 0.0)
    app = App(pbx)
    app.monitor(PORT, EXT)
    call = pbx.deliver("5551234", PORT, 0.0)
    app.pump()
    transfer = m.SingleStepTransferCall(
        active_call=m.ConnectionID(call_id=call.id, device_id=PORT), transferred_to=EXT
    )
    [refused] = app.ask(transfer)
    assert isinstance(refused, RequestFailed)
    assert refused.error == m.CSTAErrorCode(category="operation", value="serviceNotSupported")
    error = csta_error("invalidDestination")
    pbx.add_refusal(Refusal(request="SingleStepTransferCall", error=error, delay=4.5))
    assert app.ask(transfer, 10.0) == []
    assert pbx.next_deadline() == 14.5
    pbx.handle_timer(14.5)
    [late] = app.pump(14.5)
    assert isinstance(late, RequestFailed) and late.error == error
    assert call.state == "connected"


def test_a_refusal_rule_refuses_a_service_the_pbx_offers(pbx: SimPbx, app: App) -> None:
    pbx.add_refusal(Refusal(request="SnapshotDevice", error=csta_error("resourceBusy")))
    [refused] = app.ask(m.SnapshotDevice(snapshot_object=PORT))
    assert isinstance(refused, RequestFailed)
    [served] = app.ask(m.SnapshotDevice(snapshot_object=PORT))
    assert isinstance(served, ResponseReceived)


def test_events_reach_every_session_monitoring_the_dn(pbx: SimPbx, app: App) -> None:
    other = App(pbx)
    other.monitor(PORT)
    pbx.deliver("5551234", PORT, 0.0)
    assert names(app.pump()) == names(other.pump()) == ["DeliveredEvent", "EstablishedEvent"]


def test_a_link_drop_closes_every_connection_and_refuses_new_ones(pbx: SimPbx, app: App) -> None:
    other = App(pbx)
    assert pbx.drop_link(5.0, down_for=10.0) == 2
    assert app.pump(5.0)[-1] == SessionLost(reason="the PBX closed the link")
    assert other.pump(5.0)[-1] == SessionLost(reason="the PBX closed the link")
    assert pbx.links == {}
    assert pbx.open_link("late", 14.0) is None
    assert pbx.open_link("back", 15.0) is not None


def test_a_session_not_renewed_expires(pbx: SimPbx) -> None:
    app = App(pbx, application_id="x")
    assert pbx.links[app.link].session.duration_s == 180
    pbx.handle_timer(180.0)
    assert app.pump(180.0)[-1] == SessionLost(reason="the PBX closed the link")
    assert pbx.links == {}


def test_the_application_id_is_checked_when_configured() -> None:
    pbx = SimPbx(config(application_id="ivr-server"), 0.0)
    link = pbx.open_link("t", 0.0)
    assert link is not None
    session = CstaSession(application_id="someone-else")
    session.connect(0.0)
    pbx.link_data(link, session.data_to_send(), 0.0)
    [(_, data, close)] = pbx.outgoing()
    assert not close
    assert type(session.receive_data(data, 0.0)[0]).__name__ == "SessionRefused"
    pbx.link_lost(link, 0.0)
    assert pbx.links == {}


def test_ended_calls_are_kept_up_to_a_bound(pbx: SimPbx) -> None:
    first = pbx.deliver("1", PORT, 0.0)
    pbx.hangup(first.id, 0.0)
    for _ in range(ENDED_KEPT):
        pbx.hangup(pbx.deliver("1", PORT, 0.0).id, 0.0)
    assert first.id not in pbx.calls
    assert len(pbx.calls) == ENDED_KEPT
