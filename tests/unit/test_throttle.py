"""LogThrottle: the first occurrence of a cause at once, then one summary per cause per interval."""

from __future__ import annotations

from ivr_server.throttle import LogThrottle, Summary


def test_first_in_full_then_one_summary_per_interval_per_cause() -> None:
    throttle: LogThrottle[str] = LogThrottle(10.0)
    assert throttle.note("a", 0.0) and throttle.note("b", 1.0)
    assert not throttle.pending and throttle.next_deadline() is None
    assert [throttle.note("a", t) for t in (2.0, 3.0, 4.0)] == [False] * 3
    assert not throttle.note("b", 5.0)
    assert throttle.next_deadline() == 10.0
    assert throttle.take_due(9.9) == []
    assert throttle.take_due(10.0) == [Summary("a", 3, 10.0)]
    assert throttle.next_deadline() == 11.0
    assert not throttle.note("a", 12.0)  # within the interval of the summary line: counted
    assert throttle.take_due(11.0) == [Summary("b", 1, 10.0)]
    assert throttle.take_due(30.0, everything=True) == [Summary("a", 1, 20.0)]
    assert throttle.note("a", 41.0)  # quiet for an interval: in full again
    assert not throttle.pending
