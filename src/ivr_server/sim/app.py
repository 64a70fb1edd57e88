"""The CSTA simulator's asyncio side: the CSTA TCP server (many application connections), the HTTP
API on its own address, the one timer of the sans-IO :class:`~.pbx.SimPbx`, and the scenario
runner.

Every door of the PBX is followed by :meth:`Simulator.flush`: the bytes it queued are written,
the connections it closed are closed, and a single ``call_at`` handle is re-armed to its next
deadline (as aioquic's adapter does). The PBX's clock is the loop's.
"""

from __future__ import annotations

__all__ = ["Simulator", "run_simulator"]

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from ivr_server.config import ListenAddress
from ivr_server.sim.api import build_api
from ivr_server.sim.config import SimConfig
from ivr_server.sim.model import SimError
from ivr_server.sim.operations import Operation, apply
from ivr_server.sim.pbx import SimPbx
from ivr_server.sim.scenario import Step

_log = logging.getLogger("ivr_server.sim")


class _CstaProtocol(asyncio.Protocol):
    """One application's TCP connection, handed to the PBX."""

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim
        self._link: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not its subclasses
        peer = transport.get_extra_info("peername")
        where = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._link = self._sim.pbx.open_link(where, self._sim.now())
        if self._link is None:
            transport.abort()
            return
        self._sim.transports[self._link] = transport
        self._sim.flush()

    def data_received(self, data: bytes) -> None:
        if self._link is not None:
            self._sim.pbx.link_data(self._link, data, self._sim.now())
            self._sim.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._link is not None:
            self._sim.transports.pop(self._link, None)
            self._sim.pbx.link_lost(self._link, self._sim.now())
            self._sim.flush()


class Simulator:
    """The running simulator: the PBX and its I/O."""

    def __init__(self, config: SimConfig) -> None:
        self._loop = asyncio.get_running_loop()
        self.pbx = SimPbx(config, self._loop.time())
        self.transports: dict[int, asyncio.Transport] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._names: dict[str, str] = {}

    def now(self) -> float:
        """The PBX's clock (the loop's)."""
        return self._loop.time()

    def run(self, op: Operation) -> dict[str, Any]:
        """Apply ``op`` now and send what follows."""
        try:
            return apply(self.pbx, op, self.now(), self._names)
        finally:
            self.flush()

    def run_all(self, ops: list[Operation]) -> list[dict[str, Any] | SimError]:
        """Apply ``ops`` in turn now, then send what follows."""
        now = self.now()
        results: list[dict[str, Any] | SimError] = []
        try:
            for op in ops:
                try:
                    results.append(apply(self.pbx, op, now, self._names))
                except SimError as bad:
                    results.append(bad)
        finally:
            self.flush()
        return results

    def flush(self) -> None:
        """Write what the PBX queued, close what it closed, re-arm its timer."""
        for link_id, data, close in self.pbx.outgoing():
            transport = self.transports.get(link_id)
            if transport is None:
                continue
            if data:
                transport.write(data)
            if close:
                self.transports.pop(link_id, None)
                transport.close()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.pbx.next_deadline()
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.pbx.handle_timer(self.now())
        self.flush()

    async def play(self, steps: list[Step]) -> None:
        """Run the scenario's steps at their times (seconds from now)."""
        start = self.now()
        for step in steps:
            await asyncio.sleep(max(0.0, start + step.at - self.now()))
            try:
                result = self.run(step.op)
            except SimError as bad:
                _log.warning("scenario: %s at %.1f s failed: %s", step.op, step.at, bad.message)
            else:
                _log.info("scenario: %s at %.1f s: %s", type(step.op).__name__, step.at, result)

    def close(self) -> None:
        """Stop the timer and close every connection."""
        if self._timer is not None:
            self._timer.cancel()
        for transport in self.transports.values():
            transport.close()
        self.transports.clear()


def _address(sockets: Any) -> tuple[str, int]:
    host, port = sockets[0].getsockname()[:2]
    return str(host), int(port)


async def run_simulator(
    config: SimConfig,
    *,
    listen: ListenAddress | None = None,
    api_listen: ListenAddress | None = None,
    steps: list[Step] | None = None,
    on_started: Callable[[tuple[str, int], tuple[str, int]], None] | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Serve until SIGINT / SIGTERM or ``stop`` is set: CSTA on ``listen``, the API on
    ``api_listen`` (default: the configuration's); ``on_started`` gets both bound addresses;
    ``steps`` play from the start."""
    options = config.simulator
    listen = listen or options.listen
    api_listen = api_listen or options.api_listen
    sim = Simulator(config)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _CstaProtocol(sim), listen.host, listen.port)
    runner = web.AppRunner(build_api(sim), access_log=None)
    await runner.setup()
    stop = stop or asyncio.Event()
    player: asyncio.Task[None] | None = None
    try:
        site = web.TCPSite(runner, api_listen.host, api_listen.port)
        await site.start()
        csta_at = _address(server.sockets)
        host, port = runner.addresses[0][:2]
        api_at = (str(host), int(port))
        _log.info("csta-sim %s: CSTA on %s:%d, API on %s:%d", sim.pbx.name, *csta_at, *api_at)
        if on_started is not None:
            on_started(csta_at, api_at)
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        player = asyncio.create_task(sim.play(steps)) if steps else None
        await stop.wait()
    finally:
        if player is not None:
            player.cancel()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signum)
        server.close()
        sim.close()
        await runner.cleanup()
        await server.wait_closed()
