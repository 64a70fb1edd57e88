"""Behind mode under hot standby with real processes (issue 25; MODES-AND-HA §3.5 "resyncs the
premise link with snapshots", §1.7 G27): the CSTA PBX simulator (``ivr-server csta-sim``,
examples/pbx.toml), a real ``redis-server``, and two ``ivr-server serve`` nodes of
examples/behind.toml with ``[ha] mode = "hot"``; the hot-standby driver logs in to both.

Only the leader holds a CSTA session with the PBX. The simulator delivers calls to the IVR's port
DNs; the leader is killed (``kill -9``); the standby takes over, restores the calls with their
premise references (``switch/premise/persist.py``), connects to the PBX and resyncs each DN from
its snapshot. The calls go on: their user data is answered, a call the PBX cleared while no node
watched it is ``CallStatus Released`` at the resync, the PBX's hang-up of another is ``CallStatus
Released`` from the new leader, an ``EndCall`` on a third clears it on the PBX.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ivr_server.client import HotStandbyDriver, NodeAddress
from ivr_server.wire import Node
from ivr_server.wire import messages as m
from tests.behind.conftest import PORT_DNS, Sim, behind_config, start_sim, stop_process
from tests.ha.conftest import LEASE, Cluster
from tests.ha.conftest import Node as Proc

pytestmark = pytest.mark.xdist_group(__name__)

IVR = "IAdapter1"
"""examples/behind.toml's IVR (ports 1..3 on DNs 3001..3003)."""
ROLE_S = 10.0
DATA = (Node(Name="Segment", Type="Str", Val="Gold"), Node(Name="Account", Type="Str", Val="42"))


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    """The PBX simulator on free loopback ports; stopped after the test (its log printed)."""
    started = start_sim(tmp_path)
    try:
        yield started
    finally:
        try:
            stop_process(started.proc, started.log)
        finally:
            print(f"--- simulator log ---\n{started.log_text()[-4000:]}")


def sessions(sim: Sim) -> list[dict[str, object]]:
    """The simulator's application sessions (``GET /sessions``)."""
    answer = sim.api("GET", "sessions", ok=(200,))
    return list(answer["sessions"])


def wait_for(what: str, check: Callable[[], bool], timeout: float) -> None:
    """Poll ``check`` (blocking) until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out ({timeout:g} s) waiting for {what}")
        time.sleep(0.05)


def all_ports_monitored(sim: Sim) -> bool:
    return set(PORT_DNS.values()) <= sim.monitored()


def addresses(*nodes: Proc) -> list[NodeAddress]:
    return [NodeAddress(n.name, "127.0.0.1", n.port) for n in nodes]


async def behind_call(driver: HotStandbyDriver, sim: Sim, port: str, ani: str) -> tuple[str, str]:
    """A Behind NewCall on IVR ``port`` (sent to both nodes), the simulator's call delivered to
    its DN and answered there: (the IVR's CallId, the simulator's call id)."""
    call = driver.new_call_id("B")
    driver.send(call, m.NewCall(CallControlMode="Network", Version="4.0", CalledNum=port))
    pbx_call = await asyncio.to_thread(sim.deliver, ani, PORT_DNS[port])
    ringing = await driver.expect(call, types=m.CallStatus, timeout=5)
    assert ringing.message == m.CallStatus(Event="Ringing"), ringing
    established = await driver.expect(call, types=m.CallStatus, timeout=5)
    assert established.message == m.CallStatus(Event="Established"), established
    assert (ringing.node, established.node) == ("a", "a")
    return call, pbx_call


async def test_kill_9_of_the_leader_the_standby_resyncs_the_pbx_and_the_calls_go_on(
    cluster: Cluster, sim: Sim, tmp_path: Path
) -> None:
    a, b = await hot_behind_pair(cluster, sim, tmp_path)
    await asyncio.sleep(0.5)
    assert len(sessions(sim)) == 1, f"the standby holds a CSTA session: {sessions(sim)}"
    loop = asyncio.get_running_loop()
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        hung_up, hung_up_pbx = await behind_call(driver, sim, "1", "5551001")
        ended, ended_pbx = await behind_call(driver, sim, "2", "5551002")
        gap, gap_pbx = await behind_call(driver, sim, "3", "5551003")
        got = await driver.request(
            hung_up,
            m.UDataSet(Action="Replace", RequestId="1", UDataEx=DATA),
            expect=m.UDataResp,
        )
        assert got.message == m.UDataResp(Result="Success", RequestId="1"), got
        await asyncio.sleep(0.3)  # A's batch with the data committed (one loop turn)
        killed = loop.time()
        a.kill9()
        # hung up while no node watches the PBX: only the new leader's resync can tell
        await asyncio.to_thread(sim.hangup, gap_pbx)
        await asyncio.to_thread(b.wait_role, "leader", LEASE + 5)
        took = loop.time() - killed
        # the new leader's premise link comes up (monitors, snapshots, resync)
        await asyncio.to_thread(
            wait_for,
            "b's CSTA session and monitors",
            lambda: len(sessions(sim)) == 1 and all_ports_monitored(sim),
            15.0,
        )
        resynced = await driver.expect(gap, types=m.CallStatus, timeout=5)
        assert (resynced.node, resynced.message) == ("b", m.CallStatus(Event="Released")), (
            f"{resynced}\n{b.log_tail()}"
        )
        driver.send(gap, m.EndCall(EndCause="Normal"))
        answer = await driver.request(
            hung_up, m.UDataGet(Keys="Segment:Account", RequestId="2"), expect=m.UDataResp
        )
        assert answer.message == m.UDataResp(Result="Success", RequestId="2", UDataEx=DATA), (
            f"{answer.message}\n{b.log_tail()}"
        )
        assert driver.exchanges[-1].first is not None
        assert driver.exchanges[-1].first.node == "b"
        # the PBX's caller hangs up: its event names a premise call b restored
        await asyncio.to_thread(sim.hangup, hung_up_pbx)
        released = await driver.expect(hung_up, types=m.CallStatus, timeout=5)
        assert (released.node, released.message) == ("b", m.CallStatus(Event="Released")), (
            f"{released}\n{b.log_tail()}"
        )
        driver.send(hung_up, m.EndCall(EndCause="Normal"))
        # an EndCall on the other call clears its connection on the PBX
        assert sim.call(ended_pbx), "the simulator still has the second call"
        driver.send(ended, m.EndCall(EndCause="Normal"))
        await asyncio.to_thread(
            wait_for, "the PBX to clear the ended call", lambda: gone(sim, ended_pbx), 5.0
        )
        await asyncio.to_thread(wait_for, "no calls left on b", lambda: no_calls(b), 5.0)
        twice = [e.index for e in driver.exchanges if len(e.answers) > 1]
        assert not twice, f"answered by both nodes: {twice}"
        assert took < LEASE + 3.0, f"b led {took:.2f} s after the kill"


async def hot_behind_pair(cluster: Cluster, sim: Sim, tmp_path: Path) -> tuple[Proc, Proc]:
    """``a`` leads with its premise link up (every port DN monitored), then ``b`` stands by."""
    body = behind_config(tmp_path, sim.csta_port).read_text(encoding="utf-8")
    a = cluster.add("a", body)
    await asyncio.to_thread(a.wait_role, "leader", ROLE_S)
    await asyncio.to_thread(wait_for, "a's monitors", lambda: all_ports_monitored(sim), 30.0)
    b = cluster.add("b", body)
    await asyncio.to_thread(b.wait_role, "standby", ROLE_S)
    return a, b


async def test_an_endcall_the_leader_never_read_is_replayed_and_clears_the_call_on_the_pbx(
    cluster: Cluster, sim: Sim, tmp_path: Path
) -> None:
    """runtime/ha.py replays the journal before the new leader's premise link is up: the
    replayed EndCall's release waits in the premise switch for the link's resync (G27), then
    clears the call on the PBX (it was refused TERR_NO_SWITCH and the PBX call stayed)."""
    a, b = await hot_behind_pair(cluster, sim, tmp_path)
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        call, pbx_call = await behind_call(driver, sim, "1", "5551004")
        a.sigstop()  # a never reads the EndCall; b journals it
        driver.send(call, m.EndCall(EndCause="Normal"))
        await asyncio.sleep(0.2)
        a.kill9()
        await asyncio.to_thread(b.wait_role, "leader", LEASE + 5)
        await asyncio.to_thread(wait_for, "no calls left on b", lambda: no_calls(b), 5.0)
        await asyncio.to_thread(
            wait_for, "the PBX to clear the ended call", lambda: gone(sim, pbx_call), 5.0
        )


def gone(sim: Sim, call: str) -> bool:
    """The simulator has forgotten the call or shows it cleared."""
    state = sim.call(call)
    return not state or state.get("state") == "cleared"


def no_calls(node: Proc) -> bool:
    status, calls = node.request("GET", "calls")
    return status == 200 and calls == []


async def test_a_newcall_the_leader_never_read_is_replayed_once_the_link_is_up(
    cluster: Cluster, sim: Sim, tmp_path: Path
) -> None:
    """The PBX delivers a caller to port 3 while the leader is paused; the driver's NewCall
    reaches both; the leader is killed. The standby takes over, its link's resync finds the
    call at 3003 (kept for a NewCall), then the replayed NewCall takes it: Ringing and
    Established from the new leader, once (G27: resync, then answer; a NewCall replayed before
    the link is up would be EndCall ServerPaused)."""
    a, b = await hot_behind_pair(cluster, sim, tmp_path)
    async with await HotStandbyDriver.open(addresses(a, b), IVR) as driver:
        a.sigstop()
        pbx_call = await asyncio.to_thread(sim.deliver, "5551005", PORT_DNS["3"])
        call = driver.new_call_id("R")
        driver.send(call, m.NewCall(CallControlMode="Network", Version="4.0", CalledNum="3"))
        await asyncio.sleep(0.2)
        a.kill9()
        await asyncio.to_thread(b.wait_role, "leader", LEASE + 5)
        first = await driver.expect(call, types=(m.CallStatus, m.EndCall), timeout=5)
        assert (first.node, first.message) == ("b", m.CallStatus(Event="Ringing")), (
            f"{first}\n{b.log_tail()}"
        )
        second = await driver.expect(call, types=(m.CallStatus, m.EndCall), timeout=5)
        assert (second.node, second.message) == ("b", m.CallStatus(Event="Established")), second
        driver.send(call, m.EndCall(EndCause="Normal"))
        await asyncio.to_thread(
            wait_for, "the PBX to clear the ended call", lambda: gone(sim, pbx_call), 5.0
        )
        await asyncio.sleep(0.5)
        assert not [t for t in driver.unsolicited() if t.received.call_id == call]
