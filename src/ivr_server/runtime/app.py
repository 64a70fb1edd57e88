"""The running server: listeners, the service core, reload, and orderly start and stop.

``IvrServer`` is the only object that knows both asyncio and the service. Tests start it in-process
on ``127.0.0.1:0``; the CLI runs :func:`serve` until SIGINT/SIGTERM, reloading on SIGHUP, and
then stops gracefully (:meth:`IvrServer.shutdown`: the calls in progress get ``drain-time`` to
end).

Reload (:mod:`.reload`): SIGHUP, ``ivr-server reload`` or ``POST /api/v1/reload`` re-read the
file, in a worker thread, one reload at a time, the requests that come meanwhile served by the
next one; a file that does not load, or that would take away the IVR, port, switch or DN
of a live call, is refused and the running configuration stays. SIGUSR2 (``ivr-server reload
--force``) or the API's ``{"force": true}`` apply the latter anyway.

The HTTP API (``ivr_server.api``) sits above this layer, so the server does not import it: the
caller passes its factory (``IvrServer(config, api=ApiServer, api_listen=...)``), and the server
starts it after its IVR listeners, in the same event loop, and stops it first.

High availability (``[ha] mode`` not ``off``): the server has an :class:`~.ha.HaNode`
(:attr:`IvrServer.ha`), which writes each turn's changes to the shared store before the turn's
replies leave and decides the node's role. The premise links run only while the node leads
(:meth:`IvrServer.lead`, :meth:`IvrServer.follow`); in warm standby the IVR listener is bound
from the start but accepts connections only while the node leads. With ``mode = "off"``
:attr:`IvrServer.ha` is ``None`` and nothing of it is imported.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from ivr_server.config import ListenAddress, ServerConfig
from ivr_server.memory import YOUNG_COLLECTION_INTERVAL, YoungCollections, release_free_memory
from ivr_server.runtime.access import ClientList
from ivr_server.runtime.connection import FLUSH_AFTER_BYTES, ConnectionHost, IvrLinkProtocol
from ivr_server.runtime.limits import (
    connection_cap,
    descriptor_limit,
    raise_descriptor_limit,
    set_tcp_keep_alive,
)
from ivr_server.runtime.links import SwitchLinks
from ivr_server.runtime.reload import Reloader
from ivr_server.runtime.status import (
    ReloadOutcome,
    ReloadStatusFile,
    reload_status_path,
    remove_pid_file,
    write_pid_file,
)
from ivr_server.service import IvrService, ReloadReport
from ivr_server.service.control import Control

if TYPE_CHECKING:
    from ivr_server.runtime.ha import HaNode

__all__ = ["FLUSH_AFTER_BYTES", "ApiFactory", "ApiPart", "IvrServer", "ReloadOutcome", "serve"]

log = logging.getLogger("ivr_server.runtime")


class ApiPart(Protocol):
    """What the server needs of its HTTP API (``ivr_server.api.ApiServer``)."""

    addresses: list[tuple[str, int]]
    """Where it listens, once started."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


LAG_PROBE_INTERVAL: Final = 0.25
"""Seconds between two runs of the event-loop lag probe (``metrics.loop_lag``)."""

ApiFactory = Callable[["IvrServer"], ApiPart]
"""Builds the API of a server (``ivr_server.api.ApiServer`` is one)."""

FORCED_RELOAD_SIGNAL: Final = signal.SIGUSR2
"""The signal of ``ivr-server reload --force`` (SIGHUP is the safe reload). Not SIGUSR1, which
servers conventionally use to reopen their log files."""
DRAIN_POLL: Final = 0.05
"""Seconds between two looks, while a stop drains, at whether any call is left."""
CLOSE_WAIT: Final = 2.0
"""Seconds a stopping server waits for its closed connections to take what is left to write;
then the rest are cut (``abort``)."""


class IvrServer(ConnectionHost):
    """An IVR Server bound to its listeners. ``await start()``, then ``await stop()``. What its
    connections share (their reads, turns, cap and client list) it has from
    :class:`~ivr_server.runtime.connection.ConnectionHost`."""

    def __init__(
        self,
        config: ServerConfig,
        *,
        config_path: str | None = None,
        listen: tuple[ListenAddress, ...] | None = None,
        frame_timeout: float | None = 60.0,
        api_listen: tuple[ListenAddress, ...] | None = None,
        api: ApiFactory | None = None,
    ) -> None:
        seed = int(time.time()) & 0xFFFFFFFF
        if config.ha.mode == "active":  # issue 25 (helper F): ConnIDs apart across active nodes
            from ivr_server.runtime.ha_active import conn_id_seed

            seed = conn_id_seed(config.ha.node_id, seed)
        super().__init__(config, IvrService(config, id_seed=seed), frame_timeout)
        self.config_path = config_path
        """The file a reload re-reads (``None``: the built-in default, which cannot change)."""
        self.listen = listen or config.server.listen
        self.control = Control(self.service)
        """Operator actions on the service (the API's act side)."""
        self.api_listen = config.api.listen if api_listen is None else api_listen
        """Where the HTTP API listens (empty: no API); ``--api-listen`` overrides the file."""
        self._api_factory = api
        self.api: ApiPart | None = None
        """The running HTTP API, if any."""
        self.started_at = time.time()
        """When the server was created (Unix time)."""
        self.addresses: list[tuple[str, int]] = []
        self._servers: list[asyncio.Server] = []
        self._lag_probe: asyncio.TimerHandle | None = None
        self._young_timer: asyncio.TimerHandle | None = None
        self.young_collections = YoungCollections()
        """The young generations' collections the server runs itself (:meth:`_collect_young`)."""
        self._heap_frozen = False
        self.on_reload: Callable[[ReloadOutcome], None] | None = None
        """Called with the outcome of every reload request (``serve`` writes it to the status
        file beside the pid file, for ``ivr-server reload``)."""
        self.links = SwitchLinks(self._after_link_door)
        """The sockets of the switches at the far end of a link (a premise PBX): connected from
        :meth:`start`, followed at a reload, closed by :meth:`stop` (``runtime/links.py``)."""
        self.on_reload_start: Callable[[], None] | None = None
        """Called when a reload re-reads the file (``serve``: the status file says so)."""
        self.reloader = Reloader(self)
        """The reloads: file read off the loop, requests coalesced (``runtime/reload.py``)."""
        self.ha: HaNode | None = None
        """High availability's node (``runtime/ha.py``); ``None`` with ``[ha] mode = "off"``."""
        if config.ha.mode != "off":
            from ivr_server.runtime.ha import HaNode

            self.ha = HaNode(self)
        self._background: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        ha = self.ha
        if ha is not None:
            ha.prepare()  # the standby role and the writer before any request
        await self._bind(self.listen, serving=ha is None or ha.mode != "warm")
        log.info(
            "listening on %s%s",
            ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.addresses),
            " (accepting IVR connections once this node leads: warm standby)"
            if ha is not None and ha.mode == "warm"
            else "",
        )
        self._log_capacity()
        self._arm_lag_probe()
        self._arm_young_collection()
        if ha is None:
            self.links.sync(self.service.switches)  # premise PBXs: connect (in the background)
        else:
            await ha.start()  # takes over at once when no other node leads (lead())
        if self._api_factory is not None and self.api_listen:
            api = self._api_factory(self)
            try:
                await api.start()
            except BaseException:
                await self.stop()
                raise
            self.api = api

    async def _bind(self, addresses: tuple[ListenAddress, ...], *, serving: bool) -> None:
        """Listen on ``addresses`` (bound only, refusing connections, unless ``serving``: warm
        standby), noting where in :attr:`addresses`."""
        loop = asyncio.get_running_loop()
        keep_alive = self.config.server.tcp_keep_alive
        found: list[tuple[str, int]] = []
        for address in addresses:
            host = address.host or "0.0.0.0"
            server = await loop.create_server(
                lambda: IvrLinkProtocol(self),
                host,
                address.port,
                reuse_address=True,
                backlog=self.config.server.listen_backlog,
                start_serving=serving,
            )
            self._servers.append(server)
            # uvloop's Server.sockets is a list, typeshed says tuple: read it untyped so that the
            # compiled build (which checks declared types) takes either.
            for sock in cast("Any", server).sockets:
                set_tcp_keep_alive(sock, keep_alive)  # accepted sockets inherit it (Linux)
                name = sock.getsockname()
                found.append((str(name[0]), int(name[1])))
        self.addresses = found

    # ------------------------------------------------------------------ high availability

    async def connect_links(self, timeout: float) -> None:
        """HA takeover, before this node answers: its premise links connect, and it waits up to
        ``timeout`` for every one of them to be up (the PBX's session, monitors and snapshots
        done), so that the requests it replays reach the PBX. A PBX that does not answer in
        time is logged; the takeover goes on (those requests are refused as when a link is
        down)."""
        self.links.sync(self.service.switches)
        if not self.links:
            return
        switches = self.service.switches
        step = 0.005
        for _ in range(max(1, round(timeout / step))):
            down = [
                link.name
                for link in self.links
                if link.name in switches and not switches[link.name].view.link_up
            ]
            if not down:
                return
            await asyncio.sleep(step)
        log.warning(
            "HA: taking over with the link to %s still down after %.1f s",
            ", ".join(down),
            timeout,
        )

    async def lead(self) -> None:
        """HA: this node has just taken over: its premise links connect, and in warm standby
        its IVR listener accepts connections (the drivers reconnect and log in)."""
        self.links.sync(self.service.switches)
        if self.ha is not None and self.ha.mode == "warm":
            for server in self._servers:
                if not server.is_serving():
                    await server.start_serving()
            log.info("HA: accepting IVR connections")

    def follow(self) -> None:
        """HA: this node was fenced (another leads): every IVR session is closed at once (its
        driver logs in again, here or to the leader); in the background the premise links are
        closed and, in warm standby, the IVR listener stops accepting connections."""
        for protocol in list(self.protocols.values()):
            if protocol.transport is not None:
                protocol.transport.close()
        self.background(self._follow())

    async def _follow(self) -> None:
        if self.links:
            await self.links.stop()
        if self.ha is not None and self.ha.mode == "warm" and self._servers:
            addresses = tuple(ListenAddress(host=h, port=p) for h, p in self.addresses)
            for server in self._servers:
                server.close()
            for server in self._servers:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(server.wait_closed(), 2.0)
            self._servers.clear()
            await self._bind(addresses, serving=False)
            log.info("HA: IVR connections refused until this node leads again")

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` as a task of its own, kept until it ends; its failure is logged."""
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background_done)

    def _background_done(self, task: asyncio.Task[None]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    @property
    def api_addresses(self) -> list[tuple[str, int]]:
        """Where the HTTP API listens (empty: no API)."""
        return list(self.api.addresses) if self.api is not None else []

    async def stop(self) -> None:
        self.flush_reads()  # the replies to what was read in this turn go out before closing
        self._held.clear()  # frames read and not yet handled are dropped with their connections
        for task in list(self._background):  # a fenced warm node's listener being bound again
            task.cancel()
        if self.ha is not None:  # its batches acknowledged (their replies out), the lease given up
            await self.ha.stop()
        if self.api is not None:
            api, self.api = self.api, None
            await api.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lag_probe is not None:
            self._lag_probe.cancel()
            self._lag_probe = None
        if self._young_timer is not None:
            self._young_timer.cancel()
            self._young_timer = None
        if self._refusal_log is not None:  # the refusals not logged yet are logged now
            self._refusal_log.cancel()
            self._log_refusals()
        for server in self._servers:
            server.close()
        if self.links:  # a StopApplicationSession to each PBX, best effort, then the sockets
            for link in self.links:
                if link.name in self.service.switches and link.switch.link_wanted:
                    self.service.set_link(link.name, False)
            self.flush()
            await self.links.stop()
        for protocol in list(self.protocols.values()):
            if protocol.transport is not None:
                protocol.transport.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2.0)
        self._servers.clear()

    async def shutdown(
        self, drain_time: float, hurry: asyncio.Event | None = None, why: str = "stop requested"
    ) -> None:
        """Stop gracefully (SIGTERM, SIGINT): stop accepting IVR connections; tell the sessions
        (:meth:`IvrService.begin_stop <ivr_server.service.IvrService.begin_stop>`:
        ``FlowControl On`` to 4.0 sessions, ``MonitorInfo/Server Unavailable`` to monitoring
        ones; new calls get ``EndCall ServerPaused``); give the calls in progress up to
        ``drain_time`` seconds to end, or until ``hurry`` is set (a second signal); then end the
        rest as their Call Timeout would (``EndCall EndCause='Timeout'``), write out what is
        left, close every connection and the API, and log how many calls and sessions were open
        (the last line). docs/operations.md, "Stopping". With high availability the calls are
        handed over instead, not ended (:meth:`_hand_over`)."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        service = self.service
        if self.ha is not None:  # the calls are the site's, not this process's: hand them over
            await self._hand_over(why, began)
            return
        for server in self._servers:
            server.close()  # no new IVR connections; the connected ones stay
        service.begin_stop(began)
        self.flush()
        log.info(
            "stopping (%s): %s and %s open; new IVR connections and calls are refused; the "
            "calls get up to %s s to end (SIGTERM or SIGINT again: stop at once)",
            why,
            _count(len(service.calls.calls), "call"),
            _count(len(service.sessions), "session"),
            f"{drain_time:g}",
        )
        deadline = began + drain_time
        reason = "no call in progress"
        while service.calls_in_hand():
            left = deadline - loop.time()
            if hurry is not None and hurry.is_set():
                reason = "stopped at once on a second signal"
                break
            if left <= 0:
                reason = f"the drain time of {drain_time:g} s is over"
                break
            reason = "every call ended"
            if hurry is None:
                await asyncio.sleep(min(left, DRAIN_POLL))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(hurry.wait(), min(left, DRAIN_POLL))
        calls = service.end_calls(loop.time())
        sessions = len(service.sessions)
        self.flush()
        await self.stop()
        await self._wait_closed(CLOSE_WAIT)
        log.info(
            "stopped after %.1f s (%s): %s and %s were open%s",
            loop.time() - began,
            reason,
            _count(calls, "call"),
            _count(sessions, "session"),
            " (the calls ended with EndCall EndCause='Timeout' to their IVR)" if calls else "",
        )

    async def _hand_over(self, why: str, began: float) -> None:
        """A node of a highly available site stops without ending its calls: what it handled is
        committed, its lease given up (:meth:`HaNode.stop <ivr_server.runtime.ha.HaNode.stop>`),
        so that another node takes over at once and carries the calls on (or this one, restarted,
        restores them). Draining them would end every call of the site (docs/ha.md, §1
        "Leases")."""
        ha = self.ha
        assert ha is not None
        role, calls = ha.role, len(self.service.calls.calls)
        sessions = len(self.service.sessions)
        await self.stop()
        await self._wait_closed(CLOSE_WAIT)
        log.info(
            "stopped after %.1f s (%s): %s node %s, %s and %s handed over to the store (not ended)",
            asyncio.get_running_loop().time() - began,
            why,
            role,
            ha.node_id,
            _count(calls, "call"),
            _count(sessions, "session"),
        )

    async def _wait_closed(self, timeout: float) -> None:
        """Wait until the connections :meth:`stop` closed are gone (their sessions closed and
        logged); cut those whose peer does not take what was left to write within ``timeout``."""
        for _ in range(max(1, round(timeout / 0.01))):
            if not self.protocols:
                break
            await asyncio.sleep(0.01)
        for protocol in list(self.protocols.values()):
            if protocol.transport is not None:
                protocol.transport.abort()
        for _ in range(3):  # connection_lost runs from the loop's next turns
            if not self.protocols:
                break
            await asyncio.sleep(0)

    def settle_heap(self) -> None:
        """Collect once and freeze what is left (``gc.freeze``): the configuration, the modules,
        the switches' DNs. The collector then never scans those objects again, so its full
        collections stay short whatever the size of the configuration (an unfrozen full
        collection of a large configuration stops every call for as long as it takes).
        ``serve`` calls it once started; a reload unfreezes, collects and freezes again so that
        the old configuration can be freed. Then the heap is trimmed of what reading the
        configuration left free in it (docs/performance.md, §5)."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._heap_frozen = True
        release_free_memory()

    # ------------------------------------------------------------------ output

    def flush(self) -> None:
        """Write out every session the service queued data for and re-arm the service's timer
        (:meth:`ConnectionHost.flush`), then what the linked switches queued (a request to the
        PBX made while answering an IVR leaves in the same turn)."""
        super().flush()
        if self.links:
            self.links.flush()

    def _after_link_door(self, now: float) -> None:
        """After a door of a linked switch (connected, bytes, timer, lost): the service delivers
        its events, and everything is written out."""
        self.service.deliver(now)
        self.flush()

    @property
    def port(self) -> int:
        """The first listening port (handy with port 0)."""
        return self.addresses[0][1]

    # ------------------------------------------------------------------ lag probe

    def _arm_lag_probe(self) -> None:
        self._lag_probe = asyncio.get_running_loop().call_later(
            LAG_PROBE_INTERVAL, self._probe_lag, time.monotonic() + LAG_PROBE_INTERVAL
        )

    def _probe_lag(self, due: float) -> None:
        """Note how late this timer runs (``metrics.loop_lag``) and arm the next one."""
        self.service.metrics.loop_lag.observe(max(0.0, time.monotonic() - due))
        self._arm_lag_probe()

    # ------------------------------------------------------------------ young collections

    def _arm_young_collection(self) -> None:
        self._young_timer = asyncio.get_running_loop().call_later(
            YOUNG_COLLECTION_INTERVAL, self._collect_young
        )

    def _collect_young(self) -> None:
        """Collect the young generations (:class:`~ivr_server.memory.YoungCollections`: why),
        and arm the next one. Not while the collector is off (``gc.disable()``: whoever turned
        it off meant it)."""
        if gc.isenabled():
            gc.collect(self.young_collections.tick())
        self._arm_young_collection()

    # ------------------------------------------------------------------ connection cap

    def _log_capacity(self) -> None:
        limit = descriptor_limit()
        cap = self.gate.cap
        options = self.config.server
        if cap is None:
            log.info("no file-descriptor limit: IVR connections are not capped")
            return
        reserve = "" if limit is None else f" of {limit} file descriptors"
        log.info(
            "up to %d IVR connections at once%s (server.max-connections %s, "
            "server.reserved-descriptors %d), %s from one address",
            cap,
            reserve,
            "unset" if options.max_connections is None else options.max_connections,
            options.reserved_descriptors,
            options.max_connections_per_peer or "any number",
        )
        if limit is not None and limit - options.reserved_descriptors < 1:
            log.warning(
                "the file-descriptor limit (%d) leaves no room for IVR connections beside "
                "server.reserved-descriptors (%d): raise the limit (LimitNOFILE=, ulimit -n)",
                limit,
                options.reserved_descriptors,
            )

    # ------------------------------------------------------------------ reload

    def reload(
        self, config: ServerConfig | None = None, *, force: bool = False
    ) -> ReloadReport | None:
        """:meth:`request_reload`'s report: ``None`` when nothing was applied."""
        return self.request_reload(config, force=force).report

    def request_reload(
        self, config: ServerConfig | None = None, *, force: bool = False
    ) -> ReloadOutcome:
        """Apply a new configuration (re-read from ``config_path`` when none is given) at once,
        on the loop (:meth:`Reloader.apply <ivr_server.runtime.reload.Reloader.apply>`).

        A file that does not load is refused: the problems are logged and the running
        configuration stays. So is one that would take away the IVR, port, switch, DN or routing
        point of a live call (an emptied file, say), unless ``force``: the log line names the
        calls and why. Listen addresses are fixed for the life of the process. Whatever came of
        it is handed to :attr:`on_reload` (the status file of ``ivr-server reload``). SIGHUP and
        the API use :meth:`reload_file` instead.
        """
        return self.reloader.apply(config, force=force)

    async def reload_file(self, *, force: bool = False) -> ReloadOutcome:
        """Re-read the file in a worker thread and apply it, coalesced with the other requests
        (:meth:`Reloader.request <ivr_server.runtime.reload.Reloader.request>`)."""
        return await self.reloader.request(force=force)

    @property
    def heap_frozen(self) -> bool:
        """:meth:`settle_heap` has run (``serve``): a reload settles the heap again."""
        return self._heap_frozen

    def take_config(self, config: ServerConfig, *, settle: bool = True) -> None:
        """The runtime's share of a reload the service applied: client list, connection cap,
        the router choices put back, the premise links followed, the heap settled (unless
        ``settle`` is false: the caller does it in a later turn of the loop)."""
        if config.ha != self.config.ha:
            log.warning("[ha] changed: high availability keeps its settings until a restart")
        self.config = config
        self.clients = ClientList(config.server.client_list)
        self.gate.cap = connection_cap(config.server, descriptor_limit())
        self.gate.per_peer = config.server.max_connections_per_peer or None
        self.control.after_reload()
        if self.ha is None or self.ha.leads:  # a premise switch added: connect; removed: close
            self.links.sync(self.service.switches)
        self.flush()
        if settle and self._heap_frozen:
            self.settle_heap()


def _count(n: int, noun: str) -> str:
    """``1 call``, ``3 calls``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


async def serve(
    config: ServerConfig,
    *,
    config_path: str | None,
    listen: tuple[ListenAddress, ...] | None = None,
    on_started: Callable[[IvrServer], None] | None = None,
    api_listen: tuple[ListenAddress, ...] | None = None,
    api: ApiFactory | None = None,
    pid_file: str | None = None,
) -> None:
    """Run the server until SIGINT or SIGTERM, then stop gracefully (:meth:`IvrServer.shutdown`,
    up to ``server.drain-time``; a second signal stops at once); SIGHUP reloads the configuration
    file, SIGUSR2 forces the reload (see :meth:`IvrServer.request_reload`). First the soft
    file-descriptor limit is raised to the hard limit. ``pid_file`` is written once the signal
    handlers are in place, with the reload status file beside it (:mod:`.status`), and both are
    removed at the end."""
    before, after = raise_descriptor_limit()
    if before != after:
        log.info("file-descriptor limit raised from %s to %s (the hard limit)", before, after)
    server = IvrServer(
        config, config_path=config_path, listen=listen, api_listen=api_listen, api=api
    )
    await server.start()
    server.settle_heap()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    hurry = asyncio.Event()
    received: list[str] = []

    def on_stop_signal(name: str) -> None:
        if not stop.is_set():
            received.append(name)
            stop.set()
        elif not hurry.is_set():
            log.warning("%s again: stopping at once", name)
            hurry.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop_signal, sig.name)
    loop.add_signal_handler(signal.SIGHUP, server.reloader.signal)
    loop.add_signal_handler(FORCED_RELOAD_SIGNAL, server.reloader.signal, True)
    try:
        if pid_file is not None:
            write_pid_file(pid_file)
            status = ReloadStatusFile(reload_status_path(pid_file))
            status.started()
            server.on_reload = status.record
            server.on_reload_start = status.running
        if on_started is not None:
            on_started(server)
        await stop.wait()
    finally:
        if received:
            await server.shutdown(server.config.server.drain_time, hurry, why=received[0])
        else:
            log.info("stopping")
            await server.stop()
        if pid_file is not None:
            remove_pid_file(pid_file)
