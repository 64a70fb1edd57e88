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

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ivr_server.switch.events import SwitchEvent
from ivr_server.switch.requests import SwitchRequest
from ivr_server.switch.view import SwitchView

__all__ = ["LinkTarget", "LinkedSwitch", "Switch", "link_of"]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkTarget:
    """Where the adapter of a :class:`LinkedSwitch` connects, and how it retries."""

    host: str
    port: int
    tls: bool = False
    """Wrap the connection in TLS (the system's default trust store, host name checked)."""
    reconnect_initial: float = 1.0
    """Seconds before the first reconnection attempt after a failure or a loss."""
    reconnect_max: float = 30.0
    """The back-off doubles after each failed attempt up to this many seconds."""


@runtime_checkable
class LinkedSwitch(Switch, Protocol):
    """A switch at the far end of a network link (a premise PBX), sans-IO.

    An adapter in ``runtime/`` owns the socket: while :attr:`link_wanted` it connects to
    :attr:`target` (backing off from ``reconnect_initial`` to ``reconnect_max`` between failed
    attempts), and after each door below it writes :meth:`data_to_send`, closes the socket when
    :attr:`closing` says so, and has the service deliver the events the switch queued. The
    switch reports what the link means for its clients as switch events (EventLinkConnected
    once it is usable, EventLinkDisconnected when it is lost), never as exceptions.
    """

    @property
    def target(self) -> LinkTarget:
        """Where to connect."""
        ...

    @property
    def link_wanted(self) -> bool:
        """Whether the switch wants a connection now (``False`` after a TCloseLink)."""
        ...

    @property
    def closing(self) -> bool:
        """The switch is done with the current connection (refused, broken, stopped): the
        adapter writes what is left to send, closes it, and reconnects after the back-off."""
        ...

    def connection_made(self, now: float) -> None:
        """A new connection to :attr:`target` is open."""
        ...

    def data_received(self, data: bytes, now: float) -> None:
        """Bytes from the far end (never empty; the end of the stream is :meth:`connection_lost`)."""
        ...

    def connection_lost(self, reason: str, now: float) -> None:
        """The connection is gone (closed by either side, failed, or never opened)."""
        ...

    def data_to_send(self) -> bytes:
        """Bytes to write, emptied by the call."""
        ...

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` must next run (the switch's own timers), or ``None``."""
        ...

    def handle_timer(self, now: float) -> None:
        """Fire the switch's timers due at ``now``."""
        ...


def link_of(switch: Switch) -> LinkedSwitch | None:
    """``switch`` as a :class:`LinkedSwitch` when it is one (it needs an adapter), else ``None``."""
    return switch if isinstance(switch, LinkedSwitch) else None
