"""What the IVR may ask about a call without changing it: ``CallInfoReq`` and the access numbers
of ``AccessNumGet``/``AccessNumCancel`` (PROTOCOL.md §6.4, §3.5). Answered at once, to the session
that asked."""

from __future__ import annotations

import uuid
from typing import Literal

from ivr_server.calls.call import Call
from ivr_server.calls.context import CallContext
from ivr_server.wire import Message
from ivr_server.wire import messages as m

__all__ = ["CallInfo"]


class CallInfo:
    """``CallInfoReq`` and the access-number requests."""

    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx

    def on_call_info(self, call: Call, msg: m.CallInfoReq, now: float) -> None:
        """``CallInfoResp`` from what the port's latest events told (a UUID made on first ask)."""
        uuid_value = None
        if msg.ReportUUID == "true" and call.conn_id is not None:
            if call.uuid is None:
                call.uuid = uuid.uuid4().hex.upper()
            uuid_value = call.uuid
        self.ctx.send(
            self.ctx.requester,
            call.call_id,
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
        """ISCC with remote sites needs a multi-site configuration, which this server does not
        have: every request for an access number fails (PROTOCOL.md §3.5, docs/decisions.md)."""
        action: Literal["Get", "Cancel"] = "Get" if msg.tag == "AccessNumGet" else "Cancel"
        self.ctx.send(
            self.ctx.requester, call.call_id, m.AccessNumResp(Action=action, Result="Failure")
        )
