#!/usr/bin/env python3
"""Who stalls the event loop: the server's own work, its garbage collections, or the host (issue 25, gap 5).

The p99 of an open loop (bench/ha.py: 1,000 calls/s) is decided by the few moments when a reply
waits: for the server's loop, busy with something else (a garbage collection, a periodic task),
or for the core (the kernel ran another process), or in the load generator, whose own stalls
count as the server's latency. Absolute p99s on a shared 2-core VM are noise; this instrument
says why each stall happened, so that a cause can be removed and checked on a busy machine.

In each process measured (the server and the generator), a :class:`Probe`:

* times every garbage collection (``gc.callbacks``): generation, duration, objects collected;
* arms a 1 ms timer on the event loop and measures how late it runs (the loop's lag);
* reads the main thread's ``/proc/.../schedstat`` at every probe: the CPU time the thread ran and
  the time it waited on a run queue (runnable, but the kernel gave the core to another process)
  since the previous probe.

A stall (a probe more than ``--threshold`` late, 2 ms by default) is then put down to one cause:
``gc`` (collections took at least half of it), ``host`` (the thread waited on a run queue for at
least half of it), ``work`` (it ran: the server's own code, not a collection), or ``off-cpu``
(neither ran nor waited: a blocking call, a page fault, the probe's timer resolution).

    python3 bench/stalls.py                       # variants before, now: bench/ha.py's open loop, mode off
    python3 bench/stalls.py --variant now --variant alt --repeat 2 --alt-python OTHER/bin/python
                                                  # this build against another, alternated, same run
    python3 bench/stalls.py --census              # the server's tracked objects once the load is over
    python3 bench/stalls.py --idle 10             # the server idle: what the host alone does

Results: docs/performance.md §13 ("Stalls").
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import gc
import json
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

HERE: Final = Path(__file__).resolve().parent
PROBE_INTERVAL: Final = 0.001
"""The lag probe's period (uvloop's timers count whole milliseconds)."""
STALL: Final = 0.002
"""A probe this late is a stall (the p99 target of issue 25)."""
KEEP: Final = 0.001
"""Probes at least this late are kept one by one (the rest only counted)."""


@dataclass
class Probe:
    """The instruments of one process (see the module's docstring); :meth:`start` on its loop."""

    label: str
    gcs: list[tuple[float, int, float, int, float]] = field(default_factory=list)
    """(start, generation, seconds, objects collected, CPU seconds) of every collection: on a
    busy host a collection's wall time includes the moments the kernel ran another process,
    its CPU time does not."""
    young: bool = False
    """Look at what each young collection is about to walk (``STALLS_YOUNG``: diagnostic)."""
    young_big: list[tuple[float, int, str, int]] = field(default_factory=list)
    """(when, objects in generation 0, the type and length of its biggest container) of the young
    collections that held a container of 1,000 items or more, or 2,000 objects or more."""
    marks: dict[str, float] = field(default_factory=dict)
    """Moments of the run by name (the generator's: ``load``, ``done``)."""
    census: dict[str, int] = field(default_factory=dict)
    """The objects the collector tracks (not frozen), by type, when :meth:`take_census` ran."""
    lates: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    """(when, lateness, ran, waited, in collections) of every probe at least KEEP late."""
    probes: int = 0
    lag_total: float = 0.0
    _gc_start: float = 0.0
    _gc_cpu: float = 0.0
    _gc_since: float = 0.0
    _fd: int = -1
    _last: tuple[int, int] = (0, 0)
    _loop: asyncio.AbstractEventLoop | None = None
    _started: float = 0.0
    _stopped: float = 0.0

    def install_gc(self) -> None:
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        now, cpu = time.perf_counter(), time.thread_time()
        if phase == "start":
            if self.young and info["generation"] == 0:
                self._look_young()
            self._gc_start, self._gc_cpu = time.perf_counter(), time.thread_time()
            return
        took = now - self._gc_start
        self._gc_since += took
        self.gcs.append(
            (self._gc_start, info["generation"], took, info["collected"], cpu - self._gc_cpu)
        )

    def _look_young(self) -> None:
        """What a young collection is about to walk: its objects, and the biggest container
        among them (a collection walks every item of every container it holds)."""
        objs = gc.get_objects(0)
        big, size = "", 0
        for obj in objs:
            if isinstance(obj, (list, dict, tuple, set, deque)) and len(obj) > size:
                big, size = type(obj).__qualname__, len(obj)
        if size >= 1000 or len(objs) >= 2000:
            self.young_big.append((time.perf_counter(), len(objs), big, size))

    def take_census(self) -> None:
        """Count the tracked objects by type and time full collections (tens of milliseconds:
        once the load is over). The probe stops recording first: these are not the server's."""
        self.stop()
        counts: dict[str, int] = {}
        for obj in gc.get_objects():
            name = type(obj).__qualname__
            if type(obj) is tuple:  # what keeps a tuple tracked: the types it holds
                name = f"tuple({', '.join(type(x).__qualname__ for x in obj[:4])})"
            counts[name] = counts.get(name, 0) + 1
        self.census = {"(tracked)": sum(counts.values())}
        took = []
        for _ in range(7):  # what one full collection of this heap costs: the least of 7
            start = time.thread_time()
            gc.collect()
            took.append(time.thread_time() - start)
        self.census["(first full collection, µs)"] = round(took[0] * 1e6)
        self.census["(full collection, µs, least of 7)"] = round(min(took) * 1e6)
        self.census |= dict(sorted(counts.items(), key=lambda kv: -kv[1])[:40])

    def _schedstat(self) -> tuple[int, int]:
        if self._fd < 0:
            return (0, 0)
        run, wait, _ = os.pread(self._fd, 128, 0).split()
        return int(run), int(wait)

    def start(self) -> None:
        """Start the lag probe on the running loop (and the collections' timing, if not yet)."""
        if self._on_gc not in gc.callbacks:
            self.install_gc()
        with contextlib.suppress(OSError):
            self._fd = os.open(
                f"/proc/self/task/{threading.get_native_id()}/schedstat", os.O_RDONLY
            )
        self._loop = asyncio.get_running_loop()
        self._last = self._schedstat()
        self._started = time.perf_counter()
        self._arm()

    def stop(self) -> None:
        """Stop recording (the lag probe and the collections); :meth:`data` covers until now."""
        self._stopped = time.perf_counter()
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)

    def _arm(self) -> None:
        assert self._loop is not None
        if self._stopped:
            return
        self._loop.call_later(PROBE_INTERVAL, self._tick, time.perf_counter() + PROBE_INTERVAL)

    def _tick(self, due: float) -> None:
        if self._stopped:
            return
        now = time.perf_counter()
        late = max(0.0, now - due)
        stat = self._schedstat()
        ran, waited = (stat[0] - self._last[0]) / 1e9, (stat[1] - self._last[1]) / 1e9
        self._last = stat
        self.probes += 1
        self.lag_total += late
        if late >= KEEP:
            self.lates.append((now, late, ran, waited, self._gc_since))
        self._gc_since = 0.0
        self._arm()

    def reset(self) -> None:
        """Forget what was seen so far (start-up)."""
        self.gcs.clear()
        self.lates.clear()
        self.young_big.clear()
        self.probes, self.lag_total = 0, 0.0
        self._started = time.perf_counter()

    def data(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "seconds": (self._stopped or time.perf_counter()) - self._started
            if self._started
            else 0.0,
            "started": self._started,
            "marks": self.marks,
            "probes": self.probes,
            "lag_total": self.lag_total,
            "gcs": self.gcs,
            "lates": self.lates,
            "threshold": list(gc.get_threshold()),
            "frozen": gc.get_freeze_count(),
            "census": self.census,
            "young_big": self.young_big,
        }

    def dump(self, path: str) -> None:
        Path(path).write_text(json.dumps(self.data()))


def cause(late: float, ran: float, waited: float, in_gc: float) -> str:
    """What a stall of ``late`` seconds is put down to (the module's docstring)."""
    if in_gc >= late / 2:
        return "gc"
    if waited >= late / 2:
        return "host"
    if ran >= late / 2:
        return "work"
    return "off-cpu"


CAUSES: Final = ("gc", "host", "work", "off-cpu")
BACKLOG: Final = 0.005
"""A ``work`` stall that starts within this long of the end of a ``host`` or ``gc`` one is put
down to ``backlog``: the requests that arrived meanwhile, handled in one turn."""


def summary(data: dict[str, Any], threshold: float = STALL) -> dict[str, Any]:
    """Counts and worst of the stalls by cause, and the collections by generation."""
    stalls = [row for row in data["lates"] if row[1] >= threshold]
    by: dict[str, list[float]] = {c: [] for c in (*CAUSES, "backlog")}
    previous = -1.0  # when the last host or gc stall ended
    for now, late, ran, waited, in_gc in data["lates"]:
        why = cause(late, ran, waited, in_gc)
        if why == "work" and now - late - PROBE_INTERVAL - previous < BACKLOG:
            why = "backlog"  # the work that piled up while the loop could not run
        if why in ("gc", "host"):
            previous = now
        if late >= threshold:
            by[why].append(late)
    gens: dict[int, list[float]] = {0: [], 1: [], 2: []}
    cpus: dict[int, list[float]] = {0: [], 1: [], 2: []}
    for _, gen, took, _, cpu in data["gcs"]:
        gens[gen].append(took)
        cpus[gen].append(cpu)
    return {
        "seconds": data["seconds"],
        "stalls": len(stalls),
        "stall_seconds": sum(row[1] for row in stalls),
        "by_cause": {c: (len(v), max(v, default=0.0), sum(v)) for c, v in by.items()},
        "gc": {g: (len(v), max(v, default=0.0), sum(v)) for g, v in gens.items()},
        "gc_cpu": {g: (len(v), max(v, default=0.0), sum(v)) for g, v in cpus.items()},
        "gc_over": sum(1 for row in data["gcs"] if row[4] >= threshold),
    }


def print_summary(data: dict[str, Any], threshold: float = STALL) -> dict[str, Any]:
    s = summary(data, threshold)
    secs = max(s["seconds"], 1e-9)
    causes = ", ".join(
        f"{c} {n} (max {worst * 1e3:.1f} ms)" for c, (n, worst, _) in s["by_cause"].items() if n
    )
    gcs = ", ".join(
        f"gen{g} {n} (CPU max {worst * 1e3:.2f} ms, total {total * 1e3:.0f} ms; wall max "
        f"{s['gc'][g][1] * 1e3:.2f} ms)"
        for g, (n, worst, total) in s["gc_cpu"].items()
        if n
    )
    print(
        f"    {data['label']:<24} {s['seconds']:5.1f} s: {s['stalls']} stalls >= "
        f"{threshold * 1e3:g} ms ({s['stalls'] / secs:.1f}/s, {s['stall_seconds'] * 1e3:.0f} ms)"
        f"{': ' + causes if causes else ''}\n"
        f"    {'':<24} collections: {gcs or 'none'}; {s['gc_over']} of them >= "
        f"{threshold * 1e3:g} ms; thresholds {tuple(data['threshold'])}, "
        f"{data['frozen']:,} objects frozen"
    )
    start = data.get("marks", {}).get("load") or data.get("started", 0.0)
    worst = sorted(data["lates"], key=lambda row: -row[1])[:3]
    if worst and start:
        text = ", ".join(
            f"{late * 1e3:.1f} ms at +{now - late - start:.2f} s ({cause(late, ran, waited, in_gc)})"
            for now, late, ran, waited, in_gc in worst
        )
        done = data.get("marks", {}).get("done")
        end = f" (the load from +0, the run done at +{done - start:.2f} s)" if done else ""
        print(f"    {'':<24} longest: {text}{end}")
    slow_gcs = sorted(data["gcs"], key=lambda row: -row[4])[:2]
    if slow_gcs and start:
        text = ", ".join(
            f"gen{gen} at +{at - start:.2f} s: {cpu * 1e3:.1f} ms CPU, {found:,} objects collected"
            for at, gen, _, found, cpu in slow_gcs
        )
        print(f"    {'':<24} longest collections: {text}")
    if data.get("young_big"):
        text = ", ".join(
            f"+{at - start:.2f} s: {n:,} objects, a {kind} of {size:,}"
            for at, n, kind, size in sorted(data["young_big"], key=lambda row: -row[1])[:4]
        )
        print(f"    {'':<24} the biggest young collections: {text}")
    if data.get("census"):
        top = ", ".join(f"{k} {v:,}" for k, v in list(data["census"].items())[:25])
        print(f"    {'':<24} census: {top}")
    return s


# --------------------------------------------------------------------------- the server, wrapped


def wrapped_server(out: str, argv: list[str]) -> None:
    """``ivr-server`` with a :class:`Probe` in its process, written to ``out`` when it exits.

    The probe starts on the server's own loop: the CLI runs its coroutine with ``uvloop.run``
    (or ``asyncio.run``), looked up when called, so both are wrapped here. ``STALLS_GC`` in the
    environment changes the server's collector once it has started (``default``: the
    interpreter's thresholds and nothing frozen, as before issue 25's settings)."""
    probe = Probe("server", young=bool(os.environ.get("STALLS_YOUNG")))
    probe.install_gc()
    if os.environ.get("STALLS_SLOW"):
        _time_callbacks(probe)
    atexit.register(probe.dump, out)

    def wrap(run: Callable[..., Any]) -> Callable[..., Any]:
        def runner(coro: Coroutine[Any, Any, Any], *args: Any, **kwargs: Any) -> Any:
            async def main() -> Any:
                probe.start()
                task = asyncio.ensure_future(coro)
                asyncio.get_running_loop().call_later(1.0, _server_gc_variant, probe)
                return await task

            return run(main(), *args, **kwargs)

        return runner

    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.run = wrap(uvloop.run)
    asyncio.run = wrap(asyncio.run)
    from ivr_server.cli import main

    sys.argv = ["ivr-server", *argv]
    main()


def _time_callbacks(probe: Probe) -> None:
    """Diagnostic (``STALLS_SLOW``, the pure-Python build only): asyncio's own loop instead of
    uvloop, each callback of it timed (thread CPU time); those of 2 ms or more are kept, with
    what they were, in :attr:`Probe.census` (the slowest first)."""
    sys.modules["uvloop"] = None  # type: ignore[assignment]  # ImportError: asyncio's loop
    run = asyncio.events.Handle._run
    slow: dict[str, list[float]] = {}

    def timed(handle: asyncio.events.Handle) -> None:
        start = time.thread_time()
        run(handle)
        took = time.thread_time() - start
        if took >= STALL:
            callback = getattr(handle, "_callback", handle)
            task = getattr(callback, "__self__", None)  # a task's step: name its coroutine
            coro = task.get_coro() if isinstance(task, asyncio.Task) else None
            what = getattr(coro, "__qualname__", None) or repr(callback)[:60]
            slow.setdefault(what, []).append(took)
            probe.census = {
                f"{k} (max {max(v) * 1e3:.1f} ms)": len(v)
                for k, v in sorted(slow.items(), key=lambda kv: -max(kv[1]))
            }

    asyncio.events.Handle._run = timed  # type: ignore[method-assign,assignment]


def _server_gc_variant(probe: Probe) -> None:
    """The ``STALLS_GC`` variant, applied after start-up (``serve`` has settled the heap); what
    the probe saw until then (start-up, the settling collection) is forgotten."""
    probe.reset()
    census = float(os.environ.get("STALLS_CENSUS", "0") or 0)
    if census:
        asyncio.get_running_loop().call_later(census, probe.take_census)
    variant = os.environ.get("STALLS_GC", "")
    if variant == "default":
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)
    elif variant.startswith("threshold="):
        gc.set_threshold(*(int(x) for x in variant.split("=", 1)[1].split(",")))


# --------------------------------------------------------------------------- the runs


CENSUS: list[float] = [0.0]
"""``--census``: seconds after start-up when the server counts its tracked objects (0: never):
once the load is over, so that it does not stall the replies measured."""
CENSUS_WAIT: Final = 3.0
"""Seconds after the load's end when the census runs (the generator waits for it)."""


ALT_PYTHON: list[str] = []
"""``--alt-python``: the interpreters (and so the installed builds) of ``alt`` and ``alt2``."""
SLOW: list[bool] = [False]
"""``--slow``: the server's slow callbacks are listed (:func:`_time_callbacks`)."""


def start_wrapped(config: Path, log: Path, out: Path, server_gc: str, python: str = "") -> Any:
    """bench/ha.py's ``start_node`` (pinned to CPU 0), the server run by :func:`wrapped_server`."""
    import shutil
    import subprocess

    from common import free_port
    from ha import Server, wait_port

    port, api = free_port(), free_port()
    cmd = [python or sys.executable, str(Path(__file__).resolve()), "--wrap", str(out), "--"]
    cmd += ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    cmd += ["--api-listen", f"127.0.0.1:{api}", "--log-level", "WARNING"]
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    env = {**os.environ, "IVR_SERVER_API_TOKEN": "bench", "STALLS_GC": server_gc}
    env["STALLS_CENSUS"] = str(CENSUS[0])
    env["STALLS_SLOW"] = "1" if SLOW[0] else ""
    with log.open("ab") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env=env)
    wait_port(proc, api, 120)
    wait_port(proc, port, 120)
    return Server(proc, port, api, log)


@dataclass
class Variant:
    """One measurement: the server's collector (``STALLS_GC``) and the generator's."""

    name: str
    server_gc: str
    generator_gc: str  # "on" (bench/ha.py until now), "off" (frozen and disabled, bench_fullcall's)
    alt: int = 0  # n > 0: the server run by the n-th --alt-python (another build, another tree)


VARIANTS: Final = {
    "before": Variant("before", "default", "on"),
    "server-default": Variant("server-default", "default", "off"),
    "generator-on": Variant("generator-on", "", "on"),
    "now": Variant("now", "", "off"),
    "alt": Variant("alt", "", "off", alt=1),
    "alt2": Variant("alt2", "", "off", alt=2),
}


def run_variant(tmp: Path, variant: Variant, seconds: float, rate: float) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from bench_fullcall import CONFIG, LABELS, connect, percentile
    from bench_fullcall import open_loop as fullcall_open_loop

    out = tmp / f"server-{variant.name}.json"
    config = tmp / "off.toml"
    config.write_text(CONFIG.read_text(encoding="utf-8"))
    python = ALT_PYTHON[variant.alt - 1] if variant.alt else sys.executable
    server = start_wrapped(config, tmp / f"{variant.name}.log", out, variant.server_gc, python)
    probe = Probe("generator")

    async def connected(*args: Any) -> Any:
        gens = await connect(*args)
        probe.marks["load"] = time.perf_counter()  # the open loop's first call starts now
        return gens

    async def measured() -> Any:
        probe.start()
        got = await fullcall_open_loop(server.port, 0, 50, rate, seconds, connector=connected)
        probe.marks["done"] = time.perf_counter()  # the last replies in, the sessions closed
        return got

    before_gc = gc.isenabled()
    if variant.generator_gc != "on":
        gc.collect()
        gc.freeze()
        gc.disable()
    try:
        opened = asyncio.run(measured())
        if CENSUS[0]:
            time.sleep(CENSUS_WAIT + 2.0)  # the server's census, before it is stopped
    finally:
        if before_gc:
            gc.enable()
        gc.unfreeze()
        gc.callbacks.remove(probe._on_gc)
        server.stop()
    p = {n: sorted(v) for n, v in opened.stats.latencies.items()}
    worst = max(p, key=lambda n: percentile(p[n], 0.99))
    every = sorted(x for v in p.values() for x in v)
    print(
        f"  {variant.name}: server gc {variant.server_gc or 'as shipped'}, generator gc "
        f"{variant.generator_gc}: {sum(len(v) for v in p.values()):,} replies, "
        f"{opened.stats.errors + opened.in_flight} errors; worst type {LABELS[worst]} p99 "
        f"{percentile(p[worst], 0.99) * 1e3:.2f} ms; all replies p50 / p99 / max "
        f"{percentile(every, 0.5) * 1e3:.2f} / {percentile(every, 0.99) * 1e3:.2f} / "
        f"{every[-1] * 1e3:.2f} ms"
    )
    for _ in range(100):  # the server writes its probe at exit
        if out.exists():
            break
        time.sleep(0.05)
    result = {"variant": variant.name, "worst_p99": percentile(p[worst], 0.99)}
    if out.exists():
        result["server"] = print_summary(json.loads(out.read_text()))
    result["generator"] = print_summary(probe.data())
    return result


def run_idle(tmp: Path, seconds: float) -> None:
    """The server with no load at all: its stalls are the host's (and its own timers')."""
    sys.path.insert(0, str(HERE))
    from bench_fullcall import CONFIG

    out = tmp / "server-idle.json"
    config = tmp / "off.toml"
    config.write_text(CONFIG.read_text(encoding="utf-8"))
    server = start_wrapped(config, tmp / "idle.log", out, "")
    try:
        time.sleep(seconds)
    finally:
        server.stop()
    for _ in range(100):
        if out.exists():
            break
        time.sleep(0.05)
    print(f"  idle server for {seconds:g} s (load average {os.getloadavg()[0]:.2f}):")
    print_summary(json.loads(out.read_text()))


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--wrap":
        out, rest = sys.argv[2], sys.argv[3:]
        wrapped_server(out, rest[1:] if rest[:1] == ["--"] else rest)
        return
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0, help="each open loop (default 10)")
    ap.add_argument("--rate", type=float, default=1000.0, help="calls/s (default 1,000)")
    ap.add_argument(
        "--variant", action="append", choices=sorted(VARIANTS), help="default: before, now"
    )
    ap.add_argument("--idle", type=float, default=0.0, help="also the idle server for N s")
    ap.add_argument(
        "--census",
        action="store_true",
        help="once the load is over, the server counts its objects and times full collections",
    )
    ap.add_argument(
        "--alt-python",
        action="append",
        default=[],
        help="the interpreter of the alt (then alt2) variant's server: another build, another tree",
    )
    ap.add_argument(
        "--slow", action="store_true", help="list the server's slow callbacks (pure Python only)"
    )
    ap.add_argument("--repeat", type=int, default=1, help="run the variants N times, interleaved")
    args = ap.parse_args()
    CENSUS[0] = args.seconds + CENSUS_WAIT if args.census else 0.0
    SLOW[0] = args.slow
    ALT_PYTHON[:] = args.alt_python
    if (os.cpu_count() or 1) > 1 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})  # as bench/ha.py: the generator on CPU 1, the server on 0
    print(
        f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; Python "
        f"{sys.version.split()[0]}; open loop {args.rate:,.0f} calls/s over 50 connections, "
        f"{args.seconds:g} s (bench/ha.py's, mode off)"
    )
    with tempfile.TemporaryDirectory(prefix="ivrs-stalls-") as name:
        tmp = Path(name)
        for _ in range(args.repeat):
            for v in args.variant or ["before", "now"]:
                run_variant(tmp, VARIANTS[v], args.seconds, args.rate)
        if args.idle:
            run_idle(tmp, args.idle)


if __name__ == "__main__":
    main()
