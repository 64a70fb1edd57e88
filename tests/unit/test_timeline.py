"""Calls' timelines (src/ivr_server/calls/timeline.py, timeline_view.py): bounded rings, ended
calls kept for the retention and up to a count, the entries as people read them (user data keys
only, errors explained), and the call side recording what passes."""

from __future__ import annotations

import gc

import pytest

from ivr_server.calls.replies import BLOCKED_REQ, INVALID_REQ, LINK_DOWN, UNSUP_OPER, blocked
from ivr_server.calls.timeline import IN, OUT, SWITCH, TimelineLimits, Timelines
from ivr_server.calls.timeline_view import EXPLANATIONS, explain, summary, view
from ivr_server.switch import EventError, EventEstablished, RequestRouteCall
from ivr_server.switch.errors import TErrorCode
from ivr_server.wire import Node
from ivr_server.wire import messages as m

SECRET = "4929-1234-5678-SECRET"


def timelines(entries: int = 200, retention: float = 600.0, calls: int = 10_000) -> Timelines:
    return Timelines(TimelineLimits(entries=entries, retention=retention, calls=calls))


def run_call(tl: Timelines, call_id: str, start: float, steps: int, ivr: str = "IVR_1") -> None:
    tl.now = start
    tl.start(call_id)
    for step in range(steps):
        tl.now = start + step
        tl.record(call_id, IN, m.EndCall(EndCause="Normal"))
    tl.end(call_id, ivr)


# ------------------------------------------------------------------ bounds


def test_a_ring_keeps_the_last_entries_only() -> None:
    tl = timelines(entries=5)
    tl.start("C1")
    for step in range(12):
        tl.now = float(step)
        tl.record("C1", IN, m.EndCall(EndCause="Normal"))
    found = tl.get("C1", 20.0)
    assert found is not None
    entries, ended = found
    assert ended is None
    assert [at for at, _, _ in entries] == [7.0, 8.0, 9.0, 10.0, 11.0]


def test_ended_timelines_are_kept_for_the_retention_then_dropped() -> None:
    tl = timelines(retention=600.0)
    run_call(tl, "C1", 100.0, 3)  # ended at 102
    found = tl.get("C1", 702.0)
    assert found is not None and found[1] == 102.0 and len(found[0]) == 3
    assert tl.get("C1", 702.5) is None
    assert len(tl) == 0


def test_ended_timelines_are_bounded_in_number_oldest_first() -> None:
    tl = timelines(calls=3)
    for n in range(6):
        run_call(tl, f"C{n}", float(n), 2)
    assert list(tl.ended) == ["C3", "C4", "C5"]
    assert tl.get("C2", 10.0) is None and tl.get("C5", 10.0) is not None


def test_memory_stays_bounded_through_many_calls() -> None:
    tl = timelines(entries=8, calls=50, retention=1e9)
    for n in range(5_000):
        run_call(tl, f"C{n}", float(n), 20)
        assert len(tl.ended) <= 50
    assert len(tl) == 50 and not tl.live
    assert tl.entry_count() == 50 * 8


def test_no_timelines_when_entries_is_zero() -> None:
    tl = timelines(entries=0)
    run_call(tl, "C1", 1.0, 3)
    assert len(tl) == 0 and tl.get("C1", 2.0) is None


def test_a_new_call_with_a_used_callid_starts_afresh() -> None:
    tl = timelines()
    run_call(tl, "C1", 1.0, 3)
    tl.start("C1")
    found = tl.get("C1", 5.0)
    assert found == ([], None)


def test_a_request_after_the_end_joins_the_ended_timeline_of_its_own_ivr_only() -> None:
    tl = timelines()
    run_call(tl, "C1", 1.0, 2)
    tl.now = 9.0
    tl.record_late(
        "C1", IN, m.EndCall(EndCause="Normal"), "IVR_2"
    )  # another IVR's CallId: not this call's
    tl.record_late("C1", IN, m.EndCall(EndCause="Normal"), "IVR_1")
    found = tl.get("C1", 10.0)
    assert found is not None and [at for at, _, _ in found[0]] == [1.0, 2.0, 9.0]


def test_a_late_request_keeps_the_ring_length_and_the_ended_order() -> None:
    tl = timelines(entries=3)
    run_call(tl, "C1", 1.0, 3)
    run_call(tl, "C2", 5.0, 1)
    tl.now = 9.0
    tl.record_late("C1", IN, m.EndCall(EndCause="Normal"), "IVR_1")
    found = tl.get("C1", 10.0)
    assert found is not None and [at for at, _, _ in found[0]] == [2.0, 3.0, 9.0]
    assert list(tl.ended) == ["C1", "C2"]  # the oldest still goes first


def test_an_ended_timeline_is_not_walked_by_every_full_collection() -> None:
    """An ended call's entries are a tuple, which the collector stops tracking (a deque would
    stay tracked: 10,000 of them made every full collection a stall, docs/performance.md §13)."""
    tl = timelines()
    run_call(tl, "C1", 1.0, 5)
    gc.collect()  # entries made since the last collection are untracked at this look,
    gc.collect()  # the flat tuple that holds them at the next: a young collection does that
    assert not gc.is_tracked(tl.ended["C1"])


def test_first_puts_the_starting_request_before_what_it_caused() -> None:
    tl = timelines()
    tl.now = 4.0
    tl.start("C1")
    tl.record("C1", OUT, m.CallStatus(Event="Ringing"))
    tl.first("C1", m.EndCall(EndCause="Normal"))
    found = tl.get("C1", 5.0)
    assert found is not None
    assert [direction for _, direction, _ in found[0]] == [IN, OUT]


def test_new_limits_apply_to_the_ended_count_at_once() -> None:
    tl = timelines(calls=10)
    for n in range(6):
        run_call(tl, f"C{n}", float(n), 1)
    tl.configure(TimelineLimits(calls=2))
    assert list(tl.ended) == ["C4", "C5"]


# ------------------------------------------------------------------ reading


def test_every_tlib_error_code_and_ivr_symbol_is_explained() -> None:
    for code in TErrorCode:
        assert EXPLANATIONS.get(code.name), code
        got = explain(str(code.value), "TSingleStepTransfer")
        assert got["name"] == code.name and got["explanation"] == EXPLANATIONS[code.name]
    for symbol in (INVALID_REQ, BLOCKED_REQ, UNSUP_OPER, LINK_DOWN, "NoSuchCall"):
        assert EXPLANATIONS.get(symbol), symbol
        assert explain(symbol)["name"] == symbol
    assert explain(None, "NoSuchCall")["name"] == "NoSuchCall"
    unknown = explain("7777")
    assert unknown["name"] is None and "7777" in unknown["explanation"]


def test_user_data_shows_keys_never_values() -> None:
    msg = m.UDataSet(
        Action="Add",
        RequestId="7",
        UDataEx=(Node(Name="CardNumber", Type="Str", Val=SECRET),),
    )
    text = summary(msg)
    assert "CardNumber" in text and SECRET not in text and "RequestId=7" in text
    event = EventEstablished(
        switch="SW",
        dn="4001",
        conn_id="00a1",
        call_id=1,
        user_data=(Node(Name="Pin", Type="Str", Val=SECRET),),
    )
    text = summary(event)
    assert text.startswith("EventEstablished") and "Pin" in text and SECRET not in text


def test_kinds_and_error_entries() -> None:
    error = EventError(
        switch="SW",
        reference_id=4,
        dn="4001",
        error_code=TErrorCode.TERR_INV_CALD_DN,
        error_message="CSTA operation error invalidCalledDevice",
        request="TSingleStepTransfer",
        conn_id="00a1",
    )
    route = RequestRouteCall(
        switch="SW", dn="5000", conn_id="00a1", call_id=1, route_type="Default", dest="4002"
    )
    reply = m.CallError(FailedReq="OneStepXfer", TlibErrCode="71")
    refusal = blocked("C1", "InitXfer not allowed in state Routing", "InitXfer")
    entries = [
        (10.0, IN, m.OneStepXfer(DestDN="4002")),
        (10.5, SWITCH, error),
        (10.5, OUT, reply),
        (11.0, SWITCH, route),
        (12.0, OUT, refusal),
        (12.0, OUT, m.CallStatus(Event="Released")),
    ]
    got = view(entries, wall_offset=1000.0)
    assert [e["kind"] for e in got] == ["ivr-in", "error", "error", "router", "error", "ivr-out"]
    assert got[0]["time"] == 1010.0 and got[1]["offset"] == 0.5
    assert got[1]["error"] == {
        "code": "71",
        "name": "TERR_INV_CALD_DN",
        "explanation": EXPLANATIONS["TERR_INV_CALD_DN"],
        "request": "TSingleStepTransfer",
        "switch_text": "CSTA operation error invalidCalledDevice",
    }
    assert got[2]["error"]["request"] == "OneStepXfer" and got[2]["name"] == "CallError"
    assert got[4]["reason"] == "InitXfer not allowed in state Routing"
    assert got[4]["error"]["name"] == BLOCKED_REQ


@pytest.mark.parametrize("result", ["NoSuchCall", "NoMatch", "MiscError"])
def test_a_failed_user_data_answer_is_an_error(result: str) -> None:
    (entry,) = view([(1.0, OUT, m.UDataResp(Result=result, RequestId="1"))])  # type: ignore[arg-type]
    assert entry["kind"] == "error" and entry["error"]["explanation"] == EXPLANATIONS[result]
    (ok,) = view([(1.0, OUT, m.UDataResp(Result="Success", RequestId="1"))])
    assert ok["kind"] == "ivr-out" and "error" not in ok


# ------------------------------------------------------------------ the call side records


def test_the_call_side_records_requests_replies_events_and_refusals() -> None:
    from tests.unit.test_calls import Harness

    h = Harness()
    h.new_call("C1")
    h.send(
        "C1",
        m.UDataSet(
            Action="Add", RequestId="1", UDataEx=(Node(Name="Pin", Type="Str", Val=SECRET),)
        ),
    )
    # a message that is not a request about a call
    refused = h.send("C1", m.NewCall(CallControlMode="Network", CalledNum="1"))
    assert refused and refused[0].tag == "CallError"
    h.send("C1", m.EndCall(EndCause="Normal"))
    ((_, entries, ended_at),) = h.mgr.timeline("C1", h.now)
    assert ended_at == h.now
    got = view(entries)
    assert got[0]["name"] == "NewCall" and got[0]["kind"] == "ivr-in"
    kinds = {(e["kind"], e["name"]) for e in got}
    assert ("ivr-out", "CallStatus") in kinds and ("switch-event", "EventRinging") in kinds
    assert ("ivr-in", "UDataSet") in kinds and ("ivr-out", "UDataResp") in kinds
    (error,) = [e for e in got if e["kind"] == "error"]
    assert error["error"]["name"] == INVALID_REQ and "reason" in error
    assert got[-1]["name"] == "EndCall"
    assert all(SECRET not in e["summary"] for e in got)
    # a request after the end: answered NoSuchCall, and on the ended call's timeline
    assert [r.tag for r in h.send("C1", m.UDataGetAll(RequestId="2"))] == ["UDataResp"]
    ((_, late, _),) = h.mgr.timeline("C1", h.now)
    assert len(late) == len(entries) + 2
    assert view(late)[-1]["error"]["name"] == "NoSuchCall"
    assert h.mgr.timeline("C1", h.now + 601) == []


def test_the_routers_instructions_are_router_entries() -> None:
    from ivr_server.switch import TApplyTreatment, TRouteCall
    from tests.unit.test_calls import Harness

    h = Harness(router_timeout=4.0)
    h.new_call("C1")
    h.send("C1", m.RouteRequest(RouteDN="5000"))
    conn = h.conn_id()
    h.router(TApplyTreatment(reference_id=1, conn_id=conn, dn="5000", treatment_type="Music"))
    h.send("C1", m.TreatStatus(Status="Started"))
    h.router(TRouteCall(reference_id=2, conn_id=conn, dn="5000", dest="7001"))
    h.send("C1", m.CancelCompleted())
    ((_, found, ended_at),) = h.mgr.timeline("C1", h.now)
    assert ended_at is None  # in progress
    got = view(found)
    router = [e["name"] for e in got if e["kind"] == "router"]
    assert router == ["RequestApplyTreatment", "RequestRouteCall"]
    assert any("dest=7001" in e["summary"] for e in got if e["name"] == "RequestRouteCall")
    assert [e["name"] for e in got if e["kind"] == "ivr-out"][-1] == "RouteResponse"
