"""Routers of the routing points: the :class:`Router` interface and the built-in router.

* :class:`Router` — what a router implements (the built-in one here, an external HTTP/webhook
  router later): it sees every switch event and answers calls waiting at its routing points
  with ``TApplyTreatment`` / ``TRouteCall``.
* :class:`BuiltinRouter` — ordered rules per routing point, from the ``[[routing]]``
  configuration; :func:`build_routers` makes one per switch.
* :class:`ExternalRouter`, :class:`RoutingPointDispatcher` — a router chosen per routing point at
  run time (the HTTP API's external and webhook routers).

See docs/routing.md. This package is sans-IO: no asyncio, no clock.
"""

from __future__ import annotations

from .build import build_routers
from .external import ExternalRouter, RoutingPointDispatcher
from .router import Router
from .rules import (
    ROUTE_FAILURE_CODES,
    BuiltinRouter,
    DialogPhase,
    DialogSnapshot,
    kv_from_table,
)

__all__ = [
    "ROUTE_FAILURE_CODES",
    "BuiltinRouter",
    "DialogPhase",
    "DialogSnapshot",
    "ExternalRouter",
    "Router",
    "RoutingPointDispatcher",
    "build_routers",
    "kv_from_table",
]
