"""Fail-over with real processes (MODES-AND-HA §3.7, H1-H6; H7 is ``test_held.py``): a real
``redis-server``, two ``ivr-server serve`` nodes of a pair on free loopback ports (node ``a``
leads, ``b`` stands by; lease 1 s, polled every 0.1 s), and the hot-standby driver that logs in to
both and sends every request to both, as the I-Library does. Each scenario kills, pauses or
restarts a process and checks what the driver saw: which node answered what, and when.

The configuration is the built-in default (IVR_1's ports 1..32, routing point 5000 with the
built-in rules, 5001 without a router).
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest
from redis.exceptions import RedisError

from ivr_server.client import (
    HotStandbyDriver,
    NodeAddress,
    RequestTimeout,
    Tagged,
    WarmStandbyClient,
)
from ivr_server.wire import Node
from ivr_server.wire import messages as m
from tests.ha.conftest import IVR, LEASE, Cluster, default_body
from tests.ha.conftest import Node as Proc

pytestmark = pytest.mark.xdist_group(__name__)

ROLE_S = 10.0
"""Longest wait for a node's first role (start-up, the first lease)."""
SWITCH = "SW_InFront"
DATA = (Node(Name="Segment", Type="Str", Val="Gold"), Node(Name="Account", Type="Str", Val="42"))


def hot_pair(cluster: Cluster, body: str | None = None, **ha: Any) -> tuple[Proc, Proc]:
    """Start ``a``, wait until it leads, then ``b``, and wait until it stands by."""
    body = default_body() if body is None else body
    a = cluster.add("a", body, **ha)
    a.wait_role("leader", ROLE_S)
    b = cluster.add("b", body, **ha)
    b.wait_role("standby", ROLE_S)
    return a, b


def addresses(*nodes: Proc) -> list[NodeAddress]:
    return [NodeAddress(n.name, "127.0.0.1", n.port) for n in nodes]


async def new_call(driver: HotStandbyDriver, port: str = "1") -> str:
    """A NewCall on ``port`` (sent to both), once it is Established."""
    call = driver.new_call_id("H")
    driver.send(
        call, m.NewCall(CallControlMode="Network", Version="4.0", CalledNum=port, ANI="5551000")
    )
    ringing = await driver.expect(call, types=m.CallStatus)
    assert ringing.message == m.CallStatus(Event="Ringing"), ringing
    established = await driver.expect(call, types=m.CallStatus)
    assert established.message == m.CallStatus(Event="Established"), established
    return call


async def set_data(driver: HotStandbyDriver, call: str, request_id: str = "1") -> Tagged:
    await driver.request(
        call,
        m.UDataSet(Action="Replace", RequestId=request_id, UDataEx=DATA),
        expect=m.UDataResp,
    )
    exchange = driver.exchanges[-1]
    first = exchange.first
    assert first is not None and first.message == m.UDataResp(
        Result="Success", RequestId=request_id
    ), exchange
    return first


async def role(node: Proc, wanted: str, timeout: float) -> float:
    return await asyncio.to_thread(node.wait_role, wanted, timeout)


def store_marks(cluster: Cluster) -> dict[str, dict[bytes, bytes]]:
    """Every replay mark in the store (for failure messages)."""
    with cluster.redis.client() as store:
        return {k.decode(): store.hgetall(k) for k in store.keys("*mark*")}


def stored_calls(cluster: Cluster) -> set[str]:
    """The CallIds of the call records in the store (of every slot)."""
    with cluster.redis.client() as store:
        return {k.decode().rpartition("\x1f")[2] for k in store.keys("*o:call:*")}


def stored_calls_become(cluster: Cluster, wanted: set[str], timeout: float) -> set[str]:
    """Wait until the store's call records are those of ``wanted``; what they are then."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = stored_calls(cluster)
        except RedisError:  # the store restarting
            found = set()
        if found == wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def only_after(driver: HotStandbyDriver, node: str, moment: float) -> None:
    """``node`` sent nothing but its login replies before ``moment``."""
    early = [t for t in driver.sent_by(node) if t.at < moment]
    assert not early, f"{node} answered before it took over: {early}"


def nothing_after_first_of(driver: HotStandbyDriver, old: str, new: str) -> None:
    """No document (login replies aside) from ``old`` after ``new``'s first."""
    firsts = driver.sent_by(new)
    assert firsts, f"{new} never answered"
    late = [t for t in driver.sent_by(old) if t.at >= firsts[0].at]
    assert not late, f"{old} answered after {new}'s first reply: {late}"


async def settle(seconds: float = 0.5) -> None:
    """Let late answers arrive (a duplicate would show in the exchanges)."""
    await asyncio.sleep(seconds)


def answered_once(driver: HotStandbyDriver) -> None:
    """Every request got exactly one answer (from one node), except those explicitly left."""
    twice = [
        (e.index, e.request.tag, sorted(e.answers)) for e in driver.exchanges if len(e.answers) > 1
    ]
    assert not twice, f"answered by both nodes: {twice}"


# --------------------------------------------------------------------------- H1


async def test_h1_kill_9_of_the_primary_mid_call_the_standby_answers_with_the_data(
    cluster: Cluster,
) -> None:
    body = default_body(timers={"router-timeout": "30s"})
    a, b = hot_pair(cluster, body)
    loop = asyncio.get_running_loop()
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        await set_data(driver, call)
        driver.send(call, m.RouteRequest(RouteDN="5001"))  # no router: waits at 5001
        await asyncio.sleep(0.3)  # A handled it and committed its batch (one loop turn)
        killed = loop.time()
        a.kill9()
        got = await driver.request(
            call,
            m.UDataGet(Keys="Segment:Account", RequestId="2"),
            expect=m.UDataResp,
            timeout=LEASE + 5,
        )
        took = loop.time() - killed
        assert got.message == m.UDataResp(Result="Success", RequestId="2", UDataEx=DATA), (
            f"{got.message}; marks: {store_marks(cluster)}"
        )
        assert driver.exchanges[-1].first is not None
        assert driver.exchanges[-1].first.node == "b"
        assert took < LEASE + 1.0, f"B answered {took:.2f} s after the kill"
        only_after(driver, "b", killed)
        # The routing dialog came over: the call waits at 5001 on B; an operator routes it.
        conn_id = await asyncio.to_thread(waiting_conn_id, b, "5001")
        status, answer = await asyncio.to_thread(
            b.request,
            "POST",
            f"routing-points/{SWITCH}/5001/calls/{conn_id}/route",
            {"route_type": "Normal", "dest": "7002"},
        )
        assert status == 200, answer
        routed = await driver.expect(call, types=m.RouteResponse, timeout=5)
        assert routed.node == "b", routed
        assert isinstance(routed.message, m.RouteResponse), routed
        assert (routed.message.RouteType, routed.message.Dest) == ("Normal", "7002"), routed
        driver.send(call, m.EndCall(EndCause="Normal"))
        await asyncio.to_thread(no_calls_left, b)
        await settle()
        answered_once(driver)


def waiting_conn_id(node: Proc, dn: str, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    points: object = None
    while time.monotonic() < deadline:
        status, points = node.request("GET", "routing-points")
        if status == 200 and isinstance(points, list):
            for point in points:
                if point.get("dn") == dn and point.get("waiting"):
                    waiting = point["waiting"][0]
                    return str(waiting["conn_id"] if isinstance(waiting, dict) else waiting)
        time.sleep(0.05)
    raise AssertionError(f"no call waits at {dn} on {node.name}: {points}\n{node.log_tail()}")


def no_calls_left(node: Proc, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    calls: object = None
    while time.monotonic() < deadline:
        status, calls = node.request("GET", "calls")
        if status == 200 and calls == []:
            return
        time.sleep(0.05)
    raise AssertionError(f"calls left on {node.name}: {calls}")


# --------------------------------------------------------------------------- H2


async def test_h2_a_request_the_primary_never_committed_is_replayed_once(
    cluster: Cluster,
) -> None:
    """``A`` is paused before the UDataSet reaches it, then killed: it never read it. ``B``
    kept it (it came on the same stream) and replays it at takeover: one UDataResp, from B."""
    a, b = hot_pair(cluster)
    loop = asyncio.get_running_loop()
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        await asyncio.sleep(0.2)  # (a fault right after a reply: test_h2_kill_9_right_after...)
        a.sigstop()
        paused = loop.time()
        more = (Node(Name="Step", Type="Str", Val="menu-2"),)
        task = asyncio.ensure_future(
            driver.request(
                call,
                m.UDataSet(Action="Add", RequestId="7", UDataEx=more),
                expect=m.UDataResp,
                timeout=LEASE + 6,
            )
        )
        await asyncio.sleep(0.2)
        before = store_marks(cluster)  # the paused leader's
        _, sessions = await asyncio.to_thread(b.request, "GET", "sessions")
        a.kill9()
        try:
            got = await task
        except RequestTimeout:
            raise AssertionError(
                f"never replayed; marks before the kill: {before}, after the takeover: "
                f"{store_marks(cluster)}; b's sessions before the kill: {sessions}; "
                f"b's view: {b.ha()}"
            ) from None
        assert got.message == m.UDataResp(Result="Success", RequestId="7"), got
        exchange = driver.exchanges[-1]
        await settle(1.0)
        assert list(exchange.answers) == ["b"], exchange
        only_after(driver, "b", paused)
        check = await driver.request(
            call, m.UDataGet(Keys="Step", RequestId="8"), expect=m.UDataResp
        )
        assert check.message == m.UDataResp(Result="Success", RequestId="8", UDataEx=more)
        driver.send(call, m.EndCall(EndCause="Normal"))
        await settle()
        answered_once(driver)


async def test_h2_kill_9_right_after_sending_one_reply_whoever_committed(
    cluster: Cluster,
) -> None:
    """``kill -9`` of ``A`` right after the UDataSet went out: A may have committed and
    answered it, or not. Either way the driver gets its UDataResp, and only once, but for the
    reply outbox's one window (docs/ha.md §5): A wrote it and was killed before it wrote its
    deletion to the store, and the driver asked nothing more on the call before B took over;
    then B writes it again, byte for byte, after A's."""
    a, b = hot_pair(cluster)
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        task = asyncio.ensure_future(
            driver.request(
                call,
                m.UDataSet(Action="Replace", RequestId="3", UDataEx=DATA),
                expect=m.UDataResp,
                timeout=LEASE + 6,
            )
        )
        await asyncio.sleep(0)  # the request is on its way to both
        await asyncio.sleep(0.001)
        a.kill9()
        got = await task
        assert got.message == m.UDataResp(Result="Success", RequestId="3"), got
        await settle(LEASE + 1.0)  # B took over (and replayed if it had to)
        exchange = driver.exchanges[-1]
        answers = exchange.answers
        if len(answers) == 2:  # the outbox's window: A's reply, then the same again from B
            assert answers["a"].message == answers["b"].message, exchange
            assert answers["a"].at <= answers["b"].at, exchange
        else:
            assert len(answers) == 1, exchange
        check = await driver.request(
            call, m.UDataGet(Keys="Segment", RequestId="4"), expect=m.UDataResp, timeout=5
        )
        assert check.message == m.UDataResp(Result="Success", RequestId="4", UDataEx=DATA[:1])
        driver.exchanges.remove(exchange)
        answered_once(driver)


# --------------------------------------------------------------------------- H3


async def test_h3_a_router_timeout_due_in_the_gap_is_answered_right_after_takeover(
    cluster: Cluster,
) -> None:
    router_timeout = 1.2
    a, b = hot_pair(cluster, default_body(timers={"router-timeout": f"{router_timeout}s"}))
    loop = asyncio.get_running_loop()
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        driver.send(call, m.RouteRequest(RouteDN="5001"))  # no router: only the timeout answers
        asked = loop.time()
        await asyncio.sleep(0.3)
        a.kill9()
        routed = await driver.expect(call, types=m.RouteResponse, timeout=LEASE + 5)
        came = loop.time() - asked
        assert routed.node == "b", routed
        assert isinstance(routed.message, m.RouteResponse), routed
        assert routed.message.RouteType == "Default", routed
        # Due at 1.2 s, in the gap (kill at 0.3 s + lease 1 s): answered at takeover, not a
        # router timeout later (which a re-handled RouteRequest would take: 0.3 + 1 + 1.2 s).
        assert came < 0.3 + LEASE + 0.9, f"RouteResponse Default {came:.2f} s after the request"
        only_after(driver, "b", asked + 0.3)
        driver.send(call, m.EndCall(EndCause="Normal"))
        await settle()
        answered_once(driver)


# --------------------------------------------------------------------------- H4


async def test_h4_a_paused_primary_is_fenced_and_never_answers_after_the_new_one(
    cluster: Cluster,
) -> None:
    a, b = hot_pair(cluster)
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        await set_data(driver, call)
        await asyncio.sleep(0.2)  # (a fault right after a reply: test_h2_kill_9_right_after...)
        a.sigstop()
        await role(b, "leader", LEASE * 3 + 5)
        # Sent to both: A reads it only when it runs again, B answers it.
        got = await driver.request(
            call, m.UDataGet(Keys="Segment", RequestId="2"), expect=m.UDataResp, timeout=5
        )
        assert driver.exchanges[-1].first is not None
        assert driver.exchanges[-1].first.node == "b"
        assert got.message == m.UDataResp(Result="Success", RequestId="2", UDataEx=DATA[:1])
        a.sigcont()
        await role(a, "standby", 10)
        # A demoted: it dropped its held replies and closed its IVR sessions; the driver logs
        # in again, and A, now a standby, answers only the login.
        await driver.wait_connected("a", 10)
        got = await driver.request(
            call, m.UDataGet(Keys="Account", RequestId="3"), expect=m.UDataResp, timeout=5
        )
        assert got.message == m.UDataResp(Result="Success", RequestId="3", UDataEx=DATA[1:])
        await settle(1.0)
        nothing_after_first_of(driver, "a", "b")
        answered_once(driver)
        assert "fenced" in a.log.read_text(errors="replace").lower()


# --------------------------------------------------------------------------- H5


async def test_h5_warm_standby_keeps_the_call_ids_after_the_driver_logs_in_again(
    cluster: Cluster,
) -> None:
    body = default_body()
    a = cluster.add("a", body, mode="warm")
    a.wait_role("leader", ROLE_S)
    b = cluster.add("b", body, mode="warm", wait_ivr=False)
    b.wait_role("standby", ROLE_S)
    with pytest.raises(OSError):  # a warm standby does not listen for IVRs
        socket.create_connection(("127.0.0.1", b.port), timeout=1).close()
    warm = WarmStandbyClient(addresses(a, b), IVR, connect_timeout=0.5)
    try:
        assert await warm.connect(timeout=5) == "a"
        call = warm.client.new_call_id("W") if warm.client else "W1"
        warm.send(
            call, m.NewCall(CallControlMode="Network", Version="4.0", CalledNum="3", ANI="555")
        )
        for event in ("Ringing", "Established"):
            got = await warm.expect(call, types=m.CallStatus)
            assert got.message == m.CallStatus(Event=event)
        await warm.request(
            call, m.UDataSet(Action="Replace", RequestId="1", UDataEx=DATA), expect=m.UDataResp
        )
        info = await warm.request(call, m.CallInfoReq(), expect=m.CallInfoResp)
        assert isinstance(info.message, m.CallInfoResp) and info.message.ConnId, info
        a.kill9()
        started = time.monotonic()
        assert await warm.reconnect(timeout=LEASE + 10) == "b"
        took = time.monotonic() - started
        again = await warm.request(call, m.CallInfoReq(), expect=m.CallInfoResp)
        assert isinstance(again.message, m.CallInfoResp), again
        assert again.message.ConnId == info.message.ConnId
        data = await warm.request(
            call, m.UDataGet(Keys="Segment:Account", RequestId="2"), expect=m.UDataResp
        )
        assert data.message == m.UDataResp(Result="Success", RequestId="2", UDataEx=DATA)
        assert took < LEASE + 3, f"re-login took {took:.2f} s"
        warm.send(call, m.EndCall(EndCause="Normal"))
        await asyncio.to_thread(no_calls_left, b)
    finally:
        await warm.close()


# --------------------------------------------------------------------------- H6


async def test_h6_store_lost_flow_control_on_calls_go_on_back_flow_control_off(
    cluster: Cluster,
) -> None:
    a, b = hot_pair(cluster)
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        await set_data(driver, call)
        cluster.redis.kill()
        for node in ("a", "b"):
            on = await driver.expect(types=m.FlowControl, node=node, timeout=5)
            assert on.message == m.FlowControl(Status="On"), on
        # The call in progress goes on (on the leader, from its memory).
        more = (Node(Name="During", Type="Str", Val="loss"),)
        got = await driver.request(
            call, m.UDataSet(Action="Add", RequestId="2", UDataEx=more), expect=m.UDataResp
        )
        assert got.message == m.UDataResp(Result="Success", RequestId="2")
        assert driver.exchanges[-1].first is not None
        assert driver.exchanges[-1].first.node == "a"
        await asyncio.to_thread(cluster.redis.start)  # back, empty, on the same port
        for node in ("a", "b"):
            off = await driver.expect(types=m.FlowControl, node=node, timeout=10)
            assert off.message == m.FlowControl(Status="Off"), off
        got = await driver.request(
            call, m.UDataGet(Keys="Segment:During", RequestId="3"), expect=m.UDataResp
        )
        assert got.message == m.UDataResp(
            Result="Success", RequestId="3", UDataEx=(DATA[0], more[0])
        )
        # Resynced: the store holds the call again (a takeover now would find it).
        with cluster.redis.client() as store:
            keys = [k.decode() for k in store.keys("*")]
        assert any(call in k for k in keys), keys
        driver.send(call, m.EndCall(EndCause="Normal"))
        await settle()
        answered_once(driver)


# --------------------------------------------------------------------------- the API


async def test_both_apis_show_the_roles_and_the_shared_state(cluster: Cluster) -> None:
    a, b = hot_pair(cluster)
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        views = {n.name: await asyncio.to_thread(n.ha) for n in (a, b)}
        assert views["a"]["role"] == "leader" and views["b"]["role"] == "standby", views
        assert views["a"]["epoch"] > 0 and views["b"]["epoch"] == 0, views  # b holds none
        metrics = await asyncio.to_thread(a.metrics)
        for name in ("ha_role", "ha_epoch", "ha_commit_latency_seconds"):
            assert name in metrics, name
        status, calls = await asyncio.to_thread(a.request, "GET", "calls")
        assert status == 200 and [c["call_id"] for c in calls] == [call], calls
        driver.send(call, m.EndCall(EndCause="Normal"))


async def test_h2_a_reply_held_for_a_stopped_replica_when_the_leader_dies(
    replicated_cluster: Cluster,
) -> None:
    """``durability = replica`` with the store's replica paused (SIGSTOP): the leader's batch
    reaches the Redis primary (marks included) but ``WAIT`` does not return, so the UDataResp
    is held; ``A`` is killed meanwhile. The request's effect is in the store and its mark says
    committed: ``B`` does not replay it, but finds the UDataResp in the reply outbox A kept
    with that batch and writes it. The driver must get exactly one UDataResp, from B.
    (``store-timeout`` is longer than the wait: a command unanswered for ``store-timeout``
    counts as the store lost, which releases the held replies.)"""
    cluster = replicated_cluster
    a, b = hot_pair(cluster, durability="replica", wait_timeout=5.0, store_timeout=10.0)
    assert cluster.replica is not None
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        cluster.replica.pause()
        try:
            task = asyncio.ensure_future(
                driver.request(
                    call,
                    m.UDataSet(Action="Replace", RequestId="5", UDataEx=DATA),
                    expect=m.UDataResp,
                    timeout=LEASE + 8,
                )
            )
            await asyncio.sleep(0.3)  # applied on the primary, waiting for the replica
            before = store_marks(cluster)
            a.kill9()
            try:
                got = await task
            except RequestTimeout:
                raise AssertionError(
                    f"no UDataResp from either node; marks before the kill: {before}, after "
                    f"the takeover: {store_marks(cluster)}; b's view: {b.ha()}"
                ) from None
        finally:
            cluster.replica.resume()
        assert got.message == m.UDataResp(Result="Success", RequestId="5"), got
        assert list(driver.exchanges[-1].answers) == ["b"], driver.exchanges[-1]  # A's outbox
        await settle(1.0)
        answered_once(driver)
        print(
            f"H2 (replica paused): answered by {list(driver.exchanges[-1].answers)}; marks "
            f"before the kill {before}; b: {await asyncio.to_thread(b.ha)}"
        )


async def test_a_leader_stopped_cleanly_hands_over_within_a_poll(cluster: Cluster) -> None:
    """SIGTERM: the leader drains, releases its lease, and the standby takes over at its next
    look (``poll``), not after the lease: the call goes on there with its data."""
    a, b = hot_pair(cluster, lease=5.0)
    loop = asyncio.get_running_loop()
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        await set_data(driver, call)
        stopping = loop.time()
        assert await asyncio.to_thread(a.terminate) == 0, a.log_tail()
        await role(b, "leader", 5.0)
        took = loop.time() - stopping
        got = await driver.request(
            call, m.UDataGet(Keys="Segment", RequestId="2"), expect=m.UDataResp, timeout=5
        )
        assert got.message == m.UDataResp(Result="Success", RequestId="2", UDataEx=DATA[:1])
        assert driver.exchanges[-1].first is not None
        assert driver.exchanges[-1].first.node == "b"
        assert took < 5.0, f"b led {took:.2f} s after the SIGTERM (lease 5 s)"
        # The stopping leader did not end the call the standby carries on with.
        ended = [t for t in driver.received if isinstance(t.message, m.EndCall)]
        assert not ended, ended
        driver.send(call, m.EndCall(EndCause="Normal"))
        await settle()
        answered_once(driver)


async def test_the_old_leader_restarted_stands_by_and_takes_over_back(cluster: Cluster) -> None:
    """kill -9 of ``a``; ``b`` leads; ``a`` started again stands by, and the driver logs in to
    it again; a second call on ``b``; kill -9 of ``b``: ``a`` leads again with both calls and
    their data (two fail-overs, no call or user data lost)."""
    a, b = hot_pair(cluster)
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        first = await new_call(driver, "1")
        await set_data(driver, first, "1")
        await asyncio.sleep(0.2)  # (a kill right after a reply: test_h2_kill_9_right_after...)
        a.kill9()
        await role(b, "leader", LEASE * 3 + 5)
        await asyncio.to_thread(a.start)
        await role(a, "standby", 10)
        await driver.wait_connected("a", 10)
        second = await new_call(driver, "2")
        await set_data(driver, second, "2")
        await asyncio.sleep(0.2)
        b.kill9()
        await role(a, "leader", LEASE * 3 + 5)
        for call, request_id in ((first, "3"), (second, "4")):
            got = await driver.request(
                call,
                m.UDataGet(Keys="Segment:Account", RequestId=request_id),
                expect=m.UDataResp,
                timeout=5,
            )
            assert got.message == m.UDataResp(
                Result="Success", RequestId=request_id, UDataEx=DATA
            ), (call, got)
            assert driver.exchanges[-1].first is not None
            assert driver.exchanges[-1].first.node == "a"
            driver.send(call, m.EndCall(EndCause="Normal"))
        await asyncio.to_thread(no_calls_left, a)
        await settle()
        answered_once(driver)


async def test_h1_with_replica_durability_and_a_real_replica(replicated_cluster: Cluster) -> None:
    """H1 at ``durability = replica`` (the default) against a Redis primary with a linked
    replica: every reply waits for the replica's acknowledgement (``WAIT``), and the standby
    answers with the data after kill -9 of the leader."""
    cluster = replicated_cluster
    a, b = hot_pair(cluster, durability="replica", wait_timeout=1.0, store_timeout=3.0)
    loop = asyncio.get_running_loop()
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call = await new_call(driver)
        await set_data(driver, call)
        view = await asyncio.to_thread(a.ha)
        assert view["durability"] == "replica", view
        killed = loop.time()
        a.kill9()
        got = await driver.request(
            call,
            m.UDataGet(Keys="Segment:Account", RequestId="2"),
            expect=m.UDataResp,
            timeout=LEASE + 5,
        )
        assert got.message == m.UDataResp(Result="Success", RequestId="2", UDataEx=DATA)
        assert driver.exchanges[-1].first is not None
        assert driver.exchanges[-1].first.node == "b"
        assert loop.time() - killed < LEASE + 1.0
        with cluster.redis.client() as primary, cluster.replica.client() as replica:  # type: ignore[union-attr]
            assert primary.dbsize() == replica.dbsize() > 0
        driver.send(call, m.EndCall(EndCause="Normal"))
        await settle()
        answered_once(driver)


async def test_a_store_restarted_from_an_old_snapshot_gets_the_current_state_back(
    cluster: Cluster,
) -> None:
    """A stock ``redis-server`` saves RDB snapshots: killed and started again, it comes back with
    the state of its last snapshot (older calls, an older epoch), not empty. The leader must not
    be fenced by that past, and the store must end up with the current state: a takeover right
    after finds the call made after the snapshot, with its data."""
    a, b = hot_pair(cluster)
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        first = await new_call(driver, "1")
        await set_data(driver, first, "1")
        with cluster.redis.client() as store:
            store.save()  # the snapshot a stock redis-server would have taken
        second = await new_call(driver, "2")
        await set_data(driver, second, "2")
        driver.send(first, m.EndCall(EndCause="Normal"))
        await asyncio.sleep(0.5)
        await asyncio.to_thread(cluster.redis.restart)  # kill -9, start: loads dump.rdb
        # the leader notices, reclaims its slot and writes everything back (the second call in,
        # the ended first one out): waited for, not slept for, since a loaded machine is slower
        written_back = await asyncio.to_thread(
            stored_calls_become, cluster, {second}, LEASE * 3 + 10
        )
        assert written_back == {second}, f"the store still holds calls {written_back}"
        await asyncio.sleep(LEASE)  # and renews at least once more
        a.kill9()
        await role(b, "leader", LEASE * 3 + 5)
        got = await driver.request(
            second, m.UDataGet(Keys="Segment", RequestId="3"), expect=m.UDataResp, timeout=5
        )
        assert got.message == m.UDataResp(Result="Success", RequestId="3", UDataEx=DATA[:1])
        status, calls = await asyncio.to_thread(b.request, "GET", "calls")
        assert status == 200 and [c["call_id"] for c in calls] == [second], calls
