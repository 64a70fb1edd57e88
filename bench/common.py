"""What the benchmarks share: a free port and the server started pinned to CPU 0."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

__all__ = ["free_port", "start_server"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    if (os.cpu_count() or 1) > 1 and shutil.which("taskset") and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {1})
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=log if log is not None else subprocess.DEVNULL
    )
    deadline = time.monotonic() + 15
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
