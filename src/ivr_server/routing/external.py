"""Routers chosen per routing point at run time: the external router and the dispatcher.

* :class:`ExternalRouter` serves routing points whose calls are routed by someone outside the
  server (an HTTP API client, docs/api.md): it answers nothing itself. The outside router learns
  of waiting calls from the event stream or the API's routing-point view and answers through the
  switch (``TRouteCall`` / ``TApplyTreatment``); without an answer the router timeout's
  ``RouteResponse RouteType='Default'`` applies, as for any router.
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

__all__ = ["ExternalRouter", "RoutingPointDispatcher"]

from collections.abc import Mapping

from ivr_server.switch import EventError, RoutingEvent, Switch, SwitchEvent

from .router import Router


class ExternalRouter:
    """Serves ``points`` by answering nothing: an outside client routes their calls."""

    def __init__(self, points: frozenset[str]) -> None:
        self._points = points

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
