"""Unit tests of the sans-IO call layer: the state table, deadline queues and the call manager
driven directly with a real virtual switch (no sockets, explicit clock)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ivr_server.calls import (
    REFUSALS,
    TRANSITIONS,
    CallInput,
    CallManager,
    CallSettings,
    CallState,
    DeadlineQueue,
    PortTarget,
    Refuse,
)
from ivr_server.calls.machine import markdown_table
from ivr_server.calls.replies import Refusal
from ivr_server.calls.timers import CallTimers
from ivr_server.switch import (
    DnType,
    TApplyTreatment,
    TCallerHangUp,
    TOpenLink,
    TRouteCall,
)
from ivr_server.switch.references import CALLS
from ivr_server.switch.virtual import VirtualSwitch
from ivr_server.wire import Message, Node
from ivr_server.wire import messages as m

ROOT = Path(__file__).resolve().parents[2]
OWNER = "session-1"


class Harness:
    """A call manager on one in-front switch with port DNs 4001-4003 and RP 5000."""

    def __init__(self, **timers: Any) -> None:
        self.switch = VirtualSwitch(
            "SW",
            "TS",
            [
                ("4001", DnType.VOICE_TREATMENT_PORT),
                ("4002", DnType.VOICE_TREATMENT_PORT),
                ("4003", DnType.VOICE_TREATMENT_PORT),
                ("5000", DnType.ROUTING_POINT),
            ],
        )
        self.switch.request(TOpenLink(reference_id=1))
        self.switch.drain_events()
        self.sent: list[tuple[Any, str, Message]] = []
        self.now = 100.0
        self.mgr = CallManager(
            CallSettings(**timers), lambda owner, cid, msg: self.sent.append((owner, cid, msg))
        )
        self.refs = iter(range(1, 10_000))

    def pump(self) -> None:
        while True:
            events = self.switch.drain_events()
            if not events:
                return
            for event in events:
                self.mgr.on_event(event, self.now)

    def target(self, port: str = "1", mode: Any = "In-Front") -> PortTarget:
        return PortTarget(ivr="IVR", port=port, dn=f"400{port}", switch=self.switch, mode=mode)

    def new_call(self, call_id: str = "C1", port: str = "1", mode: Any = "In-Front") -> None:
        msg = m.NewCall(CallControlMode="Network", Version="4.0", CalledNum=port, ANI="1", DNIS="2")
        self.mgr.new_call(OWNER, call_id, msg, self.target(port, mode), self.now)
        self.pump()

    def send(self, call_id: str, msg: Message) -> list[Message]:
        """Deliver ``msg``; the answer (a Refusal's reply included) as a list of messages."""
        before = len(self.sent)
        try:
            self.mgr.handle(OWNER, "IVR", call_id, msg, self.now)
        except Refusal as refusal:
            self.pump()
            return [refusal.reply] if refusal.reply is not None else []
        self.pump()
        return [sent[2] for sent in self.sent[before:]]

    def take(self) -> list[Message]:
        out = [sent[2] for sent in self.sent]
        self.sent.clear()
        return out

    def tick(self, seconds: float) -> list[Message]:
        self.now += seconds
        before = len(self.sent)
        self.mgr.handle_timer(self.now)
        self.pump()
        return [sent[2] for sent in self.sent[before:]]

    def router(self, request: Any) -> None:
        self.switch.request(request)
        self.pump()

    def conn_id(self, call_id: str = "C1") -> str:
        conn_id = self.mgr.find(call_id)[0].conn_id
        assert conn_id is not None
        return conn_id

    def assert_clean(self) -> None:
        assert self.mgr.calls == {}
        assert self.mgr.pending_count() == 0
        assert self.mgr.timer_count() == 0
        assert list(self.switch.view.calls()) == []


# -- the table and its documentation -----------------------------------------------------------


def test_docs_show_the_table_the_code_runs() -> None:
    text = (ROOT / "docs/calls.md").read_text(encoding="utf-8")
    generated = re.search(
        r"<!-- generated: calls.machine.markdown_table\(\) -->\n(.*?)<!-- end generated -->",
        text,
        re.S,
    )
    assert generated is not None and generated.group(1) == markdown_table()


def test_every_action_of_the_table_exists() -> None:
    actions = Harness().mgr._ctx.actions  # registered by the families of messages
    for step in TRANSITIONS.values():
        assert callable(actions[step.action])


def test_end_call_and_timeouts_are_accepted_in_every_state() -> None:
    for state in CallState:
        if state is CallState.WAITING:  # Network mode's only (tests/unit/test_network_calls.py)
            continue
        assert TRANSITIONS[(state, CallInput.END_CALL)].next_state is None
        assert TRANSITIONS[(state, CallInput.CALL_TIMEOUT)].next_state is None
        assert TRANSITIONS[(state, CallInput.ORPHAN_TIMEOUT)].next_state is None


def test_refusals_never_shadow_a_transition() -> None:
    assert not set(REFUSALS) & set(TRANSITIONS)
    assert REFUSALS[(CallState.ALERTING, CallInput.ROUTE_REQUEST)] is Refuse.INVALID_REQ


# -- deadline queues ---------------------------------------------------------------------------


def test_deadline_queue_orders_restarts_and_cancels() -> None:
    q: DeadlineQueue[str] = DeadlineQueue()
    q.set("a", 1.0)
    q.set("b", 2.0)
    q.set("c", 3.0)
    q.set("a", 4.0)  # restart moves a to the end
    q.cancel("b")
    assert q.first() == 3.0 and len(q) == 2 and "a" in q and "b" not in q
    assert list(q.pop_due(3.5)) == ["c"]
    assert list(q.pop_due(3.9)) == []
    assert list(q.pop_due(4.0)) == ["a"]
    assert q.first() is None


def test_deadline_queue_resorts_when_a_duration_shrinks() -> None:
    q: DeadlineQueue[str] = DeadlineQueue()
    q.set("long", 10.0)
    q.set("short", 5.0)
    assert q.first() == 5.0
    assert list(q.pop_due(20.0)) == ["short", "long"]


@given(st.lists(st.tuples(st.sampled_from("abcdef"), st.floats(0, 100)), max_size=40))
def test_deadline_queue_pops_in_deadline_order(ops: list[tuple[str, float]]) -> None:
    q: DeadlineQueue[str] = DeadlineQueue()
    latest: dict[str, float] = {}
    for key, deadline in ops:
        q.set(key, deadline)
        latest[key] = deadline
    popped = list(q.pop_due(100.0))
    assert sorted(popped) == sorted(latest)
    assert [latest[k] for k in popped] == sorted(latest[k] for k in popped)


def test_call_timers_fire_kind_by_kind_and_cancel_together() -> None:
    timers = CallTimers()
    timers.call.set("A", 1.0)
    timers.orphan.set("B", 2.0)
    timers.ringing.set("C", 3.0)
    timers.router.set("D", 4.0)
    timers.router.set("E", 9.0)
    assert len(timers) == 5 and timers.first() == 1.0
    assert list(timers.pop_due(5.0)) == [
        ("D", CallInput.ROUTER_TIMEOUT),
        ("C", CallInput.WAIT_RINGING_TIMEOUT),
        ("B", CallInput.ORPHAN_TIMEOUT),
        ("A", CallInput.CALL_TIMEOUT),
    ]
    timers.call.set("E", 20.0)
    timers.cancel_all("E")
    assert len(timers) == 0 and timers.first() is None


# -- the manager -------------------------------------------------------------------------------


def test_switch_requests_carry_reference_ids_of_the_calls_range() -> None:
    h = Harness()
    msg = m.NewCall(CallControlMode="Network", Version="4.0", CalledNum="1")
    h.mgr.new_call(OWNER, "C1", msg, h.target(), h.now)
    events = h.switch.drain_events()
    for event in events:
        h.mgr.on_event(event, h.now)
    h.mgr.handle(OWNER, "IVR", "C1", m.RouteRequest(RouteDN="5000"), h.now)
    events += h.switch.drain_events()
    refs = {event.reference_id for event in events if event.reference_id is not None}
    assert refs and all(CALLS[0] <= ref <= CALLS[1] for ref in refs)


def test_in_front_call_rings_and_is_established_at_once() -> None:
    h = Harness()
    h.new_call()
    assert h.take() == [m.CallStatus(Event="Ringing"), m.CallStatus(Event="Established")]
    call = h.mgr.find("C1")[0]
    assert call.state is CallState.STARTED and call.last_event == "EventEstablished"
    assert re.fullmatch(r"[0-9a-f]{16}", h.conn_id())


def test_call_info_has_only_known_attributes() -> None:
    h = Harness()
    h.new_call()
    h.take()
    (info,) = h.send("C1", m.CallInfoReq(ReportUUID="true", ReportThirdPartyDN="true"))
    assert isinstance(info, m.CallInfoResp)
    assert (info.ANI, info.DNIS, info.CalledNum, info.PortDN) == ("1", "2", "1", "4001")
    assert info.ConnId == h.conn_id() and info.TSCallId == "1"
    assert info.UUID is not None and re.fullmatch(r"[0-9A-F]{32}", info.UUID)
    assert info.OtherDN is None and info.PortQueue is None and info.ThirdPartyDN is None


def test_behind_call_waits_for_ringing_and_times_out() -> None:
    h = Harness(wait_for_ringing=60.0)
    h.new_call(mode="Behind")
    assert h.take() == []
    assert h.mgr.find("C1")[0].state is CallState.AWAIT_RINGING
    # before the switch knows the call: what the real server answered (PROTOCOL.md §9.4.4)
    (get,) = h.send("C1", m.UDataGet(Keys="a", RequestId="1"))
    assert get == m.UDataResp(Result="NoMatch", RequestId="1")
    (put,) = h.send(
        "C1",
        m.UDataSet(Action="Add", RequestId="2", UDataEx=(Node(Name="a", Type="Str", Val="b"),)),
    )
    assert put == m.UDataResp(Result="MiscError", RequestId="2")
    (route,) = h.send("C1", m.RouteRequest(RouteDN="5000"))
    assert route == m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ")
    (info,) = h.send("C1", m.CallInfoReq())
    assert info == m.CallInfoResp(ANI="1", DNIS="2", CalledNum="1", PortDN="4001")
    assert h.tick(59.9) == []
    assert h.tick(0.1) == [m.EndCall(EndCause="Timeout")]
    h.assert_clean()


def test_router_timeout_answers_default_and_closes_the_dialog() -> None:
    h = Harness(router_timeout=4.0)
    h.new_call()
    h.take()
    assert h.send("C1", m.RouteRequest(RouteDN="5000", CED="12")) == []
    assert [c.conn_id for c in h.switch.view.waiting_calls("5000")] == [h.conn_id()]
    assert h.tick(3.9) == []
    assert h.tick(0.1) == [m.RouteResponse(RouteType="Default")]
    assert h.switch.view.waiting_calls("5000") == []
    assert h.mgr.find("C1")[0].state is CallState.ROUTED
    assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    h.assert_clean()


def test_treatment_cancel_and_held_route_response() -> None:
    h = Harness(router_timeout=4.0)
    h.new_call()
    h.take()
    h.send("C1", m.RouteRequest(RouteDN="5000"))
    conn = h.conn_id()
    h.router(TApplyTreatment(reference_id=1, conn_id=conn, dn="5000", treatment_type="Music"))
    assert h.take() == [m.TreatCall(Type="Music")]
    assert h.tick(10.0) == []  # no router timer while a treatment runs
    h.send("C1", m.TreatStatus(Status="Started"))
    h.router(TRouteCall(reference_id=2, conn_id=conn, dn="5000", dest="7001"))
    assert h.take() == [m.Cancel()]
    assert h.mgr.find("C1")[0].state.value == "CANCELLING"
    assert h.send("C1", m.CancelCompleted()) == [m.RouteResponse(RouteType="Normal", Dest="7001")]
    assert h.mgr.find("C1")[0].state.value == "ROUTED"


def test_completed_treatment_restarts_the_router_timer_and_attaches_data() -> None:
    h = Harness(router_timeout=4.0)
    h.new_call()
    h.take()
    h.send("C1", m.RouteRequest(RouteDN="5000"))
    conn = h.conn_id()
    h.router(
        TApplyTreatment(reference_id=1, conn_id=conn, dn="5000", treatment_type="CollectDigits")
    )
    h.take()
    h.send("C1", m.TreatStatus(Status="Started"))
    done = m.TreatStatus(
        Status="Completed", CED="42", UDataEx=(Node(Name="Lang", Type="Str", Val="EN"),)
    )
    assert h.send("C1", done) == []
    assert h.switch.view.user_data(conn) == (Node(Name="Lang", Type="Str", Val="EN"),)
    assert h.tick(4.0) == [m.RouteResponse(RouteType="Default")]


def test_blocked_requests_leave_the_state_alone() -> None:
    h = Harness()
    h.new_call()
    h.take()
    blocked = m.CallError(FailedReq="Unknown", TlibErrCode="BLOCKED_REQ")
    for msg in (
        m.TreatStatus(Status="Started"),
        m.CancelCompleted(),
        m.Failure(FailureCause="Busy"),
    ):
        assert h.send("C1", msg) == [blocked]
        assert h.mgr.find("C1")[0].state is CallState.STARTED
    h.send("C1", m.RouteRequest(RouteDN="5000"))
    assert h.send("C1", m.RouteRequest(RouteDN="5000")) == [blocked]


def test_hang_up_detaches_and_end_call_frees() -> None:
    h = Harness()
    h.new_call()
    h.send(
        "C1",
        m.UDataSet(Action="Add", RequestId="1", UDataEx=(Node(Name="k", Type="Int", Val="1"),)),
    )
    h.take()
    h.switch.request(TCallerHangUp(reference_id=2, conn_id=h.conn_id()))
    h.pump()
    assert h.take() == [m.CallStatus(Event="Released")]
    assert h.mgr.find("C1")[0].state is CallState.DETACHED
    (get,) = h.send("C1", m.UDataGetAll(RequestId="2"))
    assert get == m.UDataResp(
        Result="Success", RequestId="2", UDataEx=(Node(Name="k", Type="Int", Val="1"),)
    )
    assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    h.assert_clean()


def test_orphaned_calls_are_kept_adopted_or_released() -> None:
    h = Harness(orphan_call_timeout=600.0)
    h.new_call("C1", "1")
    h.new_call("C2", "2")
    h.take()
    h.mgr.owner_gone(OWNER, None, h.now)
    h.now += 100
    assert h.mgr.adopt("IVR", "session-2") == 2
    h.mgr.owner_gone("session-2", None, h.now)
    assert h.tick(599.0) == []
    assert {c.call_id for c in h.mgr.calls.values()} == {"C1", "C2"}
    h.tick(1.0)
    h.assert_clean()
    assert not h.mgr.port_busy("IVR", "1")


def test_call_timeout_ends_the_call() -> None:
    h = Harness(call_timeout=30.0)
    h.new_call()
    h.take()
    assert h.tick(30.0) == [m.EndCall(EndCause="Timeout")]
    h.assert_clean()


_IVR_INPUTS: list[Message] = [
    m.RouteRequest(RouteDN="5000"),
    m.RouteRequest(RouteDN="4002"),
    m.TreatStatus(Status="Started"),
    m.TreatStatus(Status="NotStarted"),
    m.TreatStatus(Status="Completed", CED="1"),
    m.CancelCompleted(),
    m.Connected(),
    m.Failure(FailureCause="NoAnswer"),
    m.CallInfoReq(),
    m.UDataGetAll(RequestId="r"),
    m.UDataSet(Action="Replace", RequestId="s", UDataEx=(Node(Name="a", Type="Str", Val="b"),)),
    m.UDataDel(Action="DeleteKey", Key="a", RequestId="d"),
    m.OneStepXfer(DestDN="7001"),
]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.sampled_from(_IVR_INPUTS),
            st.sampled_from(["treat", "route", "tick", "hangup"]),
        ),
        max_size=25,
    )
)
def test_any_sequence_keeps_the_call_consistent_and_ends_clean(steps: list[Any]) -> None:
    h = Harness(router_timeout=4.0)
    h.new_call()
    for step in steps:
        call = next(iter(h.mgr.find("C1")), None)
        if call is None:
            break
        if isinstance(step, Message):
            for reply in h.send("C1", step):
                assert reply.tag in {
                    "CallError",
                    "CallInfoResp",
                    "UDataResp",
                    "RouteResponse",
                    "TreatCall",
                    "Cancel",
                }
        elif step == "tick":
            h.tick(5.0)
        elif call.conn_id is None:
            continue
        elif step == "hangup":
            h.switch.request(TCallerHangUp(reference_id=2, conn_id=call.conn_id))
            h.pump()
        elif step == "treat":
            h.router(
                TApplyTreatment(
                    reference_id=9, conn_id=call.conn_id, dn="5000", treatment_type="Music"
                )
            )
        else:
            h.router(TRouteCall(reference_id=9, conn_id=call.conn_id, dn="5000", dest="7001"))
        call = next(iter(h.mgr.find("C1")), None)
        if call is not None and call.conn_id is not None and call.state is not CallState.DETACHED:
            waiting = h.switch.view.call(call.conn_id)
            assert waiting is not None
            assert (waiting.routing_point is not None) == (
                call.state in (CallState.ROUTING, CallState.TREAT_STARTING, CallState.TREATING)
            )
    if h.mgr.find("C1"):
        assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    h.assert_clean()


def test_unknown_call_and_other_ivr_get_no_such_call() -> None:
    h = Harness()
    h.new_call()
    with pytest.raises(Refusal) as info:
        h.mgr.handle(OWNER, "OTHER", "C1", m.CallInfoReq(), h.now)
    assert info.value.reply == m.CallError(FailedReq="NoSuchCall")
    with pytest.raises(Refusal) as info:
        h.mgr.handle(OWNER, "IVR", "nope", m.UDataGet(Keys="a", RequestId="7"), h.now)
    assert info.value.reply == m.UDataResp(Result="NoSuchCall", RequestId="7")
