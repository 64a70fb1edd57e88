"""A PBX written in the test: an asyncio TCP server speaking just enough CSTA (the project's
framing and codec) for the server's premise link to come up — StartApplicationSession,
MonitorStart, SnapshotDevice (no calls), ResetApplicationSessionTimer, agent state — and able to
send anything at all on the current connection, to refuse requests of a kind, or to stop
answering."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from ivr_server.switch.csta import messages as m
from ivr_server.switch.csta.codec import CstaDecodeError, decode, encode
from ivr_server.switch.csta.framing import FrameDecoder, FramingError, encode_frame

Answer = Callable[[m.CstaRequest], m.CstaMessage | None]


def _answer(request: m.CstaRequest, xrefs: dict[str, str]) -> m.CstaMessage | None:
    """What a quiet, empty PBX answers (None: nothing it knows)."""
    match request:
        case m.StartApplicationSession():
            return m.StartApplicationSessionPosResponse(
                session_id="fake-1",
                actual_protocol_version=(request.requested_protocol_versions or (None,))[0],
                actual_session_duration=request.requested_session_duration or 180,
            )
        case m.ResetApplicationSessionTimer():
            return m.ResetApplicationSessionTimerPosResponse(
                actual_session_duration=request.requested_session_duration
            )
        case m.MonitorStart():
            xrefs[request.device] = xref = str(100 + len(xrefs))
            return m.MonitorStartResponse(monitor_cross_ref_id=xref)
        case m.MonitorStop():
            return m.MonitorStopResponse()
        case m.SnapshotDevice():
            return m.SnapshotDeviceResponse(calls=())
        case m.SystemStatus():
            return m.SystemStatusResponse()
        case m.GetAgentState():
            return m.GetAgentStateResponse(agents=())
        case m.StopApplicationSession():
            return m.StopApplicationSessionPosResponse()
    return None


class FakePbx:
    """The PBX; :attr:`connections` counts the server's connections so far, :attr:`monitored`
    the DNs monitored on the current one, :attr:`requests` every request's type name."""

    def __init__(self) -> None:
        self.server: asyncio.Server | None = None
        self.port = 0
        self.connections = 0
        self.answering = True
        """False: requests are read and never answered."""
        self.refusing: dict[str, m.CSTAErrorCode] = {}
        """Requests (type names) answered with a negative response instead."""
        self.monitored: dict[str, str] = {}
        self.requests: list[str] = []
        self.writer: asyncio.StreamWriter | None = None
        self.changed = asyncio.Event()

    async def start(self) -> FakePbx:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        if self.writer is not None:
            self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    def send(self, data: bytes) -> None:
        """Raw bytes on the current connection."""
        assert self.writer is not None, "the server is not connected"
        self.writer.write(data)

    def send_document(self, body: bytes, invoke_id: int = 9999) -> None:
        """One well-framed document."""
        self.send(encode_frame(invoke_id, body))

    async def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 10.0) -> None:
        """Until ``check`` holds (it is re-checked each time the PBX sees something)."""
        async with asyncio.timeout(timeout):
            while not check():
                self.changed.clear()
                await self.changed.wait()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.writer is not None:
            self.writer.close()
        self.connections += 1
        self.writer, self.monitored = writer, {}
        self.answering = True  # a new connection finds a PBX that answers again
        self.changed.set()
        decoder = FrameDecoder()
        try:
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    self._handle(frame.invoke_id, frame.body, writer)
                self.changed.set()
        except (ConnectionError, FramingError):
            pass
        finally:
            writer.close()
            self.changed.set()

    def _handle(self, invoke_id: int, body: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            request = decode(body)
        except CstaDecodeError:
            return
        if not isinstance(request, m.CstaRequest):
            return
        self.requests.append(type(request).__name__)
        if not self.answering:
            return
        refusal = self.refusing.get(type(request).__name__)
        answer = refusal if refusal is not None else _answer(request, self.monitored)
        if answer is not None:
            writer.write(encode_frame(invoke_id, encode(answer)))
