"""Routers of the routing points: the :class:`Router` interface and the built-in router.

* :class:`Router` — what a router implements (the built-in one here, an external HTTP/webhook
  router later): it sees every switch event and answers calls waiting at its routing points
  with ``TApplyTreatment`` / ``TRouteCall``.
* :class:`BuiltinRouter` — ordered rules per routing point, from the ``[[routing]]``
  configuration; :func:`build_routers` makes one per switch.
* :class:`ExternalRouter`, :class:`RoutingPointDispatcher` — a router chosen per routing point at
  run time (the HTTP API's external and webhook routers); :func:`router_is_live` says whether a
  chosen router can be expected to answer, :func:`routing_point_live` whether a routing point
  has such a router (a Network call needs one, MODES-AND-HA G19).

See docs/routing.md. This package is sans-IO: no asyncio, no clock.
"""

from __future__ import annotations

from .build import build_routers
from .external import (
    EXTERNAL_ROUTER_WINDOW,
    ExternalRouter,
    LiveRouter,
    RoutingPointDispatcher,
    router_is_live,
    routing_point_live,
)
from .router import Router
from .rules import (
    ROUTE_FAILURE_CODES,
    AgentReservations,
    BuiltinRouter,
    DialogPhase,
    DialogSnapshot,
    kv_from_table,
)

__all__ = [
    "EXTERNAL_ROUTER_WINDOW",
    "ROUTE_FAILURE_CODES",
    "AgentReservations",
    "BuiltinRouter",
    "DialogPhase",
    "DialogSnapshot",
    "ExternalRouter",
    "LiveRouter",
    "Router",
    "RoutingPointDispatcher",
    "build_routers",
    "kv_from_table",
    "router_is_live",
    "routing_point_live",
]
