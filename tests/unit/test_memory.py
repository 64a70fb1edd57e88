"""Memory given back after calls end: tables rebuilt in place, the call manager's trigger."""

from __future__ import annotations

import sys

from ivr_server.calls import CallManager, CallSettings, DeadlineQueue, PortTarget
from ivr_server.memory import release_free_memory, shrink
from ivr_server.switch import (
    DnType,
    TOpenLink,
)
from ivr_server.switch.virtual import VirtualSwitch
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
    assert release_free_memory(collect=True) in (True, False)


PORTS = 5000


class _Calls:
    """A call manager on a virtual switch of ``PORTS`` ports, driven call by call."""

    def __init__(self) -> None:
        self.switch = VirtualSwitch(
            "SW", "TS", [(str(4000 + i), DnType.VOICE_TREATMENT_PORT) for i in range(PORTS)]
        )
        self.switch.request(TOpenLink(reference_id=1))
        self.switch.drain_events()
        self.mgr = CallManager(CallSettings(), lambda owner, cid, msg: None)

    def pump(self) -> None:
        while events := self.switch.drain_events():
            for event in events:
                self.mgr.on_event(event, 0.0)

    def start(self, ports: range, prefix: str = "C") -> None:
        for i in ports:
            target = PortTarget(
                ivr="IVR", port=str(i), dn=str(4000 + i), switch=self.switch, mode="In-Front"
            )
            msg = m.NewCall(CallControlMode="Network", Version="4.0", CalledNum=str(i))
            self.mgr.new_call("owner", f"{prefix}{i}", msg, target, 0.0)
            self.pump()

    def end(self, call_id: str) -> None:
        self.mgr.handle("owner", "IVR", call_id, m.EndCall(EndCause="Normal"), 0.0)
        self.pump()

    def end_all(self, prefix: str, ports: range) -> list[int]:
        """End the calls in order; the number of calls left at each compaction (done at once)."""
        compacted = []
        for i in ports:
            self.end(f"{prefix}{i}")
            if self.mgr.compact_due:
                compacted.append(len(self.mgr.calls))
                self.mgr.compact()
        return compacted


def test_the_call_manager_asks_for_compaction_after_most_calls_end() -> None:
    ports = PORTS
    calls = _Calls()
    mgr, switch = calls.mgr, calls.switch
    calls.start(range(ports))
    big = sys.getsizeof(mgr.calls)
    for i in range(ports - 10):
        calls.end(f"C{i}")
        if mgr.compact_due:
            break
    # due once calls in progress fell below an eighth of the peak
    assert mgr.compact_due
    assert len(mgr.calls) == ports // 8 - 1
    assert mgr.compact() >= 1 and not mgr.compact_due
    assert switch.compact() == 1
    assert sys.getsizeof(mgr.calls) < big / 4
    # the calls still there are intact
    assert sorted(c.call_id for c in mgr.calls.values()) == sorted(
        f"C{i}" for i in range(ports - ports // 8 + 1, ports)
    )


def test_a_wind_down_is_compacted_all_the_way_to_no_call_and_only_after_a_big_peak() -> None:
    calls = _Calls()
    calls.start(range(PORTS))
    # each eightfold drop, the last ones however few calls remain: the heap is only given back
    # (after a full collection) once the calls' objects are gone
    assert calls.end_all("C", range(PORTS)) == [624, 77, 9, 1, 0]
    assert not calls.mgr.calls
    # a peak under 4,096 calls starts no wind-down
    calls.start(range(3000), prefix="D")
    assert calls.end_all("D", range(3000)) == []
