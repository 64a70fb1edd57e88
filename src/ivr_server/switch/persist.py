"""A switch view's state as store records, and back (HA, issue 25; MODES-AND-HA §3.5).

What another node needs of a switch to carry its calls on: every call record of the view
(parties, user data, routing point, treatment, Network flags), every DN's state (registered, in
service, the agent and its place in the idle order) and the switch's counters (the next ConnID
and CallID of the virtual switch, the idle-order sequence), so that a node taking over never
hands out a ConnID twice. The link state is not carried: it is the new node's own.

Records are msgpack (``msgspec``) arrays of :class:`msgspec.Struct` made without garbage-collector
tracking. Key/value lists (``KvList``: ``Node`` and nested ``List`` items, an untagged union
a typed decoder cannot tell apart) are fields of any type: the items encode as maps and are
read back by :func:`kv_in` (a ``List`` is the map with ``items``).

Restoring publishes no event: the view's records are set directly
(:meth:`~ivr_server.switch.view.SwitchView.restore_call`, ``restore_dn``).
"""

from __future__ import annotations

from sys import intern
from typing import Any, Final

import msgspec

from ivr_server.switch.events import DnType, EventRinging, EventRouteRequest
from ivr_server.switch.protocol import Switch
from ivr_server.switch.snapshots import AgentSnapshot
from ivr_server.switch.view import CallRecord, SwitchView
from ivr_server.wire.kv import KvList, List, Node, NodeType

__all__ = [
    "DnState",
    "SwitchCallState",
    "SwitchCounters",
    "build_call",
    "counters_of",
    "decode_call",
    "decode_counters",
    "decode_dn",
    "encode_call",
    "encode_counters",
    "encode_dn",
    "kv_in",
    "kv_out",
    "restore_call",
    "restore_counters",
    "restore_dn",
    "route_request_in",
    "route_request_out",
]


def kv_out(items: KvList) -> Any:
    """A key/value list as a record field: the ``Node`` and ``List`` structs encode themselves
    (msgpack maps, in C: a third faster than building arrays of them in Python)."""
    return items


_DN_TYPES: Final[dict[str, DnType]] = {member.value: member for member in DnType}
"""A stored DN type's member by its value (a dict lookup per DN restored)."""


def _node_type(value: str) -> NodeType:
    return intern(value)  # type: ignore[return-value]  # one of Int/Str/Bin, as written


def kv_in(raw: Any) -> KvList:
    """The key/value list :func:`kv_out` wrote (maps; arrays ``[Name, Type, Val]`` /
    ``[Name, [items]]`` are read too). Keys and types are interned: tens of thousands of
    restored calls share them, as the codec's memos make calls read from the wire do."""
    items: list[Node | List] = []
    for item in raw:
        if type(item) is dict:
            if "items" in item:
                items.append(List(Name=intern(item["Name"]), items=kv_in(item["items"])))
            else:
                items.append(
                    Node(Name=intern(item["Name"]), Type=_node_type(item["Type"]), Val=item["Val"])
                )
        elif len(item) == 3:
            items.append(Node(Name=intern(item[0]), Type=_node_type(item[1]), Val=item[2]))
        else:
            items.append(List(Name=intern(item[0]), items=kv_in(item[1])))
    return tuple(items)


class SwitchCallState(msgspec.Struct, array_like=True, gc=False):
    """Record ``sw:<switch>:call:<ConnID>``: a :class:`~ivr_server.switch.view.CallRecord`."""

    conn_id: str
    call_id: int
    ani: str | None
    dnis: str | None
    user_data: Any
    parties: list[str]
    dialed: str | None
    routing_point: str | None
    treatment: str | None
    held: list[str]
    network: bool
    queued: bool
    routed: bool
    routed_to: str | None
    connected: bool
    premise: Any = None
    """The PBX side of a premise switch's call (its callID, where it is at our DNs: the
    switch's ``call_state`` hook, ``switch/premise/persist.py``); ``None`` for other switches
    (and in records written before it existed: the field is last, with a default)."""


class DnState(msgspec.Struct, array_like=True, gc=False):
    """Record ``sw:<switch>:dn:<number>``: a DN's registration, service and agent."""

    number: str
    type: str
    registered: bool
    in_service: bool
    agent: AgentSnapshot | None


class SwitchCounters(msgspec.Struct, array_like=True, gc=False):
    """Record ``sw:<switch>:ctr``: where the switch's numbering stands."""

    next_conn: int | None
    """The virtual switch's next ConnID (``None``: a switch that numbers none itself)."""
    next_call_id: int | None
    ready_seq: int
    """The view's idle-order sequence of Ready agents."""


_ENCODER: Final = msgspec.msgpack.Encoder()
_CALL: Final = msgspec.msgpack.Decoder(SwitchCallState)
_DN: Final = msgspec.msgpack.Decoder(DnState)
_COUNTERS: Final = msgspec.msgpack.Decoder(SwitchCounters)


def encode_call(record: CallRecord, premise: Any = None) -> bytes:
    """The store record of a view's call (``premise``: the PBX side a premise switch keeps of
    it, see :attr:`SwitchCallState.premise`)."""
    return _ENCODER.encode(
        SwitchCallState(
            conn_id=record.conn_id,
            call_id=record.call_id,
            ani=record.ani,
            dnis=record.dnis,
            user_data=kv_out(record.user_data),
            parties=record.parties,
            dialed=record.dialed,
            routing_point=record.routing_point,
            treatment=record.treatment,
            held=record.held,
            network=record.network,
            queued=record.queued,
            routed=record.routed,
            routed_to=record.routed_to,
            connected=record.connected,
            premise=premise,
        )
    )


def decode_call(data: bytes) -> SwitchCallState:
    """The state :func:`encode_call` wrote."""
    return _CALL.decode(data)


def restore_call(view: SwitchView, state: SwitchCallState) -> None:
    """Put the call back into ``view`` (no event published)."""
    view.restore_call(build_call(state))


def build_call(state: SwitchCallState) -> CallRecord:
    """The view's record of the call ``state`` holds, in no view yet (a standby builds ahead
    of a takeover: ``runtime/ha_prefetch.py``)."""
    seed = EventRinging(
        switch="",
        dn=state.parties[0] if state.parties else "",
        conn_id=state.conn_id,
        call_id=state.call_id,
        ani=state.ani,
        dnis=state.dnis,
        user_data=kv_in(state.user_data),
    )
    record = CallRecord(seed)  # the view's own constructor (compiled): fields set below
    record.parties = [intern(party) for party in state.parties]
    record.dialed = state.dialed
    record.routing_point = state.routing_point
    record.treatment = state.treatment
    record.held = list(state.held)
    record.network = state.network
    record.queued = state.queued
    record.routed = state.routed
    record.routed_to = state.routed_to
    record.connected = state.connected
    return record


def encode_dn(view: SwitchView, number: str) -> bytes | None:
    """The store record of DN ``number``, or ``None`` if the view has no such DN."""
    record = view.record(number)
    if record is None:
        return None
    return _ENCODER.encode(
        DnState(
            number=record.number,
            type=record.type.value,
            registered=record.registered,
            in_service=record.in_service,
            agent=record.agent,
        )
    )


def decode_dn(data: bytes) -> DnState:
    """The state :func:`encode_dn` wrote."""
    return _DN.decode(data)


def restore_dn(view: SwitchView, state: DnState) -> bool:
    """Put the DN's state back; ``False`` if this node's view has no such DN of that type (the
    configurations differ: the DN keeps its own state)."""
    record = view.record(state.number)
    if record is None or record.type is not _DN_TYPES.get(state.type):
        return False
    return view.restore_dn(state.number, state.registered, state.in_service, state.agent)


def counters_of(switch: Switch) -> SwitchCounters:
    """Where ``switch``'s numbering stands (the virtual switch's ``next_conn``/``next_call_id``;
    read by name so that nothing above the registry imports the virtual switch)."""
    next_conn = getattr(switch, "next_conn", None)
    next_call_id = getattr(switch, "next_call_id", None)
    return SwitchCounters(
        next_conn=next_conn if isinstance(next_conn, int) else None,
        next_call_id=next_call_id if isinstance(next_call_id, int) else None,
        ready_seq=switch.view.ready_seq,
    )


def encode_counters(counters: SwitchCounters) -> bytes:
    """The store record of a switch's counters."""
    return _ENCODER.encode(counters)


def decode_counters(data: bytes) -> SwitchCounters:
    """The counters :func:`encode_counters` wrote."""
    return _COUNTERS.decode(data)


def restore_counters(switch: Switch, counters: SwitchCounters) -> None:
    """Numbering goes on after the stored counters, never back (a survivor adopting another
    node's slot keeps the larger of its own and the stored)."""
    if counters.next_conn is not None and isinstance(getattr(switch, "next_conn", None), int):
        switch.next_conn = max(switch.next_conn, counters.next_conn)  # type: ignore[attr-defined]
    if counters.next_call_id is not None and isinstance(getattr(switch, "next_call_id", None), int):
        switch.next_call_id = max(switch.next_call_id, counters.next_call_id)  # type: ignore[attr-defined]
    switch.view.restore_ready_seq(counters.ready_seq)


class RouteRequestState(msgspec.Struct, array_like=True, gc=False):
    """An ``EventRouteRequest`` (a router's dialog keeps the one that started it: its rules
    match on it)."""

    switch: str
    reference_id: int | None
    dn: str
    conn_id: str
    call_id: int
    ani: str | None
    dnis: str | None
    this_queue: str | None
    other_dn: str | None
    other_queue: str | None
    user_data: Any
    extensions: Any
    collected_digits: str | None


def route_request_out(event: EventRouteRequest) -> RouteRequestState:
    """The event as plain values."""
    return RouteRequestState(
        switch=event.switch,
        reference_id=event.reference_id,
        dn=event.dn,
        conn_id=event.conn_id,
        call_id=event.call_id,
        ani=event.ani,
        dnis=event.dnis,
        this_queue=event.this_queue,
        other_dn=event.other_dn,
        other_queue=event.other_queue,
        user_data=kv_out(event.user_data),
        extensions=kv_out(event.extensions),
        collected_digits=event.collected_digits,
    )


def route_request_in(state: RouteRequestState) -> EventRouteRequest:
    """The event :func:`route_request_out` wrote."""
    return EventRouteRequest(
        switch=state.switch,
        reference_id=state.reference_id,
        dn=state.dn,
        conn_id=state.conn_id,
        call_id=state.call_id,
        ani=state.ani,
        dnis=state.dnis,
        this_queue=state.this_queue,
        other_dn=state.other_dn,
        other_queue=state.other_queue,
        user_data=kv_in(state.user_data),
        extensions=kv_in(state.extensions),
        collected_digits=state.collected_digits,
    )
