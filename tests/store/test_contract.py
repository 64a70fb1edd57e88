"""The StateStore contract (src/ivr_server/store/protocol.py), run against the reference
(:class:`MemoryStore`) and against :class:`RedisStore` on a real redis-server (tests/redisproc.py):
both must behave the same, fencing above all (MODES-AND-HA §3.5, docs/store.md)."""

from __future__ import annotations

import asyncio

import pytest

from ivr_server.store import Batch, Fenced, StateStore, StoreUnavailable
from ivr_server.store.redis import RedisStore
from tests.store.conftest import Backend

pytestmark = pytest.mark.timeout(30)

LEASE = 0.2
"""Short leases: lapses are tested by waiting them out."""


async def test_apply_load_marks(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    epoch = await a.acquire("primary", "A", 2.0)
    assert epoch is not None
    assert await a.load("primary") == {}
    batch = Batch("primary", epoch, puts={"call:1": b"one", "call:2": b"\x00two\xff"})
    batch.marks["drv#0"] = 3
    assert await a.apply(batch) == 0
    assert (
        await a.apply(Batch("primary", epoch, puts={"call:3": b"three"}, deletes={"call:1"})) == 0
    )
    assert await b.load("primary") == {"call:2": b"\x00two\xff", "call:3": b"three"}
    assert await b.marks("primary", ["drv#0", "drv#1"]) == {"drv#0": 3}
    assert await b.marks("primary", []) == {}
    assert await b.marks("other", ["drv#0"]) == {}
    assert await b.load("other") == {}
    await a.apply(Batch("primary", epoch, marks={"drv#0": 5, "drv#1": 1}))
    assert await b.marks("primary", ["drv#0", "drv#1"]) == {"drv#0": 5, "drv#1": 1}


async def test_apply_without_acquire_is_fenced(stores: tuple[StateStore, StateStore]) -> None:
    a, _ = stores
    with pytest.raises(Fenced) as caught:
        await a.apply(Batch("primary", 1, puts={"k": b"v"}))
    assert caught.value.current is None
    assert caught.value.slot == "primary"


async def test_acquire_held_lapsed_and_fencing(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    ea = await a.acquire("primary", "A", LEASE)
    assert ea is not None
    assert await b.acquire("primary", "B", LEASE) is None  # held
    lease = await b.holder("primary")
    assert lease is not None
    assert (lease.slot, lease.node, lease.epoch) == ("primary", "A", ea)
    assert 0 < lease.expires_in <= LEASE
    await asyncio.sleep(LEASE + 0.1)  # A is paused: its lease lapses
    assert await b.holder("primary") is None
    assert await b.leases() == []
    eb = await b.acquire("primary", "B", 2.0)
    assert eb is not None
    assert eb > ea
    # A wakes up: whatever it does with its old epoch fails
    with pytest.raises(Fenced) as caught:
        await a.apply(Batch("primary", ea, puts={"k": b"stale"}))
    assert caught.value.current == eb
    assert await a.renew("primary", "A", ea, LEASE) is False
    with pytest.raises(Fenced):
        await a.drop("primary", "A", ea)
    await a.release("primary", "A", ea)  # not A's any more: nothing happens
    holder = await a.holder("primary")
    assert holder is not None
    assert holder.node == "B"
    assert await a.load("primary") == {}
    await b.apply(Batch("primary", eb, puts={"k": b"fresh"}))
    assert await a.load("primary") == {"k": b"fresh"}


async def test_reacquire_by_the_holder_moves_the_epoch(
    stores: tuple[StateStore, StateStore],
) -> None:
    a, _ = stores
    e1 = await a.acquire("primary", "A", 2.0)
    e2 = await a.acquire("primary", "A", 2.0)
    assert e1 is not None
    assert e2 == e1 + 1
    with pytest.raises(Fenced):
        await a.apply(Batch("primary", e1, puts={"k": b"v"}))


async def test_renew_keeps_the_lease(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    ea = await a.acquire("primary", "A", LEASE)
    assert ea is not None
    for _ in range(4):
        await asyncio.sleep(LEASE / 2)
        assert await a.renew("primary", "A", ea, LEASE) is True
    assert await b.acquire("primary", "B", LEASE) is None
    await asyncio.sleep(LEASE + 0.1)
    # lapsed, nobody took it: the holder may renew (re-take) at its epoch
    assert await a.renew("primary", "A", ea, LEASE) is True
    assert await b.acquire("primary", "B", LEASE) is None


async def test_release_frees_the_slot_at_once(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    ea = await a.acquire("primary", "A", 5.0)
    assert ea is not None
    await a.release("primary", "A", ea + 7)  # wrong epoch: ignored
    assert await b.acquire("primary", "B", 5.0) is None
    await a.release("primary", "A", ea)
    assert await b.holder("primary") is None
    eb = await b.acquire("primary", "B", 5.0)
    assert eb == ea + 1


async def test_renew_after_the_store_lost_everything(
    backend: Backend, stores: tuple[StateStore, StateStore]
) -> None:
    a, b = stores
    ea = await a.acquire("primary", "A", 2.0)
    assert ea is not None
    await a.apply(Batch("primary", ea, puts={"k": b"v"}, marks={"s#0": 2}))
    backend.lose_data()
    with pytest.raises((Fenced, StoreUnavailable)):  # Redis: the old connection is gone
        await a.apply(Batch("primary", ea, puts={"k2": b"v"}))
    with pytest.raises(Fenced) as caught:
        await a.apply(Batch("primary", ea, puts={"k2": b"v"}))
    assert caught.value.current is None
    assert await b.load("primary") == {}
    assert await a.renew("primary", "A", ea, 2.0) is None  # ours again, state to rewrite
    assert await b.acquire("primary", "B", 2.0) is None
    await a.apply(Batch("primary", ea, puts={"k": b"v"}, marks={"s#0": 2}))
    assert await b.load("primary") == {"k": b"v"}
    assert await b.marks("primary", ["s#0"]) == {"s#0": 2}
    assert await a.renew("primary", "A", ea, 2.0) is True


async def test_fencing_survives_the_store_losing_everything(
    backend: Backend, stores: tuple[StateStore, StateStore]
) -> None:
    """A holder paused across a restart of the store, whose successor acquired the slot anew,
    must not pass the fencing check with its old epoch."""
    a, b = stores
    ea = await a.acquire("primary", "A", LEASE)
    assert ea is not None
    backend.lose_data()
    eb = None
    deadline = asyncio.get_running_loop().time() + 10.0
    while eb is None and asyncio.get_running_loop().time() < deadline:
        # Redis: the first call finds the connection gone, then the store is another
        # incarnation: for one lease b does not take the free lease (a's to reclaim)
        try:
            eb = await b.acquire("primary", "B", 2.0)
        except StoreUnavailable:
            await asyncio.sleep(0.05)
    assert eb is not None
    assert eb > ea
    for _ in range(2):
        try:
            await a.apply(Batch("primary", ea, puts={"k": b"stale"}))
        except StoreUnavailable:
            continue
        except Fenced as fenced:
            # Redis: refused by a's client, the store being another incarnation than the one
            # a's lease was confirmed on (None); memory: by the store's epoch
            assert fenced.current in (eb, None)
            break
    else:
        pytest.fail("the stale apply was not fenced")
    assert await a.renew("primary", "A", ea, LEASE) is False
    with pytest.raises(Fenced) as caught:  # and by the store itself, once a knows the incarnation
        await a.apply(Batch("primary", ea, puts={"k": b"stale"}))
    assert caught.value.current == eb
    assert await b.load("primary") == {}


async def test_leases_slots_and_drop(stores: tuple[StateStore, StateStore]) -> None:
    a, b = stores
    ea = await a.acquire("A", "A", 2.0)
    eb = await b.acquire("B", "B", LEASE)
    assert ea is not None
    assert eb is not None
    assert await a.slots() == []  # leases, no state yet
    await a.apply(Batch("A", ea, puts={"call:1": b"x"}))
    await b.apply(Batch("B", eb, puts={"call:2": b"y"}, marks={"s#0": 1}))
    assert sorted(await a.slots()) == ["A", "B"]
    leases = sorted(await a.leases(), key=lambda lease: lease.slot)
    assert [(x.slot, x.node, x.epoch) for x in leases] == [("A", "A", ea), ("B", "B", eb)]
    await asyncio.sleep(LEASE + 0.1)  # B dies
    assert [(x.slot, x.node) for x in await a.leases()] == [("A", "A")]
    assert sorted(await a.slots()) == ["A", "B"]  # its state stays
    # A adopts B's slot, moves the calls into its own, drops B's
    eab = await a.acquire("B", "A", 2.0)
    assert eab is not None
    moved = await a.load("B")
    assert moved == {"call:2": b"y"}
    await a.apply(Batch("A", ea, puts=moved))
    with pytest.raises(Fenced):
        await a.drop("B", "A", eb)
    await a.drop("B", "A", eab)
    assert await a.load("B") == {}
    assert await a.marks("B", ["s#0"]) == {}
    assert await a.slots() == ["A"]
    assert await a.load("A") == {"call:1": b"x", "call:2": b"y"}
    assert {x.slot for x in await a.leases()} == {"A", "B"}


async def test_many_applies_in_flight_keep_their_order(
    stores: tuple[StateStore, StateStore],
) -> None:
    a, b = stores
    epoch = await a.acquire("primary", "A", 5.0)
    assert epoch is not None
    done: list[int] = []

    async def one(i: int) -> None:
        batch = Batch("primary", epoch, puts={"k": str(i).encode(), f"c:{i % 7}": b"%d" % i})
        if i % 5 == 0:
            batch.deletes.add(f"c:{(i + 3) % 7}")
        batch.marks["s#0"] = i
        await a.apply(batch)
        done.append(i)

    await asyncio.gather(*(one(i) for i in range(300)))
    assert done == list(range(300))
    state = await b.load("primary")
    assert state["k"] == b"299"
    assert await b.marks("primary", ["s#0"]) == {"s#0": 299}
    # the same sequence applied one by one gives the same state
    expected: dict[str, bytes] = {}
    for i in range(300):
        if i % 5 == 0:
            expected.pop(f"c:{(i + 3) % 7}", None)
        expected["k"] = str(i).encode()
        expected[f"c:{i % 7}"] = b"%d" % i
    assert state == expected


async def test_a_fenced_apply_among_others_in_flight(
    stores: tuple[StateStore, StateStore],
) -> None:
    a, _ = stores
    epoch = await a.acquire("primary", "A", 5.0)
    assert epoch is not None
    results = await asyncio.gather(
        a.apply(Batch("primary", epoch, puts={"k": b"1"})),
        a.apply(Batch("primary", epoch + 1, puts={"k": b"2"})),
        a.apply(Batch("primary", epoch, puts={"k": b"3"})),
        return_exceptions=True,
    )
    assert results[0] == 0
    assert isinstance(results[1], Fenced)
    assert results[2] == 0
    assert await a.load("primary") == {"k": b"3"}


async def test_unavailable_then_back(
    backend: Backend, stores: tuple[StateStore, StateStore]
) -> None:
    a, _ = stores
    ea = await a.acquire("primary", "A", 2.0)
    assert ea is not None
    backend.kill()
    for call in (
        a.apply(Batch("primary", ea, puts={"k": b"v"})),
        a.renew("primary", "A", ea, 2.0),
        a.load("primary"),
        a.leases(),
    ):
        with pytest.raises(StoreUnavailable):
            await call
    backend.revive()
    assert await a.renew("primary", "A", ea, 2.0) is None  # back empty: rewrite everything
    assert await a.apply(Batch("primary", ea, puts={"k": b"v"})) == 0
    assert await a.load("primary") == {"k": b"v"}


def test_memory_urls_name_one_store_per_process() -> None:
    from ivr_server.store import open_store

    a = open_store("memory://x", site="s1")
    assert open_store("memory://x", site="s1") is a
    assert open_store("memory://x", site="s2") is not a
    assert a.url == "memory://s1"
    assert isinstance(open_store("redis://127.0.0.1:1/0", site="s1"), RedisStore)


def test_batch_merge_keeps_the_latest() -> None:
    queued = Batch("primary", 1, puts={"a": b"1", "b": b"1"}, deletes={"c"}, marks={"s#0": 1})
    assert queued
    queued.merge(Batch("primary", 2, puts={"c": b"2"}, deletes={"a"}, marks={"s#0": 4}))
    assert queued.puts == {"b": b"1", "c": b"2"}
    assert queued.deletes == {"a"}
    assert queued.marks == {"s#0": 4}
    assert queued.epoch == 2
    assert not Batch("primary", 1)


async def test_apply_now_applies_fenced_like_apply(stores: tuple[StateStore, StateStore]) -> None:
    """``apply_now`` (the reply outbox's deletions): the same atomic, fenced apply, its command
    written before it returns, answered through a future (on Redis: on a second connection
    once it is up, the first one before)."""
    a, b = stores
    epoch = await a.acquire("primary", "A", 2.0)
    assert epoch is not None
    await a.apply(Batch("primary", epoch, puts={"reply:1:1:S#0": b"r1", "call:1": b"c"}))
    for n in range(3):  # the first on the main connection, later ones on the second
        await a.apply(Batch("primary", epoch, puts={f"reply:1:{n + 2}:S#0": b"r"}))
        assert await a.apply_now(Batch("primary", epoch, deletes={f"reply:1:{n + 2}:S#0"})) == 0
        await asyncio.sleep(0.05)
    assert await a.apply_now(Batch("primary", epoch, deletes={"reply:1:1:S#0"})) == 0
    assert await b.load("primary") == {"call:1": b"c"}
    with pytest.raises(Fenced) as caught:
        await a.apply_now(Batch("primary", epoch + 1, deletes={"call:1"}))
    assert caught.value.current == epoch
    assert await b.load("primary") == {"call:1": b"c"}


async def test_version_counts_the_writes_of_a_slot(stores: tuple[StateStore, StateStore]) -> None:
    """Every apply (and drop) of a slot counts, fenced ones and reads do not; two clients read
    the same version (docs/ha.md "Ready before the lease lapses")."""
    a, b = stores
    empty = await b.version("primary")
    assert empty.writes == 0
    assert empty.incarnation is not None
    ea = await a.acquire("primary", "A", 5.0)
    assert ea is not None
    assert (await b.version("primary")).same(empty)  # a lease is no write
    await a.apply(Batch("primary", ea, puts={"k": b"v"}))
    first = await b.version("primary")
    assert first.writes > empty.writes
    assert (await a.version("primary")).same(first)
    await b.load("primary")
    await b.marks("primary", ["s#0"])
    assert await a.renew("primary", "A", ea, 5.0) is True
    assert (await b.version("primary")).same(first)
    with pytest.raises(Fenced):
        await b.apply(Batch("primary", ea + 1, puts={"k": b"stale"}))
    assert (await b.version("primary")).same(first)
    await a.apply_now(Batch("primary", ea, marks={"s#0": 1}))
    second = await b.version("primary")
    assert second.writes > first.writes
    await a.drop("primary", "A", ea)
    assert (await b.version("primary")).writes > second.writes
    assert (await b.version("other")).writes == 0


async def test_a_version_never_comes_back_after_the_store_lost_it(
    backend: Backend, stores: tuple[StateStore, StateStore]
) -> None:
    """A store restarted empty is another incarnation; a count lost without a restart (Redis
    ``FLUSHALL``, memory ``wipe``) starts past every value seen before."""
    a, _ = stores
    ea = await a.acquire("primary", "A", 5.0)
    assert ea is not None
    for n in range(3):
        await a.apply(Batch("primary", ea, puts={"k": str(n).encode()}))
    seen = await a.version("primary")
    if backend.memory is not None:
        backend.memory.wipe()
    else:
        assert isinstance(a, RedisStore) and backend.server is not None
        with backend.server.client() as client:
            client.flushall()
    assert await a.renew("primary", "A", ea, 5.0) is None  # the store lost the slot
    await a.apply(Batch("primary", ea, puts={"k": b"again"}))
    after = await a.version("primary")
    assert not after.same(seen)
    assert after.writes > seen.writes
