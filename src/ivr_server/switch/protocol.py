"""The one interface the layers above have of a switch: requests in, events out, a read model.

The call side, the routers, the statistics, dial-out, the service and the API know a switch only
as a :class:`Switch`: they send T-Library-shaped requests (:mod:`ivr_server.switch.requests`),
take the events it publishes from one queue (:mod:`ivr_server.switch.events`), and read its state
from its :class:`~ivr_server.switch.view.SwitchView`, which the switch keeps current by applying
every event it queues. Nothing is read from a switch's own tables, and nothing above ``switch/``
calls a method a particular switch has beyond these: what the virtual switch alone can do (its
far end hanging up, its link and DNs changed by hand) is a request too, which another switch may
refuse with an EventError (``TERR_UNSUP_OPER``). Switches are built by
:func:`ivr_server.switch.registry.build_switch`.

A switch is sans-IO like the rest of the core: a switch at the other end of a network link (a
premise PBX) is fed its bytes and the time by an adapter in ``runtime/``, and reports what it
learns as the same events (its link coming and going as EventLinkConnected /
EventLinkDisconnected, whoever caused it).
"""

from __future__ import annotations

from typing import Protocol

from ivr_server.switch.events import SwitchEvent
from ivr_server.switch.requests import SwitchRequest
from ivr_server.switch.view import SwitchView

__all__ = ["Switch"]


class Switch(Protocol):
    """A switch as the server's T-Library client sees it."""

    @property
    def name(self) -> str:
        """The switch name (``Location``, ``MonitorInfo/Server/@Switch``)."""
        ...

    @property
    def tserver(self) -> str:
        """Application name of the T-Server whose link state the switch reports."""
        ...

    @property
    def view(self) -> SwitchView:
        """The read model, current with every event queued so far."""
        ...

    def request(self, req: SwitchRequest) -> None:
        """Take one request. Its results, or one EventError with its ReferenceID, are queued for
        :meth:`drain_events` (a switch behind a link may answer later); it never raises for a
        request a peer could have made."""
        ...

    def drain_events(self) -> list[SwitchEvent]:
        """Every event queued since the last call, oldest first; the queue is left empty."""
        ...

    def compact(self) -> int:
        """Give back the room of tables that have mostly emptied (after a crowd of calls has
        gone; see ``ivr_server.memory``): the number of tables rebuilt."""
        ...
