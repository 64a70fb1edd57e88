"""Who answers the calls waiting at each routing point, chosen at run time by an operator.

Theory of operation. The configuration gives each switch one router (its ``[[routing]]`` rules).
An operator may serve one routing point otherwise (``PUT .../router`` in the HTTP API, through
:meth:`~ivr_server.service.control.Control.set_router`): ``external`` (an outside client routes,
an :class:`~ivr_server.routing.ExternalRouter`),
``webhook`` (a router object the API layer builds) or ``none`` (only the router timeout answers),
and later go back to ``builtin``. :class:`RouterChoices` keeps those choices and carries them out
with a :class:`~ivr_server.routing.RoutingPointDispatcher` in the switch's router slot, present
only while at least one routing point of the switch deviates from the configuration, and
installed again after a configuration reload (:meth:`RouterChoices.after_reload`).
"""

from __future__ import annotations

__all__ = ["RouterChoice", "RouterChoices", "RouterMode"]

from dataclasses import dataclass

from ivr_server.routing import Router, RoutingPointDispatcher
from ivr_server.service import IvrService
from ivr_server.vocabulary import ROUTABLE_DN_TYPES, RouterMode

"""Who answers the calls waiting at a routing point."""


@dataclass(frozen=True, slots=True)
class RouterChoice:
    """The router serving one routing point."""

    mode: RouterMode
    """``builtin``, ``external``, ``webhook`` or ``none``."""
    router: Router | None = None
    """The router object (``None`` for ``builtin``, the configured router, and ``none``)."""
    url: str | None = None
    """The webhook's URL (``webhook`` only)."""


class RouterChoices:
    """The routing points of ``service`` not served as configured, and by whom."""

    def __init__(self, service: IvrService) -> None:
        self._service = service
        self._choices: dict[tuple[str, str], RouterChoice] = {}
        """(switch, routing point) -> the choice, for routing points not served as configured."""

    def configured_router(self, switch_name: str) -> Router | None:
        """The router the configuration gave the switch (under a dispatcher, if any)."""
        router = self._service.routers.get(switch_name)
        if isinstance(router, RoutingPointDispatcher):
            return router.default
        return router

    def has_rules(self, switch_name: str, rp: str) -> bool:
        """Does the configuration route routing point ``rp`` itself?"""
        configured = self.configured_router(switch_name)
        return configured is not None and rp in configured.routing_points()

    def get(self, switch_name: str, rp: str) -> RouterChoice:
        """Who serves routing point ``rp`` now."""
        choice = self._choices.get((switch_name, rp))
        if choice is not None:
            return choice
        return RouterChoice("builtin") if self.has_rules(switch_name, rp) else RouterChoice("none")

    def choose(self, switch_name: str, rp: str, choice: RouterChoice) -> RouterChoice:
        """Serve routing point ``rp`` as ``choice`` says (the caller checked that ``builtin``
        has rules to go back to); returns who serves it now."""
        key = (switch_name, rp)
        if choice.mode == "builtin" or (choice.mode == "none" and not self.has_rules(*key)):
            self._choices.pop(key, None)
        else:
            self._choices[key] = choice
        self._install()
        return self.get(switch_name, rp)

    def all(self) -> dict[tuple[str, str], RouterChoice]:
        """The routing points not served as configured, and by whom."""
        return dict(self._choices)

    def after_reload(self) -> None:
        """The service rebuilt its routers from a new configuration: keep the choices of the
        routing points that still exist, and put the dispatchers back."""
        for switch_name, rp in list(self._choices):
            switch = self._service.switches.get(switch_name)
            snapshot = switch.view.dn(rp) if switch is not None else None
            if snapshot is None or snapshot.type not in ROUTABLE_DN_TYPES:
                del self._choices[(switch_name, rp)]
        self._install()

    def _install(self) -> None:
        routers: dict[str, Router] = {}
        for name, router in self._service.routers.items():
            if isinstance(router, RoutingPointDispatcher):
                if router.default is not None:
                    routers[name] = router.default
            else:
                routers[name] = router
        for switch_name in self._service.switches:
            overrides = {
                rp: choice.router
                for (name, rp), choice in self._choices.items()
                if name == switch_name
            }
            if overrides:
                routers[switch_name] = RoutingPointDispatcher(routers.get(switch_name), overrides)
        self._service.routers = routers
