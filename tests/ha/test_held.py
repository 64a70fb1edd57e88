"""H7 (MODES-AND-HA §3.7): 50,000 held calls on a hot pair, the leader killed: the standby takes
over, its takeover time and memory are recorded (printed; the benchmark, bench/ha.py, holds the
targets), and every call is answerable on it (a sample of them asked).

An IVR of 50,000 ports (one call each), the calls started through the hot-standby driver (every
NewCall to both nodes), one connection.
"""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from ivr_server.client import HotStandbyDriver, NodeAddress
from ivr_server.wire import messages as m
from tests.ha.conftest import IVR, LEASE, Cluster, held_body

pytestmark = [pytest.mark.xdist_group(__name__), pytest.mark.slow, pytest.mark.timeout(300)]

CALLS = int(os.environ.get("IVRS_H7_CALLS", "50000"))
"""50,000 (the environment variable: fewer, to try the test quickly)."""
SAMPLE = 500
TAKEOVER_S = 3.0 + LEASE
"""Takeover bound of the test: the benchmark's target (3 s with the default 2 s lease) with
this test's 1 s lease, on a loaded shared machine: lease + 3 s."""


async def test_h7_fifty_thousand_held_calls_taken_over(cluster: Cluster) -> None:
    body = held_body(CALLS)
    a = cluster.add("a", body)
    a.wait_role("leader", 60)
    b = cluster.add("b", body)
    b.wait_role("standby", 60)
    nodes = [NodeAddress("a", "127.0.0.1", a.port), NodeAddress("b", "127.0.0.1", b.port)]
    async with await HotStandbyDriver.open(nodes, IVR, late_window=60) as driver:
        calls = [f"H7_{i}" for i in range(1, CALLS + 1)]
        started = time.monotonic()
        for i, call in enumerate(calls, start=1):
            driver.send(call, m.NewCall(CallControlMode="Network", Version="4.0", CalledNum=str(i)))
            if i % 2000 == 0:
                await asyncio.sleep(0)  # let the replies in
        deadline = time.monotonic() + 120
        while True:
            established = sum(
                1
                for t in driver.received
                if t.node == "a"
                and isinstance(t.message, m.CallStatus)
                and t.message.Event == "Established"
            )
            if established == CALLS:
                break
            assert time.monotonic() < deadline, f"{established:,} of {CALLS:,} established"
            await asyncio.sleep(0.2)
        setup = time.monotonic() - started
        wrong = [t for t in driver.received if isinstance(t.message, (m.EndCall, m.CallError))]
        assert not wrong, wrong[:5]
        await asyncio.sleep(2.0)  # the standby trims its journal at the leader's marks
        before = {"a": a.rss_mb(), "b": b.rss_mb()}
        killed = time.monotonic()
        a.kill9()
        probe = await driver.request(
            calls[-1], m.CallInfoReq(), expect=m.CallInfoResp, timeout=TAKEOVER_S + 30
        )
        took = time.monotonic() - killed
        assert isinstance(probe.message, m.CallInfoResp), probe
        assert probe.message.CalledNum == str(CALLS), probe
        after = b.rss_mb()
        view = await asyncio.to_thread(b.ha)
        print(
            f"H7: {CALLS:,} calls set up in {setup:.1f} s; RSS before the kill: leader "
            f"{before['a']:.0f} MB, standby {before['b']:.0f} MB; a held call answered by the "
            f"standby {took:.2f} s after kill -9; its RSS then {after:.0f} MB; "
            f"last takeover: {view.get('last_takeover')}"
        )
        sample = calls[:: CALLS // SAMPLE]
        replies = await asyncio.gather(
            *(
                driver.request(call, m.CallInfoReq(), expect=m.CallInfoResp, timeout=30)
                for call in sample
            )
        )
        assert all(isinstance(r.message, m.CallInfoResp) for r in replies)
        assert all(
            r.message.CalledNum == call.split("_")[1]  # type: ignore[attr-defined]
            for r, call in zip(replies, sample, strict=True)
        )
        assert took < TAKEOVER_S, f"takeover {took:.2f} s"
        assert after < 500, f"new leader {after:.0f} MB with {CALLS:,} calls"
