"""What the IVR may ask about a call without changing it: ``CallInfoReq`` and the access numbers
of ``AccessNumGet``/``AccessNumCancel`` (PROTOCOL.md §6.4, §3.5). Answered at once, to the session
that asked."""

from __future__ import annotations

import uuid
from typing import Final, Literal

from ivr_server.calls.call import Call
from ivr_server.calls.context import CallContext
from ivr_server.wire import Message
from ivr_server.wire import messages as m

__all__ = ["PORT_TRUNK", "CallInfo"]

PORT_TRUNK: Final = "0"
"""``PortTrunk`` of a Behind call: the premise switch reports no trunk, and the real site's
server sent ``'0'`` (W; docs/decisions.md)."""


class CallInfo:
    """``CallInfoReq`` and the access-number requests."""

    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx

    def on_call_info(self, call: Call, msg: m.CallInfoReq, now: float) -> None:
        """``CallInfoResp`` from what the port's latest events told (a UUID made on first ask).
        Before the switch knows the call (Behind, before ``Ringing``): what the ``NewCall``
        said, ``ANI DNIS CalledNum PortDN`` only (W)."""
        uuid_value = None
        conn_id = call.conn_id
        if msg.ReportUUID == "true" and conn_id is not None:
            if call.uuid is None:
                call.uuid = uuid.uuid4().hex.upper()
                self.ctx.mark(call)  # HA tracking (issue 25): the UUID stays the call's
            uuid_value = call.uuid
        if call.behind and conn_id is not None:
            self.ctx.send(self.ctx.requester, call, _behind_info(call, conn_id, uuid_value))
            return
        if call.network:
            self.ctx.send(self.ctx.requester, call, _network_info(call, uuid_value))
            return
        self.ctx.send(
            self.ctx.requester,
            call,
            m.CallInfoResp(
                ANI=call.ani or None,
                DNIS=call.dnis or None,
                CalledNum=call.called_num or None,
                ConnId=call.conn_id,
                TSCallId=str(call.switch_call_id) if call.switch_call_id is not None else None,
                PortDN=call.dn,
                LastEvent=call.last_event,
                UUID=uuid_value,
            ),
        )

    def on_access_num(self, call: Call, msg: Message, now: float) -> None:
        """An access number for the call (MODES-AND-HA X1-X2, G24): the service's provider
        answers (``CallContext.access_numbers``), now or later; a Network call, or a server
        without a provider, gets ``Result='Failure'`` (PROTOCOL.md §5.3: not in Network mode)."""
        action: Literal["Get", "Cancel"] = "Get" if msg.tag == "AccessNumGet" else "Cancel"
        provider = self.ctx.access_numbers
        answer = None
        if provider is not None and not call.network:
            answer = provider(call, msg, now)
            if answer is None:  # the provider answers later (answer_access_num)
                return
        if answer is None:
            answer = m.AccessNumResp(Action=action, Result="Failure")
        self.ctx.send(self.ctx.requester, call, answer)


_HOME_LOCATION_VERSIONS: Final = frozenset({"3.0", "4.0"})
"""Call versions whose ``CallInfoResp`` may carry ``FirstHomeLocation`` (PROTOCOL.md §3.7.2)."""


def _network_info(call: Call, uuid_value: str | None) -> m.CallInfoResp:
    """A Network call's ``CallInfoResp`` (MODES-AND-HA N-m): ``CalledNum`` is ThisDN, the
    routing DN the call waits at (after ``called-num-subset``); no port; ``FirstHomeLocation``
    (the server's switch, where the call arrived) only when the call's version is 3.0 or
    later."""
    return m.CallInfoResp(
        ANI=call.ani or None,
        DNIS=call.dnis or None,
        CalledNum=call.dn,
        ConnId=call.conn_id,
        TSCallId=str(call.switch_call_id) if call.switch_call_id is not None else None,
        LastEvent=call.last_event,
        FirstHomeLocation=call.switch.name if call.version in _HOME_LOCATION_VERSIONS else None,
        UUID=uuid_value,
    )


def _behind_info(call: Call, conn_id: str, uuid_value: str | None) -> m.CallInfoResp:
    """A Behind call's ``CallInfoResp`` once the PBX reported it, from the port's latest premise
    event (MODES-AND-HA B14): ``ANI DNIS CalledNum ConnId TSCallId PortDN PortTrunk [PortQueue]
    OtherDN LastEvent``; ``OtherDN`` is the other party the PBX named, else the caller."""
    return m.CallInfoResp(
        ANI=call.ani or None,
        DNIS=call.dnis or None,
        CalledNum=call.called_num or None,
        ConnId=conn_id,
        TSCallId=str(call.switch_call_id) if call.switch_call_id is not None else None,
        PortDN=call.dn,
        PortTrunk=PORT_TRUNK,
        PortQueue=call.queue,
        OtherDN=call.other_dn or call.ani or None,
        LastEvent=call.last_event,
        UUID=uuid_value,
    )
