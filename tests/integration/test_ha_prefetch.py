"""A standby's takeover built ahead (``runtime/ha_prefetch.py``, docs/ha.md "Ready before the lease
lapses", issue 25): when the holder misses a renewal, the standby loads the slot and builds its
calls while the lease runs out, and the takeover only installs them, but only if the slot was
not written since. Two real ``IvrServer`` nodes of one process over real TCP, as in
``test_ha_runtime.py``; a lease of 2 s (the default) leaves the tests a second between the
standby's build and the lapse.

What is checked: a dead holder's state is built ahead and installed, user data intact; a
holder that wrote after the build (alive, not renewing) is not lost: the takeover loads again;
a holder that renews after all makes the standby drop what it built; the same against a real
``redis-server``; and the pure rules of :meth:`Prefetch.watch`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import pytest

from ivr_server.runtime import IvrServer
from ivr_server.runtime.ha_prefetch import LATE, Prefetch
from ivr_server.service.persist import PreparedState, StatePersistence
from ivr_server.store import Batch, Lease, MemoryStore
from tests.integration.test_ha_runtime import (
    Driver,
    Start,
    crash,
    expect,
    pair,
    site,
    start_call,
    start_node,
    udata_get,
    udata_set,
    wait_for,
)
from tests.redisproc import RedisProcess, redis_server

__all__ = ["redis_server", "site", "start_node"]  # the fixtures, imported to be used here

pytestmark = pytest.mark.timeout(60)

LEASE = 2.0


async def _stored(driver: Driver, leader: str, value: str) -> None:
    """A call C1 on ``leader`` with user data ``account`` = ``value``, written."""
    await start_call(driver, leader)
    await driver.send("C1", udata_set("1", "account", value))
    resp = await expect(driver.links[leader], "UDataResp")
    assert resp.Result == "Success"  # type: ignore[attr-defined]


async def _account(driver: Driver, node: str, request_id: str) -> str:
    await driver.send("C1", udata_get(request_id, "account"), to=[node])
    resp = await expect(driver.links[node], "UDataResp")
    assert resp.Result == "Success", resp  # type: ignore[attr-defined]
    return str(resp)


async def _dead_holder_taken_over_from_what_was_built(a: IvrServer, b: IvrServer) -> None:
    driver = await Driver.open({"a": a, "b": b})
    await _stored(driver, "a", "42")
    assert a.ha is not None and b.ha is not None and b.ha.prefetch is not None
    await wait_for(lambda: a.ha is not None and a.ha.batches >= 2, what="a's batches")
    await crash(a)
    # (over once it is noted: the node leads from the takeover's second half on)
    await wait_for(
        lambda: b.ha is not None and b.ha.last_takeover is not None, LEASE + 2.0, "b takes over"
    )
    takeover = b.ha.last_takeover
    assert takeover is not None
    assert takeover.prefetched, takeover
    assert takeover.calls == 1
    assert b.ha.prefetch.used == 1
    assert "42" in await _account(driver, "b", "2")
    view = b.ha.view()
    assert view["last_takeover"]["prefetched"] is True
    assert view["prefetch"]["used"] == 1  # (started: once more for each false alarm under load)
    await driver.close()


async def test_a_dead_holders_state_is_built_ahead(start_node: Start, site: str) -> None:
    a, b = await pair(start_node, site, lease=LEASE)
    await _dead_holder_taken_over_from_what_was_built(a, b)


async def test_a_dead_holders_state_is_built_ahead_on_redis(
    start_node: Start, site: str, redis_server: RedisProcess
) -> None:
    a, b = await pair(start_node, site, lease=LEASE, store=redis_server.url)
    await _dead_holder_taken_over_from_what_was_built(a, b)


async def _built_while_a_is_late(
    start_node: Start, site: str, store: str = "memory://"
) -> tuple[IvrServer, IvrServer, Driver, Prefetch]:
    """A pair, a call with ``account`` = 42 on a; then a stops renewing its lease (starved, or
    its role loop stuck) but still serves (its batches are applied until another node's epoch
    fences them), and b builds a's state ahead."""
    a, b = await pair(start_node, site, lease=LEASE, store=store)
    driver = await Driver.open({"a": a, "b": b})
    await _stored(driver, "a", "42")
    assert a.ha is not None and a.ha._task is not None
    assert b.ha is not None and b.ha.prefetch is not None
    prefetch = b.ha.prefetch
    a.ha._task.cancel()
    await wait_for(lambda: prefetch.ready, LEASE, "b builds a's state ahead")
    return a, b, driver, prefetch


async def test_a_write_after_the_build_is_not_lost(start_node: Start, site: str) -> None:
    """The holder misses its renewals, the standby builds, then the holder commits a change:
    the takeover must see the slot's version moved, drop what it built and load again (else
    the change, committed and marked, would be neither in the state nor replayed)."""
    await _write_after_the_build(*await _built_while_a_is_late(start_node, site))


async def test_a_write_after_the_build_is_not_lost_on_redis(
    start_node: Start, site: str, redis_server: RedisProcess
) -> None:
    """The same, the write count kept by the Redis function library (``P ver``)."""
    await _write_after_the_build(*await _built_while_a_is_late(start_node, site, redis_server.url))


async def _write_after_the_build(
    _a: IvrServer, b: IvrServer, driver: Driver, prefetch: Prefetch
) -> None:
    assert b.ha is not None
    await driver.send("C1", udata_set("3", "account", "43"))  # to both, as a hot driver does
    resp = await expect(driver.links["a"], "UDataResp")
    assert resp.Result == "Success"  # type: ignore[attr-defined]
    assert not b.ha.leads  # the change was committed within a's lease
    # (over once it is noted: the node leads from the takeover's second half on)
    await wait_for(
        lambda: b.ha is not None and b.ha.last_takeover is not None, LEASE + 2.0, "b takes over"
    )
    takeover = b.ha.last_takeover
    assert takeover is not None
    assert not takeover.prefetched
    assert prefetch.discarded >= 1 and prefetch.used == 0
    assert "43" in await _account(driver, "b", "4")
    await driver.close()


async def test_a_holder_that_renews_after_all_makes_the_standby_drop_its_build(
    start_node: Start, site: str
) -> None:
    a, b, driver, prefetch = await _built_while_a_is_late(start_node, site)
    assert a.ha is not None and b.ha is not None
    assert await a.ha.store.renew("primary", "a", a.ha.epoch, LEASE) is True  # a renews after all
    await wait_for(lambda: not prefetch.busy, 1.0, "b drops what it built")
    assert prefetch.discarded == 1
    assert not b.ha.leads
    await driver.close()


# ---------------------------------------------------------------------- the rules, alone


def _lease(expires_in: float, node: str = "a", epoch: int = 7) -> Lease:
    return Lease("primary", node, epoch, expires_in)


class _Persistence:
    """What :class:`Prefetch` uses of a ``StatePersistence``: records the records it builds."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.fit = True

    def prepare(self, now: float, wall_now: float | None = None) -> PreparedState:
        return PreparedState(0.0, {}, {})

    def build(self, prepared: PreparedState, records: Iterable[tuple[str, bytes]]) -> None:
        for key, _ in records:
            prepared.records += 1
            self.built.append(key)

    def fits(self, prepared: PreparedState) -> bool:
        return self.fit


async def test_watch_take_and_drop() -> None:
    store = MemoryStore(site="w")
    persistence = _Persistence()
    prefetch = Prefetch(store, cast(StatePersistence, persistence), "primary", 2.0, "reply:")
    # a holder that renewed on time: look again when it would be late
    assert prefetch.watch(_lease(1.9), 10.0) == pytest.approx(10.0 + 1.9 - LATE * 2.0)
    assert not prefetch.busy
    assert prefetch.watch(None, 10.0) == float("inf")  # lapsed meanwhile: nothing to start
    assert not prefetch.busy
    epoch = await store.acquire("primary", "a", 2.0)
    assert epoch is not None
    await store.apply(Batch("primary", epoch, puts={"call:x": b"1", "reply:1:1:1:s": b"out"}))
    # late: it starts
    assert prefetch.watch(_lease(1.0, epoch=epoch), 10.0) == float("inf")
    assert prefetch.busy and prefetch.started == 1
    await wait_for(lambda: prefetch.ready, 1.0, "built")
    assert persistence.built == ["call:x"]  # the outbox's records apart
    # the same holder, still late: kept
    assert prefetch.watch(_lease(0.5, epoch=epoch), 10.0) == float("inf")
    assert prefetch.ready and prefetch.started == 1
    # taken while the slot is as it was built
    built = await prefetch.take()
    assert built is not None
    assert built.records == 1 and built.replies == {"reply:1:1:1:s": b"out"}
    assert not prefetch.busy and prefetch.used == 1
    assert await prefetch.take() is None  # once
    # built, then the slot written: not taken
    prefetch.watch(_lease(1.0, epoch=epoch), 10.0)
    await wait_for(lambda: prefetch.ready, 1.0, "built")
    await store.apply(Batch("primary", epoch, puts={"call:x": b"2"}))
    assert await prefetch.take() is None
    assert prefetch.discarded == 1
    # built against switches since replaced (a reload): not taken
    prefetch.watch(_lease(1.0, epoch=epoch), 10.0)
    await wait_for(lambda: prefetch.ready, 1.0, "built")
    persistence.fit = False
    assert await prefetch.take() is None
    assert prefetch.discarded == 2
    persistence.fit = True
    # the holder renewed, or another took the lease: what was built is dropped
    prefetch.watch(_lease(1.0, epoch=epoch), 10.0)
    assert prefetch.busy
    assert prefetch.watch(_lease(1.9, epoch=epoch), 10.0) < float("inf")
    assert not prefetch.busy and prefetch.discarded == 3
    prefetch.watch(_lease(1.0, epoch=epoch), 10.0)
    prefetch.watch(_lease(1.0, epoch=epoch + 1), 10.0)
    assert prefetch.discarded == 4
    assert prefetch.busy  # and started again for the new holder, late as well
    await prefetch.close()
    assert not prefetch.busy


async def test_a_store_that_keeps_changing_is_not_built_ahead() -> None:
    """Every load is written over (a live holder): nothing is built, the takeover loads."""

    class Busy(MemoryStore):
        async def load(self, slot: str) -> dict[str, bytes]:
            found = await super().load(slot)
            self._slots[slot].writes += 1  # a batch landed meanwhile
            return found

    store = Busy(site="w")
    epoch = await store.acquire("primary", "a", 2.0)
    assert epoch is not None
    await store.apply(Batch("primary", epoch, puts={"call:x": b"1"}))
    persistence = _Persistence()
    prefetch = Prefetch(store, cast(StatePersistence, persistence), "primary", 2.0, "reply:")
    prefetch.watch(_lease(1.0, epoch=epoch), 10.0)
    assert await prefetch.take() is None
    assert persistence.built == []
