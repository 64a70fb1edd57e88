"""Routers chosen per routing point at run time: the external router and the dispatcher.

* :class:`ExternalRouter` serves routing points whose calls are routed by someone outside the
  server (an HTTP API client, docs/api.md): it answers nothing itself. The outside router learns
  of waiting calls from the event stream or the API's routing-point view and answers through the
  switch (``TRouteCall`` / ``TApplyTreatment``); without an answer the router timeout's
  ``RouteResponse RouteType='Default'`` applies, as for any router. It is *live*
  (:meth:`ExternalRouter.is_live`, MODES-AND-HA G19: a Network call is taken only at a routing
  point with a live router) while its client was heard of within a window: the client chose it,
  routed or treated one of its calls, or read the routing points.
* :class:`RoutingPointDispatcher` sits in a switch's router slot when at least one routing point
  of the switch is served by another router than the configured one. Per routing point it hands
  the events *about that routing point* (routing events and ``EventError`` whose ``dn`` is the
  routing point) to the router chosen for it, or to nobody (no router: the router timeout
  answers); every other event goes to the configured router (the built-in one), which needs them
  to forget its dialogs (``EventReleased`` on the port DN...).

Sans-IO like the rest of the package: no clock, no asyncio. A router that must wait for an
answer from far away (the API's webhook router) lives with the event loop, in ``api/``.
"""

from __future__ import annotations

__all__ = [
    "EXTERNAL_ROUTER_WINDOW",
    "ExternalRouter",
    "LiveRouter",
    "RoutingPointDispatcher",
    "router_is_live",
    "routing_point_live",
]

from collections.abc import Mapping
from typing import Final, Protocol, runtime_checkable

from ivr_server.switch import EventError, RoutingEvent, Switch, SwitchEvent

from .router import Router

EXTERNAL_ROUTER_WINDOW: Final = 300.0
"""Seconds an external router stays live after its client was last heard of, when nobody says
otherwise (the server passes ``[api] external-router-window``, of the same default)."""


@runtime_checkable
class LiveRouter(Protocol):
    """A router that may be gone although it is chosen: one that lives outside the server (the
    external router's client, the webhook's HTTP service)."""

    def is_live(self, now: float) -> bool:
        """Can the router be expected to answer a call that starts waiting at ``now``?"""
        ...


def router_is_live(router: Router | None, now: float) -> bool:
    """Would a call waiting now at a routing point served by ``router`` be routed by someone
    (MODES-AND-HA G19)? No router: no. A router inside the server (the built-in rules): yes. A
    :class:`LiveRouter`: if it says it is live."""
    if router is None:
        return False
    if isinstance(router, LiveRouter):
        return router.is_live(now)
    return True


def routing_point_live(slot: Router | None, point: str, now: float) -> bool:
    """Is routing point ``point`` served by a live router at ``now`` (MODES-AND-HA G19: the
    condition for taking a Network call there)? ``slot`` is what the switch's router slot holds
    (a router, a :class:`RoutingPointDispatcher`, or ``None``)."""
    if isinstance(slot, RoutingPointDispatcher):
        return router_is_live(slot.router_of(point), now)
    return slot is not None and point in slot.routing_points() and router_is_live(slot, now)


class ExternalRouter:
    """Serves ``points`` by answering nothing: an outside client routes their calls.

    The outside client cannot be seen from here (HTTP requests come and go), so the router
    remembers when it was last heard of (:meth:`heard`, called by whoever serves the client's
    requests) and counts as live for ``window`` seconds after that. ``now`` is the moment it is
    chosen (the choice itself is the first sign of life); ``None``: not heard of yet.
    """

    def __init__(
        self,
        points: frozenset[str],
        *,
        window: float = EXTERNAL_ROUTER_WINDOW,
        now: float | None = None,
    ) -> None:
        self._points = points
        self.window = window
        self.heard_at = now
        """When the client was last heard of (the service's clock); ``None``: never."""

    def heard(self, now: float) -> None:
        """The client showed it is there at ``now`` (it routed, treated, chose or looked)."""
        if self.heard_at is None or now > self.heard_at:
            self.heard_at = now

    def is_live(self, now: float) -> bool:
        """Was the client heard of within the last ``window`` seconds?"""
        return self.heard_at is not None and now - self.heard_at <= self.window

    def routing_points(self) -> frozenset[str]:
        return self._points

    def on_event(self, switch: Switch, event: SwitchEvent) -> None:
        """Nothing to do: the outside router answers through the switch on its own."""


class RoutingPointDispatcher:
    """One switch's router slot, with a router chosen per routing point.

    ``default`` is the router the configuration gave the switch (``None``: none);
    ``overrides`` maps a routing point to the router that now serves it instead (``None``: no
    router at all). The mapping is read on every event, so changing it takes effect at once.
    """

    __slots__ = ("default", "overrides")

    def __init__(self, default: Router | None, overrides: Mapping[str, Router | None]) -> None:
        self.default = default
        self.overrides = dict(overrides)

    def router_of(self, point: str) -> Router | None:
        """The router serving routing point ``point`` (``None``: nobody)."""
        if point in self.overrides:
            return self.overrides[point]
        default = self.default
        return default if default is not None and point in default.routing_points() else None

    def routing_points(self) -> frozenset[str]:
        points: set[str] = set(self.default.routing_points()) if self.default is not None else set()
        for point, router in self.overrides.items():
            if router is None:
                points.discard(point)
            else:
                points.add(point)
        return frozenset(points)

    def on_event(self, switch: Switch, event: SwitchEvent) -> None:
        if isinstance(event, RoutingEvent | EventError):
            dn = event.dn
            if dn is not None and dn in self.overrides:
                router = self.overrides[dn]
                if router is not None:
                    router.on_event(switch, event)
                return
        if self.default is not None:
            self.default.on_event(switch, event)
