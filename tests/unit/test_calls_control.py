"""Call control on the real call manager (issue 23; MODES-AND-HA §1.2 B4-B11, G2-G11): a scripted
switch keeps THE CONTRACT of docs/calls.md "Call control" (the premise switch Behind and the
virtual switch In-Front keep the same), and every request must give its exact reply sequence."""

from __future__ import annotations

from typing import Any

import pytest

from ivr_server.calls import CallSettings, CallState, PortTarget
from ivr_server.calls.machine import TRANSITIONS, CallInput
from ivr_server.switch import (
    EventAttachedDataChanged,
    EventDestinationBusy,
    EventDialing,
    EventError,
    EventEstablished,
    EventHeld,
    EventLinkDisconnected,
    EventPartyAdded,
    EventPartyDeleted,
    EventReleased,
    EventRetrieved,
    EventRinging,
    SwitchEvent,
    SwitchRequest,
    TCompleteConference,
    TCompleteTransfer,
    TInboundCall,
    TInitiateConference,
    TInitiateTransfer,
    TMakeCall,
    TReconnectCall,
    TReleaseCall,
    TSingleStepConference,
    TSingleStepTransfer,
)
from ivr_server.switch.errors import TErrorCode
from ivr_server.wire import Message, Node
from ivr_server.wire import messages as m
from tests.unit.test_calls_behind import (
    CONN,
    OWNER,
    PBX,
    Behind,
    ScriptedPremise,
    premise_event,
)

CONSULT = "00000000000009a1"
DEST = "3081"


def status(*events: str) -> list[Message]:
    return [m.CallStatus(Event=event) for event in events]  # type: ignore[arg-type]


def error(request: str, code: str) -> m.CallError:
    return m.CallError(FailedReq=request, TlibErrCode=code)  # type: ignore[arg-type]


class ContractSwitch(ScriptedPremise):
    """Answers every call-control request as THE CONTRACT says. ``far`` is what the dialled
    party does (``answer``, ``busy``, ``silent``); ``refuse`` maps a request class to the
    T-Library code it is refused with, and ``restore`` says how a refused consultation was left
    (``none``: never held; ``retrieved``: held then retrieved; ``held``: still held)."""

    def __init__(self) -> None:
        super().__init__()
        self.far = "answer"
        self.emulate = False
        self.refuse: dict[type[SwitchRequest], int] = {}
        self.restore = "none"
        self.silent: set[type[SwitchRequest]] = set()
        self.consult_alive = False
        self._next = 0x9A1
        self.answers.update(
            {
                TInboundCall: self._inbound,
                TSingleStepTransfer: self._single_step_transfer,
                TInitiateTransfer: self._initiate,
                TInitiateConference: self._initiate,
                TCompleteTransfer: self._complete_transfer,
                TCompleteConference: self._complete_conference,
                TSingleStepConference: self._single_step_conference,
                TReconnectCall: self._reconnect,
                TMakeCall: self._make_call,
            }
        )

    def request(self, req: SwitchRequest) -> None:
        code = self.refuse.get(type(req))
        if type(req) in self.silent:
            self.requests.append(req)
        elif code is None:
            super().request(req)
        else:
            self.requests.append(req)
            conn = getattr(req, "conn_id", None)
            if self.restore != "none" and isinstance(req, TInitiateTransfer):
                self.push(self.ev(EventHeld, req.reference_id, conn, req.dn))
                if self.restore == "retrieved":
                    self.push(self.ev(EventRetrieved, req.reference_id, conn, req.dn))
            self.push(
                EventError(
                    switch=PBX,
                    reference_id=req.reference_id,
                    dn=getattr(req, "dn", None),
                    conn_id=conn,
                    error_code=code,
                    error_message=f"refused ({code})",
                    request=req.name,
                )
            )

    def ev(
        self, cls: type[Any], ref: int | None, conn: Any, dn: str, other: str | None = None
    ) -> Any:
        return cls(switch=PBX, reference_id=ref, dn=dn, conn_id=conn, call_id=2005, other_dn=other)

    def far_party(self, conn: str, dn: str) -> list[SwitchEvent]:
        if self.far == "answer":
            return [self.ev(EventEstablished, None, conn, dn, DEST)]
        if self.far == "busy":
            return [self.ev(EventDestinationBusy, None, conn, dn, DEST)]
        return []

    def _inbound(self, req: TInboundCall) -> list[SwitchEvent]:
        ref = req.reference_id
        return [
            self.ev(EventRinging, ref, CONN, req.dn, "2225"),
            self.ev(EventEstablished, ref, CONN, req.dn, "2225"),
        ]

    def _single_step_transfer(self, req: TSingleStepTransfer) -> list[SwitchEvent]:
        ref, conn, dn = req.reference_id, req.conn_id, req.dn
        events: list[SwitchEvent] = []
        if req.user_data:
            events.append(
                EventAttachedDataChanged(
                    switch=PBX,
                    reference_id=ref,
                    dn=dn,
                    conn_id=conn,
                    call_id=2005,
                    user_data=req.user_data,
                )
            )
        if self.emulate:
            events += [
                self.ev(EventHeld, ref, conn, dn),
                self.ev(EventDialing, ref, CONSULT, dn, req.dest),
                self.ev(EventEstablished, None, CONSULT, dn, req.dest),
            ]
        return [*events, self.ev(EventReleased, ref, conn, dn)]

    def _initiate(self, req: TInitiateTransfer) -> list[SwitchEvent]:
        ref, dn = req.reference_id, req.dn
        self.consult_alive = True
        return [
            self.ev(EventHeld, ref, req.conn_id, dn),
            self.ev(EventDialing, ref, CONSULT, dn, req.dest),
            *self.far_party(CONSULT, dn),
        ]

    def _complete_transfer(self, req: TCompleteTransfer) -> list[SwitchEvent]:
        self.consult_alive = False
        ref, dn = req.reference_id, req.dn
        return [
            self.ev(EventReleased, ref, req.consult_conn_id, dn),
            self.ev(EventReleased, ref, req.conn_id, dn),
        ]

    def _complete_conference(self, req: TCompleteConference) -> list[SwitchEvent]:
        self.consult_alive = False
        ref, dn = req.reference_id, req.dn
        return [
            self.ev(EventReleased, ref, req.consult_conn_id, dn),
            self.ev(EventRetrieved, ref, req.conn_id, dn),
            self.ev(EventPartyAdded, ref, req.conn_id, dn, DEST),
        ]

    def _single_step_conference(self, req: TSingleStepConference) -> list[SwitchEvent]:
        return [self.ev(EventPartyAdded, req.reference_id, req.conn_id, req.dn, req.dest)]

    def _reconnect(self, req: TReconnectCall) -> list[SwitchEvent]:
        ref, dn = req.reference_id, req.dn
        events: list[SwitchEvent] = []
        if self.consult_alive:
            self.consult_alive = False
            events.append(self.ev(EventReleased, ref, req.conn_id, dn))
        return [*events, self.ev(EventRetrieved, ref, req.held_conn_id, dn)]

    def _make_call(self, req: TMakeCall) -> list[SwitchEvent]:
        return [
            self.ev(EventDialing, req.reference_id, CONN, req.dn, req.dest),
            *self.far_party(CONN, req.dn),
        ]


class Harness(Behind):
    """The call manager over a :class:`ContractSwitch`; a call on port 1 (DN 3001) in the mode
    asked for, established."""

    switch: ContractSwitch

    def __init__(self, mode: str = "Behind", **timers: Any) -> None:
        super().__init__(**timers)
        self.switch = ContractSwitch()
        self.switch.drain_events()
        self.mode = mode

    def target(self) -> PortTarget:
        return PortTarget(
            ivr="IVR",
            port="1",
            dn="3001",
            switch=self.switch,
            mode=self.mode,  # type: ignore[arg-type]
        )

    def established(self) -> None:
        if self.mode == "Behind":
            self.answered_call()
            return
        msg = m.NewCall(CallControlMode="Network", Version="4.0", CalledNum="1", ANI="2225")
        self.mgr.new_call(OWNER, "C1", msg, self.target(), self.now)
        self.pump()
        assert self.take() == status("Ringing", "Established")

    def make_call(self, dest: str = DEST, **attrs: Any) -> list[Message]:
        msg = m.MakeCall(OrigNum="1", DestNum=dest, **attrs)
        self.mgr.make_call(OWNER, "M1", msg, self.target(), self.now)
        self.pump()
        return self.take()

    def released(self) -> list[str]:
        return [req.conn_id for req in self.switch.sent(TReleaseCall)]


MODES = ("Behind", "In-Front")


@pytest.fixture(params=MODES)
def h(request: pytest.FixtureRequest) -> Harness:
    harness = Harness(request.param)
    harness.established()
    return harness


def xfer(cls: type[Message] = m.OneStepXfer, **attrs: Any) -> Message:
    return cls(DestDN=DEST, **attrs)


# -- B5 OneStepXfer -------------------------------------------------------------------------------


def test_one_step_transfer_attaches_the_data_and_completes(h: Harness) -> None:
    data = (Node(Name="agent", Type="Str", Val="7"),)
    assert h.send("C1", xfer(UDataEx=data)) == status("XferComplete")
    (req,) = h.switch.sent(TSingleStepTransfer)
    assert (req.conn_id, req.dn, req.dest, req.user_data) == (CONN, "3001", DEST, data)
    assert h.state() is CallState.DETACHED
    assert h.send("C1", xfer()) == [error("OneStepXfer", "BLOCKED_REQ")]
    assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    assert h.released() == []  # the port already left the call
    h.assert_clean()


def test_an_emulated_single_step_transfer_reports_each_step(h: Harness) -> None:
    h.switch.emulate = True
    assert h.send("C1", xfer()) == status("Held", "Dialing", "Established", "XferComplete")
    assert h.state() is CallState.DETACHED
    h.send("C1", m.EndCall(EndCause="Normal"))
    h.assert_clean()


def test_a_refused_transfer_leaves_the_call_as_it_was(h: Harness) -> None:
    h.switch.refuse[TSingleStepTransfer] = 1183
    assert h.send("C1", xfer()) == [error("OneStepXfer", "1183")]
    call = h.mgr.find("C1")[0]
    assert call.state is CallState.STARTED
    assert call.control_error == ("TSingleStepTransfer", 1183, "refused (1183)")
    assert h.mgr.pending_count() == 0
    h.switch.refuse.clear()
    assert h.send("C1", xfer()) == status("XferComplete")


@pytest.mark.parametrize(
    ("code", "answer"),
    [
        (TErrorCode.TERR_NO_SWITCH, "LINK_DOWN"),
        (TErrorCode.TERR_UNSUP_OPER, "UNSUP_OPER"),
        (TErrorCode.TERR_ORIG_DN_BUSY, None),
    ],
)
def test_switch_codes_become_tlib_err_codes(code: int, answer: str | None) -> None:
    h = Harness()
    h.established()
    h.switch.refuse[TSingleStepConference] = code
    expected = answer if answer is not None else str(int(code))
    assert h.send("C1", xfer(m.OneStepConf)) == [error("OneStepConf", expected)]


def test_a_refusal_crossing_the_callers_hang_up_still_answers(h: Harness) -> None:
    h.switch.silent.add(TSingleStepTransfer)
    assert h.send("C1", xfer()) == []
    assert h.state() is CallState.XFER_PENDING
    assert h.send("C1", xfer()) == [error("OneStepXfer", "BLOCKED_REQ")]  # twice in a row
    (req,) = h.switch.sent(TSingleStepTransfer)
    assert h.push(premise_event(EventReleased)) == status("Released")
    refusal = EventError(
        switch=PBX,
        reference_id=req.reference_id,
        dn="3001",
        conn_id=CONN,
        error_code=int(TErrorCode.TERR_UNKNOWN),
        error_message="no such call",
        request="TSingleStepTransfer",
    )
    assert h.push(refusal) == [error("OneStepXfer", "100")]
    assert h.state() is CallState.DETACHED


# -- B6-B9, B11 consultations ---------------------------------------------------------------------


def test_consultation_then_complete_transfer(h: Harness) -> None:
    assert h.send("C1", xfer(m.InitXfer)) == status("Held", "Dialing", "Established")
    call = h.mgr.find("C1")[0]
    assert (call.state, call.consult_conn_id, call.held) == (CallState.CONSULTING, CONSULT, True)
    assert h.send("C1", xfer(m.InitConf)) == [error("InitConf", "BLOCKED_REQ")]
    assert h.send("C1", m.CompleteXfer()) == status("XferComplete")
    (req,) = h.switch.sent(TCompleteTransfer)
    assert (req.conn_id, req.consult_conn_id) == (CONN, CONSULT)
    assert (call.state, call.consult_conn_id) == (CallState.DETACHED, None)
    h.send("C1", m.EndCall(EndCause="Normal"))
    assert h.released() == []
    h.assert_clean()


@pytest.mark.parametrize("init", [m.InitConf, m.InitXfer])  # G9: CompleteConf after InitXfer
def test_consultation_then_complete_conference(h: Harness, init: type[Message]) -> None:
    assert h.send("C1", xfer(init)) == status("Held", "Dialing", "Established")
    assert h.send("C1", m.CompleteConf()) == status("Retrieved", "ConfPartyAdd")
    call = h.mgr.find("C1")[0]
    assert (call.state, call.parties, call.consult_conn_id) == (
        CallState.CONFERENCED,
        (DEST,),
        None,
    )
    # G8: the added party leaves, only caller and port remain
    assert h.push(h.switch.ev(EventPartyDeleted, None, CONN, "3001", DEST)) == status(
        "ConfPartyDel"
    )
    assert h.state() is CallState.STARTED


def test_complete_transfer_after_init_conf(h: Harness) -> None:
    h.send("C1", xfer(m.InitConf))
    assert h.send("C1", m.CompleteXfer()) == status("XferComplete")


def test_busy_consultation_then_retrieve(h: Harness) -> None:
    h.switch.far = "busy"
    assert h.send("C1", xfer(m.InitConf)) == status("Held", "Dialing", "Busy")
    assert h.send("C1", m.RetrieveCall()) == status("Retrieved")
    (req,) = h.switch.sent(TReconnectCall)
    assert (req.conn_id, req.held_conn_id) == (CONSULT, CONN)
    call = h.mgr.find("C1")[0]
    assert (call.state, call.consult_conn_id, call.held) == (CallState.STARTED, None, False)
    assert h.send("C1", m.RetrieveCall()) == [error("RetrieveCall", "BLOCKED_REQ")]
    assert h.mgr.pending_count() == 0


def test_retrieve_while_the_consultation_still_dials(h: Harness) -> None:
    h.switch.far = "silent"
    assert h.send("C1", xfer(m.InitXfer)) == status("Held", "Dialing")
    assert h.state() is CallState.CONSULT_DIALING
    assert h.send("C1", m.RetrieveCall()) == status("Retrieved")
    assert h.state() is CallState.STARTED


def test_a_refused_consultation_restored_by_the_switch(h: Harness) -> None:
    h.switch.refuse[TInitiateTransfer] = 1183
    h.switch.restore = "retrieved"
    assert h.send("C1", xfer(m.InitXfer)) == [
        *status("Held", "Retrieved"),
        error("InitXfer", "1183"),
    ]
    assert h.state() is CallState.STARTED
    assert h.switch.sent(TReconnectCall) == []


def test_a_refused_consultation_left_held_is_retrieved_by_the_server(h: Harness) -> None:
    h.switch.refuse[TInitiateConference] = 1183
    h.switch.restore = "held"
    assert h.send("C1", xfer(m.InitConf)) == [
        *status("Held"),
        error("InitConf", "1183"),
        *status("Retrieved"),
    ]
    (req,) = h.switch.sent(TReconnectCall)
    assert req.held_conn_id == CONN
    assert h.state() is CallState.STARTED
    assert h.send("C1", m.RetrieveCall()) == [error("RetrieveCall", "BLOCKED_REQ")]


def test_a_refused_complete_is_answered_and_the_original_retrieved(h: Harness) -> None:
    h.send("C1", xfer(m.InitXfer))
    h.switch.refuse[TCompleteTransfer] = 1183
    assert h.send("C1", m.CompleteXfer()) == [error("CompleteXfer", "1183"), *status("Retrieved")]
    assert h.state() is CallState.STARTED
    assert h.mgr.find("C1")[0].consult_conn_id is None


def test_the_consulted_party_hanging_up_retrieves_the_original(h: Harness) -> None:  # G5
    h.send("C1", xfer(m.InitXfer))
    h.switch.consult_alive = False
    assert h.push(h.switch.ev(EventReleased, None, CONSULT, "3001", DEST)) == status("Retrieved")
    (req,) = h.switch.sent(TReconnectCall)
    assert (req.conn_id, req.held_conn_id) == (CONSULT, CONN)
    assert h.state() is CallState.STARTED
    assert h.mgr.pending_count() == 0


def test_the_caller_hanging_up_during_a_consultation(h: Harness) -> None:  # G6
    h.send("C1", xfer(m.InitXfer))
    assert h.push(h.switch.ev(EventReleased, None, CONN, "3001")) == status("Released")
    assert h.state() is CallState.DETACHED
    assert h.mgr.find("C1")[0].consult_conn_id == CONSULT  # kept until EndCall
    assert h.send("C1", m.CompleteXfer()) == [error("CompleteXfer", "BLOCKED_REQ")]
    assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    assert h.released() == [CONSULT]
    h.assert_clean()


def test_end_call_during_a_consultation_releases_both_calls(h: Harness) -> None:
    h.send("C1", xfer(m.InitXfer))
    assert h.send("C1", m.EndCall(EndCause="Normal")) == []
    assert sorted(h.released()) == sorted([CONN, CONSULT])
    h.assert_clean()
    assert h.mgr._ctx.consults == {}
    # late events of the consultation find no call
    assert h.push(h.switch.ev(EventEstablished, None, CONSULT, "3001", DEST)) == []


# -- B10 OneStepConf ------------------------------------------------------------------------------


def test_one_step_conferences_add_and_lose_parties(h: Harness) -> None:
    assert h.send("C1", xfer(m.OneStepConf)) == status("ConfPartyAdd")
    assert h.send("C1", m.OneStepConf(DestDN="3082")) == status("ConfPartyAdd")
    assert h.mgr.find("C1")[0].parties == (DEST, "3082")
    assert h.push(h.switch.ev(EventPartyDeleted, None, CONN, "3001", DEST)) == status(
        "ConfPartyDel"
    )
    assert h.state() is CallState.CONFERENCED
    assert h.push(h.switch.ev(EventPartyDeleted, None, CONN, "3001", "3082")) == status(
        "ConfPartyDel"
    )
    assert h.state() is CallState.STARTED


def test_a_refused_conference_from_a_conference_stays_conferenced(h: Harness) -> None:
    h.send("C1", xfer(m.OneStepConf))
    h.switch.refuse[TSingleStepConference] = 1183
    assert h.send("C1", xfer(m.OneStepConf)) == [error("OneStepConf", "1183")]
    assert h.state() is CallState.CONFERENCED


# -- refusals before the switch is asked -----------------------------------------------------------


def test_requests_in_the_wrong_state_or_with_bad_attributes() -> None:
    h = Harness()
    h.new_call()
    assert h.send("C1", xfer()) == [error("Unknown", "BLOCKED_REQ")]  # before Ringing (W)
    h.push(premise_event(EventEstablished))
    h.take()
    for msg in (m.CompleteXfer(), m.CompleteConf(), m.RetrieveCall()):
        assert h.send("C1", msg) == [error(msg.tag, "BLOCKED_REQ")]
    assert h.send("C1", xfer(Location="Paris")) == [error("OneStepXfer", "UNSUP_OPER")]
    assert h.send("C1", m.InitXfer(DestDN=" ")) == [error("Unknown", "INVALID_REQ")]
    h.push(EventLinkDisconnected(switch=PBX, tserver="TS_PBX"))
    assert h.send("C1", xfer(m.InitConf)) == [error("InitConf", "LINK_DOWN")]
    assert h.switch.requests == []
    assert h.state() is CallState.STARTED


def test_a_transfer_after_routing_restores_the_routed_state() -> None:
    h = Harness()
    h.established()
    h.mgr.find("C1")[0].state = CallState.ROUTED  # as after a RouteResponse
    h.switch.refuse[TSingleStepTransfer] = 1183
    assert h.send("C1", xfer()) == [error("OneStepXfer", "1183")]
    assert h.state() is CallState.ROUTED


# -- B4 MakeCall ----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_make_call_dials_then_establishes(mode: str) -> None:
    h = Harness(mode)
    data = (Node(Name="campaign", Type="Str", Val="x"),)
    assert h.make_call(UDataEx=data) == status("Dialing", "Established")
    (req,) = h.switch.sent(TMakeCall)
    assert (req.dn, req.dest, req.user_data) == ("3001", DEST, data)
    call = h.mgr.find("M1")[0]
    assert (call.state, call.conn_id, call.answered) == (CallState.STARTED, CONN, True)
    assert h.mgr.timer_count() == 1  # only the call timeout runs
    assert h.send("M1", xfer()) == status("XferComplete")


def test_make_call_busy_then_end_call_releases() -> None:
    h = Harness()
    h.switch.far = "busy"
    assert h.make_call() == status("Dialing", "Busy")
    assert h.state("M1") is CallState.MAKING
    assert h.send("M1", xfer()) == [error("OneStepXfer", "BLOCKED_REQ")]
    assert h.send("M1", m.EndCall(EndCause="Normal")) == []
    assert h.released() == [CONN]
    h.assert_clean()


def test_make_call_without_answer_times_out() -> None:  # G10
    h = Harness(make_call_timeout=30.0)
    h.switch.far = "silent"
    assert h.make_call() == status("Dialing")
    assert h.tick(29.0) == []
    assert h.tick(1.0) == [error("MakeCall", "232")]
    assert h.released() == [CONN]
    h.assert_clean()


def test_make_call_refused_forgets_the_call() -> None:
    h = Harness()
    h.switch.refuse[TMakeCall] = 1183
    assert h.make_call() == [error("MakeCall", "1183")]
    h.assert_clean()
    assert h.make_call() == [error("MakeCall", "1183")]  # the port is free again


def test_make_call_default_timeout_is_a_minute() -> None:
    assert CallSettings().make_call_timeout == 60.0


# -- the table ------------------------------------------------------------------------------------


def test_every_call_control_state_ends_on_end_call_and_release() -> None:
    for state in (
        CallState.XFER_PENDING,
        CallState.CONSULT_PENDING,
        CallState.CONSULT_DIALING,
        CallState.CONSULTING,
        CallState.COMPLETING,
        CallState.RETRIEVING,
        CallState.CONF_PENDING,
        CallState.CONFERENCED,
        CallState.MAKING,
    ):
        assert TRANSITIONS[(state, CallInput.END_CALL)].next_state is None
        assert TRANSITIONS[(state, CallInput.RELEASED)].next_state is CallState.DETACHED
