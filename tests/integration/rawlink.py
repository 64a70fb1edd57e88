"""A deliberately independent raw GLI peer for integration tests: bytes in, bytes out.

It uses only the standard library's asyncio streams and ``struct`` (not the project's link
engine), so tests can check exact bytes and send anything, including broken frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Sequence

from ivr_server.config import ServerConfig, parse_config
from ivr_server.wire import Message, decode_document

HEADER = struct.Struct(">HHBB")
PROLOG = '<?xml version="1.0" encoding="ISO-8859-1"?>\n<!DOCTYPE GctiMsg SYSTEM "IServer.dtd">\n'


def frame(payload: bytes, gli_type: int = 3, version: int = 2, app: int = 0) -> bytes:
    return HEADER.pack(gli_type, len(payload) + 2, version, app) + payload


def doc(call_id: str | None, body: str) -> bytes:
    """A client document as real drivers write it (double quotes, newlines)."""
    cid = f"<CallId>{call_id}</CallId>" if call_id is not None else ""
    return f"{PROLOG}<GctiMsg>{cid}{body}</GctiMsg>\n".encode("latin-1")


class RawLink:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, host: str = "127.0.0.1") -> RawLink:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def send_bytes(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def send(self, call_id: str | None, body: str) -> None:
        await self.send_bytes(frame(doc(call_id, body)))

    async def recv_frame(self, timeout: float = 3.0) -> tuple[int, bytes]:
        header = await asyncio.wait_for(self.reader.readexactly(6), timeout)
        gli_type, length, version, app = HEADER.unpack(header)
        assert (version, app) == (2, 0)
        payload = await asyncio.wait_for(self.reader.readexactly(length - 2), timeout)
        return gli_type, payload

    async def recv_doc(self, timeout: float = 3.0) -> tuple[str | None, Message, bytes]:
        while True:
            gli_type, payload = await self.recv_frame(timeout)
            if gli_type == 0:  # answer server keep-alives like a real client
                await self.send_bytes(frame(b"", 1))
                continue
            assert gli_type == 3, f"expected a Data frame, got type {gli_type} {payload!r}"
            call_id, message = decode_document(payload)
            return call_id, message, payload

    async def expect_silence(self, seconds: float = 0.3) -> None:
        try:
            got = await self.recv_frame(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"expected nothing, got {got!r}")

    async def expect_closed(self, timeout: float = 3.0) -> bytes:
        """Wait until the server closes; return whatever it sent before."""
        data = await asyncio.wait_for(self.reader.read(), timeout)
        return data

    async def login(
        self, call_id: str, name: str = "IVR_1", version: str = "4.0", monitor: str | None = None
    ) -> None:
        extra = f' ServerMonitor="{monitor}"' if monitor else ""
        await self.send(
            call_id,
            f'<LoginReq Version="{version}" ClientName="{name}" '
            f'ReportStatus="true"{extra}></LoginReq>',
        )
        _, resp, _ = await self.recv_doc()
        assert resp.tag == "LoginResp"
        if version == "4.0":
            _, flow, _ = await self.recv_doc()
            assert flow.tag == "FlowControl"

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


# -- helpers for call tests ----------------------------------------------------------------------

SERVER_PROLOG = (
    b"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>"
)
"""What every document the server writes starts with (PROTOCOL.md §2.2)."""


def server_doc(call_id: str, body: str) -> bytes:
    """The exact bytes of a server document carrying ``body`` on ``call_id``."""
    return SERVER_PROLOG + f"<GctiMsg><CallId>{call_id}</CallId>{body}</GctiMsg>".encode("latin-1")


def new_call_body(
    port: str, extra: str = "", version: str | None = "4.0", mode: str = "Network"
) -> str:
    """A ``NewCall`` element; ``extra`` is written after ``CalledNum`` (DNIS, ANI, UDataEx…)."""
    ver = f' Version="{version}"' if version is not None else ""
    return f'<NewCall CallControlMode="{mode}"{ver}><CalledNum>{port}</CalledNum>{extra}</NewCall>'


def many_ports_config(ports: int, first_dn: int = 4001) -> ServerConfig:
    """One In-Front switch (``SW_InFront``, routing point 5001) and one IVR (``IVR_1``) with
    ``ports`` ports "1".."N" on DNs ``first_dn``... (clear of 5001)."""
    dns = ",\n".join(
        f'{{ number = "{first_dn + i}", type = "voice-treatment-port" }}' for i in range(ports)
    )
    port_list = ",\n".join(f'{{ number = "{i + 1}", dn = "{first_dn + i}" }}' for i in range(ports))
    return parse_config(
        f"""
[[switches]]
name = "SW_InFront"
type = "in-front"
dns = [
{dns},
{{ number = "5001", type = "routing-point" }},
]

[[tservers]]
name = "TServer_IVR"
switch = "SW_InFront"

[[ivrs]]
name = "IVR_1"
tservers = ["TServer_IVR"]
legacy-mode = false
ports = [
{port_list},
]
"""
    )


async def send_many(link: RawLink, items: Sequence[tuple[str | None, str]]) -> None:
    """Pipeline several documents in one TCP write."""
    await link.send_bytes(b"".join(frame(doc(call_id, body)) for call_id, body in items))


async def start_call(
    link: RawLink, call_id: str, port: str = "1", extra: str = "", version: str | None = "4.0"
) -> None:
    """Send a NewCall and check the two In-Front CallStatus events, byte for byte."""
    await link.send(call_id, new_call_body(port, extra, version))
    for event in ("Ringing", "Established"):
        got_id, _, raw = await link.recv_doc()
        assert got_id == call_id
        assert raw == server_doc(call_id, f"<CallStatus Event='{event}'/>")
