"""The router interface: what every router of a switch's routing points implements.

A router is a T-Library client of a switch that serves routing points (PROTOCOL.md §10.2): it
watches the switch's events and answers a call waiting at one of its routing points with
``TApplyTreatment`` (the IVR gets ``TreatCall``) or ``TRouteCall`` (the IVR gets
``RouteResponse``). The server owns the event loop of the switch; a router only reacts.

Contract, for every implementation (the built-in :class:`~ivr_server.routing.BuiltinRouter`,
and later an external router reached over an HTTP API or a webhook):

* :meth:`Router.on_event` is called with **every** event the switch publishes, in order. The
  router picks what concerns its routing points (``EventRouteRequest``, ``EventTreatment*``,
  ``EventError`` of a failed route, ``EventRouteUsed``, ``EventReleased``) and ignores the rest.
* It answers by calling ``switch.request(...)`` (``TApplyTreatment``, ``TRouteCall``,
  ``TUpdateUserData`` on the port DN). It never drains the switch's events itself: the caller
  drains again after each batch and feeds the router the events its requests caused.
* It never raises because of what a peer did (an unknown call, a strange event order, a call
  that ended meanwhile): a router that does not know what to do stays silent, and the call gets
  the server's router-timeout default (``RouteResponse RouteType='Default'``).
* It does no I/O inside :meth:`Router.on_event`. A router that must ask something far away (an
  external router) records the question, returns at once, and sends its answer later through the
  same ``switch.request`` door, from the server's event loop; if the answer comes too late, the
  router timeout has already answered the call.
* A routing point has at most one router. A routing point with none is answered by the router
  timeout alone.
"""

from __future__ import annotations

__all__ = ["Router"]

from typing import Protocol

from ivr_server.switch import Switch, SwitchEvent


class Router(Protocol):
    """A router serving some routing points of one switch (see the module's contract)."""

    def routing_points(self) -> frozenset[str]:
        """The numbers of the routing-point DNs this router serves."""
        ...

    def on_event(self, switch: Switch, event: SwitchEvent) -> None:
        """React to one event ``switch`` published: maybe call ``switch.request``; never raise
        for a peer's situation, never drain ``switch``'s events."""
        ...
