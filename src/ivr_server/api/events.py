"""``GET /api/v1/events``: every switch event, as JSON, to WebSocket clients.

The hub puts one listener in ``service.listeners`` while at least one client is connected and
takes it out when the last one leaves, so the IVR hot path pays nothing when nobody watches. The
listener runs inside the service's event fan-out: it only filters and appends to each client's
bounded queue; a task per client serialises and sends. A client whose queue is full (it does not
read fast enough) is dropped: its queue is discarded, it gets a last ``{"event": "overflow"}``
message and the connection is closed. Nothing a client does can block the server.
"""

from __future__ import annotations

__all__ = ["EventFilter", "EventHub", "Subscriber", "event_names", "split_values"]

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aiohttp import web

from ivr_server import switch as switch_module
from ivr_server.api.jsonify import event_json
from ivr_server.service import IvrService
from ivr_server.service.notices import NOTICES
from ivr_server.switch import SwitchEvent

log = logging.getLogger("ivr_server.api")

SEND_TIMEOUT: Final = 10.0
"""A client that does not take one message within this many seconds is disconnected."""


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
    """One WebSocket client: its filter, its bounded queue and its sending task."""

    def __init__(self, hub: EventHub, filter: EventFilter, limit: int) -> None:
        self.hub = hub
        self.filter = filter
        self.limit = limit
        self.pending: deque[tuple[float, SwitchEvent]] = deque()
        self.wake = asyncio.Event()
        self.overflowed = False
        self.closed = False

    def offer(self, switch: str, event: SwitchEvent, now: float) -> None:
        if self.overflowed or not self.filter.matches(switch, event):
            return
        if len(self.pending) >= self.limit:
            self.overflowed = True
            self.pending.clear()
            self.hub.unsubscribe(self)
        else:
            self.pending.append((now, event))
        self.wake.set()

    async def run(self, ws: web.WebSocketResponse) -> None:
        """Send queued events until the client leaves or overflows."""
        try:
            while not self.closed:
                await self.wake.wait()
                self.wake.clear()
                while self.pending and not self.overflowed and not self.closed:
                    at, event = self.pending.popleft()
                    text = json.dumps(event_json(event, at), separators=(",", ":"))
                    await asyncio.wait_for(ws.send_str(text), SEND_TIMEOUT)
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
    """The event stream's clients and the one service listener that feeds them."""

    def __init__(self, service: IvrService) -> None:
        self.service = service
        self.subscribers: set[Subscriber] = set()
        self.sockets: set[web.WebSocketResponse] = set()
        """Every open event-stream WebSocket (closed when the API stops)."""

    def _listener(self, switch: str, event: SwitchEvent) -> None:
        now = time.time()
        for subscriber in list(self.subscribers):
            subscriber.offer(switch, event, now)

    def subscribe(self, filter: EventFilter, limit: int) -> Subscriber:
        subscriber = Subscriber(self, filter, limit)
        if not self.subscribers:
            self.service.listeners.append(self._listener)
        self.subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        if subscriber not in self.subscribers:
            return
        self.subscribers.discard(subscriber)
        subscriber.closed = True
        subscriber.wake.set()
        if not self.subscribers:
            with contextlib.suppress(ValueError):
                self.service.listeners.remove(self._listener)

    async def close_all(self) -> None:
        for subscriber in list(self.subscribers):
            self.unsubscribe(subscriber)
        sockets = list(self.sockets)
        if sockets:
            await asyncio.gather(
                *(
                    asyncio.wait_for(ws.close(code=1001, message=b"server stopping"), 2.0)
                    for ws in sockets
                ),
                return_exceptions=True,
            )


def split_values(values: Iterable[str]) -> list[str]:
    """Repeatable, comma-separated query values, flattened; empty items dropped."""
    return [item.strip() for value in values for item in value.split(",") if item.strip()]
