"""Behind-mode calls on the real call manager, against a scripted premise switch: correlation at
the port DN, premise events kept for a NewCall to come, the answers before and after the PBX
reports the call, release, refusals by the switch, and a RouteRequest on a Virtual Routing Point
(MODES-AND-HA §1.2 B1-B3, B12-B15, G1, G13-G15)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ivr_server.calls import CallManager, CallSettings, CallState, DeferPolicy, PortTarget
from ivr_server.calls.replies import Refusal
from ivr_server.switch import (
    CallEvent,
    DnType,
    EventAttachedDataChanged,
    EventError,
    EventEstablished,
    EventLinkConnected,
    EventLinkDisconnected,
    EventReleased,
    EventRinging,
    EventRouteRequest,
    EventRouteUsed,
    RequestRouteCall,
    SwitchEvent,
    SwitchRequest,
    SwitchView,
    TAttachUserData,
    TCallerHangUp,
    TDeleteUserData,
    TReleaseCall,
    TRouteRequest,
    TUpdateUserData,
    kv_update,
)
from ivr_server.wire import Message, Node
from ivr_server.wire import messages as m

ROOT = Path(__file__).resolve().parents[2]
OWNER = "session-1"
PBX = "PBX"
CONN = "00000000000007d5"
CONN2 = "00000000000007d6"
TRANSFERS = ("OneStepXfer", "OneStepConf", "InitXfer", "InitConf", "CompleteXfer", "CompleteConf")


class ScriptedPremise:
    """A premise switch as the call side sees one (the ``Switch`` interface, a real
    ``SwitchView``): requests are recorded and answered as scripted in :attr:`answers` (by
    request class; unscripted: no answer yet, as a PBX that has not answered); :meth:`push` queues
    unsolicited premise events."""

    def __init__(self) -> None:
        self.name = PBX
        self.tserver = "TS_PBX"
        self.view = SwitchView(
            [
                ("3001", DnType.VOICE_TREATMENT_PORT),
                ("3002", DnType.VOICE_TREATMENT_PORT),
                ("3081", DnType.EXTENSION),
                ("3085", DnType.ACD_QUEUE),
                ("7900", DnType.VIRTUAL_ROUTING_POINT),
            ]
        )
        self.requests: list[SwitchRequest] = []
        self.answers: dict[type[SwitchRequest], Callable[[Any], list[SwitchEvent]]] = {
            TAttachUserData: self._attach,
            TUpdateUserData: self._attach,
            TRouteRequest: self._route_request,
        }
        self._queue: list[SwitchEvent] = []
        self.push(EventLinkConnected(switch=PBX, tserver=self.tserver))

    def request(self, req: SwitchRequest) -> None:
        self.requests.append(req)
        answer = self.answers.get(type(req))
        if answer is not None:
            self.push(*answer(req))

    def push(self, *events: SwitchEvent) -> None:
        for event in events:
            self.view.apply(event)
            self._queue.append(event)

    def drain_events(self) -> list[SwitchEvent]:
        events, self._queue = self._queue, []
        return events

    def compact(self) -> int:
        return 0

    def sent(self, cls: type[SwitchRequest]) -> list[Any]:
        return [req for req in self.requests if isinstance(req, cls)]

    # -- answers as the premise switch gives them ------------------------------------------------

    def _attach(self, req: TAttachUserData | TUpdateUserData) -> list[SwitchEvent]:
        record = self.view.call(req.conn_id)
        assert record is not None
        data = (
            record.user_data + req.user_data
            if isinstance(req, TAttachUserData)
            else kv_update(record.user_data, req.user_data)
        )
        return [
            EventAttachedDataChanged(
                switch=PBX,
                reference_id=req.reference_id,
                dn=req.dn,
                conn_id=req.conn_id,
                call_id=record.call_id,
                user_data=data,
            )
        ]

    def _route_request(self, req: TRouteRequest) -> list[SwitchEvent]:
        record = self.view.call(req.conn_id)
        assert record is not None
        return [
            EventRouteRequest(
                switch=PBX,
                reference_id=req.reference_id,
                dn=req.route_dn,
                conn_id=req.conn_id,
                call_id=record.call_id,
                other_dn=req.dn,
                collected_digits=req.collected_digits,
                user_data=record.user_data,
            )
        ]


def premise_event(
    cls: type[CallEvent],
    conn_id: str = CONN,
    dn: str = "3001",
    *,
    call_id: int = 2005,
    **attrs: Any,
) -> Any:
    """A premise event at ``dn`` about premise call ``call_id`` (the canonical inbound call:
    ANI 2225, DNIS 3001, other party 3081)."""
    base: dict[str, Any] = {"ani": "2225", "dnis": dn, "other_dn": "3081"}
    if cls is EventReleased:
        base = {"other_dn": "2225"}
    return cls(switch=PBX, dn=dn, conn_id=conn_id, call_id=call_id, **{**base, **attrs})


class Behind:
    """The call manager with one premise switch whose port DNs 3001-3002 are Behind ports."""

    def __init__(self, defer: bool = True, newcall_timeout: float = 30.0, **timers: Any) -> None:
        self.switch = ScriptedPremise()
        self.switch.drain_events()
        self.sent: list[tuple[Any, str, Message]] = []
        self.now = 100.0
        policy = DeferPolicy(defer, newcall_timeout)
        ports = {(PBX, "3001"): policy, (PBX, "3002"): policy}
        self.mgr = CallManager(
            CallSettings(behind_ports=ports, **timers),
            lambda owner, cid, msg: self.sent.append((owner, cid, msg)),
        )

    def pump(self) -> None:
        while events := self.switch.drain_events():
            for event in events:
                self.mgr.on_event(event, self.now)

    def new_call(self, call_id: str = "C1", port: str = "1") -> list[Message]:
        target = PortTarget(
            ivr="IVR", port=port, dn=f"300{port}", switch=self.switch, mode="Behind"
        )
        msg = m.NewCall(
            CallControlMode="Network",
            Version="4.0",
            CalledNum=port,
            ANI="4022",
            DNIS=f"*300{port}",
        )
        self.mgr.new_call(OWNER, call_id, msg, target, self.now)
        self.pump()
        return self.take()

    def push(self, *events: SwitchEvent) -> list[Message]:
        self.switch.push(*events)
        self.pump()
        return self.take()

    def send(self, call_id: str, msg: Message) -> list[Message]:
        """Deliver ``msg``; the answers (a Refusal's reply included)."""
        try:
            self.mgr.handle(OWNER, "IVR", call_id, msg, self.now)
        except Refusal as refusal:
            self.pump()
            return [refusal.reply] if refusal.reply is not None else []
        self.pump()
        return self.take()

    def state(self, call_id: str = "C1") -> CallState:
        return self.mgr.find(call_id)[0].state

    def call_info(self, call_id: str = "C1", **attrs: Any) -> m.CallInfoResp:
        """The ``CallInfoResp`` a ``CallInfoReq`` gets."""
        (info,) = self.send(call_id, m.CallInfoReq(**attrs))
        assert isinstance(info, m.CallInfoResp)
        return info

    def take(self) -> list[Message]:
        out = [sent[2] for sent in self.sent]
        self.sent.clear()
        return out

    def tick(self, seconds: float) -> list[Message]:
        self.now += seconds
        self.mgr.handle_timer(self.now)
        self.pump()
        return self.take()

    def answered_call(self, call_id: str = "C1") -> None:
        """A call that rang and was answered at 3001 after its NewCall."""
        assert self.new_call(call_id) == []
        assert self.push(premise_event(EventRinging), premise_event(EventEstablished)) == [
            RINGING,
            ESTABLISHED,
        ]

    def assert_clean(self) -> None:
        assert self.mgr.calls == {}
        assert self.mgr.pending_count() == 0
        assert self.mgr.timer_count() == 0


RINGING = m.CallStatus(Event="Ringing")
ESTABLISHED = m.CallStatus(Event="Established")
RELEASED = m.CallStatus(Event="Released")


# -- B1: correlation -------------------------------------------------------------------------------


def test_the_pbx_reporting_the_call_at_the_port_rings_then_establishes_it() -> None:
    h = Behind()
    assert h.new_call() == []  # nothing at once, nothing asked of the PBX
    assert h.switch.requests == []
    assert h.state() is CallState.AWAIT_RINGING
    assert h.push(premise_event(EventRinging)) == [RINGING]
    call = h.mgr.find("C1")[0]
    assert call.state is CallState.ALERTING
    assert (call.conn_id, call.switch_call_id) == (CONN, 2005)
    assert (call.ani, call.dnis, call.other_dn, call.queue) == ("2225", "3001", "3081", None)
    assert h.mgr.timer_count() == 1  # the wait for ringing stopped; the call timeout runs
    assert h.push(premise_event(EventEstablished)) == [ESTABLISHED]
    assert h.state() is CallState.STARTED
    assert h.switch.requests == []


def test_an_answer_without_alerting_still_rings_first() -> None:
    h = Behind()
    h.new_call()
    assert h.push(premise_event(EventEstablished)) == [RINGING, ESTABLISHED]
    assert h.state() is CallState.STARTED


def test_events_elsewhere_do_not_bind_the_waiting_call() -> None:
    h = Behind()
    h.new_call()
    other_switch = EventRinging(switch="OTHER", dn="3001", conn_id=CONN, call_id=1)
    solicited = premise_event(EventRinging, reference_id=77)
    assert h.push(other_switch, solicited, premise_event(EventRinging, dn="3081")) == []
    assert h.state() is CallState.AWAIT_RINGING
    assert h.push(premise_event(EventRinging, CONN2)) == [RINGING]
    assert h.mgr.find("C1")[0].conn_id == CONN2


def test_a_call_on_a_port_missing_from_the_settings_is_still_bound() -> None:
    h = Behind()
    h.mgr.reconfigure(CallSettings())  # no Behind port configured
    h.new_call(port="2")
    assert h.push(premise_event(EventRinging, dn="3002")) == [RINGING]
    assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    assert h.push(premise_event(EventRinging, CONN2, dn="3002")) == []  # nothing kept there
    h.new_call("C2", port="2")
    assert h.take() == []
    assert h.tick(60.0) == [m.EndCall(EndCause="Timeout")]
    h.assert_clean()


# -- G14: events before the NewCall ----------------------------------------------------------------


def test_events_before_the_newcall_are_kept_and_taken_at_once() -> None:
    h = Behind()
    assert h.push(premise_event(EventRinging), premise_event(EventEstablished)) == []
    assert h.mgr.timer_count() == 1  # waiting-for-newcall
    assert h.new_call() == [RINGING, ESTABLISHED]
    call = h.mgr.find("C1")[0]
    assert (call.state, call.conn_id, call.dnis) == (CallState.STARTED, CONN, "3001")
    assert h.mgr.timer_count() == 1  # the call timeout only
    assert h.tick(30.0) == []


def test_a_kept_ringing_alone_rings_and_the_answer_comes_later() -> None:
    h = Behind()
    h.push(premise_event(EventRinging))
    assert h.new_call() == [RINGING]
    assert h.push(premise_event(EventEstablished)) == [ESTABLISHED]


def test_a_second_premise_call_on_the_dn_is_ignored_while_the_first_is_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Behind()
    h.push(premise_event(EventRinging))
    with caplog.at_level(logging.INFO, "ivr_server.calls"):
        h.push(premise_event(EventRinging, CONN2, call_id=2006))
    assert "premise call 00000000000007d6 at 3001 ignored" in caplog.text
    assert h.new_call() == [RINGING]
    assert h.mgr.find("C1")[0].conn_id == CONN


def test_kept_events_are_dropped_on_release_and_expire() -> None:
    h = Behind(newcall_timeout=30.0)
    h.push(premise_event(EventRinging))
    h.push(premise_event(EventReleased))  # the caller gave up before the IVR's NewCall
    assert h.mgr.timer_count() == 0
    h.push(premise_event(EventRinging, CONN2), premise_event(EventReleased))  # not the kept one
    assert h.tick(29.9) == []
    assert h.tick(0.1) == []  # waiting-for-newcall-timeout: dropped
    assert h.mgr.timer_count() == 0
    assert h.new_call() == []
    assert h.state() is CallState.AWAIT_RINGING
    # the port keeps events again once the first are gone
    h.push(premise_event(EventReleased, CONN2))
    assert h.push(premise_event(EventRinging, CONN2)) == [RINGING]


def test_nothing_is_kept_without_defer_tlib_events() -> None:
    h = Behind(defer=False)
    assert h.push(premise_event(EventRinging), premise_event(EventEstablished)) == []
    assert h.mgr.timer_count() == 0
    assert h.new_call() == []
    assert h.state() is CallState.AWAIT_RINGING


def test_a_reload_drops_what_a_port_no_longer_keeps() -> None:
    h = Behind()
    h.push(premise_event(EventRinging), premise_event(EventRinging, dn="3002"))
    only_3002 = {(PBX, "3002"): DeferPolicy()}
    h.mgr.reconfigure(CallSettings(behind_ports=only_3002))
    assert h.mgr.timer_count() == 1
    assert h.new_call() == []
    assert h.new_call("C2", port="2") == [RINGING]


# -- wait for ringing (B1) and the answers before Ringing (B2) ------------------------------------


def test_wait_for_ringing_ends_the_call_and_frees_the_port() -> None:
    h = Behind(wait_for_ringing=60.0)
    h.new_call()
    assert h.tick(59.9) == []
    assert h.tick(0.1) == [m.EndCall(EndCause="Timeout")]
    h.assert_clean()
    assert h.switch.requests == []  # the PBX has no call of ours to release
    assert h.push(premise_event(EventRinging)) == []  # kept for the next NewCall
    assert h.new_call("C2") == [RINGING]


def test_before_ringing_requests_get_the_real_servers_answers() -> None:
    h = Behind()
    h.new_call()
    info = h.call_info(ReportUUID="true")
    assert info == m.CallInfoResp(ANI="4022", DNIS="*3001", CalledNum="1", PortDN="3001")
    assert h.send("C1", m.UDataGet(Keys="UEI", RequestId="1")) == [
        m.UDataResp(Result="NoMatch", RequestId="1")
    ]
    assert h.send("C1", m.UDataGetAll(RequestId="2")) == [
        m.UDataResp(Result="NoMatch", RequestId="2")
    ]
    data = (Node(Name="a", Type="Str", Val="b"),)
    assert h.send("C1", m.UDataSet(Action="Add", RequestId="3", UDataEx=data)) == [
        m.UDataResp(Result="MiscError", RequestId="3")
    ]
    assert h.send("C1", m.UDataDel(Action="DeleteAll", RequestId="4")) == [
        m.UDataResp(Result="MiscError", RequestId="4")
    ]
    assert h.send("C1", m.RouteRequest(RouteDN="7900")) == [
        m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ")
    ]
    for tag in TRANSFERS:
        (answer,) = h.send("C1", _transfer(tag))
        assert answer == m.CallError(FailedReq="Unknown", TlibErrCode="BLOCKED_REQ"), tag
    assert h.switch.requests == []
    assert h.state() is CallState.AWAIT_RINGING


def test_while_alerting_the_switch_knows_the_call_but_it_is_not_connected() -> None:
    h = Behind()
    h.new_call()
    h.push(premise_event(EventRinging))
    info = h.call_info()
    assert (info.ConnId, info.LastEvent, info.DNIS) == (CONN, "EventRinging", "3001")
    data = (Node(Name="a", Type="Str", Val="b"),)
    assert h.send("C1", m.UDataSet(Action="Add", RequestId="3", UDataEx=data)) == [
        m.UDataResp(Result="Success", RequestId="3")
    ]
    assert h.send("C1", m.RouteRequest(RouteDN="7900")) == [
        m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ")
    ]
    assert h.send("C1", _transfer("OneStepXfer")) == [
        m.CallError(FailedReq="Unknown", TlibErrCode="BLOCKED_REQ")
    ]
    assert h.state() is CallState.ALERTING


# -- B14, B15: an established Behind call ----------------------------------------------------------


def test_call_info_of_an_established_call_comes_from_the_latest_premise_event() -> None:
    h = Behind()
    h.new_call()
    h.push(
        premise_event(EventRinging, other_dn="3081", this_queue="3085"),
        premise_event(EventEstablished, other_dn="3081", this_queue="3085"),
    )
    info = h.call_info()
    assert info == m.CallInfoResp(
        ANI="2225",
        DNIS="3001",
        CalledNum="1",
        ConnId=CONN,
        TSCallId="2005",
        PortDN="3001",
        PortTrunk="0",
        PortQueue="3085",
        OtherDN="3081",
        LastEvent="EventEstablished",
    )
    assert list(info.__struct_fields__[:11]) == [
        "ANI",
        "DNIS",
        "CalledNum",
        "ConnId",
        "TSCallId",
        "PortDN",
        "PortTrunk",
        "PortQueue",
        "OtherDN",
        "OtherTrunk",
        "OtherQueue",
    ]


def test_call_info_without_a_queue_or_other_party_names_the_caller() -> None:
    h = Behind()
    h.new_call()
    h.push(premise_event(EventEstablished, other_dn=None, ani="2225"))
    info = h.call_info(ReportUUID="true")
    assert (info.PortQueue, info.OtherDN, info.PortTrunk) == (None, "2225", "0")
    assert info.UUID is not None


def test_user_data_of_an_established_call() -> None:
    h = Behind()
    h.answered_call()
    data = (Node(Name="UEI", Type="Str", Val="bridgetec"),)
    assert h.send("C1", m.UDataSet(Action="Add", RequestId="1", UDataEx=data)) == [
        m.UDataResp(Result="Success", RequestId="1")
    ]
    assert h.send("C1", m.UDataGet(Keys="UEI", RequestId="2")) == [
        m.UDataResp(Result="Success", RequestId="2", UDataEx=data)
    ]


# -- B13, B12: the end of a Behind call ------------------------------------------------------------


def test_caller_hang_up_detaches_until_the_ivr_ends_the_call() -> None:
    h = Behind()
    h.answered_call()
    assert h.push(premise_event(EventReleased)) == [RELEASED]
    call = h.mgr.find("C1")[0]
    assert call.state is CallState.DETACHED
    info = h.call_info()
    assert (info.ConnId, info.LastEvent) == (CONN, "EventReleased")
    assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    assert h.switch.requests == []  # the port already left the call
    h.assert_clean()


def test_a_released_call_stays_until_call_timeout() -> None:
    h = Behind(call_timeout=3600.0)
    h.answered_call()
    h.push(premise_event(EventReleased))
    assert h.tick(3600.0) == [m.EndCall(EndCause="Timeout")]
    assert h.switch.requests == []
    h.assert_clean()


def test_end_call_releases_the_port_with_active_release() -> None:
    h = Behind()
    h.answered_call()
    assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    (release,) = h.switch.requests
    assert release == TReleaseCall(reference_id=release.reference_id, conn_id=CONN, dn="3001")
    assert h.switch.sent(TCallerHangUp) == []
    h.assert_clean()
    # the PBX's answer comes later and finds no call
    assert h.push(premise_event(EventReleased, reference_id=release.reference_id)) == []


def test_end_call_leaves_the_pbx_call_without_active_release() -> None:
    h = Behind()
    h.answered_call()
    off = (Node(Name="GCTIActiveRelease", Type="Str", Val="false"),)
    assert h.send("C1", m.EndCall(EndCause="Normal", ExtnsEx=off)) == []
    assert h.switch.requests == []
    h.assert_clean()
    h2 = Behind(active_release=False)
    h2.answered_call()
    h2.send("C1", m.EndCall(EndCause="Normal"))
    assert h2.switch.requests == []
    on = (Node(Name="GCTIActiveRelease", Type="Str", Val="true"),)
    h2.answered_call("C2")
    h2.send("C2", m.EndCall(EndCause="Normal", ExtnsEx=on))
    assert len(h2.switch.sent(TReleaseCall)) == 1


def test_end_call_before_ringing_asks_nothing_of_the_pbx() -> None:
    h = Behind()
    h.new_call()
    assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    assert h.switch.requests == []
    h.assert_clean()


def test_a_failed_start_leaves_the_pbx_call_alone() -> None:
    h = Behind()
    h.push(premise_event(EventRinging))
    h.new_call()
    assert h.mgr.discard(h.mgr.find("C1")[0].key)
    assert h.switch.requests == []
    h.assert_clean()


# -- G13: transfers while the premise link is down (the flows: test_calls_control.py) --------------


def test_transfers_while_the_link_is_down_are_link_down() -> None:
    h = Behind()
    h.answered_call()
    h.push(EventLinkDisconnected(switch=PBX, tserver="TS_PBX"))
    for tag in ("OneStepXfer", "OneStepConf", "InitXfer", "InitConf"):
        assert h.send("C1", _transfer(tag)) == [m.CallError(FailedReq=tag, TlibErrCode="LINK_DOWN")]
    # side requests keep working: the user data is the server's own (G17)
    assert h.send("C1", m.UDataGetAll(RequestId="9")) == [
        m.UDataResp(Result="NoMatch", RequestId="9")
    ]
    assert h.call_info().ConnId == CONN
    assert h.state() is CallState.STARTED


def test_transfers_while_routing_or_detached_are_blocked_by_name() -> None:
    h = Behind()
    h.answered_call()
    h.send("C1", m.RouteRequest(RouteDN="7900"))
    assert h.send("C1", _transfer("InitXfer")) == [
        m.CallError(FailedReq="InitXfer", TlibErrCode="BLOCKED_REQ")
    ]
    assert h.push(premise_event(EventReleased)) == [RELEASED]
    assert h.send("C1", _transfer("OneStepConf")) == [
        m.CallError(FailedReq="OneStepConf", TlibErrCode="BLOCKED_REQ")
    ]


# -- switch refusals -------------------------------------------------------------------------------


def _refusal(req: Any, request: str) -> EventError:
    return EventError(
        switch=PBX,
        reference_id=req.reference_id,
        dn=req.dn,
        conn_id=req.conn_id,
        error_code=1183,
        error_message="refused by the PBX",
        request=request,
    )


def test_a_refused_user_data_request_keeps_the_data(caplog: pytest.LogCaptureFixture) -> None:
    h = Behind()
    h.answered_call()
    data = (Node(Name="UEI", Type="Str", Val="bridgetec"),)
    h.send("C1", m.UDataSet(Action="Add", RequestId="1", UDataEx=data))
    h.switch.answers[TUpdateUserData] = lambda req: [_refusal(req, "TUpdateUserData")]
    h.switch.answers[TDeleteUserData] = lambda req: [_refusal(req, "TDeleteUserData")]
    with caplog.at_level(logging.INFO, "ivr_server.calls"):
        more = (Node(Name="UEI", Type="Str", Val="other"),)
        assert h.send("C1", m.UDataSet(Action="Replace", RequestId="2", UDataEx=more)) == [
            m.UDataResp(Result="MiscError", RequestId="2")
        ]
        assert h.send("C1", m.UDataDel(Action="DeleteKey", Key="UEI", RequestId="3")) == [
            m.UDataResp(Result="MiscError", RequestId="3")
        ]
    assert "user data refused" in caplog.text
    assert h.send("C1", m.UDataGetAll(RequestId="4")) == [
        m.UDataResp(Result="Success", RequestId="4", UDataEx=data)
    ]


def test_a_refused_release_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    h = Behind()
    h.answered_call()
    h.switch.answers[TReleaseCall] = lambda req: [_refusal(req, "TReleaseCall")]
    h.switch.answers[TUpdateUserData] = lambda req: [_refusal(req, "TUpdateUserData")]
    data = (Node(Name="result", Type="Str", Val="done"),)
    with caplog.at_level(logging.INFO, "ivr_server.calls"):
        assert h.send("C1", m.EndCall(EndCause="Normal", UDataEx=data)) == []
    assert "refused TUpdateUserData" in caplog.text
    assert "refused TReleaseCall" in caplog.text
    h.assert_clean()
    assert h.switch.view.call(CONN) is not None  # the PBX keeps its call and its data


def test_a_refusal_nobody_waits_for_on_a_live_call_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    h = Behind()
    h.answered_call()
    with caplog.at_level(logging.INFO, "ivr_server.calls"):
        h.push(_refusal(TReleaseCall(reference_id=5, conn_id=CONN, dn="3001"), "TReleaseCall"))
    assert "call C1: the switch refused TReleaseCall" in caplog.text
    assert h.state() is CallState.STARTED


# -- G1: RouteRequest on a Virtual Routing Point ---------------------------------------------------


def test_route_request_on_a_virtual_routing_point_runs_the_routing_dialog() -> None:
    h = Behind(router_timeout=4.0)
    h.answered_call()
    data = (Node(Name="lang", Type="Str", Val="fr"),)
    assert h.send("C1", m.RouteRequest(RouteDN="7900", CED="12", UDataEx=data)) == []
    (route,) = h.switch.sent(TRouteRequest)
    assert (route.conn_id, route.dn, route.route_dn, route.collected_digits) == (
        CONN,
        "3001",
        "7900",
        "12",
    )
    assert h.state() is CallState.ROUTING
    assert h.switch.view.user_data(CONN) == data
    routed = RequestRouteCall(
        switch=PBX, dn="7900", conn_id=CONN, call_id=2005, route_type="Normal", dest="3081"
    )
    used = EventRouteUsed(switch=PBX, dn="7900", conn_id=CONN, call_id=2005, dest="3081")
    assert h.push(routed, used) == [m.RouteResponse(RouteType="Normal", Dest="3081")]
    assert h.state() is CallState.ROUTED
    # a second round, answered by the router timeout
    h.send("C1", m.RouteRequest(RouteDN="7900"))
    assert h.tick(4.0) == [m.RouteResponse(RouteType="Default")]


def test_route_request_elsewhere_than_a_routing_point_is_invalid() -> None:
    h = Behind()
    h.answered_call()
    for dn in ("3081", "9999", ""):
        assert h.send("C1", m.RouteRequest(RouteDN=dn or None)) == [
            m.CallError(FailedReq="Unknown", TlibErrCode="INVALID_REQ")
        ]
    assert h.switch.sent(TRouteRequest) == []


def _transfer(tag: str) -> Message:
    cls = getattr(m, tag)
    if tag.startswith("Complete"):
        return cls()  # type: ignore[no-any-return]
    return cls(DestDN="3081")  # type: ignore[no-any-return]


# -- the settings from the configuration -----------------------------------------------------------


def test_behind_ports_come_from_the_premise_switchs_tserver() -> None:
    from ivr_server.config import parse_config
    from ivr_server.service.core import _call_settings  # the service's one translation

    text = (ROOT / "examples/behind.toml").read_text(encoding="utf-8")
    settings = _call_settings(parse_config(text))
    policy = DeferPolicy(defer=True, timeout=30.0)
    assert settings.behind_ports == {("SW_Site", dn): policy for dn in ("3001", "3002", "3003")}
    changed = text.replace("defer-tlib-events = true", "defer-tlib-events = false").replace(
        'waiting-for-newcall-timeout = "30s"', 'waiting-for-newcall-timeout = "12s"'
    )
    settings = _call_settings(parse_config(changed))
    assert set(settings.behind_ports.values()) == {DeferPolicy(defer=False, timeout=12.0)}
    assert _call_settings(parse_config("")).behind_ports == {}
