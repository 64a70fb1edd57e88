"""Every node's presence in the store (``[ha]``, issue 25, gap 6; docs/ha.md §9).

A lease says who *leads* a slot; a standby holds none, so ``GET /api/v1/nodes`` could not list
it. Every node (leader or standby, any mode) therefore writes a small record of itself each
poll, with a TTL: its id, role, mode, fencing epoch, IVR and API addresses, when it started and
its version (:class:`PresenceWriter`, awaited once per pass of ``HaNode``'s role loop). A node
that dies stops writing and its record lapses after the TTL (three polls, at least one lease:
a leader's loop passes once per third of its lease). ``api/handlers/nodes.py`` reads the records
(``StateStore.presence``) and lists those nodes, standbys included.

A failed write is the store's unavailability (``StoreError``): logged once and counted, never
raised into the role loop, whose own commands decide that the store is lost; while the node has
the store as lost, nothing is written (a write would wait the store's timeout in the loop).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ivr_server import __version__
from ivr_server.store.protocol import StoreError

if TYPE_CHECKING:
    from ivr_server.config import HaConfig
    from ivr_server.store.protocol import StateStore

__all__ = ["PresenceWriter", "decode_presence", "presence_ttl"]

log = logging.getLogger("ivr_server.ha")


class _Server(Protocol):
    @property
    def addresses(self) -> list[tuple[str, int]]: ...

    @property
    def api_addresses(self) -> list[tuple[str, int]]: ...

    @property
    def started_at(self) -> float: ...


class PresenceHost(Protocol):
    """What the writer reads of ``runtime/ha.py``'s ``HaNode``."""

    @property
    def node_id(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def mode(self) -> str: ...

    @property
    def epoch(self) -> int: ...

    @property
    def store(self) -> StateStore: ...

    @property
    def store_state(self) -> str: ...

    @property
    def config(self) -> HaConfig: ...

    @property
    def server(self) -> Any: ...


def presence_ttl(config: HaConfig) -> float:
    """How long a record outlives its last write: three polls, at least one lease."""
    return max(3 * config.poll, config.lease)


def _addresses(found: Sequence[tuple[str, int]]) -> list[str]:
    return [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in found]


class PresenceWriter:
    """Writes this node's presence record at most once per ``poll`` (:meth:`tick`)."""

    def __init__(self, node: PresenceHost) -> None:
        self.node = node
        self.written = 0
        """Records the store took."""
        self.failed = 0
        """Writes that failed (the store did not answer, or refused)."""
        self._due = 0.0
        self._failing = False

    def record(self) -> dict[str, Any]:
        """This node's presence, as written (JSON)."""
        node = self.node
        server = node.server
        return {
            "node": node.node_id,
            "role": node.role,
            "mode": node.mode,
            "epoch": node.epoch,
            "ivr": _addresses(getattr(server, "addresses", ()) or ()),
            "api": _addresses(getattr(server, "api_addresses", ()) or ()),
            "started_at": round(float(getattr(server, "started_at", 0.0)), 3),
            "version": __version__,
            "at": round(time.time(), 3),
        }

    async def tick(self, now: float) -> None:
        """Write the record if a poll has passed since the last write (loop time ``now``)."""
        node = self.node
        if now < self._due or node.store_state != "ok" or not node.node_id:
            return
        config = node.config
        self._due = now + config.poll
        data = json.dumps(self.record(), separators=(",", ":")).encode()
        try:
            await node.store.heartbeat(node.node_id, data, presence_ttl(config))
        except StoreError as problem:
            self.failed += 1
            if not self._failing:
                log.warning("HA: node %s: presence not written: %s", node.node_id, problem)
            self._failing = True
            return
        self.written += 1
        self._failing = False


def decode_presence(record: bytes) -> dict[str, Any]:
    """A presence record as JSON (``{}`` when it is not one: another version's, garbled)."""
    try:
        found = json.loads(record)
    except (ValueError, UnicodeDecodeError):
        return {}
    return found if isinstance(found, dict) else {}
