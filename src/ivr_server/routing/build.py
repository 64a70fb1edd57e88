"""From the configuration to the routers: one :class:`BuiltinRouter` per switch with rules."""

from __future__ import annotations

__all__ = ["build_routers"]

from collections.abc import Callable

from ivr_server.config import ServerConfig

from .rules import BuiltinRouter


def build_routers(config: ServerConfig, refs: Callable[[], int]) -> dict[str, BuiltinRouter]:
    """Switch name → the built-in router of that switch's ``[[routing]]`` routing points.

    Only switches with at least one ``[[routing]]`` entry get a router; a routing point without
    an entry has no router at all (its calls get the router-timeout default). ``refs`` gives the
    ReferenceIDs of the routers' requests (shared by all of them).
    """
    groups = {group.name: group.agents for group in config.agent_groups}
    routers: dict[str, BuiltinRouter] = {}
    for switch in config.switches:
        entries = config.routing_for(switch.name)
        if entries:
            points = {entry.dn: entry.rules for entry in entries}
            routers[switch.name] = BuiltinRouter(points, refs, agent_groups=groups)
    return routers
