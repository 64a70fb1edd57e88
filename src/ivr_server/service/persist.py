"""The service's state as store records: what changed (per turn), all of it, and back (HA, issue 25).

Theory of operation. :class:`StatePersistence` is the sans-IO half of the HA writer
(``runtime/ha.py`` is the other): once :meth:`~StatePersistence.enable`\\ d, the call side
(``CallContext.dirty``), every switch view (``SwitchView.changed_calls``/``changed_dns``) and the
dial-out manager (``DialOutManager.changed``) note the keys of what changes, at their few choke
points (a table input, a call added or forgotten, a switch event applied, a request started or
finished). :meth:`~StatePersistence.collect` encodes only those, once per event-loop turn, and
clears the marks; a switch's counters are written ahead (``reserve``), once per 1,024 new calls.
Disabled (the default, ``[ha] mode = off``) every mark is a single ``is not None`` test.

Record keys (relative to the writer's slot; MODES-AND-HA §3.5, docs/ha.md):

==============================  ===========================================================
``call:<Call.key>``             a call (:mod:`ivr_server.calls.persist`); login-less Network
                                calls are not persisted (their session is their scope)
``sw:<switch>:call:<ConnID>``   a switch view's call (:mod:`ivr_server.switch.persist`), with a
                                premise call's PBX side (``switch/premise/persist.py``)
``sw:<switch>:dn:<number>``     a DN's registration, service and agent
``sw:<switch>:ctr``             the switch's next ConnID/CallID, the idle-order sequence
``sw:<switch>:rt:<ConnID>``     the built-in router's dialog with a call (rule, treatment)
``dialout:<RefID>``             a predictive-call request waiting for the IVR's answer
``ctr:refs``                    the latest dial-out RefID
==============================  ===========================================================

Values are msgpack arrays (``msgspec``, structs without garbage-collector tracking). Deadlines
are wall-clock Unix times: the core reads no clock, so the runtime passes its two clocks (``wall``
and ``loop``) or, to :meth:`~StatePersistence.restore`, the wall time matching ``now``.

Restore order: the switch views (calls, DNs, counters), then the calls (indexes, timers from the
deadlines, no owner: their orphan timers run), then the pending dial-outs. Restoring publishes no
switch event and sends nothing: the runtime then binds the orphans to live sessions and replays
(``service/standby.py``).

Not carried over (rebuilt, or lost with the node; docs/ha.md): the calls' sessions (owners) and
timelines; the switch requests a call waits on (none between inputs on the virtual switch; a
premise switch's waiting for the PBX's answer are lost, except a dialled consultation or MakeCall
and a release, which are carried: ``switch/premise/persist.py``; a premise call's PBX side, its
callID and state at our DNs, is carried in its switch record and checked against the PBX by the
new leader's snapshot resync, G27); premise events kept at a Behind port for a ``NewCall`` to
come (the premise switch announces them again at restore: :meth:`StatePersistence.restore`,
their ``waiting-for-newcall-timeout`` starting again); an external router's outstanding questions (the router timeout answers ``Default``); access-number reservations and
peer requests; DialOut registrations (each session's own) and a taken-over request's requester;
the link state; metrics, statistics, refusal logs.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec

from ivr_server.calls.persist import (
    BuiltCall,
    StoredCall,
    build_calls,
    decode_call,
    encode_call,
    install_calls,
)
from ivr_server.outbound import DialOutRequest
from ivr_server.switch import Switch
from ivr_server.switch.persist import (
    RouteRequestState,
    SwitchCounters,
    counters_of,
    decode_counters,
    decode_dn,
    encode_counters,
    encode_dn,
    kv_in,
    kv_out,
    restore_counters,
    restore_dn,
    route_request_in,
    route_request_out,
)
from ivr_server.switch.persist import build_call as build_switch_call
from ivr_server.switch.persist import decode_call as decode_switch_call
from ivr_server.switch.persist import encode_call as encode_switch_call

if TYPE_CHECKING:
    from ivr_server.service.core import IvrService

__all__ = [
    "DialOutState",
    "PreparedState",
    "RefCounters",
    "RouterDialog",
    "StatePersistence",
    "gc_paused",
]

log = logging.getLogger("ivr_server.service")

CALL: Final = "call:"
DIAL_OUT: Final = "dialout:"
REFS: Final = "ctr:refs"


def switch_call_key(switch: str, conn_id: str) -> str:
    """``sw:<switch>:call:<ConnID>``."""
    return f"sw:{switch}:call:{conn_id}"


def switch_dn_key(switch: str, number: str) -> str:
    """``sw:<switch>:dn:<number>``."""
    return f"sw:{switch}:dn:{number}"


def router_dialog_key(switch: str, conn_id: str) -> str:
    """``sw:<switch>:rt:<ConnID>``."""
    return f"sw:{switch}:rt:{conn_id}"


class RouterDialog(msgspec.Struct, array_like=True, gc=False):
    """Record ``sw:<switch>:rt:<ConnID>``: a call's dialog with the built-in router
    (``BuiltinRouter.dialog_state``): without it a treatment that ends after a takeover would
    find the router silent, and the call would get the router timeout's Default."""

    routing_point: str
    port: str | None
    request: RouteRequestState | None
    rule: int
    phase: str
    treatment: int
    route_ref: int | None


def _dialog_of(router: Any, conn_id: str) -> bytes | None:
    state = router.dialog_state(conn_id)
    if state is None:
        return None
    point, port, request, rule, phase, treatment, route_ref = state
    return _ENCODER.encode(
        RouterDialog(
            routing_point=point,
            port=port,
            request=route_request_out(request) if request is not None else None,
            rule=rule,
            phase=phase,
            treatment=treatment,
            route_ref=route_ref,
        )
    )


COUNTER_RESERVE: Final = 1024
"""ConnIDs, CallIDs and idle-order steps a switch's counters record is written ahead by."""


def _reservation_due(current: SwitchCounters, written: SwitchCounters | None) -> bool:
    """Has a counter reached the value written ahead (or was none written)?"""
    if written is None:
        return True
    if current.next_conn is not None and (
        written.next_conn is None or current.next_conn >= written.next_conn
    ):
        return True
    if current.next_call_id is not None and (
        written.next_call_id is None or current.next_call_id >= written.next_call_id
    ):
        return True
    return current.ready_seq >= written.ready_seq


def _reserved(current: SwitchCounters, reserve: int) -> SwitchCounters:
    """The counters ``reserve`` steps ahead of ``current``."""
    return SwitchCounters(
        next_conn=current.next_conn + reserve if current.next_conn is not None else None,
        next_call_id=current.next_call_id + reserve if current.next_call_id is not None else None,
        ready_seq=current.ready_seq + reserve,
    )


def switch_counters_key(switch: str) -> str:
    """``sw:<switch>:ctr``."""
    return f"sw:{switch}:ctr"


class DialOutState(msgspec.Struct, array_like=True, gc=False):
    """A predictive-call request: record ``dialout:<RefID>`` while it waits for the IVR, and
    the ``dial_out`` of the call its ``DialOutInit`` started."""

    ref_id: str
    orig_dn: str
    dest: str
    time_to_answer: int
    timeout: float
    user_data: Any
    extensions: Any
    call_id: str | None
    deadline: float | None
    """Wall-clock time the request times out (pending only)."""


class RefCounters(msgspec.Struct, array_like=True, gc=False):
    """Record ``ctr:refs``: the numbering of the service's own identifiers."""

    dial_out: int
    """The latest dial-out RefID handed out."""


_ENCODER: Final = msgspec.msgpack.Encoder()
_DIAL_OUT: Final = msgspec.msgpack.Decoder(DialOutState)
_REFS: Final = msgspec.msgpack.Decoder(RefCounters)
_DIALOG: Final = msgspec.msgpack.Decoder(RouterDialog)


def _dial_out_state(req: DialOutRequest, deadline: float | None) -> DialOutState:
    return DialOutState(
        ref_id=req.ref_id,
        orig_dn=req.orig_dn,
        dest=req.dest,
        time_to_answer=req.time_to_answer,
        timeout=req.timeout,
        user_data=kv_out(req.user_data),
        extensions=kv_out(req.extensions),
        call_id=req.call_id,
        deadline=deadline,
    )


def _dial_out_request(state: DialOutState) -> DialOutRequest:
    """A request taken over: no requester (it was the other node's API client) and no session
    (any session of this node may answer it)."""
    return DialOutRequest(
        ref_id=state.ref_id,
        requester=None,
        orig_dn=state.orig_dn,
        dest=state.dest,
        session=None,
        time_to_answer=state.time_to_answer,
        timeout=state.timeout,
        user_data=kv_in(state.user_data),
        extensions=kv_in(state.extensions),
        call_id=state.call_id,
    )


def _split_switch_key(key: str) -> tuple[str, str, str] | None:
    """``sw:<switch>:<kind>[:<id>]`` -> (switch, kind, id); ``None`` if it is not one."""
    rest = key[3:]
    if rest.endswith(":ctr"):
        return rest[:-4], "ctr", ""
    for marker, kind in _SWITCH_KINDS:
        at = rest.rfind(marker)
        if at > 0:
            return rest[:at], kind, rest[at + len(marker) :]
    return None


_SWITCH_KINDS: Final = ((":call:", "call"), (":dn:", "dn"), (":rt:", "rt"))
"""The kinds of a switch's records, as :func:`_split_switch_key` finds them (a takeover splits
100,000 keys for 50,000 calls)."""


def _same(now: Mapping[str, Any], then: Mapping[str, Any]) -> bool:
    """The same objects under the same names."""
    return len(now) == len(then) and all(now.get(name) is item for name, item in then.items())


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The garbage collector paused meanwhile (and left as it was: nested uses are fine)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


@dataclass(slots=True, eq=False)
class PreparedState:
    """A slot's records decoded and their objects built, in no service yet
    (:meth:`StatePersistence.build`), for :meth:`StatePersistence.install`."""

    offset: float
    """Wall clock minus loop clock when it was prepared (deadlines are converted with it)."""
    switches: dict[str, Switch]
    """The service's switches it was built against (:meth:`StatePersistence.fits`)."""
    routers: dict[str, Any]
    """And its routers."""
    calls: list[BuiltCall] = field(default_factory=list)
    switch_records: list[tuple[str, Switch, Any]] = field(default_factory=list)
    """(kind: ``call``, ``dn``, ``rt``, ``ctr``; switch; what to install), in the records'
    order."""
    dial_outs: list[DialOutState] = field(default_factory=list)
    refs: list[int] = field(default_factory=list)
    records: int = 0
    """Records built (every kind)."""
    stored_calls: int = 0
    """``call:`` records among them (calls of a switch this node lacks included)."""


class StatePersistence:
    """Tracks, encodes and restores the state of one :class:`~ivr_server.service.IvrService`
    (see the module docstring).

    ``wall`` and ``loop``: the runtime's clocks (``time.time`` and ``loop.time``); their
    difference converts the service's loop-time deadlines to wall-clock ones. Without them
    (tests in one process) both are taken to be the same clock.

    ``reserve``: how far ahead :meth:`collect` writes a switch's counters (ConnIDs, CallIDs,
    the idle order), so that they are written once per ``reserve`` new calls, not with each;
    a node taking over goes on after the reserved values (it skips at most that many, never
    reuses one). :meth:`everything` writes them exact.
    """

    def __init__(
        self,
        service: IvrService,
        *,
        wall: Callable[[], float] | None = None,
        loop: Callable[[], float] | None = None,
        reserve: int = COUNTER_RESERVE,
    ) -> None:
        self._service = service
        self._wall = wall
        self._loop = loop
        self._enabled = False
        self._counters: dict[str, SwitchCounters] = {}
        """Switch name -> the counters last written by :meth:`collect` (reserved ahead)."""
        self._reserve = reserve
        self._last_ref = 0
        self._dialogs: set[tuple[str, str]] = set()
        """(switch, ConnID) of the router dialogs written (deleted when they end)."""

    @property
    def enabled(self) -> bool:
        """Changes are tracked (:meth:`enable`)."""
        return self._enabled

    def offset(self) -> float:
        """Wall clock minus loop clock, now (0 without clocks)."""
        if self._wall is None or self._loop is None:
            return 0.0
        return self._wall() - self._loop()

    # ------------------------------------------------------------------ tracking

    def enable(self) -> None:
        """Start tracking changes (idempotent). What exists already is not marked: the caller
        writes :meth:`everything` first if the store does not have it."""
        if self._enabled:
            return
        self._enabled = True
        service = self._service
        service.calls.context.dirty = set()
        for switch in service.switches.values():
            self._track(switch)
        service.outbound.changed = set()
        self._last_ref = service.outbound.last_ref

    @staticmethod
    def _track(switch: Switch) -> None:
        view = switch.view
        view.changed_calls = set()
        view.changed_dns = set()

    def collect(self) -> tuple[dict[str, bytes], set[str]]:
        """The records changed since the last collect (puts), and the keys of what is gone
        (deletes); the marks are cleared. Cheap when nothing changed: one test per table and
        per switch."""
        puts: dict[str, bytes] = {}
        deletes: set[str] = set()
        if not self._enabled:
            return puts, deletes
        service = self._service
        ctx = service.calls.context
        dirty = ctx.dirty
        if dirty:
            offset = self.offset()
            calls = ctx.calls
            encode = self._encode_dial_out
            for key in dirty:
                if key.startswith("\x00"):  # a login-less session's Network call: not persisted
                    continue
                call = calls.get(key)
                if call is None:
                    deletes.add(CALL + key)
                else:
                    puts[CALL + key] = encode_call(ctx, call, offset, encode)
            dirty.clear()
        for name, switch in service.switches.items():
            view = switch.view
            changed = view.changed_calls
            if changed is None:  # a switch (re)built by a reload: tracked from now on, whole
                self._track(switch)
                self._put_switch(puts, name, switch)
                continue
            dns = view.changed_dns
            if not changed and not dns:
                continue  # no event changed the view: its counters neither (new calls are events)
            if changed:
                premise = getattr(switch, "call_state", None)  # a premise switch's PBX side
                for conn_id in changed:
                    record = view.call_record(conn_id)
                    if record is None:
                        deletes.add(switch_call_key(name, conn_id))
                    else:
                        puts[switch_call_key(name, conn_id)] = encode_switch_call(
                            record, premise(conn_id) if premise is not None else None
                        )
                router = service.routers.get(name)
                if router is not None and hasattr(router, "dialog_state"):
                    self._collect_dialogs(puts, deletes, name, router, changed)
                changed.clear()
            if dns:
                for number in dns:
                    data = encode_dn(view, number)
                    if data is None:
                        deletes.add(switch_dn_key(name, number))
                    else:
                        puts[switch_dn_key(name, number)] = data
                dns.clear()
            counters = counters_of(switch)
            if _reservation_due(counters, self._counters.get(name)):
                ahead = self._counters[name] = _reserved(counters, self._reserve)
                puts[switch_counters_key(name)] = encode_counters(ahead)
        outbound = service.outbound
        refs = outbound.changed
        if refs:
            offset = self.offset()
            for ref_id in refs:
                req = outbound.get(ref_id)
                if req is None:
                    deletes.add(DIAL_OUT + ref_id)
                else:
                    deadline = outbound.deadline(ref_id)
                    puts[DIAL_OUT + ref_id] = _ENCODER.encode(
                        _dial_out_state(req, deadline + offset if deadline is not None else None)
                    )
            refs.clear()
        if outbound.last_ref != self._last_ref:
            self._last_ref = outbound.last_ref
            puts[REFS] = _ENCODER.encode(RefCounters(dial_out=outbound.last_ref))
        return puts, deletes

    def _collect_dialogs(
        self,
        puts: dict[str, bytes],
        deletes: set[str],
        name: str,
        router: Any,
        changed: set[str],
    ) -> None:
        """The router's dialogs with the calls that changed (every change of a dialog comes
        with an event about its call)."""
        written = self._dialogs
        for conn_id in changed:
            data = _dialog_of(router, conn_id)
            if data is not None:
                puts[router_dialog_key(name, conn_id)] = data
                written.add((name, conn_id))
            elif (name, conn_id) in written:
                written.discard((name, conn_id))
                deletes.add(router_dialog_key(name, conn_id))

    # ------------------------------------------------------------------ everything

    def everything(self) -> dict[str, bytes]:
        """Every record of the service's state (a resync after the store lost its data, or
        the first write of a new leader). The marks are left as they are."""
        service = self._service
        ctx = service.calls.context
        offset = self.offset()
        puts: dict[str, bytes] = {}
        encode = self._encode_dial_out
        for key, call in ctx.calls.items():
            if call.ivr:  # a login-less session's Network call is not persisted
                puts[CALL + key] = encode_call(ctx, call, offset, encode)
        for name, switch in service.switches.items():
            self._put_switch(puts, name, switch)
        outbound = service.outbound
        for req in outbound.pending():
            deadline = outbound.deadline(req.ref_id)
            puts[DIAL_OUT + req.ref_id] = _ENCODER.encode(
                _dial_out_state(req, deadline + offset if deadline is not None else None)
            )
        puts[REFS] = _ENCODER.encode(RefCounters(dial_out=outbound.last_ref))
        self._counters.clear()  # exact here: the next collect reserves ahead again
        return puts

    def _put_switch(self, puts: dict[str, bytes], name: str, switch: Switch) -> None:
        view = switch.view
        router = self._service.routers.get(name)
        if router is not None and not hasattr(router, "dialog_state"):
            router = None
        premise = getattr(switch, "call_state", None)  # a premise switch's PBX side
        for record in view.call_records():
            puts[switch_call_key(name, record.conn_id)] = encode_switch_call(
                record, premise(record.conn_id) if premise is not None else None
            )
            if router is not None:
                dialog = _dialog_of(router, record.conn_id)
                if dialog is not None:
                    puts[router_dialog_key(name, record.conn_id)] = dialog
                    self._dialogs.add((name, record.conn_id))
        for snapshot in view.dns():
            data = encode_dn(view, snapshot.number)
            if data is not None:
                puts[switch_dn_key(name, snapshot.number)] = data
        puts[switch_counters_key(name)] = encode_counters(counters_of(switch))

    # ------------------------------------------------------------------ restore

    def restore(
        self, records: Mapping[str, bytes], now: float, wall_now: float | None = None
    ) -> int:
        """Rebuild the state of ``records`` (a slot's objects) in this service, which runs the
        same configuration: switch views first, then calls, then pending dial-outs. ``now`` is
        the loop time; ``wall_now`` the wall-clock time matching it (default: the ``wall``
        clock, or ``now`` itself without clocks). Records of switches this node does not have,
        and calls already here, are left out (logged). Returns the calls restored.

        Restored calls have no owner: their orphan timers run from ``now`` until a session of
        their IVR takes them (``bind_orphans``, or a login's adoption). Nothing is marked
        dirty: the records are the store's already.

        :meth:`prepare`, :meth:`build` and :meth:`install` in one go: a standby builds ahead of
        a takeover and installs at it (``runtime/ha_prefetch.py``).

        The garbage collector is paused meanwhile: tens of thousands of new objects (none in a
        cycle) would otherwise start collections of an ever larger heap (restoring 50,000 calls
        took 2.7 s with it, see docs/ha.md)."""
        with gc_paused():
            prepared = self.prepare(now, wall_now)
            self.build(prepared, records.items())
            return self.install(prepared, now)

    def prepare(self, now: float, wall_now: float | None = None) -> PreparedState:
        """An empty :class:`PreparedState` for the records :meth:`build` adds (``now`` and
        ``wall_now`` as for :meth:`restore`: the offset of the two clocks, kept with it)."""
        if wall_now is not None:
            offset = wall_now - now
        elif self._wall is not None:
            offset = self._wall() - now
        else:
            offset = 0.0
        service = self._service
        return PreparedState(offset, dict(service.switches), dict(service.routers))

    def build(self, prepared: PreparedState, records: Iterable[tuple[str, bytes]]) -> None:
        """Decode ``records`` (key, snapshot) and build their objects into ``prepared``, changing
        nothing of the service (in slices, while the service goes on: a standby ahead of a
        takeover). Records of switches this node does not have are left out (logged)."""
        switches = prepared.switches
        routers = prepared.routers
        call_states: list[StoredCall] = []
        for key, data in records:
            prepared.records += 1
            if key.startswith(CALL):
                call_states.append(decode_call(data))
            elif key.startswith("sw:"):
                self._build_switch_record(prepared, switches, routers, key, data)
            elif key.startswith(DIAL_OUT):
                prepared.dial_outs.append(_DIAL_OUT.decode(data))
            elif key == REFS:
                prepared.refs.append(_REFS.decode(data).dial_out)
        prepared.stored_calls += len(call_states)
        prepared.calls.extend(
            build_calls(call_states, switches, prepared.offset, self._decode_dial_out)
        )

    def fits(self, prepared: PreparedState) -> bool:
        """``prepared`` was built against this service's switches as they are (a configuration
        reloaded meanwhile may have replaced one, or a router: build again)."""
        service = self._service
        return _same(service.switches, prepared.switches) and _same(
            service.routers, prepared.routers
        )

    def install(self, prepared: PreparedState, now: float) -> int:
        """Put what :meth:`build` made into the service (see :meth:`restore`; ``prepared`` must
        :meth:`fit <fits>`). Returns the calls restored."""
        with gc_paused():
            return self._install(prepared, now)

    def _install(self, prepared: PreparedState, now: float) -> int:
        service = self._service
        offset = prepared.offset
        for kind, switch, item in prepared.switch_records:
            self._install_switch_record(kind, switch, item)
        for ref in prepared.refs:
            service.outbound.go_on_after(ref)
        ctx = service.calls.context
        restored = install_calls(ctx, prepared.calls, now, offset)
        if ctx.ports:
            self._keep_at_ports(now)
        outbound = service.outbound
        for state in prepared.dial_outs:
            if outbound.get(state.ref_id) is None:
                deadline = state.deadline - offset if state.deadline is not None else now
                outbound.restore(_dial_out_request(state), deadline)
        self._counters.clear()  # the next collect writes them ahead of the restored ones
        self._last_ref = service.outbound.last_ref
        log.info(
            "state restored: %d of %d calls, %d pending dial-outs",
            restored,
            prepared.stored_calls,
            len(prepared.dial_outs),
        )
        return restored

    def _keep_at_ports(self, now: float) -> None:
        """Behind: a premise call at a Behind port that no restored call owns had its events
        kept there for a ``NewCall`` still to come (``calls/behind.py``; they are not in the
        store): the premise switch announces them again (its ``announce`` hook) and the call
        side keeps them as it did, with a new ``waiting-for-newcall-timeout`` from ``now``. Calls
        a release is clearing are left out."""
        service = self._service
        ctx = service.calls.context
        ports = ctx.ports
        by_conn = ctx.by_conn
        for name, switch in service.switches.items():
            announce = getattr(switch, "announce", None)
            if announce is None:
                continue
            for record in list(switch.view.call_records()):
                if record.conn_id in by_conn:
                    continue
                for event in announce(record.conn_id):
                    slot = ports.get((name, event.dn))
                    if slot is not None and slot.waiting is None:
                        service.calls.on_event(event, now)

    def _build_switch_record(
        self,
        prepared: PreparedState,
        switches: Mapping[str, Switch],
        routers: Mapping[str, Any],
        key: str,
        data: bytes,
    ) -> None:
        parts = _split_switch_key(key)
        if parts is None:
            log.warning("state record %r not understood: left out", key)
            return
        name, kind, conn_id = parts
        switch = switches.get(name)
        if switch is None:
            log.warning("state record %r: no switch %s here: left out", key, name)
            return
        item: Any
        if kind == "call":
            state = decode_switch_call(data)
            item = (state, build_switch_call(state))
        elif kind == "dn":
            item = decode_dn(data)
        elif kind == "rt":
            router = routers.get(name)
            if router is None or not hasattr(router, "restore_dialog"):
                return
            dialog = _DIALOG.decode(data)
            request = route_request_in(dialog.request) if dialog.request is not None else None
            item = (
                router,
                conn_id,
                (
                    dialog.routing_point,
                    dialog.port,
                    request,
                    dialog.rule,
                    dialog.phase,
                    dialog.treatment,
                    dialog.route_ref,
                ),
            )
        else:
            item = decode_counters(data)
        prepared.switch_records.append((kind, switch, item))

    def _install_switch_record(self, kind: str, switch: Switch, item: Any) -> None:
        view = switch.view
        if kind == "call":
            state, record = item
            if view.call_record(state.conn_id) is None:
                view.restore_call(record)
                if state.premise is not None and hasattr(switch, "restore_call_state"):
                    # a premise call's PBX side (G27): the link's snapshot resync checks it
                    switch.restore_call_state(state.conn_id, state.premise)
        elif kind == "dn":
            if restore_dn(view, item) and hasattr(switch, "restored_dn"):
                switch.restored_dn(item.number)  # a premise switch re-learns service (G27)
        elif kind == "rt":
            router, conn_id, dialog_state = item
            if router.restore_dialog(conn_id, dialog_state):
                self._dialogs.add((switch.name, conn_id))
        else:
            restore_counters(switch, item)

    # ------------------------------------------------------------------ dial-outs of calls

    @staticmethod
    def _encode_dial_out(req: Any) -> Any:
        if not isinstance(req, DialOutRequest):
            return None
        return msgspec.to_builtins(_dial_out_state(req, None))

    @staticmethod
    def _decode_dial_out(raw: Any) -> Any:
        return _dial_out_request(msgspec.convert(raw, DialOutState))

    # ------------------------------------------------------------------ describe

    @staticmethod
    def describe(record: bytes) -> dict[str, Any]:
        """A JSON-able view of a ``call:`` record (the API of another node shows the calls of
        a slot it does not hold)."""
        state = decode_call(record)
        described: dict[str, Any] = msgspec.structs.asdict(state)
        described["last_user_data"] = [
            msgspec.to_builtins(item) for item in kv_in(state.last_user_data)
        ]
        if state.held_route is not None:
            described["held_route"] = msgspec.structs.asdict(state.held_route)
        if state.dial_out is not None:
            described["dial_out"] = msgspec.structs.asdict(
                msgspec.convert(state.dial_out, DialOutState)
            )
        described["control_error"] = (
            list(state.control_error) if state.control_error is not None else None
        )
        return msgspec.to_builtins(described)  # type: ignore[no-any-return]
