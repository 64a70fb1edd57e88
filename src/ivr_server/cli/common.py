"""What the commands share: logging set-up (and standard streams that were closed), the event
loop runner, ``HOST:PORT`` options, the name of the build."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Final

import click
from pydantic import ValidationError

from ivr_server import compiled_modules, logs
from ivr_server.config import ListenAddress
from ivr_server.logs import LogFormat
from ivr_server.vocabulary import LOG_LEVELS

__all__ = [
    "LOG_LEVELS",
    "HostPort",
    "build_name",
    "guard_standard_streams",
    "host_port",
    "run_loop",
    "setup_logging",
]


def setup_logging(
    level: str, fmt: LogFormat = "auto", queue_size: int = logs.DEFAULT_QUEUE_SIZE
) -> None:
    """Logs to standard error through a bounded queue and a writer thread: a log output that
    stops taking lines (a pipe nobody reads) never stops the server (:mod:`ivr_server.logs`)."""
    logs.configure(level, fmt, sys.stderr, queue_size=queue_size)


def guard_standard_streams() -> str | None:
    """Give descriptors 0, 1 and 2 something to stand for if the process was started with any
    of them closed (``2>&-``): standard error the same file as standard output when that is
    open, else ``/dev/null``; standard input and output ``/dev/null``. Without this Python starts
    with ``sys.stderr`` set to ``None`` (the log cannot be set up), and the first socket the
    server opens takes descriptor 2, so that whatever writes to standard error (a crash report,
    a library's message) would go to an IVR or API connection. Returns the line to log about it
    (``None``: nothing was closed)."""
    closed = [fd for fd in (0, 1, 2) if not _is_open(fd)]
    for fd in closed:  # in order: os.open takes the lowest free descriptor
        if fd == 2 and 1 not in closed:
            os.dup2(1, 2)
            continue
        null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    if 0 in closed and sys.stdin is None:
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - for the process
    if 1 in closed and sys.stdout is None:
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - for the process
    if 2 in closed and sys.stderr is None:
        sys.stderr = open(  # noqa: SIM115 - for the process
            2, "w", buffering=1, errors="backslashreplace", closefd=False
        )
    if 2 not in closed:
        return None
    if 1 in closed:
        return "standard output and standard error were closed at start: the log is discarded"
    return "standard error (descriptor 2) was closed at start: the log goes to standard output"


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def run_loop(coro: object) -> None:
    """Run ``coro`` to its end on uvloop when it is installed, else on asyncio's own loop."""
    try:
        import uvloop

        uvloop.run(coro)  # type: ignore[arg-type]
    except ImportError:
        asyncio.run(coro)  # type: ignore[arg-type]


"""What ``--log-level`` accepts (any case): the levels of ``[server] log-level``."""

_ADDRESS_FORMS: Final = "HOST:PORT, [IPV6]:PORT or :PORT (every IPv4 interface)"


class HostPort(click.ParamType[ListenAddress, object]):
    """``HOST:PORT`` on the command line, as a :class:`ListenAddress`; a bad one is reported with
    the option's name and the accepted forms (never pydantic's text)."""

    name = "HOST:PORT"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> ListenAddress:
        if isinstance(value, ListenAddress):
            return value  # the root command's value handed on to `serve`
        text = str(value).strip()
        if not text:
            self.fail(f"the address is empty; give {_ADDRESS_FORMS}", param, ctx)
        try:
            return ListenAddress.model_validate(text)
        except ValidationError as exc:
            self.fail(f"{_reason(exc)}; give {_ADDRESS_FORMS}", param, ctx)


def _reason(exc: ValidationError) -> str:
    """The first problem of a pydantic error in our own words (the ``ValueError`` a validator
    raised), without pydantic's boilerplate or its documentation address."""
    error = exc.errors(include_url=False)[0]
    cause = error.get("ctx", {}).get("error")
    reason = str(cause) if cause is not None else str(error["msg"])
    return reason.removeprefix("invalid address ")


def host_port(host: str, port: int) -> str:
    """``host:port``, an IPv6 host in brackets (``[::1]:3021``)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_name() -> str:
    """Which build runs: ``hot path compiled with mypyc (N modules)`` or ``pure Python``."""
    compiled = compiled_modules()
    return f"hot path compiled with mypyc ({len(compiled)} modules)" if compiled else "pure Python"
