"""The shared state store of high availability (docs/ha.md, MODES-AND-HA §3.5-§3.6).

A node's state that must outlive it (calls with their user data, routing dialogs and timers as
absolute deadlines, agent/DN state, dial-out records, counters, the hot standby's replay marks) is
written as whole snapshots, one :class:`Batch` per turn of the event loop, to a
:class:`StateStore`. Whoever writes holds a **slot**'s lease: ``"primary"`` in warm and hot
standby, the node's own id in active mode (a survivor that adopts a dead node's calls takes that
node's slot as well). Every write carries the slot's **epoch**, checked inside the store, so a
paused old holder can never overwrite its successor's state (:class:`Fenced`).

This package knows bytes and keys only: what a snapshot holds is the service's business
(:mod:`ivr_server.service.persist`). :func:`open_store` builds the store a configuration names.
"""

from __future__ import annotations

from ivr_server.store.memory import MemoryStore
from ivr_server.store.protocol import (
    Batch,
    Fenced,
    Lease,
    SlotVersion,
    StateStore,
    StoreError,
    StoreUnavailable,
    open_store,
)

__all__ = [
    "Batch",
    "Fenced",
    "Lease",
    "MemoryStore",
    "SlotVersion",
    "StateStore",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
