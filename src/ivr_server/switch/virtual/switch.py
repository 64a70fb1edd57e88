"""The In-Front virtual switch: the one request door and its dispatch table.

Theory of operation
-------------------
The server is a T-Library client of this switch (PROTOCOL.md §10.1), and, In-Front, also its
network and PBX. It drives the switch through one door, :meth:`VirtualSwitch.request`, and reads
what happened from one queue, :meth:`VirtualSwitch.drain_events`, in the order things happened;
the switch's state is its :class:`~ivr_server.switch.view.SwitchView`, changed only by the events
it publishes (:mod:`ivr_server.switch.virtual.core`). No clock, no socket, no asyncio: the same
requests always give the same events.

A request never raises for a peer's mistake. It is checked in this order, the first failure
becoming an EventError with the request's ReferenceID and nothing changed:

1. the link is up (``TERR_NO_SWITCH``);
2. the DN is configured (``TERR_NOT_CONFIGURED``);
3. to 6.: per family of requests, in the module that handles it.

Requests reach their handler through one table, request type → handler, one module per family:
agents and DNs (:mod:`.agents`), calls and user data (:mod:`.calls`), call control: transfers,
conferences, consultations, MakeCall (:mod:`.control`), routing points (:mod:`.routing`), Network
mode's calls waiting at routing DNs (:mod:`.network`), the switch's own link, service and DN set
(:mod:`.admin`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from ivr_server.switch import requests as rq
from ivr_server.switch.errors import TErrorCode
from ivr_server.switch.events import DnType, SwitchEvent
from ivr_server.switch.requests import SwitchRequest
from ivr_server.switch.virtual import admin, agents, calls, control, network, routing
from ivr_server.switch.virtual.core import SwitchCore, request_name

__all__ = ["VirtualSwitch"]


class VirtualSwitch(SwitchCore):
    """The In-Front virtual switch holding the IVR port DNs, routing points and ACD queues.

    ``name`` is the switch name (``Location``, ``MonitorInfo/Server/@Switch``); ``tserver`` is the
    T-Server application name whose link state the switch reports. The DNs in ``dns`` start
    registered (the server registers its port DNs at start-up, PROTOCOL.md §10.2) and in service,
    with no agent; no event is queued for them. The link starts down. ConnIDs are
    ``first_conn_id``, ``+1``… written as 16 lower-case hex digits; CallIDs count up from
    ``first_call_id`` (PROTOCOL.md §10.4).
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
        super().__init__(
            name, tserver, dns, first_conn_id=first_conn_id, first_call_id=first_call_id
        )

    def request(self, req: SwitchRequest) -> None:
        """Process one request; its results (or its EventError) are queued for :meth:`drain_events`."""
        handler = _HANDLERS.get(type(req))
        if handler is None:
            dn = getattr(req, "dn", None)
            self.fail(
                req,
                dn if isinstance(dn, str) else None,
                TErrorCode.TERR_UNSUP_OPER,
                f"{request_name(req)} is not supported by switch {self.name}",
            )
            return
        handler(self, req)

    def drain_events(self) -> list[SwitchEvent]:
        """Every event queued since the last call, oldest first; the queue is left empty."""
        events, self.events = self.events, []
        return events

    def compact(self) -> int:
        """Rebuild the call table if it is mostly empty (see ``ivr_server.memory``)."""
        return self.view.compact()


_HANDLERS: Final[Mapping[type[SwitchRequest], Callable[[SwitchCore, Any], None]]] = {
    rq.TQueryAddress: agents.on_query_address,
    rq.TAgentLogin: agents.on_agent_login,
    rq.TAgentLogout: agents.on_agent_logout,
    rq.TAgentSetReady: agents.on_agent_set_ready,
    rq.TAgentSetNotReady: agents.on_agent_set_not_ready,
    rq.TRegisterAddress: agents.on_register_address,
    rq.TUnregisterAddress: agents.on_unregister_address,
    rq.TInboundCall: calls.on_inbound_call,
    rq.TAnswerCall: calls.on_answer_call,
    rq.TOutboundCall: calls.on_outbound_call,
    rq.TOutboundAnswered: calls.on_outbound_answered,
    rq.TAbandonCall: calls.on_abandon_call,
    rq.TReleaseCall: calls.on_release_call,
    rq.TCallerHangUp: calls.on_caller_hang_up,
    rq.TAttachUserData: calls.on_attach_user_data,
    rq.TUpdateUserData: calls.on_update_user_data,
    rq.TDeleteUserData: calls.on_delete_user_data,
    rq.TDeleteAllUserData: calls.on_delete_all_user_data,
    rq.TMakeCall: control.on_make_call,
    rq.TSingleStepTransfer: control.on_single_step_transfer,
    rq.TInitiateTransfer: control.on_initiate_transfer,
    rq.TInitiateConference: control.on_initiate_transfer,
    rq.TCompleteTransfer: control.on_complete_transfer,
    rq.TCompleteConference: control.on_complete_conference,
    rq.TSingleStepConference: control.on_single_step_conference,
    rq.TReconnectCall: control.on_reconnect_call,
    rq.TRouteRequest: routing.on_route_request,
    rq.TRouteCall: network.on_route_call,
    rq.TApplyTreatment: routing.on_apply_treatment,
    rq.TTreatmentStatus: routing.on_treatment_status,
    rq.TRouteAbort: routing.on_route_abort,
    rq.TRouteFailed: network.on_route_failed,
    rq.TNetworkCall: network.on_network_call,
    rq.TNetworkConnected: network.on_network_connected,
    rq.TOpenLink: admin.on_open_link,
    rq.TCloseLink: admin.on_close_link,
    rq.TSetInService: admin.on_set_in_service,
    rq.TConfigureAddresses: admin.on_configure_addresses,
}
"""Request type → handler: the one dispatch point of :meth:`VirtualSwitch.request`."""
