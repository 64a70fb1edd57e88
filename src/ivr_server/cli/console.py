"""``ivr-server client``: a small IVR client for people (:func:`ivr_server.client.run_console`)."""

from __future__ import annotations

import asyncio
import sys

import click

__all__ = ["client"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=3021, show_default=True, type=int)
@click.option(
    "--name",
    "client_name",
    default="IVR_1",
    show_default=True,
    help="LoginReq ClientName: the IVR object to log in as.",
)
@click.option(
    "--version", "version", default="4.0", show_default=True, help="Session protocol version."
)
@click.option("--monitor/--no-monitor", default=False, help="Log in with ServerMonitor='set'.")
@click.option(
    "--send",
    "commands",
    multiple=True,
    metavar="XML",
    help="A message element to send, e.g. \"<AgentQuery ReqId='1' PortNum='1'/>\"; "
    "prefix with CALLID: to choose the CallId ({new} = a fresh one).",
)
@click.option(
    "--wait",
    default=1.0,
    show_default=True,
    help="Seconds to keep watching after the last --send (non-interactive).",
)
@click.option(
    "--interactive/--no-interactive",
    default=None,
    help="Read more messages from standard input (default: when it is a terminal and "
    "no --send is given).",
)
def client(
    host: str,
    port: int,
    client_name: str,
    version: str,
    monitor: bool,
    commands: tuple[str, ...],
    wait: float,
    interactive: bool | None,
) -> None:
    """A small IVR client for people: log in, send messages, watch what comes back."""
    from ivr_server.client.console import run_console

    if interactive is None:
        interactive = not commands and sys.stdin.isatty()
    code = asyncio.run(
        run_console(
            host,
            port,
            client_name=client_name,
            version=version,
            monitor=monitor,
            commands=commands,
            interactive=interactive,
            wait=wait,
        )
    )
    sys.exit(code)
