"""LogMsg texts are cut and rate-limited per session, with a summary line every 10 s, in memory
(the service core with a clock of the test's own; the same over TCP: test_log_flood.py)."""

from __future__ import annotations

import logging

import pytest

from ivr_server.config import default_config
from ivr_server.service import IvrService
from ivr_server.service.sessions import LogMsgBudget, Session
from ivr_server.session import IvrLink, Role
from ivr_server.wire import messages as m

IVR_LOG = "ivr_server.service.ivr"


def summaries(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "LogMsg dropped" in r.getMessage()]


def logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == IVR_LOG]


def test_budget_allows_the_burst_then_the_rate() -> None:
    budget = LogMsgBudget(burst=3, now=0.0)
    assert [budget.admit(0.0, rate=2.0, burst=3) for _ in range(4)] == [True, True, True, False]
    assert budget.admit(0.5, rate=2.0, burst=3)  # one token back after half a second
    assert not budget.admit(0.5, rate=2.0, burst=3)
    assert [budget.admit(100.0, rate=2.0, burst=3) for _ in range(4)] == [True, True, True, False]


def test_budget_sums_up_each_interval_of_dropping_and_ends_after_a_quiet_one() -> None:
    budget = LogMsgBudget(burst=1, now=0.0)
    assert budget.drop(1.0) and not budget.drop(2.0)  # the first drop starts the period
    assert budget.summary_due(10.9, 10.0) == -1
    assert budget.summary_due(11.0, 10.0) == 2
    assert budget.summary_due(21.0, 10.0) == 0  # none in that interval: the period is over
    assert budget.summary_due(40.0, 10.0) == -1
    assert budget.drop(41.0)  # a new period
    assert budget.take_dropped() == 1 and budget.summary_due(60.0, 10.0) == -1


def test_flood_is_cut_limited_summed_up_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ivr_server")
    config = default_config()
    options = {"logmsg_rate": 1.0, "logmsg_burst": 5, "logmsg_max_length": 8}
    config = config.model_copy(update={"server": config.server.model_copy(update=options)})
    service = IvrService(config)
    flooder = service.open_session("127.0.0.1:9", IvrLink(Role.SERVER, now=0.0), 0.0)
    other = service.open_session("127.0.0.1:10", IvrLink(Role.SERVER, now=0.0), 0.0)

    def log_msg(session: Session, text: str, now: float, kind: str = "Standard") -> None:
        service.handle(session, "C", m.LogMsg(MsgType=kind, Msg=text), now)  # type: ignore[arg-type]

    for _ in range(10):
        log_msg(other, "not at this level", 0.0, "Trace")  # neither logged nor counted
    for second in range(30):  # 3 a second: 5 at once, then 1 a second
        for _ in range(3):
            log_msg(flooder, f"line {second:02d} and more", float(second))
        if second == 5:
            log_msg(other, "fine", 5.0)  # another session's budget is its own
    service.close_session(flooder, "peer closed", 30.0)

    kept = logged(caplog)
    assert kept[0] == "line 00 ... [LogMsg cut: 16 characters in all]"
    assert len(kept) == 3 + 3 + 28 + 1 and "fine" in kept
    warned = [r.getMessage() for r in caplog.records if "over the rate limit" in r.getMessage()]
    assert warned == [  # once: the period of dropping lasts until the session closes
        "session 1: LogMsg over the rate limit (1/s, burst 5): the excess is dropped, and "
        "counted every 10 s"
    ]
    # drops at 2..11 s summed up at 12 s, 12..21 s at 22 s, 22..29 s when the session closed
    assert summaries(caplog) == [
        f"session 1: {n} LogMsg dropped (rate limit)" for n in (20, 20, 16)
    ]
    assert service.metrics.logmsg_dropped == {"rate_limit": 56}
    assert service.metrics.logmsg_truncated == 34
