"""``GET /api/v1/events``: every switch event, as JSON, to WebSocket clients.

The hub puts one listener in ``service.listeners`` while at least one client is connected and
takes it out when the last one leaves, so the IVR hot path pays nothing when nobody watches. The
listener runs inside the service's event fan-out and does the least it can: it notes the event
and its time in the hub's backlog. One task of the hub then works through the backlog in slices
of at most :data:`SLICE_SECONDS` (then it yields to the loop, so IVR traffic keeps its share
whatever the number of clients): for each event it finds the clients whose filter wants it and
serialises it once, the same ``bytes`` going into every one of their bounded queues. A task per
client sends what its queue holds, at most :data:`SEND_BATCH` messages per loop turn.

A client whose queue is full (it does not read fast enough) is dropped: its queue is discarded,
it gets a last ``{"event": "overflow"}`` message and the connection is closed. How many clients
may be connected at once is capped (``api.max-subscribers``, and per client address
``api.max-subscribers-per-peer``: :meth:`EventHub.refusal`). Nothing a client does can block
the server.
"""

from __future__ import annotations

__all__ = [
    "EventFilter",
    "EventHub",
    "Subscriber",
    "event_bytes",
    "event_names",
    "split_values",
]

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp import WSMsgType, web

from ivr_server import switch as switch_module
from ivr_server.api.jsonify import event_json
from ivr_server.service import IvrService
from ivr_server.service.notices import NOTICES
from ivr_server.switch import SwitchEvent

log = logging.getLogger("ivr_server.api")

SEND_TIMEOUT: Final = 10.0
"""A client that does not take one message within this many seconds is disconnected."""
SLICE_SECONDS: Final = 0.002
"""The longest the fan-out works through its backlog before it yields to the loop."""
SEND_BATCH: Final = 16
"""Messages a client's task sends in one loop turn before it yields."""


def event_names() -> frozenset[str]:
    """Every event name the switches and the server publish (the ``type`` filter's vocabulary)."""
    names: set[str] = {notice.name for notice in NOTICES}
    for attr in switch_module.__all__:
        obj = getattr(switch_module, attr)
        if isinstance(obj, type) and issubclass(obj, SwitchEvent) and obj is not SwitchEvent:
            name = obj.__dict__.get("name")
            if isinstance(name, str) and name not in ("CallEvent", "RoutingEvent"):
                names.add(name)
    return frozenset(names)


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a client wants. Empty sets do not filter; sets of different kinds combine
    with AND, values within one kind with OR."""

    dns: frozenset[str] = frozenset()
    """``event.dn`` is one of these."""
    ivr_dns: frozenset[tuple[str, str]] = frozenset()
    """``(switch, event.dn)`` or ``(switch, event.other_dn)`` is a port DN of the chosen IVRs."""
    ivrs_given: bool = False
    """An IVR filter was given (even one whose IVRs have no port DN)."""
    types: frozenset[str] = frozenset()
    """The event's T-Library name is one of these."""

    def matches(self, switch: str, event: SwitchEvent) -> bool:
        if self.types and event.name not in self.types:
            return False
        dn = getattr(event, "dn", None)
        if self.dns and dn not in self.dns:
            return False
        if self.ivrs_given:
            other = getattr(event, "other_dn", None)
            if (switch, dn) not in self.ivr_dns and (switch, other) not in self.ivr_dns:
                return False
        return True


class Subscriber:
    """One WebSocket client: its filter, its bounded queue of serialised events and its sending
    task."""

    def __init__(self, hub: EventHub, filter: EventFilter, limit: int, peer: str = "") -> None:
        self.hub = hub
        self.filter = filter
        self.limit = limit
        self.peer = peer
        """The client's address (the per-address cap)."""
        self.pending: deque[bytes] = deque()
        """Events as UTF-8 JSON text, built once by the hub for every client that wants them."""
        self.wake = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def offer(self, data: bytes) -> None:
        """Queue one serialised event; a full queue drops the client (overflow)."""
        if self.overflowed or self.closed:
            return
        if len(self.pending) >= self.limit:
            self.overflowed = True
            self.pending.clear()
            self.hub.unsubscribe(self)
        else:
            self.pending.append(data)
        self.wake.set()

    async def run(self, ws: web.WebSocketResponse) -> None:
        """Send queued events until the client leaves or overflows."""
        try:
            while not self.closed:
                await self.wake.wait()
                self.wake.clear()
                sent = 0
                while self.pending and not self.overflowed and not self.closed:
                    await asyncio.wait_for(
                        ws.send_frame(self.pending.popleft(), WSMsgType.TEXT), SEND_TIMEOUT
                    )
                    sent += 1
                    if sent % SEND_BATCH == 0:
                        await asyncio.sleep(0)  # the other clients and the IVRs get a turn
                if self.overflowed:
                    log.warning("event stream client too slow: dropped after %d events", self.limit)
                    await asyncio.wait_for(
                        ws.send_str(
                            json.dumps(
                                {
                                    "event": "overflow",
                                    "time": round(time.time(), 6),
                                    "limit": self.limit,
                                    "reason": "the client did not read fast enough",
                                }
                            )
                        ),
                        SEND_TIMEOUT,
                    )
                    await asyncio.wait_for(ws.close(code=1008, message=b"overflow"), SEND_TIMEOUT)
                    return
        except (TimeoutError, ConnectionError, RuntimeError) as exc:
            log.info("event stream client dropped: %r", exc)
            self.hub.unsubscribe(self)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(code=1011, message=b"too slow"), 1.0)


class EventHub:
    """The event stream's clients, the one service listener that feeds them and the task that
    fans its events out."""

    def __init__(self, service: IvrService) -> None:
        self.service = service
        self.subscribers: set[Subscriber] = set()
        self.sockets: set[web.WebSocketResponse] = set()
        """Every open event-stream WebSocket (closed when the API stops)."""
        self.backlog: deque[tuple[str, SwitchEvent, float]] = deque()
        """Events the listener noted and the fan-out has not handed out yet."""
        self._ready = asyncio.Event()
        self._fan_out: asyncio.Task[None] | None = None
        self._per_peer: dict[str, int] = {}

    def _listener(self, switch: str, event: SwitchEvent) -> None:
        self.backlog.append((switch, event, time.time()))
        self._ready.set()

    def refusal(self, peer: str, most: int, most_per_peer: int) -> str | None:
        """Why one more client from ``peer`` is refused (``None``: it is not): ``most``
        clients at once, ``most_per_peer`` of one address (``0``: no such limit)."""
        if len(self.subscribers) >= most:
            if most == 0:
                return "the event stream is turned off (api.max-subscribers = 0)"
            return (
                f"{most} event-stream clients are connected, the most allowed (api.max-subscribers)"
            )
        if most_per_peer and self._per_peer.get(peer, 0) >= most_per_peer:
            return (
                f"{most_per_peer} event-stream clients from {peer} are connected, the most "
                "allowed from one address (api.max-subscribers-per-peer)"
            )
        return None

    def subscribe(self, filter: EventFilter, limit: int, peer: str = "") -> Subscriber:
        subscriber = Subscriber(self, filter, limit, peer)
        if not self.subscribers:
            self.service.listeners.append(self._listener)
        if self._fan_out is None or self._fan_out.done():
            self._fan_out = asyncio.get_running_loop().create_task(self._fan_out_events())
        self.subscribers.add(subscriber)
        self._per_peer[peer] = self._per_peer.get(peer, 0) + 1
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber not in self.subscribers:
            return
        self.subscribers.discard(subscriber)
        left = self._per_peer.pop(subscriber.peer, 1) - 1
        if left:
            self._per_peer[subscriber.peer] = left
        subscriber.closed = True
        subscriber.wake.set()
        if not self.subscribers:
            with contextlib.suppress(ValueError):
                self.service.listeners.remove(self._listener)
            self.backlog.clear()

    async def _fan_out_events(self) -> None:
        """Hand the backlog's events out, each serialised once, in slices of at most
        :data:`SLICE_SECONDS`; ends when the last client has left."""
        backlog, clock = self.backlog, time.perf_counter
        while self.subscribers:
            await self._ready.wait()
            self._ready.clear()
            until = clock() + SLICE_SECONDS
            while backlog:
                switch, event, at = backlog.popleft()
                data: bytes | None = None
                for subscriber in list(self.subscribers):
                    if subscriber.filter.matches(switch, event):
                        if data is None:
                            try:
                                data = event_bytes(event, at)
                            except (TypeError, ValueError):  # never stop the stream for one
                                log.exception("event %s cannot be sent as JSON", event.name)
                                break
                        subscriber.offer(data)
                if backlog and clock() >= until:
                    await asyncio.sleep(0)
                    until = clock() + SLICE_SECONDS

    async def close_all(self) -> None:
        for subscriber in list(self.subscribers):
            self.unsubscribe(subscriber)
        fan_out, self._fan_out = self._fan_out, None
        if fan_out is not None:
            fan_out.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await fan_out
        sockets = list(self.sockets)
        if sockets:
            await asyncio.gather(
                *(
                    asyncio.wait_for(ws.close(code=1001, message=b"server stopping"), 2.0)
                    for ws in sockets
                ),
                return_exceptions=True,
            )


def event_bytes(event: SwitchEvent, at: float) -> bytes:
    """The event as the stream sends it: compact JSON text, UTF-8."""
    return json.dumps(event_json(event, at), separators=(",", ":")).encode()


def split_values(values: Iterable[str]) -> list[str]:
    """Repeatable, comma-separated query values, flattened; empty items dropped."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]
