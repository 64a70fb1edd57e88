"""A store that changed under its clients (issue 25, gap 2; docs/store.md §3 "Incarnations"): a
``redis-server`` killed and started again loads its last RDB snapshot (a stock Redis takes them
by default) and comes back with an *older* state, possibly with the live leader's own epoch and
lease. Its clients must notice (a new ``run_id``): the slot's batches are refused until the
holder's renewal reclaimed it (``None``: write everything back), and no other client takes a
free lease for one lease. Run against the reference (:class:`MemoryStore`, ``restart`` from a
``snapshot``) and a real redis-server restarted from a ``SAVE``d ``dump.rdb``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from ivr_server.store import Batch, Fenced, StateStore, StoreUnavailable
from ivr_server.store.redis import RedisStore
from tests.redisproc import RedisProcess
from tests.store.conftest import Backend

pytestmark = pytest.mark.timeout(60)

LEASE = 1.0
T = TypeVar("T")


async def _after_reconnect(call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` once the client found the old connection gone (Redis: the first command after
    the kill fails with :class:`StoreUnavailable`; the next connects again)."""
    for _ in range(3):
        try:
            return await call()
        except StoreUnavailable:
            await asyncio.sleep(0.05)
    return await call()


async def test_a_store_back_from_an_older_snapshot_is_reclaimed_and_rewritten(
    backend: Backend, stores: tuple[StateStore, StateStore]
) -> None:
    a, b = stores
    ea = await a.acquire("primary", "A", LEASE)
    assert ea is not None
    await a.apply(Batch("primary", ea, puts={"old": b"1"}, marks={"s#0": 1}))
    before = a.incarnation
    assert before is not None
    assert await b.holder("primary") is not None  # b knows the incarnation too
    backend.save()
    await a.apply(Batch("primary", ea, puts={"new": b"2"}, deletes={"old"}, marks={"s#0": 2}))
    assert await a.renew("primary", "A", ea, LEASE) is True
    backend.restart_from_snapshot()

    # the leader's batch is not written onto the older state: renew first
    async def stale_apply() -> None:
        await a.apply(Batch("primary", ea, puts={"later": b"3"}))

    with pytest.raises(Fenced) as caught:
        await _after_reconnect(stale_apply)
    assert caught.value.current is None
    assert a.incarnation is not None and a.incarnation != before
    # another client does not take the lease the snapshot left (lapsed or not)
    with contextlib.suppress(StoreUnavailable):
        assert await _after_reconnect(lambda: b.acquire("primary", "B", LEASE)) is None
    # the renewal reclaims the slot at the leader's epoch: write everything back
    assert await a.renew("primary", "A", ea, LEASE) is None
    existing = await a.load("primary")
    assert existing == {"old": b"1"}  # the snapshot's
    everything = {"new": b"2", "later": b"3"}
    await a.apply(
        Batch(
            "primary",
            ea,
            puts=everything,
            deletes=set(existing) - set(everything),
            marks={"s#0": 2},
        )
    )
    assert await b.load("primary") == everything
    assert await b.marks("primary", ["s#0"]) == {"s#0": 2}
    assert await a.renew("primary", "A", ea, LEASE) is True  # and as before from then on
    holder = await b.holder("primary")
    assert holder is not None and (holder.node, holder.epoch) == ("A", ea)
    assert await b.acquire("primary", "B", LEASE) is None


async def test_a_free_lease_waits_one_lease_after_the_store_changed(
    backend: Backend, stores: tuple[StateStore, StateStore]
) -> None:
    """The snapshot's lease lapsed and its holder is dead: another client takes the slot once
    the lease since it saw the new incarnation has passed, not before."""
    a, b = stores
    ea = await a.acquire("primary", "A", 0.2)
    assert ea is not None
    await a.apply(Batch("primary", ea, puts={"k": b"v"}))
    await b.holder("primary")
    backend.save()
    backend.restart_from_snapshot()
    await asyncio.sleep(0.3)  # the snapshot's lease has lapsed
    loop = asyncio.get_running_loop()
    started = loop.time()
    eb = None
    refused = 0
    while eb is None and loop.time() - started < 10.0:
        try:
            eb = await b.acquire("primary", "B", LEASE)
        except StoreUnavailable:
            refused += 1
            await asyncio.sleep(0.05)
    assert eb is not None and eb > ea
    assert refused >= 2  # held back for a while...
    assert loop.time() - started < LEASE + 5.0  # ...about one lease
    assert await b.load("primary") == {"k": b"v"}
    assert await _after_reconnect(lambda: a.renew("primary", "A", ea, LEASE)) is False


async def test_a_snapshot_from_before_a_takeover_does_not_fence_the_new_holder(
    backend: Backend, stores: tuple[StateStore, StateStore]
) -> None:
    """The snapshot holds the old holder's (lower) epoch: the new holder's renewal reclaims the
    slot at its own epoch, and the old holder stays fenced."""
    a, b = stores
    ea = await a.acquire("primary", "A", LEASE)
    assert ea is not None
    await a.apply(Batch("primary", ea, puts={"k": b"a"}))
    backend.save()
    await a.release("primary", "A", ea)
    eb = await b.acquire("primary", "B", LEASE)
    assert eb is not None and eb > ea
    await b.apply(Batch("primary", eb, puts={"k": b"b"}))
    backend.restart_from_snapshot()
    assert await _after_reconnect(lambda: b.renew("primary", "B", eb, LEASE)) is None
    await b.apply(Batch("primary", eb, puts={"k": b"b"}))
    assert await _after_reconnect(lambda: a.renew("primary", "A", ea, LEASE)) is False
    with pytest.raises(Fenced) as caught:
        await a.apply(Batch("primary", ea, puts={"k": b"stale"}))
    assert caught.value.current == eb
    assert await b.load("primary") == {"k": b"b"}


async def test_incarnation_names_the_server_start(redis_server: RedisProcess) -> None:
    """The Redis store's incarnation is the server's ``run_id``: the same across reconnections
    to one process, another after a restart."""
    store = RedisStore(redis_server.url, site="t")
    try:
        assert store.incarnation is None
        await store.connect()
        first = store.incarnation
        with redis_server.client() as client:
            assert first == client.info("server")["run_id"]
            client.client_kill_filter(_type="normal", skipme=True)  # the store's connection
        await _after_reconnect(store.leases)
        assert store.incarnation == first
        redis_server.restart()
        await _after_reconnect(store.leases)
        assert store.incarnation is not None and store.incarnation != first
    finally:
        await store.close()
