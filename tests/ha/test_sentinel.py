"""The store behind Redis Sentinel (issue 25, gap 6; docs/ha.md §6, docs/store.md §6):
``store = "redis+sentinel://host:26379/<master>/<db>"``. Real processes: a redis-server
primary, its replica (``--replicaof``) and one Sentinel (``redis-server <conf> --sentinel``,
quorum 1, down after 1 s), from ``tests/redisproc.py``. The primary is killed; the Sentinel
promotes the replica; the store asks the Sentinel again at its reconnection and follows it, and,
the new primary being another incarnation (a new ``run_id``), the holder's renewal answers
``None`` and the whole state is written back. A leader node (``ivr-server serve``) does the same
by itself."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from ivr_server.client import HotStandbyDriver, NodeAddress
from ivr_server.store import Batch, StoreUnavailable
from ivr_server.store.redis import RedisStore, _run_id, parse_sentinel_url
from ivr_server.wire import messages as m
from tests.ha.conftest import IVR, Cluster, default_body
from tests.ha.test_failover import new_call
from tests.redisproc import SentinelSet, redis_sentinel

__all__ = ["redis_sentinel"]  # the fixture, imported to be used here

pytestmark = [pytest.mark.xdist_group(__name__), pytest.mark.timeout(60)]

T = TypeVar("T")
FOLLOW_S = 25.0
"""Longest a fail-over may take here: the Sentinel's 1 s down-after, its election and
promotion, the store's reconnections (a loaded 2-core machine)."""


async def _until_answered(call: Callable[[], Awaitable[T]], timeout: float = FOLLOW_S) -> T:
    """``call()`` once the store answers it (``StoreUnavailable`` meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except StoreUnavailable:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


def test_the_url_forms() -> None:
    url = parse_sentinel_url("redis+sentinel://u:p%40ss@s1,s2:26380,[::1]:26381/ivrs/3")
    assert url.sentinels == [("s1", 26379), ("s2", 26380), ("::1", 26381)]
    assert url.master == "ivrs"
    assert url.options == {"username": "u", "password": "p@ss", "db": 3}
    assert url.public() == "redis+sentinel://u@s1:26379,s2:26380,[::1]:26381/ivrs/3"
    url = parse_sentinel_url("redis+sentinel://h/m?db=2&password=x&sentinel_password=y")
    assert url.options == {"password": "x", "db": 2} and url.sentinel_options == {"password": "y"}
    assert RedisStore("redis+sentinel://:pw@h:1/m", site="t").url == "redis+sentinel://h:1/m/0"
    url = parse_sentinel_url("redis+sentinel://u@h1, ,h2/m")  # a user without a password
    assert url.options == {"username": "u", "db": 0}
    assert url.sentinels == [("h1", 26379), ("h2", 26379)]
    url = parse_sentinel_url("redis+sentinel://h/m?sentinel_username=su&sentinel_password=sp")
    assert url.sentinel_options == {"username": "su", "password": "sp"}
    for bad in (
        "redis+sentinel://h",  # no master
        "redis+sentinel:///m",  # no sentinel
        "redis+sentinel://h:x/m",  # bad port
        "redis+sentinel://:26379/m",  # no host
        "redis+sentinel://h/m/x",  # bad db
        "redis+sentinel://h/m?color=red",  # unknown option
        "redis://h/m",  # another scheme
    ):
        with pytest.raises(ValueError):
            parse_sentinel_url(bad)


def test_the_run_id_of_an_info_reply() -> None:
    """The incarnation comes from ``INFO server``'s ``run_id`` line; none when refused (an ACL
    without ``+info`` answers an error) or absent."""
    info = b"# Server\r\nredis_version:7.0.15\r\nrun_id:abc123\r\ntcp_port:6379\r\n"
    assert _run_id(info) == "abc123"
    assert _run_id(b"# Server\r\nredis_version:7.0.15\r\n") is None
    assert _run_id(b"run_id:\r\n") is None
    assert _run_id(None) is None


async def test_the_store_follows_the_promoted_replica(redis_sentinel: SentinelSet) -> None:
    primary, replica = redis_sentinel.primary, redis_sentinel.replica
    store = RedisStore(redis_sentinel.url, site="t", timeout=1.0)
    try:
        epoch = await store.acquire("primary", "A", 30.0)
        assert epoch is not None
        assert store.address == ("127.0.0.1", primary.port)
        before = store.incarnation
        await store.apply(
            Batch("primary", epoch, puts={"call:1": b"one"}), replicas=1, wait_timeout=1.0
        )
        primary.kill()
        redis_sentinel.wait_promoted(FOLLOW_S)
        # the renewal reconnects through the Sentinel: another incarnation, write back
        assert await _until_answered(lambda: store.renew("primary", "A", epoch, 30.0)) is None
        assert store.address == ("127.0.0.1", replica.port)
        assert store.incarnation is not None and store.incarnation != before
        await store.apply(Batch("primary", epoch, puts={"call:1": b"one", "call:2": b"two"}))
        assert await store.load("primary") == {"call:1": b"one", "call:2": b"two"}
        assert await store.renew("primary", "A", epoch, 30.0) is True
        with replica.client() as client:
            assert client.get("ivrs:{t}:s:primary:o:call:2") == b"two"
    finally:
        await store.close()


async def test_no_sentinel_answers(tmp_path: Path) -> None:
    from tests.redisproc import free_port

    store = RedisStore(f"redis+sentinel://127.0.0.1:{free_port()}/ivrs/0", site="t", timeout=1.0)
    with pytest.raises(StoreUnavailable, match="no sentinel named the primary"):
        await store.connect()


async def test_a_leader_follows_a_sentinel_fail_over(
    redis_sentinel: SentinelSet, tmp_path: Path
) -> None:
    """A leader node writing through the Sentinel URL: its primary killed, it finds the promoted
    replica, writes its whole state there and leads on: the call made before the fail-over is in
    the new primary, under the node's lease, and is answered."""
    cluster = Cluster(tmp_path, redis_sentinel.primary)
    try:
        a = cluster.add("a", default_body(), store=redis_sentinel.url, lease=2.0)
        await asyncio.to_thread(a.wait_role, "leader", 15.0)
        assert a.ha()["store_url"] == redis_sentinel.url
        nodes = [NodeAddress("a", "127.0.0.1", a.port)]
        async with await HotStandbyDriver.open(nodes, IVR) as driver:
            call = await new_call(driver, "1")
            await asyncio.to_thread(redis_sentinel.primary.kill)
            await asyncio.to_thread(redis_sentinel.wait_promoted, FOLLOW_S)
            deadline = time.monotonic() + FOLLOW_S
            with redis_sentinel.replica.client() as client:
                while True:  # the lease and the state written on the promoted replica
                    lease = client.get("ivrs:{t}:s:primary:lease")
                    state = client.smembers("ivrs:{t}:s:primary:idx")
                    view = await asyncio.to_thread(a.ha)
                    key = f"call:{IVR}\x1f{call}".encode()
                    if lease and key in state and view["store_state"] == "ok":
                        break
                    assert time.monotonic() < deadline, (lease, state, view, cluster.logs())
                    await asyncio.sleep(0.1)
            assert lease.startswith(b"a:") and view["role"] == "leader", view
            assert view["fenced_count"] == 0
            got = await driver.request(call, m.CallInfoReq(), expect=m.CallInfoResp, timeout=10.0)
            assert isinstance(got.message, m.CallInfoResp) and got.message.CalledNum == "1", got
        log = a.log.read_text(errors="replace")
        assert "another incarnation" in log and "whole state written back" in log
    finally:
        cluster.close()
        print(cluster.logs())
