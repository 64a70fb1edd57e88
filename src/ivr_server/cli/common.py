"""What the commands share: logging set-up, the event loop runner, ``HOST:PORT`` options, the
name of the build."""

from __future__ import annotations

import asyncio
import sys
from typing import Final

import click
from pydantic import ValidationError

from ivr_server import compiled_modules, logs
from ivr_server.config import ListenAddress
from ivr_server.logs import LogFormat
from ivr_server.vocabulary import LOG_LEVELS

__all__ = ["LOG_LEVELS", "HostPort", "build_name", "host_port", "run_loop", "setup_logging"]


def setup_logging(
    level: str, fmt: LogFormat = "auto", queue_size: int = logs.DEFAULT_QUEUE_SIZE
) -> None:
    """Logs to standard error through a bounded queue and a writer thread: a log output that
    stops taking lines (a pipe nobody reads) never stops the server (:mod:`ivr_server.logs`)."""
    logs.configure(level, fmt, sys.stderr, queue_size=queue_size)


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
