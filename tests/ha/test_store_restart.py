"""A store restarted from an older snapshot, seen by the runtime (issue 25, gap 2): two nodes of
one process on a ``memory://`` store (:meth:`MemoryStore.restart` from a :meth:`snapshot`: the
reference of a redis-server restarted from its RDB; the same with a real Redis and real
processes is ``test_failover.py``'s ``test_a_store_restarted_from_an_old_snapshot...``). The
leader's next batch is refused before anything is written onto the older state, its renewal
reclaims the slot and it writes everything back (a call ended since the snapshot deleted, one
begun since written); the standby does not take the lease meanwhile; after the leader dies, the
standby takes the current state over."""

from __future__ import annotations

import asyncio

import pytest

from ivr_server.calls.call import call_id_of
from ivr_server.store.memory import MemoryStore, shared_memory_store
from ivr_server.wire import messages as m
from tests.integration.rawlink import RawLink, new_call_body
from tests.integration.test_ha_runtime import (
    LEASE,
    Driver,
    Start,
    crash,
    pair,
    site,
    start_node,
    udata_get,
    udata_set,
    wait_for,
)

__all__ = ["site", "start_node"]  # the fixtures, imported to be used here

pytestmark = pytest.mark.timeout(60)


async def _next(link: RawLink, tag: str, timeout: float = 5.0) -> m.Message:
    """The next document ``tag`` on ``link``, past the flow control a lost store sends."""
    while True:
        _, message, _ = await link.recv_doc(timeout)
        if message.tag == "FlowControl":
            continue
        assert message.tag == tag, message
        return message


def _calls(store: MemoryStore) -> set[str]:
    found = store._slots.get("primary")
    objects = found.objects if found is not None else {}
    return {key.rpartition("\x1f")[2] for key in objects if key.startswith("call:")}


async def _call(driver: Driver, call_id: str, port: str) -> None:
    await driver.send(call_id, new_call_body(port))
    await _next(driver.links["a"], "CallStatus")
    await _next(driver.links["a"], "CallStatus")


async def test_the_leader_writes_back_over_an_older_snapshot(start_node: Start, site: str) -> None:
    a, b = await pair(start_node, site)
    store = shared_memory_store("memory://", site=site)
    assert a.ha is not None and b.ha is not None
    driver = await Driver.open({"a": a, "b": b})
    await _call(driver, "C1", "1")
    await driver.send("C1", udata_set("1", "k", "old"))
    await _next(driver.links["a"], "UDataResp")
    image = store.snapshot()  # C1 only
    await _call(driver, "C2", "2")
    await driver.send("C1", "<EndCall EndCause='Normal'/>")
    await wait_for(lambda: _calls(store) == {"C2"}, 3.0, "C1 ended, C2 begun in the store")
    epoch = a.ha.epoch

    store.restart(image)
    await driver.send("C2", udata_set("2", "k", "after"))  # its batch: refused, then rewritten
    resp = await _next(driver.links["a"], "UDataResp")
    assert resp.Result == "Success"  # type: ignore[attr-defined]
    await wait_for(lambda: _calls(store) == {"C2"}, LEASE * 3 + 2.0, "the state written back")
    await wait_for(lambda: a.ha is not None and a.ha.store_state == "ok", 3.0, "store ok")
    assert a.ha.leads and a.ha.epoch == epoch and a.ha.fenced_count == 0
    assert b.ha.role == "standby" and b.ha.last_takeover is None

    await asyncio.sleep(LEASE * 1.5)  # b's hold after the restart is over: a keeps the lease
    assert b.ha.role == "standby" and a.ha.leads
    await crash(a)
    await wait_for(
        lambda: b.ha is not None and b.ha.last_takeover is not None,
        LEASE * 3 + 2.0,
        "b took over",  # (it leads from the takeover's second half; this is set at its end)
    )
    assert b.ha.last_takeover is not None and b.ha.last_takeover.calls == 1
    assert {call_id_of(key) for key in b.service.calls.calls} == {"C2"}
    await driver.send("C2", udata_get("3", "k"), to=["b"])
    resp = await _next(driver.links["b"], "UDataResp")
    assert "after" in str(resp)
    await driver.close()


async def test_a_standby_does_not_take_a_snapshots_lapsed_lease(
    start_node: Start, site: str
) -> None:
    """The snapshot's lease has lapsed when the store comes back: the standby still leaves the
    slot to the live leader, whose renewal reclaims it."""
    a, b = await pair(start_node, site)
    store = shared_memory_store("memory://", site=site)
    assert a.ha is not None and b.ha is not None
    image = store.snapshot()
    await asyncio.sleep(LEASE + 0.1)  # the image's lease has lapsed (a renewed it since)
    store.restart(image)
    await asyncio.sleep(LEASE * 2)
    assert a.ha.leads and a.ha.fenced_count == 0
    assert b.ha.role == "standby" and b.ha.last_takeover is None
    holder = await store.holder("primary")
    assert holder is not None and holder.node == "a" and holder.epoch == a.ha.epoch
