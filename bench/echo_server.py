#!/usr/bin/env python3
"""A bare GLI server: the physical limit of a Python server on this event loop.

It frames bytes exactly as ``ivr_server.wire.gli.FrameDecoder`` does (6-byte header ``>HHBB``:
type, length = payload + 2, version 2, application 0; a frame is ``4 + length`` bytes; a bad
header closes the link), answers a Keep-Alive request with a Keep-Alive response, and answers
every Data frame with a fixed document the size of the server's ``CallInfoResp`` for the same
``CallId`` (found by byte search). All the answers to one read go out in one write, and, as the
real server does, the writes wait until every connection readable in that turn of the event loop
has read (``--write-per-read``: each read's answers at once, as both did before). No XML is parsed,
no call exists: whatever ivr-server does beyond this is its cost.

With ``--calls`` it answers the requests of ``bench/bench_fullcall.py``'s call flow instead, each
with the documents ivr-server writes for it (copied from a real exchange, so the same sizes),
chosen by the request's element name alone: ``LoginReq`` gets ``LoginResp`` and ``FlowControl``,
``NewCall`` gets ``CallStatus`` Ringing and Established, ``CallInfoReq``, ``UDataSet``,
``UDataGet`` and ``RouteRequest`` their reply, ``EndCall`` nothing. Still no XML parsed and no call
kept: the values a real server echoes (ANI, CalledNum, user data) are fixed.

    python3 bench/echo_server.py --port 3021         # uvloop when installed
    python3 bench/echo_server.py --port 3021 --calls
"""

from __future__ import annotations

import argparse
import asyncio
import struct
from typing import Final, cast

HEADER: Final = struct.Struct(">HHBB")
KEEP_ALIVE_RESPONSE: Final = HEADER.pack(1, 2, 2, 0)
REPLY_HEAD: Final = (
    b"<?xml version='1.0' encoding='ISO-8859-1'?><!DOCTYPE GctiMsg SYSTEM 'IServer.dtd'>"
    b"<GctiMsg><CallId>"
)
REPLY_TAIL: Final = (
    b"</CallId><CallInfoResp ANI='5551234' DNIS='8800' CalledNum='1' ConnId='006b05e668000001' "
    b"TSCallId='1' PortDN='100001' LastEvent='EventEstablished'/></GctiMsg>"
)
"""What ivr-server answers to CallInfoReq on a call of bench/fullcall.toml (same size)."""
FIXED: Final = len(REPLY_HEAD) + len(REPLY_TAIL) + 2

_CALL_REPLIES: Final[dict[bytes, tuple[bytes, ...]]] = {
    b"LoginReq": (
        b"</CallId><LoginResp IServerVer='IVR Server:8.5.001.00' Result='Success'/></GctiMsg>",
        b"</CallId><FlowControl Status='Off'/></GctiMsg>",
    ),
    b"NewCall": (
        b"</CallId><CallStatus Event='Ringing'/></GctiMsg>",
        b"</CallId><CallStatus Event='Established'/></GctiMsg>",
    ),
    b"CallInfoReq": (REPLY_TAIL,),
    b"UDataSet": (
        b"</CallId><UDataResp Result='Success'><RequestId>1</RequestId></UDataResp></GctiMsg>",
    ),
    b"UDataGet": (
        b"</CallId><UDataResp Result='Success'><RequestId>2</RequestId><UDataEx>"
        b"<Node Name='k1' Type='Str' Val='bench'/><Node Name='k2' Type='Int' Val='42'/>"
        b"</UDataEx></UDataResp></GctiMsg>",
    ),
    b"RouteRequest": (
        b"</CallId><RouteResponse RouteType='Normal'><Dest>7002</Dest></RouteResponse></GctiMsg>",
    ),
    b"EndCall": (),
}
"""``--calls``: what ivr-server writes for each request of the benchmark's call flow, after the
CallId (see bench/bench_fullcall.py)."""


class TurnWriter:
    """Writes queued during one turn of the event loop, made once every read has been handled."""

    __slots__ = ("loop", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: list[tuple[asyncio.Transport, bytes]] = []

    def write(self, transport: asyncio.Transport, data: bytes) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append((transport, data))

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        for transport, data in pending:
            transport.write(data)


class EchoProtocol(asyncio.Protocol):
    __slots__ = ("buffer", "replies", "transport", "writer")

    def __init__(
        self, replies: dict[bytes, tuple[bytes, ...]] | None, writer: TurnWriter | None
    ) -> None:
        self.buffer = bytearray()
        self.replies = replies
        """None: every Data frame gets the fixed CallInfoResp; else answers by element name."""
        self.writer = writer
        """None: each read's answers are written at once."""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # socket options: the loop's defaults

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        size = len(buf)
        pos = 0
        out: list[bytes] = []
        unpack, pack = HEADER.unpack_from, HEADER.pack
        while size - pos >= 6:
            gli_type, length, version, app = unpack(buf, pos)
            if version != 2 or app != 0 or gli_type > 3 or length < 2:
                assert self.transport is not None
                self.transport.close()
                del buf[:]
                return
            end = pos + 4 + length
            if end > size:
                break
            if gli_type == 3:
                start = buf.find(b"<CallId>", pos + 6, end) + 8
                stop = buf.find(b"</CallId>", start, end)
                call_id = bytes(buf[start:stop])
                if self.replies is None:
                    out.append(pack(3, FIXED + len(call_id), 2, 0))
                    out.append(REPLY_HEAD)
                    out.append(call_id)
                    out.append(REPLY_TAIL)
                else:
                    name = stop + 10  # past "</CallId><"
                    while name < end and buf[name] > 64:  # letters end at " ", ">" or "/"
                        name += 1
                    for tail in self.replies.get(bytes(buf[stop + 10 : name]), (REPLY_TAIL,)):
                        out.append(pack(3, len(REPLY_HEAD) + len(call_id) + len(tail) + 2, 2, 0))
                        out.append(REPLY_HEAD)
                        out.append(call_id)
                        out.append(tail)
            elif gli_type == 0:
                out.append(KEEP_ALIVE_RESPONSE)
            pos = end
        if pos:
            del buf[:pos]
        if out and self.transport is not None:
            if self.writer is not None:
                self.writer.write(self.transport, b"".join(out))
            else:
                self.transport.write(b"".join(out))


async def serve(host: str, port: int, calls: bool, write_per_read: bool) -> None:
    loop = asyncio.get_running_loop()
    replies = _CALL_REPLIES if calls else None
    writer = None if write_per_read else TurnWriter(loop)
    server = await loop.create_server(
        lambda: EchoProtocol(replies, writer), host, port, backlog=1024
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument(
        "--calls", action="store_true", help="answer the full-call flow's requests by element name"
    )
    ap.add_argument(
        "--write-per-read",
        action="store_true",
        help="write each read's answers at once instead of once per turn of the event loop",
    )
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.host, args.port, args.calls, args.write_per_read))
    except ImportError:
        asyncio.run(serve(args.host, args.port, args.calls, args.write_per_read))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
