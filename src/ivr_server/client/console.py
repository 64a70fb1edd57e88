"""The human console behind ``ivr-server client``: log in, send typed commands, show the traffic.

A command is one line:

``<AgentQuery ReqId='1' PortNum='1'/>``
    an XML element, wrapped into a full GctiMsg document on the session CallId and sent as is
    (raw: nothing is checked, so invalid messages can be sent on purpose);
``CALLID:<element .../>``
    the same on another CallId; ``{new}:`` makes a fresh CallId, ``{none}:`` sends no CallId
    element (the DialOut/DialOutError forms), ``{session}:`` is the session CallId;
``:keepalive``
    a GLI keep-alive request, and the time the response took;
``:quit``
    close and exit. Empty lines and lines starting with ``#`` are ignored.

Every document received is printed with a timestamp and ``<-``; everything sent with ``->``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO, cast

from ivr_server.client.connection import IvrClient
from ivr_server.client.errors import BadDocument, ClientError, ConnectionLost
from ivr_server.client.pretty import format_document, format_note, format_payload, use_color
from ivr_server.wire.messages import LoginReq

__all__ = ["build_document", "run_console"]

_NEW = "{new}"
_NONE = "{none}"
_SESSION = "{session}"


def build_document(call_id: str | None, element: str) -> bytes:
    """Wrap an element's XML text into a GctiMsg document (ISO-8859-1, as the server writes)."""
    head = ""
    if call_id is not None:
        escaped = call_id.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        head = f"<CallId>{escaped}</CallId>"
    text = (
        f"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>"
        f"<GctiMsg>{head}{element}</GctiMsg>"
    )
    return text.encode("iso-8859-1", "xmlcharrefreplace")


class _Console:
    """One console session: a client, an output stream and a task printing what arrives."""

    def __init__(self, client: IvrClient, out: TextIO) -> None:
        self.client = client
        self.out = out
        self.color = use_color(out)

    def write(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        self.write(format_note(text, when=datetime.now(), color=self.color))

    async def print_incoming(self) -> None:
        """Print every unsolicited document until the link closes (the console sends raw, so
        everything the server sends after login arrives here)."""
        while True:
            try:
                received = await self.client.expect(timeout=None)
            except BadDocument as exc:
                self.note(str(exc))
                continue
            except ConnectionLost as exc:
                self.note(f"connection closed: {exc.reason}")
                return
            self.write(
                format_document(
                    received.call_id,
                    received.message,
                    direction="<-",
                    when=datetime.now(),
                    color=self.color,
                )
            )

    async def execute(self, line: str) -> bool:
        """Run one command; ``False`` means quit."""
        line = line.strip()
        if not line or line.startswith("#"):
            return True
        if line == ":quit":
            return False
        if line == ":keepalive":
            await self.keep_alive()
            return True
        start = line.find("<")
        if start < 0:
            self.note(
                f"not a command or an XML element: {line!r} "
                "(try :keepalive, :quit or <Element .../>)"
            )
            return True
        prefix = line[:start].strip()
        call_id = self.client.session_call_id
        if prefix:
            if not prefix.endswith(":"):
                self.note(f"a CallId prefix ends with ':' — got {prefix!r}")
                return True
            spec = prefix[:-1].strip()
            if spec == _NEW:
                call_id = self.client.new_call_id()
            elif spec == _NONE:
                call_id = None
            elif spec != _SESSION:
                call_id = spec
        payload = build_document(call_id, line[start:])
        try:
            self.client.send_raw(payload)
        except ConnectionLost as exc:
            self.note(f"not sent, the connection is closed: {exc.reason}")
            return False
        self.write(format_payload(payload, direction="->", when=datetime.now(), color=self.color))
        return True

    async def keep_alive(self) -> None:
        self.note("-> keep-alive request")
        try:
            seconds = await self.client.keep_alive()
        except ClientError as exc:
            self.note(f"keep-alive failed: {exc}")
            return
        self.note(f"<- keep-alive response after {seconds * 1000:.1f} ms")


async def run_console(
    host: str,
    port: int,
    *,
    client_name: str,
    version: str = "4.0",
    monitor: bool = False,
    report_status: bool = True,
    commands: Sequence[str] = (),
    interactive: bool = True,
    wait: float = 1.0,
    out: TextIO = sys.stdout,
    in_stream: TextIO | None = None,
) -> int:
    """Connect, log in, run ``commands``, then read more from ``in_stream`` (default stdin) line
    by line until EOF or ``:quit`` (``interactive``), or wait ``wait`` seconds; print all traffic.

    Returns 0 on a normal exit, 1 if the connection or the login failed or the server closed the
    connection.
    """
    color = use_color(out)
    try:
        client = await IvrClient.connect(host, port)
    except ClientError as exc:
        out.write(format_note(str(exc), when=datetime.now(), color=color) + "\n")
        out.flush()
        return 1
    async with client:
        console = _Console(client, out)
        console.note(f"connected to {host}:{port}")
        call_id = client.new_call_id("L")
        server_monitor = True if monitor else None
        console.write(
            format_document(
                call_id,
                LoginReq(
                    Version=cast(Any, version),
                    ClientName=client_name,
                    ReportStatus="true" if report_status else "false",
                    ServerMonitor="set" if server_monitor else None,
                ),
                direction="->",
                when=datetime.now(),
                color=color,
            )
        )
        try:
            result = await client.login(
                client_name,
                version=version,
                report_status=report_status,
                server_monitor=server_monitor,
                call_id=call_id,
            )
        except ClientError as exc:
            console.note(f"login failed: {exc}")
            return 1
        console.write(format_document(call_id, result.response, when=datetime.now(), color=color))
        if result.flow_control is not None:
            console.write(
                format_document(call_id, result.flow_control, when=datetime.now(), color=color)
            )
        printer = asyncio.create_task(console.print_incoming())
        try:
            await _run_commands(console, printer, commands, interactive, wait, in_stream)
            lost = client.closed  # closed before we close it: the server or a timeout did
        finally:
            await client.close()
            await printer
        return 1 if lost else 0


async def _run_commands(
    console: _Console,
    printer: asyncio.Task[None],
    commands: Sequence[str],
    interactive: bool,
    wait: float,
    in_stream: TextIO | None,
) -> None:
    for command in commands:
        if printer.done() or not await console.execute(command):
            return
    if not interactive:
        await asyncio.wait([printer], timeout=wait)
        return
    reader = _LineReader(in_stream if in_stream is not None else sys.stdin)
    await reader.start()
    try:
        while not printer.done():
            read = asyncio.ensure_future(reader.readline())
            await asyncio.wait([read, printer], return_when=asyncio.FIRST_COMPLETED)
            if not read.done():  # the connection closed while we waited for input
                read.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await read
                return
            line = read.result()
            if line is None or not await console.execute(line):
                return
    finally:
        reader.stop()


class _LineReader:
    """Lines from a text stream without blocking the loop: pipes, terminals and sockets are read
    through the loop; anything else (files, StringIO) never blocks and is read directly."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._reader: asyncio.StreamReader | None = None
        self._transport: asyncio.ReadTransport | None = None
        self._fd: int | None = None

    async def start(self) -> None:
        try:
            fd = self._stream.fileno()
            mode = os.fstat(fd).st_mode
        except (OSError, ValueError, AttributeError):
            return
        if not (stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or stat.S_ISSOCK(mode)):
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        # A duplicate descriptor: closing the transport must not close the caller's stream.
        pipe = os.fdopen(os.dup(fd), "rb", buffering=0)
        try:
            self._transport, _ = await loop.connect_read_pipe(
                lambda: asyncio.StreamReaderProtocol(reader), pipe
            )
        except (OSError, ValueError, NotImplementedError):
            pipe.close()
            return
        self._reader = reader
        self._fd = fd

    async def readline(self) -> str | None:
        """The next line, or ``None`` at end of input."""
        if self._reader is None:
            line = self._stream.readline()
            return line if line else None
        data = await self._reader.readline()
        return data.decode(errors="replace") if data else None

    def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._fd is not None:
            # The loop made the descriptor non-blocking; the shell sharing it wants it back.
            with contextlib.suppress(OSError):
                os.set_blocking(self._fd, True)
            self._fd = None
