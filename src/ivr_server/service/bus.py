"""The switch-event bus: every switch event to the routers, statistics, listeners and subscribers.

Theory of operation. Requests to a switch are answered by switch events. After every request the
service drains the switches (:meth:`SwitchEventBus.pump`) until they are quiet (a router's answer
makes more events, hence the loop). Every event goes to its switch's router, to the statistics
engine and to the event-stream listeners; then to the subscribers of its type, in the order they
subscribed, until one of them says the event was its own (returns ``True``): call events to the
call manager, agent and link events to monitoring (``MonitorInfo``), the answers to a session's
agent request to agent control. A subscriber of a class sees its subclasses too
(``CallEvent``). When the switches are quiet the hooks of :meth:`SwitchEventBus.when_quiet` run
(monitoring reports what the events changed; the calls' tables are compacted).

An :class:`Origin` says which session's request the events of one pump may answer: events
carrying its ``ref`` are tagged with the request's ``ReqId``. A switch at the end of a link (a
premise PBX) answers later, in a pump of its own: a request whose answer may come later is
announced with :meth:`SwitchEventBus.expect`, and the events that carry its ``ref`` find their
origin there in whichever pump they come (the entry goes once a pump has seen its answer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ivr_server.routing import Router
from ivr_server.service.sessions import Session
from ivr_server.stats import StatsEngine
from ivr_server.switch import Switch, SwitchEvent

__all__ = ["Origin", "Subscriber", "SwitchEventBus"]


@dataclass(frozen=True, slots=True)
class Origin:
    """Who asked the switch for what: events carrying ``ref`` answer this session's request."""

    ref: int
    session: Session
    call_id: str
    req_id: str
    port: str


Subscriber = Callable[[Switch, Any, Origin | None], bool]
"""Called with (switch, event, origin); ``True``: the event was its own, no later subscriber
sees it."""


class SwitchEventBus:
    """Drains the switches and hands each event to the subscribers of its type."""

    def __init__(
        self,
        switches: Mapping[str, Switch],
        listeners: list[Callable[[str, SwitchEvent], None]],
        stats: StatsEngine,
    ) -> None:
        self._switches = switches
        self._listeners = listeners
        self._stats = stats
        self._subscriptions: list[tuple[type[SwitchEvent], Subscriber]] = []
        self._routes: dict[type[SwitchEvent], tuple[Subscriber, ...]] = {}
        """Event type -> its subscribers, worked out at the type's first event."""
        self._quiet: list[Callable[[], None]] = []
        self._expected: dict[int, Origin] = {}
        """ReferenceID -> the origin of a request not answered yet (see :meth:`expect`)."""

    def subscribe(self, event_type: type[SwitchEvent], subscriber: Subscriber) -> None:
        """``subscriber`` gets every event of ``event_type`` (and its subclasses)."""
        self._subscriptions.append((event_type, subscriber))
        self._routes.clear()

    def expect(self, origin: Origin) -> None:
        """The events answering ``origin.ref`` belong to ``origin`` in whichever pump they come
        (a switch behind a link answers after the request's own pump)."""
        self._expected[origin.ref] = origin

    def forget(self, session: Session) -> None:
        """Drop the expected answers of a session that has gone."""
        for ref in [ref for ref, o in self._expected.items() if o.session is session]:
            del self._expected[ref]

    @property
    def expected(self) -> int:
        """How many requests still await their answer (for tests and the status page)."""
        return len(self._expected)

    def when_quiet(self, hook: Callable[[], None]) -> None:
        """``hook`` runs at the end of every pump, once the switches are quiet."""
        self._quiet.append(hook)

    def _route(self, event_type: type[SwitchEvent]) -> tuple[Subscriber, ...]:
        route = tuple(s for t, s in self._subscriptions if issubclass(event_type, t))
        self._routes[event_type] = route
        return route

    def pump(self, now: float, routers: Mapping[str, Router], origin: Origin | None) -> None:
        """Drain every switch until quiet and hand its events out (see the module docstring)."""
        stats = self._stats
        routes = self._routes
        expected = self._expected
        answered: list[int] = []
        busy = True
        while busy:
            busy = False
            for switch in self._switches.values():
                events = switch.drain_events()
                if not events:
                    continue
                busy = True
                router = routers.get(switch.name)
                listeners = self._listeners
                for event in events:
                    if router is not None:
                        router.on_event(switch, event)
                    stats.on_event(switch.name, event, now)
                    if listeners:
                        for listener in listeners:
                            listener(switch.name, event)
                    route = routes.get(type(event))
                    if route is None:
                        route = self._route(type(event))
                    whose = origin
                    if expected:
                        ref = event.reference_id
                        if ref is not None and ref in expected:
                            whose = expected[ref]
                            answered.append(ref)
                    for subscriber in route:
                        if subscriber(switch, event, whose):
                            break
        for ref in answered:
            expected.pop(ref, None)
        for hook in self._quiet:
            hook()
