"""The fail-over drill under load (issue 25, "How it will be checked"): calls run without pause
on 20 ports of a hot pair while the leader is killed (``kill -9``) or paused (``SIGSTOP``, then
``SIGCONT``); afterwards every call's every step is counted: lost calls, lost user data,
duplicate and missing replies must all be zero with ``durability = primary``.

Each call: NewCall → Ringing, Established; UDataSet (its own value) → UDataResp; UDataGet →
UDataResp with that value; RouteRequest 5000 → RouteResponse Normal 7002; EndCall.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from ivr_server.client import ClientError, HotStandbyDriver, WarmStandbyClient
from ivr_server.wire import Node
from ivr_server.wire import messages as m
from tests.ha.conftest import IVR, LEASE, Cluster, default_body
from tests.ha.conftest import Node as Proc
from tests.ha.test_failover import addresses, hot_pair, role, store_marks

pytestmark = [pytest.mark.xdist_group(__name__), pytest.mark.slow]

PORTS = 20
STEP_S = LEASE + 6.0
"""Longest wait for one step (a takeover in the middle: lease, load, replay)."""


class FlowGate:
    """The driver's view of the flow control: open while every node last said ``Off``."""

    def __init__(self, driver: HotStandbyDriver) -> None:
        self.driver = driver
        self.open = asyncio.Event()
        self.open.set()
        self.status: dict[str, str] = {}
        self.seen: list[tuple[str, str]] = []

    async def watch(self) -> None:
        while True:
            try:
                got = await self.driver.expect(types=m.FlowControl, timeout=60)
            except ClientError:
                continue
            assert isinstance(got.message, m.FlowControl)
            self.status[got.node] = got.message.Status
            self.seen.append((got.node, got.message.Status))
            if all(v == "Off" for v in self.status.values()):
                self.open.set()
            else:
                self.open.clear()


@dataclass
class Tally:
    """What the drill saw."""

    calls: int = 0
    completed: int = 0
    refused: int = 0
    """NewCalls answered ``EndCall ServerPaused`` (sent before the driver saw FlowControl On)."""
    failures: list[str] = field(default_factory=list)
    wrong_data: list[str] = field(default_factory=list)


async def call_loop(
    driver: HotStandbyDriver,
    port: int,
    tally: Tally,
    running: asyncio.Event,
    flow: FlowGate | None = None,
) -> None:
    n = 0
    while running.is_set():
        if flow is not None:
            await flow.open.wait()  # FlowControl On: start no new call (the calls go on)
        n += 1
        call = f"D{port}_{n}"
        value = f"v{port}_{n}"
        tally.calls += 1
        step = "NewCall"
        try:
            driver.send(
                call,
                m.NewCall(CallControlMode="Network", Version="4.0", CalledNum=str(port), ANI="555"),
            )
            got = await driver.expect(call, types=(m.CallStatus, m.EndCall), timeout=STEP_S)
            if isinstance(got.message, m.EndCall) and got.message.EndCause == "ServerPaused":
                tally.refused += 1  # sent as the flow control went on: refused, as it should
                continue
            assert got.message == m.CallStatus(Event="Ringing"), got
            got = await driver.expect(call, types=m.CallStatus, timeout=STEP_S)
            assert got.message == m.CallStatus(Event="Established"), got
            step = "UDataSet"
            data = (Node(Name="Step", Type="Str", Val=value),)
            got_set = await driver.request(
                call,
                m.UDataSet(Action="Replace", RequestId="1", UDataEx=data),
                expect=m.UDataResp,
                timeout=STEP_S,
            )
            assert got_set.message == m.UDataResp(Result="Success", RequestId="1"), got_set
            step = "UDataGet"
            got_get = await driver.request(
                call, m.UDataGet(Keys="Step", RequestId="2"), expect=m.UDataResp, timeout=STEP_S
            )
            if got_get.message != m.UDataResp(Result="Success", RequestId="2", UDataEx=data):
                tally.wrong_data.append(f"{call}: {got_get.message}")
            step = "RouteRequest"
            driver.send(call, m.RouteRequest(RouteDN="5000"))
            routed = await driver.expect(call, types=m.RouteResponse, timeout=STEP_S)
            assert isinstance(routed.message, m.RouteResponse), routed
            assert routed.message.Dest == "7002", routed
            driver.send(call, m.EndCall(EndCause="Normal"))
            tally.completed += 1
        except (ClientError, AssertionError) as exc:
            tally.failures.append(f"{call} at {step}: {exc!r}"[:300])
            with contextlib.suppress(ClientError):
                driver.send(call, m.EndCall(EndCause="Normal"))
            await asyncio.sleep(0.1)


def duplicates(driver: HotStandbyDriver) -> list[str]:
    """Requests answered by both nodes, and unsolicited documents of one call sent twice."""
    twice = [
        f"{e.request.tag} {e.call_id}: {sorted(e.answers)}"
        for e in driver.exchanges
        if len(e.answers) > 1
    ]
    seen = Counter(
        (t.received.call_id, t.message.tag, getattr(t.message, "Event", None))
        for t in driver.received
        if not t.login and isinstance(t.message, (m.CallStatus, m.RouteResponse))
    )
    twice += [f"{key} x{count}" for key, count in seen.items() if count > 1]
    return twice


def stream_places(driver: HotStandbyDriver, calls: set[str]) -> list[tuple[str, str, int | None]]:
    """The documents of these calls, with their index on b's stream, in the order sent."""
    places = [(c, tag, i.get("b")) for c, tag, i in driver.sent if c in calls]
    places += [
        (e.call_id, e.request.tag, e.indices.get("b"))
        for e in driver.exchanges
        if e.call_id in calls
    ]
    return sorted(((c or "", t, i) for c, t, i in places), key=lambda p: p[2] or 0)


def received_by(driver: HotStandbyDriver, calls: set[str]) -> list[tuple[str, str, str, float]]:
    """What the driver received for these calls: (CallId, node, element, time)."""
    return [
        (t.received.call_id or "", t.node, t.message.tag, round(t.at, 3))
        for t in driver.received
        if t.received.call_id in calls
    ]


Scenario = Callable[[Cluster, Proc, Proc], Awaitable[dict[str, dict[bytes, bytes]]]]
"""A fault and the recovery after it; returns the store's marks read right after the fault."""


RESUMED: dict[int, float] = {}
"""id(node) -> loop time ``after`` was done on it (a paused old leader resumed)."""

DRAIN_S = 1.0
"""How long a resumed old leader may still send: the replies of the batches the store had
acknowledged before it was paused (committed before the takeover, so the new leader does not
answer them: these are their only answers). Anything it read after its lease was in doubt waits
for an epoch check in the store, and is dropped once it is fenced (runtime/ha.py)."""


def node_fault(fault: Callable[[Proc], None], after: Callable[[Proc], None]) -> Scenario:
    """``fault`` on the leader ``a``; once ``b`` leads, ``after`` on ``a``."""

    async def scenario(cluster: Cluster, a: Proc, b: Proc) -> dict[str, dict[bytes, bytes]]:
        fault(a)
        marks = store_marks(cluster)  # the old leader's last (b has not taken over yet)
        await role(b, "leader", LEASE * 3 + 10)
        after(a)
        RESUMED[id(a)] = asyncio.get_running_loop().time()
        return marks

    return scenario


async def drill(cluster: Cluster, scenario: Scenario) -> Tally:
    a, b = hot_pair(cluster)
    tally = Tally()
    running = asyncio.Event()
    running.set()
    async with await HotStandbyDriver.open(addresses(a, b), IVR, late_window=STEP_S) as driver:
        flow = FlowGate(driver)
        watcher = asyncio.ensure_future(flow.watch())
        loops = [
            asyncio.ensure_future(call_loop(driver, p, tally, running, flow))
            for p in range(1, PORTS + 1)
        ]
        await asyncio.sleep(2.0)
        before = tally.completed
        marks = await scenario(cluster, a, b)
        await asyncio.sleep(3.0)
        running.clear()
        await asyncio.wait_for(asyncio.gather(*loops), STEP_S * 5 + 10)
        await asyncio.sleep(1.0)  # late duplicates
        watcher.cancel()
        print(f"drill: flow control seen {flow.seen}")
        print(
            f"drill: {tally.calls} calls, {tally.completed} completed ({before} before the fault), "
            f"refused {tally.refused}, failures {len(tally.failures)}, "
            f"wrong data {len(tally.wrong_data)}"
        )
        firsts = [t for t in driver.sent_by("b") if not isinstance(t.message, m.FlowControl)]
        resumed = RESUMED.pop(id(a), None)
        late = [t for t in driver.sent_by("a") if firsts and t.at >= firsts[0].at]
        # a resumed old leader drains what it had committed, then is fenced: nothing later
        stray = [t for t in late if resumed is None or t.at > resumed + DRAIN_S]
        print(f"drill: {len(late)} documents from a after b's first, {len(stray)} stray")
        assert not stray, f"{len(stray)} documents from a after b's first: {stray[:5]}"
        twice = duplicates(driver)
        assert not twice, twice[:10]
        assert not tally.wrong_data, tally.wrong_data[:10]
        assert not tally.failures, (
            f"{len(tally.failures)} calls failed; the old leader's last marks {marks}; the "
            f"failed calls' documents (CallId, element, index on b's stream): "
            f"{stream_places(driver, {f.split()[0] for f in tally.failures})}; what they got: "
            f"{received_by(driver, {f.split()[0] for f in tally.failures})}; "
            f"{tally.failures[:3]}"
        )
        assert tally.completed > before
    return tally


async def test_drill_kill_9_of_the_leader_under_load(cluster: Cluster) -> None:
    await drill(cluster, node_fault(Proc.kill9, lambda _: None))


async def test_drill_sigstop_then_sigcont_of_the_leader_under_load(cluster: Cluster) -> None:
    await drill(cluster, node_fault(Proc.sigstop, Proc.sigcont))


async def test_drill_the_store_killed_and_restarted_under_load(cluster: Cluster) -> None:
    """``redis-server`` killed (both nodes: FlowControl On, no new call; the calls in progress
    go on) and started again empty 1.5 s later (the leader writes everything back, FlowControl
    Off, new calls again)."""

    async def scenario(cluster: Cluster, a: Proc, b: Proc) -> dict[str, dict[bytes, bytes]]:
        cluster.redis.kill()
        await asyncio.sleep(1.5)
        await asyncio.to_thread(cluster.redis.start)
        return {}

    await drill(cluster, scenario)


async def test_drill_warm_standby_kill_9_under_load(cluster: Cluster) -> None:
    """Warm standby under load: 20 ports of calls on the leader; kill -9 of it; the driver
    reconnects to the standby once it listens and logs in. Every call whose UDataSet was answered
    before the kill must be answered on the new leader with its data (not NoSuchCall); requests
    in flight at the kill raise ConnectionLost (the I-Library's ilRET_CONN_CLOSED)."""
    body = default_body()
    a = cluster.add("a", body, mode="warm")
    a.wait_role("leader", 10)
    b = cluster.add("b", body, mode="warm", wait_ivr=False)
    b.wait_role("standby", 10)
    warm = WarmStandbyClient(addresses(a, b), IVR, connect_timeout=0.5)
    assert await warm.connect(timeout=5) == "a"
    committed: dict[str, str] = {}  # call -> the value its answered UDataSet wrote
    lost_link: list[str] = []
    running = asyncio.Event()
    running.set()

    async def loop(port: int) -> None:
        n = 0
        while running.is_set():
            n += 1
            call, value = f"W{port}_{n}", f"w{port}_{n}"
            data = (Node(Name="Step", Type="Str", Val=value),)
            try:
                warm.send(
                    call,
                    m.NewCall(CallControlMode="Network", Version="4.0", CalledNum=str(port)),
                )
                for event in ("Ringing", "Established"):
                    got = await warm.expect(call, types=m.CallStatus, timeout=STEP_S)
                    assert got.message == m.CallStatus(Event=event), got
                got = await warm.request(
                    call,
                    m.UDataSet(Action="Replace", RequestId="1", UDataEx=data),
                    expect=m.UDataResp,
                    timeout=STEP_S,
                )
                assert got.message == m.UDataResp(Result="Success", RequestId="1"), got
                committed[call] = value
                await asyncio.sleep(0.1)  # the IVR plays a prompt
                warm.send(call, m.EndCall(EndCause="Normal"))
                committed.pop(call)
            except ClientError:
                lost_link.append(call)
                return  # this port's call is checked after the re-login

    loops = [asyncio.ensure_future(loop(p)) for p in range(1, PORTS + 1)]
    try:
        await asyncio.sleep(2.0)
        for _ in range(200):  # a loaded machine: kill while some call's data is answered
            if committed:
                break
            await asyncio.sleep(0.05)
        a.kill9()
        await asyncio.wait_for(asyncio.gather(*loops), STEP_S + 5)
        assert await warm.reconnect(timeout=LEASE + 10) == "b"
        answered: dict[str, str] = {}
        for call, value in committed.items():
            got = await warm.request(
                call, m.UDataGet(Keys="Step", RequestId="2"), expect=m.UDataResp, timeout=5
            )
            data = (Node(Name="Step", Type="Str", Val=value),)
            if got.message != m.UDataResp(Result="Success", RequestId="2", UDataEx=data):
                answered[call] = repr(got.message)
            warm.send(call, m.EndCall(EndCause="Normal"))
        print(
            f"warm drill: {len(committed)} calls with answered data at the kill, "
            f"{len(lost_link)} requests cut by it"
        )
        assert committed, "no call was in progress at the kill"
        assert not answered, answered
    finally:
        running.clear()
        for task in loops:
            task.cancel()
        await warm.close()
