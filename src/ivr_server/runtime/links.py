"""The asyncio adapter of the switches at the far end of a network link (a premise PBX's CTI link).

Theory of operation. A :class:`~ivr_server.switch.protocol.LinkedSwitch` is sans-IO: it never
opens a socket nor reads a clock. :class:`SwitchLinks` gives each such switch of the service one
:class:`SwitchLink`, which owns its socket. While the switch wants its link (``link_wanted``: a
TOpenLink, the T-Server configured) a task connects to its ``target`` (TLS with the system's trust
store when it says so), passes every door to the switch with the event loop's clock (the one the
service gets from the IVR connections): the connection made, the bytes read, the connection lost
(whichever side closed it, or the attempt failed), and one timer at the switch's
``next_deadline``. After every door the host has the service deliver what the switch queued
(:meth:`IvrService.deliver <ivr_server.service.IvrService.deliver>`) and writes everything out:
the IVR sessions, and each switch's ``data_to_send`` (:meth:`SwitchLinks.flush`, run by every
``IvrServer.flush``, so that what a switch queues while it answers an IVR's request leaves in the
same turn). A switch that says ``closing`` has its socket closed once what it queued is written.

Reconnection: after a failed attempt or a lost connection the task waits, starting at the target's
``reconnect_initial`` and doubling up to ``reconnect_max``; a connection on which the link came up
(the switch's view saw the link up) starts the back-off afresh. The PBX cannot hold the server up:
reads are whatever one socket read brings (the switch's framing bounds a document), a connection
attempt gives up after :data:`CONNECT_TIMEOUT`, and a PBX that does not read what is sent is cut
once :data:`WRITE_LIMIT` bytes wait (then reconnected), so no IVR connection waits for it.

Logs (``ivr_server.runtime.links``): one line per connection made and per connection lost with the
reason; failed attempts one line each, at most one per :data:`FAILURE_LOG_INTERVAL` per switch and
reason, with a count of those not logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Iterator, Mapping
from typing import Final, cast

from ivr_server.switch import Switch
from ivr_server.switch.protocol import LinkedSwitch, LinkTarget, link_of
from ivr_server.throttle import LogThrottle

__all__ = [
    "CONNECT_TIMEOUT",
    "FAILURE_LOG_INTERVAL",
    "WRITE_LIMIT",
    "SwitchLink",
    "SwitchLinks",
    "describe_target",
    "tls_context",
]

log = logging.getLogger("ivr_server.runtime.links")

CONNECT_TIMEOUT: Final = 10.0
"""Seconds a connection attempt (TCP, and the TLS handshake) may take before it counts as failed."""
WRITE_LIMIT: Final = 1024 * 1024
"""Bytes waiting to be written to the PBX above which it counts as not reading: the connection is
cut and made again (the switch's own timers would notice later)."""
_HIGH_WATER: Final = 64 * 1024
"""The transport's write high-water mark (above it the transport reports it is paused)."""
CLOSE_WAIT: Final = 1.0
"""Seconds a stopping server leaves its links to write what is left (a StopApplicationSession)
before they are cut."""
FAILURE_LOG_INTERVAL: Final = 60.0
"""Seconds between two log lines about the same failure to connect to the same PBX."""

AfterDoor = Callable[[float], None]
"""What the host does after each door of a switch, given the time: deliver the switch's events to
the service and write everything out (which calls :meth:`SwitchLinks.flush`)."""


_tls_context: ssl.SSLContext | None = None
"""The client TLS context of every link (the system's trust store), made once: loading the store
takes a tenth of a second."""


async def tls_context() -> ssl.SSLContext:
    """The links' TLS context: ``ssl.create_default_context()`` (certificates and host names
    checked), made on first use in a worker thread so that the event loop does not wait for it."""
    global _tls_context
    if _tls_context is None:
        context = await asyncio.get_running_loop().run_in_executor(None, ssl.create_default_context)
        _tls_context = _tls_context or context
    return _tls_context


def describe_target(target: LinkTarget) -> str:
    """``host:port`` (IPv6 in brackets), ``over TLS`` when it is."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}{' over TLS' if target.tls else ''}"


def _reason(exc: BaseException) -> str:
    """A short, log-friendly account of why a connection failed or ended."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {CONNECT_TIMEOUT:g} s"
    text = str(exc) or type(exc).__name__
    return text


class _Wire(asyncio.Protocol):
    """One connection to the far end; every callback goes to its :class:`SwitchLink`."""

    def __init__(self, link: SwitchLink) -> None:
        self.link = link

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.link.made(self, cast(asyncio.Transport, transport))

    def data_received(self, data: bytes) -> None:
        self.link.received(self, data)

    def eof_received(self) -> bool | None:
        return None  # the far end is done: close our side too (connection_lost follows)

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.lost(self, exc)


class SwitchLink:
    """The socket of one linked switch, its connect/reconnect task and its timer."""

    def __init__(
        self,
        switch: LinkedSwitch,
        after_door: AfterDoor,
        failures: LogThrottle[tuple[str, str]] | None = None,
    ) -> None:
        self.switch = switch
        self._after_door = after_door
        self._failures: LogThrottle[tuple[str, str]] = failures or LogThrottle(FAILURE_LOG_INTERVAL)
        self._task: asyncio.Task[None] | None = None
        self._wire: _Wire | None = None
        """The current connection's protocol (``None``: not connected)."""
        self._transport: asyncio.Transport | None = None
        self._gone: asyncio.Future[None] | None = None
        """Set when the current connection is lost (the task waits for it)."""
        self._disconnected = asyncio.Event()
        """Set while no connection is open (a stop waits for it)."""
        self._disconnected.set()
        self._closed = False
        """The current connection is being closed by us (what is queued is still written)."""
        self._cut_reason: str | None = None
        """Why we cut the current connection, if we did."""
        self._came_up = False
        """The switch's link came up on the current connection."""
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._retired = False
        self.attempts = 0
        """Connection attempts made so far."""
        self.waits: list[float] = []
        """The back-off waits so far, in seconds, oldest first (the last 32)."""

    @property
    def name(self) -> str:
        return self.switch.name

    @property
    def connected(self) -> bool:
        """A connection to the far end is open (not necessarily usable yet)."""
        return self._transport is not None

    @property
    def running(self) -> bool:
        """The connect/reconnect task runs."""
        return self._task is not None and not self._task.done()

    # ------------------------------------------------------------------ the task

    def start(self) -> None:
        """Run the connect/reconnect task if the switch wants its link and none runs."""
        if self._retired or self.running or not self.switch.link_wanted:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"link of switch {self.switch.name}"
        )

    async def _run(self) -> None:
        switch = self.switch
        target = switch.target
        delay = target.reconnect_initial
        while switch.link_wanted and not self._retired:
            self._came_up = False
            connected = await self._connect_once(target)
            if not switch.link_wanted or self._retired:
                break
            if self._came_up:
                delay = target.reconnect_initial
            wait = delay
            delay = min(delay * 2, target.reconnect_max)
            self.waits = [*self.waits[-31:], wait]
            if connected:
                log.info(
                    "switch %s: reconnecting to %s in %g s",
                    switch.name,
                    describe_target(target),
                    wait,
                )
            await asyncio.sleep(wait)

    async def _connect_once(self, target: LinkTarget) -> bool:
        """One attempt, and the connection's life if it opens: whether it opened."""
        loop = asyncio.get_running_loop()
        self.attempts += 1
        self._gone = loop.create_future()
        try:
            context = await tls_context() if target.tls else None
            await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Wire(self),
                    target.host,
                    target.port,
                    ssl=context,
                    server_hostname=target.host if target.tls else None,
                ),
                CONNECT_TIMEOUT,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # refused, unreachable, TLS, name lookup, timeout: all retried
            if self._wire is None:  # (a connection made then cut by the timeout is lost below)
                self._attempt_failed(target, _reason(exc))
                return False
        await self._gone
        return True

    def _log_failures(self, now: float, everything: bool = False) -> None:
        """The summaries of failed attempts not logged one by one that are due (``everything``:
        all of them, as when a connection is made at last)."""
        for summary in self._failures.take_due(now, everything=everything):
            name, why = summary.key
            log.warning(
                "switch %s: %d more failed attempts to connect in the last %.0f s: %s",
                name,
                summary.count,
                summary.seconds,
                why,
            )

    def _attempt_failed(self, target: LinkTarget, reason: str) -> None:
        now = asyncio.get_running_loop().time()
        self._log_failures(now)
        if self._failures.note((self.switch.name, reason), now):
            log.warning(
                "switch %s: cannot connect to the PBX at %s: %s (retrying with back-off up to "
                "%g s)",
                self.switch.name,
                describe_target(target),
                reason,
                target.reconnect_max,
            )
        self.switch.connection_lost(f"cannot connect: {reason}", now)
        self._after_door(now)

    # ------------------------------------------------------------------ the doors

    def made(self, wire: _Wire, transport: asyncio.Transport) -> None:
        """A connection is open (after the TLS handshake when there is one)."""
        if self._retired:
            transport.abort()
            return
        self._wire, self._transport = wire, transport
        self._closed, self._cut_reason = False, None
        self._disconnected.clear()
        transport.set_write_buffer_limits(high=_HIGH_WATER)
        now = asyncio.get_running_loop().time()
        self._log_failures(now, everything=True)
        log.info(
            "switch %s: connected to the PBX at %s",
            self.switch.name,
            describe_target(self.switch.target),
        )
        self.switch.connection_made(now)
        self._after_door(now)

    def received(self, wire: _Wire, data: bytes) -> None:
        if wire is not self._wire or self._closed or not data:
            return  # bytes after we closed (or of an older connection) are not the switch's
        now = asyncio.get_running_loop().time()
        self.switch.data_received(data, now)
        self._after_door(now)

    def lost(self, wire: _Wire, exc: Exception | None) -> None:
        if wire is not self._wire:
            return
        if self._cut_reason is not None:
            reason = self._cut_reason
        elif exc is not None:
            reason = _reason(exc)
        else:
            reason = "closed by us" if self._closed else "closed by the PBX"
        self._wire = self._transport = None
        self._disconnected.set()
        log.log(
            logging.INFO if self._closed and self._cut_reason is None else logging.WARNING,
            "switch %s: connection to the PBX lost: %s",
            self.switch.name,
            reason,
        )
        now = asyncio.get_running_loop().time()
        self.switch.connection_lost(reason, now)
        self._after_door(now)
        gone = self._gone
        if gone is not None and not gone.done():
            gone.set_result(None)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        if self._retired:
            return
        now = asyncio.get_running_loop().time()
        self.switch.handle_timer(now)
        self._after_door(now)

    # ------------------------------------------------------------------ output

    def flush(self) -> None:
        """Write what the switch queued; close the connection when the switch is done with it;
        re-arm the timer; start the task if the switch wants its link again."""
        switch = self.switch
        transport = self._transport
        if transport is not None and not self._closed and not transport.is_closing():
            data = switch.data_to_send()
            if data:
                transport.write(data)
                queued = transport.get_write_buffer_size()
                if queued > WRITE_LIMIT:
                    self._cut(f"the PBX does not read what is sent ({queued} bytes queued)")
                    return
            if switch.closing:
                self._closed = True
                transport.close()  # what is queued is written first
            elif switch.view.link_up:
                self._came_up = True
        self._arm_timer()
        if not self._retired and switch.link_wanted and not self.running:
            self.start()

    def _cut(self, reason: str) -> None:
        """Drop the connection at once (nothing more is written); ``reason`` is logged."""
        transport = self._transport
        if transport is None:
            return
        self._cut_reason = reason
        self._closed = True
        transport.abort()

    def _arm_timer(self) -> None:
        """The timer fires no later than the switch's next deadline. Lazy, as the IVR
        connections' timers: only ever moved earlier; one that fires early runs the switch's
        timers (nothing is due) and is re-armed from the door."""
        if self._retired:
            return
        deadline = self.switch.next_deadline()
        if deadline is None or (self._timer_at is not None and self._timer_at <= deadline):
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = asyncio.get_running_loop().call_at(deadline, self._on_timer)

    # ------------------------------------------------------------------ the end

    def retire(self) -> None:
        """The switch is gone from the service (after its TCloseLink) or the server stops: write
        what it queued (a StopApplicationSession), close the connection, stop the task and the
        timer. The socket closes in the background."""
        self._retired = True
        self.flush()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = self._timer_at = None
        transport = self._transport
        if transport is not None and not self._closed:
            self._closed = True
            transport.close()
        if self._task is not None:
            self._task.cancel()

    def abort(self) -> None:
        """Cut a connection that did not close by itself (a stop's end)."""
        if self._transport is not None:
            self._cut("the server stops")

    async def wait_disconnected(self) -> None:
        """Wait until no connection is open."""
        await self._disconnected.wait()

    async def wait_stopped(self) -> None:
        """Wait for the task to end (after :meth:`retire`)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


class SwitchLinks:
    """The :class:`SwitchLink` of every linked switch of the service, by switch name."""

    def __init__(self, after_door: AfterDoor) -> None:
        self._after_door = after_door
        self._links: dict[str, SwitchLink] = {}
        self._failures: LogThrottle[tuple[str, str]] = LogThrottle(FAILURE_LOG_INTERVAL)

    def __bool__(self) -> bool:
        return bool(self._links)

    def __iter__(self) -> Iterator[SwitchLink]:
        return iter(list(self._links.values()))

    def get(self, name: str) -> SwitchLink | None:
        return self._links.get(name)

    def sync(self, switches: Mapping[str, Switch]) -> None:
        """Follow the service's switches (start-up, reload): a linked switch gone, or replaced
        by another object of the same name, is retired (its TCloseLink's output written first);
        a new one gets its link, which connects if the switch wants it."""
        links = self._links
        for name, link in list(links.items()):
            if switches.get(name) is not link.switch:
                del links[name]
                link.retire()
        for name, switch in switches.items():
            linked = link_of(switch)
            if linked is not None and name not in links:
                links[name] = SwitchLink(linked, self._after_door, self._failures)
        self.flush()

    def flush(self) -> None:
        """Write out every switch's output (see :meth:`SwitchLink.flush`)."""
        for link in self._links.values():
            link.flush()

    async def stop(self, close_wait: float = CLOSE_WAIT) -> None:
        """Retire every link; what is left to write gets ``close_wait`` seconds, then the
        sockets are cut."""
        links = list(self._links.values())
        self._links.clear()
        for link in links:
            link.retire()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(link.wait_disconnected() for link in links)), close_wait
            )
        for link in links:
            link.abort()
        for link in links:
            await link.wait_stopped()
