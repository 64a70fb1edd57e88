"""Behind mode's link to the PBX as the IVR sees it, with the real ``ivr-server serve`` process.

The premise switch of ``examples/behind.toml`` points at a loopback port. First nothing listens
there: the IVR's login says ``InitInProgress``, a monitoring session hears the T-Server
``Unavailable``, a ``NewCall`` is refused ``EndCall ServerPaused`` and agent control ``CallError
AgentControl LINK_DOWN``. Then a minimal PBX written here with the project's CSTA framing and codec
accepts the application session, the monitors and the snapshots: the link comes up (``MonitorInfo
Server OK``, ``LoginResp OK``). The PBX drops the connection: ``Unavailable`` again, and the
server reconnects by itself. At the server's stop the PBX is told ``StopApplicationSession``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ivr_server.config import ListenAddress, load_config
from ivr_server.runtime import IvrServer
from ivr_server.switch.csta import codec
from ivr_server.switch.csta import messages as cm
from ivr_server.switch.csta.framing import FrameDecoder, encode_frame
from ivr_server.wire import messages as m
from tests.integration.conftest import ROOT, Served, free_port, launch, stop
from tests.integration.rawlink import RawLink, new_call_body

pytestmark = pytest.mark.xdist_group("behind-link")

BEHIND = ROOT / "examples/behind.toml"
SERVER_OK = m.MonitorInfo(Server=m.Server(Name="TServer_IVR", Status="OK", Switch="SW_Site"))
SERVER_DOWN = m.MonitorInfo(
    Server=m.Server(Name="TServer_IVR", Status="Unavailable", Switch="SW_Site")
)


class FakePbx:
    """Just enough of a CSTA PBX: answers the application session, MonitorStart, SnapshotDevice
    (no calls) and the heartbeat; records every request it gets, per connection."""

    def __init__(self) -> None:
        self.connections: list[list[cm.CstaMessage]] = []
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None

    async def start(self, port: int) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self.server is not None:
            self.server.close()
            self.server = None
        for writer in self.writers:
            writer.close()
        self.writers.clear()

    def requests(self, kind: type[cm.CstaMessage]) -> list[cm.CstaMessage]:
        return [msg for conn in self.connections for msg in conn if isinstance(msg, kind)]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen: list[cm.CstaMessage] = []
        self.connections.append(seen)
        self.writers.append(writer)
        frames = FrameDecoder()
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                for frame in frames.feed(data):
                    request = codec.decode(frame.body)
                    seen.append(request)
                    answer = _answer(request)
                    if answer is not None:
                        writer.write(encode_frame(frame.invoke_id, codec.encode(answer)))
        writer.close()


def _answer(request: cm.CstaMessage) -> cm.CstaMessage | None:
    if isinstance(request, cm.StartApplicationSession):
        return cm.StartApplicationSessionPosResponse(
            session_id="fake-1", actual_session_duration=request.requested_session_duration
        )
    if isinstance(request, cm.MonitorStart):
        return cm.MonitorStartResponse(monitor_cross_ref_id=f"mon-{request.device}")
    if isinstance(request, cm.SnapshotDevice):
        return cm.SnapshotDeviceResponse()
    if isinstance(request, cm.ResetApplicationSessionTimer):
        return cm.ResetApplicationSessionTimerPosResponse()
    if isinstance(request, cm.StopApplicationSession):
        return cm.StopApplicationSessionPosResponse()
    if isinstance(request, cm.SetAgentState):
        return cm.SetAgentStateResponse()
    return None


def _config(tmp_path: Path, pbx_port: int) -> Path:
    """The Behind example with the PBX at ``pbx_port`` and a quick reconnection."""
    text = BEHIND.read_text(encoding="utf-8")
    text = text.replace('address = "127.0.0.1:3022"', f'address = "127.0.0.1:{pbx_port}"')
    text = re.sub(r'reconnect-initial = "[^"]*"', 'reconnect-initial = "0.1s"', text)
    text = re.sub(r'reconnect-max = "[^"]*"', 'reconnect-max = "0.4s"', text)
    path = tmp_path / "behind.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
async def pbx() -> AsyncIterator[FakePbx]:
    fake = FakePbx()
    yield fake
    await fake.close()


async def _login(link: RawLink, call_id: str, monitor: bool = False) -> m.LoginResp:
    extra = ' ServerMonitor="set"' if monitor else ""
    await link.send(
        call_id,
        f'<LoginReq Version="4.0" ClientName="IAdapter1" ReportStatus="true"{extra}/>',
    )
    _, resp, _ = await link.recv_doc()
    assert isinstance(resp, m.LoginResp)
    return resp


async def _expect(link: RawLink, wanted: m.Message, timeout: float = 10.0) -> None:
    """The next documents until ``wanted`` (FlowControl and port notices may come between)."""
    loop = asyncio.get_running_loop()
    until = loop.time() + timeout
    while True:
        _, got, _ = await link.recv_doc(max(0.1, until - loop.time()))
        if got == wanted:
            return
        assert got.tag in ("FlowControl", "MonitorInfo"), got


async def test_the_ivr_sees_the_pbx_link_go_and_come(tmp_path: Path, pbx: FakePbx) -> None:
    pbx_port = free_port()
    served: Served = launch(
        "serve", "--config", str(_config(tmp_path, pbx_port)), "--listen", "127.0.0.1:0", "--no-api"
    )
    links: list[RawLink] = []
    try:
        # nothing listens where the PBX should be
        monitor = await RawLink.open(served.port)
        links.append(monitor)
        assert (await _login(monitor, "M", monitor=True)).Status == "InitInProgress"
        await _expect(monitor, SERVER_DOWN)
        ivr = await RawLink.open(served.port)
        links.append(ivr)
        assert (await _login(ivr, "L")).Status == "InitInProgress"
        await ivr.send("C1", new_call_body("1"))
        await _expect(ivr, m.EndCall(EndCause="ServerPaused"))
        await ivr.send("L", "<AgentQuery ReqId='7' PortNum='1'/>")
        await _expect(
            ivr, m.CallError(FailedReq="AgentControl", TlibErrCode="LINK_DOWN", ReqId="7")
        )

        # the PBX comes: session, a monitor per PBX DN, a snapshot each, then the link is up
        await pbx.start(pbx_port)
        await _expect(monitor, SERVER_OK)
        monitored = {msg.device for msg in pbx.requests(cm.MonitorStart)}  # type: ignore[attr-defined]
        assert {"3001", "3002", "3003"} <= monitored
        assert not {"4200", "7900"} & monitored  # the VRPs are ivr-server's own
        assert pbx.requests(cm.SnapshotDevice)
        (start,) = pbx.requests(cm.StartApplicationSession)
        assert start.application_id == "ivr-server"  # type: ignore[attr-defined]
        again = await RawLink.open(served.port)
        links.append(again)
        assert (await _login(again, "L2")).Status == "OK"

        # the PBX drops the link: Unavailable; it listens again: the server reconnects
        writers = list(pbx.writers)
        for writer in writers:
            writer.close()
        await _expect(monitor, SERVER_DOWN)
        await _expect(monitor, SERVER_OK)
        assert len(pbx.connections) >= 2
    finally:
        for link in links:
            await link.close()
        err = await asyncio.get_running_loop().run_in_executor(None, stop, served)
    assert pbx.requests(cm.StopApplicationSession), "the PBX is told at the stop"
    assert "connected to the PBX at 127.0.0.1:" in err
    assert "cannot connect to the PBX" in err
    assert "connection to the PBX lost" in err
    assert "Traceback" not in err


async def test_legacy_mode_agents_are_logged_in_when_the_link_comes_up(
    tmp_path: Path, pbx: FakePbx
) -> None:
    """In-process: the link coming up (a door of the adapter) has the service log in the
    LegacyMode port's agent, and its SetAgentState reaches the PBX without any IVR traffic."""
    pbx_port = free_port()
    text = _config(tmp_path, pbx_port).read_text(encoding="utf-8")
    text = text.replace("legacy-mode = false", "legacy-mode = true").replace(
        '{ number = "1", dn = "3001" }',
        '{ number = "1", dn = "3001", auto-login = { agent-id = "553", queue = "3085" } }',
    )
    path = tmp_path / "legacy.toml"
    path.write_text(text, encoding="utf-8")
    server = IvrServer(load_config(path), listen=(ListenAddress(host="127.0.0.1", port=0),))
    await server.start()
    try:
        await pbx.start(pbx_port)
        loop = asyncio.get_running_loop()
        until = loop.time() + 10.0
        while not pbx.requests(cm.SetAgentState):
            assert loop.time() < until, "no SetAgentState"
            await asyncio.sleep(0.01)
        (login,) = pbx.requests(cm.SetAgentState)
        assert (login.device, login.requested_agent_state, login.agent_id) == (  # type: ignore[attr-defined]
            "3001",
            "loggedOn",
            "553",
        )
        assert server.service.switches["SW_Site"].view.link_up
    finally:
        await server.stop()
    assert not server.links and pbx.requests(cm.StopApplicationSession)
