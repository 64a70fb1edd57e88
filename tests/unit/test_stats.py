"""Unit tests of the built-in statistics engine (docs/statistics.md, PROTOCOL.md §3.9, §9.4.5).

Real virtual switches are driven with T-Library requests; every event they publish is fed to the
engine with an explicit ``now``. Expected values are worked out by hand from the documented
definitions (the waits, the agent activities), never read back from the engine.
"""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from ivr_server.config import (
    STAT_OBJECT_TYPES,
    STAT_TYPES,
    ServerConfig,
    StatisticConfig,
    default_config,
    load_config,
    parse_config,
)
from ivr_server.errors import ConfigError, ConfigProblem
from ivr_server.stats import (
    EWT_MAX_SAMPLES,
    EWT_WINDOW_S,
    AgentCounts,
    StatsEngine,
    StatUnavailable,
    StatValue,
    format_value,
    result_code,
)
from ivr_server.switch import (
    DnType,
    EventEstablished,
    SwitchEvent,
    SwitchRequest,
    TAgentLogin,
    TAgentSetNotReady,
    TCallerHangUp,
    TConfigureAddresses,
    TInboundCall,
    TOpenLink,
    TReleaseCall,
    TRouteAbort,
    TRouteCall,
    TRouteFailed,
    TRouteRequest,
    WorkMode,
)
from ivr_server.switch.virtual import VirtualSwitch

REPO = Path(__file__).parents[2]

BASE = """
[[switches]]
name = "SW"
dns = [
    { number = "100", type = "voice-treatment-port" },
    { number = "101", type = "voice-treatment-port" },
    { number = "102", type = "voice-treatment-port" },
    { number = "103", type = "voice-treatment-port" },
    { number = "104", type = "extension" },
    { number = "200", type = "routing-point" },
    { number = "201", type = "routing-point" },
    { number = "300", type = "acd-queue" },
    { number = "301", type = "acd-queue" },
]

[[switches]]
name = "SW2"
dns = [
    { number = "201", type = "routing-point" },
    { number = "900", type = "extension" },
]

[[tservers]]
name = "TS"
switch = "SW"

[[tservers]]
name = "TS2"
switch = "SW2"

[[ivrs]]
name = "IVR"
tservers = ["TS"]
ports = [{ number = "1", dn = "100" }, { number = "2", dn = "101" }]

[[ivrs]]
name = "IVR_B"
tservers = ["TS"]

[[agent-groups]]
name = "team"
agents = ["a1", "a2", "a9"]
"""

STATS = """
[[statistics]]
name = "Waiting"
stat-type = "CurrNumberWaitingCalls"
object-id = "200"
object-type = "RoutePoint"

[[statistics]]
name = "EWT"
server-name = "Stat_Server"
stat-type = "ExpectedWaitTime"
object-id = "200@SW"
object-type = "RoutePoint"

[[statistics]]
name = "Longest"
stat-type = "CurrMaxCallWaitingTime"
object-id = "200"
object-type = "RoutePoint"

[[statistics]]
name = "Ready_300"
stat-type = "CurrentReadyAgents"
object-id = "300"
object-type = "Queue"

[[statistics]]
name = "Calls_IVR"
stat-type = "CurrNumberCallsInProgress"
object-id = "IVR"
object-type = "IVR"

[[statistics]]
name = "Waiting_cached"
stat-type = "CurrNumberWaitingCalls"
object-id = "200"
object-type = "RoutePoint"
update-frequency = "5s"
"""

PORT, PORT_2, PORT_3, PORT_4, EXT = "100", "101", "102", "103", "104"
RP, RP_2, QUEUE, QUEUE_2 = "200", "201", "300", "301"


def build_switches(config: ServerConfig) -> dict[str, VirtualSwitch]:
    switches: dict[str, VirtualSwitch] = {}
    for index, switch_config in enumerate(config.switches):
        tserver = config.tserver_for_switch(switch_config.name)
        switch = VirtualSwitch(
            switch_config.name,
            tserver.name if tserver else "",
            [(dn.number, DnType(dn.type.value)) for dn in switch_config.dns],
            first_conn_id=(index + 1) << 24,
        )
        switch.request(TOpenLink(reference_id=0))
        switch.drain_events()
        switches[switch_config.name] = switch
    return switches


class Site:
    """Real switches and an engine, with every event fed to the engine at an explicit time."""

    def __init__(self, extra: str = STATS, *, ewt_window_s: float = EWT_WINDOW_S) -> None:
        self.config = parse_config(BASE + extra)
        self.switches = build_switches(self.config)
        self.ivr_calls: dict[str, int] = {}
        self.engine = StatsEngine(
            self.config,
            self.switches,
            lambda ivr: self.ivr_calls.get(ivr, 0),
            ewt_window_s=ewt_window_s,
        )
        self._refs = itertools.count(1)

    def send(self, request: SwitchRequest, now: float, switch: str = "SW") -> list[SwitchEvent]:
        target = self.switches[switch]
        target.request(request)
        events = target.drain_events()
        for event in events:
            self.engine.on_event(switch, event, now)
        return events

    def ref(self) -> int:
        return next(self._refs)

    def call(self, now: float, dn: str = PORT, switch: str = "SW") -> str:
        events = self.send(TInboundCall(reference_id=self.ref(), dn=dn), now, switch)
        established = events[-1]
        assert isinstance(established, EventEstablished), events
        return established.conn_id

    def wait(self, conn_id: str, now: float, rp: str = RP, dn: str = PORT) -> None:
        events = self.send(
            TRouteRequest(reference_id=self.ref(), conn_id=conn_id, dn=dn, route_dn=rp), now
        )
        assert [e.name for e in events] == ["EventRouteRequest"], events

    def route(self, conn_id: str, now: float, rp: str = RP, dest: str | None = "104") -> None:
        events = self.send(
            TRouteCall(reference_id=self.ref(), conn_id=conn_id, dn=rp, dest=dest), now
        )
        assert [e.name for e in events] == ["RequestRouteCall", "EventRouteUsed"], events

    def waiting_call(self, start: float, dn: str = PORT, rp: str = RP) -> str:
        conn_id = self.call(start, dn)
        self.wait(conn_id, start, rp, dn)
        return conn_id

    def release(self, conn_id: str, now: float, dn: str = PORT) -> None:
        self.send(TReleaseCall(reference_id=self.ref(), conn_id=conn_id, dn=dn), now)

    def login(self, dn: str, agent_id: str, now: float, *, ready: bool, queue: str = QUEUE) -> None:
        work_mode = WorkMode.AUTO_IN if ready else WorkMode.UNKNOWN
        login = TAgentLogin(
            reference_id=self.ref(), dn=dn, queue=queue, agent_id=agent_id, work_mode=work_mode
        )
        events = self.send(login, now)
        assert events[0].name == "EventAgentLogin", events

    def peek(self, name: str, now: float) -> float:
        result = self.engine.peek(name, now)
        assert isinstance(result, StatValue), result
        return result.value


def values(site: Site, names: list[str], now: float) -> list[float]:
    return [site.peek(name, now) for name in names]


# --------------------------------------------------------------------------------------------
# Calls waiting at a routing point


def test_waiting_calls_follow_route_requests_routing_and_release() -> None:
    site = Site()
    assert site.peek("Waiting", 0) == 0
    first = site.waiting_call(1.0)
    second = site.waiting_call(2.0, PORT_2)
    other = site.waiting_call(2.0, PORT_3, RP_2)  # another routing point: not counted
    assert site.peek("Waiting", 3) == 2
    site.route(first, 4.0)
    assert site.peek("Waiting", 4) == 1
    site.release(second, 5.0, PORT_2)  # the caller gave up while waiting
    assert site.peek("Waiting", 5) == 0
    assert site.engine.value("CurrNumberWaitingCalls", "201@SW", "RoutePoint", 5) == 1
    site.route(other, 6.0, RP_2)
    assert site.engine.value("CurrNumberWaitingCalls", "201@SW", "RoutePoint", 6) == 0


def test_the_count_comes_from_the_switch_even_for_waits_the_engine_did_not_see() -> None:
    site = Site()
    conn_id = site.call(0.0)
    site.switches["SW"].request(
        TRouteRequest(reference_id=1, conn_id=conn_id, dn=PORT, route_dn=RP)
    )
    site.switches["SW"].drain_events()  # not fed to the engine
    assert site.peek("Waiting", 1) == 1
    assert site.peek("Longest", 1) == 0  # its start is unknown


# --------------------------------------------------------------------------------------------
# Expected wait time


def test_ewt_is_the_mean_of_the_routed_waits() -> None:
    site = Site()
    a = site.waiting_call(0.0)
    b = site.waiting_call(5.0, PORT_2)
    site.route(a, 10.0)  # waited 10 s
    assert site.peek("EWT", 10) == 10
    site.route(b, 25.0)  # waited 20 s
    assert site.peek("EWT", 25) == 15
    c = site.waiting_call(30.0)
    site.route(c, 30.5)  # waited 0.5 s
    assert site.peek("EWT", 31) == pytest.approx(30.5 / 3, abs=0.001)
    assert site.engine.get("Stat_Server", "ExpectedWaitTime", "200@SW", "RoutePoint", 31) == (
        StatValue(name="EWT", value=round(30.5 / 3, 3), computed_at=31)
    )


def test_a_default_route_counts_as_routed() -> None:
    site = Site()
    a = site.waiting_call(0.0)
    site.route(a, 3.0, dest=None)  # RouteType Default: the router still answered
    assert site.peek("EWT", 3) == 3


def test_waits_that_end_without_routing_are_not_samples() -> None:
    site = Site()
    routed = site.waiting_call(0.0)
    site.route(routed, 4.0)
    abandoned = site.waiting_call(0.0, PORT_2)
    site.release(abandoned, 100.0, PORT_2)  # hung up after 100 s
    aborted = site.waiting_call(0.0, PORT_3)
    events = site.send(TRouteAbort(reference_id=1, conn_id=aborted, dn=RP), 50.0)  # router timeout
    assert [e.name for e in events] == ["EventRouteUsed"]
    assert site.peek("EWT", 100) == 4
    assert site.engine.overview(100)["routing_points"][0] == {
        "switch": "SW",
        "dn": RP,
        "waiting": 0,
        "ewt": 4.0,
        "max_wait": 0.0,
    }


def test_without_recent_routed_waits_ewt_is_the_longest_current_wait() -> None:
    site = Site(ewt_window_s=60.0)
    assert site.peek("EWT", 0) == 0  # nothing waits, nothing known
    old = site.waiting_call(0.0)
    site.route(old, 10.0)
    assert site.peek("EWT", 69.9) == 10
    assert site.peek("EWT", 70.0) == 0  # the sample ended 60 s ago: out of the window
    site.waiting_call(70.0, PORT_2)
    site.waiting_call(80.0, PORT_3)
    assert site.peek("EWT", 112.25) == 42.25
    assert site.peek("Longest", 112.25) == 42.25


def test_a_failed_route_makes_the_call_wait_again_from_that_moment() -> None:
    site = Site()
    conn_id = site.waiting_call(0.0)
    site.route(conn_id, 5.0)
    events = site.send(
        TRouteFailed(reference_id=9, conn_id=conn_id, dn=RP, error_code=58), 7.0
    )  # the IVR answered Failure: the call is back at the routing point
    assert [e.name for e in events] == ["EventError"]
    assert site.peek("Waiting", 7) == 1
    assert site.peek("Longest", 10) == 3
    site.route(conn_id, 12.0)
    assert site.engine._waits.completed_waits("SW", RP, 12) == [5.0, 5.0]
    assert site.peek("EWT", 12) == 5


def test_waits_are_kept_per_switch() -> None:
    site = Site()
    here = site.waiting_call(0.0, PORT, RP_2)
    there = site.call(0.0, "900", "SW2")
    site.send(TRouteRequest(reference_id=1, conn_id=there, dn="900", route_dn=RP_2), 0.0, "SW2")
    site.route(here, 2.0, RP_2)
    site.send(TRouteCall(reference_id=2, conn_id=there, dn=RP_2, dest="1"), 8.0, "SW2")
    assert site.engine.value("ExpectedWaitTime", "201@SW", "RoutePoint", 8) == 2
    assert site.engine.value("ExpectedWaitTime", "201@SW2", "RoutePoint", 8) == 8
    assert site.engine.value("ExpectedWaitTime", "201", "RoutePoint", 8) is None  # ambiguous


# --------------------------------------------------------------------------------------------
# Memory stays bounded


def test_many_routed_calls_keep_a_bounded_window() -> None:
    site = Site()
    now = 0.0
    for n in range(3 * EWT_MAX_SAMPLES):
        conn_id = site.waiting_call(now)
        now += 0.5
        site.route(conn_id, now)
        site.release(conn_id, now)
        assert site.engine._waits.tracked_waits == 0, n
    assert site.engine._waits.stored_samples == EWT_MAX_SAMPLES
    assert site.peek("EWT", now) == 0.5
    assert site.engine._waits.completed_waits("SW", RP, now + 10_000) == []
    assert site.engine._waits.stored_samples == 0  # expired samples are dropped


def test_calls_whose_end_was_never_fed_are_swept() -> None:
    site = Site()
    switch = site.switches["SW"]
    peak = 0
    for n in range(5000):
        site.waiting_call(float(n))
        conn_id = next(iter(switch.view.calls())).conn_id
        switch.request(TCallerHangUp(reference_id=0, conn_id=conn_id))
        switch.drain_events()  # the release is lost: never fed
        peak = max(peak, site.engine._waits.tracked_waits)
    assert peak <= 1024
    still = site.waiting_call(6000.0)
    site.engine._waits.sweep(6000.0)
    assert site.engine._waits.tracked_waits == 1
    assert site.peek("Longest", 6001) == 1
    site.release(still, 6002)
    assert site.engine._waits.tracked_waits == 0


# --------------------------------------------------------------------------------------------
# Agents


def agent_site() -> Site:
    site = Site()
    site.login(PORT, "a1", 0, ready=True)
    site.login(PORT_2, "a2", 0, ready=False)
    site.login(PORT_3, "a3", 0, ready=True)
    site.login(PORT_4, "a4", 0, ready=True, queue=QUEUE_2)
    site.login(EXT, "a9", 0, ready=True, queue="")
    return site


def counts(site: Site, object_id: str, object_type: str, now: float = 0) -> AgentCounts:
    found = [
        site.engine.value(stat_type, object_id, object_type, now)
        for stat_type in (
            "CurrentReadyAgents",
            "CurrentNotReadyAgents",
            "CurrentBusyAgents",
            "CurrentLoggedInAgents",
        )
    ]
    assert None not in found, found
    ready, not_ready, busy, logged_in = (int(v or 0) for v in found)
    result = AgentCounts(ready=ready, not_ready=not_ready, busy=busy)
    assert result.logged_in == logged_in
    return result


def test_agents_of_a_queue_by_activity() -> None:
    site = agent_site()
    assert counts(site, QUEUE, "Queue") == AgentCounts(ready=2, not_ready=1, busy=0)
    assert counts(site, QUEUE_2, "Queue") == AgentCounts(ready=1)
    busy = site.call(1.0, PORT_3)  # a3 gets a call: busy, though still Ready
    not_ready_busy = site.call(1.0, PORT_2)  # a2 is NotReady and on a call: busy
    assert counts(site, QUEUE, "Queue") == AgentCounts(ready=1, busy=2)
    assert site.peek("Ready_300", 1) == 1
    site.release(busy, 2.0, PORT_3)
    site.release(not_ready_busy, 2.0, PORT_2)
    site.send(TAgentSetNotReady(reference_id=1, dn=PORT, queue=""), 3.0)
    assert counts(site, QUEUE, "Queue") == AgentCounts(ready=1, not_ready=2)
    assert counts(site, "300@SW", "Queue") == AgentCounts(ready=1, not_ready=2)


def test_agents_of_a_group_on_any_queue() -> None:
    site = agent_site()
    # team = a1 (ready, queue 300), a2 (not ready, 300), a9 (ready, no queue); a3, a4 are not in it
    assert counts(site, "team", "AgentGroup") == AgentCounts(ready=2, not_ready=1)
    site.call(1.0, EXT)
    assert counts(site, "team", "AgentGroup") == AgentCounts(ready=1, not_ready=1, busy=1)


def test_an_empty_queue_counts_zero() -> None:
    site = Site()
    assert counts(site, QUEUE, "Queue") == AgentCounts()
    assert counts(site, "team", "AgentGroup") == AgentCounts()


# --------------------------------------------------------------------------------------------
# IVRs


def test_calls_in_progress_per_ivr() -> None:
    site = Site()
    assert site.peek("Calls_IVR", 0) == 0
    site.ivr_calls["IVR"] = 3
    site.ivr_calls["IVR_B"] = 7
    assert site.peek("Calls_IVR", 1) == 3
    assert site.engine.value("CurrNumberCallsInProgress", "IVR_B", "IVR", 1) == 7
    assert site.engine.value("CurrNumberCallsInProgress", "nobody", "IVR", 1) is None


# --------------------------------------------------------------------------------------------
# Requests: PeekStatReq, GetStatReq, caching, MiscError


def test_peek_unknown_name_is_no_such_stat() -> None:
    site = Site()
    assert site.engine.peek("EWT_Sales", 0) is None
    assert site.engine.peek("waiting", 0) is None  # names are case-sensitive
    assert result_code(site.engine.peek("EWT_Sales", 0)) == "NoSuchStat"
    assert result_code(site.engine.peek("Waiting", 0)) == "Success"


@pytest.mark.parametrize(
    ("request_values", "found"),
    [
        (("StatServer", "CurrNumberWaitingCalls", "200", "RoutePoint"), "Waiting"),
        (("Stat_Server", "ExpectedWaitTime", "200@SW", "RoutePoint"), "EWT"),
        (("StatServer", "ExpectedWaitTime", "200@SW", "RoutePoint"), None),  # server name
        (("Stat_Server", "ExpectedWaitTime", "200", "RoutePoint"), None),  # object id as written
        (("StatServer", "CurrNumberWaitingCalls", "200", "SObjectRoutePoint"), None),
        (("StatServer", "currnumberwaitingcalls", "200", "RoutePoint"), None),
        (("statserver", "CurrNumberWaitingCalls", "200", "RoutePoint"), None),
        (("StatServer", "CurrentReadyAgents", "300", "Queue"), "Ready_300"),
    ],
)
def test_get_matches_a_configured_statistic_exactly(
    request_values: tuple[str, str, str, str], found: str | None
) -> None:
    site = Site()
    result = site.engine.get(*request_values, now=0)
    if found is None:
        assert result is None
    else:
        assert isinstance(result, StatValue) and result.name == found


def test_several_matches_answer_with_the_first_in_file_order() -> None:
    # "Waiting" and "Waiting_cached" have the same four values: GetStatReq gets "Waiting"
    site = Site()
    result = site.engine.get("StatServer", "CurrNumberWaitingCalls", "200", "RoutePoint", 0)
    assert isinstance(result, StatValue) and result.name == "Waiting"


def test_update_frequency_caches_the_value() -> None:
    site = Site()
    assert site.peek("Waiting_cached", 0) == 0
    site.waiting_call(1.0)
    assert site.peek("Waiting", 1) == 1  # update-frequency 0: computed on every request
    cached = site.engine.peek("Waiting_cached", 4.999)
    assert cached == StatValue(name="Waiting_cached", value=0, computed_at=0)
    assert site.peek("Waiting_cached", 5.0) == 1  # 5 s old: computed again
    site.waiting_call(6.0, PORT_2)
    assert site.peek("Waiting_cached", 9.9) == 1
    assert site.peek("Waiting_cached", 10.0) == 2


def test_a_value_that_cannot_be_computed_is_misc_error_then_the_last_known_value() -> None:
    site = Site()
    switch = site.switches.pop("SW")  # the running switches lack the configured one
    missing = site.engine.peek("Waiting", 0)
    assert isinstance(missing, StatUnavailable) and missing.name == "Waiting"
    assert "200" in missing.reason
    assert result_code(missing) == "MiscError"
    assert site.engine.value("CurrNumberWaitingCalls", "200", "RoutePoint", 0) is None
    site.switches["SW"] = switch
    assert site.engine.peek("Waiting", 1) == StatValue(name="Waiting", value=0, computed_at=1)
    del site.switches["SW"]
    last = site.engine.peek("Waiting", 2)
    assert last == StatValue(name="Waiting", value=0, computed_at=1, last_known=True)
    assert result_code(last) == "Success"


def test_a_dn_of_the_wrong_type_on_the_running_switch_is_misc_error() -> None:
    site = Site()
    site.switches["SW"].request(
        TConfigureAddresses(reference_id=0, dns=tuple([(RP, DnType.ACD_QUEUE)]))
    )
    assert isinstance(site.engine.peek("EWT", 0), StatUnavailable)
    assert isinstance(site.engine.peek("Ready_300", 0), StatUnavailable)  # 300 is gone


def test_value_applies_each_type_to_its_object_types_only() -> None:
    site = Site()
    site.engine.access_numbers = {"Remote": (3, 1)}.get  # a Location's pool: (free, reserved)
    objects = {
        "RoutePoint": "200",
        "Queue": "300",
        "AgentGroup": "team",
        "IVR": "IVR",
        "Location": "Remote",
    }
    assert set(objects) == set(STAT_OBJECT_TYPES)
    for stat_type, allowed in STAT_TYPES.items():
        for object_type, object_id in objects.items():
            found = site.engine.value(stat_type, object_id, object_type, 0)
            assert (found is not None) == (object_type in allowed), (stat_type, object_type)
    assert site.engine.value("Bogus", "200", "RoutePoint", 0) is None
    assert site.engine.value("CurrNumberWaitingCalls", "999", "RoutePoint", 0) is None
    assert site.engine.value("CurrNumberWaitingCalls", "300", "RoutePoint", 0) is None
    assert site.engine.value("CurrNumberWaitingCalls", "200@SW9", "RoutePoint", 0) is None
    assert site.engine.value("CurrentReadyAgents", "nobody", "AgentGroup", 0) is None
    assert site.engine.value("CurrNumberFreeAccessNumbers", "Remote", "Location", 0) == 3
    assert site.engine.value("CurrNumberReservedAccessNumbers", "Remote", "Location", 0) == 1
    assert site.engine.value("CurrNumberFreeAccessNumbers", "Nowhere", "Location", 0) is None


# --------------------------------------------------------------------------------------------
# Views for the API; reconfiguration


def test_snapshot_lists_every_statistic_with_its_value() -> None:
    site = Site()
    site.waiting_call(0.0)
    del site.switches["SW2"]
    items = site.engine.snapshot(2.5)
    assert [item["name"] for item in items] == [
        "Waiting",
        "EWT",
        "Longest",
        "Ready_300",
        "Calls_IVR",
        "Waiting_cached",
    ]
    assert items[2] == {
        "name": "Longest",
        "server_name": "StatServer",
        "stat_type": "CurrMaxCallWaitingTime",
        "object_id": "200",
        "object_type": "RoutePoint",
        "update_frequency": 0.0,
        "result": "Success",
        "value": 2.5,
        "text": "2.5",
        "computed_at": 2.5,
        "last_known": False,
        "reason": None,
    }
    del site.switches["SW"]
    last = site.engine.snapshot(3)[3]
    assert (last["result"], last["value"], last["last_known"]) == ("Success", 0, True)
    fresh = StatsEngine(site.config, site.switches, lambda ivr: 0)
    broken = fresh.snapshot(3)[3]  # never computed: MiscError
    assert (broken["result"], broken["value"], broken["text"]) == ("MiscError", None, None)
    assert broken["reason"] == "DN '300' is on no running switch"


def test_overview() -> None:
    site = agent_site()
    site.ivr_calls["IVR"] = 2
    site.waiting_call(0.0, PORT_3)
    overview = site.engine.overview(4.0)
    assert overview == {
        "routing_points": [
            {"switch": "SW", "dn": "200", "waiting": 1, "ewt": 4.0, "max_wait": 4.0},
            {"switch": "SW", "dn": "201", "waiting": 0, "ewt": 0.0, "max_wait": 0.0},
            {"switch": "SW2", "dn": "201", "waiting": 0, "ewt": 0.0, "max_wait": 0.0},
        ],
        "queues": [
            {"switch": "SW", "dn": "300", "ready": 1, "not_ready": 1, "busy": 1, "logged_in": 3},
            {"switch": "SW", "dn": "301", "ready": 1, "not_ready": 0, "busy": 0, "logged_in": 1},
        ],
        "agent_groups": [
            {"name": "team", "ready": 2, "not_ready": 1, "busy": 0, "logged_in": 3},
        ],
        "ivrs": [{"name": "IVR", "calls": 2}, {"name": "IVR_B", "calls": 0}],
    }


def test_reconfigure_keeps_the_cache_of_unchanged_statistics_only() -> None:
    site = Site()
    assert site.peek("Waiting_cached", 0) == 0
    assert site.peek("EWT", 0) == 0
    site.waiting_call(1.0)
    changed = STATS.replace('object-id = "200@SW"', 'object-id = "201@SW"').replace(
        '[[statistics]]\nname = "Ready_300"', '[[statistics]]\nname = "Ready_301"'
    )
    site.engine.reconfigure(parse_config(BASE + changed))
    assert site.peek("Waiting_cached", 2) == 0  # unchanged: still the cached value
    assert site.engine.peek("Ready_300", 2) is None
    assert site.peek("Ready_301", 2) == 0
    site.engine.reconfigure(parse_config(BASE))
    assert site.engine.peek("Waiting", 2) is None
    assert site.engine.statistics == ()


def test_reconfigure_forgets_the_waits_of_switches_gone() -> None:
    site = Site()
    site.waiting_call(0.0)
    assert site.engine._waits.tracked_waits == 1
    del site.switches["SW"]
    site.engine.reconfigure(site.config)
    assert site.engine._waits.tracked_waits == 0


def test_the_default_configuration_computes_every_statistic() -> None:
    config = default_config()
    assert config.statistics
    engine = StatsEngine(config, build_switches(config), lambda ivr: 0)
    for item in engine.snapshot(0):
        assert item["result"] == "Success", item


def test_the_conformance_example_computes_every_statistic() -> None:
    config = load_config(REPO / "examples/conformance.toml")
    engine = StatsEngine(config, build_switches(config), lambda ivr: 0)
    for item in engine.snapshot(0):
        assert item["result"] == "Success", item


# --------------------------------------------------------------------------------------------
# Value format (PROTOCOL.md §9.4.5)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (0.0, "0"),
        (-0.0, "0"),
        (42, "42"),
        (42.0, "42"),
        (-3.0, "-3"),
        (2.5, "2.5"),
        (0.1, "0.1"),
        (12.345, "12.345"),
        (0.1 + 0.2, "0.30000000000000004"),
        (1e-7, "0.0000001"),
        (1.5e-10, "0.00000000015"),
        (1e16, "10000000000000000"),
        (123456789.25, "123456789.25"),
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_format_value_refuses_non_finite_values(value: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        format_value(value)


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_format_value_is_exact_and_never_an_exponent(value: float) -> None:
    text = format_value(value)
    assert re.fullmatch(r"-?[0-9]+(\.[0-9]*[1-9])?", text), text
    assert float(text) == value
    assert ("." in text) == (value != math.floor(value))


def test_stat_value_text() -> None:
    assert StatValue(name="x", value=7.0, computed_at=0).text == "7"
    assert StatValue(name="x", value=7.25, computed_at=0).text == "7.25"


# --------------------------------------------------------------------------------------------
# Configuration: [[statistics]] checks, each at its location


def stat(
    name: str = "s",
    stat_type: str = "CurrNumberWaitingCalls",
    object_id: str = "200",
    object_type: str = "RoutePoint",
    extra: str = "",
) -> str:
    return (
        f'[[statistics]]\nname = "{name}"\nstat-type = "{stat_type}"\n'
        f'object-id = "{object_id}"\nobject-type = "{object_type}"\n{extra}'
    )


def problems_of(text: str) -> list[ConfigProblem]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text)
    return caught.value.problems


CASES = [
    (
        "unknown statistic type",
        stat(stat_type="AverageHandleTime"),
        "statistics[0].stat-type",
        "unknown statistic type 'AverageHandleTime': use one of CurrNumberWaitingCalls,",
    ),
    (
        "unknown object type",
        stat(object_type="SObjectRoutePoint"),
        "statistics[0].object-type",
        "'RoutePoint', 'Queue', 'AgentGroup', 'IVR' or 'Location'",
    ),
    (
        "type does not apply to the object type",
        stat(stat_type="CurrMaxCallWaitingTime", object_id="300", object_type="Queue"),
        "statistics[0].object-type",
        "CurrMaxCallWaitingTime applies to object type RoutePoint, not Queue",
    ),
    (
        "agents of an IVR",
        stat(stat_type="CurrentReadyAgents", object_id="IVR", object_type="IVR"),
        "statistics[0].object-type",
        "CurrentReadyAgents applies to object type Queue or AgentGroup, not IVR",
    ),
    (
        "duplicate name",
        stat() + stat(stat_type="ExpectedWaitTime"),
        "statistics[1].name",
        "duplicate statistic name 's' (first at statistics[0])",
    ),
    (
        "routing point that is not a DN",
        stat(object_id="999"),
        "statistics[0].object-id",
        "DN '999' is not a DN of any switch (switches: 'SW', 'SW2')",
    ),
    (
        "routing point that is a queue",
        stat(object_id="300"),
        "statistics[0].object-id",
        "DN '300' on switch 'SW' is an acd-queue; a RoutePoint statistic needs a routing-point",
    ),
    (
        "queue that is a routing point",
        stat(stat_type="CurrentReadyAgents", object_id="200", object_type="Queue"),
        "statistics[0].object-id",
        "DN '200' on switch 'SW' is a routing-point; a Queue statistic needs an acd-queue",
    ),
    (
        "DN on several switches",
        stat(object_id="201"),
        "statistics[0].object-id",
        "DN '201' exists on several switches ('SW', 'SW2'), so name its switch: '201@<switch>'",
    ),
    (
        "unknown switch",
        stat(object_id="200@SW9"),
        "statistics[0].object-id",
        "unknown switch 'SW9' in '200@SW9' (switches: 'SW', 'SW2')",
    ),
    (
        "DN not on the named switch",
        stat(object_id="200@SW2"),
        "statistics[0].object-id",
        "DN '200' is not a DN of switch 'SW2'",
    ),
    (
        "unknown agent group",
        stat(stat_type="CurrentBusyAgents", object_id="teams", object_type="AgentGroup"),
        "statistics[0].object-id",
        "unknown agent group 'teams' (agent groups: 'team')",
    ),
    (
        "unknown IVR",
        stat(stat_type="CurrNumberCallsInProgress", object_id="ivr", object_type="IVR"),
        "statistics[0].object-id",
        "unknown IVR 'ivr' (IVRs: 'IVR', 'IVR_B')",
    ),
    (
        "negative update frequency",
        stat(extra="update-frequency = -1\n"),
        "statistics[0].update-frequency",
        "must be 0 (computed on every request) or a positive duration, got -1",
    ),
    (
        "bad duration",
        stat(extra='update-frequency = "5 secs"\n'),
        "statistics[0].update-frequency",
        "unknown unit 'secs'",
    ),
    (
        "missing stat-type",
        '[[statistics]]\nname = "s"\nobject-id = "200"\nobject-type = "RoutePoint"\n',
        "statistics[0].stat-type",
        "required key is missing",
    ),
    (
        "unknown key",
        stat(extra='obj-id = "200"\n'),
        "statistics[0].obj-id",
        "unknown key 'obj-id'",
    ),
]


@pytest.mark.parametrize(
    ("extra", "location", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_each_check(extra: str, location: str, words: str) -> None:
    problems = problems_of(BASE + extra)
    assert [p.location for p in problems] == [location], problems
    assert words in problems[0].message, problems[0].message


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("0", 0.0), ("5", 5.0), ("2.5", 2.5), ('"500ms"', 0.5), ('"1min"', 60.0), ('"0s"', 0.0)],
)
def test_update_frequency_is_seconds_and_may_be_zero(written: str, seconds: float) -> None:
    config = parse_config(BASE + stat(extra=f"update-frequency = {written}\n"))
    assert config.statistics[0].update_frequency == seconds


def test_valid_statistics_of_every_kind() -> None:
    config = parse_config(
        BASE
        + stat("a", object_id="201@SW2")
        + stat("b", "ExpectedWaitTime", "200@SW")
        + stat("c", "CurrentLoggedInAgents", "300", "Queue")
        + stat("d", "CurrentNotReadyAgents", "team", "AgentGroup")
        + stat("e", "CurrNumberCallsInProgress", "IVR_B", "IVR")
    )
    assert [s.name for s in config.statistics] == ["a", "b", "c", "d", "e"]
    assert config.statistics[0].server_name == "StatServer"
    assert config.statistics[0].update_frequency == 0


def test_value_and_reference_problems_are_reported_together() -> None:
    text = BASE + (
        '[[agent-groups]]\nname = "broken"\nagents = []\n'
        + stat("a", "CurrentReadyAgents", "broken", "AgentGroup")  # the group failed: not unknown
        + stat("b", object_id="999")
        + stat("c", extra="update-frequency = -2\n")
        + stat("b", object_id="200")
    )
    assert [p.location for p in problems_of(text)] == [
        "agent-groups[1].agents",
        "statistics[2].update-frequency",
        "statistics[1].object-id",
        "statistics[3].name",
    ]


def test_statistics_problems_raise_from_the_python_api_too() -> None:
    config = parse_config(BASE)
    bad = StatisticConfig(
        name="x", stat_type="ExpectedWaitTime", object_id="300", object_type="RoutePoint"
    )
    with pytest.raises(ConfigError) as caught:
        config.model_copy(update={"statistics": (bad,)})
    assert [p.location for p in caught.value.problems] == ["statistics[0].object-id"]
    with pytest.raises(ValidationError):
        StatisticConfig(
            name="x", stat_type="CurrMaxCallWaitingTime", object_id="q", object_type="Queue"
        )


def test_every_statistic_field_has_a_docstring() -> None:
    fields = StatisticConfig.model_fields.items()
    assert [name for name, field in fields if not field.description] == []


def test_docs_name_every_key_and_statistic() -> None:
    configuration = (REPO / "docs/configuration.md").read_text(encoding="utf-8")
    keys = {field.alias or name for name, field in StatisticConfig.model_fields.items()}
    missing = sorted(key for key in keys if f"`{key}`" not in configuration)
    assert missing == []
    statistics = (REPO / "docs/statistics.md").read_text(encoding="utf-8")
    for stat_type, object_types in STAT_TYPES.items():
        row = next((line for line in statistics.splitlines() if f"| `{stat_type}`" in line), "")
        assert row, stat_type
        for object_type in STAT_OBJECT_TYPES:
            assert (f"`{object_type}`" in row) == (object_type in object_types), row
