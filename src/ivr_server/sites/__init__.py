"""Remote sites: the access numbers of ``AccessNumGet``/``AccessNumCancel`` (MODES-AND-HA §1.4,
G24), sans-IO. :mod:`.pool` is one Location's DNIS pool, :mod:`.numbers` every Location, the
reservations and the requests to peer servers. The service answers the IVR with them
(``service/access_numbers.py``), the API serves them to peers and outside systems
(``docs/access-numbers.md``)."""

from __future__ import annotations

from ivr_server.sites.numbers import (
    ROUTE_TYPES,
    AccessNumbers,
    Asking,
    Expired,
    PeerAsk,
    PeerRelease,
    Refused,
    Reservation,
    Reserved,
)
from ivr_server.sites.pool import DnisPool, PoolCounts

__all__ = [
    "ROUTE_TYPES",
    "AccessNumbers",
    "Asking",
    "DnisPool",
    "Expired",
    "PeerAsk",
    "PeerRelease",
    "PoolCounts",
    "Refused",
    "Reservation",
    "Reserved",
]
