"""The running server: listeners, the service core, reload, and orderly start and stop.

``IvrServer`` is the only object that knows both asyncio and the service. Tests start it in-process
on ``127.0.0.1:0``; the CLI runs :func:`serve` until SIGINT/SIGTERM, reloading on SIGHUP, and
then stops gracefully (:meth:`IvrServer.shutdown`: the calls in progress get ``drain-time`` to
end).

Reload (:meth:`IvrServer.request_reload`): SIGHUP, ``ivr-server reload`` or ``POST /api/v1/reload``
re-read the file; a file that does not load, or that would take away the IVR, port, switch or DN
of a live call, is refused and the running configuration stays. SIGUSR2 (``ivr-server reload
--force``) or the API's ``{"force": true}`` apply the latter anyway.

The HTTP API (``ivr_server.api``) sits above this layer, so the server does not import it: the
caller passes its factory (``IvrServer(config, api=ApiServer, api_listen=...)``), and the server
starts it after its IVR listeners, in the same event loop, and stops it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol, cast

from ivr_server.config import ServerConfig, load_config
from ivr_server.config.model import ListenAddress
from ivr_server.errors import ConfigError
from ivr_server.memory import release_free_memory
from ivr_server.runtime.connection import IvrLinkProtocol
from ivr_server.runtime.limits import (
    ConnectionGate,
    connection_cap,
    descriptor_limit,
    raise_descriptor_limit,
    set_tcp_keep_alive,
)
from ivr_server.runtime.status import (
    ReloadStatusFile,
    reload_status_path,
    remove_pid_file,
    write_pid_file,
)
from ivr_server.service import IvrService, ReloadRefused, ReloadReport, StrandedCall
from ivr_server.service.control import Control
from ivr_server.service.reload import describe_stranded
from ivr_server.wire import GliErrorCode, encode_error_frame

__all__ = ["ApiFactory", "ApiPart", "IvrServer", "ReloadOutcome", "serve"]

log = logging.getLogger("ivr_server.runtime")


class ApiPart(Protocol):
    """What the server needs of its HTTP API (``ivr_server.api.ApiServer``)."""

    addresses: list[tuple[str, int]]
    """Where it listens, once started."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


LAG_PROBE_INTERVAL: Final = 0.25
"""Seconds between two runs of the event-loop lag probe (``metrics.loop_lag``)."""
FLUSH_AFTER_BYTES: Final = 64 * 1024
"""Bytes read in one turn of the event loop after which its replies are written without waiting
for the turn's other connections (``IvrServer.after_read``)."""

ApiFactory = Callable[["IvrServer"], ApiPart]
"""Builds the API of a server (``ivr_server.api.ApiServer`` is one)."""

FORCED_RELOAD_SIGNAL: Final = signal.SIGUSR2
"""The signal of ``ivr-server reload --force`` (SIGHUP is the safe reload). Not SIGUSR1, which
servers conventionally use to reopen their log files."""
_SERVER_FULL: Final = encode_error_frame(GliErrorCode.TOO_MANY_CONNECTIONS)
"""What a connection over the cap gets before it is closed."""
DRAIN_POLL: Final = 0.05
"""Seconds between two looks, while a stop drains, at whether any call is left."""
CLOSE_WAIT: Final = 2.0
"""Seconds a stopping server waits for its closed connections to take what is left to write;
then the rest are cut (``abort``)."""


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What a reload request came to (for the log, the API's answer and ``ivr-server reload``)."""

    result: Literal["applied", "refused", "invalid", "no-file"]
    """``applied``; ``refused``: it would strand live calls (``stranded``) and was not forced;
    ``invalid``: the file does not load (``problems``); ``no-file``: running on the built-in
    default, there is nothing to re-read. In every case but ``applied`` nothing changed."""
    message: str
    """The same in words (the log line)."""
    report: ReloadReport | None = None
    """What changed (``applied`` only)."""
    stranded: tuple[StrandedCall, ...] = ()
    """The live calls the file would strand (``refused``), or that a forced reload ended
    (``applied``)."""
    problems: tuple[str, ...] = ()
    """Why the file does not load (``invalid``)."""
    force: bool = False
    """Whether the reload was forced (SIGUSR2, ``reload --force``, ``{"force": true}``)."""


class IvrServer:
    """An IVR Server bound to its listeners. ``await start()``, then ``await stop()``."""

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
        self.config = config
        self.config_path = config_path
        """The file a reload re-reads (``None``: the built-in default, which cannot change)."""
        self.listen = listen or config.server.listen
        self.frame_timeout = frame_timeout
        """Longest wait for the rest of a partial GLI frame before the link is closed."""
        self.service = IvrService(config, id_seed=int(time.time()) & 0xFFFFFFFF)
        self.control = Control(self.service)
        """Operator actions on the service (the API's act side)."""
        self.api_listen = config.api.listen if api_listen is None else api_listen
        """Where the HTTP API listens (empty: no API); ``--api-listen`` overrides the file."""
        self._api_factory = api
        self.api: ApiPart | None = None
        """The running HTTP API, if any."""
        self.started_at = time.time()
        """When the server was created (Unix time)."""
        self.protocols: dict[int, IvrLinkProtocol] = {}
        self.addresses: list[tuple[str, int]] = []
        self._servers: list[asyncio.Server] = []
        self._allowed: list[tuple[set[str], int | None]] = self._compile_client_list(config)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._lag_probe: asyncio.TimerHandle | None = None
        self._heap_frozen = False
        self._reads: list[IvrLinkProtocol] = []
        """Connections that have read in this turn of the event loop, not yet written out."""
        self._read_bytes = 0
        """What they read, in bytes."""
        self._turn_end_due = False
        """Whether ``end_turn`` is scheduled."""
        self.gate = ConnectionGate(connection_cap(config.server, descriptor_limit()))
        """Admits IVR connections up to the cap (``server.max-connections``, the descriptor
        limit less ``server.reserved-descriptors``)."""
        self._admitted: dict[IvrLinkProtocol, str] = {}
        """Connections the gate admitted and their peer's host, until they close."""
        self._refusal_log: asyncio.TimerHandle | None = None
        self._held: list[IvrLinkProtocol] = []
        """Connections with frames read but not yet handled: each gets a batch in the next turn."""
        self.on_reload: Callable[[ReloadOutcome], None] | None = None
        """Called with the outcome of every reload request (``serve`` writes it to the status
        file beside the pid file, for ``ivr-server reload``)."""

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        keep_alive = self.config.server.tcp_keep_alive
        for address in self.listen:
            host = address.host or "0.0.0.0"
            server = await loop.create_server(
                lambda: IvrLinkProtocol(self),
                host,
                address.port,
                reuse_address=True,
                backlog=self.config.server.listen_backlog,
            )
            self._servers.append(server)
            # uvloop's Server.sockets is a list, typeshed says tuple: read it untyped so that the
            # compiled build (which checks declared types) takes either.
            for sock in cast("Any", server).sockets:
                set_tcp_keep_alive(sock, keep_alive)  # accepted sockets inherit it (Linux)
                name = sock.getsockname()
                self.addresses.append((str(name[0]), int(name[1])))
        log.info(
            "listening on %s",
            ", ".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.addresses),
        )
        self._log_capacity()
        self._arm_lag_probe()
        if self._api_factory is not None and self.api_listen:
            api = self._api_factory(self)
            try:
                await api.start()
            except BaseException:
                await self.stop()
                raise
            self.api = api

    @property
    def api_addresses(self) -> list[tuple[str, int]]:
        """Where the HTTP API listens (empty: no API)."""
        return list(self.api.addresses) if self.api is not None else []

    async def stop(self) -> None:
        self.flush_reads()  # the replies to what was read in this turn go out before closing
        self._held.clear()  # frames read and not yet handled are dropped with their connections
        if self.api is not None:
            api, self.api = self.api, None
            await api.stop()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lag_probe is not None:
            self._lag_probe.cancel()
            self._lag_probe = None
        if self._refusal_log is not None:  # the refusals not logged yet are logged now
            self._refusal_log.cancel()
            self._log_refusals()
        for server in self._servers:
            server.close()
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
        (the last line). docs/operations.md, "Stopping"."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        service = self.service
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
        collections stay short whatever the size of the configuration (with 50,000 ports an
        unfrozen full collection takes hundreds of milliseconds, stopping every call for that
        long). ``serve`` calls it once started; a reload unfreezes, collects and freezes again so
        that the old configuration can be freed. Then the heap is trimmed: reading a configuration
        of 50,000 ports leaves 7-15 MB free in it."""
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self._heap_frozen = True
        release_free_memory()

    @property
    def port(self) -> int:
        """The first listening port (handy with port 0)."""
        return self.addresses[0][1]

    # ------------------------------------------------------------------ output

    def after_read(self, protocol: IvrLinkProtocol, size: int) -> None:
        """Note that ``protocol`` has handled a read of ``size`` bytes; its output waits for
        :meth:`flush_reads`.

        The event loop hands every readable connection its bytes in one turn; the replies are
        written once all of them have been handled (``call_soon`` runs before the loop polls
        again), not after each. With many connections each bringing a request or two, that is one
        pass over the service's output and timers per turn instead of per connection, and the
        writes leave in one burst, so a peer on the same host is woken once for all of them
        (docs/design.md, "The hot path"). Once a turn has read :data:`FLUSH_AFTER_BYTES`, what it
        produced is written at once, so that a turn in which hundreds of connections each bring
        hundreds of requests does not hold all their replies in memory together. The turn still
        schedules one callback only: uvloop keeps up to 250 spent callback handles for reuse, and
        handles made by the hundred during a peak pinned 17 MB of heap after it (measured with
        ``bench_held.py``: RSS +14% of idle after 50,000 calls, against +3-5% with one)."""
        if not self._turn_end_due:
            self._turn_end_due = True
            protocol.loop.call_soon(self.end_turn)
        self._reads.append(protocol)
        self._read_bytes += size
        if self._read_bytes >= FLUSH_AFTER_BYTES:
            self.flush_reads()

    def end_turn(self) -> None:
        """Run by the event loop once the turn's reads are handled (see :meth:`after_read`):
        write their replies, then give every connection with frames held back from earlier reads
        its next batch (:meth:`hold`); their replies go out at the end of the next turn."""
        self._turn_end_due = False
        self.flush_reads()
        if self._held:
            held = self._held
            self._held = []
            for protocol in held:
                protocol.receive_more()

    def hold(self, protocol: IvrLinkProtocol) -> None:
        """Note that ``protocol`` has frames read and not yet handled (it read more than one
        turn's batch, ``TURN_FRAMES`` or ``TURN_BYTES``): the end of this turn gives it the next
        batch. One batch per connection per turn, after every readable connection's read of that
        turn: a connection that sends more than it gets answered waits for itself, not the others
        (docs/design.md, "Fairness")."""
        self._held.append(protocol)
        if not self._turn_end_due:
            self._turn_end_due = True
            protocol.loop.call_soon(self.end_turn)

    def flush_reads(self) -> None:
        """Write out what the reads so far produced and re-arm the connections' timers."""
        reads = self._reads
        if not reads:
            return
        self._reads = []
        self._read_bytes = 0
        self.flush()
        for protocol in reads:
            protocol.finish_read()

    def flush(self) -> None:
        """Write out every session the service queued data for; re-arm the service's timer."""
        protocols = self.protocols
        for session in self.service.take_dirty():
            protocol = protocols.get(session.id)
            if protocol is not None:
                protocol.flush()
        # Lazy, like the connections' timers: the timer only ever moves earlier. Calls ending
        # or routing dialogs closing move the earliest deadline later many times a second; the
        # timer then fires early, the service finds nothing due, and flush() re-arms it.
        deadline = self.service.next_deadline()
        if deadline is not None and (self._timer_at is None or deadline < self._timer_at):
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = deadline
            self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    def _arm_lag_probe(self) -> None:
        self._lag_probe = asyncio.get_running_loop().call_later(
            LAG_PROBE_INTERVAL, self._probe_lag, time.monotonic() + LAG_PROBE_INTERVAL
        )

    def _probe_lag(self, due: float) -> None:
        """Note how late this timer runs (``metrics.loop_lag``) and arm the next one."""
        self.service.metrics.loop_lag.observe(max(0.0, time.monotonic() - due))
        self._arm_lag_probe()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.service.handle_timer(asyncio.get_running_loop().time())
        self.flush()

    # ------------------------------------------------------------------ connection cap

    def admit(
        self, protocol: IvrLinkProtocol, transport: asyncio.Transport, host: str, peer: str
    ) -> bool:
        """May the IVR connection ``protocol`` just accepted from ``peer`` stay? Over the cap it
        gets a GLI Error frame (code 7) and is closed here; the refusal is logged, at most once
        per ``gate.log_interval`` (with a count)."""
        gate = self.gate
        if gate.admit(host, protocol.loop.time()):
            self._admitted[protocol] = host
            return True
        transport.write(_SERVER_FULL)
        transport.close()
        if gate.log_due and self._refusal_log is None:
            self._refusal_log = protocol.loop.call_later(gate.log_interval, self._log_refusals)
        return False

    def release(self, protocol: IvrLinkProtocol) -> None:
        """``protocol``'s connection closed (whether it was admitted or not)."""
        host = self._admitted.pop(protocol, None)
        if host is not None:
            self.gate.closed(host)

    def _log_refusals(self) -> None:
        self._refusal_log = None
        self.gate.log_refusals(asyncio.get_running_loop().time())

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
            "server.reserved-descriptors %d)",
            cap,
            reserve,
            "unset" if options.max_connections is None else options.max_connections,
            options.reserved_descriptors,
        )
        if limit is not None and limit - options.reserved_descriptors < 1:
            log.warning(
                "the file-descriptor limit (%d) leaves no room for IVR connections beside "
                "server.reserved-descriptors (%d): raise the limit (LimitNOFILE=, ulimit -n)",
                limit,
                options.reserved_descriptors,
            )

    # ------------------------------------------------------------------ access list

    @staticmethod
    def _compile_client_list(config: ServerConfig) -> list[tuple[set[str], int | None]]:
        compiled: list[tuple[set[str], int | None]] = []
        for entry in config.server.client_list:
            text = str(entry)
            host, _, port = text.rpartition(":")
            host = host.strip("[]")
            addresses = {host}
            with contextlib.suppress(OSError):
                for info in socket.getaddrinfo(host, None):
                    addresses.add(str(info[4][0]))
            compiled.append((addresses, None if port == "*" else int(port)))
        return compiled

    def client_allowed(self, host: str, port: int) -> bool:
        """Is a client at ``host:port`` allowed (original ``gli-client-list``; empty = all)?"""
        if not self._allowed:
            return True
        candidates = {host}
        with contextlib.suppress(ValueError):
            ip = ipaddress.ip_address(host)
            if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
                candidates.add(str(ip.ipv4_mapped))
        return any(
            candidates & hosts and (want is None or want == port) for hosts, want in self._allowed
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
        """Apply a new configuration (re-read from ``config_path`` when none is given).

        A file that does not load is refused: the problems are logged and the running
        configuration stays. So is one that would take away the IVR, port, switch, DN or routing
        point of a live call (an emptied file, say), unless ``force``: the log line names the
        calls and why. Listen addresses are fixed for the life of the process. Whatever came of
        it is handed to :attr:`on_reload` (the status file of ``ivr-server reload``).
        """
        outcome = self._reload(config, force)
        if self.on_reload is not None:
            try:
                self.on_reload(outcome)
            except Exception:  # a status file that cannot be written must not undo the reload
                log.exception("reload: the outcome could not be recorded")
        return outcome

    def _reload(self, config: ServerConfig | None, force: bool) -> ReloadOutcome:
        if config is None:
            if self.config_path is None:
                message = "running on the built-in default configuration; nothing to re-read"
                log.warning("reload: %s", message)
                return ReloadOutcome("no-file", message, force=force)
            # one name per except clause: the compiled build gives a local variable one type
            try:
                config = load_config(self.config_path)
            except ConfigError as invalid:
                log.error("reload refused, the running configuration stays: %s", invalid)
                return ReloadOutcome(
                    "invalid",
                    str(invalid),
                    problems=tuple(str(p) for p in invalid.problems),
                    force=force,
                )
            except OSError as unreadable:
                message = f"cannot read {self.config_path}: {unreadable}"
                log.error("reload refused, %s", message)
                return ReloadOutcome("invalid", message, problems=(message,), force=force)
        try:
            report = self.service.reload(config, force=force, now=asyncio.get_running_loop().time())
        except ReloadRefused as refused:
            message = (
                f"{refused}; the running configuration stays (to apply it anyway: "
                "ivr-server reload --force, SIGUSR2, or POST /api/v1/reload with "
                '{"force": true})'
            )
            log.error("reload refused: %s", message)
            return ReloadOutcome("refused", message, stranded=refused.stranded, force=force)
        stranded = report.stranded
        message = f"configuration reloaded: {report.describe()}"
        if stranded:
            log.warning(
                "configuration reloaded by force, after ending %s (EndCall Timeout to their IVR, "
                "ports freed)",
                describe_stranded(stranded),
            )
        self.config = config
        self._allowed = self._compile_client_list(config)
        self.gate.cap = connection_cap(config.server, descriptor_limit())
        self.control.after_reload()
        self.flush()
        if self._heap_frozen:
            self.settle_heap()
        return ReloadOutcome("applied", message, report=report, stranded=stranded, force=force)


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
    loop.add_signal_handler(signal.SIGHUP, server.request_reload)
    loop.add_signal_handler(FORCED_RELOAD_SIGNAL, lambda: server.request_reload(force=True))
    try:
        if pid_file is not None:
            write_pid_file(pid_file)
            status = ReloadStatusFile(reload_status_path(pid_file))
            status.started()
            server.on_reload = status.record
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
