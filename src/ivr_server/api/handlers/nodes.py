"""The nodes of a site sharing one state store (``[ha]``, issue 25): who holds which slot and
how many calls, and every slot's calls read from the store, so that every node's API and web
view show the same shared state (docs/api.md, "High availability"; docs/ha.md).

``GET /api/v1/nodes`` (a harmless read): this node (its role, epoch, store state, commit
latency... as ``runtime/ha.py``'s ``HaNode`` has them) and every node the store knows: the live
leases (active mode: one slot per node; hot and warm standby: the ``primary`` slot's holder)
and the live presence records every node writes each poll (``runtime/ha_presence.py``), so that
standbys, which hold no lease, are listed too (``"present": true``, the record's ``age``),
with each node's calls, agents and Ready agents from the facts the active nodes publish
(``runtime/ha_active.py``), as of their latest poll. ``GET /api/v1/nodes/calls``: the calls of
every slot, loaded from the store and decoded with ``StatePersistence.describe``, each with its
slot and the node holding it; without the token (``[api] public-read``) the calls' user data,
caller numbers and parties are left out, as ``/api/v1/state`` does. ``[ha] mode = "off"``: one
node, ``single``, and no calls listed (the store is not used).
"""

from __future__ import annotations

__all__ = ["NodeCallsView", "NodesView", "get_node_calls", "get_nodes"]

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from ivr_server.api.access import AUTHORIZED
from ivr_server.api.answers import json_response
from ivr_server.api.jsonify import kv_json
from ivr_server.runtime.ha_presence import decode_presence
from ivr_server.store.protocol import Lease, NodePresence, StoreError
from ivr_server.switch.persist import decode_call as decode_switch_call
from ivr_server.switch.persist import kv_in

if TYPE_CHECKING:
    from ivr_server.api.server import ApiServer

_THIS_NODE: Final = (
    "mode",
    "node_id",
    "role",
    "epoch",
    "slots",
    "store_url",
    "store_state",
    "queued",
    "commit_latency",
    "batches",
    "replayed",
    "fenced_count",
    "last_takeover",
)
"""The attributes of ``HaNode`` this node's part shows (those it has), without ``view()``."""
_REDACTED: Final = (
    "user_data",
    "last_user_data",
    "ani",
    "dnis",
    "parties",
    "held_route",
    "dial_out",
)
"""Keys of a described call that carry user data, caller numbers or parties (public read:
``null``)."""
_MAX_CALLS: Final = 5000
"""At most this many calls listed by one read (``?limit=`` lowers it); ``total`` counts all."""


class NodesView(BaseModel):
    """``GET /api/v1/nodes``: this node and every node of the site the store knows."""

    model_config = ConfigDict(extra="allow")
    mode: str
    node_id: str
    this: dict[str, Any]
    nodes: list[dict[str, Any]]
    totals: dict[str, Any]
    store_state: str


class NodeCallsView(BaseModel):
    """``GET /api/v1/nodes/calls``: the calls of every slot of the store."""

    model_config = ConfigDict(extra="allow")
    mode: str
    calls: list[dict[str, Any]]
    total: int
    redacted: bool


def _plain(value: Any) -> Any:
    """``value`` as JSON can carry it (sets sorted, dataclasses as objects, floats rounded)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, set | frozenset):
        return sorted(_plain(v) for v in value)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 6)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def _ha(api: ApiServer) -> Any:
    """The server's ``HaNode`` (``None``: ``[ha] mode = "off"``)."""
    return getattr(api.server, "ha", None)


def this_node(api: ApiServer) -> dict[str, Any]:
    """This node as its ``HaNode`` has it (``single`` when there is none)."""
    ha = _ha(api)
    service = api.server.service
    if ha is None:
        return {"mode": "off", "node_id": "", "role": "single", "calls": len(service.calls.calls)}
    view = getattr(ha, "view", None)  # HaNode.view(): what GET /api/v1/ha answers
    found: dict[str, Any] = (
        dict(_plain(view()))
        if callable(view)
        else {name: _plain(getattr(ha, name)) for name in _THIS_NODE if hasattr(ha, name)}
    )
    found["calls"] = len(service.calls.calls)
    active = getattr(ha, "active", None)
    if active is not None:
        found["adopted_calls"] = active.adopted_calls
        found["adoptions"] = _plain(active.adoptions)
    return found


async def _leases(ha: Any) -> tuple[list[Lease], str]:
    """The live leases (active mode: as of the latest poll; else read now) and the store's
    state (``ok``, ``lost``)."""
    active = getattr(ha, "active", None)
    if active is not None:
        state = active.state
        return list(state.leases), "ok" if state.polled else "unknown"
    try:
        return await ha.store.leases(), "ok"
    except StoreError:
        return [], "lost"


async def _presence(ha: Any) -> dict[str, NodePresence]:
    """The live presence records (none when the store does not answer)."""
    try:
        found: dict[str, NodePresence] = await ha.store.presence()
    except StoreError:
        return {}
    return found


_PRESENCE_KEYS: Final = ("mode", "ivr", "api", "started_at", "version", "epoch")
"""What a node's listing shows of its presence record."""


async def get_nodes(api: ApiServer, request: web.Request) -> web.StreamResponse:
    return json_response(await nodes_document(api))


async def nodes_document(api: ApiServer) -> dict[str, Any]:
    """The document of ``GET /api/v1/nodes``."""
    me = this_node(api)
    ha = _ha(api)
    if ha is None:
        return {
            "mode": "off",
            "node_id": "",
            "this": me,
            "nodes": [{**me, "id": "", "self": True, "slots": []}],
            "totals": {
                "nodes": 1,
                "calls": me["calls"],
                "agents": None,
                "ready": None,
                "waiting": None,
            },
            "routing_points": [],
            "store_state": "none",
        }
    leases, store_state = await _leases(ha)
    presence = await _presence(ha)
    active = getattr(ha, "active", None)
    facts = active.state.facts if active is not None else {}
    node_id: str = ha.node_id
    nodes: dict[str, dict[str, Any]] = {}
    for lease in sorted(leases, key=lambda item: item.slot):
        if lease.slot.endswith("@facts"):
            continue
        entry = nodes.setdefault(
            lease.node,
            {"id": lease.node, "self": lease.node == node_id, "role": None, "slots": []},
        )
        entry["slots"].append(
            {"slot": lease.slot, "epoch": lease.epoch, "lease_left": round(lease.expires_in, 3)}
        )
        entry["role"] = "leader"  # it writes a slot (active mode: its own, adopted ones)
    now = time.time()
    for name, present in presence.items():
        record = decode_presence(present.record)
        entry = nodes.setdefault(
            name, {"id": name, "self": name == node_id, "role": record.get("role"), "slots": []}
        )
        entry["present"] = True
        at = record.get("at")
        entry["age"] = round(max(0.0, now - at), 3) if isinstance(at, int | float) else None
        entry["presence_left"] = round(present.expires_in, 3)
        for key in _PRESENCE_KEYS:
            if key in record:
                entry.setdefault(key, record[key])
    if node_id not in nodes:  # a standby holds no lease (and its presence is not written yet)
        nodes[node_id] = {"id": node_id, "self": True, "role": me.get("role"), "slots": []}
    for entry in nodes.values():
        entry.setdefault("present", False)
    for name, entry in nodes.items():
        fact = facts.get(name)
        if entry["self"]:
            entry["role"] = me.get("role", entry["role"])
            entry["calls"] = me["calls"]
        else:
            entry["calls"] = fact.calls if fact is not None else None
        entry["agents"] = len(fact.agents) if fact is not None else None
        entry["ready"] = fact.ready if fact is not None else None
        entry["waiting"] = sum(n for _, _, n in fact.waiting) if fact is not None else None
    listed = sorted(nodes.values(), key=lambda item: item["id"])

    def total(key: str) -> int | None:
        values = [n[key] for n in listed if n[key] is not None]
        return sum(values) if values else None

    agents = {(a.switch, a.dn): a.state for f in facts.values() for a in f.agents}
    waiting: dict[tuple[str, str], int] = {}
    for f in facts.values():
        for switch, point, n in f.waiting:
            waiting[(switch, point)] = waiting.get((switch, point), 0) + n
    return {
        "mode": getattr(ha, "mode", None) or api.server.config.ha.mode,
        "node_id": node_id,
        "this": me,
        "nodes": listed,
        "totals": {
            "nodes": len([n for n in listed if n["slots"] or n["self"] or n["present"]]),
            "calls": total("calls"),
            # a DN's agent counted once (LegacyMode agents are logged in by every node)
            "agents": len(agents) if facts else None,
            "ready": sum(state == "Ready" for state in agents.values()) if facts else None,
            "waiting": sum(waiting.values()) if facts else None,
        },
        "routing_points": [
            {"switch": switch, "dn": point, "waiting": n}
            for (switch, point), n in sorted(waiting.items())
        ],
        "store_state": str(getattr(ha, "store_state", store_state) or store_state),
        "polled": round(active.state.polled, 3) if active is not None else round(time.time(), 3),
    }


async def get_node_calls(api: ApiServer, request: web.Request) -> web.StreamResponse:
    redact = not request.get(AUTHORIZED, False)
    try:
        limit = max(0, min(_MAX_CALLS, int(request.query.get("limit", _MAX_CALLS))))
    except ValueError:
        limit = _MAX_CALLS
    return json_response(await node_calls_document(api, redact=redact, limit=limit))


async def node_calls_document(
    api: ApiServer, *, redact: bool, limit: int = _MAX_CALLS
) -> dict[str, Any]:
    """The document of ``GET /api/v1/nodes/calls``: every slot's calls, from the store."""
    ha = _ha(api)
    if ha is None:
        return {"mode": "off", "calls": [], "total": 0, "redacted": redact}
    store = ha.store
    try:
        leases = {lease.slot: lease for lease in await store.leases()}
        slots = sorted(s for s in await store.slots() if not s.endswith("@facts"))
        loaded = await asyncio.gather(*(store.load(slot) for slot in slots))
    except StoreError as problem:
        return {
            "mode": ha.mode,
            "calls": [],
            "total": 0,
            "redacted": redact,
            "store_state": "lost",
            "error": str(problem),
        }
    describe = ha.persistence.describe
    calls: list[dict[str, Any]] = []
    total = 0
    for slot, records in zip(slots, loaded, strict=True):
        lease = leases.get(slot)
        for key in sorted(records):
            if not key.startswith("call:"):
                continue
            total += 1
            if len(calls) >= limit:
                continue
            try:
                view = dict(describe(records[key]))
            except Exception as problem:  # another version's record: shown as such
                view = {"error": f"cannot decode: {problem}"}
            if redact:
                for name in _REDACTED:
                    view[name] = None
            else:
                view["user_data"] = _user_data(records, view)
            view["key"] = key[len("call:") :].replace("\x1f", "/")
            view["slot"] = slot
            view["node"] = lease.node if lease is not None else None
            calls.append(_plain(view))
    return {"mode": ha.mode, "calls": calls, "total": total, "redacted": redact}


def _user_data(records: Mapping[str, bytes], call: Mapping[str, Any]) -> Any:
    """The user data of a described call: its switch call's (``sw:<switch>:call:<ConnID>`` of
    the same slot), else the call's last copy."""
    record = records.get(f"sw:{call.get('switch')}:call:{call.get('conn_id')}")
    if record is not None:
        try:
            return kv_json(kv_in(decode_switch_call(record).user_data))
        except Exception:  # another version's record: the call's own copy
            pass
    return call.get("last_user_data")
