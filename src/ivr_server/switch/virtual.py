"""The In-Front virtual switch: DNs, agent state and T-Library-style events, with no I/O.

Theory of operation
-------------------
The server is a T-Library client of this switch (PROTOCOL.md §10.1). It drives the switch through
four doors only: :meth:`VirtualSwitch.request` (a T-Library request), :meth:`connect_link` /
:meth:`disconnect_link` (the T-Server link, PROTOCOL.md §8.3), and the configuration calls
:meth:`update_dns` / :meth:`set_in_service`. Every effect is an event appended to one queue, read
with :meth:`drain_events`, in the order things happened. No clock, no socket, no asyncio: the
same inputs always give the same events.

A request never raises for a peer's mistake. It is checked in this order, the first failure
becoming an EventError with the request's ReferenceID and nothing changed:

1. the link is up (``TERR_NO_SWITCH``);
2. the DN is configured (``TERR_NOT_CONFIGURED``);
3. for agent requests: the DN can hold an agent (``TERR_UNSUP_OPER``), it is registered
   (``TERR_NOT_REGISTERED``) and, for control requests, in service (``TERR_OUT_OF_SERVICE``);
4. the request's own attributes (``TERR_INVALID_ATTR``);
5. the agent table of :mod:`ivr_server.switch.agent` (``AGENT_WRONG_STATE``, 50);
6. what depends on other DNs or the current login: the agent id is free
   (``TERR_SOFT_AGENT_ID_IN_USE``), the queue is the login's (``TERR_INVALID_ATTR``).

Requests reach their handler through one table, request type → ``_on_<request>``. Agent state is
written by one method, :meth:`VirtualSwitch._set_agent`, which also keeps the agent-id index.
Configuration mistakes by our own caller (a duplicate DN, an unknown DN given to
:meth:`set_in_service`) raise :class:`~ivr_server.errors.LocalProtocolError`.

Next release: calls (ConnID, parties, user data), routing points with registered routers and the
routing dialog hang off :class:`_Dn` and arrive as more requests in the same handler table and
more events in the same queue; a premise-switch link (Behind mode) is another producer of these
same events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final

from msgspec.structs import replace

from ivr_server.errors import LocalProtocolError
from ivr_server.memory import shrink
from ivr_server.switch.agent import (
    LOGIN_INPUT,
    READY_WORK_MODES,
    TRANSITIONS,
    AgentInput,
    AgentState,
    AgentTransition,
    agent_status,
)
from ivr_server.switch.errors import AGENT_WRONG_STATE, TErrorCode
from ivr_server.switch.events import (
    CallEvent,
    DnType,
    EventAbandoned,
    EventAddressInfo,
    EventAgentLogin,
    EventAgentLogout,
    EventAgentNotReady,
    EventAgentReady,
    EventAttachedDataChanged,
    EventDialing,
    EventDNBackInService,
    EventDNOutOfService,
    EventError,
    EventEstablished,
    EventLinkConnected,
    EventLinkDisconnected,
    EventRegistered,
    EventReleased,
    EventRinging,
    EventRouteRequest,
    EventRouteUsed,
    EventTreatmentApplied,
    EventTreatmentEnd,
    EventTreatmentNotApplied,
    EventUnregistered,
    RequestApplyTreatment,
    RequestRouteCall,
    SwitchEvent,
    WorkMode,
)
from ivr_server.switch.requests import (
    CallRequest,
    SwitchRequest,
    TAbandonCall,
    TAgentLogin,
    TAgentLogout,
    TAgentSetNotReady,
    TAgentSetReady,
    TApplyTreatment,
    TAttachUserData,
    TDeleteAllUserData,
    TDeleteUserData,
    TInboundCall,
    TOutboundAnswered,
    TOutboundCall,
    TQueryAddress,
    TRegisterAddress,
    TReleaseCall,
    TRouteAbort,
    TRouteCall,
    TRouteFailed,
    TRouteRequest,
    TTreatmentStatus,
    TUnregisterAddress,
    TUpdateUserData,
)
from ivr_server.switch.views import AgentSnapshot, CallSnapshot, DnSnapshot, ReadyAgent
from ivr_server.wire.kv import Item, KvList, Node

__all__ = [
    "AGENT_DN_TYPES",
    "USER_DATA_LIMIT",
    "AgentSnapshot",
    "CallSnapshot",
    "DnSnapshot",
    "ReadyAgent",
    "VirtualSwitch",
    "kv_size",
    "kv_update",
]

AGENT_DN_TYPES: Final = frozenset({DnType.EXTENSION, DnType.VOICE_TREATMENT_PORT})
"""DN types an agent can log in on; agent requests on any other type fail with TERR_UNSUP_OPER."""


class _Dn:
    """Mutable record of one DN. Only :class:`VirtualSwitch` writes it.

    Next release: the DN's current call(s) and, for routing points, the registered router and the
    open routing dialog are kept here too.
    """

    __slots__ = ("agent", "in_service", "number", "registered", "type")

    def __init__(self, number: str, dn_type: DnType) -> None:
        self.number = number
        self.type = dn_type
        self.registered = True
        self.in_service = True
        self.agent: AgentSnapshot | None = None

    @property
    def state(self) -> AgentState:
        return self.agent.state if self.agent is not None else AgentState.LOGGED_OUT

    def snapshot(self) -> DnSnapshot:
        return DnSnapshot(
            number=self.number,
            type=self.type,
            registered=self.registered,
            in_service=self.in_service,
            agent=self.agent,
        )


USER_DATA_LIMIT: Final = 16_384
"""Largest attached data of a call in bytes, counted as the unescaped XML text of its nodes
(``<Node Name='' Type='Str' Val=''/>`` plus names and values; a list adds its name and tags).
PROTOCOL.md §4.6: key/value data forwarded to T-Server is limited to 16 KB."""


def kv_size(items: KvList) -> int:
    """The :data:`USER_DATA_LIMIT` measure of ``items``."""
    size = 0
    for item in items:
        if isinstance(item, Node):
            size += 33 + len(item.Name) + len(item.Val)
        else:
            size += 21 + len(item.Name) + kv_size(item.items)
    return size


def kv_update(current: KvList, new: KvList) -> KvList:
    """Replace semantics (PROTOCOL.md §4.3): an existing key is overwritten in place at its first
    occurrence and its later occurrences removed; new keys are appended in order. (A key given
    more than once in ``new`` takes its last value, at its first place.) Linear in the sizes of
    both lists."""
    if not new:
        return current
    latest: dict[str, Item] = {}
    for item in new:
        latest[item.Name] = item
    result: list[Item] = []
    placed: set[str] = set()
    for old in current:
        name = old.Name
        replacement = latest.get(name)
        if replacement is None:
            result.append(old)
        elif name not in placed:
            placed.add(name)
            result.append(replacement)
    for item in new:
        name = item.Name
        if name not in placed:
            placed.add(name)
            result.append(latest[name])
    return tuple(result)


class _Call:
    """Mutable record of one call. Only :class:`VirtualSwitch` writes it."""

    __slots__ = (
        "ani",
        "call_id",
        "conn_id",
        "dialed",
        "dnis",
        "parties",
        "routing_point",
        "treatment",
        "user_data",
    )

    def __init__(
        self, conn_id: str, call_id: int, ani: str | None, dnis: str | None, user_data: KvList
    ) -> None:
        self.conn_id = conn_id
        self.call_id = call_id
        self.ani = ani
        self.dnis = dnis
        self.user_data = user_data
        self.parties: list[str] = []
        self.dialed: str | None = None
        """The number an outbound call dialled."""
        self.routing_point: str | None = None
        self.treatment: str | None = None

    def snapshot(self) -> CallSnapshot:
        return CallSnapshot(
            conn_id=self.conn_id,
            call_id=self.call_id,
            ani=self.ani,
            dnis=self.dnis,
            parties=tuple(self.parties),
            user_data=self.user_data,
            routing_point=self.routing_point,
            treatment=self.treatment,
        )


def _checked_dns(dns: Iterable[tuple[str, DnType]]) -> dict[str, DnType]:
    """The configured DNs in order; a duplicate, empty number or unknown type is our caller's bug."""
    result: dict[str, DnType] = {}
    for number, dn_type in dns:
        if not number:
            raise LocalProtocolError("a DN number must not be empty")
        if number in result:
            raise LocalProtocolError(f"DN {number!r} is configured twice")
        try:
            result[number] = DnType(dn_type)
        except ValueError:
            raise LocalProtocolError(f"DN {number!r} has an unknown type {dn_type!r}") from None
    return result


def _request_name(request: SwitchRequest) -> str:
    name: str = getattr(type(request), "name", type(request).__name__)
    return name


class VirtualSwitch:
    """The In-Front virtual switch holding the IVR port DNs, routing points and ACD queues.

    ``name`` is the switch name (``Location``, ``MonitorInfo/Server/@Switch``); ``tserver`` is the
    T-Server application name whose link state the switch reports. The DNs in ``dns`` start
    registered (the server registers its port DNs at start-up, PROTOCOL.md §10.2) and in service,
    with no agent; the link starts down. ConnIDs are ``first_conn_id``, ``+1``… written as 16
    lower-case hex digits; CallIDs count up from ``first_call_id`` (PROTOCOL.md §10.4).
    """

    def __init__(
        self,
        name: str,
        tserver: str,
        dns: Iterable[tuple[str, DnType]],
        *,
        first_conn_id: int = 1,
        first_call_id: int = 1,
    ) -> None:
        self._name = name
        self._tserver = tserver
        self._link_up = False
        self._dns: dict[str, _Dn] = {
            number: _Dn(number, dn_type) for number, dn_type in _checked_dns(dns).items()
        }
        self._agent_dn: dict[str, str] = {}
        """agent id → DN number where that agent is logged in (written by ``_set_agent`` only)."""
        self._events: list[SwitchEvent] = []
        self._ready_seq = 0
        self._calls: dict[str, _Call] = {}
        """ConnID → call, in creation order."""
        self._next_conn = first_conn_id
        self._next_call_id = first_call_id

    # -- read side -------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The switch name."""
        return self._name

    @property
    def tserver(self) -> str:
        """Application name of the T-Server whose link state this switch reports."""
        return self._tserver

    @property
    def link_up(self) -> bool:
        """Whether the T-Server link is up (starts ``False``)."""
        return self._link_up

    def dn(self, number: str) -> DnSnapshot | None:
        """A snapshot of DN ``number``, or ``None`` if the switch has no such DN."""
        record = self._dns.get(number)
        return record.snapshot() if record is not None else None

    def dns(self) -> Iterator[DnSnapshot]:
        """Snapshots of every DN, in configuration order."""
        return iter([record.snapshot() for record in self._dns.values()])

    def call(self, conn_id: str) -> CallSnapshot | None:
        """A snapshot of the call ``conn_id``, or ``None`` if the switch has no such call."""
        call = self._calls.get(conn_id)
        return call.snapshot() if call is not None else None

    def user_data(self, conn_id: str) -> KvList | None:
        """The attached data of call ``conn_id`` (cheaper than :meth:`call`), or ``None``."""
        call = self._calls.get(conn_id)
        return call.user_data if call is not None else None

    def calls(self) -> Iterator[CallSnapshot]:
        """Snapshots of every call, oldest first."""
        return iter([call.snapshot() for call in self._calls.values()])

    def waiting_calls(self, routing_point: str) -> list[CallSnapshot]:
        """Calls waiting for routing instructions at ``routing_point``, oldest first."""
        return [c.snapshot() for c in self._calls.values() if c.routing_point == routing_point]

    def ready_agents(self) -> list[ReadyAgent]:
        """Ready agents on DNs without a call, the longest idle first."""
        busy = {dn for call in self._calls.values() for dn in call.parties}
        agents = [
            ReadyAgent(
                agent_id=record.agent.agent_id,
                dn=record.number,
                queue=record.agent.queue,
                ready_since=record.agent.ready_since,
            )
            for record in self._dns.values()
            if record.agent is not None
            and record.agent.state is AgentState.READY
            and record.number not in busy
            and record.in_service
        ]
        agents.sort(key=lambda a: a.ready_since)
        return agents

    def drain_events(self) -> list[SwitchEvent]:
        """Every event queued since the last call, oldest first; the queue is left empty."""
        events, self._events = self._events, []
        return events

    # -- link ------------------------------------------------------------------------------------

    def connect_link(self) -> None:
        """The T-Server link came up: EventLinkConnected (nothing if it already was up)."""
        if not self._link_up:
            self._link_up = True
            self._events.append(EventLinkConnected(switch=self._name, tserver=self._tserver))

    def disconnect_link(self) -> None:
        """The T-Server link went down: EventLinkDisconnected (nothing if it already was down).

        Agent state and registrations are kept; requests fail with TERR_NO_SWITCH until the link
        is up again.
        """
        if self._link_up:
            self._link_up = False
            self._events.append(EventLinkDisconnected(switch=self._name, tserver=self._tserver))

    # -- configuration ---------------------------------------------------------------------------

    def update_dns(self, dns: Iterable[tuple[str, DnType]]) -> None:
        """Reconfigure the DN list.

        A removed DN loses its agent (EventAgentLogout first) and, if it was registered, is
        reported EventUnregistered. A new DN is registered (EventRegistered). A DN whose type
        changed is removed and added again. Unchanged DNs keep all their state; the DN order
        becomes the order of ``dns``.
        """
        wanted = _checked_dns(dns)
        for number, record in self._dns.items():
            if wanted.get(number) is not record.type:
                self._drop(record)
        rebuilt: dict[str, _Dn] = {}
        for number, dn_type in wanted.items():
            kept = self._dns.get(number)
            if kept is None or kept.type is not dn_type:
                kept = _Dn(number, dn_type)
                self._events.append(EventRegistered(switch=self._name, dn=number))
            rebuilt[number] = kept
        self._dns = rebuilt

    def set_in_service(self, number: str, in_service: bool) -> None:
        """Put DN ``number`` in or out of service: EventDNBackInService / EventDNOutOfService.

        Nothing happens if the DN already is in that condition. The agent stays; agent control
        requests on an out-of-service DN fail with TERR_OUT_OF_SERVICE (queries are answered).
        Raises :class:`LocalProtocolError` for a DN the switch does not have.
        """
        record = self._dns.get(number)
        if record is None:
            raise LocalProtocolError(f"switch {self._name!r} has no DN {number!r}")
        if record.in_service is in_service:
            return
        record.in_service = in_service
        event_type = EventDNBackInService if in_service else EventDNOutOfService
        self._events.append(event_type(switch=self._name, dn=number))

    def hang_up(self, conn_id: str) -> bool:
        """The far end released call ``conn_id`` (the caller hung up): every party gets an
        unsolicited EventReleased and the call is gone. ``False`` if there is no such call."""
        call = self._calls.get(conn_id)
        if call is None:
            return False
        self._release(call, None)
        return True

    def _drop(self, record: _Dn) -> None:
        if record.agent is not None:
            self._events.append(_BUILDERS[EventAgentLogout](self._name, record, record.agent, None))
            self._set_agent(record, None)
        if record.registered:
            record.registered = False
            self._events.append(EventUnregistered(switch=self._name, dn=record.number))

    # -- requests --------------------------------------------------------------------------------

    def request(self, req: SwitchRequest) -> None:
        """Process one request; its results (or its EventError) are queued for :meth:`drain_events`."""
        handler = _HANDLERS.get(type(req))
        if handler is None:
            dn = getattr(req, "dn", None)
            self._fail(
                req,
                dn if isinstance(dn, str) else None,
                TErrorCode.TERR_UNSUP_OPER,
                f"{_request_name(req)} is not supported by switch {self._name}",
            )
            return
        handler(self, req)

    def _on_query_address(self, req: TQueryAddress) -> None:
        record = self._agent_dn_checked(req, req.dn, control=False)
        if record is None:
            return
        step = self._step(req, record, AgentInput.QUERY)
        if step is not None:
            self._apply(req, record, step, record.agent)

    def _on_agent_login(self, req: TAgentLogin) -> None:
        record = self._agent_dn_checked(req, req.dn, control=True)
        if record is None:
            return
        if not req.agent_id:
            self._fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, "AgentID is empty")
            return
        if req.queue and not self._is_queue(req.queue):
            self._fail(
                req,
                req.dn,
                TErrorCode.TERR_INVALID_ATTR,
                f"queue {req.queue} is not an ACD queue of switch {self._name}",
            )
            return
        login_input = LOGIN_INPUT.get(req.work_mode)
        if login_input is None:
            self._fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"bad WorkMode {req.work_mode!r}")
            return
        step = self._step(req, record, login_input)
        if step is None:
            return
        elsewhere = self._agent_dn.get(req.agent_id)
        if elsewhere is not None:
            self._fail(
                req,
                req.dn,
                TErrorCode.TERR_SOFT_AGENT_ID_IN_USE,
                f"agent {req.agent_id} is already logged in on DN {elsewhere}",
            )
            return
        agent = AgentSnapshot(
            agent_id=req.agent_id,
            queue=req.queue,
            state=step.next_state,
            work_mode=req.work_mode,
        )
        self._apply(req, record, step, agent)

    def _on_agent_logout(self, req: TAgentLogout) -> None:
        record = self._agent_dn_checked(req, req.dn, control=True)
        if record is None:
            return
        step = self._step(req, record, AgentInput.LOGOUT)
        if step is not None and self._queue_matches(req, record, req.queue):
            self._apply(req, record, step, None)

    def _on_agent_set_ready(self, req: TAgentSetReady) -> None:
        record = self._agent_dn_checked(req, req.dn, control=True)
        if record is None:
            return
        if req.work_mode not in READY_WORK_MODES:
            self._fail(
                req,
                req.dn,
                TErrorCode.TERR_INVALID_ATTR,
                f"WorkMode {req.work_mode} is not valid for {req.name}",
            )
            return
        self._set_work_state(req, record, AgentInput.SET_READY, req.queue, req.work_mode)

    def _on_agent_set_not_ready(self, req: TAgentSetNotReady) -> None:
        record = self._agent_dn_checked(req, req.dn, control=True)
        if record is not None:
            self._set_work_state(req, record, AgentInput.SET_NOT_READY, req.queue, req.work_mode)

    def _set_work_state(
        self,
        req: SwitchRequest,
        record: _Dn,
        agent_input: AgentInput,
        queue: str,
        work_mode: WorkMode,
    ) -> None:
        step = self._step(req, record, agent_input)
        if step is None or not self._queue_matches(req, record, queue):
            return
        assert record.agent is not None  # the table allows Ready/NotReady only when logged in
        self._apply(
            req, record, step, replace(record.agent, state=step.next_state, work_mode=work_mode)
        )

    def _on_register_address(self, req: TRegisterAddress) -> None:
        record = self._address(req, req.dn)
        if record is None:
            return
        record.registered = True  # registering again is harmless and answered again
        self._events.append(
            EventRegistered(switch=self._name, reference_id=req.reference_id, dn=req.dn)
        )

    def _on_unregister_address(self, req: TUnregisterAddress) -> None:
        record = self._address(req, req.dn)
        if record is None:
            return
        if not record.registered:
            self._fail(
                req, req.dn, TErrorCode.TERR_NOT_REGISTERED, f"DN {req.dn} is not registered"
            )
            return
        record.registered = False  # the agent, if any, stays logged in on the switch
        self._events.append(
            EventUnregistered(switch=self._name, reference_id=req.reference_id, dn=req.dn)
        )

    # -- calls -----------------------------------------------------------------------------------

    def _new_call(
        self,
        req: TInboundCall | TOutboundCall,
        ani: str | None,
        dnis: str | None,
        *,
        in_service: bool,
    ) -> _Call | None:
        """Checks for a call starting at ``req.dn`` (the DN can hold calls, is in service when
        ``in_service`` asks it, the data fits) and the new call, or ``None`` after EventError."""
        record = self._address(req, req.dn)
        if record is None:
            return None
        if record.type not in AGENT_DN_TYPES:
            self._fail(req, req.dn, TErrorCode.TERR_UNSUP_OPER, f"DN {req.dn} cannot take calls")
            return None
        if in_service and not record.in_service:
            self._fail(
                req, req.dn, TErrorCode.TERR_OUT_OF_SERVICE, f"DN {req.dn} is out of service"
            )
            return None
        if kv_size(req.user_data) > USER_DATA_LIMIT:
            self._fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, "user data larger than 16 KB")
            return None
        conn_id = f"{self._next_conn:016x}"
        self._next_conn += 1
        call = _Call(conn_id, self._next_call_id, ani, dnis, req.user_data)
        self._next_call_id += 1
        self._calls[conn_id] = call
        call.parties.append(req.dn)
        return call

    def _on_inbound_call(self, req: TInboundCall) -> None:
        call = self._new_call(req, req.ani, req.dnis, in_service=True)
        if call is not None:
            for cls in (EventRinging, EventEstablished):
                self._call_event(cls, req, call, req.dn, extensions=req.extensions)

    def _on_outbound_call(self, req: TOutboundCall) -> None:
        call = self._new_call(req, None, None, in_service=False)
        if call is not None:
            call.dialed = req.dest
            self._call_event(
                EventDialing, req, call, req.dn, other_dn=req.dest, extensions=req.extensions
            )

    def _on_outbound_answered(self, req: TOutboundAnswered) -> None:
        call = self._call_at(req)
        if call is None:
            return
        for cls in (EventRinging, EventEstablished):
            self._call_event(cls, req, call, req.dn, other_dn=call.dialed)

    def _on_abandon_call(self, req: TAbandonCall) -> None:
        call = self._call_at(req)
        if call is None:
            return
        del self._calls[call.conn_id]
        self._call_event(EventAbandoned, req, call, req.dn, other_dn=call.dialed)

    def _call_at(self, req: CallRequest) -> _Call | None:
        """The call of a call request, which must have ``req.dn`` as a party; else EventError."""
        if self._address(req, req.dn) is None:
            return None
        call = self._calls.get(req.conn_id)
        if call is None:
            self._fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"no call {req.conn_id}")
            return None
        if req.dn not in call.parties:
            self._fail(
                req,
                req.dn,
                TErrorCode.TERR_INVALID_ATTR,
                f"DN {req.dn} is not in call {req.conn_id}",
            )
            return None
        return call

    def _call_event(
        self, cls: type[CallEvent], req: SwitchRequest | None, call: _Call, dn: str, **extra: Any
    ) -> None:
        self._events.append(
            cls(
                switch=self._name,
                reference_id=req.reference_id if req is not None else None,
                dn=dn,
                conn_id=call.conn_id,
                call_id=call.call_id,
                ani=call.ani,
                dnis=call.dnis,
                user_data=call.user_data,
                **extra,
            )
        )

    def _release(self, call: _Call, req: SwitchRequest | None) -> None:
        if call.routing_point is not None:
            rp, call.routing_point, call.treatment = call.routing_point, None, None
            self._call_event(EventRouteUsed, req, call, rp)
        del self._calls[call.conn_id]
        for dn in call.parties:
            self._call_event(EventReleased, req, call, dn)

    def _on_release_call(self, req: TReleaseCall) -> None:
        call = self._call_at(req)
        if call is not None:
            self._release(call, req)

    def _set_user_data(self, req: CallRequest, new: KvList) -> None:
        call = self._call_at(req)
        if call is None:
            return
        if kv_size(new) > USER_DATA_LIMIT:
            self._fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, "user data larger than 16 KB")
            return
        call.user_data = new
        self._call_event(EventAttachedDataChanged, req, call, req.dn)

    def _on_attach_user_data(self, req: TAttachUserData) -> None:
        current = self.user_data(req.conn_id)
        self._set_user_data(req, (current or ()) + req.user_data)

    def _on_update_user_data(self, req: TUpdateUserData) -> None:
        self._set_user_data(req, kv_update(self.user_data(req.conn_id) or (), req.user_data))

    def _on_delete_user_data(self, req: TDeleteUserData) -> None:
        current = self.user_data(req.conn_id) or ()
        self._set_user_data(req, tuple(item for item in current if item.Name != req.key))

    def _on_delete_all_user_data(self, req: TDeleteAllUserData) -> None:
        self._set_user_data(req, ())

    def _routing_point(self, req: SwitchRequest, number: str) -> bool:
        record = self._address(req, number)
        if record is None:
            return False
        if record.type is not DnType.ROUTING_POINT:
            self._fail(
                req, number, TErrorCode.TERR_INVALID_ATTR, f"DN {number} is not a routing point"
            )
            return False
        return True

    def _on_route_request(self, req: TRouteRequest) -> None:
        call = self._call_at(req)
        if call is None or not self._routing_point(req, req.route_dn):
            return
        if call.routing_point is not None:
            self._fail(
                req,
                req.dn,
                TErrorCode.TERR_INVALID_ATTR,
                f"call {call.conn_id} already waits at routing point {call.routing_point}",
            )
            return
        call.routing_point, call.treatment = req.route_dn, None
        self._call_event(
            EventRouteRequest,
            req,
            call,
            req.route_dn,
            other_dn=call.parties[0],
            collected_digits=req.collected_digits,
            extensions=req.extensions,
        )

    def _waiting(self, req: CallRequest) -> _Call | None:
        """The call of a routing-point request, which must wait at ``req.dn``; else EventError."""
        if self._address(req, req.dn) is None:
            return None
        call = self._calls.get(req.conn_id)
        if call is None or call.routing_point != req.dn:
            self._fail(
                req,
                req.dn,
                TErrorCode.TERR_INVALID_ATTR,
                f"call {req.conn_id} does not wait at routing point {req.dn}",
            )
            return None
        return call

    def _on_route_call(self, req: TRouteCall) -> None:
        call = self._waiting(req)
        if call is None:
            return
        call.routing_point, call.treatment = None, None
        target = self._dns.get(req.dest) if req.dest is not None else None
        if (
            target is not None
            and target.agent is not None
            and target.agent.state is AgentState.READY
        ):
            # the agent was just given a call: it is no longer the longest idle
            self._ready_seq += 1
            target.agent = replace(target.agent, ready_since=self._ready_seq)
        self._call_event(
            RequestRouteCall,
            req,
            call,
            req.dn,
            other_dn=call.parties[0],
            route_type=req.route_type,
            dest=req.dest,
            route_extensions=req.extensions,
        )
        self._call_event(EventRouteUsed, req, call, req.dn, dest=req.dest)

    def _on_apply_treatment(self, req: TApplyTreatment) -> None:
        call = self._waiting(req)
        if call is None:
            return
        call.treatment = req.treatment_type
        self._call_event(
            RequestApplyTreatment,
            req,
            call,
            req.dn,
            other_dn=call.parties[0],
            treatment_type=req.treatment_type,
            parameters=req.parameters,
            treatment_extensions=req.extensions,
        )

    def _on_treatment_status(self, req: TTreatmentStatus) -> None:
        call = self._waiting(req)
        if call is None:
            return
        other = call.parties[0] if call.parties else None
        if req.status == "Started":
            self._call_event(
                EventTreatmentApplied,
                req,
                call,
                req.dn,
                other_dn=other,
                treatment_type=req.treatment_type,
                extensions=req.extensions,
            )
        elif req.status == "NotStarted":
            call.treatment = None
            self._call_event(
                EventTreatmentNotApplied,
                req,
                call,
                req.dn,
                other_dn=other,
                treatment_type=req.treatment_type,
                extensions=req.extensions,
            )
        else:
            call.treatment = None
            self._call_event(
                EventTreatmentEnd,
                req,
                call,
                req.dn,
                other_dn=other,
                treatment_type=req.treatment_type,
                collected_digits=req.collected_digits,
                extensions=req.extensions,
            )

    def _on_route_abort(self, req: TRouteAbort) -> None:
        call = self._waiting(req)
        if call is not None:
            call.routing_point, call.treatment = None, None
            self._call_event(EventRouteUsed, req, call, req.dn)

    def _on_route_failed(self, req: TRouteFailed) -> None:
        if not self._routing_point(req, req.dn):
            return
        call = self._calls.get(req.conn_id)
        if call is None or call.routing_point is not None:
            self._fail(
                req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"call {req.conn_id} was not routed"
            )
            return
        call.routing_point, call.treatment = req.dn, None
        self._events.append(
            EventError(
                switch=self._name,
                reference_id=req.reference_id,
                dn=req.dn,
                error_code=req.error_code,
                error_message=f"connecting call {call.conn_id} to its destination failed",
                request="TRouteCall",
                conn_id=call.conn_id,
            )
        )

    # -- checks ----------------------------------------------------------------------------------

    def compact(self) -> int:
        """Rebuild the call table if it is mostly empty (see ``ivr_server.memory``)."""
        return int(shrink(self._calls))

    def _address(self, req: SwitchRequest, number: str) -> _Dn | None:
        """Checks 1-2 (link up, DN configured); on failure an EventError is queued."""
        if not self._link_up:
            self._fail(
                req,
                number,
                TErrorCode.TERR_NO_SWITCH,
                f"T-Server {self._tserver} has no link to switch {self._name}",
            )
            return None
        record = self._dns.get(number)
        if record is None:
            self._fail(
                req,
                number,
                TErrorCode.TERR_NOT_CONFIGURED,
                f"DN {number} is not configured on switch {self._name}",
            )
        return record

    def _agent_dn_checked(self, req: SwitchRequest, number: str, *, control: bool) -> _Dn | None:
        """Checks 1-3 for an agent request; on failure an EventError is queued."""
        record = self._address(req, number)
        if record is None:
            return None
        if record.type not in AGENT_DN_TYPES:
            self._fail(
                req,
                number,
                TErrorCode.TERR_UNSUP_OPER,
                f"DN {number} is a {record.type}: it cannot hold an agent",
            )
            return None
        if not record.registered:
            self._fail(
                req, number, TErrorCode.TERR_NOT_REGISTERED, f"DN {number} is not registered"
            )
            return None
        if control and not record.in_service:
            self._fail(
                req, number, TErrorCode.TERR_OUT_OF_SERVICE, f"DN {number} is out of service"
            )
            return None
        return record

    def _is_queue(self, number: str) -> bool:
        record = self._dns.get(number)
        return record is not None and record.type is DnType.ACD_QUEUE

    def _queue_matches(self, req: SwitchRequest, record: _Dn, queue: str | None) -> bool:
        """A named queue must be the login's queue (empty or ``None`` = the login's queue)."""
        assert record.agent is not None
        if queue and queue != record.agent.queue:
            self._fail(
                req,
                record.number,
                TErrorCode.TERR_INVALID_ATTR,
                f"agent {record.agent.agent_id} on DN {record.number} is not logged in to "
                f"queue {queue}",
            )
            return False
        return True

    def _step(
        self, req: SwitchRequest, record: _Dn, agent_input: AgentInput
    ) -> AgentTransition | None:
        """Check 5: the agent table; a missing pair queues EventError(AGENT_WRONG_STATE)."""
        step = TRANSITIONS.get((record.state, agent_input))
        if step is None:
            self._fail(
                req,
                record.number,
                AGENT_WRONG_STATE,
                f"{_request_name(req)} is not allowed: the agent on DN {record.number} is "
                f"{record.state.value}",
            )
        return step

    # -- effects ---------------------------------------------------------------------------------

    def _apply(
        self,
        req: SwitchRequest,
        record: _Dn,
        step: AgentTransition,
        agent: AgentSnapshot | None,
    ) -> None:
        """Move ``record`` to ``agent`` and publish ``step.emits`` with the request's ReferenceID."""
        assert (agent.state if agent is not None else AgentState.LOGGED_OUT) is step.next_state
        before = record.agent
        self._set_agent(record, agent)
        subject = agent if agent is not None else before
        for event_type in step.emits:
            build = _BUILDERS[event_type]
            self._events.append(build(self._name, record, subject, req.reference_id))

    def _set_agent(self, record: _Dn, agent: AgentSnapshot | None) -> None:
        """The only writer of agent state: updates the DN and the agent-id index together."""
        if agent is not None:
            if agent.state is not AgentState.READY:
                agent = replace(agent, ready_since=0)
            elif record.agent is None or record.agent.state is not AgentState.READY:
                self._ready_seq += 1
                agent = replace(agent, ready_since=self._ready_seq)
            else:
                agent = replace(agent, ready_since=record.agent.ready_since)
        if record.agent is not None:
            del self._agent_dn[record.agent.agent_id]
        record.agent = agent
        if agent is not None:
            assert agent.agent_id not in self._agent_dn
            self._agent_dn[agent.agent_id] = record.number

    def _fail(self, req: SwitchRequest, dn: str | None, code: TErrorCode, message: str) -> None:
        self._events.append(
            EventError(
                switch=self._name,
                reference_id=req.reference_id,
                dn=dn,
                error_code=code,
                error_message=message,
                request=_request_name(req),
            )
        )


# -- event builders: event type → constructor from (switch, DN, agent, ReferenceID) -------------

_Builder = Callable[[str, _Dn, AgentSnapshot | None, int | None], SwitchEvent]


def _build_address_info(
    switch: str, record: _Dn, agent: AgentSnapshot | None, reference_id: int | None
) -> EventAddressInfo:
    if agent is None:
        return EventAddressInfo(
            switch=switch,
            reference_id=reference_id,
            dn=record.number,
            dn_type=record.type,
            agent_status=agent_status(AgentState.LOGGED_OUT, WorkMode.UNKNOWN),
            agent_id=None,
            queue=None,
            work_mode=WorkMode.UNKNOWN,
        )
    return EventAddressInfo(
        switch=switch,
        reference_id=reference_id,
        dn=record.number,
        dn_type=record.type,
        agent_status=agent_status(agent.state, agent.work_mode),
        agent_id=agent.agent_id,
        queue=agent.queue,
        work_mode=agent.work_mode,
    )


def _agent_of(agent: AgentSnapshot | None) -> AgentSnapshot:
    assert agent is not None, "agent events always have an agent"
    return agent


def _agent_event_builder(cls: type[SwitchEvent], *, with_work_mode: bool) -> _Builder:
    """A builder for one agent event class; Ready/NotReady also carry the work mode."""

    def build(
        switch: str, record: _Dn, agent: AgentSnapshot | None, reference_id: int | None
    ) -> SwitchEvent:
        a = _agent_of(agent)
        extra: dict[str, Any] = {"work_mode": a.work_mode} if with_work_mode else {}
        return cls(  # type: ignore[call-arg]
            switch=switch,
            reference_id=reference_id,
            dn=record.number,
            agent_id=a.agent_id,
            queue=a.queue,
            **extra,
        )

    return build


_BUILDERS: Final[Mapping[type[SwitchEvent], _Builder]] = {
    EventAddressInfo: _build_address_info,
    EventAgentLogin: _agent_event_builder(EventAgentLogin, with_work_mode=False),
    EventAgentLogout: _agent_event_builder(EventAgentLogout, with_work_mode=False),
    EventAgentReady: _agent_event_builder(EventAgentReady, with_work_mode=True),
    EventAgentNotReady: _agent_event_builder(EventAgentNotReady, with_work_mode=True),
}

_HANDLERS: Final[Mapping[type[SwitchRequest], Callable[[VirtualSwitch, Any], None]]] = {
    TQueryAddress: VirtualSwitch._on_query_address,
    TAgentLogin: VirtualSwitch._on_agent_login,
    TAgentLogout: VirtualSwitch._on_agent_logout,
    TAgentSetReady: VirtualSwitch._on_agent_set_ready,
    TAgentSetNotReady: VirtualSwitch._on_agent_set_not_ready,
    TRegisterAddress: VirtualSwitch._on_register_address,
    TUnregisterAddress: VirtualSwitch._on_unregister_address,
    TInboundCall: VirtualSwitch._on_inbound_call,
    TOutboundCall: VirtualSwitch._on_outbound_call,
    TOutboundAnswered: VirtualSwitch._on_outbound_answered,
    TAbandonCall: VirtualSwitch._on_abandon_call,
    TReleaseCall: VirtualSwitch._on_release_call,
    TAttachUserData: VirtualSwitch._on_attach_user_data,
    TUpdateUserData: VirtualSwitch._on_update_user_data,
    TDeleteUserData: VirtualSwitch._on_delete_user_data,
    TDeleteAllUserData: VirtualSwitch._on_delete_all_user_data,
    TRouteRequest: VirtualSwitch._on_route_request,
    TRouteCall: VirtualSwitch._on_route_call,
    TApplyTreatment: VirtualSwitch._on_apply_treatment,
    TTreatmentStatus: VirtualSwitch._on_treatment_status,
    TRouteAbort: VirtualSwitch._on_route_abort,
    TRouteFailed: VirtualSwitch._on_route_failed,
}
"""Request type → handler: the one dispatch point of :meth:`VirtualSwitch.request`."""
