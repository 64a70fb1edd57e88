"""A call as a store record, and back (HA, issue 25; MODES-AND-HA §3.5, record ``call:<Call.key>``).

Everything a :class:`~ivr_server.calls.call.Call` needs to carry on at another node: its
identifiers (CallId, IVR, port, DN, switch by name, mode), what the IVR and the switch told of it
(ANI, DNIS, CalledNum, ConnID, CallID, last event, last user data, OtherDN, queue, UUID), its state
in the table and the state a refused call-control request goes back to, the routing dialog (route
DN, when it started, the treatment, the held ``RouteResponse``), call control (the request
outstanding, the consultation's ConnID, hold, conference parties, the last refusal), the dial-out
request it answers (as a plain value the service encodes), its timers as **absolute wall-clock
deadlines**, and which of the call side's indexes hold it (``by_conn``, ``consults``, a Behind
port's waiting call).

Not in the record: the owner (the session is this node's: a restored call has none, so its
orphan timer runs as for a call whose session closed, until a session of its IVR takes it),
the timeline (a restored call starts a new one), the switch requests it waits on (``pending``:
see :func:`restore_calls`), and the premise events kept at a Behind port for a ``NewCall`` to come.

The core reads no clock: the caller gives the offset between the wall clock and its loop clock
(``wall - loop``) at each end, so a deadline written by one process is re-armed in another's
loop time (:func:`encode_call`, :func:`restore_calls`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from sys import intern
from typing import Any, Final, Literal

import msgspec

from ivr_server.calls.call import Call, PortSlot, PortTarget
from ivr_server.calls.context import CallContext
from ivr_server.calls.machine import CallState
from ivr_server.switch import Switch
from ivr_server.switch.persist import kv_in, kv_out
from ivr_server.wire import NVPair
from ivr_server.wire import messages as m

__all__ = [
    "BuiltCall",
    "HeldRoute",
    "StoredCall",
    "build_calls",
    "decode_call",
    "encode_call",
    "install_calls",
    "restore_calls",
    "state_of",
]

log = logging.getLogger("ivr_server.calls")
_STATES: Final[dict[str, CallState]] = {state.value: state for state in CallState}
"""A stored state's member by its value (a dict lookup: ``CallState(value)`` costs an enum call
per call restored)."""

Mode = Literal["In-Front", "Behind", "Network"]


class HeldRoute(msgspec.Struct, array_like=True, gc=False):
    """A ``RouteResponse`` held while a treatment is cancelled (its fields)."""

    route_type: str
    dest: str | None
    extensions: list[tuple[str, str]] | None
    extns_ex: Any


class StoredCall(msgspec.Struct, array_like=True, gc=False):
    """Record ``call:<Call.key>`` (see the module docstring)."""

    call_id: str
    ivr: str
    port: str
    dn: str
    switch: str
    mode: str
    encoding: str
    called_num: str
    ani: str | None
    dnis: str | None
    legacy: bool
    version: str
    state: str
    resume: str
    answered: bool
    conn_id: str | None
    switch_call_id: int | None
    last_event: str | None
    last_user_data: Any
    route_dn: str | None
    route_started: float
    """Wall-clock time the routing dialog started (for the routing-latency metric)."""
    treatment: str | None
    held_route: HeldRoute | None
    uuid: str | None
    other_dn: str | None
    queue: str | None
    control: str | None
    consult_conn_id: str | None
    held: bool
    parties: list[str]
    control_error: tuple[str, int, str] | None
    dial_out: Any
    """The dial-out request the call answers, as the service encoded it (``None``: none)."""
    router_deadline: float | None
    """Wall-clock deadlines of the call's timers (``None``: not running)."""
    call_deadline: float | None
    ringing_deadline: float | None
    make_call_deadline: float | None
    by_conn: bool
    """The call is indexed by its ConnID (the switch has its call at the port)."""
    consulting: bool
    """The call is indexed by its consultation's ConnID."""
    waiting: bool
    """A Behind call waiting at its port for the PBX to report it."""


_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(StoredCall)


def _held(route: m.RouteResponse | None) -> HeldRoute | None:
    if route is None:
        return None
    return HeldRoute(
        route_type=route.RouteType,
        dest=route.Dest,
        extensions=[(p.NVName, p.NVVal) for p in route.Extensions]
        if route.Extensions is not None
        else None,
        extns_ex=kv_out(route.ExtnsEx) if route.ExtnsEx is not None else None,
    )


def _route(held: HeldRoute | None) -> m.RouteResponse | None:
    if held is None:
        return None
    return m.RouteResponse(
        RouteType=held.route_type,  # type: ignore[arg-type]
        Dest=held.dest,
        Extensions=tuple(NVPair(NVName=n, NVVal=v) for n, v in held.extensions)
        if held.extensions is not None
        else None,
        ExtnsEx=kv_in(held.extns_ex) if held.extns_ex is not None else None,
    )


def state_of(
    ctx: CallContext, call: Call, offset: float, dial_out: Callable[[Any], Any] | None = None
) -> StoredCall:
    """The record of ``call``; ``offset`` = wall clock - loop clock now; ``dial_out`` encodes
    the call's dial-out request (outbound/ is not the call side's to import)."""
    timers = ctx.timers
    key = call.key
    conn_id = call.conn_id
    consult = call.consult_conn_id
    behind = call.behind
    slot = ctx.ports.get((call.switch.name, call.dn)) if behind else None
    held_route = call.held_route
    last_user_data = call.last_user_data
    router = timers.router.get(key)
    ringing = timers.ringing.get(key)
    make_call = timers.make_call.get(key)
    deadline = timers.call.get(key)
    # positional, in field order: a third faster than keywords on the hot path of HA
    return StoredCall(
        call.call_id,
        call.ivr,
        call.port,
        call.dn,
        call.switch.name,
        "Behind" if behind else "Network" if call.network else "In-Front",
        call.encoding,
        call.called_num,
        call.ani,
        call.dnis,
        call.legacy,
        call.version,
        call.state.value,
        call.resume.value,
        call.answered,
        conn_id,
        call.switch_call_id,
        call.last_event,
        kv_out(last_user_data),
        call.route_dn,
        call.route_started + offset,
        call.treatment,
        _held(held_route) if held_route is not None else None,
        call.uuid,
        call.other_dn,
        call.queue,
        call.control,
        consult,
        call.held,
        list(call.parties),
        call.control_error,
        dial_out(call.dial_out) if dial_out is not None and call.dial_out is not None else None,
        router + offset if router is not None else None,
        deadline + offset if deadline is not None else None,
        ringing + offset if ringing is not None else None,
        make_call + offset if make_call is not None else None,
        conn_id is not None and ctx.by_conn.get(conn_id) is call,
        consult is not None and ctx.consults.get(consult) is call,
        slot is not None and slot.waiting is call,
    )


def encode_call(
    ctx: CallContext, call: Call, offset: float, dial_out: Callable[[Any], Any] | None = None
) -> bytes:
    """The store record of ``call`` (msgpack; see :func:`state_of`)."""
    return _ENCODER.encode(state_of(ctx, call, offset, dial_out))


def decode_call(data: bytes) -> StoredCall:
    """The record :func:`encode_call` wrote."""
    return _DECODER.decode(data)


BuiltCall = tuple[Call, StoredCall]
"""A call rebuilt from its record by :func:`build_calls`, not yet in any context, with the record
(its indexes and deadlines are read at :func:`install_calls`)."""


def restore_calls(
    ctx: CallContext,
    states: Iterable[StoredCall],
    switches: Mapping[str, Switch],
    now: float,
    offset: float,
    dial_out: Callable[[Any], Any] | None = None,
) -> int:
    """Rebuild the calls of ``states`` in ``ctx`` (their switches' views already restored):
    indexes, timers re-armed from the deadlines (``offset`` = wall clock - loop clock here; a
    deadline already past fires at the next ``handle_timer``), no owner (the orphan timer runs
    from ``now``), a new timeline each. A call whose switch this node lacks, or whose key is
    already taken here, is left out (logged). Returns the calls restored.

    What a restored call does not have: the switch requests it waited on (``pending``). With the
    virtual switch those are answered within the input that made them, so none is left between
    inputs; a premise switch's are lost with the node (the call's timers still end it).

    :func:`build_calls` then :func:`install_calls`: a standby may build ahead of a takeover
    (``runtime/ha_prefetch.py``) and install at it."""
    return install_calls(ctx, build_calls(states, switches, offset, dial_out), now, offset)


def build_calls(
    states: Iterable[StoredCall],
    switches: Mapping[str, Switch],
    offset: float,
    dial_out: Callable[[Any], Any] | None = None,
) -> list[BuiltCall]:
    """The calls of ``states`` as objects, touching no context (the first, larger half of
    :func:`restore_calls`). A call whose switch is not in ``switches`` is left out (logged)."""
    built: list[BuiltCall] = []
    for state in states:
        switch = switches.get(state.switch)
        if switch is None:
            log.warning(
                "call %s of %s not restored: no switch %s here",
                state.call_id,
                state.ivr,
                state.switch,
            )
            continue
        mode: Mode = intern(state.mode)  # type: ignore[assignment]
        # the strings tens of thousands of calls share are interned (decoded, each is new)
        target = PortTarget(
            intern(state.ivr), state.port, intern(state.dn), switch, mode, intern(state.encoding)
        )
        call = Call(state.call_id, None, target, state.called_num, state.ani, state.dnis)
        call.legacy = state.legacy
        call.version = intern(state.version)
        call.state = _STATES[state.state]
        call.resume = _STATES[state.resume]
        call.answered = state.answered
        call.conn_id = state.conn_id
        call.switch_call_id = state.switch_call_id
        call.last_event = intern(state.last_event) if state.last_event is not None else None
        call.last_user_data = kv_in(state.last_user_data)
        call.route_dn = state.route_dn
        call.route_started = state.route_started - offset
        call.treatment = state.treatment
        call.held_route = _route(state.held_route)
        call.uuid = state.uuid
        call.other_dn = state.other_dn
        call.queue = state.queue
        call.control = state.control
        call.consult_conn_id = state.consult_conn_id
        call.held = state.held
        call.parties = tuple(state.parties)
        call.control_error = (
            tuple(state.control_error)  # type: ignore[assignment]
            if state.control_error is not None
            else None
        )
        if state.dial_out is not None and dial_out is not None:
            call.dial_out = dial_out(state.dial_out)
        built.append((call, state))
    return built


def install_calls(ctx: CallContext, built: Iterable[BuiltCall], now: float, offset: float) -> int:
    """Put the calls :func:`build_calls` made into ``ctx``: the table of calls, the indexes,
    the timers (deadlines converted with ``offset``, the one they were built with), the
    orphan timers from ``now``, a timeline each. A call whose key is taken here is left out
    (logged). Returns the calls installed."""
    timers = ctx.timers
    calls, by_port, by_conn, consults, ports = (
        ctx.calls,
        ctx.by_port,
        ctx.by_conn,
        ctx.consults,
        ctx.ports,
    )
    armed: dict[str, list[tuple[str, float]]] = {
        "router": [],
        "call": [],
        "ringing": [],
        "make_call": [],
        "orphan": [],
    }
    orphan_at = now + ctx.settings.orphan_call_timeout
    restored = 0
    for call, state in built:
        key = call.key
        if key in calls:
            log.warning("call %s of %s not restored: already here", state.call_id, state.ivr)
            continue
        calls[key] = call
        # an index entry this node's own call holds is kept (active mode: two nodes may each
        # have had a call on one IVR port); the restored call goes on without it
        if not call.network and by_port.setdefault((call.ivr, call.port), call) is not call:
            log.warning(
                "call %s of %s restored while port %s has another call here",
                state.call_id,
                state.ivr,
                state.port,
            )
        if state.by_conn and state.conn_id is not None:
            by_conn.setdefault(state.conn_id, call)
        if state.consulting and state.consult_conn_id is not None:
            consults.setdefault(state.consult_conn_id, call)
        if state.waiting:
            port_key = (call.switch.name, call.dn)
            slot = ports.get(port_key)
            if slot is None:
                slot = ports[port_key] = PortSlot(port_key, None)
            slot.waiting = call
        ctx.timeline.start(key)
        for kind, deadline in (
            ("router", state.router_deadline),
            ("call", state.call_deadline),
            ("ringing", state.ringing_deadline),
            ("make_call", state.make_call_deadline),
        ):
            if deadline is not None:
                armed[kind].append((key, deadline - offset))
        armed["orphan"].append((key, orphan_at))
        restored += 1
    timers.router.set_many(armed["router"])
    timers.call.set_many(armed["call"])
    timers.ringing.set_many(armed["ringing"])
    timers.make_call.set_many(armed["make_call"])
    timers.orphan.set_many(armed["orphan"])
    if len(calls) > ctx.peak:
        ctx.peak = len(calls)
    return restored
