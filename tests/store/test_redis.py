"""What only the Redis store has: replica acknowledgement (``WAIT``), time-outs of a hung
server, the URL forms and credentials, the function library's versions and its reload while
commands are in flight (docs/store.md)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ivr_server.store import Batch, Fenced, StoreError, StoreUnavailable, open_store
from ivr_server.store.functions import LIBRARY, VERSION
from ivr_server.store.redis import RedisStore
from tests.redisproc import RedisPair, RedisProcess, free_port

pytestmark = pytest.mark.timeout(30)


async def _leader(store: RedisStore, slot: str = "primary") -> int:
    epoch = await store.acquire(slot, "A", 5.0)
    assert epoch is not None
    return epoch


async def test_replica_acknowledges(redis_pair: RedisPair) -> None:
    store = RedisStore(redis_pair.url, site="t")
    try:
        epoch = await _leader(store)
        batch = Batch("primary", epoch, puts={"call:1": b"x" * 600})
        assert await store.apply(batch, replicas=1, wait_timeout=1.0) == 1
        with redis_pair.replica.client() as replica:
            assert replica.get("ivrs:{t}:s:primary:o:call:1") == b"x" * 600
        # many in flight, each with its WAIT
        results = await asyncio.gather(
            *(
                store.apply(Batch("primary", epoch, puts={f"c{i}": b"y"}), replicas=1)
                for i in range(50)
            )
        )
        assert results == [1] * 50
    finally:
        await store.close()


async def test_no_replica_returns_zero_after_the_wait(redis_server: RedisProcess) -> None:
    store = RedisStore(redis_server.url, site="t")
    try:
        epoch = await _leader(store)
        started = time.monotonic()
        acked = await store.apply(
            Batch("primary", epoch, puts={"k": b"v"}), replicas=1, wait_timeout=0.05
        )
        elapsed = time.monotonic() - started
        assert acked == 0
        assert 0.04 <= elapsed < 0.9
        assert await store.load("primary") == {"k": b"v"}  # applied all the same
    finally:
        await store.close()


async def test_a_hung_server_times_out_then_recovers(redis_server: RedisProcess) -> None:
    store = RedisStore(redis_server.url, site="t", timeout=0.3)
    try:
        epoch = await _leader(store)
        redis_server.pause()
        started = time.monotonic()
        calls = [
            store.apply(Batch("primary", epoch, puts={"k": str(i).encode()})) for i in range(5)
        ]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        elapsed = time.monotonic() - started
        assert all(isinstance(o, StoreUnavailable) for o in outcomes), outcomes
        assert 0.25 <= elapsed < 1.5
        with pytest.raises(StoreUnavailable):  # still hung: the new connection times out too
            await store.holder("primary")
        redis_server.resume()
        assert await store.renew("primary", "A", epoch, 5.0) is True
        await store.apply(Batch("primary", epoch, puts={"k": b"after"}))
        assert (await store.load("primary"))["k"] == b"after"
    finally:
        redis_server.resume()
        await store.close()


async def test_connection_refused(redis_server: RedisProcess) -> None:
    redis_server.kill()
    store = RedisStore(redis_server.url, site="t", timeout=0.5)
    with pytest.raises(StoreUnavailable):
        await store.connect()
    with pytest.raises(StoreUnavailable):
        await store.apply(Batch("primary", 1, puts={"k": b"v"}))
    redis_server.start()
    await store.connect()
    assert await store.acquire("primary", "A", 1.0) is not None
    await store.close()
    with pytest.raises(StoreUnavailable):  # close() fails the commands in flight
        await asyncio.wait_for(_closed_call(redis_server), 5)


async def _closed_call(server: RedisProcess) -> None:
    store = RedisStore(server.url, site="t", timeout=2.0)
    await store.connect()
    task = asyncio.ensure_future(store.load("x"))
    await asyncio.sleep(0)
    await store.close()
    await task


async def test_url_forms(redis_server: RedisProcess) -> None:
    urls = [
        f"redis://127.0.0.1:{redis_server.port}",
        f"redis://127.0.0.1:{redis_server.port}/3",
        f"redis://127.0.0.1:{redis_server.port}?db=4",
        f"unix://{redis_server.unix_path}",
        f"unix://{redis_server.unix_path}?db=5",
    ]
    for db, url in zip([0, 3, 4, 0, 5], urls, strict=True):
        store = open_store(url, site=f"s{db}", timeout=1.0)
        assert isinstance(store, RedisStore)
        assert store.url == url
        epoch = await store.acquire("primary", "A", 5.0)
        assert epoch is not None
        await store.apply(Batch("primary", epoch, puts={"k": url.encode()}))
        await store.close()
        with redis_server.client(db=db) as c:
            assert c.get(f"ivrs:{{s{db}}}:s:primary:o:k") == url.encode()


async def test_password_and_user() -> None:
    server = RedisProcess(extra=("--requirepass", "s3cret"))
    try:
        url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        store = RedisStore(url, site="t")
        assert "s3cret" not in store.url
        assert store.url == f"redis://127.0.0.1:{server.port}/0"
        assert await store.acquire("primary", "A", 1.0) is not None
        await store.close()
        user = RedisStore(f"redis://default:s3cret@127.0.0.1:{server.port}/0", site="t")
        assert user.url == f"redis://default@127.0.0.1:{server.port}/0"
        assert await user.holder("primary") is not None
        await user.close()
        query = RedisStore(f"redis://127.0.0.1:{server.port}/0?password=s3cret", site="t")
        assert "s3cret" not in query.url
        assert await query.holder("primary") is not None
        await query.close()
        wrong = RedisStore(f"redis://:nope@127.0.0.1:{server.port}/0", site="t")
        with pytest.raises(StoreError, match="WRONGPASS"):
            await wrong.connect()
        await wrong.close()
    finally:
        server.cleanup()


async def test_an_older_library_is_replaced_a_newer_kept(redis_server: RedisProcess) -> None:
    older = LIBRARY.replace(f"local VERSION = {VERSION}", "local VERSION = 0")
    with redis_server.client() as c:
        c.execute_command("FUNCTION", "LOAD", "REPLACE", older)
        assert c.execute_command("FCALL", "ivrs_version", 0) == 0
    store = RedisStore(redis_server.url, site="t")
    await store.connect()
    await store.close()
    newer = LIBRARY.replace(f"local VERSION = {VERSION}", f"local VERSION = {VERSION + 1}")
    with redis_server.client() as c:
        assert c.execute_command("FCALL", "ivrs_version", 0) == VERSION
        c.execute_command("FUNCTION", "LOAD", "REPLACE", newer)
    store = RedisStore(redis_server.url, site="t")
    await store.connect()
    await store.close()
    with redis_server.client() as c:
        assert c.execute_command("FCALL", "ivrs_version", 0) == VERSION + 1


async def test_a_version_3_client_apply_counts_the_write(redis_server: RedisProcess) -> None:
    """A node of the previous release calls ``ivrs_apply`` and ``ivrs_drop`` with three keys (no
    write count's key): the library of version 4 counts its writes all the same, on the key
    it derives from the epoch's, so a standby building ahead sees them (rolling upgrades)."""
    store = RedisStore(redis_server.url, site="t")
    await store.connect()
    epoch = await _leader(store)
    before = await store.version("primary")
    p = "ivrs:{t}:s:primary:"
    with redis_server.client() as c:
        keys = (p + "epoch", p + "idx", p + "mark")
        assert c.execute_command("FCALL", "ivrs_apply", 3, *keys, p + "o:", epoch, 1, 0, "k", "v")
        after_apply = await store.version("primary")
        assert c.execute_command("FCALL", "ivrs_drop", 3, *keys, p + "o:", epoch) == 1
    after_drop = await store.version("primary")
    assert before.writes < after_apply.writes < after_drop.writes
    assert after_drop.incarnation == before.incarnation
    await store.close()


async def test_library_lost_while_applies_are_in_flight(redis_server: RedisProcess) -> None:
    """The library vanishes (FUNCTION FLUSH; a store restarted empty loses it too) while the
    connection lives: the failed commands are sent again once, after the library is loaded
    again, in their order, and the commands issued meanwhile wait behind them."""
    store = RedisStore(redis_server.url, site="t")
    try:
        epoch = await _leader(store)
        with redis_server.client() as c:
            c.execute_command("FUNCTION", "FLUSH")
        first = [
            asyncio.ensure_future(store.apply(Batch("primary", epoch, puts={"k": b"%d" % i})))
            for i in range(20)
        ]
        await asyncio.sleep(0)  # the first ones are written; the rest come while reloading
        later = [
            asyncio.ensure_future(store.apply(Batch("primary", epoch, puts={"k": b"%d" % i})))
            for i in range(20, 40)
        ]
        assert await asyncio.gather(*first, *later) == [0] * 40
        assert await store.load("primary") == {"k": b"39"}
    finally:
        await store.close()


async def test_min_replicas_to_write_refusal_is_unavailability(
    redis_server: RedisProcess,
) -> None:
    """``min-replicas-to-write`` unmet (the advice of docs/store.md when a replica must hold every
    write): Redis refuses writes with NOREPLICAS, the store is unavailable, not broken."""
    store = RedisStore(redis_server.url, site="t")
    try:
        epoch = await _leader(store)
        with redis_server.client() as c:
            c.config_set("min-replicas-to-write", 1)
        with pytest.raises(StoreUnavailable, match="NOREPLICAS"):
            await store.apply(Batch("primary", epoch, puts={"k": b"v"}))
        with redis_server.client() as c:
            c.config_set("min-replicas-to-write", 0)
        assert await store.apply(Batch("primary", epoch, puts={"k": b"v"})) == 0
    finally:
        await store.close()


async def test_load_many_records(redis_server: RedisProcess) -> None:
    store = RedisStore(redis_server.url, site="t", timeout=5.0)
    try:
        epoch = await _leader(store)
        records = {f"call:ivr\x1f{i}": bytes([i % 256]) * 1000 for i in range(5000)}
        items = list(records.items())
        for start in range(0, len(items), 500):
            await store.apply(Batch("primary", epoch, puts=dict(items[start : start + 500])))
        assert await store.load("primary") == records
    finally:
        await store.close()


async def test_callers_during_the_connect_share_it(redis_server: RedisProcess) -> None:
    store = RedisStore(redis_server.url, site="t")
    try:
        epoch, lease, leases = await asyncio.gather(
            store.acquire("primary", "A", 5.0), store.holder("primary"), store.leases()
        )
        assert epoch is not None
        assert lease is None or lease.epoch == epoch
        assert isinstance(leases, list)
        with redis_server.client() as c:
            clients = c.client_list()
        assert len([x for x in clients if x.get("cmd") != "client|list"]) == 1
    finally:
        await store.close()


async def test_a_large_batch_is_written_in_chunks(redis_server: RedisProcess) -> None:
    store = RedisStore(redis_server.url, site="t")
    try:
        epoch = await _leader(store)
        first = {f"k{i}": b"%d" % i for i in range(1500)}
        await store.apply(Batch("primary", epoch, puts=first))
        later = Batch(
            "primary",
            epoch,
            puts={f"k{i}": b"new" for i in range(1000, 2300)},
            deletes={f"k{i}" for i in range(900)},
            marks={f"s#{i}": i for i in range(10)},
        )
        with redis_server.client() as c:
            c.config_resetstat()
        assert await store.apply(later, replicas=1, wait_timeout=0.01) == 0
        with redis_server.client() as c:
            assert c.info("commandstats")["cmdstat_fcall"]["calls"] >= 4
        expected = {f"k{i}": b"%d" % i for i in range(900, 1000)}
        expected.update({f"k{i}": b"new" for i in range(1000, 2300)})
        assert await store.load("primary") == expected
        assert await store.marks("primary", ["s#9"]) == {"s#9": 9}
        with pytest.raises(Fenced):
            await store.apply(Batch("primary", epoch + 1, puts=dict(first)))
        assert await store.load("primary") == expected
    finally:
        await store.close()


def test_on_uvloop(redis_server: RedisProcess) -> None:
    """The server runs on uvloop: its transports are not asyncio's."""
    uvloop = pytest.importorskip("uvloop")

    async def scenario() -> None:
        for site, url in (("tcp", redis_server.url), ("unix", redis_server.unix_url)):
            store = RedisStore(url, site=site, timeout=0.3)
            epoch = await _leader(store)
            await asyncio.gather(
                *(store.apply(Batch("primary", epoch, puts={"k": b"%d" % i})) for i in range(50))
            )
            await store.apply(Batch("primary", epoch, puts={f"b{i}": b"y" for i in range(1200)}))
            loaded = await store.load("primary")
            assert loaded["k"] == b"49"
            assert len(loaded) == 1201
            with pytest.raises(Fenced):
                await store.apply(Batch("primary", epoch - 1, puts={"k": b"x"}))
            redis_server.pause()
            try:
                with pytest.raises(StoreUnavailable):
                    await store.holder("primary")
            finally:
                redis_server.resume()
            assert await store.renew("primary", "A", epoch, 5.0) is True
            await store.close()

    uvloop.run(scenario())


ACL_COMMANDS = [
    "+fcall",
    "+fcall_ro",
    "+function|load",
    "+wait",
    "+smembers",
    "+mget",
    "+hmget",
    "+select",
    "+ping",
    "+get",
    "+set",
    "+mset",
    "+del",
    "+sadd",
    "+srem",
    "+hset",
    "+incr",
    "+exists",
    "+pttl",
    "+time",
    "+info",
    "+hgetall",
    "+hget",
    "+hdel",
    "+role",
]


async def test_an_acl_user_limited_as_docs_store_md_says(redis_server: RedisProcess) -> None:
    with redis_server.client() as c:
        c.execute_command(
            "ACL",
            "SETUSER",
            "ivrs",
            "on",
            ">pw",
            "~ivrs:*",
            "resetchannels",
            "-@all",
            *ACL_COMMANDS,
        )
    store = RedisStore(f"redis://ivrs:pw@127.0.0.1:{redis_server.port}/0", site="acl")
    try:
        epoch = await _leader(store)
        await store.apply(Batch("primary", epoch, puts={"k": b"v"}, deletes={"z"}, marks={"m": 1}))
        await store.apply(Batch("primary", epoch, puts={f"b{i}": b"v" for i in range(600)}))
        assert len(await store.load("primary")) == 601
        assert await store.marks("primary", ["m"]) == {"m": 1}
        assert [x.node for x in await store.leases()] == ["A"]
        assert await store.slots() == ["primary"]
        assert await store.renew("primary", "A", epoch, 5.0) is True
        assert store.incarnation is not None  # INFO server: the server's run_id
        await store.heartbeat("A", b"{}", 5.0)
        assert list(await store.presence()) == ["A"]
        await store.drop("primary", "A", epoch)
        await store.release("primary", "A", epoch)
        assert await store.holder("primary") is None
    finally:
        await store.close()
    with redis_server.client() as c:  # and it may not touch another site's keys
        c.execute_command("ACL", "SETUSER", "ivrs", "resetkeys", "~other:*")
    store = RedisStore(f"redis://ivrs:pw@127.0.0.1:{redis_server.port}/0", site="acl")
    try:
        with pytest.raises(StoreError):
            await store.acquire("primary", "A", 5.0)
    finally:
        await store.close()


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed (to make a certificate)")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    argv = [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key)]
    argv += ["-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1"]
    argv += ["-addext", "subjectAltName=IP:127.0.0.1"]
    subprocess.run(argv, check=True, capture_output=True)
    return cert, key


async def test_tls(certificate: tuple[Path, Path]) -> None:
    """``rediss://``: verified against a CA file, or not verified (``ssl_cert_reqs=none``)."""
    cert, key = certificate
    tls_port = free_port()
    tls = ("--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key))
    server = RedisProcess(extra=(*tls, "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"))
    try:
        base = f"rediss://127.0.0.1:{tls_port}/0"
        for url in (f"{base}?ssl_ca_certs={cert}", f"{base}?ssl_cert_reqs=none"):
            store = RedisStore(url, site="tls")
            epoch = await store.acquire("primary", "A", 5.0)
            assert epoch is not None
            await store.apply(Batch("primary", epoch, puts={"k": url.encode()}))
            assert await store.load("primary") == {"k": url.encode()}
            await store.release("primary", "A", epoch)
            await store.close()
        untrusted = RedisStore(base, site="tls")  # the system's CAs do not know this one
        with pytest.raises(StoreUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusted.connect()
        await untrusted.close()
    finally:
        server.cleanup()


async def test_thousands_of_marks_in_one_batch(redis_server: RedisProcess) -> None:
    """Lua's unpack() is bounded (~8,000 values): the library calls Redis in runs of 4,000."""
    store = RedisStore(redis_server.url, site="t")
    try:
        epoch = await _leader(store)
        marks = {f"IVR_{i}#0": i for i in range(9000)}
        await store.apply(Batch("primary", epoch, puts={"k": b"v"}, marks=marks))
        assert await store.marks("primary", list(marks)) == marks
        big = {f"k{i}": b"v" for i in range(3000)}
        await store.apply(Batch("primary", epoch, puts=big, marks={"IVR_1#0": 7}))
        assert len(await store.load("primary")) == 3001
        assert await store.marks("primary", ["IVR_1#0"]) == {"IVR_1#0": 7}
    finally:
        await store.close()
