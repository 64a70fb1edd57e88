"""What the benchmarks share: a free port, the server (or the bare echo server) started pinned to
CPU 0, the options every benchmark accepts, and the result rows ``bench/run.py`` tabulates."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine, Iterable
from pathlib import Path
from typing import IO, Any, TypeVar

__all__ = [
    "add_common_args",
    "free_port",
    "record",
    "rss_bytes",
    "run_loop",
    "start_echo_server",
    "start_server",
]

HERE = Path(__file__).resolve().parent
RESULTS_ENV = "IVR_BENCH_RESULTS"
"""When set (by bench/run.py), the path of a JSON-lines file each benchmark appends its rows to."""

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def add_common_args(ap: argparse.ArgumentParser) -> None:
    """The options bench/run.py passes to every benchmark (each ignores the others' options)."""
    ap.add_argument(
        "--seconds", type=float, default=None, help="seconds per measurement (each has a default)"
    )
    ap.add_argument(
        "--quick", action="store_true", help="short durations and small sizes (a smoke test)"
    )


def record(
    benchmark: str, name: str, value: float, unit: str, target: str = "", met: bool | None = None
) -> None:
    """One row of the final table of bench/run.py (nothing when run alone)."""
    path = os.environ.get(RESULTS_ENV)
    if not path:
        return
    row = {
        "benchmark": benchmark,
        "name": name,
        "value": value,
        "unit": unit,
        "target": target,
        "met": met,
    }
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(row) + "\n")


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on uvloop when installed (as the server does), else on asyncio's loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def rss_bytes(pid: int) -> int:
    """Resident memory of process ``pid`` (VmRSS of /proc/<pid>/status; -1 where unavailable)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def _pinned(cmd: list[str]) -> list[str]:
    """``cmd`` run on CPU 0 (and this process moved to CPU 1) when there are two CPUs or more.
    taskset execs the command, so the Popen's pid is the pinned process's own pid."""
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
        return ["taskset", "-c", "0", *cmd]
    return cmd


def _start(cmd: list[str], port: int, log: IO[bytes] | None) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        _pinned(cmd),
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = b""
            if log is not None:
                log.seek(0)
                err = log.read()
            raise RuntimeError(
                f"server exited with status {proc.returncode}:\n{err.decode(errors='replace')}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not start")


def start_server(
    port: int, config: Path | None = None, log: IO[bytes] | None = None, *, api: bool = False
) -> subprocess.Popen[bytes]:
    """``ivr-server serve`` on CPU 0 (this process moves to CPU 1 when there are two CPUs),
    its stderr into ``log``; returns once it accepts connections. ``api``: with the HTTP API
    listening (on a free port) but nobody using it, as in production."""
    cmd = [sys.executable, "-m", "ivr_server", "serve"]
    if config is not None:
        cmd += ["--config", str(config)]
    api_args = ["--api-listen", "127.0.0.1:0"] if api else ["--no-api"]
    cmd += ["--listen", f"127.0.0.1:{port}", *api_args, "--log-level", "WARNING"]
    return _start(cmd, port, log)


def start_echo_server(
    port: int, log: IO[bytes] | None = None, *, calls: bool = False, write_per_read: bool = False
) -> subprocess.Popen[bytes]:
    """bench/echo_server.py on CPU 0, pinned like :func:`start_server`; ``calls``: answering the
    full-call flow's requests by element name (``--calls``) instead of one fixed reply;
    ``write_per_read``: writing each read's answers at once (``--write-per-read``)."""
    cmd = [sys.executable, str(HERE / "echo_server.py"), "--port", str(port)]
    cmd += ["--calls"] if calls else []
    cmd += ["--write-per-read"] if write_per_read else []
    return _start(cmd, port, log)


def stop_servers(procs: Iterable[subprocess.Popen[bytes]], log: IO[bytes]) -> None:
    """Stop the servers a benchmark started and show the tail of their standard error."""
    for proc in procs:
        proc.terminate()
        proc.wait(10)
    log.seek(0)
    tail = log.read()[-2000:].decode(errors="replace")
    if tail.strip():
        print(f"server stderr (tail):\n{tail}")
