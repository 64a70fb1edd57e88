"""Memory given back after calls end: tables rebuilt in place, the call manager's trigger."""

from __future__ import annotations

import sys

from ivr_server.calls import CallManager, CallSettings, DeadlineQueue, PortTarget
from ivr_server.memory import release_free_memory, shrink
from ivr_server.switch import DnType, VirtualSwitch
from ivr_server.wire import messages as m


def test_shrink_rebuilds_a_mostly_empty_table_in_place_and_in_order() -> None:
    table = {f"k{i}": i for i in range(50_000)}
    for i in range(49_990):
        del table[f"k{i}"]
    before = sys.getsizeof(table)
    same = table
    assert shrink(table)
    assert same is table
    assert list(table.items()) == [(f"k{i}", i) for i in range(49_990, 50_000)]
    assert sys.getsizeof(table) < before / 100
    assert not shrink(table)  # small now: left alone


def test_shrink_leaves_full_or_small_tables_alone() -> None:
    full = {i: i for i in range(50_000)}
    assert not shrink(full)
    small = {i: i for i in range(100)}
    small.clear()
    assert not shrink(small)


def test_deadline_queue_keeps_its_order_through_compaction() -> None:
    q: DeadlineQueue[int] = DeadlineQueue()
    for i in range(20_000):
        q.set(i, float(i))
    for i in range(19_995):
        q.cancel(i)
    assert q.compact()
    assert q.first() == 19_995.0
    assert list(q.pop_due(1e9)) == [19_995, 19_996, 19_997, 19_998, 19_999]


def test_release_free_memory_runs() -> None:
    assert release_free_memory() in (True, False)  # False off glibc; never raises


def test_the_call_manager_asks_for_compaction_after_most_calls_end() -> None:
    ports = 5000
    switch = VirtualSwitch(
        "SW", "TS", [(str(4000 + i), DnType.VOICE_TREATMENT_PORT) for i in range(ports)]
    )
    switch.connect_link()
    switch.drain_events()
    mgr = CallManager(CallSettings(), lambda owner, cid, msg: None)

    def pump() -> None:
        while events := switch.drain_events():
            for event in events:
                mgr.on_event(event, 0.0)

    for i in range(ports):
        target = PortTarget(
            ivr="IVR", port=str(i), dn=str(4000 + i), switch=switch, mode="In-Front"
        )
        msg = m.NewCall(CallControlMode="Network", Version="4.0", CalledNum=str(i))
        mgr.new_call("owner", f"C{i}", msg, target, 0.0)
        pump()
    big = sys.getsizeof(mgr.calls)
    end = m.EndCall(EndCause="Normal")
    for i in range(ports - 10):
        mgr.handle("owner", "IVR", f"C{i}", end, 0.0)
        pump()
        if mgr.compact_due:
            break
    # due once calls in progress fell below an eighth of the peak
    assert mgr.compact_due
    assert len(mgr.calls) == ports // 8 - 1
    assert mgr.compact() >= 1 and not mgr.compact_due
    assert switch.compact() == 1
    assert sys.getsizeof(mgr.calls) < big / 4
    # the calls still there are intact
    assert sorted(mgr.calls) == sorted(f"C{i}" for i in range(ports - ports // 8 + 1, ports))
