"""HA and Behind mode: a premise call's PBX side in its store record, restored on another node and
checked against the PBX by the new leader's snapshot resync (issue 25; MODES-AND-HA §3.5, G27;
``switch/premise/persist.py``).

Node A's premise switch is driven by the scripted PBX of the premise unit tests; its records
(the switch view's calls with their ``premise`` field, the counters) are handed to node B's
switch, which was never connected; B's link then comes up against the PBX and resyncs: calls the
PBX still shows keep their ConnID and user data and are recognised in its later events, calls it
no longer shows are released, calls B did not know appear with ConnIDs A never handed out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from ivr_server.config import load_config
from ivr_server.service.persist import StatePersistence
from ivr_server.switch import requests as rq
from ivr_server.switch.csta import messages as m
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import (
    EventAttachedDataChanged,
    EventError,
    EventEstablished,
    EventLinkConnected,
    EventReleased,
    EventRinging,
)
from ivr_server.switch.persist import (
    counters_of,
    decode_call,
    decode_counters,
    decode_dn,
    encode_call,
    encode_counters,
    encode_dn,
    restore_call,
    restore_counters,
    restore_dn,
)
from ivr_server.switch.premise import PremiseSwitch
from ivr_server.switch.premise.persist import PremiseCallState
from ivr_server.switch.requests import TAttachUserData, TReleaseCall
from ivr_server.wire import Message
from ivr_server.wire import messages as wm
from ivr_server.wire.kv import str_node as KvPair
from tests.service.memory import START, MemoryClient, MemoryServer
from tests.unit.premise_pbx import (
    AGENT_DN,
    CALLER,
    DNS,
    PORT,
    PORT2,
    QUEUE,
    SETTINGS,
    SWITCH,
    TSERVER,
    ControlPbx,
    Pbx,
    bring_up,
    control_switch,
    new_switch,
    snapshot_of,
    xref,
)
from tests.unit.test_premise_control import (
    DEST,
    NEW,
    ORIG,
    consulting,
    init_xfer,
    make_call,
    shapes,
)


def records_of(switch: PremiseSwitch) -> dict[str, bytes]:
    """What ``service/persist.py`` writes of a switch: its calls (with the PBX side) and
    counters."""
    out = {
        f"call:{r.conn_id}": encode_call(r, switch.call_state(r.conn_id))
        for r in switch.view.call_records()
    }
    for dn in switch.view.dns():
        data = encode_dn(switch.view, dn.number)
        assert data is not None
        out[f"dn:{dn.number}"] = data
    out["ctr"] = encode_counters(counters_of(switch))
    return out


def restore_into(switch: PremiseSwitch, records: dict[str, bytes]) -> None:
    """What ``service/persist.py`` does with them on the node taking over."""
    for key, data in records.items():
        if key == "ctr":
            restore_counters(switch, decode_counters(data))
            continue
        if key.startswith("dn:"):
            dn_state = decode_dn(data)
            if restore_dn(switch.view, dn_state):
                switch.restored_dn(dn_state.number)
            continue
        state = decode_call(data)
        restore_call(switch.view, state)
        if state.premise is not None:
            assert switch.restore_call_state(state.conn_id, state.premise)


def answered(switch: PremiseSwitch, pbx: Pbx, call: str, dn: str = PORT) -> str:
    pbx.delivered(call, dn, last_redirection_device=QUEUE, cause="distributed")
    pbx.established(call, dn)
    ringing = switch.drain_events()[0]
    assert isinstance(ringing, EventRinging)
    return ringing.conn_id


def node_a() -> tuple[PremiseSwitch, Pbx, str, str]:
    """A: up, call 2053 answered at PORT with user data, call 2054 answered at PORT2."""
    a, pbx = new_switch()
    bring_up(a, pbx)
    kept = answered(a, pbx, "2053")
    a.request(TAttachUserData(reference_id=1, conn_id=kept, dn=PORT, user_data=(KvPair("k", "v"),)))
    assert isinstance(a.drain_events()[0], EventAttachedDataChanged)
    gone = answered(a, pbx, "2054", PORT2)
    a.drain_events()
    return a, pbx, kept, gone


def test_the_pbx_side_of_a_call_round_trips_in_its_switch_record() -> None:
    a, _, kept, _ = node_a()
    state = decode_call(records_of(a)[f"call:{kept}"])
    premise = msgspec.convert(state.premise, PremiseCallState)
    assert premise == PremiseCallState(
        premise_id="2053",
        call_id=2053,
        at={PORT: "connected"},
        devices=[CALLER],
        ani=CALLER,
        dnis=PORT,
        this_queue=QUEUE,
        other_dn=CALLER,
        added=[],
        dialed=None,
        carried=[],
    )
    b, _ = new_switch()
    restore_into(b, records_of(a))
    call = b.call_of(kept)
    assert call is not None and call.premise_id == "2053" and call.at == {PORT: "connected"}
    assert b.view.user_data(kept) == (KvPair("k", "v"),)
    assert b.drain_events() == []  # restoring publishes nothing


def test_a_record_without_the_pbx_side_still_decodes() -> None:
    """Records written before the field existed (one element fewer) read as ``premise=None``."""
    a, _, kept, _ = node_a()
    record = a.view.call_record(kept)
    assert record is not None
    old = msgspec.msgpack.decode(encode_call(record))[:-1]
    assert decode_call(msgspec.msgpack.encode(old)).premise is None


def test_changes_of_the_pbx_side_alone_mark_the_call_for_the_next_batch() -> None:
    a, pbx, kept, _ = node_a()
    a.view.changed_calls = set()  # tracking on (service/persist.py's enable)
    pbx.send(
        m.HeldEvent(
            monitor_cross_ref_id=xref(PORT),
            held_connection=m.ConnectionID(call_id="2053", device_id=PORT),
            holding_device=PORT,
        )
    )
    assert a.drain_events() == [] and a.view.changed_calls == {kept}
    a.view.changed_calls.clear()
    pbx.send(
        m.TransferedEvent(
            monitor_cross_ref_id=xref(PORT),
            primary_old_call=m.ConnectionID(call_id="2053", device_id=PORT),
            transferring_device="5550000",
            transferred_to_device=PORT,
            transferred_connections=(
                m.ConnectionListItem(
                    new_connection=m.ConnectionID(call_id="2060", device_id=PORT),
                    endpoint="5550001",
                ),
            ),
        )
    )
    assert a.view.changed_calls == {kept}
    state = msgspec.convert(decode_call(records_of(a)[f"call:{kept}"]).premise, PremiseCallState)
    assert state.premise_id == "2060" and state.at == {PORT: "held"}


def test_a_switch_not_tracked_pays_nothing_and_marks_nothing() -> None:
    a, pbx, _, _ = node_a()
    assert a.view.changed_calls is None
    pbx.send(
        m.HeldEvent(
            monitor_cross_ref_id=xref(PORT),
            held_connection=m.ConnectionID(call_id="2053", device_id=PORT),
            holding_device=PORT,
        )
    )
    assert a.view.changed_calls is None


def test_restore_then_resync_keeps_releases_and_adds_as_a_reconnect_does() -> None:
    a, _, kept, gone = node_a()
    b, pbx = new_switch()
    restore_into(b, records_of(a))
    events = bring_up(
        b,
        pbx,
        snapshots={PORT: [("2053", "connected")], AGENT_DN: [("2099", "alerting")]},
    )
    # 2054 is gone from the PBX: released with A's ConnID; 2099 is new: a ConnID A never gave
    released, ringing, up = events
    assert isinstance(released, EventReleased) and released.conn_id == gone
    assert (released.dn, released.reference_id) == (PORT2, None)
    assert isinstance(ringing, EventRinging) and ringing.dn == AGENT_DN
    assert ringing.conn_id not in (kept, gone) and int(ringing.conn_id, 16) > int(gone, 16)
    assert isinstance(up, EventLinkConnected)
    assert b.view.call(gone) is None and b.call_of(gone) is None
    # 2053 kept: the PBX's later events are recognised, with A's ConnID and user data
    pbx.cleared("2053", CALLER)
    [bye] = b.drain_events()
    assert isinstance(bye, EventReleased)
    assert (bye.conn_id, bye.call_id, bye.dn) == (kept, 2053, PORT)
    assert bye.user_data == (KvPair("k", "v"),) and bye.this_queue == QUEUE


def test_a_restored_call_is_released_on_the_pbx_by_its_callid() -> None:
    a, _, kept, _ = node_a()
    b, pbx = new_switch()
    restore_into(b, records_of(a))
    bring_up(b, pbx, snapshots={PORT: [("2053", "connected")], PORT2: [("2054", "connected")]})
    b.request(TReleaseCall(reference_id=77, conn_id=kept, dn=PORT))
    [(invoke_id, clear)] = pbx.sent()
    assert clear == m.ClearConnection(
        connection_to_be_cleared=m.ConnectionID(call_id="2053", device_id=PORT)
    )
    pbx.send(m.ClearConnectionResponse(), invoke_id)
    [released] = b.drain_events()
    assert isinstance(released, EventReleased)
    assert (released.conn_id, released.reference_id) == (kept, 77)
    assert b.call_of(kept) is None


def test_a_call_answered_during_the_gap_is_established_by_the_resync() -> None:
    a, pbx_a = new_switch()
    bring_up(a, pbx_a)
    pbx_a.delivered("3001", PORT)
    [ringing] = a.drain_events()
    assert isinstance(ringing, EventRinging)
    b, pbx = new_switch()
    restore_into(b, records_of(a))
    events = bring_up(b, pbx, snapshots={PORT: [("3001", "connected")]})
    established, _ = events
    assert isinstance(established, EventEstablished) and established.conn_id == ringing.conn_id


def test_a_stored_call_whose_connid_or_callid_is_already_here_is_left_out() -> None:
    a, _, kept, _ = node_a()
    b, pbx = new_switch()
    bring_up(b, pbx)
    pbx.delivered("2053", PORT)  # B's own call with that callID
    b.drain_events()
    state = decode_call(records_of(a)[f"call:{kept}"])
    assert not b.restore_call_state(state.conn_id, state.premise)
    own = b.calls["2053"]
    assert own.at == {PORT: "alerting"} and b.by_conn[own.conn_id] == "2053"  # B's own stays
    assert not b.restore_call_state("ffff", ["x"])  # not understood: logged, left out


def test_made_up_keys_go_on_after_the_restored_ones() -> None:
    b, _ = new_switch()
    raw: Any = msgspec.to_builtins(
        PremiseCallState(
            premise_id=f"?{PORT}#7",
            call_id=9,
            at={PORT: "connected"},
            devices=[],
            ani=None,
            dnis=None,
            this_queue=None,
            other_dn=None,
            added=[],
            dialed=None,
            carried=[],
        )
    )
    assert b.restore_call_state("00000000000000aa", raw)
    assert b.anonymous == 7


# -- the whole service: examples/behind.toml, A's records restored in B (service/persist.py) -----

BEHIND = Path(__file__).resolve().parents[2] / "examples/behind.toml"
SITE = "SW_Site"
IVR = "IAdapter1"


def behind_node(now: float = START) -> tuple[MemoryServer, Pbx]:
    """A service of examples/behind.toml and the scripted PBX at its premise switch's end (the
    service asked for the link at its start: the adapter's connection is played here)."""
    server = MemoryServer(load_config(BEHIND), now=now)
    switch = server.service.switches[SITE]
    assert isinstance(switch, PremiseSwitch) and switch.link_wanted
    pbx = Pbx(switch)
    pbx.now = now
    return server, pbx


def link_up(switch: PremiseSwitch, pbx: Pbx, snapshots: dict[str, list[tuple[str, str]]]) -> None:
    """The adapter's connection, the session, monitors and snapshots answered, as
    :func:`bring_up` plays them, but the switch's events left for the service."""
    switch.connection_made(pbx.now)
    [(invoke_id, _)] = pbx.sent()
    pbx.send(m.StartApplicationSessionPosResponse(session_id="S1"), invoke_id)
    for invoke_id, request in pbx.sent():
        assert isinstance(request, m.MonitorStart)
        pbx.send(m.MonitorStartResponse(monitor_cross_ref_id=xref(request.device)), invoke_id)
    for invoke_id, request in pbx.sent():
        assert isinstance(request, m.SnapshotDevice)
        pbx.send(
            snapshot_of(snapshots.get(request.snapshot_object, ()), request.snapshot_object),
            invoke_id,
        )
    assert switch.view.link_up


def settle(server: MemoryServer) -> None:
    server.service.pump()
    server.shuttle()


def behind_call(client: MemoryClient, call_id: str, port: str) -> list[Message]:
    return [
        doc.message
        for doc in client.send(
            call_id, wm.NewCall(CallControlMode="Network", Version="4.0", CalledNum=port)
        )
    ]


def test_a_behind_call_goes_on_after_a_handover_and_its_premise_link_resync() -> None:
    a, pbx_a = behind_node()
    bring_up(a.service.switches[SITE], pbx_a, open_link=False)  # type: ignore[arg-type]
    settle(a)
    persistence = StatePersistence(a.service)
    persistence.enable()
    ivr_a = a.connect()
    ivr_a.login(IVR, call_id="L")
    assert behind_call(ivr_a, "C1", "1") == []  # nothing until the PBX rings port 1 (3001)
    assert behind_call(ivr_a, "C2", "2") == []
    pbx_a.delivered("2053", "3001")
    pbx_a.established("2053", "3001")
    pbx_a.delivered("2054", "3002")
    pbx_a.established("2054", "3002")
    settle(a)
    assert [d.message for d in ivr_a.take()] == [
        wm.CallStatus(Event="Ringing"),
        wm.CallStatus(Event="Established"),
    ] * 2
    ivr_a.send("C1", wm.UDataSet(Action="Add", RequestId="1", UDataEx=(KvPair("k", "v"),)))
    records, deletes = persistence.collect()  # what A's writer sent, turn by turn
    assert not deletes
    # B: never connected to the PBX; takes A's records over, then its link comes up
    b, pbx = behind_node(a.now)
    ivr_b = b.connect()
    ivr_b.login(IVR, call_id="LB")
    assert StatePersistence(b.service).restore(records, b.now) == 2
    b.service.bind_orphans(b.now)
    switch = b.service.switches[SITE]
    assert isinstance(switch, PremiseSwitch)
    link_up(switch, pbx, {"3001": [("2053", "connected")]})
    settle(b)
    # the PBX no longer has 2054: its IVR call is told so (CallStatus Released, as a reconnect)
    assert [(d.call_id, d.message) for d in ivr_b.take()] == [
        ("C2", wm.CallStatus(Event="Released"))
    ]
    [(_, data)] = [
        (cid, msg) for cid, msg in docs(ivr_b, "C1", wm.UDataGet(RequestId="2", Keys="k"))
    ]
    assert isinstance(data, wm.UDataResp) and data.UDataEx == (KvPair("k", "v"),)
    # the caller hangs up: the PBX's event names 2053, B knows it as C1's call
    pbx.cleared("2053", CALLER, "3001")
    settle(b)
    assert [(d.call_id, d.message) for d in ivr_b.take()] == [
        ("C1", wm.CallStatus(Event="Released"))
    ]


def test_an_endcall_on_a_taken_over_behind_call_clears_it_on_the_pbx() -> None:
    a, pbx_a = behind_node()
    bring_up(a.service.switches[SITE], pbx_a, open_link=False)  # type: ignore[arg-type]
    settle(a)
    ivr_a = a.connect()
    ivr_a.login(IVR, call_id="L")
    behind_call(ivr_a, "C1", "1")
    pbx_a.delivered("2053", "3001")
    pbx_a.established("2053", "3001")
    settle(a)
    records = StatePersistence(a.service).everything()
    b, pbx = behind_node(a.now)
    ivr_b = b.connect()
    ivr_b.login(IVR, call_id="LB")
    StatePersistence(b.service).restore(records, b.now)
    b.service.bind_orphans(b.now)
    switch = b.service.switches[SITE]
    assert isinstance(switch, PremiseSwitch)
    link_up(switch, pbx, {"3001": [("2053", "connected")]})
    settle(b)
    ivr_b.send("C1", wm.EndCall(EndCause="Normal"))
    settle(b)
    clears = [req for _, req in pbx.sent() if isinstance(req, m.ClearConnection)]
    assert clears == [
        m.ClearConnection(connection_to_be_cleared=m.ConnectionID(call_id="2053", device_id="3001"))
    ]


def docs(client: MemoryClient, call_id: str, message: Message) -> list[tuple[str | None, Any]]:
    return [(doc.call_id, doc.message) for doc in client.send(call_id, message)]


# -- call control in progress: a consultation or MakeCall the PBX took, still ringing -----------


def control_node_b(
    a: PremiseSwitch, snapshot: dict[str, list[tuple[str, str]]]
) -> tuple[PremiseSwitch, ControlPbx]:
    """B with A's records in the order given (reversed: a placed call before its original),
    linked to a PBX whose snapshot is ``snapshot``."""
    b = PremiseSwitch(SWITCH, TSERVER, DNS, SETTINGS, first_conn_id=0x10, first_call_id=7)
    pbx = ControlPbx(b)
    restore_into(b, dict(reversed(records_of(a).items())))
    bring_up(b, pbx, snapshots=snapshot)
    return b, pbx


def test_a_consultation_ringing_at_the_handover_is_answered_and_completed_on_b() -> None:
    a, pbx_a = control_switch()
    assert pbx_a.answered("100") == ORIG
    consulting(pbx_a, init_xfer(5), answer=False)
    b, pbx = control_node_b(a, {PORT: [("100", "hold"), ("101", "connected")]})
    orig, new = b.call_of(ORIG), b.call_of(NEW)
    assert orig is not None and new is not None and orig.flow is new.flow is not None
    assert orig.at == {PORT: "held"} and new.at == {PORT: "dialing"}
    # the original is still busy with the consultation on B, as it was on A
    b.request(rq.TSingleStepTransfer(reference_id=6, conn_id=ORIG, dn=PORT, dest=DEST))
    assert shapes(b.drain_events()) == [
        ("EventError", 6, str(int(TErrorCode.TERR_SET_WRONG_STATE)), "TSingleStepTransfer")
    ]
    pbx.far_alerting("101", DEST)
    pbx.far_answered("101", DEST)
    assert shapes(b.drain_events()) == [("EventEstablished", None, NEW, DEST)]
    assert orig.flow is None and new.flow is None
    b.request(rq.TCompleteTransfer(reference_id=7, conn_id=ORIG, dn=PORT, consult_conn_id=NEW))
    invoke_id, sent = pbx.request()
    assert sent == m.TransferCall(
        held_call=m.ConnectionID(call_id="100", device_id=PORT),
        active_call=m.ConnectionID(call_id="101", device_id=PORT),
    )
    pbx.send(m.TransferCallResponse(), invoke_id)
    assert [e for e in shapes(b.drain_events()) if e[0] == "EventReleased"] == [
        ("EventReleased", 7, NEW, DEST),
        ("EventReleased", 7, ORIG, CALLER),
    ]


def test_a_make_call_ringing_at_the_handover_reports_busy_on_b() -> None:
    a, pbx_a = control_switch()
    a.request(make_call(a))
    invoke_id, _ = pbx_a.request()
    pbx_a.send(
        m.MakeCallResponse(calling_device=m.ConnectionID(call_id="300", device_id=PORT)), invoke_id
    )
    assert shapes(a.drain_events()) == [("EventDialing", 20, ORIG, DEST)]
    b, pbx = control_node_b(a, {PORT: [("300", "connected")]})
    pbx.failed("300", DEST, "busy")
    assert shapes(b.drain_events()) == [("EventDestinationBusy", None, ORIG, DEST)]


# -- G27: after a takeover, requests that need the PBX wait for the resync ----------------------


def test_a_release_before_the_resync_waits_for_it_then_clears_the_call_on_the_pbx() -> None:
    a, _, kept, _ = node_a()
    b, pbx = new_switch()
    restore_into(b, records_of(a))
    b.request(TReleaseCall(reference_id=40, conn_id=kept, dn=PORT))  # a replayed EndCall's
    assert b.drain_events() == [] and b.parked is not None and len(b.parked) == 1
    events = bring_up(b, pbx, snapshots={PORT: [("2053", "connected")]})
    assert [type(e) for e in events] == [EventReleased, EventLinkConnected]  # 2054: gone
    [(invoke_id, clear)] = pbx.sent()
    assert clear == m.ClearConnection(
        connection_to_be_cleared=m.ConnectionID(call_id="2053", device_id=PORT)
    )
    pbx.send(m.ClearConnectionResponse(), invoke_id)
    [released] = b.drain_events()
    assert isinstance(released, EventReleased)
    assert (released.conn_id, released.reference_id) == (kept, 40)
    assert b.parked is None  # from now on the switch's own rule: refused while down


def test_parked_requests_are_refused_at_the_invoke_timeout_if_the_link_never_comes() -> None:
    a, _, kept, _ = node_a()
    b, _ = new_switch()
    restore_into(b, records_of(a))
    b.request(TReleaseCall(reference_id=41, conn_id=kept, dn=PORT))
    assert b.next_deadline() == b.now  # at once: the timeout starts at the next door
    b.handle_timer(100.0)
    assert b.drain_events() == [] and b.next_deadline() == 100.0 + SETTINGS.invoke_timeout_s
    b.handle_timer(100.0 + SETTINGS.invoke_timeout_s)
    [refused] = b.drain_events()
    assert isinstance(refused, EventError) and refused.reference_id == 41
    assert refused.error_code == TErrorCode.TERR_NO_SWITCH
    assert b.parked is None and b.next_deadline() is None


def test_without_a_restore_a_request_while_the_link_is_down_is_refused_at_once() -> None:
    b, _ = new_switch()
    b.request(TReleaseCall(reference_id=42, conn_id="0000000000000010", dn=PORT))
    [refused] = b.drain_events()
    assert isinstance(refused, EventError) and refused.error_code == TErrorCode.TERR_NO_SWITCH
    assert b.parked is None


def test_an_endcall_on_b_before_its_link_is_up_clears_the_call_once_it_is() -> None:
    """The hot standby's replay runs before the new leader's premise link is up (and a driver
    may send EndCall in that window): the release waits for the resync."""
    a, pbx_a = behind_node()
    bring_up(a.service.switches[SITE], pbx_a, open_link=False)  # type: ignore[arg-type]
    settle(a)
    ivr_a = a.connect()
    ivr_a.login(IVR, call_id="L")
    behind_call(ivr_a, "C1", "1")
    pbx_a.delivered("2053", "3001")
    pbx_a.established("2053", "3001")
    settle(a)
    records = StatePersistence(a.service).everything()
    b, pbx = behind_node(a.now)
    ivr_b = b.connect()
    ivr_b.login(IVR, call_id="LB")
    StatePersistence(b.service).restore(records, b.now)
    b.service.bind_orphans(b.now)
    assert docs(ivr_b, "C1", wm.EndCall(EndCause="Normal")) == []
    settle(b)
    switch = b.service.switches[SITE]
    assert isinstance(switch, PremiseSwitch)
    link_up(switch, pbx, {"3001": [("2053", "connected")]})
    settle(b)
    clears = [req for _, req in pbx.sent() if isinstance(req, m.ClearConnection)]
    assert clears == [
        m.ClearConnection(connection_to_be_cleared=m.ConnectionID(call_id="2053", device_id="3001"))
    ]


def test_a_dn_out_of_service_on_a_is_back_in_service_once_bs_pbx_monitors_it() -> None:
    a, pbx_a = new_switch()
    bring_up(a, pbx_a, refuse_monitor=frozenset({PORT2}))  # A's PBX would not monitor it
    record = a.view.record(PORT2)
    assert record is not None and not record.in_service
    b, pbx = new_switch()
    restore_into(b, records_of(a))
    record = b.view.record(PORT2)
    assert record is not None and not record.in_service  # as A left it, until B's link is up
    events = bring_up(b, pbx)
    assert [(type(e).__name__, getattr(e, "dn", None)) for e in events] == [
        ("EventDNBackInService", PORT2),
        ("EventLinkConnected", None),
    ]
    c, pbx_c = new_switch()
    restore_into(c, records_of(a))
    events = bring_up(c, pbx_c, refuse_monitor=frozenset({PORT2}))
    assert [type(e).__name__ for e in events] == ["EventLinkConnected"]  # still out: no event


def test_a_release_the_old_node_sent_is_sent_again_if_the_pbx_still_has_the_call() -> None:
    a, pbx_a, kept, gone = node_a()
    a.request(TReleaseCall(reference_id=50, conn_id=kept, dn=PORT))
    a.request(TReleaseCall(reference_id=51, conn_id=gone, dn=PORT2))
    assert [type(r) for _, r in pbx_a.sent()] == [m.ClearConnection, m.ClearConnection]
    # A dies before any answer: the PBX cleared 2054, but never got (or did) 2053's
    b, pbx = new_switch()
    restore_into(b, records_of(a))
    events = bring_up(b, pbx, snapshots={PORT: [("2053", "connected")]})
    released, _ = events
    assert isinstance(released, EventReleased)
    assert (released.conn_id, released.reference_id) == (gone, 51)  # the resync, with its ref
    [(invoke_id, clear)] = pbx.sent()
    assert clear == m.ClearConnection(
        connection_to_be_cleared=m.ConnectionID(call_id="2053", device_id=PORT)
    )
    pbx.send(m.ClearConnectionResponse(), invoke_id)
    pbx.cleared("2053", PORT)
    [again] = b.drain_events()
    assert isinstance(again, EventReleased) and (again.conn_id, again.reference_id) == (kept, 50)
    assert b.calls == {} and b.clearing == {}


def test_a_premise_call_kept_at_a_port_for_a_newcall_is_taken_by_the_newcall_on_b() -> None:
    """The PBX delivered the caller to port 1 before the driver's NewCall (defer-tlib-events):
    A kept its events; the NewCall reaches B (a replay, or a new request) after the takeover."""
    a, pbx_a = behind_node()
    bring_up(a.service.switches[SITE], pbx_a, open_link=False)  # type: ignore[arg-type]
    settle(a)
    ivr_a = a.connect()
    ivr_a.login(IVR, call_id="L")
    pbx_a.delivered("2060", "3001")
    pbx_a.established("2060", "3001")
    pbx_a.delivered("2061", "3002")
    settle(a)
    assert ivr_a.take() == []
    records = StatePersistence(a.service).everything()
    b, pbx = behind_node(a.now)
    ivr_b = b.connect()
    ivr_b.login(IVR, call_id="LB")
    StatePersistence(b.service).restore(records, b.now)
    switch = b.service.switches[SITE]
    assert isinstance(switch, PremiseSwitch)
    link_up(switch, pbx, {"3001": [("2060", "connected")], "3002": [("2061", "alerting")]})
    settle(b)
    assert ivr_b.take() == []  # both kept by the resync, silently
    # (a NewCall before the link is up is EndCall ServerPaused: B1, "initialising")
    assert behind_call(ivr_b, "C1", "1") == [
        wm.CallStatus(Event="Ringing"),
        wm.CallStatus(Event="Established"),
    ]
    assert behind_call(ivr_b, "C2", "2") == [wm.CallStatus(Event="Ringing")]
    pbx.cleared("2060", CALLER, "3001")
    settle(b)
    assert [(d.call_id, d.message) for d in ivr_b.take()] == [
        ("C1", wm.CallStatus(Event="Released"))
    ]


def test_a_release_the_pbx_refused_is_not_carried() -> None:
    a, pbx_a, kept, _ = node_a()
    a.view.changed_calls = set()
    a.request(TReleaseCall(reference_id=60, conn_id=kept, dn=PORT))
    assert a.view.changed_calls == {kept}
    state = msgspec.convert(decode_call(records_of(a)[f"call:{kept}"]).premise, PremiseCallState)
    assert state.clearing == {PORT: 60}
    a.view.changed_calls.clear()
    [(invoke_id, _)] = pbx_a.sent()
    pbx_a.send(m.CSTAErrorCode(category="operation", value="generic"), invoke_id)
    assert a.view.changed_calls == {kept}
    state = msgspec.convert(decode_call(records_of(a)[f"call:{kept}"]).premise, PremiseCallState)
    assert state.clearing == {}
