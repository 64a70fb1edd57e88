"""What every request handler of the virtual switch shares: its name, its view, its event queue,
the checks common to all requests and the one way an event is published.

The virtual switch keeps no tables of its own: its state is its
:class:`~ivr_server.switch.view.SwitchView`. A handler checks a request against the view's
records and changes the switch only by publishing events (:meth:`SwitchCore.emit`), which the
view applies as they are queued. So the view and the events can never disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import CallEvent, DnType, EventError, SwitchEvent
from ivr_server.switch.requests import CallRequest, SwitchRequest
from ivr_server.switch.view import CallRecord, DnRecord, SwitchView

__all__ = ["AGENT_DN_TYPES", "ROUTING_POINT_TYPES", "SwitchCore", "request_name"]

AGENT_DN_TYPES: Final = frozenset({DnType.EXTENSION, DnType.VOICE_TREATMENT_PORT})
"""DN types an agent can log in on and calls can reach; agent requests on any other type fail
with TERR_UNSUP_OPER."""

ROUTING_POINT_TYPES: Final = frozenset({DnType.ROUTING_POINT})
"""DN types the virtual switch's routing dialog runs on (a premise switch adds Virtual Routing
Points, its own routing points on the PBX, MODES-AND-HA G1)."""


def request_name(request: SwitchRequest) -> str:
    """The T-Library name of ``request`` (its class name when it has none)."""
    name: str = getattr(type(request), "name", type(request).__name__)
    return name


class SwitchCore:
    """The state and the shared steps of :class:`~ivr_server.switch.virtual.VirtualSwitch`."""

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
        self._view = SwitchView(dns)
        self.events: list[SwitchEvent] = []
        """Published, not yet drained."""
        self.next_conn = first_conn_id
        """The next ConnID, written as 16 lower-case hex digits."""
        self.next_call_id = first_call_id
        """The next CallID."""
        self.routing_point_types: frozenset[DnType] = ROUTING_POINT_TYPES
        """DN types a call can be presented on for a router (TRouteRequest)."""

    @property
    def name(self) -> str:
        """The switch name."""
        return self._name

    @property
    def tserver(self) -> str:
        """Application name of the T-Server whose link state this switch reports."""
        return self._tserver

    @property
    def view(self) -> SwitchView:
        """The switch's state, as its clients read it."""
        return self._view

    def new_call_ids(self) -> tuple[str, int]:
        """The ConnID and CallID of a new call."""
        conn_id = f"{self.next_conn:016x}"
        self.next_conn += 1
        call_id = self.next_call_id
        self.next_call_id += 1
        return conn_id, call_id

    # -- publishing ------------------------------------------------------------------------------

    def emit(self, event: SwitchEvent) -> None:
        """Publish ``event``: the view applies it, then it is queued."""
        self._view.apply(event)
        self.events.append(event)

    def fail(
        self,
        req: SwitchRequest,
        dn: str | None,
        code: TErrorCode,
        message: str,
        conn_id: str | None = None,
    ) -> None:
        """Refuse ``req`` (about call ``conn_id``, if any): one EventError with its ReferenceID,
        nothing changed."""
        self.events.append(
            EventError(
                switch=self._name,
                reference_id=req.reference_id,
                dn=dn,
                error_code=code,
                error_message=message,
                request=request_name(req),
                conn_id=conn_id,
            )
        )

    def call_event(
        self,
        cls: type[CallEvent],
        req: SwitchRequest | None,
        call: CallRecord,
        dn: str,
        **extra: Any,
    ) -> None:
        """Publish a call event about ``call`` at ``dn`` with the attributes every call event
        carries; ``req`` gives the ReferenceID (``None``: unsolicited)."""
        self.emit(
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

    # -- checks shared by the handlers -----------------------------------------------------------

    def address(self, req: SwitchRequest, number: str) -> DnRecord | None:
        """Checks 1-2 (link up, DN configured); on failure an EventError is queued."""
        if not self._view.link_up:
            self.fail(
                req,
                number,
                TErrorCode.TERR_NO_SWITCH,
                f"T-Server {self._tserver} has no link to switch {self._name}",
            )
            return None
        record = self._view.record(number)
        if record is None:
            self.fail(
                req,
                number,
                TErrorCode.TERR_NOT_CONFIGURED,
                f"DN {number} is not configured on switch {self._name}",
            )
        return record

    def call_at(self, req: CallRequest) -> CallRecord | None:
        """The call of a call request, which must have ``req.dn`` as a party; else EventError."""
        if self.address(req, req.dn) is None:
            return None
        call = self._view.call_record(req.conn_id)
        if call is None:
            self.fail(req, req.dn, TErrorCode.TERR_INVALID_ATTR, f"no call {req.conn_id}")
            return None
        if req.dn not in call.parties:
            self.fail(
                req,
                req.dn,
                TErrorCode.TERR_INVALID_ATTR,
                f"DN {req.dn} is not in call {req.conn_id}",
            )
            return None
        return call
