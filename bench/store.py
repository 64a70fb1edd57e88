#!/usr/bin/env python3
"""The Redis state store's write path and load (issue 25, MODES-AND-HA §3.4, docs/store.md).

Against a real ``redis-server`` (no persistence; with ``--replicas 1`` a real replica,
``--replicaof``), through :class:`ivr_server.store.redis.RedisStore` exactly as a node uses it:

1. **Applies**: batches of 16 / 64 / 256 records of ~600 bytes (one ``FCALL ivrs_apply`` each,
   + ``WAIT 1 50`` in the same write with a replica), with replicas 0 and 1:

   * *one at a time* (each apply awaited before the next: a node's turn waiting for its
     batch): the round trip's p50 / p99 and the client's CPU per record and per batch;
   * *pipelined* (8 applies in flight): records per second and the client's CPU per record.

   The client's CPU is this process's (``time.process_time``): packing, the socket write, the
   reply's parsing, the event loop's share; Redis's own is not in it.
2. **Load**: 50,000 records of ~1 KB written as one batch (a resync: chunked ``FCALL``s in one
   write; its time and the client's CPU), then read back by ``load()`` (``SMEMBERS`` +
   pipelined ``MGET`` of 1,000): the wall time (target: well under 1 s) and the client's CPU;
   Redis's memory per record (``used_memory``).

Processes: this client on CPU 0, Redis (and its replica) on CPU 1 (a 2-core machine).

    python3 bench/store.py              # everything (~30 s)
    python3 bench/store.py --quick      # a smoke test
    python3 bench/store.py --json out.json
    python3 bench/store.py --redispy    # also through redis-py's asyncio client, to compare
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from ivr_server.store import Batch  # noqa: E402
from ivr_server.store.redis import RedisStore  # noqa: E402
from tests.redisproc import RedisProcess  # noqa: E402

SIZES = (16, 64, 256)
RECORD = 600
LOAD_RECORDS = 50_000
LOAD_RECORD = 1000


def _pin(pid: int, cpu: int) -> None:
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, {cpu})


def _records(n: int, size: int, salt: int) -> dict[str, bytes]:
    return {
        f"call:ivr\x1f{salt * 1000 + i:08d}": (b"%08d" % (salt + i)) * (size // 8) for i in range(n)
    }


def _quiet_gc() -> None:
    """The batches built beforehand are frozen out of the collector's way (``gc.freeze``): the
    figures are the store's, not full collections of this script's own objects (a server
    tunes its collector itself, docs/performance.md)."""
    gc.collect()
    gc.freeze()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _sequential(
    store: RedisStore, epoch: int, size: int, count: int, replicas: int
) -> dict[str, Any]:
    batches = [
        Batch("primary", epoch, puts=_records(size, RECORD, i % 50), marks={"drv#0": i})
        for i in range(count)
    ]
    for batch in batches[:20]:  # warm up
        await store.apply(batch, replicas=replicas)
    times: list[float] = []
    _quiet_gc()
    cpu0 = time.process_time()
    for batch in batches:
        t0 = time.perf_counter()
        acked = await store.apply(batch, replicas=replicas)
        times.append(time.perf_counter() - t0)
        assert acked == replicas, acked
    cpu = time.process_time() - cpu0
    gc.unfreeze()
    return {
        "batch": size,
        "replicas": replicas,
        "mode": "one at a time",
        "rt_p50_us": statistics.median(times) * 1e6,
        "rt_p99_us": _pct(times, 0.99) * 1e6,
        "cpu_per_batch_us": cpu / count * 1e6,
        "cpu_per_record_us": cpu / (count * size) * 1e6,
        "records_per_s": count * size / sum(times),
    }


async def _pipelined(
    store: RedisStore, epoch: int, size: int, count: int, replicas: int, depth: int = 8
) -> dict[str, Any]:
    batches = [
        Batch("primary", epoch, puts=_records(size, RECORD, i % 50), marks={"drv#0": i})
        for i in range(count)
    ]
    queue = iter(batches)

    async def worker() -> None:
        for batch in queue:
            await store.apply(batch, replicas=replicas)

    _quiet_gc()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(depth)))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    gc.unfreeze()
    return {
        "batch": size,
        "replicas": replicas,
        "mode": f"{depth} in flight",
        "cpu_per_batch_us": cpu / count * 1e6,
        "cpu_per_record_us": cpu / (count * size) * 1e6,
        "records_per_s": count * size / wall,
    }


async def _redispy(url: str, size: int, count: int, depth: int) -> dict[str, Any]:
    """The same ``FCALL ivrs_apply`` through redis-py's asyncio client (with its hiredis
    parser): what the store would cost written the ordinary way (docs/store.md §4)."""
    import redis.asyncio as aredis

    site = "bench-redispy"
    p = f"ivrs:{{{site}}}:s:primary:"
    probe = RedisStore(url, site=site, timeout=5.0)
    epoch = await probe.acquire("primary", "bench", 600.0)
    assert epoch is not None
    await probe.close()
    client = aredis.Redis.from_url(url)
    keys = (p + "epoch", p + "idx", p + "mark")
    calls = []
    for i in range(count):
        puts = _records(size, RECORD, i % 50)
        flat = [x for pair in puts.items() for x in pair]
        calls.append((p + "o:", epoch, len(puts), 0, *flat, "drv#0", i))

    async def worker(queue: Any) -> None:
        for args in queue:
            await client.fcall("ivrs_apply", 3, *keys, *args)

    for args in calls[:20]:
        await client.fcall("ivrs_apply", 3, *keys, *args)
    _quiet_gc()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    queue = iter(calls)
    await asyncio.gather(*(worker(queue) for _ in range(depth)))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    gc.unfreeze()
    await client.aclose()
    return {
        "batch": size,
        "replicas": 0,
        "mode": f"redis-py, {depth} in flight" if depth > 1 else "redis-py, one at a time",
        "cpu_per_batch_us": cpu / count * 1e6,
        "cpu_per_record_us": cpu / (count * size) * 1e6,
        "records_per_s": count * size / wall,
    }


async def _load(server: RedisProcess, records: int) -> dict[str, Any]:
    store = RedisStore(server.url, site="bench-load", timeout=10.0)
    epoch = await store.acquire("primary", "bench", 60.0)
    assert epoch is not None
    with server.client() as c:
        memory0 = int(c.info("memory")["used_memory"])
    data = _records(records, LOAD_RECORD, 0)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await store.apply(Batch("primary", epoch, puts=data))  # one batch: a resync
    resync_s = time.perf_counter() - t0
    resync_cpu_s = time.process_time() - cpu0
    with server.client() as c:
        memory = int(c.info("memory")["used_memory"]) - memory0
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(3):
        gc.collect()
        cpu0 = time.process_time()
        t0 = time.perf_counter()
        loaded = await store.load("primary")
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - cpu0)
        assert len(loaded) == records
    await store.close()
    return {
        "records": records,
        "record_bytes": LOAD_RECORD,
        "load_s_best": min(walls),
        "load_s_median": statistics.median(walls),
        "load_cpu_s_median": statistics.median(cpus),
        "resync_s": resync_s,
        "resync_cpu_s": resync_cpu_s,
        "redis_bytes_per_record": memory / records,
    }


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    count = 200 if args.quick else 2000
    results: dict[str, Any] = {"applies": [], "load": None}
    primary = RedisProcess()
    replica: RedisProcess | None = None
    try:
        assert primary.pid is not None
        _pin(primary.pid, 1)
        if 1 in args.replicas:
            replica = RedisProcess(replicaof=primary)
            assert replica.pid is not None
            _pin(replica.pid, 1)
            replica.wait_replica_linked()
            primary.wait_replicas_online(1)
        for replicas in args.replicas:
            store = RedisStore(primary.url, site=f"bench{replicas}", timeout=5.0)
            epoch = await store.acquire("primary", "bench", 600.0)
            assert epoch is not None
            for size in SIZES:
                n = max(50, count * 16 // size)
                for result in (
                    await _sequential(store, epoch, size, n, replicas),
                    await _pipelined(store, epoch, size, n, replicas),
                ):
                    results["applies"].append(result)
                    _print_apply(result)
            await store.close()
        if args.redispy:
            for size in (16, 64):
                for depth in (1, 8):
                    result = await _redispy(primary.url, size, max(50, count * 16 // size), depth)
                    results["applies"].append(result)
                    _print_apply(result)
        results["load"] = await _load(primary, 5000 if args.quick else LOAD_RECORDS)
        load = results["load"]
        print(
            f"load: {load['records']:,} records of {load['record_bytes']} B in "
            f"{load['load_s_median'] * 1000:.0f} ms (best {load['load_s_best'] * 1000:.0f} ms), "
            f"client CPU {load['load_cpu_s_median'] * 1000:.0f} ms; written as one batch (a resync) in "
            f"{load['resync_s'] * 1000:.0f} ms, client CPU {load['resync_cpu_s'] * 1000:.0f} ms; "
            f"Redis memory {load['redis_bytes_per_record']:.0f} B per record"
        )
    finally:
        if replica is not None:
            replica.cleanup()
        primary.cleanup()
    return results


def _print_apply(r: dict[str, Any]) -> None:
    line = (
        f"batch {r['batch']:>3} x {RECORD} B, replicas {r['replicas']}, {r['mode']:<24}: "
        f"client CPU {r['cpu_per_record_us']:5.2f} us/record, {r['cpu_per_batch_us']:7.1f} us/batch, "
        f"{r['records_per_s']:>9,.0f} records/s"
    )
    if "rt_p50_us" in r:
        line += f", round trip p50 {r['rt_p50_us']:.0f} us, p99 {r['rt_p99_us']:.0f} us"
    print(line, flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, 5,000 records loaded")
    ap.add_argument("--replicas", type=int, nargs="+", default=[0, 1], choices=[0, 1])
    ap.add_argument("--json", type=Path, help="write the results there")
    ap.add_argument(
        "--redispy", action="store_true", help="also the same applies through redis-py's client"
    )
    args = ap.parse_args()
    _pin(0, 0)
    results = asyncio.run(_run(args))
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
